"""WGAN-GP (Gulrajani et al. 2017) on DCGAN's networks: WGAN (`wgan`) with its weight clipping
replaced by a penalty lambda (||grad f(x_hat)|| - 1)^2 on random interpolates x_hat of real and fake
images; Adam(0, 0.9); a critic without batch norm.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..hparams import hp
from .dcgan import Discriminator

from .wgan import CriticGANConfig, WGAN


@dataclass
class WGANGPConfig(CriticGANConfig):
    lr_g: float = 1e-4
    lr_d: float = 1e-4
    beta1: float = 0.0
    beta2: float = 0.9
    gp_weight: float = hp(10.0, minimum=0)  # lambda
    # layer (GroupNorm(1, C)) | none: the penalty is per sample, so no batch norm
    critic_norm: str = hp("layer", enum=["layer", "none"])
    n_critic: int = 5


def gradient_penalty(critic, real, fake, eps):
    """E (||grad_x critic(x_hat)||_2 - 1)^2 at x_hat = eps real + (1 - eps) fake (Gulrajani et al. 2017,
    Algorithm 1), (); eps (B, 1, 1, 1). Differentiable in the critic's parameters, not in the fakes."""
    x_hat = (eps * real + (1 - eps) * fake).detach().requires_grad_(True)   # (B, C, H, W)
    with torch.enable_grad():  # also under no_grad (validation)
        out = critic(x_hat)                                                  # (B,)
        grad, = torch.autograd.grad(out.sum(), x_hat, create_graph=True)     # (B, C, H, W), per sample
    return (grad.float().flatten(1).norm(dim=1) - 1).pow(2).mean()


class WGANGP(WGAN):
    """WGAN with a gradient penalty (Gulrajani et al. 2017). Args: cfg (WGANGPConfig), shape (C, H, W)."""

    def make_discriminator(self):
        if self.cfg.critic_norm == "batch":
            raise ValueError("wgan_gp.critic_norm 'batch': the gradient penalty is per sample, which batch norm "
                             "breaks; use layer or none (Gulrajani et al. 2017, section 4)")
        c, h, w = self.shape
        return Discriminator(c, h, w, self.cfg.width_d, norm=self.cfg.critic_norm)

    def configure_optimizers(self):
        betas = (self.cfg.beta1, self.cfg.beta2)  # the paper's (0, 0.9) by default
        return {"d": torch.optim.Adam(self.D.parameters(), lr=self.cfg.lr_d, betas=betas),
                "g": torch.optim.Adam(self.G.parameters(), lr=self.cfg.lr_g, betas=betas)}

    def after_critic_update(self):
        pass  # the penalty replaces the clipping

    def critic_losses(self, real, fake, y):
        d = super().critic_losses(real, fake, y)
        eps = torch.rand(len(real), 1, 1, 1, device=real.device)            # (B, 1, 1, 1)
        d["gp"] = gradient_penalty(self.D, real, fake, eps)
        d["d_loss"] = d["d_loss"] + self.cfg.gp_weight * d["gp"]
        return d


# ------------------------------------------------------------- conditional GAN, projection D
