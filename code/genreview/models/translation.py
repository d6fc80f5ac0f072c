"""Image-to-image GANs: CycleGAN for unpaired translation between two classes (Zhu et al. 2017,
"Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial Networks") and a
Pix2Pix-style conditional GAN for 2x super-resolution (Isola et al. 2017, "Image-to-Image
Translation with Conditional Adversarial Networks"; Ledig et al. 2017, SRGAN).

Both map an image to an image instead of noise to an image, so neither draws unconditional
samples: `sample` raises, `translator = True` tells the pipeline to score them with
`genreview.evaluation.translation` instead of the sampling protocol, and `progress_grid` gives the
trainer's progress pictures (input, output pairs from a fixed set of training images).

CycleGAN. Two domains are two classes of the data (`domain_a`, `domain_b`); the trainer's
mixed-class batches are split by label and the other classes ignored. Generators G_AB, G_BA are
ResNet generators (c7s1-w, stride-2 downsampling, residual blocks, transposed-conv upsampling,
c7s1-C, instance norm, as in the paper's appendix) scaled to 28 x 28; discriminators D_A, D_B are
PatchGANs scaled from 70 x 70 on 256 px to 18 x 18 on 28 px (a 7 x 7 map of patch logits).
Losses: least-squares GAN (Mao et al. 2017), cycle consistency lambda_cyc |G_BA(G_AB(a)) - a|_1
+ lambda_cyc |G_AB(G_BA(b)) - b|_1, and identity lambda_id lambda_cyc (|G_BA(a) - a|_1 + |G_AB(b) - b|_1);
D's loss is halved, one Adam(2e-4, (0.5, 0.999)) for both generators and one for both
discriminators, the rate decaying linearly to 0 over the last half of training. Not here: the
paper's history buffer of 50 past fakes for D.

Super-resolution. The input is the 2x2 mean-pooled image (14 x 14); a residual generator with
sub-pixel upsampling (Shi et al. 2016) predicts the full image as a correction to the bilinear
upsampling of the input (its last layer starts at zero, so an untrained model is bilinear
interpolation). The PatchGAN discriminator sees the pair (bilinear-upsampled input, image), as in
Pix2Pix; the generator minimises adv_weight * GAN loss + l1_weight * L1 (Pix2Pix: 1 and 100).
adv_weight = 0 is the L1-only baseline with the same generator; its discriminator is never stepped.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import data as D
from .base import EMA, GenerativeModel


@dataclass
class CycleGANConfig:
    # The two classes. These defaults are Fashion-MNIST's sneaker and ankle boot (same pose and outline
    # minus the shaft); `data.CYCLEGAN_PAIRS` holds each dataset's pair (`data.dataset_hparams`).
    domain_a: int = 7
    domain_b: int = 9
    width: int = 32             # generator channels at full resolution (x2 per downsampling)
    n_down: int = 2             # stride-2 downsamplings before the residual blocks (2: blocks at 7 x 7)
    res_blocks: int = 6
    width_d: int = 32           # discriminator channels after its first conv
    lambda_cyc: float = 10.0
    lambda_id: float = 0.5      # identity weight, as a fraction of lambda_cyc; 0 skips the identity pass
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    decay_from: float = 0.5     # fraction of training after which the rate falls linearly to 0; 1 = constant
    ema_decay: float = 0.999    # translations for evaluation come from an EMA of the generators; 0 = raw

    def __post_init__(self):
        if self.domain_a == self.domain_b:
            raise ValueError(f"domain_a and domain_b are both {self.domain_a}: pick two different classes")
        if not 0 <= self.decay_from <= 1:
            raise ValueError(f"decay_from ({self.decay_from}) must lie in [0, 1]")


@dataclass
class SuperResolutionConfig:
    width: int = 32             # generator channels at low resolution
    res_blocks: int = 4
    width_d: int = 32
    gan_mode: str = "vanilla"   # vanilla (Pix2Pix's cross-entropy) | lsgan
    adv_weight: float = 1.0     # 0: the L1-only baseline, no discriminator step
    l1_weight: float = 100.0    # Pix2Pix's lambda
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    ema_decay: float = 0.999

    def __post_init__(self):
        if self.gan_mode not in ("vanilla", "lsgan"):
            raise ValueError(f"gan_mode is {self.gan_mode!r}: use 'vanilla' or 'lsgan'")


@dataclass
class SuperResolutionL1Config(SuperResolutionConfig):
    adv_weight: float = 0.0     # the L1-only baseline: same generator, no adversarial term


# ---------------------------------------------------------------------------- networks

class ResBlock(nn.Module):
    """x + conv-(norm)-ReLU-conv-(norm)(x), reflection-padded as in CycleGAN."""

    def __init__(self, ch: int, norm: bool = True):
        super().__init__()
        n = (lambda: nn.InstanceNorm2d(ch)) if norm else nn.Identity
        self.body = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), n(), nn.ReLU(True),
                                  nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), n())

    def forward(self, x):
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """CycleGAN's generator: (B, C, H, W) in [-1, 1] -> (B, C, H, W) in [-1, 1]. H, W divisible by 2^n_down."""

    def __init__(self, c: int, width: int, n_down: int, res_blocks: int):
        super().__init__()
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(c, width, 7), nn.InstanceNorm2d(width), nn.ReLU(True)]
        ch = width
        for _ in range(n_down):                                               # (B, 2ch, H/2, W/2)
            layers += [nn.Conv2d(ch, 2 * ch, 3, 2, 1), nn.InstanceNorm2d(2 * ch), nn.ReLU(True)]
            ch *= 2
        layers += [ResBlock(ch) for _ in range(res_blocks)]
        for _ in range(n_down):                                               # (B, ch/2, 2H, 2W)
            layers += [nn.ConvTranspose2d(ch, ch // 2, 3, 2, 1, output_padding=1),
                       nn.InstanceNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, c, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class PatchDiscriminator(nn.Module):
    """PatchGAN (Isola et al. 2017) scaled to 28 px: (B, c_in, H, W) -> patch logits (B, 1, H/4, W/4),
    each seeing an 18 x 18 pixel patch (4x4 s2, 4x4 s2, 3x3 s1, 1x1)."""

    def __init__(self, c_in: int, width: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(c_in, width, 4, 2, 1), nn.LeakyReLU(0.2, True),                          # (B, w, H/2, W/2)
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.InstanceNorm2d(2 * width), nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * width, 4 * width, 3, 1, 1), nn.InstanceNorm2d(4 * width), nn.LeakyReLU(0.2, True),
            nn.Conv2d(4 * width, 1, 1),                                                        # (B, 1, H/4, W/4)
        )

    def forward(self, x):
        return self.net(x)


class SRGenerator(nn.Module):
    """(B, C, h, w) in [-1, 1] -> (B, C, 2h, 2w): bilinear upsampling plus a learned correction
    (conv, residual blocks without norm, sub-pixel x2 upsampling, conv; the last conv starts at zero)."""

    def __init__(self, c: int, width: int, res_blocks: int):
        super().__init__()
        self.head = nn.Conv2d(c, width, 3, 1, 1)
        self.body = nn.Sequential(*[ResBlock(width, norm=False) for _ in range(res_blocks)])
        self.up = nn.Sequential(nn.Conv2d(width, 4 * width, 3, 1, 1), nn.PixelShuffle(2), nn.ReLU(True))
        self.tail = nn.Conv2d(width, c, 3, 1, 1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, low):
        h = self.head(low)
        h = self.up(h + self.body(h))                                          # (B, w, 2h, 2w)
        return upsample(low) + self.tail(h)


def upsample(low: torch.Tensor) -> torch.Tensor:
    """Bilinear x2: (B, C, h, w) -> (B, C, 2h, 2w)."""
    return F.interpolate(low, scale_factor=2, mode="bilinear", align_corners=False)


def gan_loss(logits: torch.Tensor, real: bool, mode: str) -> torch.Tensor:
    """Mean GAN loss of (patch) logits against the label real/fake: least squares or cross-entropy."""
    logits = logits.float()
    target = torch.full_like(logits, 1.0 if real else 0.0)
    if mode == "lsgan":
        return F.mse_loss(logits, target)
    return F.binary_cross_entropy_with_logits(logits, target)


def _score(logits: torch.Tensor, mode: str) -> torch.Tensor:
    """D's mean verdict, 1 = real: a probability (vanilla) or the least-squares score (lsgan)."""
    logits = logits.detach().float()
    return (torch.sigmoid(logits) if mode == "vanilla" else logits).mean()


def _zero(device) -> torch.Tensor:
    return torch.zeros((), device=device)


def _net_out(net: nn.Module, x: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """[0, 1] in, [0, 1] out, in eval mode and batches."""
    was = net.training
    net.eval()
    out = torch.cat([(net(b * 2 - 1).float() + 1) / 2 for b in x.split(batch)]).clamp(0, 1)
    net.train(was)
    return out


class _Translator(GenerativeModel):
    likelihood = "none"
    translator = True   # evaluated by genreview.evaluation.translation, not by sampling

    def sample(self, n, generator=None, **options):
        raise NotImplementedError(
            f"{type(self).__name__} translates images and has no unconditional samples; evaluate it with "
            f"genreview.evaluation.translation.evaluate_translation (it sets translator = True)")


# ---------------------------------------------------------------------------- CycleGAN

class CycleGAN(_Translator):
    """CycleGAN between classes cfg.domain_a and cfg.domain_b. Args: cfg (CycleGANConfig), shape (C, H, W)
    with H and W divisible by 2^n_down."""

    def __init__(self, cfg: CycleGANConfig, shape):
        super().__init__(cfg, shape)
        c = shape[0]
        self.G_AB = ResnetGenerator(c, cfg.width, cfg.n_down, cfg.res_blocks)
        self.G_BA = ResnetGenerator(c, cfg.width, cfg.n_down, cfg.res_blocks)
        self.D_A = PatchDiscriminator(c, cfg.width_d)
        self.D_B = PatchDiscriminator(c, cfg.width_d)
        for m in self.modules():   # N(0, 0.02), as in the authors' code
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                nn.init.zeros_(m.bias)
        self.ema = nn.ModuleList([EMA(self.G_AB, cfg.ema_decay), EMA(self.G_BA, cfg.ema_decay)]) \
            if cfg.ema_decay > 0 else None

    @property
    def train_classes(self) -> tuple[int, int]:
        """The classes training uses (train.train drops the others from the split)."""
        return self.cfg.domain_a, self.cfg.domain_b

    def split(self, x, y):
        """The batch's images of class domain_a and of domain_b, (n_a, C, H, W) and (n_b, C, H, W)."""
        if y is None:
            raise ValueError("CycleGAN needs the class labels y to split a batch into its two domains")
        return x[y == self.cfg.domain_a], x[y == self.cfg.domain_b]

    def configure_optimizers(self):
        betas = (self.cfg.beta1, self.cfg.beta2)
        g = [*self.G_AB.parameters(), *self.G_BA.parameters()]
        d = [*self.D_A.parameters(), *self.D_B.parameters()]
        return {"g": torch.optim.Adam(g, lr=self.cfg.lr, betas=betas),
                "d": torch.optim.Adam(d, lr=self.cfg.lr, betas=betas)}

    def lr_schedulers(self, optimizers, total_steps):
        start = int(self.cfg.decay_from * total_steps)
        if start >= total_steps:
            return []

        def factor(step):
            return 1.0 if step < start else max(0.0, (total_steps - step) / (total_steps - start))
        return [torch.optim.lr_scheduler.LambdaLR(o, factor) for o in optimizers.values()]

    def generator_losses(self, a, b):
        """G's losses on a (n_a, C, H, W) and b (n_b, C, H, W) in [-1, 1]; either may be empty, and a
        term without images is 0. Returns (losses, fake_b, fake_a); cycle and identity are unweighted
        sums of the two directions' mean L1."""
        cfg, dev = self.cfg, (a if len(a) else b).device
        out = {k: _zero(dev) for k in ("adv_ab", "adv_ba", "cycle", "identity")}
        fake_b = fake_a = None
        if len(a):
            fake_b = self.G_AB(a)                                              # (n_a, C, H, W)
            out["adv_ab"] = gan_loss(self.D_B(fake_b), True, "lsgan")
            out["cycle"] = out["cycle"] + (self.G_BA(fake_b).float() - a).abs().mean()
            if cfg.lambda_id > 0:
                out["identity"] = out["identity"] + (self.G_BA(a).float() - a).abs().mean()
        if len(b):
            fake_a = self.G_BA(b)                                              # (n_b, C, H, W)
            out["adv_ba"] = gan_loss(self.D_A(fake_a), True, "lsgan")
            out["cycle"] = out["cycle"] + (self.G_AB(fake_a).float() - b).abs().mean()
            if cfg.lambda_id > 0:
                out["identity"] = out["identity"] + (self.G_AB(b).float() - b).abs().mean()
        out["g_loss"] = (out["adv_ab"] + out["adv_ba"] + cfg.lambda_cyc * out["cycle"]
                         + cfg.lambda_id * cfg.lambda_cyc * out["identity"])
        return out, fake_b, fake_a

    def discriminator_losses(self, a, b, fake_b, fake_a):
        """Halved least-squares losses of D_A (real a vs G_BA(b)) and D_B (real b vs G_AB(a)); fakes detached."""
        dev = (a if len(a) else b).device
        d_a = d_b = _zero(dev)
        if len(a):
            d_a = d_a + 0.5 * gan_loss(self.D_A(a), True, "lsgan")
            d_b = d_b + 0.5 * gan_loss(self.D_B(fake_b.detach()), False, "lsgan")
        if len(b):
            d_b = d_b + 0.5 * gan_loss(self.D_B(b), True, "lsgan")
            d_a = d_a + 0.5 * gan_loss(self.D_A(fake_a.detach()), False, "lsgan")
        return {"d_a": d_a, "d_b": d_b, "d_loss": d_a + d_b}

    def train_step(self, x, y, optimizers, amp=nullcontext):
        a, b = (h * 2 - 1 for h in self.split(x, y))                           # in [-1, 1]
        counts = {"n_a": torch.tensor(float(len(a)), device=x.device),
                  "n_b": torch.tensor(float(len(b)), device=x.device)}
        if not len(a) and not len(b):
            zero = _zero(x.device)
            keys = ("loss", "g_loss", "d_loss", "adv_ab", "adv_ba", "cycle", "identity", "d_a", "d_b")
            return {**{k: zero for k in keys}, **counts}
        # Generators first, with the discriminators frozen (as in the authors' code).
        self.D_A.requires_grad_(False)
        self.D_B.requires_grad_(False)
        with amp():
            g, fake_b, fake_a = self.generator_losses(a, b)
        optimizers["g"].zero_grad(set_to_none=True)
        g["g_loss"].backward()
        optimizers["g"].step()
        self.D_A.requires_grad_(True)
        self.D_B.requires_grad_(True)
        with amp():
            d = self.discriminator_losses(a, b, fake_b, fake_a)
        optimizers["d"].zero_grad(set_to_none=True)
        d["d_loss"].backward()
        optimizers["d"].step()
        if self.ema is not None:
            self.ema[0].update(self.G_AB)
            self.ema[1].update(self.G_BA)
        out = {"loss": g["g_loss"] + d["d_loss"], **g, **d}
        return {**{k: v.detach().float() for k, v in out.items()}, **counts}

    def loss(self, x, y=None):
        """Both players' losses on a batch, without updating anything (for validation)."""
        a, b = (h * 2 - 1 for h in self.split(x, y))
        g, fake_b, fake_a = self.generator_losses(a, b)
        d = self.discriminator_losses(a, b, fake_b, fake_a)
        return {"loss": g["g_loss"] + d["d_loss"], **g, **d}

    # ---- translation, [0, 1] in and out
    def sampling_network(self):
        return self.ema if self.ema is not None else nn.ModuleList([self.G_AB, self.G_BA])

    def _g(self, i):
        return self.ema[i].net if self.ema is not None else (self.G_AB, self.G_BA)[i]

    @torch.no_grad()
    def translate_ab(self, x):  # (B, C, H, W) in [0, 1], domain A -> domain B
        return _net_out(self._g(0), x)

    @torch.no_grad()
    def translate_ba(self, x):
        return _net_out(self._g(1), x)

    @torch.no_grad()
    def progress_grid(self, split: D.Split, n: int = 64) -> torch.Tensor:
        """(n, C, H, W) in [0, 1]: pairs (a, G_AB(a)) then (b, G_BA(b)) for the first n/4 training images
        of each domain; shown 8 a row, that is 4 pairs."""
        k = max(1, n // 4)
        dev = next(self.parameters()).device
        a = D.to_unit(split.images[split.labels == self.cfg.domain_a][:k]).to(dev)
        b = D.to_unit(split.images[split.labels == self.cfg.domain_b][:k]).to(dev)
        pairs = torch.cat([torch.stack([a, self.translate_ab(a)], 1), torch.stack([b, self.translate_ba(b)], 1)])
        return pairs.flatten(0, 1)[:n]


# ---------------------------------------------------------------------------- super-resolution

class SuperResolutionGAN(_Translator):
    """2x super-resolution, Pix2Pix-style. Args: cfg (SuperResolutionConfig), shape (C, H, W), H and W even."""

    def __init__(self, cfg: SuperResolutionConfig, shape):
        super().__init__(cfg, shape)
        c, h, w = shape
        if h % 2 or w % 2:
            raise ValueError(f"super-resolution by 2 needs even image sides, got {h} x {w}")
        self.G = SRGenerator(c, cfg.width, cfg.res_blocks)
        self.D = PatchDiscriminator(2 * c, cfg.width_d)   # sees (upsampled input, image)
        self.G_ema = EMA(self.G, cfg.ema_decay) if cfg.ema_decay > 0 else None

    @staticmethod
    def downsample(x):  # (B, C, H, W) -> (B, C, H/2, W/2), the 2x2 mean
        return F.avg_pool2d(x, 2)

    def configure_optimizers(self):
        betas = (self.cfg.beta1, self.cfg.beta2)
        return {"g": torch.optim.Adam(self.G.parameters(), lr=self.cfg.lr, betas=betas),
                "d": torch.optim.Adam(self.D.parameters(), lr=self.cfg.lr, betas=betas)}

    def _d(self, cond, img):  # both (B, C, H, W) in [-1, 1] -> patch logits
        return self.D(torch.cat([cond, img], 1))

    def _losses(self, x, amp, optimizers=None):
        cfg = self.cfg
        real = x * 2 - 1                                                       # (B, C, H, W)
        low = self.downsample(real)                                            # (B, C, H/2, W/2)
        cond = upsample(low)
        zero = _zero(x.device)
        out = {"d_loss": zero, "d_real": zero, "d_fake": zero, "adv": zero}
        with amp():
            fake = self.G(low)
        if cfg.adv_weight > 0:   # Pix2Pix: D on (input, real) -> real and (input, G(input)) -> fake, halved
            with amp():
                d_real, d_fake = self._d(cond, real), self._d(cond, fake.detach())
                d_loss = 0.5 * (gan_loss(d_real, True, cfg.gan_mode) + gan_loss(d_fake, False, cfg.gan_mode))
            if optimizers is not None:
                optimizers["d"].zero_grad(set_to_none=True)
                d_loss.backward()
                optimizers["d"].step()
            out.update(d_loss=d_loss, d_real=_score(d_real, cfg.gan_mode), d_fake=_score(d_fake, cfg.gan_mode))
            self.D.requires_grad_(False)
            with amp():
                out["adv"] = gan_loss(self._d(cond, fake), True, cfg.gan_mode)
            self.D.requires_grad_(True)
        out["l1"] = (fake.float() - real).abs().mean()
        out["g_loss"] = cfg.adv_weight * out["adv"] + cfg.l1_weight * out["l1"]
        out["loss"] = out["g_loss"] + out["d_loss"]
        return out

    def train_step(self, x, y, optimizers, amp=nullcontext):
        out = self._losses(x, amp, optimizers)
        optimizers["g"].zero_grad(set_to_none=True)
        out["g_loss"].backward()
        optimizers["g"].step()
        if self.G_ema is not None:
            self.G_ema.update(self.G)
        return {k: v.detach().float() for k, v in out.items()}

    def loss(self, x, y=None):
        """The losses on a batch, without updating anything (for validation)."""
        return self._losses(x, nullcontext)

    def sampling_network(self):
        return self.G_ema.net if self.G_ema is not None else self.G

    @torch.no_grad()
    def upscale(self, low):  # (B, C, H/2, W/2) in [0, 1] -> (B, C, H, W) in [0, 1]
        return _net_out(self.sampling_network(), low)

    @torch.no_grad()
    def progress_grid(self, split: D.Split, n: int = 64) -> torch.Tensor:
        """(n, C, H, W) in [0, 1]: pairs (input upsampled by pixel repetition, output) for n/2 training images."""
        dev = next(self.parameters()).device
        low = self.downsample(D.to_unit(split.images[:max(1, n // 2)]).to(dev))
        pairs = torch.stack([F.interpolate(low, scale_factor=2, mode="nearest"), self.upscale(low)], 1)
        return pairs.flatten(0, 1)[:n]
