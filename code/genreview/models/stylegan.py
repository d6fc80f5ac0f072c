"""A style-based GAN (StyleGAN, Karras et al. 2019) with StyleGAN2's weight demodulation, skip
generator and residual discriminator (Karras et al. 2020), scaled down to 28x28 images.

A mapping network turns z ~ N(0, I) into an intermediate latent w. The synthesis network starts
from a learned constant at H/4 x W/4 and, at each of the three resolutions (7, 14, 28 for
Fashion-MNIST), runs modulated convolutions whose per-input-channel scales ("styles") are affine
maps of w, demodulated so that every output channel has unit expected variance; each convolution
adds per-pixel noise scaled by learned per-channel strengths (StyleGAN's per-channel form; StyleGAN2
uses one scalar). The image is the sum of toRGB outputs at every resolution, each upsampled to full
size: StyleGAN2's "skip" generator. The output is linear (no tanh), trained against images scaled
to [-1, 1], and clamped to [0, 1] when sampled.

Every layer reads its own row of ws (B, num_layers, w_dim): two per resolution, the toRGB of one
resolution sharing the row of the next resolution's first convolution, as in StyleGAN2. Training
uses style-mixing regularisation; sampling may use the truncation trick w' = w_avg + psi (w - w_avg),
with w_avg a running mean of w kept during training. Loss: non-saturating logistic for both
players with the R1 penalty (gamma / 2) E ||grad D(x_real)||^2, applied every `r1_every` steps and
scaled by that interval (lazy regularisation). Not included: path-length regularisation, the
blurred resampling filters (here 4x4 transposed convolutions up, bilinear for the skip images,
average pooling down), progressive growing (StyleGAN 1 only).
"""
from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..hparams import hp
from .base import EMA, GenerativeModel, mirrored, register_mirrored, set_mirrored
from .stylegan_layers import SQRT2, EqualConv2d, EqualLinear, conv, lrelu


@dataclass
class StyleGANConfig:
    z_dim: int = hp(64, minimum=1)
    w_dim: int = hp(64, minimum=1)
    mapping_layers: int = hp(4, minimum=1)
    mapping_lr_mul: float = hp(0.01, exclusive_minimum=0)  # the mapping network learns 100x slower (StyleGAN's setting)
    width_g: int = hp(32, minimum=1)  # synthesis channels: 2x this at H/4 and H/2, 1x at H
    width_d: int = hp(16, minimum=1)  # discriminator channels at H; doubled at each halving
    lr_g: float = hp(2e-3, exclusive_minimum=0)
    lr_d: float = hp(2e-3, exclusive_minimum=0)
    beta1: float = hp(0.0, minimum=0, maximum=1)
    beta2: float = hp(0.99, minimum=0, maximum=1)
    r1_gamma: float = hp(0.1, minimum=0)  # weight of the R1 penalty on real images (0 turns it off)
    r1_every: int = hp(16, minimum=1)  # lazy regularisation: R1 on every this many steps, scaled by it
    mixing_prob: float = hp(0.9, minimum=0, maximum=1)  # chance that a training batch mixes the styles of two z's
    w_avg_beta: float = hp(0.995, minimum=0, maximum=1)  # decay of the running mean of w
    truncation: float = hp(1.0, minimum=0, maximum=1)  # psi used by sample() and generate(); 1 = no truncation
    ema_decay: float = hp(0.998, minimum=0, maximum=1)  # 0 samples from the raw generator


class ModulatedConv2d(nn.Module):
    """Convolution whose input channels are scaled by a style s = A(w) and, with `demodulate`, whose
    output channels are rescaled to unit norm per sample (StyleGAN2, Eq. 1-3). With `up` it is a
    4x4 transposed convolution of stride 2 that doubles the resolution (StyleGAN2 uses a 3x3 one and
    a blur filter; this is DCGAN's upsampling, 3-6x cheaper on a CPU than upsampling then convolving)."""

    def __init__(self, cin: int, cout: int, k: int, w_dim: int, demodulate: bool = True, up: bool = False):
        super().__init__()
        self.affine = EqualLinear(w_dim, cin, bias_init=1.0)  # styles start at 1
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.gain, self.demodulate, self.up = 1 / math.sqrt(cin * k * k), demodulate, up

    def modulated_weight(self, w):  # (B, w_dim) -> the per-sample weights (B, cout, cin, k, k)
        wt = self.weight[None] * self.gain * self.affine(w)[:, None, :, None, None]
        if self.demodulate:
            wt = wt * torch.rsqrt(wt.square().sum((2, 3, 4), keepdim=True) + 1e-8)
        return wt

    def forward(self, x, w):  # (B, cin, H, W), (B, w_dim) -> (B, cout, H', W')
        # Same result as a grouped convolution with modulated_weight(w), but one ordinary convolution:
        # scale the input by s, convolve with the shared weight, rescale the output by the demodulation.
        s = self.affine(w)                                           # (B, cin)
        weight = self.weight * self.gain
        x = conv(x * s[:, :, None, None], weight, self.up)
        if self.demodulate:
            d = torch.rsqrt(s.square() @ weight.square().sum((2, 3)).t() + 1e-8)  # (B, cout)
            x = x * d[:, :, None, None]
        return x


class StyleLayer(nn.Module):
    """Modulated 3x3 convolution, then noise (B, 1, H, W) x per-channel strength, bias, leaky ReLU."""

    def __init__(self, cin: int, cout: int, w_dim: int, res: tuple[int, int], up: bool = False):
        super().__init__()
        self.conv = ModulatedConv2d(cin, cout, 4 if up else 3, w_dim, up=up)
        self.noise_strength = nn.Parameter(torch.zeros(cout))  # zero at first, as in both papers
        self.bias = nn.Parameter(torch.zeros(cout))
        self.register_buffer("noise_const", torch.randn(1, 1, *res))  # for noise="const"
        self.res = res

    def forward(self, x, w, noise):
        x = self.conv(x, w)
        if noise is not None:
            x = x + self.noise_strength[None, :, None, None] * noise
        return lrelu(x + self.bias[None, :, None, None])


class ToRGB(nn.Module):
    def __init__(self, cin: int, channels: int, w_dim: int):
        super().__init__()
        self.conv = ModulatedConv2d(cin, channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x, w):
        return self.conv(x, w) + self.bias[None, :, None, None]


class MappingNetwork(nn.Module):
    """z -> w: pixel norm, then `layers` equalised-lr linear layers with leaky ReLU."""

    def __init__(self, z_dim: int, w_dim: int, layers: int, lr_mul: float):
        super().__init__()
        dims = [z_dim] + [w_dim] * layers
        self.net = nn.Sequential(*[EqualLinear(a, b, lr_mul=lr_mul, act=True) for a, b in zip(dims, dims[1:])])

    def forward(self, z):  # (B, z_dim) -> (B, w_dim)
        return self.net(z * torch.rsqrt(z.square().mean(1, keepdim=True) + 1e-8))


class SynthesisNetwork(nn.Module):
    """ws (B, num_layers, w_dim) -> image (B, C, H, W); three resolutions H/4, H/2, H."""

    def __init__(self, shape, w_dim: int, width: int):
        super().__init__()
        c, h, w = shape
        res = [(h // 4, w // 4), (h // 2, w // 2), (h, w)]
        ch = [2 * width, 2 * width, width]
        self.const = nn.Parameter(torch.randn(1, ch[0], *res[0]))
        layers = [StyleLayer(ch[0], ch[0], w_dim, res[0])]
        for i in (1, 2):
            layers += [StyleLayer(ch[i - 1], ch[i], w_dim, res[i], up=True), StyleLayer(ch[i], ch[i], w_dim, res[i])]
        self.layers = nn.ModuleList(layers)                        # 5 convolutions
        self.torgb = nn.ModuleList(ToRGB(k, c, w_dim) for k in ch)  # 3 outputs
        self.num_layers = 2 * len(res)                             # rows of ws: 6

    def make_noise(self, n, mode="random", generator=None):
        """Noise maps for every layer: "random" (fresh per image), "const" (fixed buffers shared by all
        images, so the output is a function of ws alone) or "none"."""
        if mode == "none":
            return [None] * len(self.layers)
        if mode == "const":
            return [l.noise_const.expand(n, -1, -1, -1) for l in self.layers]
        dev = self.const.device
        return [torch.randn(n, 1, *l.res, generator=generator, device=dev) for l in self.layers]

    def forward(self, ws, noise="random", generator=None):
        if ws.dim() != 3 or ws.shape[1] != self.num_layers:
            raise ValueError(f"ws must be (B, {self.num_layers}, w_dim), got {tuple(ws.shape)}")
        if isinstance(noise, str):
            noise = self.make_noise(len(ws), noise, generator)
        x = self.const.expand(len(ws), -1, -1, -1)                          # (B, 2w, H/4, W/4)
        x = self.layers[0](x, ws[:, 0], noise[0])
        img = self.torgb[0](x, ws[:, 1])                                    # (B, C, H/4, W/4)
        for i in (1, 2):
            x = self.layers[2 * i - 1](x, ws[:, 2 * i - 1], noise[2 * i - 1])  # upsample x2
            x = self.layers[2 * i](x, ws[:, 2 * i], noise[2 * i])
            img = F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False)
            img = img + self.torgb[i](x, ws[:, 2 * i + 1])
        return img                                                          # (B, C, H, W), ~[-1, 1]


class Generator(nn.Module):
    def __init__(self, shape, cfg: StyleGANConfig):
        super().__init__()
        self.mapping = MappingNetwork(cfg.z_dim, cfg.w_dim, cfg.mapping_layers, cfg.mapping_lr_mul)
        self.synthesis = SynthesisNetwork(shape, cfg.w_dim, cfg.width_g)
        self.num_layers = self.synthesis.num_layers
        self.register_buffer("w_avg", torch.zeros(cfg.w_dim))  # running mean of w, for truncation

    def truncate(self, w, psi: float):  # w_avg + psi (w - w_avg)
        return w if psi == 1 else torch.lerp(self.w_avg.to(w.dtype), w, psi)

    def broadcast(self, w):  # (B, w_dim) -> (B, num_layers, w_dim)
        return w[:, None].expand(-1, self.num_layers, -1)

    def forward(self, z, psi: float = 1.0, noise="random", generator=None):  # (B, z_dim) -> (B, C, H, W)
        return self.synthesis(self.broadcast(self.truncate(self.mapping(z), psi)), noise, generator)


class DBlock(nn.Module):
    """Residual discriminator block (StyleGAN2): conv, pool, conv, plus a pooled 1x1 skip; halves H, W."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1, self.conv2 = EqualConv2d(cin, cin, 3), EqualConv2d(cin, cout, 3)
        self.skip = EqualConv2d(cin, cout, 1, bias=False)

    def forward(self, x):  # (B, cin, H, W) -> (B, cout, H/2, W/2)
        y = lrelu(self.conv2(F.avg_pool2d(lrelu(self.conv1(x)), 2)))
        return (y + self.skip(F.avg_pool2d(x, 2))) / SQRT2


def minibatch_stddev(x, group: int = 4):  # (B, C, H, W) -> (B, C + 1, H, W)
    g = next(k for k in range(min(group, len(x)), 0, -1) if len(x) % k == 0)
    y = x.float().view(g, -1, *x.shape[1:])                          # (G, B/G, C, H, W)
    y = ((y - y.mean(0)).square().mean(0) + 1e-8).sqrt().mean((1, 2, 3))  # std over the group, (B/G,)
    y = y.to(x.dtype).view(1, -1, 1, 1, 1).expand(g, -1, 1, *x.shape[2:]).reshape(len(x), 1, *x.shape[2:])
    return torch.cat([x, y], 1)


class Discriminator(nn.Module):
    """fromRGB, two residual blocks (H -> H/4), minibatch stddev, conv, two linear layers -> logit (B,)."""

    def __init__(self, shape, width: int):
        super().__init__()
        c, h, w = shape
        self.from_rgb = EqualConv2d(c, width, 1)
        self.blocks = nn.Sequential(DBlock(width, 2 * width), DBlock(2 * width, 4 * width))
        self.conv = EqualConv2d(4 * width + 1, 4 * width, 3)
        self.fc = EqualLinear(4 * width * (h // 4) * (w // 4), 4 * width, act=True)
        self.out = EqualLinear(4 * width, 1)

    def features(self, x):  # (B, C, H, W) in [-1, 1] -> the input of the last layer, (B, 4w)
        x = self.blocks(lrelu(self.from_rgb(x)))                          # (B, 4w, H/4, W/4)
        x = lrelu(self.conv(minibatch_stddev(x)))
        return self.fc(x.flatten(1))

    def forward(self, x):  # (B, C, H, W) in [-1, 1] -> (B,)
        return self.out(self.features(x)).squeeze(1)


def r1_penalty(logits, x):
    """E_x ||grad_x D(x)||^2 (Mescheder et al. 2018) for logits = D(x), x requiring grad; differentiable."""
    (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    return grad.float().square().flatten(1).sum(1).mean()


class StyleGAN(GenerativeModel):
    """StyleGAN. Args: cfg (StyleGANConfig), shape (C, H, W) with H and W divisible by 4."""

    family = "gan"
    latent_sampling = "generator"  # generate and differentiable_generate on z (B, z_dim)
    style_mixing = True               # style_mix, truncation_sweep, and a truncation psi for sampling
    probe_features = "discriminator"  # features: D's input to its last linear layer
    likelihood = "none"
    d_output = "probability"  # "d_real"/"d_fake": D's mean probability on each

    def __init__(self, cfg: StyleGANConfig, shape):
        super().__init__(cfg, shape)
        if shape[1] % 4 or shape[2] % 4:
            raise ValueError(f"StyleGAN needs H and W divisible by 4, got shape {tuple(shape)}")
        self.G = Generator(shape, cfg)
        self.D = Discriminator(shape, cfg.width_d)
        self.G_ema = EMA(self.G, cfg.ema_decay) if cfg.ema_decay > 0 else None
        register_mirrored(self, "steps", 0)                             # for lazy R1
        self.register_buffer("last_r1", torch.zeros(()))                # reported between R1 steps

    @property
    def num_layers(self) -> int:
        return self.G.num_layers

    def configure_optimizers(self):
        betas = (self.cfg.beta1, self.cfg.beta2)
        return {"d": torch.optim.Adam(self.D.parameters(), lr=self.cfg.lr_d, betas=betas),
                "g": torch.optim.Adam(self.G.parameters(), lr=self.cfg.lr_g, betas=betas)}

    def _z(self, n, generator=None):
        return torch.randn(n, self.cfg.z_dim, generator=generator, device=self.G.w_avg.device)

    def _training_ws(self, n):
        """ws for one training batch, with style mixing: with probability mixing_prob, the rows from a
        random crossover in [1, num_layers) come from a second z. Updates w_avg from the first z's w."""
        w = self.G.mapping(self._z(n))                                   # (B, w_dim)
        with torch.no_grad():
            self.G.w_avg.lerp_(w.detach().float().mean(0), 1 - self.cfg.w_avg_beta)
        ws = self.G.broadcast(w)
        if self.cfg.mixing_prob > 0 and float(torch.rand(())) < self.cfg.mixing_prob:
            cut = int(torch.randint(1, self.num_layers, ()))
            rows = torch.arange(self.num_layers, device=w.device)[None, :, None]
            ws = torch.where(rows < cut, ws, self.G.broadcast(self.G.mapping(self._z(n))))
        return ws

    def train_step(self, x, y, optimizers, amp=nullcontext):
        cfg = self.cfg
        steps = mirrored(self, "steps") + 1
        set_mirrored(self, "steps", steps)
        do_r1 = cfg.r1_gamma > 0 and steps % cfg.r1_every == 0
        real = (x * 2 - 1).detach().requires_grad_(do_r1)                # (B, C, H, W) in [-1, 1]
        # Discriminator: softplus(D(fake)) + softplus(-D(real)), plus lazy R1 on the reals.
        with amp():
            fake = self.G.synthesis(self._training_ws(len(x)))
            d_fake = self.D(fake.detach()).float()
            d_real = self.D(real).float()
        d_loss = F.softplus(d_fake).mean() + F.softplus(-d_real).mean()
        d_total = d_loss
        if do_r1:
            r1 = r1_penalty(d_real, real)
            self.last_r1.copy_(r1.detach())
            d_total = d_loss + cfg.r1_gamma / 2 * cfg.r1_every * r1
        optimizers["d"].zero_grad(set_to_none=True)
        d_total.backward()
        optimizers["d"].step()
        # Generator: the non-saturating loss softplus(-D(G(z))); D's weights get no gradient.
        self.D.requires_grad_(False)
        with amp():
            g_logit = self.D(fake).float()
        g_loss = F.softplus(-g_logit).mean()
        optimizers["g"].zero_grad(set_to_none=True)
        g_loss.backward()
        optimizers["g"].step()
        self.D.requires_grad_(True)
        if self.G_ema is not None:
            self.G_ema.update(self.G)
        return {"loss": (d_loss + g_loss).detach(), "d_loss": d_loss.detach(), "g_loss": g_loss.detach(),
                "r1": self.last_r1.clone(), "d_real": torch.sigmoid(d_real).mean().detach(),
                "d_fake": torch.sigmoid(d_fake).mean().detach()}

    @torch.no_grad()
    def loss(self, x, y=None):
        """Both players' losses on a batch (no R1, no style mixing), without updating anything."""
        d_real = self.D(x * 2 - 1).float()
        d_fake = self.D(self.G(self._z(len(x)))).float()
        d_loss = F.softplus(d_fake).mean() + F.softplus(-d_real).mean()
        g_loss = F.softplus(-d_fake).mean()
        return {"loss": d_loss + g_loss, "d_loss": d_loss, "g_loss": g_loss}

    # ---- sampling, from the EMA generator -------------------------------------------------------
    def sampling_network(self):
        return self.G_ema.net if self.G_ema is not None else self.G

    def _psi(self, truncation):
        return self.cfg.truncation if truncation is None else truncation

    @staticmethod
    def _to_unit(img):
        return ((img.float() + 1) / 2).clamp(0, 1)

    @torch.no_grad()
    def mapping(self, z, truncation: float | None = 1.0):  # (B, z_dim) -> w (B, w_dim)
        """w of the sampling network, truncated by psi = truncation (1: none; None: cfg.truncation)."""
        net = self.sampling_network()
        return net.truncate(net.mapping(z), self._psi(truncation))

    @torch.no_grad()
    def synthesis(self, ws, noise="const", generator=None):  # (B, num_layers, w_dim) -> [0, 1] images
        return self._to_unit(self.sampling_network().synthesis(ws, noise, generator))

    @torch.no_grad()
    def generate(self, z, truncation: float | None = None):
        """(B, z_dim) -> images in [0, 1], a deterministic function of z (the fixed noise maps)."""
        return self.synthesis(self.sampling_network().broadcast(self.mapping(z, truncation)))

    def differentiable_generate(self, z):
        """`generate`'s images (psi = cfg.truncation, fixed noise), differentiable in z (GAN inversion);
        leaves the sampling network in eval mode."""
        net = self.sampling_network().eval()
        ws = net.broadcast(net.truncate(net.mapping(z), self.cfg.truncation))   # (B, num_layers, w_dim)
        return self._to_unit(net.synthesis(ws, "const"))

    @property
    def latent_dim(self) -> int:
        return self.cfg.z_dim

    def features(self, x):  # (B, C, H, W) in [0, 1] -> (B, 4w); the minibatch stddev mixes each image's group
        return self.D.features(x * 2 - 1)

    @torch.no_grad()
    def sample(self, n, generator=None, truncation: float | None = None):
        """n images in [0, 1]; z and per-image noise maps both drawn from `generator`."""
        z = self._z(n, generator)
        return self._to_unit(self.sampling_network()(z, self._psi(truncation), "random", generator))

    @torch.no_grad()
    def style_mix(self, z_rows, z_cols, crossover: int, truncation: float | None = None):
        """The style-mixing table of Karras et al. (2019, Fig. 3): (R + 1, K + 1, C, H, W) in [0, 1].

        Row 0 holds the images of z_cols (columns 1..K), column 0 those of z_rows (rows 1..R), the corner
        is blank (ones). Cell (i, j) takes the coarse styles, ws rows [0, crossover) i.e. the lowest
        resolutions, from z_rows[i-1] and the fine ones, rows [crossover, num_layers), from z_cols[j-1].
        So crossover 0 reproduces the column image and crossover num_layers the row image. Noise is fixed.
        """
        if not 0 <= crossover <= self.num_layers:
            raise ValueError(f"crossover must be in [0, {self.num_layers}], got {crossover}")
        net = self.sampling_network()
        wr, wc = self.mapping(z_rows, truncation), self.mapping(z_cols, truncation)  # (R, w_dim), (K, w_dim)
        R, K, L = len(wr), len(wc), self.num_layers
        coarse = (torch.arange(L, device=wr.device) < crossover)[None, None, :, None]
        mixed = torch.where(coarse, wr[:, None, None], wc[None, :, None]).flatten(0, 1)  # (R K, L, w_dim)
        imgs = self.synthesis(torch.cat([net.broadcast(wc), net.broadcast(wr), mixed]))
        grid = torch.ones(R + 1, K + 1, *imgs.shape[1:], device=imgs.device)
        grid[0, 1:], grid[1:, 0], grid[1:, 1:] = imgs[:K], imgs[K:K + R], imgs[K + R:].view(R, K, *imgs.shape[1:])
        return grid

    @torch.no_grad()
    def truncation_sweep(self, z, psis):
        """Images of each z at each psi, (len(z), len(psis), C, H, W) in [0, 1], with fixed noise."""
        net = self.sampling_network()
        w = net.mapping(z)
        ws = torch.stack([net.truncate(w, float(p)) for p in psis], 1).flatten(0, 1)  # (B P, w_dim)
        return self.synthesis(net.broadcast(ws)).view(len(z), len(psis), *self.shape)
