"""The reverse process, written once: every diffusion model (`ddpm`, `iddpm`, `ldm`, `guided_ldm`, both
stages of `cascade`) samples through `reverse_process`, with its own denoiser and one of the schedulers
of this package (`scheduling_ddpm`, `scheduling_ddim`).

The loop is diffusers' pipeline loop written out: for each timestep of the scheduler, the network
predicts the noise (and, for a learned variance, its interpolation v), and the scheduler's `step`
turns x_t into x_{t-1} and its estimate of x_0 (Ho et al. 2020, Algorithm 2; Song et al. 2021, eq. 12).
"""
from __future__ import annotations

from typing import Callable

import torch

# (x_t (n, ...), t) -> (eps (n, ...), v (n, ...) or None): the model's prediction at one timestep.
Denoiser = Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor | None]]


def timestep_batch(t, n: int, device) -> torch.Tensor:
    """The timestep t repeated for a batch of n, (n,) long: what the UNets take."""
    return torch.full((n,), int(t), device=device, dtype=torch.long)


@torch.no_grad()
def reverse_process(denoise: Denoiser, scheduler, x: torch.Tensor, generator: torch.Generator | None = None,
                    chain_at=()) -> tuple[torch.Tensor, dict[int, tuple[torch.Tensor, torch.Tensor]]]:
    """Run `scheduler`'s timesteps from x = x_T, (n, ...); returns (x_0, chain).

    chain: {t: (x_t, predicted x_0)} for the timesteps t in `chain_at` (for a denoising-chain figure),
    both in the model's space (pixels or latents in roughly [-1, 1]); empty when chain_at is empty."""
    chain = {}
    for t in scheduler.timesteps:
        eps, v = denoise(x, t)
        x_prev, x0 = scheduler.step(eps, t, x, generator, model_var_values=v)  # DDIM ignores v
        if int(t) in chain_at:
            chain[int(t)] = (x, x0)
        x = x_prev
    return x, chain
