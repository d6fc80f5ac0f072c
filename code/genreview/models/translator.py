"""What the image-to-image GANs (`cyclegan`, `srgan`) share: residual blocks, a PatchGAN
discriminator, the GAN losses, and the base class of a translator.

Both map an image to an image instead of noise to an image, so neither draws unconditional
samples: `sample` raises, `translator` ("unpaired" or "super_resolution") tells the pipeline to score them with
`genreview.evaluation.translation` instead of the sampling protocol, and `progress_grid` gives the
trainer's progress pictures (input, output pairs from a fixed set of training images).
"""


import torch
import torch.nn.functional as F
from torch import nn

from .base import GenerativeModel


class ResBlock(nn.Module):
    """x + conv-(norm)-ReLU-conv-(norm)(x), reflection-padded as in CycleGAN."""

    def __init__(self, ch: int, norm: bool = True):
        super().__init__()
        n = (lambda: nn.InstanceNorm2d(ch)) if norm else nn.Identity
        self.body = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), n(), nn.ReLU(True),
                                  nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), n())

    def forward(self, x):
        return x + self.body(x)


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


def gan_loss(logits: torch.Tensor, real: bool, mode: str) -> torch.Tensor:
    """Mean GAN loss of (patch) logits against the label real/fake: least squares or cross-entropy."""
    logits = logits.float()
    target = torch.full_like(logits, 1.0 if real else 0.0)
    if mode == "lsgan":
        return F.mse_loss(logits, target)
    return F.binary_cross_entropy_with_logits(logits, target)


def d_score(logits: torch.Tensor, mode: str) -> torch.Tensor:
    """D's mean verdict, 1 = real: a probability (vanilla) or the least-squares score (lsgan)."""
    logits = logits.detach().float()
    return (torch.sigmoid(logits) if mode == "vanilla" else logits).mean()


def scalar_zero(device) -> torch.Tensor:
    return torch.zeros((), device=device)


def batched(net: nn.Module, x: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """[0, 1] in, [0, 1] out, in eval mode and batches."""
    was = net.training
    net.eval()
    out = torch.cat([(net(b * 2 - 1).float() + 1) / 2 for b in x.split(batch)]).clamp(0, 1)
    net.train(was)
    return out


class Translator(GenerativeModel):
    """Base of the image-to-image families; each names its task in `translator` ("unpaired",
    "super_resolution"), which `genreview.evaluation.translation` scores."""

    family = "translation"
    likelihood = "none"

    def sample(self, n, generator=None, **options):
        raise NotImplementedError(
            f"{type(self).__name__} translates images and has no unconditional samples; evaluate it with "
            f"genreview.evaluation.translation.evaluate_translation (its `translator` is set)")


# ---------------------------------------------------------------------------- CycleGAN
