"""Training and sampling FLOPs, counted by PyTorch's `torch.utils.flop_counter.FlopCounterMode`.

What is counted: the FLOPs of the operators FlopCounterMode knows (matrix products `mm`, `addmm`, `bmm`,
`baddbmm`, convolutions and their backward, scaled dot-product attention), forward and backward, double
backward included (WGAN-GP's gradient penalty, StyleGAN's R1), for every network a training step runs (a
GAN's generator and discriminator, the LDM's frozen encoder in its denoiser phase), at 2 FLOPs per
multiply-add (the convention of Kaplan et al. 2020 and of PaLM's MFU, Chowdhery et al. 2022). Not counted:
elementwise work (activations, normalisation, losses), optimiser updates and EMA updates, which are a small
share of a convolutional or attention network's work. The count depends on shapes alone, not on weights or
precision, so it is the same under bf16 autocast or with diverged weights.

A model's training steps are not all alike; the count covers what repeats:

- cycle (`cycle_steps`): consecutive `train_step` calls after which the pattern of work repeats, read from
  the model's config: `n_critic` (a critic GAN updates G on every n_critic-th call, `models/wgan.py`) and
  `r1_every` with `r1_gamma` > 0 (StyleGAN's lazy R1 penalty on every r1_every-th call,
  `models/stylegan.py`); their least common multiple, else 1. Both are counters of calls, so any `cycle`
  consecutive calls hold each kind of step in its proportion, wherever they start.
- phases (`phases`): a model whose config has `ae_fraction` (latent diffusion, `models/ldm.py`) trains its
  autoencoder for the first round(ae_fraction x total_steps) steps and its denoiser for the rest. Each phase
  is counted on its own, on a copy put at the phase's start (its `total_steps` and `steps_done` buffers loaded
  as from a checkpoint: they are how `LatentDiffusion.phase` decides), and weighted by its share of the run.

`train_flops` counts on a deep copy of the model with its own optimisers, and restores the random state
afterwards: the real run's weights, optimiser state and random numbers are untouched. One untimed step per
phase comes first (`warmup`), so that one-time work (the LDM's scale factor, measured on the first denoiser
step) is left out of the per-step figure.

Generator updates: a model with an optimiser named "g" (every adversarial family names its generator's so)
reports how many times it stepped; the count over a run is floor(steps x g-steps per cycle / cycle), which
is steps // n_critic for a critic GAN (its counter starts at 0 and G steps on every n_critic-th call).
"""
from __future__ import annotations

import copy
import itertools
import math
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..models.base import GenerativeModel
from ..utils import log, rng_state, set_rng_state

COUNTER = "torch.utils.flop_counter"  # what train_summary.json's "flops_counter" names
GENERATOR = "g"                       # the optimiser of an adversarial model's generator(s)
LONG_CYCLE = 64                       # a cycle longer than this is counted in full, with a warning of its cost


@dataclass(frozen=True)
class Phase:
    """A stretch of a run whose steps do the same work: its name, first step (steps done before it) and length."""
    name: str
    start: int
    steps: int | None  # None: the run's length is unknown (a single-phase model counted without it)


def cycle_steps(model: GenerativeModel) -> int:
    """Consecutive train_step calls that hold every kind of step of `model` in its proportion (see above)."""
    cfg = model.cfg
    n = type(model).steps_per_generator_update(cfg)      # models/wgan.py: G steps on every n_critic-th call
    r1_every = getattr(cfg, "r1_every", None)            # models/stylegan.py: lazy R1 on every r1_every-th call
    if r1_every and getattr(cfg, "r1_gamma", 0) > 0:
        n = math.lcm(n, int(r1_every))
    return n


def phases(model: GenerativeModel, total_steps: int | None) -> list[Phase]:
    """The phases of a run of `total_steps` steps: [train] for most models, [autoencoder, denoiser] for a
    two-stage model (`two_stage`, models/ldm.py: the autoencoder for round(ae_fraction x total_steps) steps)."""
    if not model.two_stage:
        return [Phase("train", 0, total_steps)]
    fraction = model.cfg.ae_fraction
    if not total_steps:
        raise ValueError(f"{type(model).__name__} trains its autoencoder for a fraction ae_fraction={fraction} of "
                         "the run, then its denoiser: pass total_steps (the run's planned steps) to weigh the phases")
    n_ae = round(fraction * total_steps)                 # as LatentDiffusion.ae_steps
    return [Phase("autoencoder", 0, n_ae), Phase("denoiser", n_ae, total_steps - n_ae)]


def enter_phase(model: GenerativeModel, phase: Phase, total_steps: int | None) -> None:
    """Put `model` (a copy, or a benchmark's model) where its next train_step is the first of `phase`: for a
    phased model its step counters `total_steps` and `steps_done` (models/ldm.py), loaded as a resumed run's
    checkpoint loads them (`load_state_dict`, which also updates any copy the model keeps on the host);
    nothing for the others."""
    if not model.two_stage:
        return
    sd = model.state_dict()
    model.load_state_dict({"total_steps": sd["total_steps"].new_tensor(int(total_steps)),
                           "steps_done": sd["steps_done"].new_tensor(phase.start)}, strict=False)


def steps_in_phases(schedule: list[Phase], steps: int) -> list[int]:
    """How many of a run's first `steps` steps fall in each phase of `schedule`."""
    out = []
    for i, p in enumerate(schedule):
        end = steps if i == len(schedule) - 1 or p.steps is None else min(steps, p.start + p.steps)
        out.append(max(0, end - p.start))
    return out


class _GlobalOnly:
    """Stands in for FlopCounterMode's ModuleTracker, whose backward hooks fail under torch.autograd.grad
    ("A leaf node was passed to _will_engine_execute_node", torch 2.x: WGAN-GP's penalty, StyleGAN's R1); the
    totals need no attribution to modules, so every count goes to "Global" alone."""
    parents = ("Global",)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


def flop_counter() -> FlopCounterMode:
    """A FlopCounterMode that counts totals only (`get_total_flops`), also through torch.autograd.grad."""
    fc = FlopCounterMode(display=False)
    fc.mod_tracker = _GlobalOnly()
    return fc


def _stream(batches) -> Iterable:
    """Batches (x, y) without end: one batch repeated, or an iterable's batches, repeated once it runs out."""
    if isinstance(batches, torch.Tensor):
        return itertools.repeat((batches, None))
    if isinstance(batches, tuple) and len(batches) == 2 and isinstance(batches[0], torch.Tensor):
        return itertools.repeat(batches)
    return itertools.cycle(batches)  # keeps what it has yielded; repeats only when the source runs out


def _count_phase(m: GenerativeModel, opts: dict, stream, n: int, amp, warmup: int, phase: Phase, index: int,
                 total_steps: int | None) -> dict:
    """FLOPs of n consecutive train_step calls of `m` in `phase`, after `warmup` uncounted ones."""
    enter_phase(m, phase, total_steps)
    for _ in range(warmup):
        x, y = next(stream)
        m.train_step(x, y, opts, amp)
    enter_phase(m, phase, total_steps)  # the warm-up steps moved the phase counters on
    stepped: Counter = Counter()
    hooks = [o.register_step_post_hook(lambda *_, name=name: stepped.update([name])) for name, o in opts.items()]
    flops = []
    try:
        for _ in range(n):
            x, y = next(stream)
            with flop_counter() as fc:
                losses = m.train_step(x, y, opts, amp)
            flops.append(int(fc.get_total_flops()))
            if "phase" in losses and int(losses["phase"]) != index + 1:  # models/ldm.py reports it, 1-based
                raise RuntimeError(f"counting {type(m).__name__}'s {phase.name} phase ran a step of phase "
                                   f"{int(losses['phase'])}: the model's phase counters changed; update "
                                   "genreview.training.flops.enter_phase")
    finally:
        for h in hooks:
            h.remove()
    return {"per_step": sum(flops) / n, "step_flops": flops, "optimizer_steps": dict(sorted(stepped.items()))}


def train_flops(model: GenerativeModel, batches, amp: Callable = nullcontext, total_steps: int | None = None,
                steps: int | None = None, optimizers: Callable | None = None, warmup: int = 1) -> dict:
    """The training FLOPs of `model`, per step averaged over the run's schedule, and for the steps taken.

    Args:
        model: the model (left untouched: the count runs on a deep copy, the random state is restored).
        batches: one batch (x, y) (or x alone), reused for every counted step, or an iterable of (x, y).
        amp: the autocast context factory of the run (changes no count; given so the copy runs as the run does).
        total_steps: the run's planned steps: the phases' shares (required for a phased model, the LDM).
        steps: steps actually taken (default total_steps): "train_flops" and "generator_updates" are for them.
        optimizers: model -> {name: optimiser} (default: the model's own `configure_optimizers`).
        warmup: uncounted steps per phase before the counted cycle.

    Returns {"counter", "per_step" (the schedule-weighted mean), "train_flops" (per phase, steps in it x its
    per-step FLOPs; None without steps), "steps", "cycle_steps", "generator_updates" and
    "per_generator_update" (None without a generator optimiser "g"), "phases": {name: {"share",
    "planned_steps", "per_step", "step_flops" (each counted step), "optimizer_steps" (per cycle)}}}.
    """
    steps = total_steps if steps is None else steps
    schedule = phases(model, total_steps)
    n = cycle_steps(model)
    if n > LONG_CYCLE:
        log.warning("counting FLOPs over a cycle of %d steps of %s", n, type(model).__name__)
    state = rng_state()
    try:
        m = copy.deepcopy(model)
        m.train()
        opts = (optimizers or (lambda mm: mm.configure_optimizers()))(m)
        stream = iter(_stream(batches))
        counted = {p.name: _count_phase(m, opts, stream, n, amp, warmup, p, i, total_steps)
                   for i, p in enumerate(schedule)}
        del m, opts
    finally:
        set_rng_state(state)
    shares = [1.0] if len(schedule) == 1 else [p.steps / total_steps for p in schedule]
    per_step = sum(s * counted[p.name]["per_step"] for s, p in zip(shares, schedule))
    out_phases = {p.name: {"share": s, "planned_steps": p.steps, **counted[p.name]} for s, p in zip(shares, schedule)}
    res = {"counter": COUNTER, "per_step": per_step, "train_flops": None, "steps": steps, "cycle_steps": n,
           "generator_updates": None, "per_generator_update": None, "phases": out_phases}
    g_per_cycle = [counted[p.name]["optimizer_steps"].get(GENERATOR) for p in schedule]
    has_g = any(g is not None for g in g_per_cycle)
    if has_g:
        rate = sum(s * (g or 0) / n for s, g in zip(shares, g_per_cycle))  # G steps per training step
        res["per_generator_update"] = per_step / rate if rate else None
    if steps is not None:
        taken = steps_in_phases(schedule, steps)
        res["train_flops"] = sum(k * counted[p.name]["per_step"] for k, p in zip(taken, schedule))
        if has_g:
            res["generator_updates"] = sum(k * (g or 0) // n for k, g in zip(taken, g_per_cycle))
    return res


def sample_flops(model: GenerativeModel, n: int, **options) -> int:
    """FLOPs of `model.sample(n, **options)` (a diffusion model's `sampler`, `steps`, `guidance`, ...), in eval
    mode without gradients; the model's mode and the random state are restored afterwards."""
    if model.translator:
        raise ValueError(f"{type(model).__name__} translates images ({model.translator}) and draws no samples: "
                         "count its translation with FlopCounterMode on upscale/translate_ab instead")
    state, was_training = rng_state(), model.training
    model.eval()
    try:
        with flop_counter() as fc, torch.no_grad():
            model.sample(n, **options)
    finally:
        model.train(was_training)
        set_rng_state(state)
    return int(fc.get_total_flops())
