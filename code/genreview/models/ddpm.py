"""Denoising diffusion probabilistic model (Ho et al. 2020).

The algorithm wraps the network: `DDPM(cfg)` owns a UNet eps_theta(x_t, t), a noise
schedule, and samplers built on demand. Training draws t uniformly and regresses the
added noise (the "simple" loss, eq. 14); sampling runs a scheduler from pure noise,
either DDPM's ancestral chain or DDIM's (Song et al. 2021) with fewer steps.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..diffusion.schedule import NoiseSchedule, make_betas
from ..diffusion.scheduling_ddim import DDIMScheduler
from ..diffusion.scheduling_ddpm import DDPMScheduler
from ..diffusion.unet import UNet
from .base import EMA, GenerativeModel, warmup_cosine


@dataclass
class DDPMConfig:
    timesteps: int = 1000
    schedule: str = "linear"          # linear | cosine
    beta_start: float = 1e-4
    beta_end: float = 0.02
    width: int = 32                   # UNet channels at full resolution
    mults: list = field(default_factory=lambda: [1, 2, 2])
    res_blocks: int = 1
    attn_levels: list = field(default_factory=lambda: [2])
    dropout: float = 0.0
    patch: int = 1                    # > 1: space-to-depth stem (cheaper full-resolution layers)
    lr: float = 1e-3
    warmup_steps: int = 100
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    sampler: str = "ddim"             # ddim | ddpm: the sampler used for evaluation
    sample_steps: int = 50            # its number of network evaluations
    ddim_eta: float = 0.0
    spacing: str = "trailing"         # leading | trailing timesteps for DDIM

    def __post_init__(self):
        if self.sample_steps > self.timesteps:
            raise ValueError(f"sample_steps ({self.sample_steps}) cannot exceed timesteps ({self.timesteps})")


class DDPM(GenerativeModel):
    """DDPM with an epsilon-predicting UNet. Args: cfg (DDPMConfig), shape (C, H, W)."""

    likelihood = "none"  # the variational bound with a discretised decoder is not computed yet

    def __init__(self, cfg: DDPMConfig, shape):
        super().__init__(cfg, shape)
        self.unet = UNet(shape[0], cfg.width, tuple(cfg.mults), cfg.res_blocks, tuple(cfg.attn_levels), cfg.dropout,
                         patch=cfg.patch)
        self.schedule = NoiseSchedule(make_betas(cfg.schedule, cfg.timesteps, cfg.beta_start, cfg.beta_end))
        self.ema = EMA(self.unet, cfg.ema_decay) if cfg.ema_decay > 0 else None

    # ---- training ---------------------------------------------------------------------
    def p_losses(self, x0, t, noise):
        x_t = self.schedule.add_noise(x0, noise, t)
        return F.mse_loss(self.unet(x_t, t).float(), noise)

    def loss(self, x, y=None):
        x0 = x * 2 - 1                                                            # (B, C, H, W) in [-1, 1]
        t = torch.randint(0, self.cfg.timesteps, (len(x),), device=x.device)
        return {"loss": self.p_losses(x0, t, torch.randn_like(x0))}

    def configure_optimizers(self):
        return {"main": torch.optim.Adam(self.unet.parameters(), lr=self.cfg.lr)}

    def lr_schedulers(self, optimizers, total_steps):
        return [warmup_cosine(optimizers["main"], self.cfg.warmup_steps, total_steps)]

    def train_step(self, x, y, optimizers, amp=nullcontext):
        out = super().train_step(x, y, optimizers, amp)
        if self.ema is not None:
            self.ema.update(self.unet)
        return out

    # ---- sampling ---------------------------------------------------------------------
    def sampling_network(self):
        return self.ema.net if self.ema is not None else self.unet

    def make_scheduler(self, sampler: str | None = None, steps: int | None = None):
        sampler = sampler or self.cfg.sampler
        if sampler == "ddpm":
            sched = DDPMScheduler(self.schedule)
        elif sampler == "ddim":
            sched = DDIMScheduler(self.schedule, eta=self.cfg.ddim_eta, spacing=self.cfg.spacing)
        else:
            raise ValueError(f"unknown sampler {sampler!r}: use ddpm or ddim")
        sched.set_timesteps(steps or (self.cfg.sample_steps if sampler == self.cfg.sampler else self.cfg.timesteps))
        return sched

    @property
    def nfe(self) -> int:
        return self.make_scheduler().num_inference_steps

    @torch.no_grad()
    def sample(self, n, generator=None, sampler=None, steps=None, chain_at=()):
        """Run the reverse process from x_T ~ N(0, I).

        With `chain_at` (timesteps), also returns {t: (x_t, predicted x_0)} for a denoising-chain figure.
        """
        net = self.sampling_network()
        sched = self.make_scheduler(sampler, steps)
        device = next(net.parameters()).device
        x = torch.randn(n, *self.shape, generator=generator, device=device)      # x_T, (n, C, H, W)
        chain = {}
        for t in sched.timesteps:
            eps = net(x, torch.full((n,), int(t), device=device, dtype=torch.long)).float()
            x_prev, x0 = sched.step(eps, t, x, generator)
            if int(t) in chain_at:  # the noisy input x_t and the network's guess of x_0 from it
                chain[int(t)] = ((x.clamp(-1, 1) + 1) / 2, (x0 + 1) / 2)
            x = x_prev
        out = ((x + 1) / 2).clamp(0, 1)
        return (out, chain) if chain_at else out
