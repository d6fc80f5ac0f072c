"""Denoising diffusion probabilistic model (Ho et al. 2020).

The algorithm wraps the network: `DDPM(cfg)` owns a UNet eps_theta(x_t, t), a noise
schedule, and samplers built on demand. Training draws t uniformly and regresses the
added noise (the "simple" loss, eq. 14); sampling runs a scheduler from pure noise,
either DDPM's ancestral chain or DDIM's (Song et al. 2021) with fewer steps.

`log_prob` is the variational bound of Ho et al. (2020, eq. 5) on the 8-bit data: the prior
term L_T, the denoising KL terms L_{t-1} between q(x_{t-1} | x_t, x_0) and the model's Gaussian
with the posterior variance beta~_t, and a discretised Gaussian decoder L_0 for the 256 pixel
levels (Ho et al. 2020, eq. 13). With `vlb_timesteps` = m > 0 the sum over the T - 1 KL terms
is estimated from m timesteps drawn without replacement (unbiased, m network evaluations per
image instead of T).
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field

import math

import torch
import torch.nn.functional as F

from ..diffusion.schedule import NoiseSchedule, make_betas
from ..diffusion.scheduling_ddim import DDIMScheduler
from ..diffusion.scheduling_ddpm import DDPMScheduler
from ..diffusion.unet import UNet
from ..likelihood import to_levels
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

    likelihood = "bound"
    likelihood_note = "variational bound"

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

    # ---- the variational bound ------------------------------------------------------------
    def _posterior(self, x0, x_t, t):
        """Mean and variance of q(x_{t-1} | x_t, x_0) for t >= 1 (0-indexed), float64."""
        s = self.schedule
        a_t = s.alphas_cumprod.to(x_t.device)[t].view(-1, 1, 1, 1)
        a_prev = s.alphas_cumprod.to(x_t.device)[t - 1].view(-1, 1, 1, 1)
        beta = s.betas.to(x_t.device)[t].view(-1, 1, 1, 1)
        mean = (a_prev.sqrt() * beta / (1 - a_t)) * x0 + ((1 - beta).sqrt() * (1 - a_prev) / (1 - a_t)) * x_t
        return mean, (1 - a_prev) / (1 - a_t) * beta

    def _x0_from_eps(self, net, x_t, t):
        eps = net(x_t.float(), t).double()
        a = self.schedule.alphas_cumprod.to(x_t.device)[t].view(-1, 1, 1, 1)
        return (x_t - (1 - a).sqrt() * eps) / a.sqrt()

    def _kl_term(self, net, x0, t, generator):  # L_{t-1} for timesteps t >= 1, nats per image (B,)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        a = self.schedule.alphas_cumprod.to(x0.device)[t].view(-1, 1, 1, 1)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
        mean_q, var = self._posterior(x0, x_t, t)
        mean_p, _ = self._posterior(self._x0_from_eps(net, x_t, t), x_t, t)
        return ((mean_q - mean_p).pow(2) / (2 * var)).flatten(1).sum(1)  # equal variances: the KL is this

    def _decoder_term(self, net, x0, generator):  # L_0 = -log p(x_0 | x_1), discretised Gaussian
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        t = torch.zeros(len(x0), dtype=torch.long, device=x0.device)
        a = self.schedule.alphas_cumprod.to(x0.device)[0]
        x1 = a.sqrt() * x0 + (1 - a).sqrt() * noise
        mean = self._x0_from_eps(net, x1, t)
        return -discretized_gaussian_log_likelihood(x0, mean, 0.5 * math.log(float(self.schedule.betas[0])))

    def _prior_term(self, x0):  # L_T = KL(q(x_T | x_0) || N(0, I)), (B,)
        a = self.schedule.alphas_cumprod[-1].item()
        mean, var = math.sqrt(a) * x0, 1 - a
        return 0.5 * (mean.pow(2) + var - 1 - math.log(var)).flatten(1).sum(1)

    @torch.no_grad()
    def log_prob(self, x, generator=None, vlb_timesteps: int = 0, **options):
        """Negative of the variational bound on -log P(k), nats per image (B,)."""
        net = self.sampling_network()
        x0 = to_levels(x).double() / 127.5 - 1                                  # (B, C, H, W) on the 256-level grid
        T = self.cfg.timesteps
        ts = torch.arange(1, T, device=x.device)
        if 0 < vlb_timesteps < T - 1:
            ts_pick = torch.randperm(T - 1, generator=generator, device=generator.device if generator else "cpu")
            ts = ts[ts_pick[:vlb_timesteps].to(x.device)]
        kl = sum(self._kl_term(net, x0, torch.full((len(x),), int(t), device=x.device), generator) for t in ts)
        kl = kl * ((T - 1) / len(ts))
        return -(self._prior_term(x0) + kl + self._decoder_term(net, x0, generator)).float()

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


def discretized_gaussian_log_likelihood(x0: torch.Tensor, mean: torch.Tensor, log_scale: float) -> torch.Tensor:
    """log P(k) of 8-bit images under a Gaussian N(mean, exp(log_scale)^2) integrated over each pixel's
    bin of width 2/255 on [-1, 1], the edge bins extended to infinity (Ho et al. 2020, eq. 13); (B,)."""
    inv = math.exp(-log_scale)
    upper, lower = (x0 - mean + 1 / 255) * inv, (x0 - mean - 1 / 255) * inv
    log_cdf_upper = torch.special.log_ndtr(upper)                 # log P(z < upper)
    log_sf_lower = torch.special.log_ndtr(-lower)                 # log P(z > lower)
    # log(Phi(upper) - Phi(lower)) computed stably on whichever side of the mean the bin lies
    mid = torch.where(lower > 0,
                      log_sf_lower + torch.log1p(-torch.exp(torch.special.log_ndtr(-upper) - log_sf_lower)),
                      log_cdf_upper + torch.log1p(-torch.exp(torch.special.log_ndtr(lower) - log_cdf_upper)))
    logp = torch.where(x0 < -0.999, log_cdf_upper, torch.where(x0 > 0.999, log_sf_lower, mid))
    return logp.flatten(1).sum(1)
