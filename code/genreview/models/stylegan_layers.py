"""StyleGAN's equalised-learning-rate building blocks (Karras et al. 2018, section 4.1; StyleGAN2's
gain-corrected leaky ReLU), shared by its generator and discriminator (`genreview.models.stylegan`)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = math.sqrt(2)


def lrelu(x):
    return F.leaky_relu(x, 0.2) * SQRT2  # gain sqrt(2) keeps the variance, as in StyleGAN2


def conv(x, weight, up: bool = False):  # (B, cin, H, W), (cout, cin, k, k) -> (B, cout, H', W')
    if up:  # 4x4 transposed convolution, stride 2: H' = 2H; each output sees 4 of the 16 taps, hence x2
        return F.conv_transpose2d(x, weight.transpose(0, 1), stride=2, padding=1) * 2
    if weight.shape[-1] == 1:  # a 1x1 convolution as a matmul: on a CPU much faster for few channels
        return (weight.flatten(1) @ x.flatten(2)).view(len(x), -1, *x.shape[2:])
    return F.conv2d(x, weight, padding=weight.shape[-1] // 2)


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate: N(0, 1) weights scaled by lr_mul / sqrt(fan_in)."""

    def __init__(self, cin: int, cout: int, bias_init: float = 0.0, lr_mul: float = 1.0, act: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin) / lr_mul)
        self.bias = nn.Parameter(torch.full((cout,), float(bias_init)))
        self.gain, self.lr_mul, self.act = lr_mul / math.sqrt(cin), lr_mul, act

    def forward(self, x):  # (B, cin) -> (B, cout)
        x = F.linear(x, self.weight * self.gain, self.bias * self.lr_mul)
        return lrelu(x) if self.act else x


class EqualConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.gain = 1 / math.sqrt(cin * k * k)

    def forward(self, x):
        x = conv(x, self.weight * self.gain)
        return x if self.bias is None else x + self.bias[None, :, None, None]
