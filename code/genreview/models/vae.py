"""Variational autoencoder (Kingma and Welling 2014), convolutional, Gaussian latent.

The encoder q(z|x) is a diagonal Gaussian; the decoder p(x|z) a Bernoulli per pixel
on intensities in [0, 1]; the prior p(z) = N(0, I). Training maximises the evidence
lower bound ELBO = E_q[log p(x|z)] - KL(q(z|x) || p(z)), with the KL term in closed form
and the expectation estimated by one reparameterised sample.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .base import GenerativeModel


@dataclass
class VAEConfig:
    latent_dim: int = 16     # size of z
    width: int = 32          # channels of the first conv layer (doubled once)
    beta: float = 1.0        # weight of the KL term (1 = the ELBO)
    lr: float = 1e-3
    grad_clip: float = 0.0   # 0 disables clipping


class Encoder(nn.Module):
    def __init__(self, c: int, h: int, w: int, width: int, latent: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(c, width, 4, 2, 1), nn.SiLU(),               # (B, w, H/2, W/2)
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.SiLU(),       # (B, 2w, H/4, W/4)
        )
        self.fc = nn.Linear(2 * width * (h // 4) * (w // 4), 2 * latent)

    def forward(self, x):  # (B, C, H, W) -> mean, log-variance, each (B, latent)
        mu, logvar = self.fc(self.conv(x).flatten(1)).chunk(2, dim=1)
        return mu, logvar


class Decoder(nn.Module):
    def __init__(self, c: int, h: int, w: int, width: int, latent: int):
        super().__init__()
        self.hw = (h // 4, w // 4)
        self.fc = nn.Sequential(nn.Linear(latent, 2 * width * self.hw[0] * self.hw[1]), nn.SiLU())
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.SiLU(),  # (B, w, H/2, W/2)
            nn.ConvTranspose2d(width, c, 4, 2, 1),                     # (B, C, H, W) logits
        )

    def forward(self, z):  # (B, latent) -> Bernoulli logits (B, C, H, W)
        return self.deconv(self.fc(z).view(len(z), -1, *self.hw))


class VAE(GenerativeModel):
    """Convolutional VAE. Args: cfg (VAEConfig), shape (C, H, W) with H and W divisible by 4."""

    likelihood = "bound"

    def __init__(self, cfg: VAEConfig, shape):
        super().__init__(cfg, shape)
        c, h, w = shape
        self.encoder = Encoder(c, h, w, cfg.width, cfg.latent_dim)
        self.decoder = Decoder(c, h, w, cfg.width, cfg.latent_dim)

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z):  # (B, latent) -> mean image in [0, 1]
        return torch.sigmoid(self.decoder(z).float())

    def elbo_terms(self, x):
        mu, logvar = self.encoder(x)
        mu, logvar = mu.float(), logvar.float()
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()          # reparameterisation
        logits = self.decoder(z).float()
        rec = F.binary_cross_entropy_with_logits(logits, x.float(), reduction="none").flatten(1).sum(1)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)      # KL(q || N(0, I)), (B,)
        return rec, kl

    def loss(self, x, y=None):
        rec, kl = self.elbo_terms(x)
        loss = (rec + self.cfg.beta * kl).mean()
        return {"loss": loss, "recon": rec.mean(), "kl": kl.mean()}

    def log_prob(self, x):
        rec, kl = self.elbo_terms(x)
        return -(rec + kl)  # the ELBO, a lower bound on log p(x), nats per image

    @torch.no_grad()
    def reconstruct(self, x):
        mu, _ = self.encoder(x)
        return self.decode(mu)

    @torch.no_grad()
    def sample(self, n, generator=None):
        z = torch.randn(n, self.cfg.latent_dim, generator=generator, device=self._device())
        return self.decode(z)

    def sampling_network(self):
        return self.decoder

    def _device(self):
        return next(self.parameters()).device
