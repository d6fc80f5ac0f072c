"""Latent diffusion with classifier-free guidance: the autoencoder learns, the two training stages
switch at the planned step and survive a checkpoint, and guided sampling computes
(1 + w) eps(z, y) - w eps(z, null) in one batched call."""
from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from genreview.data import Batches, to_unit
from genreview.models.base import set_mirrored
from genreview.models.ldm import GuidedLatentDiffusionConfig, LatentDiffusion, LatentDiffusionConfig
from genreview.training.config import TrainConfig
from genreview.training.trainer import Trainer

from conftest import CPU, SHAPE

TINY = dict(ae_width=8, width=8, mults=[1, 2], attn_levels=[1], timesteps=20, sample_steps=4, warmup_steps=2)


def _model(guided: bool = False, **over) -> LatentDiffusion:
    cfg_cls = GuidedLatentDiffusionConfig if guided else LatentDiffusionConfig
    return LatentDiffusion(cfg_cls(**{**TINY, **over}), SHAPE)


def _start(model, total: int):
    """What the trainer does before its first step: optimisers, then the schedules (which record total)."""
    opts = model.configure_optimizers()
    return opts, model.lr_schedulers(opts, total)


def _step(model, opts, scheds, x, y) -> dict:
    out = model.train_step(x, y, opts)
    for s in scheds:
        s.step()
    return {k: float(v) for k, v in out.items()}


def _perturb(model):
    """Give the denoiser non-zero weights where the UNet starts at zero (output layer, residual branches),
    so that its prediction depends on z, t and the label; copy them into the EMA network."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.unet.parameters():
            if not p.any():
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    model.ema.net.load_state_dict(model.unet.state_dict())
    return model


def _batch(split, n=32):
    return to_unit(split.images[:n]), split.labels[:n].clone()


# --------------------------------------------------------------------------- stage 1

def test_autoencoder_reconstructs_better_after_training(small_train):
    torch.manual_seed(0)
    model = _model()
    x = to_unit(small_train.images[-64:])                                    # a fixed batch, (64, 1, 28, 28)

    def recon_mse() -> float:
        with torch.no_grad():
            mean, _ = model.ae.encode(x)
            return float((model.ae.decode(mean) - x).pow(2).mean())

    before = recon_mse()
    opts, scheds = _start(model, 400)  # 100 autoencoder steps planned; 30 are run
    batches = Batches(small_train, 32, 0, CPU)
    for i, (xb, yb) in enumerate(batches.epoch(0)):
        if i == 30:
            break
        assert _step(model, opts, scheds, xb, yb)["phase"] == 1
    after = recon_mse()
    assert after < before / 3, f"autoencoder MSE did not fall by two thirds in 30 steps: {before:.4f} -> {after:.4f}"


# --------------------------------------------------------------------------- the stage switch

def test_stage_switch_freezes_autoencoder_and_sets_scale(small_train):
    torch.manual_seed(0)
    model = _model(guided=True, ae_fraction=0.25)
    opts, scheds = _start(model, 8)
    assert model.ae_steps == 2 and int(model.total_steps) == 8
    x, y = _batch(small_train)
    rows, ae_after_stage1, unet_before = [], None, copy.deepcopy(model.unet.state_dict())
    for i in range(6):
        if i == 2:
            ae_after_stage1 = copy.deepcopy(model.ae.state_dict())
            assert not model.scaled and float(model.scale_factor) == 1.0
            assert all(torch.equal(v, unet_before[k]) for k, v in model.unet.state_dict().items()), \
                "the denoiser changed while the autoencoder trained"
            assert int(model.ema.updates) == 0, "the EMA was updated in stage 1"
            lr = opts["diffusion"].param_groups[0]["lr"]
            assert math.isclose(lr, model.cfg.lr / model.cfg.warmup_steps), \
                f"the denoiser's warm-up does not start at the switch: lr {lr}"
        rows.append(_step(model, opts, scheds, x, y))
    assert [r["phase"] for r in rows] == [1, 1, 2, 2, 2, 2], [r["phase"] for r in rows]
    assert all(r.keys() == rows[0].keys() for r in rows), "train_step must return the same keys every step"
    for r in rows:
        assert all(math.isfinite(v) for v in r.values()), r
        active = "ae_loss" if r["phase"] == 1 else "diffusion_loss"
        inactive = "diffusion_loss" if r["phase"] == 1 else "ae_loss"
        assert r["loss"] == r[active] > 0 and r[inactive] == 0, r
    for k, v in model.ae.state_dict().items():
        assert torch.equal(v, ae_after_stage1[k]), f"autoencoder parameter {k} changed in stage 2"
    assert bool(model.scaled) and int(model.ema.updates) == 4
    std = float(model.latent(x).std())
    assert abs(std - 1) < 0.05, f"scale factor {float(model.scale_factor):.3f} gives latents of std {std:.3f}, not 1"


def test_checkpoint_round_trip_restores_stage_and_continues_identically(small_train):
    x, y = _batch(small_train)
    for stop, phase in [(1, 1), (3, 2)]:
        torch.manual_seed(0)
        model = _model(guided=True, ae_fraction=0.25)
        opts, scheds = _start(model, 8)
        for _ in range(stop):
            _step(model, opts, scheds, x, y)
        ck = {"model": copy.deepcopy(model.state_dict()),
              "opts": {k: copy.deepcopy(o.state_dict()) for k, o in opts.items()},
              "scheds": [s.state_dict() for s in scheds]}

        torch.manual_seed(1)
        fresh = _model(guided=True, ae_fraction=0.25)  # as the trainer resumes: build, schedules, then load
        fopts, fscheds = _start(fresh, 8)
        fresh.load_state_dict(ck["model"])
        for k, o in fopts.items():
            o.load_state_dict(ck["opts"][k])
        for s, sd in zip(fscheds, ck["scheds"]):
            s.load_state_dict(sd)
        assert int(fresh.steps_done) == stop and fresh.phase == phase == model.phase
        assert torch.equal(fresh.scale_factor, model.scale_factor) and bool(fresh.scaled) == bool(model.scaled)

        torch.manual_seed(2)
        a = _step(model, opts, scheds, x, y)
        torch.manual_seed(2)
        b = _step(fresh, fopts, fscheds, x, y)
        assert a == b, f"resumed at step {stop}, the next step differs: {a} vs {b}"
        for (k, v), w in zip(model.state_dict().items(), fresh.state_dict().values()):
            assert torch.equal(v, w), f"resumed at step {stop}, {k} differs after one more step"


def test_trains_in_the_real_trainer(small_train, tmp_path):
    torch.manual_seed(0)
    model = _model(guided=True, ae_fraction=0.5)
    cfg = TrainConfig(epochs=1, max_steps=6, batch_size=16, sample_epochs=[1], sample_grid=4, log_every=2,
                      precision="fp32", memory_format="contiguous")
    st = Trainer(cfg, tmp_path, 0, CPU, rid="t").fit(model, Batches(small_train, 16, 0, CPU))
    assert st["status"] == "ok" and st["step"] == 6 and int(model.steps_done) == 6
    rows = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [r["phase"] for r in rows] == [1, 1.5, 2], rows  # windows of 2 steps: 3 autoencoder, 3 denoiser
    assert (tmp_path / "samples_epoch001.png").exists()


# --------------------------------------------------------------------------- sampling

@pytest.mark.parametrize("guided", [False, True])
@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_samples_in_range(sampler, guided):
    torch.manual_seed(0)
    model = _perturb(_model(guided=guided, ddim_eta=0.5)).eval()
    s1 = model.sample(6, generator=torch.Generator().manual_seed(3), sampler=sampler, steps=5)
    s2 = model.sample(6, generator=torch.Generator().manual_seed(3), sampler=sampler, steps=5)
    assert s1.shape == (6, *SHAPE) and torch.isfinite(s1).all()
    assert s1.min() >= 0 and s1.max() <= 1
    assert torch.equal(s1, s2), "the same generator seed must give the same samples"
    at = [19, 8, 0]
    out, chain = model.sample(2, generator=torch.Generator().manual_seed(3), sampler="ddpm", steps=20, chain_at=at)
    assert sorted(chain) == sorted(at) and out.shape == (2, *SHAPE)
    for x_t, x0 in chain.values():
        assert x_t.shape == x0.shape == (2, *SHAPE)
        assert 0 <= x_t.min() and x_t.max() <= 1 and 0 <= x0.min() and x0.max() <= 1
    assert model.likelihood == "none" and model.likelihood_note
    with pytest.raises(NotImplementedError):
        model.log_prob(out)


def test_guidance_is_one_batched_call_of_the_cfg_formula():
    torch.manual_seed(0)
    model = _perturb(_model(guided=True, ddim_eta=1.0)).eval()
    net, n, labels = model.ema.net, 4, torch.tensor([0, 3, 3, 9])
    calls = []
    hook = net.register_forward_pre_hook(lambda mod, args: calls.append(len(args[0])))

    def by_hand(w: float) -> torch.Tensor:  # the reverse process with separate conditional and null calls
        g = torch.Generator().manual_seed(5)
        sched = model.make_scheduler("ddim", 4)
        z = torch.randn(n, *model.latent_shape, generator=g)
        null = torch.full_like(labels, 10)
        for t in sched.timesteps:
            tt = torch.full((n,), int(t))
            eps = net(z, tt, labels)
            if w:
                eps = (1 + w) * eps - w * net(z, tt, null)
            z = sched.step(eps, t, z, g)[0]
        return model.to_image(z)

    with torch.no_grad():
        for w in (0.0, 2.0):
            calls.clear()
            got = model.sample(n, generator=torch.Generator().manual_seed(5), sampler="ddim", steps=4,
                               labels=labels, guidance=w)
            assert calls == [n * (2 if w else 1)] * 4, f"w={w}: network calls of batch sizes {calls}"
            want = by_hand(w)
            if w == 0:
                assert torch.equal(got, want), "guidance 0 must be exactly the conditional model"
            else:
                torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        hook.remove()
        plain = model.sample(n, generator=torch.Generator().manual_seed(5), sampler="ddim", steps=4, labels=labels,
                             guidance=0.0)
        guided = model.sample(n, generator=torch.Generator().manual_seed(5), sampler="ddim", steps=4, labels=labels)
    assert not torch.allclose(plain, guided), "the default guidance (w = 1) changed nothing"
    # default labels: balanced classes
    assert torch.equal(model.sample(3, generator=torch.Generator().manual_seed(5), guidance=0.0),
                       model.sample(3, generator=torch.Generator().manual_seed(5), guidance=0.0,
                                    labels=torch.tensor([0, 1, 2])))
    with pytest.raises(ValueError, match="unconditional"):
        _model().sample(2, labels=torch.tensor([0, 1]))


def test_network_evaluations():
    plain = _model(sampler="ddim", sample_steps=4)
    assert plain.nfe == plain.network_evaluations() == 4
    assert plain.network_evaluations(guidance=3.0) == 4, "an unconditional model is never guided"
    assert plain.network_evaluations("ddpm") == 20, "a sampler other than cfg.sampler defaults to T steps"
    assert plain.network_evaluations("ddim", 10) == 10
    guided = _model(guided=True, sampler="ddim", sample_steps=4)
    assert guided.cfg.guidance == 1.0 and guided.nfe == 8
    assert guided.network_evaluations(guidance=0.0) == 4
    assert guided.network_evaluations("ddpm", 5, guidance=2.0) == 10
    n_sampling = sum(p.numel() for p in guided.sampling_network().parameters())
    assert n_sampling == sum(p.numel() for p in [*guided.ema.net.parameters(), *guided.ae.decoder.parameters()])


def test_cond_drop_replaces_the_expected_fraction(small_train):
    model = _model(guided=True, cond_drop=0.1)
    y = torch.randint(0, 10, (20_000,), generator=torch.Generator().manual_seed(0))
    d = model.drop_labels(y, torch.Generator().manual_seed(1))
    null = d == 10
    assert abs(float(null.float().mean()) - 0.1) < 0.01, f"dropped fraction {float(null.float().mean()):.4f}"
    assert torch.equal(d[~null], y[~null]), "labels that are kept must be unchanged"
    assert not (_model(guided=True, cond_drop=0.0).drop_labels(y) == 10).any()
    assert (_model(guided=True, cond_drop=1.0).drop_labels(y) == 10).all()

    # and training does pass dropped labels to the denoiser in stage 2
    torch.manual_seed(0)
    set_mirrored(model, "total_steps", 1)
    set_mirrored(model, "steps_done", 1)
    seen = []
    model.unet.register_forward_pre_hook(lambda mod, args: seen.append(args[2]))
    x, y = to_unit(small_train.images[:1000]), small_train.labels[:1000]
    model.loss(x, y)
    frac = float((seen[0] == 10).float().mean())
    assert abs(frac - 0.1) < 0.04 and torch.equal(seen[0][seen[0] != 10], y[seen[0] != 10]), frac


def test_config_errors():
    with pytest.raises(ValueError, match="ae_fraction"):
        LatentDiffusionConfig(ae_fraction=1.0)
    with pytest.raises(ValueError, match="recon_loss"):
        LatentDiffusionConfig(recon_loss="mse")
    with pytest.raises(ValueError, match="sample_steps"):
        LatentDiffusionConfig(timesteps=10, sample_steps=20)
