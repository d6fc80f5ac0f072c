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
