"""Ancestral sampler of Ho et al. (2020): x_{t-1} ~ p(x_{t-1} | x_t) with the fixed
"small" variance beta~_t (the posterior variance of q(x_{t-1} | x_t, x_0)).

With fewer inference steps than training steps, consecutive kept timesteps t > t' are
treated as one step with alpha = abar_t / abar_t', as in diffusers' DDPMScheduler.
"""
from __future__ import annotations

import torch

from .schedule import NoiseSchedule


class DDPMScheduler:
    def __init__(self, schedule: NoiseSchedule, clip_sample: bool = True):
        self.schedule = schedule
        self.clip_sample = clip_sample
        self.set_timesteps(schedule.num_timesteps)

    def set_timesteps(self, num_inference_steps: int) -> None:
        T = self.schedule.num_timesteps
        self.num_inference_steps = num_inference_steps
        self.step_ratio = T // num_inference_steps
        self.timesteps = torch.arange(0, num_inference_steps).mul(self.step_ratio).flip(0)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.schedule.add_noise(x0, noise, t)

    def step(self, eps: torch.Tensor, t: int, x_t: torch.Tensor, generator: torch.Generator | None = None):
        """One reverse step from x_t; returns (x_{t'}, predicted x_0)."""
        abar = self.schedule.alphas_cumprod
        t = int(t)
        prev = t - self.step_ratio
        a_t = abar[t].item()
        a_prev = abar[prev].item() if prev >= 0 else 1.0
        alpha = a_t / a_prev
        beta = 1 - alpha
        x0 = (x_t - (1 - a_t) ** 0.5 * eps) / a_t ** 0.5
        if self.clip_sample:
            x0 = x0.clamp(-1, 1)
        # Posterior mean of q(x_prev | x_t, x_0) (Ho et al. 2020, eq. 7).
        mean = (a_prev ** 0.5 * beta / (1 - a_t)) * x0 + (alpha ** 0.5 * (1 - a_prev) / (1 - a_t)) * x_t
        if t > 0:
            var = max((1 - a_prev) / (1 - a_t) * beta, 1e-20)
            noise = torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
            mean = mean + var ** 0.5 * noise
        return mean, x0
