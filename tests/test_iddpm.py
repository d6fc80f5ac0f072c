"""Improved DDPM (Nichol and Dhariwal 2021) as a config variant of DDPM: the learned variance in the
ancestral step against diffusers' "learned_range", the bound with a learned variance against the
fixed-variance bound and torch's Gaussian KL, the hybrid loss (its stop-gradient, its agreement with
the bound, and that it falls), and IDDPMConfig end to end."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from genreview.data import Batches, to_unit
from genreview.diffusion.schedule import NoiseSchedule, make_betas
from genreview.diffusion.scheduling_ddpm import DDPMScheduler
from genreview.models.likelihood import bits_per_dim
from genreview.models.ddpm import DDPM, DDPMConfig, IDDPMConfig, discretized_gaussian_log_likelihood, normal_kl

from conftest import CPU, SHAPE

T = 1000
TINY = {"width": 8, "attn_levels": [], "ema_decay": 0.0}     # a UNet that runs in milliseconds on 8x8 images


def _tiny(cfg_cls=IDDPMConfig, shape=(1, 8, 8), seed=0, **hp) -> DDPM:
    """A tiny model whose output layer is not zero, so that eps and v depend on the input."""
    torch.manual_seed(seed)
    model = DDPM(cfg_cls(**{**TINY, "timesteps": 20, "sample_steps": 5, **hp}), shape)
    with torch.no_grad():
        nn.init.normal_(model.unet.out[-1].weight, std=0.05)
        nn.init.normal_(model.unet.out[-1].bias, std=0.05)
    return model


def _images(n=6, shape=(1, 8, 8), seed=0) -> torch.Tensor:
    """8-bit images k / 255, with both edge levels present."""
    x = torch.randint(0, 256, (n, *shape), generator=torch.Generator().manual_seed(seed)) / 255
    x[:, :, 0, 0], x[:, :, 0, 1] = 0.0, 1.0
    return x


# --------------------------------------------------------------------------- the ancestral step

@pytest.mark.parametrize("beta_schedule", ["linear", "squaredcos_cap_v2"])
@pytest.mark.parametrize("n", [T, 50])
def test_learned_variance_step_matches_diffusers(n, beta_schedule):
    """diffusers' DDPMScheduler(variance_type="learned_range") on the same (eps, v) and noise: it takes
    beta and beta~ of the respaced step (prev_t from its timestep list), so fewer steps are compared too."""
    diffusers = pytest.importorskip("diffusers")
    ref = diffusers.DDPMScheduler(num_train_timesteps=T, beta_schedule=beta_schedule, beta_start=1e-4, beta_end=0.02,
                                  variance_type="learned_range", clip_sample=True, prediction_type="epsilon")
    ref.set_timesteps(n)
    schedule = NoiseSchedule(make_betas("linear" if beta_schedule == "linear" else "cosine", T))
    ours = DDPMScheduler(schedule, clip_sample=True)
    ours.set_timesteps(n)
    ts = ours.timesteps.tolist()
    assert ts == ref.timesteps.tolist()
    shape = (4, 2, 8, 8)
    for i in sorted({0, 1, len(ts) // 3, len(ts) // 2, len(ts) - 2, len(ts) - 1}):
        t = ts[i]
        g = torch.Generator().manual_seed(i)
        x0 = torch.rand(shape, generator=g) * 2 - 1
        eps = torch.randn(shape, generator=g)
        x_t = schedule.add_noise(x0, eps, torch.full((shape[0],), t)).float()
        eps_hat = eps + 0.3 * torch.randn(shape, generator=g)
        v = torch.rand(shape, generator=g) * 2.2 - 1.1                  # a little outside [-1, 1] too
        prev, x0_hat = ours.step(eps_hat, t, x_t, torch.Generator().manual_seed(100 + i), model_var_values=v)
        r = ref.step(torch.cat([eps_hat, v], 1), t, x_t, generator=torch.Generator().manual_seed(100 + i))
        what = f"learned variance ({beta_schedule}, {n} steps) at t={t}"
        torch.testing.assert_close(x0_hat, r.pred_original_sample, rtol=1e-4, atol=1e-4,
                                   msg=lambda m, what=what: f"{what}: predicted x_0: {m}")
        torch.testing.assert_close(prev, r.prev_sample, rtol=1e-4, atol=1e-4,
                                   msg=lambda m, what=what: f"{what}: x_prev: {m}")
        if t > 0:  # v = -1 is the fixed variance beta~; v = +1 (beta) adds more noise
            fixed, _ = ours.step(eps_hat, t, x_t, torch.Generator().manual_seed(1))
            low, _ = ours.step(eps_hat, t, x_t, torch.Generator().manual_seed(1), model_var_values=-torch.ones_like(v))
            high, _ = ours.step(eps_hat, t, x_t, torch.Generator().manual_seed(1), model_var_values=torch.ones_like(v))
            torch.testing.assert_close(low, fixed, rtol=1e-5, atol=1e-6)
            assert (high - fixed).abs().sum() > (low - fixed).abs().sum()


# --------------------------------------------------------------------------- the bound

class _FixedVarianceNet(nn.Module):
    """eps from `net`, and the v that makes the learned variance the fixed model's: v = -1 (beta~_t)
    for t >= 1, v = +1 (beta_1, the fixed decoder's variance) at t = 0."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x, t):
        eps = self.net(x, t)                                                     # (B, C, H, W)
        v = torch.where(t == 0, 1.0, -1.0).to(eps.dtype).view(-1, 1, 1, 1).expand_as(eps)
        return torch.cat([eps, v], 1)


@pytest.mark.parametrize("clip", [False, True])
def test_learned_bound_equals_fixed_bound_at_the_fixed_variance(clip):
    fixed = _tiny(DDPMConfig, schedule="cosine", clip_denoised=clip).eval()
    learned = _tiny(IDDPMConfig, clip_denoised=clip).eval()
    learned.unet = _FixedVarianceNet(fixed.unet)
    x = _images()
    for m in (0, 5):
        a = fixed.log_prob(x, generator=torch.Generator().manual_seed(3), vlb_timesteps=m)
        b = learned.log_prob(x, generator=torch.Generator().manual_seed(3), vlb_timesteps=m)
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-6)
    # and any other variance gives another bound
    other = _tiny(IDDPMConfig, clip_denoised=clip).eval()
    c = other.log_prob(x, generator=torch.Generator().manual_seed(3))
    assert torch.isfinite(c).all() and not torch.allclose(c, a, rtol=1e-3)


def test_normal_kl_matches_torch():
    g = torch.Generator().manual_seed(0)
    m1, m2, lv1, lv2 = (torch.randn(4, 3, 5, 5, generator=g, dtype=torch.float64) for _ in range(4))
    want = torch.distributions.kl_divergence(torch.distributions.Normal(m1, (0.5 * lv1).exp()),
                                             torch.distributions.Normal(m2, (0.5 * lv2).exp()))
    torch.testing.assert_close(normal_kl(m1, lv1, m2, lv2), want, rtol=1e-12, atol=1e-12)
    assert normal_kl(m1, lv1, m1, lv1).abs().max() < 1e-12


def test_decoder_gradient_is_finite_in_the_tails():
    """The learned variance trains through the discretised decoder, so its gradient must be finite where a
    pixel's bin lies far in a tail (the stable branch not taken once gave inf * 0 = NaN behind a where),
    and correct (gradcheck, float64)."""
    x0 = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0, 2 / 255]).view(1, 1, 1, 6)
    mean = torch.tensor([0.9, 0.9, -0.9, -0.9, 0.0, 0.0]).view(1, 1, 1, 6).requires_grad_()
    log_scale = torch.full((1, 1, 1, 6), math.log(0.01)).requires_grad_()
    grads = torch.autograd.grad(discretized_gaussian_log_likelihood(x0, mean, log_scale).sum(), [mean, log_scale])
    assert all(torch.isfinite(g).all() for g in grads), grads
    x0, mean = x0.double(), (torch.tensor([-0.98, -0.4, 0.01, 0.52, 0.97, 0.0]).double().view(1, 1, 1, 6)
                             .requires_grad_())
    log_scale = torch.tensor([-2.0, -3.0, -4.0, -3.5, -2.5, -5.0], dtype=torch.float64).view(1, 1, 1, 6)
    assert torch.autograd.gradcheck(lambda m, s: discretized_gaussian_log_likelihood(x0, m, s),
                                    (mean, log_scale.requires_grad_()))


# --------------------------------------------------------------------------- the hybrid loss

def test_vlb_trains_only_the_variance():
    """L_vlb's gradient reaches the v channels and not the eps channels (the stop-gradient), L_simple's the
    reverse; with patch 2 the output layer's first C p^2 channels are eps (PixelShuffle keeps channel order)."""
    model = _tiny(patch=2)
    x0 = _images(8) * 2 - 1
    t = torch.tensor([0, 0, 1, 3, 7, 10, 15, 19])
    terms = model.p_loss_terms(x0, t, torch.randn(x0.shape, generator=torch.Generator().manual_seed(0)))
    assert set(terms) == {"loss", "mse", "vlb"}
    torch.testing.assert_close(terms["loss"], terms["mse"] + model.cfg.hybrid_lambda * terms["vlb"])
    w = model.unet.out[-1].weight                                                # (2 C p^2, width, 3, 3)
    n_eps = SHAPE[0] * model.cfg.patch ** 2
    g_vlb, = torch.autograd.grad(terms["vlb"], w, retain_graph=True)
    g_mse, = torch.autograd.grad(terms["mse"], w)
    assert torch.isfinite(g_vlb).all() and torch.isfinite(g_mse).all()
    assert torch.equal(g_vlb[:n_eps], torch.zeros_like(g_vlb[:n_eps])), "L_vlb's gradient reaches eps"
    assert g_vlb[n_eps:].abs().sum() > 0, "L_vlb does not train the variance"
    assert torch.equal(g_mse[n_eps:], torch.zeros_like(g_mse[n_eps:])) and g_mse[:n_eps].abs().sum() > 0


def test_vlb_term_agrees_with_the_bound():
    """sum_t L_t from the training term (float32, one t at a time) plus the prior equals -log_prob in bits per
    dim when both see the same noise: log_prob draws one noise tensor per t = 1..T-1, then one for L_0.
    (Training does not clip the predicted x_0, as in improved-diffusion, so neither does log_prob here.)"""
    model = _tiny(clip_denoised=False).eval()
    x = _images(4)
    T_ = model.cfg.timesteps
    g = torch.Generator().manual_seed(5)
    noises = [torch.randn(x.shape, generator=g, dtype=torch.float64) for _ in range(T_)]   # t = 1..T-1, then t = 0
    with torch.no_grad():
        per_t = [model.p_loss_terms(x * 2 - 1, torch.full((len(x),), t), noises[t - 1 if t else -1].float())["vlb"]
                 for t in range(T_)]
        want = bits_per_dim(model.log_prob(x, generator=torch.Generator().manual_seed(5)).double(), x[0].numel())
    prior = bits_per_dim(-model._prior_term(x.double() * 2 - 1), x[0].numel())
    got = sum(per_t) / T_ + prior.mean()                                         # vlb = T L_t
    assert abs(float(got) - float(want.mean())) < 1e-3 + 1e-6 * float(want.mean()), (float(got), float(want.mean()))


def test_hybrid_loss_falls(small_train):
    """A few dozen steps on real images: the hybrid loss falls on a fixed batch with fixed t and noise,
    and every step returns the same keys (the trainer averages them over a window)."""
    torch.manual_seed(0)
    model = DDPM(IDDPMConfig(width=8, attn_levels=[], timesteps=100, sample_steps=5, lr=3e-3, warmup_steps=2),
                 SHAPE)
    x0 = to_unit(small_train.images[:64]) * 2 - 1
    g = torch.Generator().manual_seed(1)
    t = torch.randint(0, model.cfg.timesteps, (64,), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    with torch.no_grad():
        before = {k: float(v) for k, v in model.p_loss_terms(x0, t, noise).items()}
    opts = model.configure_optimizers()
    keys = set()
    for _, (x, y) in zip(range(30), Batches(small_train, 32, 0, CPU).epoch(0)):
        keys.add(tuple(sorted(model.train_step(x, y, opts))))
    with torch.no_grad():
        after = {k: float(v) for k, v in model.p_loss_terms(x0, t, noise).items()}
    assert keys == {("grad_norm", "loss", "mse", "vlb")}, keys
    assert all(math.isfinite(v) for v in after.values()), after
    assert after["loss"] < 0.7 * before["loss"], f"hybrid loss did not fall: {before} -> {after}"
    assert after["vlb"] < before["vlb"], f"L_vlb did not fall: {before} -> {after}"


# --------------------------------------------------------------------------- IDDPMConfig end to end

def test_iddpm_config_builds_samples_and_scores():
    cfg = IDDPMConfig()
    assert (cfg.schedule, cfg.learn_sigma, cfg.hybrid_lambda, cfg.clip_denoised) == ("cosine", True, 0.001, True)
    base = DDPMConfig()
    assert (base.schedule, base.learn_sigma, base.clip_denoised) == ("linear", False, False)
    model = _tiny(IDDPMConfig, shape=SHAPE, timesteps=40).eval()
    assert model.unet.out[-1].out_channels == 2 * SHAPE[0]
    assert model.likelihood == "bound" and model.likelihood_note == "variational bound, learned variance"
    assert _tiny(DDPMConfig).likelihood_note == "variational bound"
    for sampler in ("ddim", "ddpm"):
        for steps in (1, 4, 7, 40):
            s = model.sample(3, generator=torch.Generator().manual_seed(0), sampler=sampler, steps=steps)
            assert s.shape == (3, *SHAPE) and torch.isfinite(s).all() and s.min() >= 0 and s.max() <= 1, \
                (sampler, steps)
            assert model.network_evaluations(sampler, steps) == steps
    lp = model.log_prob(_images(4, SHAPE), generator=torch.Generator().manual_seed(0), vlb_timesteps=5)
    bpd = bits_per_dim(lp, math.prod(SHAPE))
    assert torch.isfinite(lp).all() and (bpd > 0).all() and (bpd < 64).all(), bpd


def test_network_evaluations_and_step_counts():
    model = _tiny(IDDPMConfig, timesteps=1000, sample_steps=50)
    assert model.nfe == model.network_evaluations() == 50                   # cfg.sampler (ddim), cfg.sample_steps
    assert model.network_evaluations("ddpm") == 1000                         # the other sampler: all T steps
    for sampler in ("ddim", "ddpm"):
        for k in (10, 20, 50, 100, 1000):
            assert model.network_evaluations(sampler, k) == k
        for k in (0, 1001):
            with pytest.raises(ValueError, match="ask for 1 to 1000 steps"):
                model.network_evaluations(sampler, k)
    with pytest.raises(ValueError, match="unknown sampler"):
        model.network_evaluations("euler", 10)
    with pytest.raises(ValueError, match="hybrid_lambda"):
        IDDPMConfig(hybrid_lambda=-1.0)
