"""The likelihood protocol: bits/dim conversion on cases with known answers, the normalisers the
bounds rely on, and the VAE and DDPM bounds behaving as bounds."""
from __future__ import annotations

import math

import numpy as np
import torch
from conftest import SHAPE, smoke_hparams
from scipy.stats import norm

from genreview.models.likelihood import bits_per_dim, dequantize, discrete_log_prob, to_levels
from genreview.models import build
from genreview.models.ddpm import discretized_gaussian_log_likelihood
from genreview.models.vae import continuous_bernoulli_log_norm

D = 28 * 28


def _images(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *SHAPE), generator=g).float() / 255


def test_uniform_model_is_eight_bits():
    """A density that is uniform on [0, 1]^D scores exactly 8 bits/dim on any 8-bit images."""
    x = _images()
    log_density = torch.zeros(len(x), dtype=torch.float64)           # log p(y) = 0 on the unit cube
    bpd = bits_per_dim(discrete_log_prob(log_density, D), D)
    assert torch.allclose(bpd, torch.full_like(bpd, 8.0), atol=1e-12), bpd


def test_dequantization_round_trips_levels():
    x = _images()
    y = dequantize(x, torch.Generator().manual_seed(0))
    assert (y >= 0).all() and (y < 1).all()
    assert torch.equal(torch.floor(y * 256).long(), to_levels(x)), "y must lie in the bin of its own level"


def test_factorised_gaussian_two_ways():
    """A factorised Gaussian: the protocol's value (dequantised density, its expectation over u in
    closed form) is a lower bound on the exact discrete log-probability (CDF differences per bin,
    scipy) and, for a smooth density, a tight one; and the Monte Carlo dequantisation converges to it."""
    x = _images(8, seed=1).double()
    mu, sigma = 0.45, 0.3
    k = to_levels(x).double().numpy()
    exact = np.log(norm.cdf((k + 1) / 256, mu, sigma) - norm.cdf(k / 256, mu, sigma))
    exact = torch.from_numpy(exact).flatten(1).sum(1)
    a, b = torch.from_numpy(k) / 256 - mu, torch.from_numpy(k + 1) / 256 - mu   # bin edges, centred
    second_moment = (b ** 3 - a ** 3) / (3 * (b - a))                            # E_u[(y - mu)^2]
    expected = discrete_log_prob((-0.5 * math.log(2 * math.pi * sigma ** 2) - second_moment / (2 * sigma ** 2))
                                 .flatten(1).sum(1), D)
    assert (expected <= exact).all(), "the dequantised bound exceeds the exact discrete log-probability"
    gap_bits = (bits_per_dim(expected, D) - bits_per_dim(exact, D)).abs().max()
    assert gap_bits < 1e-4, f"bound and exact value differ by {gap_bits:.2e} bits/dim"
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([discrete_log_prob(torch.distributions.Normal(mu, sigma).log_prob(dequantize(x, g).double())
                                           .flatten(1).sum(1), D) for _ in range(200)])
    se = draws.std(0) / math.sqrt(len(draws))
    assert ((draws.mean(0) - expected).abs() < 4 * se + 1e-9).all(), "Monte Carlo dequantisation is off"


def test_continuous_bernoulli_normaliser_integrates_to_one():
    y = torch.linspace(0, 1, 100_001, dtype=torch.float64)
    for logit in (-8.0, -1.0, -1e-5, 0.0, 0.7, 5.0):
        l_ = torch.tensor(logit, dtype=torch.float64)
        lam = torch.sigmoid(l_)
        dens = torch.exp(continuous_bernoulli_log_norm(l_) + y * lam.log() + (1 - y) * (1 - lam).log())
        assert abs(torch.trapezoid(dens, y).item() - 1) < 1e-6, f"logit {logit}"


def test_discretised_gaussian_sums_to_one_over_levels():
    levels = (torch.arange(256, dtype=torch.float64) / 127.5 - 1).view(256, 1, 1, 1)
    for mean, scale in ((0.3, 0.01), (-0.99, 0.5), (0.0, 1e-3), (0.98, 0.05)):
        lp = discretized_gaussian_log_likelihood(levels, torch.full_like(levels, mean), math.log(scale))
        assert abs(torch.logsumexp(lp, 0).item()) < 1e-9, (mean, scale)


def test_vae_importance_weighting_tightens_the_bound(small_train):
    torch.manual_seed(0)
    model = build("vae", smoke_hparams("vae"), SHAPE).eval()
    x = small_train.images[:64].float() / 255
    b1 = model.log_prob(x, generator=torch.Generator().manual_seed(0), iw_samples=1).mean()
    b32 = model.log_prob(x, generator=torch.Generator().manual_seed(0), iw_samples=32).mean()
    assert math.isfinite(b1) and b32 > b1, f"IWAE k=32 ({b32:.1f}) should exceed k=1 ({b1:.1f}) nats"
    assert bits_per_dim(b32, D) > 0


def test_ddpm_bound_subsampled_timesteps_estimate_the_full_sum(small_train):
    torch.manual_seed(0)
    model = build("ddpm", {**smoke_hparams("ddpm"), "timesteps": 20, "sample_steps": 5}, SHAPE).eval()
    x = small_train.images[:4].float() / 255
    full = torch.stack([model.log_prob(x, generator=torch.Generator().manual_seed(s)) for s in range(10)]).mean(0)
    part = torch.stack([model.log_prob(x, generator=torch.Generator().manual_seed(s), vlb_timesteps=5)
                        for s in range(60)]).mean(0)
    assert torch.isfinite(full).all() and torch.isfinite(part).all()
    rel = ((part - full).abs() / full.abs()).max()
    assert rel < 0.1, f"5-of-19 timestep estimate {part.tolist()} vs full sum {full.tolist()}"
