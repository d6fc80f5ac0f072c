"""WGAN (Arjovsky, Chintala and Bottou 2017) on DCGAN's networks, and the critic-GAN base that
WGAN-GP (`wgan_gp`) and the projection cGAN (`cgan`) share.

- WGAN (Arjovsky, Chintala and Bottou 2017): the discriminator becomes a critic f whose logit is
  an estimate of the Wasserstein-1 distance, E f(x) - E f(G(z)), kept (roughly) Lipschitz by
  clipping its weights to [-c, c]; RMSprop, n_critic critic steps per generator step.

All keep DCGAN's generator, its EMA, `likelihood = "none"` and one-pass sampling. One `train_step`
call is one critic step on its batch; G steps on every n_critic-th call (a counter in a buffer, so a
checkpoint resumes it), so the trainer's batches, logs and checkpoints are those of any model.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch

from ..hparams import hp
from .base import mirrored, register_mirrored, set_mirrored
from .dcgan import DCGAN, DCGANConfig


@dataclass
class CriticGANConfig(DCGANConfig):
    n_critic: int = hp(5, minimum=1, doc="critic steps per generator step: G steps on every n_critic-th train_step")


class CriticGAN(DCGAN):
    """DCGAN with n_critic steps of D per step of G. Args: cfg (CriticGANConfig), shape (C, H, W).

    Every call returns the same keys; "g_loss" is G's loss at its latest step (0 before the first)."""

    d_output = "critic"  # unbounded scores (Wasserstein critic, hinge loss), not probabilities

    def __init__(self, cfg: CriticGANConfig, shape):
        super().__init__(cfg, shape)
        register_mirrored(self, "step", 0)                               # train_step calls so far
        self.register_buffer("last_g_loss", torch.zeros(()))             # reported between G's steps

    @classmethod
    def steps_per_generator_update(cls, cfg) -> int:
        return int(cfg.n_critic)

    def train_step(self, x, y, optimizers, amp=nullcontext):
        step = mirrored(self, "step") + 1
        set_mirrored(self, "step", step)
        generator_turn = step % self.cfg.n_critic == 0
        fake, d = self.critic_step(x * 2 - 1, y, optimizers, amp, generator_turn)
        if generator_turn:
            self.last_g_loss.copy_(self.generator_step(fake, y, optimizers, amp))
        g_loss = self.last_g_loss.clone()
        return {"loss": d["d_loss"] + g_loss, "g_loss": g_loss, **d}


# ---------------------------------------------------------------------------------------- WGAN

@dataclass
class WGANConfig(CriticGANConfig):
    lr_g: float = 5e-5         # RMSprop for both players (beta1 and beta2 are not used)
    lr_d: float = 5e-5
    clip: float = hp(0.01, exclusive_minimum=0, doc="c: every critic parameter is clipped to [-c, c]")
    n_critic: int = 5


class WGAN(CriticGAN):
    """Wasserstein GAN (Arjovsky et al. 2017, Algorithm 1). Args: cfg (WGANConfig), shape (C, H, W).

    The critic is DCGAN's discriminator, batch norm included as in the paper, read without a
    sigmoid; all its parameters are clipped after every update (and at the start)."""

    def __init__(self, cfg: WGANConfig, shape):
        super().__init__(cfg, shape)
        self.after_critic_update()

    def configure_optimizers(self):
        return {"d": torch.optim.RMSprop(self.D.parameters(), lr=self.cfg.lr_d),
                "g": torch.optim.RMSprop(self.G.parameters(), lr=self.cfg.lr_g)}

    @torch.no_grad()
    def after_critic_update(self):
        for p in self.D.parameters():
            p.clamp_(-self.cfg.clip, self.cfg.clip)

    def critic_losses(self, real, fake, y):
        """The critic maximises E f(x) - E f(G(z)), the estimate of W(P_data, P_G) reported as "wasserstein"."""
        f_real = self.D(real).float()                                          # (B,)
        f_fake = self.D(fake).float()
        w = f_real.mean() - f_fake.mean()
        return {"d_loss": -w, "d_real": f_real.mean(), "d_fake": f_fake.mean(), "wasserstein": w}

    def generator_loss(self, fake, y):
        return -self.D(fake).float().mean()


# ------------------------------------------------------------------------------------- WGAN-GP
