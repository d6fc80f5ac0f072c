"""The denoising network: a small UNet with a sinusoidal time embedding (Ho et al. 2020,
after Ronneberger et al. 2015), mapping (x_t, t) to a prediction of the added noise.

It knows nothing about noise schedules or samplers; those live beside it in
`genreview.diffusion`. Channel widths, depth and attention resolutions are arguments,
so the same class serves the CPU profile and the GPU profile.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Transformer-style sinusoidal embedding of integer timesteps: (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], dim=1)


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, ch // 4), ch)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, temb: int, dropout: float):
        super().__init__()
        self.norm1, self.conv1 = _norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(temb, cout)
        self.norm2, self.conv2 = _norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x, temb):  # (B, cin, H, W), (B, temb) -> (B, cout, H, W)
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(temb)[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Attention(nn.Module):
    """Multi-head self-attention over the H*W positions of a feature map."""

    def __init__(self, ch: int, heads: int = 4):
        super().__init__()
        self.heads = heads
        self.norm = _norm(ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x):  # (B, C, H, W)
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        # Explicit softmax attention: at a few dozen positions it is faster on CPU than the fused kernel.
        attn = torch.einsum("bhdi,bhdj->bhij", q, k).mul(q.shape[2] ** -0.5).softmax(-1)   # (B, h, HW, HW)
        out = torch.einsum("bhij,bhdj->bhdi", attn, v).reshape(b, c, h, w)
        return x + self.proj(out)


class UNet(nn.Module):
    """eps_theta(x_t, t).

    Args:
        channels: input channels C (image channels, plus any conditioning channels concatenated to x_t).
        out_channels: output channels; None = `channels` (2 C for a learned variance, C for a
            conditioned model whose input carries extra channels).
        width: channels at full resolution.
        mults: channel multiplier per resolution level; each level after the first halves H and W.
        res_blocks: residual blocks per level.
        attn_levels: indices of the levels that get self-attention.
        dropout: dropout inside residual blocks.
        num_classes: > 0 adds a class embedding (for conditional variants).
        patch: > 1 folds patch x patch pixels into channels before the first layer and unfolds them
            after the last (space-to-depth, as in Hoogeboom et al. 2023), cutting the cost of the
            full-resolution layers by about patch^2.
    """

    def __init__(self, channels: int = 1, width: int = 32, mults=(1, 2, 2), res_blocks: int = 1,
                 attn_levels=(2,), dropout: float = 0.0, num_classes: int = 0, patch: int = 1,
                 out_channels: int | None = None):
        super().__init__()
        self.width = width
        out_channels = (channels if out_channels is None else out_channels) * patch * patch
        self.fold = nn.PixelUnshuffle(patch) if patch > 1 else nn.Identity()    # (B, C p^2, H/p, W/p)
        self.unfold = nn.PixelShuffle(patch) if patch > 1 else nn.Identity()
        channels = channels * patch * patch
        temb = 4 * width
        self.time_mlp = nn.Sequential(nn.Linear(width, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.class_emb = nn.Embedding(num_classes + 1, temb) if num_classes else None  # last = unconditional
        self.inp = nn.Conv2d(channels, width, 3, padding=1)

        chans = [width * m for m in mults]
        self.down = nn.ModuleList()
        skips, cin = [], width
        for i, ch in enumerate(chans):
            level = nn.ModuleList()
            for _ in range(res_blocks):
                level.append(ResBlock(cin, ch, temb, dropout))
                cin = ch
                skips.append(ch)
            if i in attn_levels:
                level.append(Attention(ch))
            self.down.append(level)
        self.downsample = nn.ModuleList(nn.Conv2d(c, c, 3, stride=2, padding=1) for c in chans[:-1])

        self.mid = nn.ModuleList([ResBlock(cin, cin, temb, dropout), Attention(cin),
                                  ResBlock(cin, cin, temb, dropout)])

        self.up = nn.ModuleList()
        for i, ch in reversed(list(enumerate(chans))):
            level = nn.ModuleList()
            for _ in range(res_blocks):
                level.append(ResBlock(cin + skips.pop(), ch, temb, dropout))
                cin = ch
            if i in attn_levels:
                level.append(Attention(ch))
            self.up.append(level)
            cin = chans[i - 1] if i > 0 else ch  # after the upsampling conv
        # Upsampling convs already map to the next level's width, so the full-resolution
        # convs stay narrow (they dominate the cost on a CPU).
        self.upsample = nn.ModuleList(nn.Conv2d(chans[i], chans[i - 1], 3, padding=1)
                                      for i in reversed(range(1, len(chans))))
        self.out = nn.Sequential(_norm(cin), nn.SiLU(), nn.Conv2d(cin, out_channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x, t, y=None):  # (B, C, H, W), (B,) [, (B,)] -> (B, out_channels, H, W)
        emb = self.time_mlp(timestep_embedding(t, self.width))
        if self.class_emb is not None:
            emb = emb + self.class_emb(y)
        h = self.inp(self.fold(x))
        skips, sizes = [], []
        for i, level in enumerate(self.down):
            for block in level:
                h = block(h, emb) if isinstance(block, ResBlock) else block(h)
                if isinstance(block, ResBlock):
                    skips.append(h)
            if i < len(self.downsample):
                sizes.append(h.shape[-2:])
                h = self.downsample[i](h)
        h = self.mid[2](self.mid[1](self.mid[0](h, emb)), emb)
        for i, level in enumerate(self.up):
            for block in level:
                h = block(torch.cat([h, skips.pop()], 1), emb) if isinstance(block, ResBlock) else block(h)
            if i < len(self.upsample):
                h = self.upsample[i](F.interpolate(h, size=sizes.pop(), mode="nearest"))
        return self.unfold(self.out(h))
