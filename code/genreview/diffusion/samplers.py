"""The sampler a diffusion model's config asks for, built over its noise schedule."""
from __future__ import annotations

from .schedule import NoiseSchedule
from .scheduling_ddim import DDIMScheduler
from .scheduling_ddpm import DDPMScheduler


def make_scheduler(schedule: NoiseSchedule, cfg, sampler: str | None = None, steps: int | None = None,
                   clip_sample: bool = True):
    """The scheduler of `sampler` (ddim | ddpm; None = cfg.sampler) set to `steps` steps (None = cfg.sample_steps
    for cfg.sampler, T for the other one). `cfg` carries sampler, sample_steps, timesteps, ddim_eta and spacing."""
    sampler = sampler or cfg.sampler
    if sampler == "ddpm":
        sched = DDPMScheduler(schedule, clip_sample=clip_sample)
    elif sampler == "ddim":
        sched = DDIMScheduler(schedule, eta=cfg.ddim_eta, spacing=cfg.spacing, clip_sample=clip_sample)
    else:
        raise ValueError(f"unknown sampler {sampler!r}: use ddpm or ddim")
    if steps is None:
        steps = cfg.sample_steps if sampler == cfg.sampler else cfg.timesteps
    sched.set_timesteps(steps)
    return sched
