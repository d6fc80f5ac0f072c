"""The benchmark scripts' parts, at toy size: they measure speed elsewhere, so here only that they run
and compare like with like (no timings are checked)."""
from __future__ import annotations

import pytest
import torch

from genreview.data import Batches
from genreview.models import build
from genreview.utils import count_parameters

from conftest import CPU, SHAPE, smoke_config, smoke_hparams

pytest.importorskip("diffusers")


def test_peer_ddpm_trains_and_samples_like_ours(small_train):
    from genreview.bench.peers import DiffusersDDPM
    ours = build("ddpm", smoke_hparams("ddpm"), SHAPE)
    torch.manual_seed(0)
    peer = DiffusersDDPM(ours.cfg, SHAPE, channels=(16, 32, 32))
    opts = peer.configure_optimizers()
    scheds = peer.lr_schedulers(opts, 10)
    before = [p.detach().clone() for p in peer.unet.parameters()]
    x, y = next(Batches(small_train, 8, 0, CPU).epoch(0))
    loss = peer.train_step(x, y, opts)["loss"]
    scheds[0].step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, peer.unet.parameters())), "no parameter moved"
    assert peer.ema.updates.item() == 1, "the peer keeps an EMA of its weights, as ours does"
    s = peer.sample(3, generator=torch.Generator().manual_seed(1))
    assert s.shape == (3, *SHAPE) and 0 <= s.min() and s.max() <= 1
    assert torch.equal(s, peer.sample(3, generator=torch.Generator().manual_seed(1)))
    assert len(peer.sampler.timesteps) == ours.cfg.sample_steps, "both sample with the same number of steps"


def test_peer_layout_is_the_nearest_in_parameters():
    from genreview.bench.peers import PEER_LAYOUTS, DiffusersDDPM, build_peer
    cfg = build("ddpm", {}, SHAPE).cfg
    counts = {ch: count_parameters(DiffusersDDPM(cfg, SHAPE, ch, a).unet) for ch, a in PEER_LAYOUTS[:4]}
    for ch, n in counts.items():
        assert build_peer(cfg, SHAPE, n + 1).layout["block_out_channels"] == list(ch)


def test_throughput_measures_a_family(small_train, tmp_path):
    from genreview import config as C
    from genreview.bench.throughput import measure
    spec = C.train_spec(smoke_config(), "vae", 0, snapshots=False)
    r = measure("vae", spec, small_train, CPU, steps=2, warmup=1, out=tmp_path)
    assert r["params"] > 0 and r["images_per_s"] > 0 and r["peak_memory_mb"] > 0
    assert r["batch_size"] == spec["train"]["batch_size"]
    assert "skipped" in measure("gmm", C.train_spec(smoke_config(), "gmm", 0), small_train, CPU, 2, 1, tmp_path)


def test_gpu_check_resumes_exactly_and_is_deterministic_here(small_train):
    """The GPU check's resume and determinism parts, tiny, on the CPU: a run stopped at its checkpoint and
    resumed ends where the uninterrupted one ends, and two deterministic runs agree."""
    from genreview.bench.gpu_check import resume_and_determinism
    r = resume_and_determinism(smoke_config(), small_train, CPU, steps=4)
    assert r["resume"]["ok"] and r["resume"]["max_abs_diff"] == 0.0, r
    assert r["determinism"]["identical"], r
    assert not torch.are_deterministic_algorithms_enabled(), "the check leaves PyTorch as it found it"


def test_peer_dcgan_is_the_examples_networks_at_32(small_train):
    """pytorch/examples' DCGAN one stage shorter, at 32 x 32: its shapes, its parameter count from the
    published layer list, its initialisation, and 28 x 28 images padded with the background and cropped back."""
    from genreview.bench.peers import ExampleDCGAN, ExampleDCGANConfig
    torch.manual_seed(0)
    peer = ExampleDCGAN(ExampleDCGANConfig(), SHAPE, background=0.0, sample_batch=16)
    assert peer.G(torch.randn(5, 100)).shape == (5, 1, 32, 32)
    assert peer.D(torch.randn(5, 1, 32, 32)).shape == (5,)
    g, d, z = 64, 64, 100  # (de)conv kernels 4 x 4 without biases, BatchNorm's scale and shift
    assert count_parameters(peer.G) == 16 * (z * 4 * g + 4 * g * 2 * g + 2 * g * g + g) + 2 * (4 + 2 + 1) * g
    assert count_parameters(peer.D) == 16 * (d + d * 2 * d + 2 * d * 4 * d + 4 * d) + 2 * (2 + 4) * d
    assert abs(peer.G.main[0].weight.std().item() - 0.02) < 1e-3
    assert abs(peer.D.main[3].weight.mean().item() - 1) < 0.01 and not peer.D.main[3].bias.any()
    x, y = next(Batches(small_train, 8, 0, CPU).epoch(0))
    padded = peer.padded(x)                                                    # (8, 1, 32, 32) in [-1, 1]
    assert padded.shape == (8, 1, 32, 32) and torch.equal(peer.crop(padded), x * 2 - 1)
    assert (padded[..., :2, :] == -1).all() and (padded[..., :, -2:] == -1).all(), "padded with the black background"
    s = peer.sample(20, generator=torch.Generator().manual_seed(1))
    assert s.shape == (20, *SHAPE) and 0 <= s.min() and s.max() <= 1, "samples are cropped back to the data's shape"
    assert torch.equal(s, peer.sample(20, generator=torch.Generator().manual_seed(1)))
    with pytest.raises(ValueError, match="pads images to 32"):
        ExampleDCGAN(ExampleDCGANConfig(), (1, 29, 29))


def test_peer_dcgan_race_scores_at_equal_images_and_equal_time(small_train):
    """A few alternating blocks of our DCGAN and the peer, tiny: both scored at the same steps, then each at
    (to one step) the slower one's training time; both players of each model learn."""
    from genreview.bench.peers import ExampleDCGAN, ExampleDCGANConfig, race
    torch.manual_seed(0)
    models = {"ours": build("dcgan", smoke_hparams("dcgan"), SHAPE),
              "peer": ExampleDCGAN(ExampleDCGANConfig(nz=16, ngf=8, ndf=8), SHAPE, sample_batch=8)}
    before = {k: [p.detach().clone() for p in m.parameters()] for k, m in models.items()}
    scored = []

    def score(name, model):
        scored.append((name, len(scored)))
        return {"fd": float(len(scored)), "shape": tuple(model.sample(4).shape)}

    r = race(models, small_train, 8, 0, CPU, seconds=0.3, block=2, score=score, warmup=1)
    steps = r["equal_images"]["steps"]
    assert steps >= 2 and steps % 2 == 0 and r["equal_images"]["images"] == 8 * steps
    budget = r["equal_time"]["seconds"]
    assert budget >= 0.3 and budget == max(m["seconds"] for m in r["equal_images"]["models"].values())
    for name, m in r["equal_time"]["models"].items():
        assert m["shape"] == (4, *SHAPE) and m["images"] == 8 * m["steps"] and m["steps"] >= steps
        assert m["seconds"] >= budget and r["training"][name]["steps"] == m["steps"]
        moved = m["steps"] > steps
        assert (m["fd"] == r["equal_images"]["models"][name]["fd"]) != moved, "rescored only when it trained on"
        assert r["training"][name]["images_per_s"] > 0
    assert len(scored) == 2 + sum(m["steps"] > steps for m in r["equal_time"]["models"].values())
    for k, m in models.items():
        assert all(not torch.equal(a, b) for a, b in zip(before[k], m.parameters()) if a.dim() > 1), \
            f"{k}: every weight of G and D moved"


def test_peer_rounds_keep_two_step_counts_in_step():
    """--ours-steps: two models trained for different step counts alternate so that after each round both have done
    the same share of their totals, and each ends at exactly its total."""
    from genreview.bench.peers import rounds
    r = list(rounds({"ours": 2650, "diffusers": 300}, 25))
    assert len(r) == 106 and sum(x["ours"] for x in r) == 2650 and sum(x["diffusers"] for x in r) == 300
    assert max(x["ours"] for x in r) <= 26 and all(x["diffusers"] in (2, 3) for x in r)
    assert list(rounds({"ours": 50, "diffusers": 50}, 25)) == [{"ours": 25, "diffusers": 25}] * 2
