"""One likelihood protocol for every family: bits per dimension of 8-bit images.

Every model's `log_prob(x)` returns log P(k) in nats per image, where k in {0..255}^D are
the 8-bit pixel values and x = k / 255 is how the loaders hand them over:

- discrete models (PixelCNN) give log P(k) exactly;
- models with a continuous density p on [0, 1]^D are scored on uniformly dequantised data
  y = (k + u) / 256, u ~ U[0, 1)^D, and report log p(y) - D log 256. Its expectation over u is
  a lower bound on log P(k) (Theis et al. 2016, Sec. 3.1), so bits/dim is an upper bound;
- latent-variable models (VAE, DDPM) report their variational bound on the same quantity.

bits/dim = -log P(k) / (D ln 2). A model that is uniform on [0, 1]^D scores 8 bits/dim.
"""
from __future__ import annotations

import math

import torch

LEVELS = 256
LOG_LEVELS = math.log(LEVELS)


def to_levels(x: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] (k / 255) -> integer pixel levels k in {0..255}, long."""
    return torch.round(x.float() * (LEVELS - 1)).clamp(0, LEVELS - 1).long()


def dequantize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Images in [0, 1] (k / 255) -> y = (k + u) / 256 in [0, 1), u ~ U[0, 1)^D."""
    u = torch.rand(x.shape, generator=generator, device=x.device)
    return (to_levels(x).float() + u) / LEVELS


def discrete_log_prob(log_density: torch.Tensor, dims: int) -> torch.Tensor:
    """log p(y) of a density on [0, 1]^D at dequantised y -> the bound on log P(k): log p(y) - D log 256."""
    return log_density - dims * LOG_LEVELS


def bits_per_dim(log_prob_nats: torch.Tensor | float, dims: int):
    """nats per image (log P(k)) -> bits per dimension."""
    return -log_prob_nats / (dims * math.log(2))
