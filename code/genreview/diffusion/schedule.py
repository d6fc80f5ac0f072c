"""Noise schedules of the forward process q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I).

`NoiseSchedule` holds beta_t and its products and knows the closed forms that
training and every sampler share (Ho et al. 2020, eqs. 4, 6, 7, 15).
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


class NoiseSchedule:
    """beta_t, alpha_t = 1 - beta_t and abar_t = prod_s alpha_s for t = 0..T-1 (0-indexed)."""

    def __init__(self, betas: torch.Tensor):
        self.betas = betas.double()
        self.alphas = 1 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, 0)
        self.num_timesteps = len(betas)

    def abar(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """abar_t gathered per batch element and shaped to broadcast against `like`, (B, 1, 1, 1)."""
        a = self.alphas_cumprod.to(like.device)[t].to(like.dtype)
        return a.view(-1, *([1] * (like.dim() - 1)))

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """q_sample: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps."""
        a = self.abar(t, x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def predict_start_from_noise(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        a = self.abar(t, x_t)
        return (x_t - (1 - a).sqrt() * eps) / a.sqrt()
