"""The gated PixelCNN: its masks are causal and blind-spot free, its log-likelihood is the chain
rule of its conditionals, its fast sampler is exact (the same images as the naive loop), and it
learns from a few dozen steps on real Fashion-MNIST images."""
from __future__ import annotations

import math

import pytest
import torch

from genreview.data import Batches, to_unit
from genreview.models.likelihood import to_levels
from genreview.models.pixelcnn import PixelCNN, PixelCNNConfig

from conftest import CPU, SHAPE


def _model(shape, dtype=torch.float64, seed=0, **cfg) -> PixelCNN:
    torch.manual_seed(seed)
    return PixelCNN(PixelCNNConfig(**{"layers": 3, "width": 8, **cfg}), shape).to(dtype).eval()


def _random_images(n, shape, dtype=torch.float64, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *shape), generator=g).to(dtype) / 255


def _influence(model, x):
    """(D, C, H, W): |d logits of dimension d / d input|, d = (r, c, j) in raster order with channels innermost."""
    C, H, W = model.shape
    dims = [(r, c, j) for r in range(H) for c in range(W) for j in range(C)]
    xs = x[:1].repeat(len(dims), 1, 1, 1).requires_grad_(True)  # one copy per output dimension
    logits = model.net(xs * 2 - 1)                               # (D, H, W, C, 256)
    picked = torch.stack([logits[i, r, c, j] for i, (r, c, j) in enumerate(dims)])
    (grad,) = torch.autograd.grad(picked.sum(), xs)
    return dims, grad.abs()


@pytest.mark.parametrize("shape,cfg", [((1, 8, 8), {}), ((1, 8, 8), {"first_kernel": 3}), ((3, 5, 5), {})])
def test_causal_and_blind_spot_free(shape, cfg):
    model = _model(shape, **cfg)
    C, H, W = shape
    dims, grad = _influence(model, _random_images(1, shape))
    for i, (r, c, j) in enumerate(dims):
        g = grad[i]
        later = [(rr, cc, jj) for (rr, cc, jj) in dims if (rr, cc, jj) >= (r, c, j)]
        leaks = [d for d in later if g[d[2], d[0], d[1]] != 0]
        assert not leaks, f"logits of {(r, c, j)} (row, col, channel) depend on itself or later dims {leaks[:5]}"
        # the pixels just before, and up-right ones that a masked 3x3 PixelCNN misses (its blind spot)
        must = [(r, c - 1), (r - 1, c - 1), (r - 1, c), (r - 1, c + 1), (r - 1, c + 2), (r - 1, c + 3), (r - 2, c + 2)]
        for rr, cc in must:
            if 0 <= rr < H and 0 <= cc < W:
                assert g[:, rr, cc].sum() > 0, f"pixel {(rr, cc)} does not influence the logits of {(r, c, j)}"
        if j > 0:
            assert g[:j, r, c].min() > 0, f"channels < {j} of pixel {(r, c)} do not influence its channel {j}"


@pytest.mark.parametrize("shape", [(1, 8, 8), (2, 4, 5)])
def test_log_prob_is_the_chain_rule(shape):
    """log_prob equals the sum of log-softmax conditionals, each computed by the network on an image
    that holds only the pixels before it (the naive decoder, teacher-forced on the true levels)."""
    model = _model(shape)
    x = _random_images(3, shape)
    k = to_levels(x)
    total = torch.zeros(3, dtype=torch.float64)

    def teacher(logits, r, c, j):
        total.add_(logits.log_softmax(-1).gather(1, k[:, j, r, c, None])[:, 0])
        return k[:, j, r, c]

    model.decode_naive(3, teacher)
    lp = model.log_prob(x)
    assert lp.shape == (3,) and torch.allclose(lp, total, rtol=0, atol=1e-9), f"{lp} vs chain rule {total}"
    D = math.prod(shape)
    with torch.no_grad():
        losses = model.loss(x)
    assert torch.allclose(losses["loss"] * D, -lp.mean(), atol=1e-9), "loss (nats/dim) x D != -mean log_prob"
    assert torch.allclose(losses["bpd"], losses["loss"] / math.log(2))
    assert 6 < float(losses["bpd"]) < 10, f"an untrained model should be near uniform (8 bits/dim): {losses}"


@pytest.mark.parametrize("shape,n,cfg", [((1, 8, 8), 3, {}), ((2, 5, 6), 2, {"kernel": 5}), ((1, 28, 28), 2, {})])
def test_fast_decoder_reproduces_the_network(shape, n, cfg):
    """Teacher-forced on given images, the cached decoder computes the full network's logits at every dimension."""
    model = _model(shape, dtype=torch.float32, **cfg)
    x = _random_images(n, shape, dtype=torch.float32)
    full = model.net(x * 2 - 1)                                  # (n, H, W, C, 256)
    fast = torch.full_like(full, float("nan"))
    k = to_levels(x)

    def teacher(logits, r, c, j):
        fast[:, r, c, j] = logits
        return k[:, j, r, c]

    assert torch.equal(model.decode_fast(n, teacher), k)
    err = (fast - full).abs().max()
    assert err < 1e-4, f"cached decoder's logits differ from the full network's by {err:.2e}"


@pytest.mark.parametrize("shape,n,cfg", [((1, 10, 10), 4, {}), ((3, 6, 6), 3, {}), ((1, 28, 28), 2, {"layers": 2})])
def test_fast_sampler_equals_naive(shape, n, cfg):
    """Same generator seed -> identical images (float64, so that rounding cannot move a draw across a bin edge)."""
    model = _model(shape, **cfg)
    fast = model.sample(n, generator=torch.Generator().manual_seed(5))
    naive = model.sample_naive(n, generator=torch.Generator().manual_seed(5))
    assert fast.shape == (n, *shape) and fast.min() >= 0 and fast.max() <= 1
    assert torch.equal(to_levels(fast).float() / 255, fast), "samples are not on the 8-bit grid k / 255"
    assert torch.equal(fast, naive), f"fast and naive samplers differ at {(fast != naive).sum()} dimensions"
    again = model.sample(n, generator=torch.Generator().manual_seed(5))
    assert torch.equal(fast, again)
    other = model.sample(n, generator=torch.Generator().manual_seed(6))
    assert not torch.equal(fast, other), "samples do not depend on the generator"


def test_interface_and_config():
    model = PixelCNN(PixelCNNConfig(layers=2, width=8), SHAPE)
    assert model.nfe == 28 * 28 and model.likelihood == "exact"
    assert PixelCNN(PixelCNNConfig(layers=2, width=8), (3, 4, 4)).nfe == 48
    with pytest.raises(ValueError, match="odd"):
        PixelCNNConfig(kernel=4)
    with pytest.raises(ValueError, match="positive"):
        PixelCNNConfig(layers=0)


def test_loss_falls(small_train):
    """On a fixed batch of real images, bits/dim fall well below 8 (uniform) in 40 steps."""
    torch.manual_seed(0)
    model = PixelCNN(PixelCNNConfig(layers=2, width=16, lr=3e-3), SHAPE)
    fixed = to_unit(small_train.images[:32])
    with torch.no_grad():
        before = float(model.loss(fixed)["bpd"])
    opts = model.configure_optimizers()
    rows, batches = [], Batches(small_train, 16, 0, CPU)
    for x, y in batches.epoch(0):
        rows.append({k: float(v) for k, v in model.train_step(x, y, opts).items()})
        if len(rows) == 40:
            break
    with torch.no_grad():
        after = float(model.loss(fixed)["bpd"])
    assert all(math.isfinite(r["loss"]) for r in rows)
    first = sum(r["bpd"] for r in rows[:5]) / 5
    last = sum(r["bpd"] for r in rows[-5:]) / 5
    assert last < 0.8 * first, f"training bits/dim did not fall: first 5 steps {first:.2f}, last 5 {last:.2f}"
    assert after < 0.7 * before, f"bits/dim on a fixed batch did not fall: {before:.2f} -> {after:.2f}"


def test_the_same_weights_sample_at_another_size_and_the_resolution_study_times_three():
    """The PixelCNN is convolutional throughout: inside `at_shape` its cached sampler draws images of another
    size, equal to the naive sampler's there; the resolution study times three sizes over its repeats and fits
    a slope per repeat; a model that is not resolution-free refuses `at_shape`."""
    from genreview.evaluation.evaluate import RESOLUTION_REPEATS, resolution_study
    from genreview.models.vae import VAE, VAEConfig

    torch.manual_seed(0)
    model = PixelCNN(PixelCNNConfig(layers=2, width=8, first_kernel=3), (1, 12, 12)).eval()
    with model.at_shape((1, 6, 5)):
        fast = model.sample(2, generator=torch.Generator().manual_seed(3))
        naive = model.sample_naive(2, generator=torch.Generator().manual_seed(3))
    assert fast.shape == (2, 1, 6, 5) and torch.equal(fast, naive) and model.shape == (1, 12, 12)
    r = resolution_study(model, CPU, "fp32", seed=0)
    assert r["pixels"] == [9, 36, 144] and r["sequential_steps"] == r["pixels"]
    assert len(r["sample_ms"]) == len(r["sample_slope"]) == len(r["pass_slope"]) == RESOLUTION_REPEATS
    assert all(math.isfinite(s) for s in r["sample_slope"] + r["pass_slope"]) and model.shape == (1, 12, 12)
    with pytest.raises(ValueError, match="only at its trained shape"):
        with VAE(VAEConfig(latent_dim=4, width=4), SHAPE).at_shape((1, 8, 8)):
            pass
