"""A Pix2Pix-style conditional GAN for 2x super-resolution (Isola et al. 2017, "Image-to-Image
Translation with Conditional Adversarial Networks"; Ledig et al. 2017, SRGAN), and its L1-only baseline.

The input is the 2x2 mean-pooled image (14 x 14); a residual generator with
sub-pixel upsampling (Shi et al. 2016) predicts the full image as a correction to the bilinear
upsampling of the input (its last layer starts at zero, so an untrained model is bilinear
interpolation). The PatchGAN discriminator sees the pair (bilinear-upsampled input, image), as in
Pix2Pix; the generator minimises adv_weight * GAN loss + l1_weight * L1 (Pix2Pix: 1 and 100).
adv_weight = 0 is the L1-only baseline with the same generator; its discriminator is never stepped.
"""

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import data as D
from ..hparams import hp
from .base import EMA
from .translator import PatchDiscriminator, ResBlock, Translator, batched, d_score, gan_loss, scalar_zero


@dataclass
class SuperResolutionConfig:
    width: int = hp(32, minimum=1)  # generator channels at low resolution
    res_blocks: int = hp(4, minimum=0)
    width_d: int = hp(32, minimum=1)
    gan_mode: str = hp("vanilla", enum=["vanilla", "lsgan"])  # vanilla (Pix2Pix's cross-entropy) | lsgan
    adv_weight: float = hp(1.0, minimum=0, doc="0: the L1-only baseline, no discriminator step")
    l1_weight: float = hp(100.0, minimum=0)  # Pix2Pix's lambda
    lr: float = hp(2e-4, exclusive_minimum=0)
    beta1: float = hp(0.5, minimum=0, maximum=1)
    beta2: float = hp(0.999, minimum=0, maximum=1)
    ema_decay: float = hp(0.999, minimum=0, maximum=1)

    def __post_init__(self):
        if self.gan_mode not in ("vanilla", "lsgan"):
            raise ValueError(f"gan_mode is {self.gan_mode!r}: use 'vanilla' or 'lsgan'")


@dataclass
class SuperResolutionL1Config(SuperResolutionConfig):
    adv_weight: float = 0.0     # the L1-only baseline: same generator, no adversarial term


# ---------------------------------------------------------------------------- networks


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



class SuperResolutionGAN(Translator):
    """2x super-resolution, Pix2Pix-style. Args: cfg (SuperResolutionConfig), shape (C, H, W), H and W even."""

    translator = "super_resolution"   # upscale: (B, C, H/2, W/2) -> (B, C, H, W)

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
        zero = scalar_zero(x.device)
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
            out.update(d_loss=d_loss, d_real=d_score(d_real, cfg.gan_mode), d_fake=d_score(d_fake, cfg.gan_mode))
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
        return batched(self.sampling_network(), low)

    @torch.no_grad()
    def progress_grid(self, split: D.Split, n: int = 64) -> torch.Tensor:
        """(n, C, H, W) in [0, 1]: pairs (input upsampled by pixel repetition, output) for n/2 training images."""
        dev = next(self.parameters()).device
        low = self.downsample(D.to_unit(split.images[:max(1, n // 2)]).to(dev))
        pairs = torch.stack([F.interpolate(low, scale_factor=2, mode="nearest"), self.upscale(low)], 1)
        return pairs.flatten(0, 1)[:n]
