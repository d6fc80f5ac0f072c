"""Every model family honours the GenerativeModel interface, and each one learns something
from a few dozen steps on real Fashion-MNIST images."""
from __future__ import annotations

import math

import pytest
import torch

from genreview.data import Batches, to_unit
from genreview.models.likelihood import bits_per_dim
from genreview.models import REGISTRY, build

from conftest import CPU, SHAPE, smoke_hparams


def _train(model, split, steps: int, batch_size: int, seed: int = 0) -> list[dict]:
    """Run `steps` train_steps (with the model's own LR schedules); return the losses per step."""
    opts = model.configure_optimizers()
    scheds = model.lr_schedulers(opts, steps)
    batches = Batches(split, batch_size, seed, CPU)
    out, step = [], 0
    while step < steps:
        for x, y in batches.epoch(step // len(batches)):
            losses = model.train_step(x, y, opts)
            for s in scheds:
                s.step()
            out.append({k: float(v) for k, v in losses.items()})
            step += 1
            if step == steps:
                break
    return out


def _mean(rows, key, sl):
    vals = [r[key] for r in rows[sl]]
    return sum(vals) / len(vals)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_family_contract(name, small_train):
    torch.manual_seed(0)
    model = build(name, smoke_hparams(name), SHAPE)
    x, y = next(Batches(small_train, 16, 0, CPU).epoch(0))
    if model.classical:  # fitted once by its own algorithm; the fitted state lives in buffers
        before = {k: v.clone() for k, v in model.state_dict().items()}
        stats = model.fit(to_unit(small_train.images[:256]), 0)
        assert stats.get("n_iter", 0) >= 1, f"{name}.fit returned {stats}"
        changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
        assert changed, f"{name}: fit changed no buffer, so a checkpoint would not hold the fitted model"
    else:
        before = {k: v.detach().clone() for k, v in model.named_parameters()}
        opts = model.configure_optimizers()
        losses = model.train_step(x, y, opts)
        assert "loss" in losses, f"{name}.train_step must return the optimised loss under 'loss', got {list(losses)}"
        for k, v in losses.items():
            assert torch.isfinite(torch.as_tensor(v)).all(), f"{name}: loss {k} = {v} is not finite after one step"
        changed = [k for k, v in model.named_parameters() if not torch.equal(v, before[k])]
        assert changed, f"{name}: train_step updated no parameter"

    model.eval()
    if model.translator:  # image-to-image: no samples of its own, (input, output) grids
        grid = model.progress_grid(small_train, 8)
        assert grid.shape == (8, *SHAPE) and grid.min() >= 0 and grid.max() <= 1, f"{name}: progress grid"
        with pytest.raises(NotImplementedError, match="evaluate_translation"):
            model.sample(2)
        assert model.likelihood == "none"
        return
    n = 5
    s1 = model.sample(n, generator=torch.Generator().manual_seed(7))
    s2 = model.sample(n, generator=torch.Generator().manual_seed(7))
    assert s1.shape == (n, *SHAPE), f"{name}.sample({n}) has shape {tuple(s1.shape)}, expected {(n, *SHAPE)}"
    assert s1.is_floating_point() and torch.isfinite(s1).all(), f"{name}: samples are not finite floats"
    assert s1.min() >= 0 and s1.max() <= 1, f"{name}: samples span [{s1.min():.3g}, {s1.max():.3g}], not [0, 1]"
    assert torch.equal(s1, s2), f"{name}: sampling with the same generator seed is not reproducible"

    assert isinstance(model.nfe, int) and model.nfe > 0, f"{name}.nfe = {model.nfe!r}, expected a positive int"

    assert model.likelihood in ("exact", "bound", "none"), f"{name}.likelihood = {model.likelihood!r}"
    if model.likelihood != "none":
        lp = model.log_prob(x, generator=torch.Generator().manual_seed(0), iw_samples=2, vlb_timesteps=3)
        assert lp.shape == (len(x),), f"{name}.log_prob shape {tuple(lp.shape)}, expected ({len(x)},)"
        assert torch.isfinite(lp).all(), f"{name}.log_prob is not finite: {lp}"
        bpd = bits_per_dim(lp, x[0].numel())
        assert (bpd > 0).all() and (bpd < 64).all(), f"{name}: bits/dim {bpd.tolist()} outside (0, 64)"
        assert model.likelihood_note, f"{name}.likelihood_note is empty; the paper's likelihood table prints it"
    else:
        with pytest.raises(NotImplementedError):
            model.log_prob(x)


def test_ddpm_nfe_is_the_sampler_steps():
    hp = smoke_hparams("ddpm")
    model = build("ddpm", {**hp, "sampler": "ddim", "sample_steps": 4}, SHAPE)
    assert model.nfe == 4, f"DDIM with sample_steps=4 reports nfe={model.nfe}"
    model = build("ddpm", {**hp, "sampler": "ddpm", "sample_steps": 4}, SHAPE)
    assert model.nfe == 4, f"the ancestral sampler with sample_steps=4 reports nfe={model.nfe}"
    model = build("ddpm", {**hp, "sampler": "ddim", "sample_steps": 4}, SHAPE)
    full = model.make_scheduler("ddpm")  # the other sampler, as the denoising-chain figure asks for it
    assert full.num_inference_steps == hp["timesteps"], "a sampler other than cfg.sampler defaults to T steps"


def test_vae_loss_falls(small_train):
    torch.manual_seed(0)
    model = build("vae", {**smoke_hparams("vae"), "lr": 3e-3}, SHAPE)
    rows = _train(model, small_train, steps=40, batch_size=32)
    first, last = _mean(rows, "loss", slice(0, 5)), _mean(rows, "loss", slice(-5, None))
    assert all(math.isfinite(r["loss"]) for r in rows)
    assert last < 0.85 * first, f"VAE negative ELBO did not fall: first 5 steps {first:.1f}, last 5 {last:.1f}"


def test_ddpm_loss_falls(small_train):
    """Compared on a fixed batch with fixed t and noise, so that the noisy training loss does not decide."""
    torch.manual_seed(0)
    model = build("ddpm", {**smoke_hparams("ddpm"), "lr": 3e-3, "warmup_steps": 2}, SHAPE)
    x0 = to_unit(small_train.images[:64]) * 2 - 1
    g = torch.Generator().manual_seed(1)
    t = torch.randint(0, model.cfg.timesteps, (64,), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    with torch.no_grad():
        before = float(model.p_losses(x0, t, noise))
    rows = _train(model, small_train, steps=30, batch_size=32)
    with torch.no_grad():
        after = float(model.p_losses(x0, t, noise))
    assert 0.9 < before < 1.1, f"an untrained eps-network (zero output layer) should score MSE ~1, got {before:.3f}"
    assert after < 0.7 * before, f"DDPM eps-MSE on a fixed batch did not fall: {before:.3f} -> {after:.3f}"
    first, last = _mean(rows, "loss", slice(0, 5)), _mean(rows, "loss", slice(-5, None))
    assert last < first, f"DDPM training loss did not fall: first 5 {first:.3f}, last 5 {last:.3f}"


def test_dcgan_learns(small_train):
    """The discriminator learns to tell real from fake (its loss falls from 2 ln 2), and the
    generator moves toward the data: the mean of its samples correlates with the data's mean image."""
    torch.manual_seed(0)
    model = build("dcgan", {**smoke_hparams("dcgan"), "width_g": 16}, SHAPE)
    data_mean = to_unit(small_train.images).mean(0).flatten()

    def corr_with_data() -> float:
        model.eval()
        s = model.sample(512, generator=torch.Generator().manual_seed(0)).mean(0).flatten()
        model.train()
        return float(torch.corrcoef(torch.stack([s, data_mean]))[0, 1])

    corr_before = corr_with_data()
    rows = _train(model, small_train, steps=60, batch_size=64)
    corr_after = corr_with_data()

    d_first, d_last = _mean(rows, "d_loss", slice(0, 5)), _mean(rows, "d_loss", slice(-5, None))
    assert abs(rows[0]["d_loss"] - 2 * math.log(2)) < 0.1, f"initial D loss {rows[0]['d_loss']:.3f} is not ~2 ln 2"
    assert d_last < 0.8 * d_first, f"the discriminator did not learn: D loss {d_first:.3f} -> {d_last:.3f}"
    assert _mean(rows, "d_real", slice(-5, None)) > _mean(rows, "d_fake", slice(-5, None)) + 0.2, \
        "D does not score real images above fakes after 60 steps"
    assert corr_after > 0.4 and corr_after > corr_before + 0.3, (
        f"the generator's mean image did not move toward the data's: correlation {corr_before:.2f} -> {corr_after:.2f}")
