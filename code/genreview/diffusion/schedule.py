"""Noise schedules of the forward process q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I).

`NoiseSchedule` holds beta_t and its products and knows the closed forms that
training and every sampler share (Ho et al. 2020, eqs. 4, 6, 7, 15): the forward
process, x_0 from a noise prediction, and the posterior q(x_{t-1} | x_t, x_0).
`interpolate_log_variance` is the learned reverse variance of Nichol and Dhariwal
(2021, eq. 15), shared by training and the ancestral sampler.
"""
from __future__ import annotations

import math

import torch


def make_betas(kind: str, timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """beta_1..beta_T in float64: "linear" (Ho et al. 2020) or "cosine" (Nichol and Dhariwal 2021)."""
    if kind == "linear":
        return torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float64)
    if kind == "cosine":
        s = 0.008
        steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
        abar = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        return (1 - abar[1:] / abar[:-1]).clamp(max=0.999)
    raise ValueError(f"unknown noise schedule {kind!r}: use linear or cosine")


def interpolate_log_variance(v, log_beta, log_beta_tilde):
    """log Sigma_theta = frac log beta_t + (1 - frac) log beta~_t with frac = (v + 1) / 2 (Nichol and Dhariwal
    2021, eq. 15; improved-diffusion's "learned_range"). v is the network's raw output, meant to lie in
    [-1, 1] and, as in improved-diffusion and diffusers, not clamped. Works on tensors and floats alike."""
    frac = (v + 1) / 2
    return frac * log_beta + (1 - frac) * log_beta_tilde


class NoiseSchedule:
    """beta_t, alpha_t = 1 - beta_t and abar_t = prod_s alpha_s for t = 0..T-1 (0-indexed, abar_{-1} = 1),
    and the posterior q(x_{t-1} | x_t, x_0) = N(coef1_t x_0 + coef2_t x_t, beta~_t I) (Ho et al. 2020, eqs. 6-7)."""

    def __init__(self, betas: torch.Tensor):
        self.betas = betas.double()
        self.alphas = 1 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, 0)
        self.num_timesteps = len(betas)
        a = self.alphas_cumprod
        a_prev = torch.cat([a.new_ones(1), a[:-1]])
        self.posterior_mean_coef1 = a_prev.sqrt() * self.betas / (1 - a)
        self.posterior_mean_coef2 = self.alphas.sqrt() * (1 - a_prev) / (1 - a)
        self.posterior_variance = (1 - a_prev) / (1 - a) * self.betas         # beta~_t; beta~_0 = 0
        # log beta~_t with beta~_0 replaced by beta~_1, so that it is finite (as in improved-diffusion)
        self.posterior_log_variance_clipped = torch.cat([self.posterior_variance[1:2], self.posterior_variance[1:]]
                                                        ).log() if len(betas) > 1 else self.betas.log()
        self.log_betas = self.betas.log()
        # These stay on the CPU (the samplers read host scalars from them); `gather` keeps one copy of each
        # on every device it is asked for, so a training step copies nothing from the host (on CUDA, a copy
        # from pageable host memory makes the host wait for the GPU).
        self._on_device: dict = {}

    def on_device(self, values: torch.Tensor, device: torch.device) -> torch.Tensor:
        """`values` (one of this schedule's float64 tensors, or another CPU tensor the model keeps) on
        `device`, copied once per device."""
        if values.device == device:
            return values
        key = (id(values), str(device))
        kept = self._on_device.get(key)
        if kept is None or kept[0] is not values:
            kept = self._on_device[key] = (values, values.to(device))
        return kept[1]

    def gather(self, values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """values[t] per batch element, in like's dtype, shaped to broadcast against `like`, (B, 1, 1, 1)."""
        v = self.on_device(values, like.device)[t].to(like.dtype)
        return v.view(-1, *([1] * (like.dim() - 1)))

    def abar(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """abar_t gathered per batch element and shaped to broadcast against `like`, (B, 1, 1, 1)."""
        return self.gather(self.alphas_cumprod, t, like)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """q_sample: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps."""
        a = self.abar(t, x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def predict_start_from_noise(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        a = self.abar(t, x_t)
        return (x_t - (1 - a).sqrt() * eps) / a.sqrt()

    def q_posterior(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor):
        """q(x_{t-1} | x_t, x_0): its mean, (B, C, H, W), variance beta~_t and clipped log variance, (B, 1, 1, 1)."""
        coef1, coef2 = self.gather(self.posterior_mean_coef1, t, x_t), self.gather(self.posterior_mean_coef2, t, x_t)
        mean = coef1 * x0 + coef2 * x_t
        return (mean, self.gather(self.posterior_variance, t, x_t),
                self.gather(self.posterior_log_variance_clipped, t, x_t))

    def p_log_variance(self, v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The learned log variance of p(x_{t-1} | x_t) from the network's v, (B, C, H, W), at timesteps t (B,)."""
        return interpolate_log_variance(v, self.gather(self.log_betas, t, v),
                                        self.gather(self.posterior_log_variance_clipped, t, v))
