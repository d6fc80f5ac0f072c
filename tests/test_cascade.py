"""The cascaded diffusion model (Ho et al. 2022): the conditioning path from the 28 x 28 image to
the super-resolution network's input, noise-conditioning augmentation, training on real
Fashion-MNIST, both samplers, and the counts and state the pipeline relies on."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from genreview.data import Batches, to_unit
from genreview.models.cascade import CascadeConfig, CascadedDiffusion

from conftest import CPU, SHAPE

TINY = dict(width=8, mults=[1, 2], attn_levels=[], base_width=8, base_mults=[1, 2], base_attn_levels=[],
            timesteps=100, sample_steps=5, warmup_steps=2, lr=3e-3, aug_max=0.2, aug_levels=4, aug_sample=0.05)


def tiny(**kw) -> CascadedDiffusion:
    return CascadedDiffusion(CascadeConfig(**{**TINY, **kw}), SHAPE)


def _train(model, split, steps: int, batch_size: int = 32) -> list[dict]:
    opts = model.configure_optimizers()
    scheds = model.lr_schedulers(opts, steps)
    batches, rows, epoch = Batches(split, batch_size, 0, CPU), [], 0
    while len(rows) < steps:
        for x, y in batches.epoch(epoch):
            rows.append({k: float(v) for k, v in model.train_step(x, y, opts).items()})
            for s in scheds:
                s.step()
            if len(rows) == steps:
                break
        epoch += 1
    return rows


def _capture_inputs(net):
    """Record (input, t, label) of every call to `net`; returns (list, hook handle)."""
    seen = []
    handle = net.register_forward_hook(lambda m, args, out: seen.append(tuple(a.detach().clone() for a in args)))
    return seen, handle


@pytest.fixture(scope="module")
def fixed_batch(small_train):
    """64 real images with fixed timesteps, noise and augmentation levels, to compare losses before and after."""
    x0 = to_unit(small_train.images[:64]) * 2 - 1
    g = torch.Generator().manual_seed(1)
    return {"x0": x0, "t": torch.randint(0, TINY["timesteps"], (64,), generator=g),
            "s": torch.randint(0, round(TINY["aug_max"] * TINY["timesteps"]) + 1, (64,), generator=g),
            "noise": torch.randn(x0.shape, generator=g), "aug": torch.randn(64, 1, 14, 14, generator=g),
            "low_noise": torch.randn(64, 1, 14, 14, generator=g)}


def _fixed_losses(model, b) -> tuple[float, float]:
    with torch.no_grad():
        z0 = model.downsample(b["x0"])
        cond, label = model.condition(z0, b["s"], b["aug"])
        return (float(model.base_p_losses(z0, b["t"], b["low_noise"])),
                float(model.sr_p_losses(b["x0"], cond, label, b["t"], b["noise"])))


@pytest.fixture(scope="module")
def trained(small_train, fixed_batch):
    """A tiny cascade after 40 steps on real images: (model, per-step losses, fixed-batch losses before)."""
    torch.manual_seed(0)
    model = tiny()
    before = _fixed_losses(model, fixed_batch)
    rows = _train(model, small_train, steps=40)
    return model.eval(), rows, before


# --------------------------------------------------------------------------- the conditioning path

def test_downsample_is_2x2_average(small_train):
    model = tiny()
    x = to_unit(small_train.images[:8]) * 2 - 1                                 # (8, 1, 28, 28)
    z = model.downsample(x)
    assert z.shape == (8, 1, 14, 14) and model.low_shape == (1, 14, 14)
    torch.testing.assert_close(z[:, :, 3, 5], x[:, :, 6:8, 10:12].mean((-1, -2)))
    torch.testing.assert_close(z.mean((1, 2, 3)), x.mean((1, 2, 3)))


def test_aug_buckets_cover_the_labels_in_order():
    model = tiny()
    S = model.aug_max_level
    assert S == round(TINY["aug_max"] * TINY["timesteps"])
    b = model.aug_bucket(torch.arange(S + 1))
    assert b.min() == 0 and b.max() == TINY["aug_levels"] - 1, "buckets must span the SR network's class labels"
    assert (b.diff() >= 0).all(), "buckets must be ordered by noise level"
    sizes = torch.bincount(b)
    assert sizes.max() - sizes.min() <= 1, f"buckets of unequal size {sizes.tolist()}"
    # level 0 is the clean image: condition() then only upsamples
    z = torch.rand(2, 1, 14, 14) * 2 - 1
    cond, _ = model.condition(z, torch.zeros(2, dtype=torch.long), torch.randn_like(z))
    torch.testing.assert_close(cond, F.interpolate(z, size=(28, 28), mode="bilinear", align_corners=False))


def test_sr_network_receives_upsampled_condition_and_level(small_train):
    torch.manual_seed(0)
    model = tiny()
    x, y = next(Batches(small_train, 16, 0, CPU).epoch(0))
    seen, handle = _capture_inputs(model.sr)
    try:
        model.loss(x)
    finally:
        handle.remove()
    inp, _, label = seen[0]
    assert inp.shape == (16, 2, 28, 28), f"SR input {tuple(inp.shape)}: expected x_t and the condition as 2 channels"
    assert label.shape == (16,) and label.dtype == torch.long
    assert 0 <= label.min() and label.max() < TINY["aug_levels"], f"augmentation buckets {label.tolist()}"

    # In sampling the condition is the low-resolution image, augmented at aug_sample, upsampled bilinearly.
    model.eval()
    low = model.downsample(to_unit(small_train.images[:4]))
    seen, handle = _capture_inputs(model.sampling_network()[1])
    try:
        model.super_resolve(low, torch.Generator().manual_seed(0))
    finally:
        handle.remove()
    assert len(seen) == TINY["sample_steps"]
    s = round(TINY["aug_sample"] * TINY["timesteps"])
    a = float(model.aug_abar[s])
    aug_noise = torch.randn(low.shape, generator=torch.Generator().manual_seed(0))  # the first draw in super_resolve
    want = F.interpolate(math.sqrt(a) * (low * 2 - 1) + math.sqrt(1 - a) * aug_noise, size=(28, 28),
                         mode="bilinear", align_corners=False)
    for inp, _, label in seen:
        torch.testing.assert_close(inp[:, 1:], want, msg="the SR network's second channel is not the condition")
        assert (label == model.aug_bucket(torch.tensor(s))).all()


def test_sr_output_depends_on_the_condition(trained, small_train, fixed_batch):
    model, _, _ = trained
    low = model.downsample(to_unit(small_train.images[:4]))
    a = model.super_resolve(low, torch.Generator().manual_seed(0))
    b = model.super_resolve(low.flip(0), torch.Generator().manual_seed(0))
    assert (a - b).abs().mean() > 1e-3, "the SR output ignores the low-resolution image"
    # and after 40 steps the network has learnt to use it: the eps-MSE is higher with mismatched conditions
    with torch.no_grad():
        x0, t, noise = fixed_batch["x0"], fixed_batch["t"], fixed_batch["noise"]
        cond, label = model.condition(model.downsample(x0), fixed_batch["s"], fixed_batch["aug"])
        right = float(model.sr_p_losses(x0, cond, label, t, noise))
        wrong = float(model.sr_p_losses(x0, cond.roll(1, 0), label, t, noise))
    assert wrong > 1.05 * right, f"SR eps-MSE with its own condition {right:.3f}, with another image's {wrong:.3f}"


# --------------------------------------------------------------------------- training

def test_losses_finite_and_falling(trained, fixed_batch):
    model, rows, before = trained
    assert all(r.keys() == rows[0].keys() for r in rows), "train_step must return the same keys every step"
    assert {"loss", "base_loss", "sr_loss"} <= rows[0].keys()
    assert all(math.isfinite(v) for r in rows for v in r.values())
    for r in rows:
        assert r["loss"] == pytest.approx(r["base_loss"] + r["sr_loss"], rel=1e-5)
    after = _fixed_losses(model, fixed_batch)
    assert 0.9 < before[0] < 1.1 and 0.9 < before[1] < 1.1, f"untrained eps-MSEs should be ~1: {before}"
    assert after[0] < 0.8 * before[0], f"base eps-MSE on a fixed batch did not fall: {before[0]:.3f} -> {after[0]:.3f}"
    assert after[1] < 0.8 * before[1], f"SR eps-MSE on a fixed batch did not fall: {before[1]:.3f} -> {after[1]:.3f}"
    assert model.base_ema.updates == 40 and model.sr_ema.updates == 40


def test_config_rejects_unlearned_sampling_level():
    with pytest.raises(ValueError, match="aug_sample"):
        CascadeConfig(aug_max=0.1, aug_sample=0.2)
    with pytest.raises(ValueError, match="sample_steps"):
        CascadeConfig(timesteps=10, sample_steps=50)


# --------------------------------------------------------------------------- sampling

@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_sampling_shapes_and_range(trained, sampler):
    model, _, _ = trained
    g = torch.Generator().manual_seed(0)
    x = model.sample(6, generator=g, sampler=sampler, steps=5)
    assert x.shape == (6, *SHAPE) and torch.isfinite(x).all() and 0 <= x.min() and x.max() <= 1
    low = model.base_sample(3, generator=g, sampler=sampler, steps=5)
    assert low.shape == (3, 1, 14, 14) and torch.isfinite(low).all() and 0 <= low.min() and low.max() <= 1


def test_chain_is_the_sr_stage_at_full_resolution(trained):
    model, _, _ = trained
    T = model.cfg.timesteps
    at = [T - 1, 50, 0]
    out, chain = model.sample(2, generator=torch.Generator().manual_seed(0), sampler="ddpm", steps=T, chain_at=at)
    assert out.shape == (2, *SHAPE) and sorted(chain) == sorted(at)
    for t in at:
        x_t, x0 = chain[t]
        assert x_t.shape == x0.shape == (2, *SHAPE) and 0 <= x0.min() and x0.max() <= 1


def test_ddim_eta0_is_deterministic(trained):
    model, _, _ = trained
    assert model.cfg.ddim_eta == 0
    a = model.sample(4, generator=torch.Generator().manual_seed(3), sampler="ddim")
    b = model.sample(4, generator=torch.Generator().manual_seed(3), sampler="ddim")
    c = model.sample(4, generator=torch.Generator().manual_seed(4), sampler="ddim")
    assert torch.equal(a, b), "same generator seed, different samples"
    assert not torch.equal(a, c)


def test_network_evaluations_count_both_stages(trained):
    model, _, _ = trained
    assert model.nfe == model.network_evaluations() == 2 * TINY["sample_steps"]
    assert model.network_evaluations("ddim", 7) == 14
    assert model.network_evaluations("ddpm") == 2 * TINY["timesteps"], "another sampler defaults to T steps"
    nets = model.sampling_network()
    assert isinstance(nets, torch.nn.ModuleList) and len(nets) == 2
    assert nets[0] is model.base_ema.net and nets[1] is model.sr_ema.net
    calls = []
    handles = [n.register_forward_hook(lambda *a: calls.append(1)) for n in nets]
    try:
        model.sample(2, generator=torch.Generator().manual_seed(0))
    finally:
        for h in handles:
            h.remove()
    assert len(calls) == model.nfe
    raw = tiny(ema_decay=0.0)
    assert raw.sampling_network()[0] is raw.base and raw.sampling_network()[1] is raw.sr


def test_state_dict_round_trip(trained):
    model, _, _ = trained
    fresh = tiny().eval()
    fresh.load_state_dict(model.state_dict())
    assert any(k.startswith("sr_ema.") for k in model.state_dict())
    a = model.sample(3, generator=torch.Generator().manual_seed(5))
    b = fresh.sample(3, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
