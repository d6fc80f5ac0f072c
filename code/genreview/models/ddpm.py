"""Denoising diffusion probabilistic model (Ho et al. 2020), and Improved DDPM (Nichol and
Dhariwal 2021) as a config variant.

The algorithm wraps the network: `DDPM(cfg)` owns a UNet eps_theta(x_t, t), a noise
schedule, and samplers built on demand. Training draws t uniformly and regresses the
added noise (the "simple" loss, eq. 14); sampling runs a scheduler from pure noise,
either DDPM's ancestral chain or DDIM's (Song et al. 2021) with fewer steps.

`log_prob` is the variational bound of Ho et al. (2020, eq. 5) on the 8-bit data: the prior
term L_T, the denoising KL terms L_{t-1} between q(x_{t-1} | x_t, x_0) and the model's Gaussian
with the posterior variance beta~_t, and a discretised Gaussian decoder L_0 for the 256 pixel
levels (Ho et al. 2020, eq. 13). With `vlb_timesteps` = m > 0 the sum over the T - 1 KL terms
is estimated from m timesteps drawn without replacement (unbiased, m network evaluations per
image instead of T).

Improved DDPM (`IDDPMConfig`: the cosine schedule and `learn_sigma`) learns the reverse variance:
the UNet outputs 2C channels, eps and v, and log Sigma_theta = frac log beta_t + (1 - frac) log beta~_t
with frac = (v + 1) / 2 (Nichol and Dhariwal 2021, eq. 15). It trains on L_hybrid = L_simple +
lambda L_vlb (eq. 16) with a stop-gradient on the mean inside L_vlb, so that the bound trains only
the variance. L_vlb is estimated as T L_t at the drawn t, L_t in bits per dimension (L_0 the decoder,
else the KL), so that lambda = 0.001 gives improved-diffusion's `mse + vb * T / 1000`. The bound in
`log_prob` then uses the Gaussian KL with unequal variances and the decoder's learned scale, and
(`clip_denoised`) the predicted x_0 clipped to [-1, 1] as the samplers clip it: a bound on the model
that is sampled, as in Nichol and Dhariwal's (and Ho et al.'s) NLL evaluation.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import math

import torch
import torch.nn.functional as F

from ..diffusion.samplers import make_scheduler
from ..diffusion.sampling import reverse_process, timestep_batch
from ..diffusion.schedule import NoiseSchedule, make_betas
from ..diffusion.unet import UNet
from ..hparams import hp
from .likelihood import to_levels
from .base import EMA, GenerativeModel, warmup_cosine


@dataclass
class DDPMConfig:
    timesteps: int = hp(1000, minimum=2, maximum=10**5)
    schedule: str = hp("linear", enum=["linear", "cosine"])  # linear | cosine
    beta_start: float = hp(1e-4, exclusive_minimum=0)
    beta_end: float = hp(0.02, exclusive_minimum=0, maximum=1)
    width: int = hp(32, minimum=4)  # UNet channels at full resolution
    mults: list[int] = hp([1, 2, 2], min_items=1, items={"minimum": 1})
    res_blocks: int = hp(1, minimum=1)
    attn_levels: list[int] = hp([2], items={"minimum": 0})
    dropout: float = hp(0.0, minimum=0, maximum=1)
    patch: int = hp(1, minimum=1)  # > 1: space-to-depth stem (cheaper full-resolution layers)
    lr: float = hp(1e-3, exclusive_minimum=0)
    warmup_steps: int = hp(100, minimum=0)
    grad_clip: float = hp(1.0, minimum=0)
    ema_decay: float = hp(0.999, minimum=0, maximum=1)
    sampler: str = hp("ddim", enum=["ddim", "ddpm"])  # ddim | ddpm: the sampler used for evaluation
    sample_steps: int = hp(50, minimum=1, maximum=10**5)  # its number of network evaluations
    ddim_eta: float = hp(0.0, minimum=0)
    spacing: str = hp("trailing", enum=["leading", "trailing"])  # leading | trailing timesteps for DDIM
    learn_sigma: bool = hp(False, doc="learn the reverse variance (Nichol and Dhariwal 2021, eq. 15)")
    hybrid_lambda: float = hp(0.001, minimum=0, doc="L_hybrid = L_simple + lambda L_vlb (with learn_sigma)")
    clip_denoised: bool = hp(False, doc="clip the predicted x_0 to [-1, 1] inside log_prob's bound")

    def __post_init__(self):
        if not 1 <= self.sample_steps <= self.timesteps:
            raise ValueError(f"sample_steps ({self.sample_steps}) must be between 1 and timesteps ({self.timesteps})")
        if self.hybrid_lambda < 0:
            raise ValueError(f"hybrid_lambda ({self.hybrid_lambda}) must be >= 0 (improved-diffusion uses 0.001)")


@dataclass
class IDDPMConfig(DDPMConfig):
    """Improved DDPM (Nichol and Dhariwal 2021): DDPM with the cosine schedule and a learned variance, its
    bound computed with the predicted x_0 clipped to [-1, 1], as improved-diffusion's NLL evaluation does
    (the cosine schedule's last step, beta = 0.999, multiplies an eps error by sqrt(abar_{T-2} / abar_{T-1})
    ~ 30 in the mean, which dominates the bound until eps is learned)."""
    schedule: str = "cosine"
    learn_sigma: bool = True
    clip_denoised: bool = True


class DDPM(GenerativeModel):
    """DDPM with an epsilon-predicting UNet (and a variance-predicting one with learn_sigma).
    Args: cfg (DDPMConfig or IDDPMConfig), shape (C, H, W)."""

    family = "diffusion"
    samplers = ("ddpm", "ddim")
    likelihood = "bound"
    likelihood_note = "variational bound"

    def __init__(self, cfg: DDPMConfig, shape):
        super().__init__(cfg, shape)
        C = shape[0]
        self.unet = UNet(C, cfg.width, tuple(cfg.mults), cfg.res_blocks, tuple(cfg.attn_levels), cfg.dropout,
                         patch=cfg.patch, out_channels=2 * C if cfg.learn_sigma else C)
        self.schedule = NoiseSchedule(make_betas(cfg.schedule, cfg.timesteps, cfg.beta_start, cfg.beta_end))
        self.ema = EMA(self.unet, cfg.ema_decay) if cfg.ema_decay > 0 else None
        if cfg.learn_sigma:
            self.likelihood_note = "variational bound, learned variance"

    def split_output(self, out: torch.Tensor):
        """The network's output -> eps, (B, C, H, W), and v, (B, C, H, W), or None for the fixed variance."""
        return out.chunk(2, dim=1) if self.cfg.learn_sigma else (out, None)

    # ---- training ---------------------------------------------------------------------
    def p_losses(self, x0, t, noise):
        """The optimised loss at timesteps t (B,): L_simple (Ho et al. 2020, eq. 14), or L_hybrid with learn_sigma."""
        return self.p_loss_terms(x0, t, noise)["loss"]

    def p_loss_terms(self, x0, t, noise) -> dict:
        """{"loss"}, or with learn_sigma {"loss", "mse", "vlb"}: loss = mse + hybrid_lambda vlb, where vlb = T L_t is
        the one-timestep estimate of L_vlb (less the prior term) in bits per dimension."""
        x_t = self.schedule.add_noise(x0, noise, t)                              # (B, C, H, W)
        eps, v = self.split_output(self.unet(x_t, t).float())
        mse = F.mse_loss(eps, noise)
        if v is None:
            return {"loss": mse}
        # The stop-gradient on eps: L_vlb trains the variance only (Nichol and Dhariwal 2021, Sec. 3.1).
        vlb = self.cfg.timesteps * self._vb_bits(x0, x_t, t, eps.detach(), v).mean()
        return {"loss": mse + self.cfg.hybrid_lambda * vlb, "mse": mse, "vlb": vlb}

    def _vb_bits(self, x0, x_t, t, eps, v):  # L_t in bits per dim, (B,): L_0 at t = 0, the KL L_{t-1} else
        s = self.schedule
        mean_q, _, log_var_q = s.q_posterior(x0, x_t, t)
        mean_p, _, _ = s.q_posterior(s.predict_start_from_noise(x_t, t, eps), x_t, t)
        log_var_p = s.p_log_variance(v, t)                                       # (B, C, H, W)
        kl = normal_kl(mean_q, log_var_q, mean_p, log_var_p).flatten(1).sum(1)
        nll = -discretized_gaussian_log_likelihood(x0, mean_p, 0.5 * log_var_p)
        return torch.where(t == 0, nll, kl) / (x0[0].numel() * math.log(2))

    def loss(self, x, y=None):
        x0 = x * 2 - 1                                                            # (B, C, H, W) in [-1, 1]
        t = torch.randint(0, self.cfg.timesteps, (len(x),), device=x.device)
        return self.p_loss_terms(x0, t, torch.randn_like(x0))

    def configure_optimizers(self):
        return {"main": torch.optim.Adam(self.unet.parameters(), lr=self.cfg.lr)}

    def lr_schedulers(self, optimizers, total_steps):
        return [warmup_cosine(optimizers["main"], self.cfg.warmup_steps, total_steps)]

    def train_step(self, x, y, optimizers, amp=nullcontext):
        out = super().train_step(x, y, optimizers, amp)
        if self.ema is not None:
            self.ema.update(self.unet)
        return out

    # ---- the variational bound ------------------------------------------------------------
    def _predict(self, net, x_t, t):  # x_0 from eps, (B, C, H, W), and the learned log variance or None, float64
        eps, v = self.split_output(net(x_t.float(), t).double())
        log_var = None if v is None else self.schedule.p_log_variance(v, t)
        x0 = self.schedule.predict_start_from_noise(x_t, t, eps)
        return (x0.clamp(-1, 1) if self.cfg.clip_denoised else x0), log_var

    def _kl_term(self, net, x0, t, generator):  # L_{t-1} for timesteps t >= 1, nats per image (B,)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        x_t = self.schedule.add_noise(x0, noise, t)
        mean_q, var_q, log_var_q = self.schedule.q_posterior(x0, x_t, t)
        x0_hat, log_var_p = self._predict(net, x_t, t)
        mean_p, _, _ = self.schedule.q_posterior(x0_hat, x_t, t)
        if log_var_p is None:  # equal variances: the KL is this
            kl = (mean_q - mean_p).pow(2) / (2 * var_q)
        else:
            kl = normal_kl(mean_q, log_var_q, mean_p, log_var_p)
        return kl.flatten(1).sum(1)

    def _decoder_term(self, net, x0, generator):  # L_0 = -log p(x_0 | x_1), discretised Gaussian
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        t = torch.zeros(len(x0), dtype=torch.long, device=x0.device)
        x1 = self.schedule.add_noise(x0, noise, t)
        mean, log_var = self._predict(net, x1, t)
        log_scale = 0.5 * math.log(float(self.schedule.betas[0])) if log_var is None else 0.5 * log_var
        return -discretized_gaussian_log_likelihood(x0, mean, log_scale)

    def _prior_term(self, x0):  # L_T = KL(q(x_T | x_0) || N(0, I)), (B,)
        a = self.schedule.alphas_cumprod[-1].item()
        mean, var = math.sqrt(a) * x0, 1 - a
        return 0.5 * (mean.pow(2) + var - 1 - math.log(var)).flatten(1).sum(1)

    @torch.no_grad()
    def log_prob(self, x, generator=None, vlb_timesteps: int = 0, **options):
        """Negative of the variational bound on -log P(k), nats per image (B,)."""
        net = self.sampling_network()
        x0 = to_levels(x).double() / 127.5 - 1                                  # (B, C, H, W) on the 256-level grid
        T = self.cfg.timesteps
        ts = torch.arange(1, T, device=x.device)
        if 0 < vlb_timesteps < T - 1:
            ts_pick = torch.randperm(T - 1, generator=generator, device=generator.device if generator else "cpu")
            ts = ts[ts_pick[:vlb_timesteps].to(x.device)]
        kl = sum(self._kl_term(net, x0, torch.full((len(x),), int(t), device=x.device), generator) for t in ts)
        kl = kl * ((T - 1) / len(ts))
        return -(self._prior_term(x0) + kl + self._decoder_term(net, x0, generator)).float()

    # ---- sampling ---------------------------------------------------------------------
    def sampling_network(self):
        return self.ema.net if self.ema is not None else self.unet

    def make_scheduler(self, sampler: str | None = None, steps: int | None = None):
        """The scheduler of `sampler` (ddim | ddpm) set to `steps` steps; None = cfg.sample_steps for
        cfg.sampler, T for the other one."""
        return make_scheduler(self.schedule, self.cfg, sampler, steps)

    def network_evaluations(self, sampler: str | None = None, steps: int | None = None) -> int:
        """Network evaluations per sample for `sampler` with `steps` steps (None = the defaults of
        `make_scheduler`): one per step, eps and v coming from the same forward pass."""
        return len(self.make_scheduler(sampler, steps).timesteps)

    @property
    def nfe(self) -> int:
        return self.network_evaluations()

    @torch.no_grad()
    def sample(self, n, generator=None, sampler=None, steps=None, chain_at=()):
        """Run the reverse process from x_T ~ N(0, I).

        With `chain_at` (timesteps), also returns {t: (x_t, predicted x_0)} for a denoising-chain figure.
        """
        net = self.sampling_network()
        sched = self.make_scheduler(sampler, steps)
        device = next(net.parameters()).device
        x = torch.randn(n, *self.shape, generator=generator, device=device)      # x_T, (n, C, H, W)

        def denoise(x_t, t):  # eps and v (the learned variance's interpolation, or None) from one pass
            return self.split_output(net(x_t, timestep_batch(t, n, device)).float())

        x, chain = reverse_process(denoise, sched, x, generator, chain_at)
        out = ((x + 1) / 2).clamp(0, 1)
        if not chain_at:
            return out
        # the noisy input x_t and the network's guess of x_0 from it, in [0, 1]
        return out, {t: ((x_t.clamp(-1, 1) + 1) / 2, (x0 + 1) / 2) for t, (x_t, x0) in chain.items()}


def normal_kl(mean1, log_var1, mean2, log_var2):
    """KL(N(mean1, exp(log_var1)) || N(mean2, exp(log_var2))), elementwise, nats."""
    return 0.5 * (-1.0 + log_var2 - log_var1 + torch.exp(log_var1 - log_var2)
                  + (mean1 - mean2).pow(2) * torch.exp(-log_var2))


def discretized_gaussian_log_likelihood(x0: torch.Tensor, mean: torch.Tensor, log_scale) -> torch.Tensor:
    """log P(k) of 8-bit images under a Gaussian N(mean, exp(log_scale)^2) integrated over each pixel's
    bin of width 2/255 on [-1, 1], the edge bins extended to infinity (Ho et al. 2020, eq. 13); (B,).
    log_scale: a float, or a tensor that broadcasts against x0 (a learned variance)."""
    inv = torch.exp(-log_scale) if torch.is_tensor(log_scale) else math.exp(-log_scale)
    upper, lower = (x0 - mean + 1 / 255) * inv, (x0 - mean - 1 / 255) * inv
    log_cdf_upper = torch.special.log_ndtr(upper)                 # log P(z < upper)
    log_sf_lower = torch.special.log_ndtr(-lower)                 # log P(z > lower)
    # log(Phi(upper) - Phi(lower)) computed stably on whichever side of the mean the bin lies; the side is
    # chosen before log1p so that the branch not taken cannot put an infinite gradient behind the where.
    right = lower > 0
    base = torch.where(right, log_sf_lower, log_cdf_upper)
    ratio = torch.where(right, torch.special.log_ndtr(-upper) - log_sf_lower,
                        torch.special.log_ndtr(lower) - log_cdf_upper)           # log(Phi(lower) / Phi(upper))
    mid = base + torch.log1p(-torch.exp(ratio))
    logp = torch.where(x0 < -0.999, log_cdf_upper, torch.where(x0 > 0.999, log_sf_lower, mid))
    return logp.flatten(1).sum(1)
