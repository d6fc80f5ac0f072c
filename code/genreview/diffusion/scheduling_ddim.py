"""DDIM sampler (Song et al. 2021): a non-Markovian reverse process that shares DDPM's
training objective and can skip timesteps. eta = 0 is deterministic; eta = 1 recovers
DDPM's ancestral variance.

x_{t'} = sqrt(abar_t') x0_hat + sqrt(1 - abar_t' - sigma^2) eps_hat + sigma z,
sigma = eta sqrt((1 - abar_t') / (1 - abar_t)) sqrt(1 - abar_t / abar_t').

Only the noise prediction is used: a learned variance (Improved DDPM) is ignored, as sigma
follows from eta.
"""
from __future__ import annotations

import torch

from .schedule import NoiseSchedule


class DDIMScheduler:
    """Args: schedule (NoiseSchedule), eta (0 = deterministic), spacing ("leading" | "trailing"),
    clip_sample (clip the predicted x_0 to [-1, 1])."""

    def __init__(self, schedule: NoiseSchedule, eta: float = 0.0, spacing: str = "trailing",
                 clip_sample: bool = True):
        if spacing not in ("leading", "trailing"):
            raise ValueError(f"unknown timestep spacing {spacing!r}: use leading or trailing")
        self.schedule, self.eta, self.spacing, self.clip_sample = schedule, eta, spacing, clip_sample
        self.set_timesteps(min(50, schedule.num_timesteps))

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Pick the timesteps to visit: "leading" starts at 0 (DDIM's paper), "trailing"
        ends at T-1 (Lin et al. 2024), which starts from pure noise. Each step goes to the next
        timestep in the list (t - T // steps, except for trailing spacing when steps does not divide T)."""
        T = self.schedule.num_timesteps
        if not 1 <= num_inference_steps <= T:
            raise ValueError(f"{num_inference_steps} sampling steps for a model with T = {T} timesteps: "
                             f"ask for 1 to {T} steps")
        self.num_inference_steps = num_inference_steps
        self.step_ratio = T // num_inference_steps
        if self.spacing == "leading":
            ts = (torch.arange(0, num_inference_steps) * self.step_ratio).flip(0)
        else:  # round(T - i T / steps) - 1 for i < steps: exactly `steps` distinct timesteps from T-1 down
            ts = torch.round(T - torch.arange(num_inference_steps, dtype=torch.float64) * (T / num_inference_steps))
            ts = ts.long() - 1
        self.timesteps = ts.long()  # descending
        order = self.timesteps.tolist()
        self.prev_timestep = dict(zip(order, order[1:] + [-1]))

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.schedule.add_noise(x0, noise, t)

    def step(self, eps: torch.Tensor, t: int, x_t: torch.Tensor, generator: torch.Generator | None = None,
             model_var_values: torch.Tensor | None = None):
        """One DDIM step from x_t; returns (x_{t'}, predicted x_0). model_var_values (a learned variance's
        v) is accepted so that one sampling loop serves both schedulers, and ignored."""
        abar = self.schedule.alphas_cumprod
        t = int(t)
        prev = self.prev_timestep.get(t, t - self.step_ratio)
        a_t = abar[t].item()
        a_prev = abar[prev].item() if prev >= 0 else 1.0
        x0 = (x_t - (1 - a_t) ** 0.5 * eps) / a_t ** 0.5
        if self.clip_sample:
            x0 = x0.clamp(-1, 1)
            eps = (x_t - a_t ** 0.5 * x0) / (1 - a_t) ** 0.5  # the noise consistent with the clipped x0
        sigma = self.eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)) ** 0.5
        x_prev = a_prev ** 0.5 * x0 + (1 - a_prev - sigma ** 2) ** 0.5 * eps
        if self.eta > 0:
            x_prev = x_prev + sigma * torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
        return x_prev, x0
