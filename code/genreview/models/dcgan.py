"""Deep convolutional GAN (Radford et al. 2016) trained with the non-saturating loss of
Goodfellow et al. (2014).

The generator G maps z ~ N(0, I) to an image through transposed convolutions with batch
normalisation; the discriminator D is a strided convolutional classifier with leaky
ReLUs. Each step first updates D on real images and detached fakes, then updates G to
make D call its fakes real. Samples come from an exponential moving average of G's
weights when `ema_decay` > 0 (Yazici et al. 2019).
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .base import EMA, GenerativeModel


@dataclass
class DCGANConfig:
    z_dim: int = 100
    width_g: int = 64        # generator channels: 4x this at H/4, 2x at H/2, then the image
    width_d: int = 64        # discriminator channels after the first conv
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    ema_decay: float = 0.999  # 0 samples from the raw generator


class Generator(nn.Module):
    def __init__(self, c: int, h: int, w: int, z_dim: int, width: int):
        super().__init__()
        self.hw = (h // 4, w // 4)
        self.fc = nn.Sequential(
            nn.Linear(z_dim, 4 * width * self.hw[0] * self.hw[1], bias=False),
            nn.BatchNorm1d(4 * width * self.hw[0] * self.hw[1]), nn.ReLU(True))
        self.net = nn.Sequential(
            nn.ConvTranspose2d(4 * width, 2 * width, 4, 2, 1, bias=False),  # (B, 2w, H/2, W/2)
            nn.BatchNorm2d(2 * width), nn.ReLU(True),
            nn.ConvTranspose2d(2 * width, c, 4, 2, 1), nn.Tanh(),           # (B, C, H, W) in [-1, 1]
        )

    def forward(self, z):  # (B, z_dim) -> (B, C, H, W)
        return self.net(self.fc(z).view(len(z), -1, *self.hw))


class Discriminator(nn.Module):
    def __init__(self, c: int, h: int, w: int, width: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(c, width, 4, 2, 1), nn.LeakyReLU(0.2, True),                  # (B, w, H/2, W/2)
            nn.Conv2d(width, 2 * width, 4, 2, 1, bias=False),                       # (B, 2w, H/4, W/4)
            nn.BatchNorm2d(2 * width), nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * width, 4 * width, 3, 2, 1, bias=False),                   # (B, 4w, H/8, W/8)
            nn.BatchNorm2d(4 * width), nn.LeakyReLU(0.2, True),
            nn.Flatten(),
        )
        self.head = nn.Linear(4 * width * ((h + 7) // 8) * ((w + 7) // 8), 1)

    def forward(self, x):  # (B, C, H, W) in [-1, 1] -> logit (B,)
        return self.head(self.features(x)).squeeze(1)


def _init_dcgan(m: nn.Module) -> None:
    """Radford et al.'s initialisation: N(0, 0.02) weights, BN scales N(1, 0.02)."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class DCGAN(GenerativeModel):
    """DCGAN. Args: cfg (DCGANConfig), shape (C, H, W) with H and W divisible by 4."""

    likelihood = "none"

    def __init__(self, cfg: DCGANConfig, shape):
        super().__init__(cfg, shape)
        c, h, w = shape
        self.G = Generator(c, h, w, cfg.z_dim, cfg.width_g)
        self.D = Discriminator(c, h, w, cfg.width_d)
        self.apply(_init_dcgan)
        self.G_ema = EMA(self.G, cfg.ema_decay) if cfg.ema_decay > 0 else None

    def configure_optimizers(self):
        betas = (self.cfg.beta1, self.cfg.beta2)
        return {"d": torch.optim.Adam(self.D.parameters(), lr=self.cfg.lr_d, betas=betas),
                "g": torch.optim.Adam(self.G.parameters(), lr=self.cfg.lr_g, betas=betas)}

    def _z(self, n, generator=None):
        return torch.randn(n, self.cfg.z_dim, generator=generator, device=self.head_device())

    def head_device(self):
        return next(self.G.parameters()).device

    def train_step(self, x, y, optimizers, amp=nullcontext):
        real = x * 2 - 1                                              # (B, C, H, W) in [-1, 1]
        ones = torch.ones(len(x), device=x.device)
        zeros = torch.zeros(len(x), device=x.device)
        # Discriminator: real -> 1, fake -> 0; the fake is detached so that no gradient reaches G.
        with amp():
            fake = self.G(self._z(len(x)))
            d_real = self.D(real).float()
            d_fake = self.D(fake.detach()).float()
            d_loss = (F.binary_cross_entropy_with_logits(d_real, ones)
                      + F.binary_cross_entropy_with_logits(d_fake, zeros))
        optimizers["d"].zero_grad(set_to_none=True)
        d_loss.backward()
        optimizers["d"].step()
        # Generator: the non-saturating loss -log D(G(z)).
        with amp():
            g_logit = self.D(fake).float()
            g_loss = F.binary_cross_entropy_with_logits(g_logit, ones)
        optimizers["g"].zero_grad(set_to_none=True)
        g_loss.backward()
        optimizers["g"].step()
        if self.G_ema is not None:
            self.G_ema.update(self.G)
        return {"loss": (d_loss + g_loss).detach(), "d_loss": d_loss.detach(), "g_loss": g_loss.detach(),
                "d_real": torch.sigmoid(d_real).mean().detach(), "d_fake": torch.sigmoid(d_fake).mean().detach()}

    def loss(self, x, y=None):
        """Both players' losses on a batch, without updating anything (for validation)."""
        real = x * 2 - 1
        fake = self.G(self._z(len(x)))
        d_real, d_fake = self.D(real).float(), self.D(fake).float()
        d_loss = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                  + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
        g_loss = F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
        return {"loss": d_loss + g_loss, "d_loss": d_loss, "g_loss": g_loss}

    def sampling_network(self):
        return self.G_ema.net if self.G_ema is not None else self.G

    @torch.no_grad()
    def generate(self, z):  # (B, z_dim) -> images in [0, 1]
        net = self.sampling_network()
        was_training = net.training
        net.eval()
        out = (net(z).float() + 1) / 2
        net.train(was_training)
        return out

    @torch.no_grad()
    def sample(self, n, generator=None):
        return self.generate(self._z(n, generator))
