"""Deep convolutional GAN (Radford et al. 2016) trained with the non-saturating loss of
Goodfellow et al. (2014).

The generator G maps z ~ N(0, I) to an image through transposed convolutions with batch
normalisation; the discriminator D is a strided convolutional classifier with leaky
ReLUs. Each step first updates D on real images and detached fakes, then updates G to
make D call its fakes real. Samples come from an exponential moving average of G's
weights when `ema_decay` > 0 (Yazici et al. 2019).

A step is written as two halves, `critic_step` and `generator_step`, around two losses,
`critic_losses` and `generator_loss`; the variants in `wgan`, `wgan_gp` and `cgan` (WGAN, WGAN-GP, a
projection cGAN) change the losses, the optimisers and how often G steps, not the loop.
`detach_fake = False` is the review's ablation of the `.detach()`: D's backward then also
runs through G and leaves gradients on it (reported as `g_grad_in_d_step`), and G's graph
must be kept alive for G's own step. A loop that clears G's gradients before G's step (ours,
`zero_g_grad = True`) throws them away, so the detach only saves compute there; with
`zero_g_grad = False` they are added to G's own gradient, which then also descends D's loss (makes
the fakes easier to tell apart). That step reports `g_update_cos`, the cosine between the gradient G
steps on and its own loss's gradient (1 when nothing leaked in).
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..hparams import hp
from .base import EMA, GenerativeModel


@dataclass
class DCGANConfig:
    z_dim: int = hp(100, minimum=1)
    width_g: int = hp(64, minimum=1)  # generator channels: 4x this at H/4, 2x at H/2, then the image
    width_d: int = hp(64, minimum=1)  # discriminator channels after the first conv
    lr_g: float = hp(2e-4, exclusive_minimum=0)
    lr_d: float = hp(2e-4, exclusive_minimum=0)
    beta1: float = hp(0.5, minimum=0, maximum=1)
    beta2: float = hp(0.999, minimum=0, maximum=1)
    ema_decay: float = hp(0.999, minimum=0, maximum=1)  # 0 samples from the raw generator
    detach_fake: bool = hp(True, doc="False: D's step backpropagates into G too (the ablation of the detach)")
    zero_g_grad: bool = hp(True, doc="False: G's step keeps the gradients D's step left on G instead of clearing "
                                     "them (the loop in which the detach matters; with detach_fake true there "
                                     "are none to keep)")


class Generator(nn.Module):
    def __init__(self, c: int, h: int, w: int, z_dim: int, width: int):
        super().__init__()
        self.hw = (h // 4, w // 4)
        self.fc = nn.Sequential(
            nn.Linear(z_dim, 4 * width * self.hw[0] * self.hw[1], bias=False),
            nn.BatchNorm1d(4 * width * self.hw[0] * self.hw[1]), nn.ReLU(True))
        self.net = nn.Sequential(
            nn.ConvTranspose2d(4 * width, 2 * width, 4, 2, 1, bias=False),  # (B, 2w, H/2, W/2)
            nn.BatchNorm2d(2 * width), nn.ReLU(True),
            nn.ConvTranspose2d(2 * width, c, 4, 2, 1), nn.Tanh(),           # (B, C, H, W) in [-1, 1]
        )

    def forward(self, z):  # (B, z_dim) -> (B, C, H, W)
        return self.net(self.fc(z).view(len(z), -1, *self.hw))


class Discriminator(nn.Module):
    """Args: c, h, w (image shape), width (channels after the first conv), norm: "batch" (DCGAN),
    "layer" (GroupNorm(1, C): per-sample, as a gradient penalty needs) or "none" (convs get biases)."""

    def __init__(self, c: int, h: int, w: int, width: int, norm: str = "batch"):
        super().__init__()
        if norm not in ("batch", "layer", "none"):
            raise ValueError(f"Discriminator norm {norm!r}: use batch, layer or none")

        def norm_layer(ch):
            if norm == "batch":
                return nn.BatchNorm2d(ch)
            return nn.GroupNorm(1, ch) if norm == "layer" else nn.Identity()

        bias = norm == "none"
        self.features = nn.Sequential(
            nn.Conv2d(c, width, 4, 2, 1), nn.LeakyReLU(0.2, True),                  # (B, w, H/2, W/2)
            nn.Conv2d(width, 2 * width, 4, 2, 1, bias=bias),                        # (B, 2w, H/4, W/4)
            norm_layer(2 * width), nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * width, 4 * width, 3, 2, 1, bias=bias),                    # (B, 4w, H/8, W/8)
            norm_layer(4 * width), nn.LeakyReLU(0.2, True),
            nn.Flatten(),                                                           # (B, 4w * H/8 * W/8)
        )
        self.head = nn.Linear(4 * width * ((h + 7) // 8) * ((w + 7) // 8), 1)

    def forward(self, x):  # (B, C, H, W) in [-1, 1] -> logit (B,)
        return self.head(self.features(x)).squeeze(1)


def _init_dcgan(m: nn.Module) -> None:
    """Radford et al.'s initialisation: N(0, 0.02) weights, BN scales N(1, 0.02)."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def _squared_grad_norm(net: nn.Module) -> torch.Tensor:
    """Sum of the squared gradients held by net's parameters, () (0 when none holds one)."""
    grads = [p.grad.detach().float().pow(2).sum() for p in net.parameters() if p.grad is not None]
    return torch.stack(grads).sum() if grads else torch.zeros((), device=next(net.parameters()).device)


class DCGAN(GenerativeModel):
    """DCGAN. Args: cfg (DCGANConfig), shape (C, H, W) with H and W divisible by 4."""

    family = "gan"
    latent_sampling = "generator"  # generate and differentiable_generate on z (B, z_dim)
    probe_features = "discriminator"  # features: D's input to its last linear layer
    likelihood = "none"
    d_output = "probability"  # what "d_real"/"d_fake" report: D's mean probability (a critic's mean value)

    def __init__(self, cfg: DCGANConfig, shape):
        super().__init__(cfg, shape)
        self.G = self.make_generator()
        self.D = self.make_discriminator()
        self.apply(_init_dcgan)
        self.G_ema = EMA(self.G, cfg.ema_decay) if cfg.ema_decay > 0 else None

    def make_generator(self) -> nn.Module:
        c, h, w = self.shape
        return Generator(c, h, w, self.cfg.z_dim, self.cfg.width_g)

    def make_discriminator(self) -> nn.Module:
        c, h, w = self.shape
        return Discriminator(c, h, w, self.cfg.width_d)

    def configure_optimizers(self):
        betas = (self.cfg.beta1, self.cfg.beta2)
        return {"d": torch.optim.Adam(self.D.parameters(), lr=self.cfg.lr_d, betas=betas),
                "g": torch.optim.Adam(self.G.parameters(), lr=self.cfg.lr_g, betas=betas)}

    def _z(self, n, generator=None):
        return torch.randn(n, self.cfg.z_dim, generator=generator, device=self.head_device())

    def head_device(self):
        return next(self.G.parameters()).device

    # ---- the two players' losses (what a variant changes) ----------------------------------
    def fake_batch(self, n: int, y: torch.Tensor | None) -> torch.Tensor:
        """n fresh fakes G(z) in [-1, 1], (n, C, H, W); y, the batch's labels, is for conditional variants."""
        return self.G(self._z(n))

    def critic_losses(self, real, fake, y) -> dict[str, torch.Tensor]:
        """D's loss "d_loss" on real and fake images in [-1, 1], and what to report: here the mean
        probabilities D gives real ("d_real") and fake ("d_fake") images."""
        d_real = self.D(real).float()                                         # logits (B,)
        d_fake = self.D(fake).float()
        d_loss = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                  + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
        return {"d_loss": d_loss, "d_real": torch.sigmoid(d_real).mean(), "d_fake": torch.sigmoid(d_fake).mean()}

    def generator_loss(self, fake, y) -> torch.Tensor:
        """The non-saturating loss -log D(G(z))."""
        logit = self.D(fake).float()
        return F.binary_cross_entropy_with_logits(logit, torch.ones_like(logit))

    def after_critic_update(self) -> None:
        """Called after every optimiser step of D (WGAN clips D's weights here)."""

    # ---- one step: D, then G -----------------------------------------------------------------
    def critic_step(self, real, y, optimizers, amp=nullcontext, generator_turn: bool = True):
        """One optimiser step of D on real images in [-1, 1], (B, C, H, W), and fresh fakes.

        Returns (fake, stats): the fakes, still attached to G's graph when `generator_turn` (G steps
        next, on the same fakes), and critic_losses' values plus "g_grad_in_d_step", the squared norm
        of the gradient D's backward left on G (0 unless detach_fake is False)."""
        optimizers["g"].zero_grad(set_to_none=True)  # so that G's .grad holds only what this step puts there
        through_g = generator_turn and not self.cfg.detach_fake
        with amp(), torch.set_grad_enabled(generator_turn):  # no graph through G when G does not step
            fake = self.fake_batch(len(real), y)                                   # (B, C, H, W)
        with amp():
            d = self.critic_losses(real, fake if through_g else fake.detach(), y)
        optimizers["d"].zero_grad(set_to_none=True)
        d["d_loss"].backward(retain_graph=through_g)  # without the detach G's graph is needed again below
        d["g_grad_in_d_step"] = _squared_grad_norm(self.G)
        optimizers["d"].step()
        self.after_critic_update()
        return fake, {k: v.detach() for k, v in d.items()}

    def generator_step(self, fake, y, optimizers, amp=nullcontext) -> torch.Tensor:
        """One optimiser step of G on the fakes of `critic_step`, then the EMA; returns the loss. With
        `zero_g_grad` false, G steps on what D's step left on its gradients plus its own loss's gradient, and
        the cosine between that sum and its own gradient is kept in `self.g_update_cos` (a device scalar)."""
        with amp():
            g_loss = self.generator_loss(fake, y)
        if self.cfg.zero_g_grad:
            optimizers["g"].zero_grad(set_to_none=True)
            g_loss.backward()
        else:
            params = list(self.G.parameters())
            left = [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in params]
            g_loss.backward()
            total = [p.grad.detach().float() if p.grad is not None else torch.zeros_like(p) for p in params]
            own = [t - lf.float() for t, lf in zip(total, left)]
            dot = sum((t * o).sum() for t, o in zip(total, own))
            norms = torch.sqrt(sum(t.pow(2).sum() for t in total) * sum(o.pow(2).sum() for o in own))
            self.g_update_cos = dot / norms.clamp_min(1e-30)
        optimizers["g"].step()
        if self.G_ema is not None:
            self.G_ema.update(self.G)
        return g_loss.detach()

    def train_step(self, x, y, optimizers, amp=nullcontext):
        fake, d = self.critic_step(x * 2 - 1, y, optimizers, amp)
        g_loss = self.generator_step(fake, y, optimizers, amp)
        out = {"loss": d["d_loss"] + g_loss, "g_loss": g_loss, **d}
        if not self.cfg.zero_g_grad:
            out["g_update_cos"] = self.g_update_cos.detach()
        return out

    def loss(self, x, y=None):
        """Both players' losses on a batch, without updating anything (for validation)."""
        real = x * 2 - 1
        fake = self.fake_batch(len(x), y)
        d = self.critic_losses(real, fake, y)
        g_loss = self.generator_loss(fake, y)
        return {"loss": d["d_loss"] + g_loss, "g_loss": g_loss, **d}

    # ---- sampling ----------------------------------------------------------------------------
    def sampling_network(self):
        return self.G_ema.net if self.G_ema is not None else self.G

    @torch.no_grad()
    def generate(self, z):  # (B, z_dim) -> images in [0, 1]
        net = self.sampling_network()
        was_training = net.training
        net.eval()
        out = (net(z).float() + 1) / 2
        net.train(was_training)
        return out

    def differentiable_generate(self, z):
        """`generate`'s images, differentiable in z (GAN inversion); leaves the sampling network in eval mode."""
        return (self.sampling_network().eval()(z).float() + 1) / 2

    @torch.no_grad()
    def sample(self, n, generator=None):
        return self.generate(self._z(n, generator))

    @property
    def latent_dim(self) -> int:
        return self.cfg.z_dim

    def features(self, x):  # (B, C, H, W) in [0, 1] -> D's features (B, 4w * H/8 * W/8); the projection D's phi(x)
        return self.D.features(x * 2 - 1)
