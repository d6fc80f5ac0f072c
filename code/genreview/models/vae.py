"""Variational autoencoder (Kingma and Welling 2014), convolutional, Gaussian latent.

The encoder q(z|x) is a diagonal Gaussian; the decoder p(x|z) a Bernoulli per pixel
on intensities in [0, 1]; the prior p(z) = N(0, I). Training maximises the evidence
lower bound ELBO = E_q[log p(x|z)] - KL(q(z|x) || p(z)), with the KL term in closed form
and the expectation estimated by one reparameterised sample.

For the likelihood table, `log_prob` is the importance-weighted bound of Burda et al. (2016)
with k samples from q(z|y) on uniformly dequantised data y (see `genreview.models.likelihood`). A
Bernoulli likelihood is not a density on [0, 1], so the bound reads the decoder's output as a
continuous Bernoulli (Loaiza-Ganem and Cunningham 2019): the same logits, with the normaliser
C(l) = l / tanh(l / 2) that makes it one. It is a valid bound, looser than for a decoder
trained with that normaliser.
"""
from __future__ import annotations

from dataclasses import dataclass

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..hparams import hp
from .likelihood import dequantize, discrete_log_prob
from .base import GenerativeModel


@dataclass
class VAEConfig:
    latent_dim: int = hp(16, minimum=1)  # size of z
    width: int = hp(32, minimum=1)  # channels of the first conv layer (doubled once)
    beta: float = hp(1.0, minimum=0)  # weight of the KL term (1 = the ELBO)
    lr: float = hp(1e-3, exclusive_minimum=0)
    grad_clip: float = hp(0.0, minimum=0)  # 0 disables clipping


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

    family = "vae"
    latent_sampling = "encoder"  # encode, decode, reconstruct, elbo
    probe_features = "encoder"   # features: the mean of q(z|x)
    likelihood = "bound"
    likelihood_note = "importance-weighted bound"

    def __init__(self, cfg: VAEConfig, shape):
        super().__init__(cfg, shape)
        c, h, w = shape
        self.encoder = Encoder(c, h, w, cfg.width, cfg.latent_dim)
        self.decoder = Decoder(c, h, w, cfg.width, cfg.latent_dim)

    @property
    def latent_dim(self) -> int:
        return self.cfg.latent_dim

    def encode(self, x):
        return self.encoder(x)

    def features(self, x):  # (B, C, H, W) in [0, 1] -> the mean of q(z|x), (B, latent_dim)
        return self.encode(x)[0]

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

    def elbo(self, x):
        """The training objective's ELBO (Bernoulli decoder on intensities), nats per image, (B,)."""
        rec, kl = self.elbo_terms(x)
        return -(rec + kl)

    @torch.no_grad()
    def log_prob(self, x, generator=None, iw_samples: int = 64, **options):
        """Importance-weighted bound on log P(k) with k = iw_samples, nats per image, (B,)."""
        y = dequantize(x, generator)                                          # (B, C, H, W) in [0, 1)
        mu, logvar = (t.float() for t in self.encoder(y))                    # (B, L) each
        std = (0.5 * logvar).exp()
        terms = []
        for _ in range(iw_samples):
            eps = torch.randn(mu.shape, generator=generator, device=mu.device)
            z = mu + std * eps                                                # (B, L)
            logits = self.decoder(z).float()
            log_px = (continuous_bernoulli_log_norm(logits)
                      - F.binary_cross_entropy_with_logits(logits, y, reduction="none")).flatten(1).sum(1)
            log_pz = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(1)
            log_qz = -0.5 * (eps.pow(2) + math.log(2 * math.pi) + logvar).sum(1)
            terms.append(log_px + log_pz - log_qz)
        log_density = torch.logsumexp(torch.stack(terms), 0) - math.log(iw_samples)
        return discrete_log_prob(log_density, y[0].numel())

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


def continuous_bernoulli_log_norm(logits: torch.Tensor) -> torch.Tensor:
    """log C(l) of the continuous Bernoulli with logit l: C = l / tanh(l / 2), C(0) = 2."""
    small = logits.abs() < 1e-3
    safe = torch.where(small, torch.ones_like(logits), logits)
    exact = torch.log(safe / torch.tanh(safe / 2))
    return torch.where(small, torch.log(2 + logits.pow(2) / 6), exact)
