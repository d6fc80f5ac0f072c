"""GAN variants on DCGAN's networks (`dcgan`), for the review's GAN section.

- WGAN (Arjovsky, Chintala and Bottou 2017): the discriminator becomes a critic f whose logit is
  an estimate of the Wasserstein-1 distance, E f(x) - E f(G(z)), kept (roughly) Lipschitz by
  clipping its weights to [-c, c]; RMSprop, n_critic critic steps per generator step.
- WGAN-GP (Gulrajani et al. 2017): the clipping replaced by a penalty lambda (||grad f(x_hat)|| - 1)^2
  on random interpolates x_hat of real and fake images; Adam(0, 0.9); a critic without batch norm.
- A class-conditional GAN with a projection discriminator (Miyato and Koyama 2018) whose every
  weight is spectrally normalised (Miyato et al. 2018), trained with the hinge loss (Lim and Ye
  2017): BigGAN's conditioning and normalisation of D (Brock et al. 2019), at DCGAN's scale.

All keep DCGAN's generator, its EMA, `likelihood = "none"` and one-pass sampling. One `train_step`
call is one critic step on its batch; G steps on every n_critic-th call (a counter in a buffer, so a
checkpoint resumes it), so the trainer's batches, logs and checkpoints are those of any model.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .dcgan import DCGAN, DCGANConfig, Discriminator, Generator


@dataclass
class CriticGANConfig(DCGANConfig):
    n_critic: int = 5          # critic steps per generator step: G steps on every n_critic-th train_step


class CriticGAN(DCGAN):
    """DCGAN with n_critic steps of D per step of G. Args: cfg (CriticGANConfig), shape (C, H, W).

    Every call returns the same keys; "g_loss" is G's loss at its latest step (0 before the first)."""

    d_output = "critic"  # unbounded scores (Wasserstein critic, hinge loss), not probabilities

    def __init__(self, cfg: CriticGANConfig, shape):
        super().__init__(cfg, shape)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))  # train_step calls so far
        self.register_buffer("last_g_loss", torch.zeros(()))             # reported between G's steps

    def train_step(self, x, y, optimizers, amp=nullcontext):
        self.step += 1
        generator_turn = int(self.step) % self.cfg.n_critic == 0
        fake, d = self.critic_step(x * 2 - 1, y, optimizers, amp, generator_turn)
        if generator_turn:
            self.last_g_loss.copy_(self.generator_step(fake, y, optimizers, amp))
        g_loss = self.last_g_loss.clone()
        return {"loss": d["d_loss"] + g_loss, "g_loss": g_loss, **d}


# ---------------------------------------------------------------------------------------- WGAN

@dataclass
class WGANConfig(CriticGANConfig):
    lr_g: float = 5e-5         # RMSprop for both players (beta1 and beta2 are not used)
    lr_d: float = 5e-5
    clip: float = 0.01         # c: every critic parameter is clipped to [-c, c]
    n_critic: int = 5


class WGAN(CriticGAN):
    """Wasserstein GAN (Arjovsky et al. 2017, Algorithm 1). Args: cfg (WGANConfig), shape (C, H, W).

    The critic is DCGAN's discriminator, batch norm included as in the paper, read without a
    sigmoid; all its parameters are clipped after every update (and at the start)."""

    def __init__(self, cfg: WGANConfig, shape):
        super().__init__(cfg, shape)
        self.after_critic_update()

    def configure_optimizers(self):
        return {"d": torch.optim.RMSprop(self.D.parameters(), lr=self.cfg.lr_d),
                "g": torch.optim.RMSprop(self.G.parameters(), lr=self.cfg.lr_g)}

    @torch.no_grad()
    def after_critic_update(self):
        for p in self.D.parameters():
            p.clamp_(-self.cfg.clip, self.cfg.clip)

    def critic_losses(self, real, fake, y):
        """The critic maximises E f(x) - E f(G(z)), the estimate of W(P_data, P_G) reported as "wasserstein"."""
        f_real = self.D(real).float()                                          # (B,)
        f_fake = self.D(fake).float()
        w = f_real.mean() - f_fake.mean()
        return {"d_loss": -w, "d_real": f_real.mean(), "d_fake": f_fake.mean(), "wasserstein": w}

    def generator_loss(self, fake, y):
        return -self.D(fake).float().mean()


# ------------------------------------------------------------------------------------- WGAN-GP

@dataclass
class WGANGPConfig(CriticGANConfig):
    lr_g: float = 1e-4
    lr_d: float = 1e-4
    beta1: float = 0.0
    beta2: float = 0.9
    gp_weight: float = 10.0    # lambda
    critic_norm: str = "layer"  # layer (GroupNorm(1, C)) | none: the penalty is per sample, so no batch norm
    n_critic: int = 5


def gradient_penalty(critic, real, fake, eps):
    """E (||grad_x critic(x_hat)||_2 - 1)^2 at x_hat = eps real + (1 - eps) fake (Gulrajani et al. 2017,
    Algorithm 1), (); eps (B, 1, 1, 1). Differentiable in the critic's parameters, not in the fakes."""
    x_hat = (eps * real + (1 - eps) * fake).detach().requires_grad_(True)   # (B, C, H, W)
    with torch.enable_grad():  # also under no_grad (validation)
        out = critic(x_hat)                                                  # (B,)
        grad, = torch.autograd.grad(out.sum(), x_hat, create_graph=True)     # (B, C, H, W), per sample
    return (grad.float().flatten(1).norm(dim=1) - 1).pow(2).mean()


class WGANGP(WGAN):
    """WGAN with a gradient penalty (Gulrajani et al. 2017). Args: cfg (WGANGPConfig), shape (C, H, W)."""

    def make_discriminator(self):
        if self.cfg.critic_norm == "batch":
            raise ValueError("wgan_gp.critic_norm 'batch': the gradient penalty is per sample, which batch norm "
                             "breaks; use layer or none (Gulrajani et al. 2017, section 4)")
        c, h, w = self.shape
        return Discriminator(c, h, w, self.cfg.width_d, norm=self.cfg.critic_norm)

    def configure_optimizers(self):
        betas = (self.cfg.beta1, self.cfg.beta2)  # the paper's (0, 0.9) by default
        return {"d": torch.optim.Adam(self.D.parameters(), lr=self.cfg.lr_d, betas=betas),
                "g": torch.optim.Adam(self.G.parameters(), lr=self.cfg.lr_g, betas=betas)}

    def after_critic_update(self):
        pass  # the penalty replaces the clipping

    def critic_losses(self, real, fake, y):
        d = super().critic_losses(real, fake, y)
        eps = torch.rand(len(real), 1, 1, 1, device=real.device)            # (B, 1, 1, 1)
        d["gp"] = gradient_penalty(self.D, real, fake, eps)
        d["d_loss"] = d["d_loss"] + self.cfg.gp_weight * d["gp"]
        return d


# ------------------------------------------------------------- conditional GAN, projection D

@dataclass
class CGANConfig(CriticGANConfig):
    num_classes: int = 10
    embed_dim: int = 16        # G's class embedding, concatenated to z
    lr_g: float = 1e-4         # BigGAN's baseline two time-scale rates
    lr_d: float = 4e-4
    beta1: float = 0.0
    beta2: float = 0.999
    n_critic: int = 2          # BigGAN: two D steps per G step


class ConditionalGenerator(Generator):
    """DCGAN's generator on [z, embed(y)]: the class enters through a learned embedding concatenated
    to the noise (Mirza and Osindero 2014), where BigGAN uses class-conditional batch norm.
    Args: c, h, w, z_dim, width as Generator; num_classes, embed_dim."""

    def __init__(self, c, h, w, z_dim, width, num_classes, embed_dim):
        super().__init__(c, h, w, z_dim + embed_dim, width)
        self.embed = nn.Embedding(num_classes, embed_dim)

    def forward(self, z, y):  # (B, z_dim), (B,) -> (B, C, H, W)
        return super().forward(torch.cat([z, self.embed(y)], 1))


class ProjectionDiscriminator(Discriminator):
    """D(x, y) = psi(phi(x)) + <embed(y), phi(x)> (Miyato and Koyama 2018): phi is DCGAN's feature stack
    without batch norm, flattened, psi its linear head. Args: c, h, w, width, num_classes."""

    def __init__(self, c, h, w, width, num_classes):
        super().__init__(c, h, w, width, norm="none")
        self.embed = nn.Embedding(num_classes, self.head.in_features)

    def forward(self, x, y):  # (B, C, H, W) in [-1, 1], (B,) -> (B,)
        phi = self.features(x)                                               # (B, F)
        return self.head(phi).squeeze(1) + (self.embed(y) * phi).sum(1)


class ProjectionCGAN(CriticGAN):
    """Class-conditional GAN: a projection discriminator with spectral normalisation on every layer
    (Miyato et al. 2018) and the hinge loss. Args: cfg (CGANConfig), shape (C, H, W).

    Fakes are drawn for the labels of the real batch, so their classes follow the data's."""

    def __init__(self, cfg: CGANConfig, shape):
        super().__init__(cfg, shape)  # DCGAN's initialisation first; the normalisation then rescales
        for m in self.D.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding)):
                spectral_norm(m)

    def make_generator(self):
        c, h, w = self.shape
        return ConditionalGenerator(c, h, w, self.cfg.z_dim, self.cfg.width_g, self.cfg.num_classes,
                                    self.cfg.embed_dim)

    def make_discriminator(self):
        c, h, w = self.shape
        return ProjectionDiscriminator(c, h, w, self.cfg.width_d, self.cfg.num_classes)

    def _labels(self, n, labels=None):  # -> (n,) long; default: balanced, arange(n) % num_classes
        device = self.head_device()
        if labels is None:
            return torch.arange(n, device=device) % self.cfg.num_classes
        return torch.as_tensor(labels, device=device).long().expand(n)

    def fake_batch(self, n, y):
        if y is None:
            raise ValueError("the conditional GAN trains on labelled batches: pass the labels y")
        return self.G(self._z(n), self._labels(n, y))

    def critic_losses(self, real, fake, y):
        d_real = self.D(real, y).float()                                     # (B,)
        d_fake = self.D(fake, y).float()
        d_loss = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
        return {"d_loss": d_loss, "d_real": d_real.mean(), "d_fake": d_fake.mean()}

    def generator_loss(self, fake, y):
        return -self.D(fake, y).float().mean()

    @torch.no_grad()
    def generate(self, z, labels=None):  # (B, z_dim), labels (B,) or one class -> images in [0, 1]
        net = self.sampling_network()
        was_training = net.training
        net.eval()
        out = (net(z, self._labels(len(z), labels)).float() + 1) / 2
        net.train(was_training)
        return out

    @torch.no_grad()
    def sample(self, n, generator=None, labels=None):
        """n images in [0, 1], (n, C, H, W), of the classes `labels` ((n,) or one class; default balanced)."""
        return self.generate(self._z(n, generator), labels)
