"""A class-conditional GAN with a projection discriminator (Miyato and Koyama 2018) whose every
weight is spectrally normalised (Miyato et al. 2018), trained with the hinge loss (Lim and Ye
2017): BigGAN's conditioning and normalisation of D (Brock et al. 2019), at DCGAN's scale.
The critic-GAN schedule (n_critic D steps per G step) comes from `wgan.CriticGAN`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..hparams import hp
from .dcgan import Discriminator, Generator

from .wgan import CriticGAN, CriticGANConfig


@dataclass
class CGANConfig(CriticGANConfig):
    num_classes: int = hp(10, minimum=2)
    embed_dim: int = hp(16, minimum=1)  # G's class embedding, concatenated to z
    lr_g: float = 1e-4         # BigGAN's baseline two time-scale rates
    lr_d: float = 4e-4
    beta1: float = 0.0
    beta2: float = 0.999
    n_critic: int = 2          # BigGAN: two D steps per G step


class ConditionalGenerator(Generator):
    """DCGAN's generator on [z, embed(y)]: the class enters through a learned embedding concatenated
    to the noise (Mirza and Osindero 2014), where BigGAN uses class-conditional batch norm.
    Args: c, h, w, z_dim, width as Generator; num_classes, embed_dim."""

    def __init__(self, c, h, w, z_dim, width, num_classes, embed_dim):
        super().__init__(c, h, w, z_dim + embed_dim, width)
        self.embed = nn.Embedding(num_classes, embed_dim)

    def forward(self, z, y):  # (B, z_dim), (B,) -> (B, C, H, W)
        return super().forward(torch.cat([z, self.embed(y)], 1))


class ProjectionDiscriminator(Discriminator):
    """D(x, y) = psi(phi(x)) + <embed(y), phi(x)> (Miyato and Koyama 2018): phi is DCGAN's feature stack
    without batch norm, flattened, psi its linear head. Args: c, h, w, width, num_classes."""

    def __init__(self, c, h, w, width, num_classes):
        super().__init__(c, h, w, width, norm="none")
        self.embed = nn.Embedding(num_classes, self.head.in_features)

    def forward(self, x, y):  # (B, C, H, W) in [-1, 1], (B,) -> (B,)
        phi = self.features(x)                                               # (B, F)
        return self.head(phi).squeeze(1) + (self.embed(y) * phi).sum(1)


class ProjectionCGAN(CriticGAN):
    """Class-conditional GAN: a projection discriminator with spectral normalisation on every layer
    (Miyato et al. 2018) and the hinge loss. Args: cfg (CGANConfig), shape (C, H, W).

    Fakes are drawn for the labels of the real batch, so their classes follow the data's."""

    def __init__(self, cfg: CGANConfig, shape):
        super().__init__(cfg, shape)  # DCGAN's initialisation first; the normalisation then rescales
        for m in self.D.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding)):
                spectral_norm(m)

    def make_generator(self):
        c, h, w = self.shape
        return ConditionalGenerator(c, h, w, self.cfg.z_dim, self.cfg.width_g, self.cfg.num_classes,
                                    self.cfg.embed_dim)

    def make_discriminator(self):
        c, h, w = self.shape
        return ProjectionDiscriminator(c, h, w, self.cfg.width_d, self.cfg.num_classes)

    def _labels(self, n, labels=None):  # -> (n,) long; default: balanced, arange(n) % num_classes
        device = self.head_device()
        if labels is None:
            return torch.arange(n, device=device) % self.cfg.num_classes
        return torch.as_tensor(labels, device=device).long().expand(n)

    def fake_batch(self, n, y):
        if y is None:
            raise ValueError("the conditional GAN trains on labelled batches: pass the labels y")
        return self.G(self._z(n), self._labels(n, y))

    def critic_losses(self, real, fake, y):
        d_real = self.D(real, y).float()                                     # (B,)
        d_fake = self.D(fake, y).float()
        d_loss = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
        return {"d_loss": d_loss, "d_real": d_real.mean(), "d_fake": d_fake.mean()}

    def generator_loss(self, fake, y):
        return -self.D(fake, y).float().mean()

    @torch.no_grad()
    def generate(self, z, labels=None):  # (B, z_dim), labels (B,) or one class -> images in [0, 1]
        net = self.sampling_network()
        was_training = net.training
        net.eval()
        out = (net(z, self._labels(len(z), labels)).float() + 1) / 2
        net.train(was_training)
        return out

    def differentiable_generate(self, z, labels):
        """`generate`'s images for labels (B,), differentiable in z; leaves the sampling network in eval mode."""
        return (self.sampling_network().eval()(z, labels).float() + 1) / 2

    @property
    def num_classes(self) -> int:
        return int(self.cfg.num_classes)

    @torch.no_grad()
    def sample(self, n, generator=None, labels=None):
        """n images in [0, 1], (n, C, H, W), of the classes `labels` ((n,) or one class; default balanced)."""
        return self.generate(self._z(n, generator), labels)
