"""Latent diffusion (Rombach et al. 2022), optionally class-conditional with classifier-free
guidance (Ho and Salimans 2022).

Two stages in one model, trained one after the other inside the ordinary trainer:

1. A small KL-regularised autoencoder, LDM's "KL-f4" scaled down: the encoder maps an image x
   in [0, 1]^(C, H, W) to a diagonal Gaussian posterior q(z | x) on a latent of shape
   (c, H/4, W/4); the decoder maps z back to pixels. The KL to N(0, I) has a weight of only 1e-6
   against the per-image reconstruction loss (LDM's setting): it keeps the latent's scale from
   drifting without blurring the reconstructions, as a VAE's full KL would. The reconstruction
   loss is binary cross-entropy on the decoder's logits by default (L1, LDM's pixel term, is an
   option): on Fashion-MNIST the two reach about the same error in a few hundred steps, BCE a
   slightly lower MSE, and its gradient does not vanish where the sigmoid saturates.
2. A DDPM (Ho et al. 2020) on the scaled latent s z, with s = 1 / std(z) measured on the first
   batch of stage 2 (LDM's scale factor), so that the latent the diffusion sees has unit variance.
   The autoencoder is frozen; the denoiser is the pixel DDPM's UNet and the noise schedule and
   samplers are the pixel DDPM's classes, run without clipping the predicted z_0 (a latent has no
   [-1, 1] range).

The first `ae_fraction` of the training steps train the autoencoder, the rest the denoiser. The
step counter, the planned number of steps and the scale factor live in buffers, so a checkpoint
taken in either stage resumes in that stage.

With num_classes > 0 the denoiser also takes a label y, replaced during training by a null label
with probability cond_drop, so that one network learns eps(z_t, y) and eps(z_t, null). Sampling
uses eps~ = (1 + w) eps(z_t, y) - w eps(z_t, null) (Ho and Salimans 2022, eq. 6), both terms from
one batched network call; w = 0 is the plain conditional model (one call).

There is no likelihood: the decoder is deterministic, so the model puts no density on pixels.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..diffusion.samplers import make_scheduler
from ..diffusion.sampling import reverse_process, timestep_batch
from ..diffusion.schedule import NoiseSchedule, make_betas
from ..diffusion.unet import UNet
from ..hparams import hp
from .base import EMA, GenerativeModel, mirrored, register_mirrored, set_mirrored, warmup_cosine


@dataclass
class LatentDiffusionConfig:
    # stage 1: the autoencoder
    latent_channels: int = hp(4, minimum=1)  # c of the (c, H/4, W/4) latent
    ae_width: int = hp(16, minimum=4, doc="autoencoder channels at full resolution (doubled at H/2 and H/4)")
    # bce | l1, per pixel, summed per image (bce: lower MSE in a few hundred steps)
    recon_loss: str = hp("bce", enum=["bce", "l1"])
    kl_weight: float = hp(1e-6, minimum=0)  # weight of KL(q(z|x) || N(0, I)) against the reconstruction loss
    ae_lr: float = hp(5e-3, exclusive_minimum=0)
    ae_fraction: float = hp(0.25, exclusive_minimum=0, exclusive_maximum=1,
                            doc="share of the training steps spent on the autoencoder")
    # stage 2: the latent denoiser, named as in DDPMConfig
    timesteps: int = hp(1000, minimum=2, maximum=10**5)
    schedule: str = hp("linear", enum=["linear", "cosine"])  # linear | cosine
    beta_start: float = hp(1e-4, exclusive_minimum=0)
    beta_end: float = hp(0.02, exclusive_minimum=0, maximum=1)
    width: int = hp(64, minimum=4)  # UNet channels at the latent's resolution
    mults: list[int] = hp([1, 2], min_items=1, items={"minimum": 1})
    res_blocks: int = hp(1, minimum=1)
    attn_levels: list[int] = hp([1], items={"minimum": 0})
    dropout: float = hp(0.0, minimum=0, maximum=1)
    lr: float = hp(1e-3, exclusive_minimum=0)
    warmup_steps: int = hp(100, minimum=0)  # counted from the start of stage 2
    grad_clip: float = hp(1.0, minimum=0)  # the denoiser's gradient norm
    ema_decay: float = hp(0.999, minimum=0, maximum=1)
    sampler: str = hp("ddim", enum=["ddim", "ddpm"])  # ddim | ddpm: the sampler used for evaluation
    sample_steps: int = hp(50, minimum=1, maximum=10**5)
    ddim_eta: float = hp(0.0, minimum=0)
    spacing: str = hp("trailing", enum=["leading", "trailing"])  # leading | trailing timesteps for DDIM
    # class conditioning and classifier-free guidance
    num_classes: int = hp(0, minimum=0, doc="0 = unconditional")
    cond_drop: float = hp(0.1, minimum=0, maximum=1)  # probability that a training label is replaced by the null label
    guidance: float = hp(1.0, minimum=0, doc="default guidance weight w (ignored by an unconditional model)")

    def __post_init__(self):
        if not 1 <= self.sample_steps <= self.timesteps:
            raise ValueError(f"sample_steps ({self.sample_steps}) must be between 1 and timesteps ({self.timesteps})")
        if not 0 < self.ae_fraction < 1:
            raise ValueError(f"ae_fraction ({self.ae_fraction}) must lie in (0, 1): both stages need steps")
        if self.recon_loss not in ("l1", "bce"):
            raise ValueError(f"unknown recon_loss {self.recon_loss!r}: use l1 or bce")


@dataclass
class GuidedLatentDiffusionConfig(LatentDiffusionConfig):
    num_classes: int = 10


def _block(conv: nn.Module) -> list[nn.Module]:
    """conv, GroupNorm, SiLU: the normalisation halves the reconstruction error reached in a few hundred steps."""
    ch = conv.out_channels
    return [conv, nn.GroupNorm(min(8, ch // 4), ch), nn.SiLU()]


class Encoder(nn.Module):
    def __init__(self, c: int, width: int, latent: int):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            *_block(nn.Conv2d(c, w, 3, padding=1)),                      # (B, w, H, W)
            *_block(nn.Conv2d(w, 2 * w, 4, 2, 1)),                       # (B, 2w, H/2, W/2)
            *_block(nn.Conv2d(2 * w, 2 * w, 3, padding=1)),
            *_block(nn.Conv2d(2 * w, 2 * w, 4, 2, 1)),                   # (B, 2w, H/4, W/4)
            *_block(nn.Conv2d(2 * w, 2 * w, 3, padding=1)),
            nn.Conv2d(2 * w, 2 * latent, 3, padding=1),                  # mean and log-variance
        )

    def forward(self, x):  # (B, C, H, W) in [-1, 1] -> (B, 2c, H/4, W/4)
        return self.net(x)


class Decoder(nn.Module):
    def __init__(self, c: int, width: int, latent: int):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            *_block(nn.Conv2d(latent, 2 * w, 3, padding=1)),             # (B, 2w, H/4, W/4)
            *_block(nn.Conv2d(2 * w, 2 * w, 3, padding=1)),
            *_block(nn.ConvTranspose2d(2 * w, 2 * w, 4, 2, 1)),          # (B, 2w, H/2, W/2)
            *_block(nn.Conv2d(2 * w, w, 3, padding=1)),
            *_block(nn.ConvTranspose2d(w, w, 4, 2, 1)),                  # (B, w, H, W)
            nn.Conv2d(w, c, 3, padding=1),                               # logits
        )

    def forward(self, z):  # (B, c, H/4, W/4) -> logits (B, C, H, W)
        return self.net(z)


class Autoencoder(nn.Module):
    """KL-regularised autoencoder with a 4x downsampled latent.

    Args: channels (image C), width (channels at full resolution), latent_channels (c).
    """

    def __init__(self, channels: int, width: int, latent_channels: int):
        super().__init__()
        self.encoder = Encoder(channels, width, latent_channels)
        self.decoder = Decoder(channels, width, latent_channels)

    def encode(self, x):  # (B, C, H, W) in [0, 1] -> posterior mean, log-variance, each (B, c, H/4, W/4)
        mean, logvar = self.encoder(x * 2 - 1).float().chunk(2, dim=1)
        return mean, logvar.clamp(-30, 20)                               # as LDM's DiagonalGaussianDistribution

    def decode(self, z):  # (B, c, H/4, W/4) -> image in [0, 1], (B, C, H, W)
        return torch.sigmoid(self.decoder(z).float())

    def losses(self, x, recon_loss: str, kl_weight: float) -> dict[str, torch.Tensor]:
        mean, logvar = self.encode(x)
        z = mean + (0.5 * logvar).exp() * torch.randn_like(mean)          # reparameterised sample of q(z|x)
        logits = self.decoder(z).float()
        if recon_loss == "l1":
            rec = (torch.sigmoid(logits) - x).abs().flatten(1).sum(1)
        else:
            rec = F.binary_cross_entropy_with_logits(logits, x.float(), reduction="none").flatten(1).sum(1)
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).flatten(1).sum(1)   # (B,)
        pixels = x[0].numel()  # reported per pixel; the ratio of the two terms is LDM's
        return {"loss": (rec + kl_weight * kl).mean() / pixels, "recon": rec.mean() / pixels, "kl": kl.mean()}


class LatentDiffusion(GenerativeModel):
    """Latent diffusion with optional classifier-free guidance.

    Args: cfg (LatentDiffusionConfig or GuidedLatentDiffusionConfig), shape (C, H, W) with H, W divisible by 4.
    """

    family = "diffusion"
    samplers = ("ddpm", "ddim")
    two_stage = True
    likelihood = "none"
    likelihood_note = "none: the decoder is deterministic, so there is no density on pixels"

    def __init__(self, cfg: LatentDiffusionConfig, shape):
        super().__init__(cfg, shape)
        c, h, w = shape
        if h % 4 or w % 4:
            raise ValueError(f"latent diffusion needs H and W divisible by 4, got {shape}")
        self.latent_shape = (cfg.latent_channels, h // 4, w // 4)
        self.ae = Autoencoder(c, cfg.ae_width, cfg.latent_channels)
        self.unet = UNet(cfg.latent_channels, cfg.width, tuple(cfg.mults), cfg.res_blocks, tuple(cfg.attn_levels),
                         cfg.dropout, num_classes=cfg.num_classes)
        self.schedule = NoiseSchedule(make_betas(cfg.schedule, cfg.timesteps, cfg.beta_start, cfg.beta_end))
        self.ema = EMA(self.unet, cfg.ema_decay) if cfg.ema_decay > 0 else None
        # counters read by every step: Python values mirrored in buffers (see base.register_mirrored)
        register_mirrored(self, "steps_done", 0)
        register_mirrored(self, "total_steps", 0)  # 0 = not told: stage 1 throughout
        self.register_buffer("scale_factor", torch.ones(()))
        register_mirrored(self, "scaled", False)   # scale_factor measured yet?

    # ---- the two stages ---------------------------------------------------------------
    @property
    def ae_steps(self) -> int:
        return round(self.cfg.ae_fraction * mirrored(self, "total_steps"))

    @property
    def phase(self) -> int:
        """1 while the autoencoder trains, 2 once the denoiser does."""
        if mirrored(self, "total_steps") == 0 or mirrored(self, "steps_done") < self.ae_steps:
            return 1
        return 2

    @torch.no_grad()
    def set_scale_factor(self, x):
        """s = 1 / std of posterior samples z of the batch x (LDM's `scale_by_std`)."""
        mean, logvar = self.ae.encode(x)
        z = mean + (0.5 * logvar).exp() * torch.randn_like(mean)
        self.scale_factor.fill_(1 / z.float().std())
        set_mirrored(self, "scaled", True)

    @torch.no_grad()
    def latent(self, x):  # (B, C, H, W) in [0, 1] -> scaled sample s z of q(z|x), (B, c, H/4, W/4)
        mean, logvar = self.ae.encode(x)
        return (mean + (0.5 * logvar).exp() * torch.randn_like(mean)) * self.scale_factor

    def to_image(self, z):  # scaled latent (B, c, h, w) -> image in [0, 1], (B, C, H, W)
        return self.ae.decode(z / self.scale_factor)

    def drop_labels(self, y, generator=None):
        """Each label replaced by the null label (index num_classes) with probability cond_drop, (B,)."""
        drop = torch.rand(y.shape, generator=generator, device=y.device) < self.cfg.cond_drop
        return torch.where(drop, torch.full_like(y, self.cfg.num_classes), y)

    def p_losses(self, z0, t, noise, y=None):
        z_t = self.schedule.add_noise(z0, noise, t)
        return F.mse_loss(self.unet(z_t, t, y).float(), noise)

    def loss(self, x, y=None):
        """The active stage's loss under "loss"; every other key always present (0 when inactive)."""
        zero = torch.zeros((), device=x.device)
        out = {"ae_loss": zero, "recon": zero, "kl": zero, "diffusion_loss": zero}
        if self.phase == 1:
            ae = self.ae.losses(x, self.cfg.recon_loss, self.cfg.kl_weight)
            out.update(ae_loss=ae["loss"], recon=ae["recon"], kl=ae["kl"], loss=ae["loss"])
        else:
            z0 = self.latent(x)                                                  # (B, c, h, w), frozen encoder
            if not self.cfg.num_classes:
                y = None
            elif y is None:  # no labels: only the unconditional (null-label) model learns
                y = torch.full((len(x),), self.cfg.num_classes, device=x.device, dtype=torch.long)
            else:
                y = self.drop_labels(y)
            t = torch.randint(0, self.cfg.timesteps, (len(x),), device=x.device)
            out["loss"] = out["diffusion_loss"] = self.p_losses(z0, t, torch.randn_like(z0), y)
        out["phase"] = torch.full((), float(self.phase), device=x.device)
        return out

    def configure_optimizers(self):
        return {"ae": torch.optim.Adam(self.ae.parameters(), lr=self.cfg.ae_lr),
                "diffusion": torch.optim.Adam(self.unet.parameters(), lr=self.cfg.lr)}

    def lr_schedulers(self, optimizers, total_steps):
        """Records total_steps (it decides the stage switch); the denoiser's schedule starts at the switch.
        The denoiser's comes first, so that the trainer's logged "lr" is the denoiser's."""
        set_mirrored(self, "total_steps", total_steps)
        n_ae = self.ae_steps
        ae = warmup_cosine(optimizers["ae"], max(1, n_ae // 20), max(1, n_ae))
        diffusion = warmup_cosine(optimizers["diffusion"], self.cfg.warmup_steps, max(1, total_steps - n_ae))
        # The denoiser's optimiser first steps in stage 2, on purpose: tell the scheduler's check so.
        optimizers["diffusion"]._opt_called = True
        return [_delayed(diffusion, n_ae), ae]

    def train_step(self, x, y, optimizers, amp=nullcontext):
        phase = self.phase
        if phase == 2 and not mirrored(self, "scaled"):
            self.set_scale_factor(x)
        net, opt = (self.ae, optimizers["ae"]) if phase == 1 else (self.unet, optimizers["diffusion"])
        with amp():
            losses = self.loss(x, y)
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        if phase == 2 and self.cfg.grad_clip:
            nn.utils.clip_grad_norm_(net.parameters(), self.cfg.grad_clip)
        opt.step()
        if phase == 2 and self.ema is not None:
            self.ema.update(self.unet)
        set_mirrored(self, "steps_done", mirrored(self, "steps_done") + 1)
        return {k: v.detach().float() for k, v in losses.items()}

    # ---- sampling ---------------------------------------------------------------------
    def sampling_network(self):
        return nn.ModuleList([self.ema.net if self.ema is not None else self.unet, self.ae.decoder])

    def make_scheduler(self, sampler: str | None = None, steps: int | None = None):
        """As DDPM's (None = cfg.sample_steps for cfg.sampler, T for the other one), without clipping z_0."""
        return make_scheduler(self.schedule, self.cfg, sampler, steps, clip_sample=False)

    @property
    def num_classes(self) -> int:
        return int(self.cfg.num_classes)

    def _weight(self, guidance) -> float:
        return 0.0 if not self.cfg.num_classes else float(self.cfg.guidance if guidance is None else guidance)

    def network_evaluations(self, sampler: str | None = None, steps: int | None = None,
                            guidance: float | None = None) -> int:
        """Denoiser evaluations per sample: 2 per step when guided (w != 0), else 1. The single
        decoder pass at the end is not counted."""
        per_step = 2 if self._weight(guidance) != 0 else 1
        return per_step * len(self.make_scheduler(sampler, steps).timesteps)

    @property
    def nfe(self) -> int:
        return self.network_evaluations()

    def guided_eps(self, net, z, t: int, y, w: float):
        """eps~ = (1 + w) eps(z_t, y) - w eps(z_t, null) from one batched call; eps(z_t, y) when w = 0."""
        tt = timestep_batch(t, len(z), z.device)
        if y is None or w == 0:
            return net(z, tt, y).float()
        null = torch.full_like(y, self.cfg.num_classes)
        eps_y, eps_null = net(torch.cat([z, z]), torch.cat([tt, tt]), torch.cat([y, null])).float().chunk(2)
        return (1 + w) * eps_y - w * eps_null

    @torch.no_grad()
    def sample(self, n, generator=None, sampler=None, steps=None, labels=None, guidance=None, chain_at=()):
        """n images in [0, 1], (n, C, H, W), decoded from latents drawn by the reverse process.

        labels: (n,) classes for a conditional model (default: balanced, arange(n) % num_classes).
        guidance: the weight w (default cfg.guidance). With `chain_at` (timesteps), also returns
        {t: (decoded z_t, decoded predicted z_0)} for a denoising-chain figure.
        """
        net = self.ema.net if self.ema is not None else self.unet
        sched = self.make_scheduler(sampler, steps)
        device = self.scale_factor.device
        y = None
        if self.cfg.num_classes:
            y = torch.arange(n, device=device) % self.cfg.num_classes if labels is None else \
                torch.as_tensor(labels, device=device).long().expand(n)
        elif labels is not None:
            raise ValueError("labels given to an unconditional latent diffusion model: set num_classes > 0")
        w = self._weight(guidance)
        z = torch.randn(n, *self.latent_shape, generator=generator, device=device)   # z_T, (n, c, h, w)
        z, chain = reverse_process(lambda z_t, t: (self.guided_eps(net, z_t, t, y, w), None), sched, z, generator,
                                   chain_at)
        out = self.to_image(z)
        if not chain_at:
            return out
        # the noisy latent and the network's guess of z_0, both decoded
        return out, {t: (self.to_image(z_t), self.to_image(z0)) for t, (z_t, z0) in chain.items()}


def _delayed(sched: torch.optim.lr_scheduler.LambdaLR, start: int) -> torch.optim.lr_scheduler.LambdaLR:
    """The same schedule begun `start` steps late (before then the optimiser does not step)."""
    factor = sched.lr_lambdas[0]
    sched.lr_lambdas = [lambda step: factor(max(0, step - start))]
    return sched
