"""Normalizing flow: RealNVP's multi-scale affine couplings (Dinh et al. 2017) with Glow's
actnorm and invertible 1x1 convolutions (Kingma and Dhariwal 2018).

An invertible map f sends an image y in [0, 1]^D to z = f(y) in R^D with a standard normal
base density, so the density of y is exact by the change of variables:

    log p(y) = log N(f(y); 0, I) + log |det df/dy|.

f is a chain whose log-determinants add up:

- preprocessing (RealNVP, Sec. 4.1): s = logit(alpha + (1 - 2 alpha) y), which maps the
  bounded pixels onto the real line; its Jacobian is diagonal, so
  log |det ds/dy| = sum_d [log(1 - 2 alpha) - log p_d - log(1 - p_d)] with p = alpha + (1 - 2 alpha) y.
  (The "affine" option s = y - 1/2 has log-determinant 0.) Since s only covers a bounded box,
  p integrates to slightly less than 1 over [0, 1]^D: the reported bound stays a bound.
- per level: a squeeze (B, C, H, W) -> (B, 4C, H/2, W/2) (a permutation, log-det 0), then
  `steps` flow steps of actnorm (per-channel affine, data-dependent initialisation),
  invertible 1x1 convolution W (log-det H W log |det W|) and an affine coupling
  y_b = x_b * exp(log s(x_a)) + t(x_a) (log-det sum log s); all but the last level factor
  half of the channels out to the base distribution (the multi-scale architecture).

Training scores uniformly dequantised images y = (k + u) / 256 (`genreview.models.likelihood`):
log P(k) >= E_u[log p(y)] - D log 256, and the loss is its negative in bits/dim,
-(log p(y) - D log 256) / (D ln 2); a flow uniform on [0, 1]^D would score 8.

The invertible path runs in float32 even under bf16 autocast: only the coupling networks
(which need not be inverted) run in low precision; their outputs are cast back before use.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..hparams import hp
from .likelihood import bits_per_dim, dequantize, discrete_log_prob
from .base import GenerativeModel, mirrored, register_mirrored, set_mirrored, warmup_cosine

LOG_2PI = math.log(2 * math.pi)


@dataclass
class FlowConfig:
    levels: int = hp(2, minimum=1)  # multi-scale levels; H and W must be divisible by 2**levels
    steps: int = hp(4, minimum=1)  # flow steps (actnorm, 1x1 conv, affine coupling) per level
    width: int = hp(64, minimum=1)  # hidden channels of each coupling network
    blocks: int = hp(1, minimum=1)  # residual blocks in each coupling network
    # soft bound on |log s| of the couplings: clamp * tanh(raw / clamp)
    scale_clamp: float = hp(2.0, exclusive_minimum=0)
    preprocess: str = hp("logit", enum=["logit", "affine"])  # logit | affine (s = y - 1/2)
    alpha: float = hp(0.05, minimum=0, exclusive_maximum=0.5)  # logit(alpha + (1 - 2 alpha) y) keeps the logit finite
    temperature: float = hp(1.0, exclusive_minimum=0)  # default sampling temperature: z ~ N(0, T^2 I)
    lr: float = hp(1e-3, exclusive_minimum=0)
    warmup_steps: int = hp(100, minimum=0)
    grad_clip: float = hp(100.0, minimum=0)  # 0 disables; bits/dim gradients norm ~10-60, so this cuts rare spikes only

    def __post_init__(self):
        if self.preprocess not in ("logit", "affine"):
            raise ValueError(f"preprocess must be logit or affine, got {self.preprocess!r}")
        if not 0 < self.alpha < 0.5:
            raise ValueError(f"alpha must lie in (0, 0.5), got {self.alpha}")
        if self.levels < 1 or self.steps < 1:
            raise ValueError(f"levels ({self.levels}) and steps ({self.steps}) must be at least 1")


def squeeze(x):  # (B, C, H, W) -> (B, 4C, H/2, W/2): each 2x2 patch becomes 4 channels
    b, c, h, w = x.shape
    x = x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
    return x.reshape(b, 4 * c, h // 2, w // 2)


def unsqueeze(x):  # (B, 4C, H, W) -> (B, C, 2H, 2W), the inverse of squeeze
    b, c, h, w = x.shape
    x = x.view(b, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
    return x.reshape(b, c // 4, 2 * h, 2 * w)


class ActNorm(nn.Module):
    """y = (x + b) * exp(logs) per channel; b and logs set from the first training batch so that
    y has zero mean and unit variance per channel (Glow, Sec. 3.1)."""

    def __init__(self, c: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.logs = nn.Parameter(torch.zeros(1, c, 1, 1))
        register_mirrored(self, "initialized", False)

    @torch.no_grad()
    def _initialize(self, x):
        self.bias.copy_(-x.mean((0, 2, 3), keepdim=True))
        self.logs.copy_(-x.std((0, 2, 3), keepdim=True, correction=0).clamp_min(1e-3).log())
        set_mirrored(self, "initialized", True)

    def forward(self, x):  # (B, C, H, W) -> same, log-det (B,)
        if self.training and not mirrored(self, "initialized"):
            self._initialize(x)
        logdet = self.logs.sum() * x.shape[2] * x.shape[3]
        return (x + self.bias) * self.logs.exp(), logdet.expand(len(x))

    def inverse(self, y):
        return y * (-self.logs).exp() - self.bias


class InvConv1x1(nn.Module):
    """Invertible 1x1 convolution, a learned channel mixing (Glow, Sec. 3.2), initialised to a
    random rotation. Always float32: autocast would round the invertible path to bf16."""

    def __init__(self, c: int):
        super().__init__()
        self.weight = nn.Parameter(torch.linalg.qr(torch.randn(c, c))[0])

    def forward(self, x):  # (B, C, H, W) -> same, log-det (B,)
        logdet = torch.linalg.slogdet(self.weight.double()).logabsdet.to(x.dtype) * x.shape[2] * x.shape[3]
        with torch.autocast(x.device.type, enabled=False):
            y = F.conv2d(x, self.weight.to(x.dtype)[..., None, None])
        return y, logdet.expand(len(x))

    def inverse(self, y):
        w_inv = torch.linalg.inv(self.weight.double()).to(y.dtype)
        with torch.autocast(y.device.type, enabled=False):
            return F.conv2d(y, w_inv[..., None, None])


class ResBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 1)

    def forward(self, h):  # (B, width, H, W) -> same
        return h + self.conv2(F.relu(self.conv1(F.relu(h))))


class CouplingNet(nn.Module):
    """x_a (B, c_in, H, W) -> shift and raw log-scale, (B, 2 c_out, H, W). The last layer starts
    at zero, so every coupling starts as the identity (Glow, Sec. 3.3)."""

    def __init__(self, c_in: int, c_out: int, width: int, blocks: int):
        super().__init__()
        self.stem = nn.Conv2d(c_in, width, 3, padding=1)
        self.blocks = nn.Sequential(*[ResBlock(width) for _ in range(blocks)])
        self.head = nn.Conv2d(width, 2 * c_out, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x):
        return self.head(F.relu(self.blocks(self.stem(x))))


class AffineCoupling(nn.Module):
    """Channel-wise affine coupling (RealNVP, Sec. 3.3): x_a passes unchanged and sets the
    shift and scale of x_b. The 1x1 convolution before it decides which channels are x_a."""

    def __init__(self, c: int, width: int, blocks: int, clamp: float):
        super().__init__()
        self.c_a, self.clamp = c // 2, clamp
        self.net = CouplingNet(self.c_a, c - self.c_a, width, blocks)

    def _shift_log_scale(self, x_a):
        shift, raw = self.net(x_a).to(x_a.dtype).chunk(2, dim=1)    # each (B, c_b, H, W), float32
        return shift, self.clamp * torch.tanh(raw / self.clamp)

    def forward(self, x):  # (B, C, H, W) -> same, log-det (B,)
        x_a, x_b = x[:, :self.c_a], x[:, self.c_a:]
        shift, log_s = self._shift_log_scale(x_a)
        return torch.cat([x_a, x_b * log_s.exp() + shift], 1), log_s.flatten(1).sum(1)

    def inverse(self, y):
        y_a, y_b = y[:, :self.c_a], y[:, self.c_a:]
        shift, log_s = self._shift_log_scale(y_a)
        return torch.cat([y_a, (y_b - shift) * (-log_s).exp()], 1)


class FlowStep(nn.Module):
    """actnorm -> invertible 1x1 conv -> affine coupling (one step of Glow, Fig. 2a)."""

    def __init__(self, c: int, cfg: FlowConfig):
        super().__init__()
        self.layers = nn.ModuleList([ActNorm(c), InvConv1x1(c), AffineCoupling(c, cfg.width, cfg.blocks,
                                                                               cfg.scale_clamp)])

    def forward(self, x):  # (B, C, H, W) -> same, log-det (B,)
        logdet = 0
        for layer in self.layers:
            x, ld = layer(x)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, y):
        for layer in reversed(self.layers):
            y = layer.inverse(y)
        return y


class Flow(GenerativeModel):
    """Multi-scale Glow-style flow with a standard normal base.

    Args:
        cfg: FlowConfig.
        shape: (C, H, W), H and W divisible by 2**cfg.levels (4 for the default two levels).
    """

    family = "flow"
    likelihood = "bound"
    likelihood_note = "dequantised density"

    def __init__(self, cfg: FlowConfig, shape):
        super().__init__(cfg, shape)
        c, h, w = shape
        f = 2 ** cfg.levels
        if h % f or w % f:
            raise ValueError(f"Flow with levels={cfg.levels} needs H and W divisible by {f}, got {h}x{w}: "
                             f"lower levels or pad the images")
        self.dims = c * h * w
        self.levels = nn.ModuleList()
        self.z_shapes = []                     # (C, H, W) of each factored-out block of z, then the last one
        for i in range(cfg.levels):
            c, h, w = 4 * c, h // 2, w // 2
            self.levels.append(nn.ModuleList([FlowStep(c, cfg) for _ in range(cfg.steps)]))
            if i < cfg.levels - 1:
                self.z_shapes.append((c // 2, h, w))
                c -= c // 2
        self.z_shapes.append((c, h, w))

    # ---- the invertible map y <-> z and its log-determinant ----------------------------
    def preprocess(self, y):  # y in [0, 1]^D (B, C, H, W) -> s in R^D, log |det ds/dy| (B,)
        if self.cfg.preprocess == "affine":
            return y - 0.5, y.new_zeros(len(y))
        a = self.cfg.alpha
        p = a + (1 - 2 * a) * y
        log_p, log_1mp = torch.log(p), torch.log1p(-p)
        return log_p - log_1mp, (math.log(1 - 2 * a) - log_p - log_1mp).flatten(1).sum(1)

    def postprocess(self, s):  # the inverse of preprocess
        if self.cfg.preprocess == "affine":
            return s + 0.5
        a = self.cfg.alpha
        return (torch.sigmoid(s) - a) / (1 - 2 * a)

    def transform(self, y):
        """y in [0, 1]^D, (B, C, H, W) -> z = f(y), (B, D), and log |det df/dy|, (B,)."""
        s, logdet = self.preprocess(y)
        zs = []
        for i, steps in enumerate(self.levels):
            s = squeeze(s)                                          # (B, 4c, h/2, w/2)
            for step in steps:
                s, ld = step(s)
                logdet = logdet + ld
            if i < len(self.levels) - 1:
                keep = s.shape[1] - self.z_shapes[i][0]
                zs.append(s[:, keep:].flatten(1))                   # factored out: (B, c_i h_i w_i)
                s = s[:, :keep]
        zs.append(s.flatten(1))
        return torch.cat(zs, 1), logdet

    def inverse(self, z):
        """z (B, D) -> y = f^{-1}(z), (B, C, H, W); not clamped to [0, 1]."""
        sizes = [math.prod(zs) for zs in self.z_shapes]
        parts = [p.reshape(len(z), *zs) for p, zs in zip(z.split(sizes, dim=1), self.z_shapes)]
        s = parts[-1]
        for i in reversed(range(len(self.levels))):
            if i < len(self.levels) - 1:
                s = torch.cat([s, parts[i]], 1)
            for step in reversed(self.levels[i]):
                s = step.inverse(s)
            s = unsqueeze(s)
        return self.postprocess(s)

    def log_density(self, y):
        """log p(y) of the continuous density on [0, 1]^D, nats per image, (B,)."""
        z, logdet = self.transform(y)
        return -0.5 * (z.pow(2) + LOG_2PI).sum(1) + logdet

    # ---- the GenerativeModel interface -------------------------------------------------
    def log_prob(self, x, generator=None, **options):
        """Lower bound on log P(k) for k = 255 x: log p(y) - D log 256 at one dequantisation y, (B,)."""
        y = dequantize(x, generator)                                # (B, C, H, W) in [0, 1)
        return discrete_log_prob(self.log_density(y), self.dims)

    def loss(self, x, y=None):
        bpd = bits_per_dim(self.log_prob(x), self.dims).mean()
        return {"loss": bpd, "bpd": bpd}

    @torch.no_grad()
    def sample(self, n, generator=None, temperature=None):
        """One inverse pass from z ~ N(0, T^2 I), T = temperature or cfg.temperature; (n, C, H, W) in [0, 1]."""
        t = self.cfg.temperature if temperature is None else temperature
        z = torch.randn(n, self.dims, generator=generator, device=self._device()) * t
        return self.inverse(z).clamp(0, 1)

    @property
    def nfe(self) -> int:
        return 1

    def lr_schedulers(self, optimizers, total_steps):
        return [warmup_cosine(optimizers["main"], self.cfg.warmup_steps, total_steps)]

    def _device(self):
        return next(self.parameters()).device
