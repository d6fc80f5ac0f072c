"""Ancestral sampler of Ho et al. (2020): x_{t-1} ~ p(x_{t-1} | x_t) with the fixed
"small" variance beta~_t (the posterior variance of q(x_{t-1} | x_t, x_0)), or with the
variance learned by Improved DDPM (Nichol and Dhariwal 2021, eq. 15): the network's v
interpolates log beta_t and log beta~_t.

With fewer inference steps than training steps, consecutive kept timesteps t > t' are
treated as one step with beta = 1 - abar_t / abar_t' and beta~ = (1 - abar_t') / (1 - abar_t) beta,
for the mean and for the learned variance alike, as in diffusers' DDPMScheduler and as
Nichol and Dhariwal (2021, Sec. 4) sample with fewer steps.
"""
from __future__ import annotations

import math

import torch

from .schedule import NoiseSchedule, interpolate_log_variance


class DDPMScheduler:
    """Args: schedule (NoiseSchedule), clip_sample (clip the predicted x_0 to [-1, 1])."""

    def __init__(self, schedule: NoiseSchedule, clip_sample: bool = True):
        self.schedule = schedule
        self.clip_sample = clip_sample
        self.set_timesteps(schedule.num_timesteps)

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Visit every (T // steps)-th timestep, starting at 0 ("leading" spacing, as diffusers)."""
        T = self.schedule.num_timesteps
        if not 1 <= num_inference_steps <= T:
            raise ValueError(f"{num_inference_steps} sampling steps for a model with T = {T} timesteps: "
                             f"ask for 1 to {T} steps")
        self.num_inference_steps = num_inference_steps
        self.step_ratio = T // num_inference_steps
        self.timesteps = torch.arange(0, num_inference_steps).mul(self.step_ratio).flip(0)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.schedule.add_noise(x0, noise, t)

    def step(self, eps: torch.Tensor, t: int, x_t: torch.Tensor, generator: torch.Generator | None = None,
             model_var_values: torch.Tensor | None = None):
        """One reverse step from x_t; returns (x_{t'}, predicted x_0).

        eps: the predicted noise, (B, C, H, W). model_var_values: None for the fixed variance beta~,
        or the network's v, (B, C, H, W), for the learned one, exp(frac log beta + (1 - frac) log beta~)
        with frac = (v + 1) / 2 and beta, beta~ of this (possibly respaced) step.
        """
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
            var = max((1 - a_prev) / (1 - a_t) * beta, 1e-20)                    # beta~ of this step
            noise = torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
            if model_var_values is None:
                std = var ** 0.5
            else:
                std = (0.5 * interpolate_log_variance(model_var_values, math.log(beta), math.log(var))).exp()
            mean = mean + std * noise
        return mean, x0
