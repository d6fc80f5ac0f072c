"""Gated PixelCNN (van den Oord et al. 2016a, "Pixel Recurrent Neural Networks"; 2016b,
"Conditional Image Generation with PixelCNN Decoders").

An autoregressive model of the 8-bit levels k in raster order,
    log P(k) = sum_{r, c, j} log p(k[j, r, c] | every pixel before (r, c), channels < j of (r, c)),
each factor a 256-way softmax, so the likelihood is exact.

Masks. Instead of masked square kernels, which leave a blind spot above-right of each pixel,
the gated PixelCNN runs two stacks of shifted, padded convolutions (2016b, Sec. 2.2):
- the vertical stack: a (k//2 + 1) x k kernel covering the rows above and the row itself,
  zero-padded at the top. Its first layer sees only the rows strictly above (mask A: rows
  r - k0//2 .. r - 1), so every vertical feature at row r depends on rows < r only;
- the horizontal stack: a 1 x (k//2 + 1) kernel covering the columns to the left and the
  column itself, zero-padded on the left; its first layer sees only columns strictly left
  (mask A: c - k0//2 .. c - 1). The vertical pre-activations join it through a 1x1 convolution
  at every layer (the vertical-to-horizontal link), it has a residual connection, and its last
  features feed the output head.
Each layer gates its 2F pre-activations as tanh(a) * sigmoid(b). The receptive field of pixel
(r, c) is a triangle: the rows above (widening by k//2 per layer on each side, so pixels up
and to the right are included) and the columns to the left on row r.

Channels (C > 1) share the spatial context of the stacks, and each has its own two-layer output
head whose hidden units also see the values of channels < j at the same pixel, so the channels
of a pixel are drawn in order, R then G then B, as with the paper's channel masks (but without
splitting the feature maps into channel groups). Grayscale (C = 1) has a single head.

Sampling (`sample`) is exact ancestral sampling with the network's own numbers but without
the naive loop's H * W * C full forward passes. It keeps, for every layer, the zero-padded
input that the full network's convolution reads (the caching idea of Ramachandran et al. 2017,
"Fast Generation for Convolutional Autoregressive Models"):
- once per row r, each vertical layer computes its one output row r from rows r - kh + 1 .. r
  of its padded input buffer (all of which depend only on pixels already drawn) and writes it
  into the next layer's buffer; the link at row r is kept for the horizontal stack;
- once per pixel (r, c), each horizontal layer computes its one output column c from columns
  c - kw + 1 .. c of its padded row buffer, plus the link at (r, c), and writes it on;
- the head turns the last features into 256 logits per channel; a level is drawn by inverse
  CDF with `generator` and written into the padded input.
Each network position is thus computed once per sample, as in one full forward pass. The loop
runs on one CPU thread (`one_thread`): its operations are too small to share out.
`sample_naive` runs the full network once per pixel and channel; the tests check that both
give the same images.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..hparams import hp
from .likelihood import LEVELS, to_levels
from .base import GenerativeModel


@dataclass
class PixelCNNConfig:
    layers: int = hp(8, minimum=1)  # gated layers; the first is masked type A (excludes the pixel itself)
    width: int = hp(64, minimum=1)  # feature maps F of each stack (the gates use 2F)
    kernel: int = hp(3, minimum=2)  # odd k of layers 2..L: vertical (k//2 + 1) x k, horizontal 1 x (k//2 + 1)
    # odd k0 of layer 1: vertical k0//2 x k0 (rows above), horizontal 1 x k0//2 (left)
    first_kernel: int = hp(7, minimum=2)
    head: int = hp(0, minimum=0)  # hidden units per channel in the output head; 0 = width
    lr: float = hp(1e-3, exclusive_minimum=0)
    grad_clip: float = hp(1.0, minimum=0)  # 0 disables clipping

    def __post_init__(self):
        if self.layers < 1 or self.width < 1:
            raise ValueError(f"layers ({self.layers}) and width ({self.width}) must be positive")
        if self.kernel < 3 or self.kernel % 2 == 0 or self.first_kernel < 3 or self.first_kernel % 2 == 0:
            raise ValueError(f"kernel ({self.kernel}) and first_kernel ({self.first_kernel}) must be odd and >= 3")


def gate(t):  # (B, 2F, ...) -> tanh(a) * sigmoid(b), (B, F, ...)
    a, b = t.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


@contextmanager
def one_thread():
    """Run on one CPU thread: per-pixel operations are too small to split, and on a busy machine a second
    thread that waits for a core makes each of them many times slower (measured: 50x on 2 shared cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def pointwise(conv, x):  # conv at one position as a matrix product (fast on CPU): (n, c_in * kh * kw) -> (n, c_out)
    return F.linear(x, conv.weight.flatten(1), conv.bias)


class GatedLayer(nn.Module):
    """One layer of both stacks. Args: c_in (input channels), width F, kernel k, first (mask type A).

    Each convolution reads a zero-padded input: the vertical one `pad_v` rows on top and `side`
    columns on each side, output row r from padded rows r .. r + kh - 1; the horizontal one
    `pad_h` columns on the left, output column c from padded columns c .. c + kw - 1.
    """

    def __init__(self, c_in: int, width: int, kernel: int, first: bool):
        super().__init__()
        k2 = kernel // 2
        self.first = first
        self.side = k2
        self.pad_v = self.pad_h = k2                      # zeros above / on the left
        self.kh = self.kw = k2 if first else k2 + 1       # first: rows r - k2 .. r - 1, else r - k2 .. r (cols alike)
        self.v_conv = nn.Conv2d(c_in, 2 * width, (self.kh, kernel))
        self.h_conv = nn.Conv2d(c_in, 2 * width, (1, self.kw))
        self.v_to_h = nn.Conv2d(2 * width, 2 * width, 1)
        self.h_out = nn.Conv2d(width, width, 1)

    def vertical(self, v):  # padded (B, c_in, rows + kh - 1, W + 2 side) -> features, link, each for `rows` rows
        pre = self.v_conv(v)                                  # (B, 2F, rows, W)
        return gate(pre), self.v_to_h(pre)                    # (B, F, rows, W), (B, 2F, rows, W)

    def horizontal(self, h, link, h_in):  # padded (B, c_in, R, cols + kw - 1), link and h_in (B, *, R, cols)
        out = self.h_out(gate(self.h_conv(h) + link))         # (B, F, R, cols)
        return out if self.first else h_in + out              # residual connection

    def horizontal_at(self, h, link, h_in):  # one position: window (n, c_in, kw), link (n, 2F), h_in (n, F)
        out = pointwise(self.h_out, gate(pointwise(self.h_conv, h.flatten(1)) + link))   # (n, F)
        return out if self.first else h_in + out

    def forward(self, v, h):  # whole images: (B, c_in, H, W) each -> (B, F, H, W) each
        H, W = v.shape[-2:]
        # crop to H + kh - 1 rows, W + kw - 1 columns: a no-op but in the first layer, where it drops the last
        # row / column (which no output reads)
        v, link = self.vertical(F.pad(v, (self.side, self.side, self.pad_v, 0))[:, :, :H + self.kh - 1])
        return v, self.horizontal(F.pad(h, (self.pad_h, 0, 0, 0))[..., :W + self.kw - 1], link, h)


class Head(nn.Module):
    """Per pixel, channels last: features h (..., F) and input z (..., C) -> logits (..., C, 256).

    Channel j has its own two-layer head, whose hidden units also see z's channels < j."""

    def __init__(self, c: int, width: int, hidden: int):
        super().__init__()
        self.hidden = nn.ModuleList(nn.Linear(width + j, hidden) for j in range(c))
        self.out = nn.ModuleList(nn.Linear(hidden, LEVELS) for _ in range(c))

    def channel(self, j, h, z):  # (..., F), (..., C) -> (..., 256)
        a = F.relu(h) if j == 0 else torch.cat([F.relu(h), z[..., :j]], dim=-1)
        return self.out[j](F.relu(self.hidden[j](a)))

    def forward(self, h, z):
        return torch.stack([self.channel(j, h, z) for j in range(len(self.out))], dim=-2)


class GatedPixelCNN(nn.Module):
    """The network: z = 2x - 1 in [-1, 1], (B, C, H, W) -> logits, channels last, (B, H, W, C, 256)."""

    def __init__(self, c: int, cfg: PixelCNNConfig):
        super().__init__()
        self.layers = nn.ModuleList(
            [GatedLayer(c, cfg.width, cfg.first_kernel, first=True)]
            + [GatedLayer(cfg.width, cfg.width, cfg.kernel, first=False) for _ in range(cfg.layers - 1)])
        self.head = Head(c, cfg.width, cfg.head or cfg.width)

    def forward(self, z):
        v = h = z
        for layer in self.layers:
            v, h = layer(v, h)                                # (B, F, H, W) each
        return self.head(h.movedim(1, -1), z.movedim(1, -1))  # (B, H, W, C, 256)


class PixelCNN(GenerativeModel):
    """Gated PixelCNN over 256 levels per pixel and channel. Args: cfg (PixelCNNConfig), shape (C, H, W)."""

    family = "autoregressive"
    likelihood = "exact"
    likelihood_note = "autoregressive"
    any_resolution = True  # shifted convolutions and a per-pixel head: any image size

    def __init__(self, cfg: PixelCNNConfig, shape):
        super().__init__(cfg, shape)
        self.net = GatedPixelCNN(shape[0], cfg)

    # ---- likelihood and training ------------------------------------------------------
    def nll(self, x):  # x in [0, 1], (B, C, H, W) -> -log p of each level, nats, (B, C, H, W)
        logits = self.net(x * 2 - 1)                          # (B, H, W, C, 256)
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))   # at least fp32 (under autocast)
        k = to_levels(x).permute(0, 2, 3, 1)                  # (B, H, W, C)
        nll = F.cross_entropy(logits.reshape(-1, LEVELS), k.reshape(-1), reduction="none")
        return nll.view_as(k).permute(0, 3, 1, 2)             # (B, C, H, W)

    def loss(self, x, y=None):
        nats = self.nll(x).mean()                             # nats per dimension
        return {"loss": nats, "bpd": nats / math.log(2)}

    def log_prob(self, x, generator=None, **options):
        return -self.nll(x).flatten(1).sum(1)                 # log P(k), nats per image, (B,)

    @property
    def nfe(self) -> int:
        c, h, w = self.shape
        return c * h * w

    def sampling_network(self):
        return self.net

    # ---- sampling ---------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n, generator=None):
        """n exact ancestral samples in [0, 1], (n, C, H, W), by the cached sampler."""
        return self.decode_fast(n, self._draw(generator)) / (LEVELS - 1)

    @torch.no_grad()
    def sample_naive(self, n, generator=None):
        """The same samples as `sample`, one full forward pass per pixel and channel (the reference)."""
        return self.decode_naive(n, self._draw(generator)) / (LEVELS - 1)

    @staticmethod
    def _draw(generator):
        def pick(logits, r, c, j):  # (n, 256) -> a level per image by inverse CDF, (n,)
            cdf = logits.softmax(-1).cumsum(-1)
            u = torch.rand(len(logits), 1, generator=generator, device=logits.device, dtype=cdf.dtype)
            return (cdf < u).sum(-1).clamp(max=LEVELS - 1)
        return pick

    def decode_naive(self, n, pick):
        """Levels (n, C, H, W) chosen in raster order by pick(logits (n, 256), r, c, j) -> (n,)."""
        C, H, W = self.shape
        p = next(self.net.parameters())
        k = torch.zeros(n, C, H, W, dtype=torch.long, device=p.device)
        for r in range(H):
            for c in range(W):
                for j in range(C):
                    logits = self.net(k.to(p.dtype) / (LEVELS - 1) * 2 - 1)   # (n, H, W, C, 256)
                    k[:, j, r, c] = pick(logits[:, r, c, j], r, c, j)
        return k

    @one_thread()
    def decode_fast(self, n, pick):
        """As `decode_naive`, computing each layer's output once per row (vertical) or pixel (horizontal)."""
        C, H, W = self.shape
        layers, head = self.net.layers, self.net.head
        p = next(self.net.parameters())
        k = torch.zeros(n, C, H, W, dtype=torch.long, device=p.device)
        # vbuf[i]: layer i's vertical input, zero-padded exactly as in GatedLayer.forward; vbuf[0] holds z = 2x - 1
        vbuf = [p.new_zeros(n, layer.v_conv.in_channels, H + layer.pad_v, W + 2 * layer.side) for layer in layers]
        z = vbuf[0][:, :, layers[0].pad_v:, layers[0].side:layers[0].side + W]             # a view, (n, C, H, W)
        for r in range(H):
            # vertical stack at row r: it reads rows < r of z only, all drawn already
            links = []
            for i, layer in enumerate(layers):
                v, link = layer.vertical(vbuf[i][:, :, r:r + layer.kh])                   # (n, F, 1, W), (n, 2F, 1, W)
                links.append(link[:, :, 0])                                                 # (n, 2F, W)
                if i + 1 < len(layers):
                    nxt = layers[i + 1]
                    vbuf[i + 1][:, :, r + nxt.pad_v:r + nxt.pad_v + 1, nxt.side:nxt.side + W] = v
            # horizontal stack along row r; hbuf[i]: layer i's input on row r, zero-padded on the left
            hbuf = [p.new_zeros(n, layer.h_conv.in_channels, W + layer.pad_h) for layer in layers]
            for c in range(W):
                for i, layer in enumerate(layers):
                    h_in = hbuf[i][:, :, c + layer.pad_h]                                   # (n, c_in)
                    h = layer.horizontal_at(hbuf[i][:, :, c:c + layer.kw], links[i][:, :, c], h_in)   # (n, F)
                    if i + 1 < len(layers):
                        hbuf[i + 1][:, :, c + layers[i + 1].pad_h] = h
                # the head, channel by channel; each drawn level goes into z and layer 0's row buffer
                for j in range(C):
                    k[:, j, r, c] = pick(head.channel(j, h, z[:, :, r, c]), r, c, j)        # logits (n, 256)
                    z[:, j, r, c] = k[:, j, r, c].to(p.dtype) / (LEVELS - 1) * 2 - 1
                    hbuf[0][:, j, c + layers[0].pad_h] = z[:, j, r, c]
        return k
