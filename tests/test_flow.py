"""The normalizing flow is invertible, its log-determinant is the true one (checked against
autograd's Jacobian), its density and its sampler agree on how much mass lies in [0, 1]^D,
and it learns: a few dozen steps on Fashion-MNIST bring held-out bits/dim below 8."""
from __future__ import annotations

import math

import pytest
import torch

from genreview.data import Batches, to_unit
from genreview.models.base import set_mirrored
from genreview.models.likelihood import LOG_LEVELS, bits_per_dim, dequantize
from genreview.models.flow import ActNorm, Flow, FlowConfig

from conftest import CPU, SHAPE

TINY = dict(levels=2, steps=2, width=16, blocks=1)


def _randomize(model: Flow, seed: int, scale: float = 0.1) -> Flow:
    """Perturb every parameter (the zero-initialised coupling heads too) and mark actnorm initialised,
    so that every layer of the flow does something non-trivial."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
        for m in model.modules():
            if isinstance(m, ActNorm):
                set_mirrored(m, "initialized", True)
    return model.eval()


def _interior(shape, seed: int, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (0.01 + 0.98 * torch.rand(shape, generator=g, dtype=torch.float64)).to(dtype)


def _held_out_bpd(model: Flow, images: torch.Tensor) -> float:
    with torch.no_grad():
        lp = model.log_prob(to_unit(images), generator=torch.Generator().manual_seed(0))
    return float(bits_per_dim(lp, model.dims).mean())


@pytest.fixture(scope="module")
def trained(small_train, test_split):
    """A tiny flow trained 40 steps on real images; its per-step losses and held-out bpd before and after."""
    torch.manual_seed(0)
    model = Flow(FlowConfig(**TINY, lr=3e-3, warmup_steps=5), SHAPE)
    held_out = test_split.images[:256]
    before = _held_out_bpd(model.eval(), held_out)       # in eval mode: actnorm must initialise on training data
    model.train()
    opts = model.configure_optimizers()
    scheds = model.lr_schedulers(opts, 40)
    rows = []
    for x, y in Batches(small_train, 32, 0, CPU).epoch(0):
        rows.append({k: float(v) for k, v in model.train_step(x, y, opts).items()})
        for s in scheds:
            s.step()
        if len(rows) == 40:
            break
    model.eval()
    return model, rows, before, _held_out_bpd(model, held_out)


def test_random_flow_is_invertible():
    torch.manual_seed(0)
    model = _randomize(Flow(FlowConfig(**TINY), SHAPE), seed=1)
    y = _interior((8, *SHAPE), seed=2)
    with torch.no_grad():
        z, logdet = model.transform(y)
        err = (model.inverse(z) - y).abs().max().item()
    assert z.shape == (8, math.prod(SHAPE)) and logdet.shape == (8,)
    assert err < 1e-4, f"inverse(transform(y)) differs from y by up to {err:.2e}"


@pytest.mark.parametrize("preprocess", ["logit", "affine"])
def test_logdet_and_log_prob_match_autograd_jacobian(preprocess):
    """On a (1, 4, 4) image (D = 16) the model's log |det df/dy| equals slogdet of the full Jacobian,
    and log_prob equals log N(f(y)) + that log-determinant - D log 256 at the same dequantisation."""
    torch.manual_seed(0)
    shape = (1, 4, 4)
    model = _randomize(Flow(FlowConfig(**TINY, preprocess=preprocess), shape), seed=3).double()
    y = _interior((1, *shape), seed=4, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: model.transform(v.view(1, *shape))[0][0], y.flatten())
    with torch.no_grad():
        _, logdet = model.transform(y)
    sign, logabsdet = torch.linalg.slogdet(jac)
    assert jac.shape == (16, 16) and sign != 0
    assert abs(float(logdet[0]) - float(logabsdet)) < 1e-8, f"model log-det {float(logdet[0]):.6f}, " \
        f"autograd slogdet {float(logabsdet):.6f}"

    model.float()
    x = torch.round(_interior((1, *shape), seed=5) * 255) / 255                      # an 8-bit image k / 255
    with torch.no_grad():
        lp = model.log_prob(x, generator=torch.Generator().manual_seed(6))
        y = dequantize(x, torch.Generator().manual_seed(6)).double()
        model.double()
        z, _ = model.transform(y)
    jac = torch.autograd.functional.jacobian(lambda v: model.transform(v.view(1, *shape))[0][0], y.flatten())
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum() + torch.linalg.slogdet(jac)[1] - 16 * LOG_LEVELS
    assert abs(float(lp[0]) - float(expected)) < 1e-3, f"log_prob {float(lp[0]):.5f}, expected {float(expected):.5f}"


def test_density_mass_agrees_with_sampler():
    """With alpha = 0.3 the logit maps [0, 1]^D onto a box of base mass well below 1. The integral of
    exp(log_density) over [0, 1]^D (Monte Carlo) must equal the fraction of unclamped samples in [0, 1]^D."""
    torch.manual_seed(0)
    model = _randomize(Flow(FlowConfig(levels=1, steps=2, width=8, alpha=0.3), (1, 2, 2)), seed=7, scale=0.3)
    n, g = 100_000, torch.Generator().manual_seed(8)
    with torch.no_grad():
        p = model.log_density(torch.rand(n, 1, 2, 2, generator=g)).exp()
        inside = ((model.inverse(torch.randn(n, 4, generator=g)) - 0.5).abs() < 0.5).flatten(1).all(1).double()
    mass, frac = float(p.double().mean()), float(inside.mean())
    se = math.sqrt(float(p.double().var()) / n + frac * (1 - frac) / n)
    assert 0.05 < frac < 0.5, f"the test wants a box of small mass, got {frac:.3f}"
    assert abs(mass - frac) < 4 * se, f"integral of the density {mass:.4f} vs sampler's mass {frac:.4f} (se {se:.4f})"


def test_loss_falls_and_beats_uniform(trained):
    model, rows, before, after = trained
    first = sum(r["loss"] for r in rows[:5]) / 5
    last = sum(r["loss"] for r in rows[-5:]) / 5
    assert all(math.isfinite(r["loss"]) and math.isfinite(r["grad_norm"]) for r in rows)
    assert last < first - 0.5, f"flow bits/dim did not fall: first 5 steps {first:.2f}, last 5 {last:.2f}"
    assert after < 8.0, f"held-out bits/dim {after:.2f} after training: no better than a uniform density (8)"
    assert after < before - 1.0, f"held-out bits/dim barely moved: {before:.2f} -> {after:.2f}"


def test_trained_flow_is_invertible(trained, small_train):
    model = trained[0]
    heads = [m.net.head.weight.abs().max().item() for m in model.modules() if hasattr(m, "net")]
    assert min(heads) > 0, "training left a coupling network's output layer at zero"
    for y in (_interior((8, *SHAPE), seed=9), dequantize(to_unit(small_train.images[:8]))):
        with torch.no_grad():
            err = (model.inverse(model.transform(y)[0]) - y).abs().max().item()
        assert err < 1e-4, f"inverse(transform(y)) differs from y by up to {err:.2e} after training"


def test_bf16_autocast_keeps_the_invertible_path_in_float32(trained, small_train):
    model = trained[0]
    x = to_unit(small_train.images[:16])
    with torch.no_grad():
        ref = model.log_prob(x, generator=torch.Generator().manual_seed(0))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            lp = model.log_prob(x, generator=torch.Generator().manual_seed(0))
            z, _ = model.transform(dequantize(x, torch.Generator().manual_seed(0)))
            back = model.inverse(z)
    assert lp.dtype == torch.float32 and z.dtype == torch.float32
    gap = float((bits_per_dim(lp, model.dims) - bits_per_dim(ref, model.dims)).abs().max())
    assert gap < 0.05, f"bits/dim under bf16 autocast differ from float32 by {gap:.3f}"
    # The coupling networks see their inputs rounded to bf16, and the inverse pass recomputes those inputs
    # with float32 rounding errors that can flip a bf16 rounding: the round trip holds to well below a level.
    err = (back - dequantize(x, torch.Generator().manual_seed(0))).abs().max().item()
    assert err < 1 / 256, f"the bf16 round trip differs from y by up to {err:.2e}, more than one level (1/256)"


def test_sample_shape_range_reproducible(trained):
    model = trained[0]
    s1 = model.sample(6, generator=torch.Generator().manual_seed(7))
    s2 = model.sample(6, generator=torch.Generator().manual_seed(7))
    s3 = model.sample(6, generator=torch.Generator().manual_seed(8))
    assert s1.shape == (6, *SHAPE) and s1.dtype == torch.float32
    assert s1.min() >= 0 and s1.max() <= 1
    assert torch.equal(s1, s2) and not torch.equal(s1, s3)
    cold = [model.sample(2, generator=torch.Generator().manual_seed(k), temperature=0.0) for k in (1, 2)]
    assert torch.equal(cold[0], cold[1]), "at temperature 0 every sample is f^{-1}(0)"
    assert model.nfe == 1


def test_config_errors_name_the_problem():
    with pytest.raises(ValueError, match="divisible by 4"):
        Flow(FlowConfig(levels=2), (1, 6, 6))
    with pytest.raises(ValueError, match="preprocess"):
        FlowConfig(preprocess="tanh")
    with pytest.raises(ValueError, match="alpha"):
        FlowConfig(alpha=0.0)
