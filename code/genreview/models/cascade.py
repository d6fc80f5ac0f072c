"""Cascaded diffusion (Ho et al. 2022, "Cascaded Diffusion Models for High Fidelity Image
Generation"; the structure of Imagen, Saharia et al. 2022).

Two diffusion models in a chain. The base model learns the images average-pooled by 2
(14 x 14 for Fashion-MNIST) with an epsilon-predicting UNet, as in `ddpm.py`. The
super-resolution (SR) model learns the full-resolution image given the low-resolution one:
its UNet sees x_t concatenated, as a second input channel, with the low-resolution image
upsampled bilinearly to full size, and predicts the noise in x_t.

Noise-conditioning augmentation (Ho et al. 2022, sec. 4.2) is what lets the SR model cope
with the base model's imperfect outputs: in training the low-resolution image z is corrupted
by the same forward process, z_s = sqrt(abar_s) z + sqrt(1 - abar_s) eps, at a level s drawn
uniformly from {0, 1, ..., S}, S = round(aug_max T), where s = 0 is the clean image and s >= 1
the forward process's timestep s - 1. The SR UNet is told s, quantised into `aug_levels`
equal buckets, through its class embedding. In sampling the base model's output is corrupted
at the fixed level round(aug_sample T). The corruption happens at low resolution, before
upsampling, so that it has the scale of the base model's own errors.

Both stages share one noise schedule and one sampler (DDPM's ancestral chain or DDIM) with
the same number of steps, so a sample costs twice the steps in network evaluations (of two
different networks). Both networks train together, with one optimiser on the sum of their
losses over the same batch. No likelihood is computed for the cascade in this review.
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
from .base import EMA, GenerativeModel, warmup_cosine


@dataclass
class CascadeConfig:
    timesteps: int = hp(1000, minimum=2, maximum=10**5)  # shared by both stages
    schedule: str = hp("linear", enum=["linear", "cosine"])  # linear | cosine
    beta_start: float = hp(1e-4, exclusive_minimum=0)
    beta_end: float = hp(0.02, exclusive_minimum=0, maximum=1)
    # the super-resolution UNet (full resolution; input x_t and the upsampled condition). Its task is
    # local, so it is narrower and shallower than the base UNet, which draws the global layout.
    width: int = hp(24, minimum=4, doc="super-resolution U-Net channels")
    mults: list[int] = hp([1, 2], min_items=1, items={"minimum": 1})
    attn_levels: list[int] = hp([], items={"minimum": 0})
    patch: int = hp(2, minimum=1)  # space-to-depth stem of the SR network
    # the base UNet (half resolution: 14, 7 and 4 pixels a side at its three levels for Fashion-MNIST)
    base_width: int = hp(32, minimum=4, doc="base (14x14) U-Net channels")
    base_mults: list[int] = hp([1, 2, 2], min_items=1, items={"minimum": 1})
    base_attn_levels: list[int] = hp([2], items={"minimum": 0})
    res_blocks: int = hp(1, minimum=1)  # both networks
    dropout: float = hp(0.0, minimum=0, maximum=1)  # both networks
    # noise-conditioning augmentation, as fractions of the timesteps
    aug_max: float = hp(0.2, minimum=0, maximum=1, doc="training: level s ~ U{0..round(aug_max T)}")
    aug_levels: int = hp(10, minimum=1)  # buckets of s, the SR network's class labels
    aug_sample: float = hp(0.03, minimum=0, maximum=1,
                           doc="sampling: the fixed level applied to the base model's output")
    lr: float = hp(1e-3, exclusive_minimum=0)
    warmup_steps: int = hp(100, minimum=0)
    grad_clip: float = hp(1.0, minimum=0)
    ema_decay: float = hp(0.999, minimum=0, maximum=1)
    sampler: str = hp("ddim", enum=["ddim", "ddpm"])  # ddim | ddpm: the sampler used for evaluation (both stages)
    sample_steps: int = hp(50, minimum=1, maximum=10**5)  # its steps per stage
    ddim_eta: float = hp(0.0, minimum=0)
    spacing: str = hp("trailing", enum=["leading", "trailing"])  # leading | trailing timesteps for DDIM

    def __post_init__(self):
        if self.sample_steps > self.timesteps:
            raise ValueError(f"sample_steps ({self.sample_steps}) cannot exceed timesteps ({self.timesteps})")
        if not 0 <= self.aug_sample <= self.aug_max <= 1:
            raise ValueError(f"need 0 <= aug_sample ({self.aug_sample}) <= aug_max ({self.aug_max}) <= 1: the SR "
                             "network only learns conditioning noise levels up to aug_max")
        if self.aug_levels < 1:
            raise ValueError(f"aug_levels ({self.aug_levels}) must be at least 1")


class CascadedDiffusion(GenerativeModel):
    """A base DDPM at half resolution and a super-resolution DDPM conditioned on its output.

    Args: cfg (CascadeConfig), shape (C, H, W) of the full-resolution images (H, W even).
    """

    family = "diffusion"
    samplers = ("ddpm", "ddim")
    likelihood = "none"
    likelihood_note = "not computed for the cascade"

    def __init__(self, cfg: CascadeConfig, shape):
        super().__init__(cfg, shape)
        c, h, w = self.shape
        if h % 2 or w % 2:
            raise ValueError(f"the cascade halves the resolution: image size {h}x{w} must be even")
        self.low_shape = (c, h // 2, w // 2)
        self.base = UNet(c, cfg.base_width, tuple(cfg.base_mults), cfg.res_blocks, tuple(cfg.base_attn_levels),
                         cfg.dropout)
        self.sr = UNet(2 * c, cfg.width, tuple(cfg.mults), cfg.res_blocks, tuple(cfg.attn_levels), cfg.dropout,
                       num_classes=cfg.aug_levels, patch=cfg.patch, out_channels=c)
        self.schedule = NoiseSchedule(make_betas(cfg.schedule, cfg.timesteps, cfg.beta_start, cfg.beta_end))
        # abar for the augmentation levels s = 0..T: 1 (clean) for s = 0, then abar_{s-1}
        self.aug_abar = torch.cat([torch.ones(1, dtype=torch.float64), self.schedule.alphas_cumprod])
        self.aug_max_level = round(cfg.aug_max * cfg.timesteps)
        self.base_ema = EMA(self.base, cfg.ema_decay) if cfg.ema_decay > 0 else None
        self.sr_ema = EMA(self.sr, cfg.ema_decay) if cfg.ema_decay > 0 else None

    # ---- the conditioning path ----------------------------------------------------------
    def downsample(self, x: torch.Tensor) -> torch.Tensor:
        """The base model's images: 2 x 2 average pooling, (B, C, H, W) -> (B, C, H/2, W/2)."""
        return F.avg_pool2d(x, 2)

    def aug_bucket(self, s: torch.Tensor) -> torch.Tensor:
        """Augmentation level s in 0..S -> its bucket in 0..aug_levels-1, the SR network's label."""
        return s * self.cfg.aug_levels // (self.aug_max_level + 1)

    def condition(self, z: torch.Tensor, s: torch.Tensor, noise: torch.Tensor):
        """Corrupt the low-resolution image z in [-1, 1], (B, C, h, w), at levels s (B,) and upsample it
        bilinearly to full resolution; returns (condition (B, C, H, W), bucket labels (B,))."""
        a = self.schedule.gather(self.aug_abar, s, z)                            # (B, 1, 1, 1)
        z_s = a.sqrt() * z + (1 - a).sqrt() * noise                             # (B, C, h, w)
        up = F.interpolate(z_s, size=self.shape[1:], mode="bilinear", align_corners=False)
        return up, self.aug_bucket(s)

    # ---- training ---------------------------------------------------------------------
    def base_p_losses(self, z0, t, noise):  # z0: (B, C, h, w) in [-1, 1]
        z_t = self.schedule.add_noise(z0, noise, t)
        return F.mse_loss(self.base(z_t, t).float(), noise)

    def sr_p_losses(self, x0, cond, label, t, noise):  # x0, cond: (B, C, H, W) in [-1, 1]
        x_t = self.schedule.add_noise(x0, noise, t)
        return F.mse_loss(self.sr(torch.cat([x_t, cond], 1), t, label).float(), noise)

    def loss(self, x, y=None):
        x0 = x * 2 - 1                                                            # (B, C, H, W) in [-1, 1]
        z0 = self.downsample(x0)                                                  # (B, C, h, w)
        b, T = len(x), self.cfg.timesteps
        t_base = torch.randint(0, T, (b,), device=x.device)
        t_sr = torch.randint(0, T, (b,), device=x.device)
        s = torch.randint(0, self.aug_max_level + 1, (b,), device=x.device)
        cond, label = self.condition(z0, s, torch.randn_like(z0))
        base_loss = self.base_p_losses(z0, t_base, torch.randn_like(z0))
        sr_loss = self.sr_p_losses(x0, cond, label, t_sr, torch.randn_like(x0))
        return {"loss": base_loss + sr_loss, "base_loss": base_loss, "sr_loss": sr_loss}

    def configure_optimizers(self):
        params = list(self.base.parameters()) + list(self.sr.parameters())
        return {"main": torch.optim.Adam(params, lr=self.cfg.lr)}

    def lr_schedulers(self, optimizers, total_steps):
        return [warmup_cosine(optimizers["main"], self.cfg.warmup_steps, total_steps)]

    def train_step(self, x, y, optimizers, amp=nullcontext):
        out = super().train_step(x, y, optimizers, amp)  # clips the joint gradient norm of both networks
        if self.base_ema is not None:
            self.base_ema.update(self.base)
            self.sr_ema.update(self.sr)
        return out

    # ---- sampling ---------------------------------------------------------------------
    def sampling_network(self) -> nn.ModuleList:
        """[base, SR], their EMA copies when EMA is on."""
        if self.base_ema is not None:
            return nn.ModuleList([self.base_ema.net, self.sr_ema.net])
        return nn.ModuleList([self.base, self.sr])

    def make_scheduler(self, sampler: str | None = None, steps: int | None = None):
        """The scheduler of one stage (both stages use the same one)."""
        return make_scheduler(self.schedule, self.cfg, sampler, steps)

    def network_evaluations(self, sampler: str | None = None, steps: int | None = None) -> int:
        """Network evaluations per sample, both stages together."""
        return 2 * self.make_scheduler(sampler, steps).num_inference_steps

    @property
    def nfe(self) -> int:
        return self.network_evaluations()

    def _reverse(self, net, sched, x, generator, cond=None, label=None, chain_at=()):
        """One stage's reverse process from x_T = x, (n, C, H, W); returns (x_0, {t: (x_t, predicted x_0)})."""
        n = len(x)

        def denoise(x_t, t):
            inp = x_t if cond is None else torch.cat([x_t, cond], 1)             # (n, C or 2C, H, W)
            return net(inp, timestep_batch(t, n, x_t.device), label).float(), None

        x, chain = reverse_process(denoise, sched, x, generator, chain_at)
        return x, {t: ((x_t.clamp(-1, 1) + 1) / 2, (x0 + 1) / 2) for t, (x_t, x0) in chain.items()}

    @torch.no_grad()
    def base_sample(self, n, generator=None, sampler=None, steps=None) -> torch.Tensor:
        """Stage 1 alone: n half-resolution samples in [0, 1], (n, C, H/2, W/2)."""
        base = self.sampling_network()[0]
        device = next(base.parameters()).device
        z = torch.randn(n, *self.low_shape, generator=generator, device=device)  # z_T, (n, C, h, w)
        z, _ = self._reverse(base, self.make_scheduler(sampler, steps), z, generator)
        return ((z + 1) / 2).clamp(0, 1)

    @torch.no_grad()
    def super_resolve(self, low, generator=None, sampler=None, steps=None, chain_at=()):
        """Stage 2 alone: full-resolution samples in [0, 1], (n, C, H, W), given low-resolution images in
        [0, 1], (n, C, H/2, W/2), augmented at the fixed level aug_sample. With `chain_at`, also returns
        the SR stage's {t: (x_t, predicted x_0)} in [0, 1]."""
        sr = self.sampling_network()[1]
        n, device = len(low), low.device
        s = torch.full((n,), round(self.cfg.aug_sample * self.cfg.timesteps), device=device, dtype=torch.long)
        aug_noise = torch.randn(low.shape, generator=generator, device=device)
        cond, label = self.condition(low.float() * 2 - 1, s, aug_noise)          # (n, C, H, W), (n,)
        x = torch.randn(n, *self.shape, generator=generator, device=device)      # x_T, (n, C, H, W)
        x, chain = self._reverse(sr, self.make_scheduler(sampler, steps), x, generator, cond, label, chain_at)
        out = ((x + 1) / 2).clamp(0, 1)
        return (out, chain) if chain_at else out

    @torch.no_grad()
    def sample(self, n, generator=None, sampler=None, steps=None, chain_at=()):
        """The cascade: base samples at half resolution, then super-resolved; (n, C, H, W) in [0, 1].

        With `chain_at` (timesteps), also returns the SR stage's {t: (x_t, predicted x_0)}.
        """
        low = self.base_sample(n, generator, sampler, steps)                     # (n, C, h, w)
        return self.super_resolve(low, generator, sampler, steps, chain_at)
