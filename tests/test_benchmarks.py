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
