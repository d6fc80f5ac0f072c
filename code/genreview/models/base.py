"""The small interface every model family implements, and what they share.

A family maps images in [0, 1] of shape (B, C, H, W) to a training loss, draws
samples in the same range, and, where tractable, gives a log-likelihood or a bound
on it. The trainer (`genreview.training.train`) knows nothing else about a model.
"""
from __future__ import annotations

import copy
import math
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Callable

import torch
from torch import nn


def register_mirrored(module: nn.Module, name: str, value: int | bool) -> None:
    """A scalar int or bool buffer `name` of `module`, kept twice: in the state dict (so that a checkpoint
    holds it) and as the Python value `mirrored(module, name)`, which a training step reads and branches on
    without waiting for the device (reading a CUDA scalar, `int(t)`, `t.item()` or `if t:`, makes the host
    wait for every queued kernel). `load_state_dict` reads the buffers into their Python values once, after
    loading; `set_mirrored` writes both. Write the buffer only through `set_mirrored`."""
    dtype = torch.bool if isinstance(value, bool) else torch.long
    module.register_buffer(name, torch.tensor(value, dtype=dtype))
    if "_host" not in module.__dict__:
        module._host = {}
        module.register_load_state_dict_post_hook(_read_mirrored)
    module._host[name] = value


def mirrored(module: nn.Module, name: str) -> int | bool:
    return module._host[name]


def set_mirrored(module: nn.Module, name: str, value: int | bool) -> None:
    module._host[name] = value
    getattr(module, name).fill_(value)  # a kernel on the buffer's device; nothing waits for it


def _read_mirrored(module: nn.Module, incompatible_keys) -> None:
    for name in module._host:  # once per load_state_dict, not per step
        module._host[name] = getattr(module, name).item()


def _pairs(a, b) -> tuple[list, list]:  # as zip(a, b), as two lists
    pairs = list(zip(a, b))
    return [p[0] for p in pairs], [p[1] for p in pairs]


class EMA(nn.Module):
    """Exponential moving average of a network's weights, with the usual warm-up.

    The effective decay at update t is min(decay, (1 + t) / (10 + t)), so that a short
    run is not dominated by the random initialisation (as in Ho et al. 2020's code).
    t is counted in Python (mirrored in the `updates` buffer), so an update never waits for the GPU,
    and the decay is the same double-precision number as when it was read from the buffer.
    """

    def __init__(self, net: nn.Module, decay: float):
        super().__init__()
        self.decay = decay
        self.net = copy.deepcopy(net).eval().requires_grad_(False)
        register_mirrored(self, "updates", 0)

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        t = mirrored(self, "updates") + 1
        set_mirrored(self, "updates", t)
        d = min(self.decay, (1 + t) / (10 + t))
        # one fused kernel per list (CPU: the per-tensor lerp_ and copy_, so the same numbers)
        ema, params = _pairs(self.net.parameters(), (p.detach() for p in net.parameters()))
        if ema:
            torch._foreach_lerp_(ema, params, 1 - d)
        ema_buffers, buffers = _pairs(self.net.buffers(), net.buffers())
        if ema_buffers:
            torch._foreach_copy_(ema_buffers, buffers)
        for e, m in zip(self.net.modules(), net.modules()):  # copied buffers' Python mirrors (Flow's ActNorm)
            if "_host" in m.__dict__:
                e._host.update(m._host)


class GenerativeModel(nn.Module):
    """Base class of every family.

    Args:
        cfg: the family's config dataclass (defaults beside the model, overridden by config.yaml).
        shape: (C, H, W) of the images it models.

    Subclasses implement `loss`, `sample`, and `log_prob` where `likelihood` is not "none".

    What a model can do is declared on its class (or, where it depends on the config, by a
    small property), never probed: the trainer, the evaluation and the studies read these.

    family: "classical", "autoregressive", "flow", "vae", "gan", "translation" or "diffusion";
        how the paper groups the models.
    likelihood: "exact", "bound" or "none": what `log_prob` gives; `likelihood_note` says how
        it is computed, in one short phrase for the paper.
    classical: fitted by its own algorithm rather than by gradient steps (GMM, HMM): implements
        `fit` instead of `loss`, and keeps its fitted parameters in buffers whose shapes follow
        from the config, so that a checkpoint loads into a freshly built model like any other.
    translator: None for a model that draws samples; an image-to-image model instead names its
        task, "unpaired" (CycleGAN: `translate_ab`, `translate_ba` between two classes) or
        "super_resolution" (`upscale`, 2x). A translator's `sample` raises; it gives `progress_grid`
        for training and is scored by `genreview.evaluation.translation`.
    train_classes: the classes training keeps (None: every image of the split).
    num_classes, conditional (properties): the classes a class-conditional model samples, and
        whether it is one (num_classes > 0); `sample(n, labels=...)` then takes (n,) labels,
        balanced (arange(n) % num_classes) by default.
    latent_sampling: how the model maps a Gaussian latent z, (B, latent_dim), to images in [0, 1]:
        "generator", a noise-to-image generator, `generate(z)` (deterministic, no gradient) and
        `differentiable_generate(z)` (the same images, differentiable in z, for GAN inversion),
        both taking `labels` too when the model is conditional; "encoder", an encoder-decoder,
        `encode(x)` -> (mean, log-variance), `decode(z)`, `reconstruct(x)` and `elbo(x)`;
        None for a model without such a latent.
    style_mixing: a style-based generator (StyleGAN): `style_mix`, `truncation_sweep`,
        `num_layers`, and `sample`/`generate` take a `truncation` psi.
    samplers: the iterative samplers `sample(n, sampler=..., steps=...)` runs (diffusion: "ddpm",
        "ddim"), with `make_scheduler(sampler, steps)`, `network_evaluations(sampler, steps)`
        and `cfg.timesteps`, `cfg.ddim_eta`; () for a one-pass sampler.
    d_output: for an adversarial model, what the "d_real"/"d_fake" training statistics are:
        "probability" (D's mean probability) or "critic" (a critic's mean unbounded score).
    probe_features: the representation a model offers a linear probe, `features(x)` -> (B, F)
        for images x in [0, 1]: "discriminator" (a GAN's discriminator up to its last linear
        layer), "encoder" (the VAE's posterior mean); None when it offers none.
    any_resolution: the network is convolutional throughout, so the same weights sample images of another
        size inside `with model.at_shape((C, h, w)):` (the PixelCNN: the resolution study of sampling cost).
    two_stage: trains in two phases, its autoencoder for the first `cfg.ae_fraction` of the run's steps,
        then its denoiser (latent diffusion); the FLOP count weighs the phases by their steps.
    """

    family: str = ""
    likelihood: str = "none"
    likelihood_note: str = ""   # how log_prob is computed, for the paper (one short phrase)
    classical: bool = False
    translator: str | None = None
    train_classes: tuple[int, ...] | None = None
    latent_sampling: str | None = None
    style_mixing: bool = False
    any_resolution: bool = False
    samplers: tuple[str, ...] = ()
    d_output: str | None = None
    probe_features: str | None = None
    two_stage: bool = False

    @classmethod
    def steps_per_generator_update(cls, cfg) -> int:
        """Training steps (train_step calls) per update of the generating network: 1, but n_critic for a
        critic GAN (`models/wgan.py`), whose critic steps come on top of its generator's; budgets of GANs
        are counted in generator updates."""
        return 1

    def __init__(self, cfg, shape: tuple[int, int, int]):
        super().__init__()
        self.cfg = cfg
        self.shape = tuple(shape)

    @contextmanager
    def at_shape(self, shape):
        """Sample images of another (C, h, w) inside the block, with the same weights; for models with
        `any_resolution` only."""
        if not self.any_resolution:
            raise ValueError(f"{type(self).__name__} samples only at its trained shape {self.shape}")
        old, self.shape = self.shape, tuple(shape)
        try:
            yield self
        finally:
            self.shape = old

    # ---- what every family implements -------------------------------------------------

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Losses for a batch x in [0, 1], (B, C, H, W); the key "loss" is the one optimised."""
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n samples in [0, 1], (n, C, H, W)."""
        raise NotImplementedError

    def log_prob(self, x: torch.Tensor, generator: torch.Generator | None = None, **options) -> torch.Tensor:
        """log P(k) of the 8-bit images k = 255 x in nats per image, (B,): exact, or a lower bound
        (or an unbiased estimate of one) when likelihood == "bound". See `genreview.models.likelihood`.
        `options` carries the evaluation's settings (iw_samples, vlb_timesteps); ignore the rest."""
        raise NotImplementedError(f"{type(self).__name__} has no tractable likelihood")

    def fit(self, x: torch.Tensor, seed: int) -> dict:
        """Classical models only: fit to all of x in [0, 1], (N, C, H, W); return statistics of
        the fit (for example iterations, converged, train log-likelihood) for the run summary."""
        raise NotImplementedError(f"{type(self).__name__} is trained by gradient steps, not fit()")

    @property
    def num_classes(self) -> int:
        """Classes a class-conditional model samples; 0 for an unconditional one."""
        return 0

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    @property
    def latent_dim(self) -> int:
        """Size of the latent z of a model with `latent_sampling` set; 0 otherwise."""
        return 0

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The representation named by `probe_features`, (B, F), of images x in [0, 1], (B, C, H, W)."""
        raise NotImplementedError(f"{type(self).__name__} offers no features (probe_features is None)")

    @property
    def nfe(self) -> int:
        """Network evaluations needed for one sample."""
        return 1

    def sampling_network(self) -> nn.Module:
        """The network that sampling runs (its size is what a user deploys)."""
        return self

    # ---- training: one optimiser by default; adversarial families override train_step ----
    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"main": torch.optim.Adam(self.parameters(), lr=self.cfg.lr)}

    def train_step(self, x: torch.Tensor, y: torch.Tensor, optimizers: dict,
                   amp: Callable[[], AbstractContextManager] = nullcontext) -> dict[str, torch.Tensor]:
        opt = optimizers["main"]
        with amp():
            losses = self.loss(x, y)
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        clip = getattr(self.cfg, "grad_clip", 0.0)
        if clip:
            losses["grad_norm"] = nn.utils.clip_grad_norm_(self.parameters(), clip)
        opt.step()
        return {k: v.detach() for k, v in losses.items()}

    def lr_schedulers(self, optimizers: dict, total_steps: int) -> list:
        """Learning-rate schedules stepped once per training step (none by default)."""
        return []


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup: int, total: int, final: float = 0.1):
    """Linear warm-up then cosine decay to `final` x the base rate."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
