"""Quality against training compute: snapshots fall where they should, survive a resumed run and change
nothing in training; the time to a threshold is interpolated between snapshots; the curve job scores
every snapshot and resumes point by point; only the curve models' train specs change."""
from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import genreview.studies.curves as CV
from genreview import config as C
from genreview.data import Batches, Split
from genreview.models import build
from genreview.models.vae import VAE, VAEConfig
from genreview.publish.verdicts import compute_study
from genreview.summary.stats import time_to_threshold
from genreview.summary.collect import curve_summary
from genreview.training.config import snapshot_steps, TrainConfig
from genreview.training.trainer import Trainer
from genreview.training.train import train
from genreview.utils import save_json, seed_everything

from conftest import CPU, SHAPE, smoke_config, smoke_hparams
from test_train import CrashesAt, Killed  # a job killed mid-run, as the resume tests simulate it

pytestmark = pytest.mark.filterwarnings("ignore:Metric .* will save all extracted features:UserWarning")

# fp32 and contiguous: no timing-based calibration, so runs are reproducible.
BASE = TrainConfig(epochs=1, max_steps=16, batch_size=32, sample_epochs=[], sample_grid=4, checkpoint_every=4,
                   log_every=4, precision="fp32", memory_format="contiguous")
SNAPS = 4  # at steps 1, 3, 6 and 16 of 16


# --------------------------------------------------------------------------- spacing

def test_snapshot_steps_are_log_spaced_unique_and_end_at_the_last_step():
    steps = snapshot_steps(1000, 6)
    assert steps == [20, 44, 96, 209, 457, 1000]
    ratios = [b / a for a, b in zip(steps, steps[1:])]
    assert max(ratios) / min(ratios) < 1.05, f"not log-uniform: {ratios}"
    assert snapshot_steps(16, SNAPS) == [1, 3, 6, 16]
    short = snapshot_steps(5, 10)  # more snapshots than distinct steps: duplicates dropped
    assert short == sorted(set(short)) and short[-1] == 5 and len(short) <= 5
    assert snapshot_steps(37, 1) == [37]
    assert snapshot_steps(100, 0) == [] and snapshot_steps(0, 5) == []
    for total in (1, 2, 7, 12, 999, 3748):
        s = snapshot_steps(total, 6)
        assert s[-1] == total and len(s) == len(set(s)) and s == sorted(s) and s[0] >= 1


# --------------------------------------------------------------------------- the trainer

def _vae(seed=0) -> VAE:
    seed_everything(seed)
    return build("vae", smoke_hparams("vae"), SHAPE)


def _fit(out, model, split, **over):
    cfg = replace(BASE, **over)
    return Trainer(cfg, out, 0, CPU, rid="r").fit(model, Batches(split, cfg.batch_size, 0, CPU))


def _snaps(out: Path) -> dict[int, dict]:
    return {k: torch.load(p, weights_only=False) for k, p in CV.snapshot_files(out).items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def plain_and_snapshotted(small_train, tmp_path_factory):
    """The same tiny run twice: without snapshots, and with SNAPS of them."""
    runs = {}
    for n in (0, SNAPS):
        out = tmp_path_factory.mktemp(f"snap{n}")
        model = _vae()
        st = _fit(out, model, small_train, snapshots=n)
        runs[n] = (out, model, st)
    return runs


def test_snapshots_change_nothing_in_training(plain_and_snapshotted):
    (out0, m0, _), (out1, m1, st) = plain_and_snapshotted[0], plain_and_snapshotted[SNAPS]
    assert _same(m0.state_dict(), m1.state_dict()), "snapshots changed the trained weights"
    losses = [[{k: v for k, v in json.loads(line).items() if k != "wall"} for line in (o / "train_log.jsonl").open()]
              for o in (out0, out1)]
    assert losses[0] == losses[1], "snapshots changed the logged losses"
    assert not (out0 / "snapshots").exists()
    snaps = _snaps(out1)
    assert sorted(snaps) == snapshot_steps(16, SNAPS)
    for k, s in snaps.items():
        assert s["step"] == k and s["images"] == k * BASE.batch_size and s["run_id"] == "r"
    walls = [snaps[k]["wall"] for k in sorted(snaps)]
    assert all(0 < a < b for a, b in zip(walls, walls[1:])) and walls[-1] <= st["elapsed"]
    assert _same(snaps[16]["state_dict"], m1.state_dict()), "the last snapshot is not the final model"
    ema = [k for k in snaps[16]["state_dict"] if "ema" in k.lower()]
    assert not ema or all(torch.equal(snaps[16]["state_dict"][k], m1.state_dict()[k]) for k in ema)


def test_a_resumed_run_keeps_its_earlier_snapshots(plain_and_snapshotted, small_train, tmp_path):
    """Killed at step 8: snapshots 1, 3 and 6 are on disk, the checkpoint is from step 4. The resumed run
    leaves 1 and 3 alone, redoes 6 (the same weights) and adds 16; it ends where an uninterrupted run ends."""
    ref_out, ref_model, _ = plain_and_snapshotted[SNAPS]
    seed_everything(0)  # the same initialisation and RNG stream as _vae()
    crashing = CrashesAt(VAEConfig(**smoke_hparams("vae")), SHAPE, k=8)
    trainer = Trainer(replace(BASE, snapshots=SNAPS), tmp_path, 0, CPU, rid="r")
    with pytest.raises(Killed):
        trainer.fit(crashing, Batches(small_train, BASE.batch_size, 0, CPU))
    trainer._logf.close()
    files = CV.snapshot_files(tmp_path)
    assert sorted(files) == [1, 3, 6]
    before = {k: p.stat().st_mtime_ns for k, p in files.items()}
    time.sleep(0.01)

    resumed = _vae(seed=99)
    _fit(tmp_path, resumed, small_train, snapshots=SNAPS)
    files = CV.snapshot_files(tmp_path)
    assert sorted(files) == [1, 3, 6, 16]
    assert all(files[k].stat().st_mtime_ns == before[k] for k in (1, 3)), "a resumed run rewrote old snapshots"
    ref = _snaps(ref_out)
    for k, s in _snaps(tmp_path).items():
        assert _same(s["state_dict"], ref[k]["state_dict"]), f"snapshot {k} differs from the uninterrupted run's"
    assert _same(resumed.state_dict(), ref_model.state_dict())

    # a fresh start (another configuration) drops the stale snapshots
    Trainer(replace(BASE, snapshots=SNAPS, max_steps=6), tmp_path, 0, CPU, rid="other").fit(
        _vae(), Batches(small_train, BASE.batch_size, 0, CPU))
    assert sorted(CV.snapshot_files(tmp_path)) == snapshot_steps(6, SNAPS)


def test_snapshot_time_leaves_out_progress_grids(small_train, tmp_path, monkeypatch):
    """Two epochs of 8 steps with a slow progress grid at each epoch end: the snapshot at step 16 (taken
    before that step's grid) leaves out the grid after step 8, which the run's elapsed time counts."""
    split = Split(small_train.images[:256], small_train.labels[:256])
    real_epoch_end = Trainer._epoch_end

    def slow(self, *a):
        time.sleep(0.4)
        return real_epoch_end(self, *a)

    monkeypatch.setattr(Trainer, "_epoch_end", slow)
    st = _fit(tmp_path, _vae(), split, epochs=2, max_steps=0, snapshots=2)
    last = _snaps(tmp_path)[16]
    assert last["wall"] < st["elapsed"] - 0.75, (last["wall"], st["elapsed"])


# --------------------------------------------------------------------------- time to threshold

def _rows(fds, walls=(10.0, 20.0, 40.0, 80.0)):
    return [{"step": 100 * (i + 1), "images": 6400 * (i + 1), "wall": w, "fd": f}
            for i, (f, w) in enumerate(zip(fds, walls))]


def test_time_to_threshold_interpolates_between_snapshots():
    tt = time_to_threshold(_rows([300.0, 200.0, 80.0, 60.0]), 110.0)
    # 200 -> 80 crosses 110 three quarters of the way: between 20 s and 40 s, 12,800 and 19,200 images
    assert tt == pytest.approx({"step": 275.0, "images": 17600.0, "wall": 35.0, "fd": 110.0, "first": False})
    assert time_to_threshold(_rows([300.0, 200.0, 80.0, 60.0]), 80.0)["wall"] == pytest.approx(40.0)


def test_time_to_threshold_never_reached_and_reached_at_once():
    assert time_to_threshold(_rows([300.0, 200.0, 150.0, 120.0]), 110.0) is None
    tt = time_to_threshold(_rows([90.0, 200.0, 80.0, 60.0]), 110.0)
    assert tt == {"step": 100, "images": 6400, "wall": 10.0, "fd": 90.0, "first": True}
    # a snapshot without a finite FD is skipped, not taken as the crossing
    rows = _rows([300.0, float("nan"), 100.0, 60.0])
    assert time_to_threshold(rows, 200.0)["wall"] == pytest.approx(10.0 + 30.0 * 100.0 / 200.0)
    assert time_to_threshold([], 1.0) is None


def _curve(model, seed, fds, walls=(10.0, 20.0, 40.0, 80.0), threshold=110.0):
    return {"model": model, "seed": seed, "status": "ok", "n": 64, "threshold": threshold, "sampler": "native",
            "sampler_steps": None, "nfe": 1, "planned_steps": 400, "train_seconds": 90.0,
            "rows": [{**r, "kid": r["fd"] / 1e3, "precision": 0.5, "recall": 0.5, "sample_ms": 0.1}
                     for r in _rows(fds, walls)]}


def test_summary_and_study_read_the_curves(tmp_path):
    files = []
    for name, seeds in {"vae": [(300.0, 200.0, 80.0, 40.0), (300.0, 180.0, 100.0, 44.0)],
                        "dcgan": [(100.0, 90.0, 85.0, 70.0)] * 2,
                        "wgan": [(400.0, 300.0, 250.0, 200.0)] * 2}.items():
        for s, fds in enumerate(seeds):
            files.append(tmp_path / f"{name}{s}.json")
            save_json(_curve(name, s, fds, walls=(5.0, 50.0, 60.0, 70.0) if name == "dcgan" else
                             (10.0, 20.0, 40.0, 80.0)), files[-1])
    cs = curve_summary([str(f) for f in files])
    vae = cs["vae"]
    assert [r["step"] for r in vae["rows"]] == [100, 200, 300, 400]
    assert vae["rows"][1]["fd"]["mean"] == pytest.approx(190.0) and vae["rows"][1]["fd"]["n"] == 2
    # the mean curve: 190 -> 90 crosses 110 four fifths of the way from 20 s to 40 s
    assert vae["time_to_threshold"]["wall"] == pytest.approx(36.0) and vae["seeds_reached"] == 2
    assert cs["dcgan"]["time_to_threshold"]["first"] and cs["wgan"]["time_to_threshold"] is None
    # each seed's own crossing: 200 -> 80 at 20 s -> 40 s crosses 110 at 35 s; 180 -> 100 at 20 -> 40 s at 37.5 s
    assert vae["to_threshold"]["wall"]["values"] == pytest.approx([35.0, 37.5]) and vae["to_threshold"]["n_never"] == 0
    assert cs["wgan"]["to_threshold"]["wall"]["n"] == 0 and cs["wgan"]["to_threshold"]["n_never"] == 2
    assert cs["wgan"]["to_threshold"]["at_least"]["wall"]["values"] == [80.0, 80.0], \
        "a seed that never reached the threshold took at least its whole training: its last snapshot"
    assert vae["to_threshold"]["at_least"]["wall"]["values"] == pytest.approx([35.0, 37.5])
    study = compute_study({"order": ["vae", "dcgan", "wgan"], "curves": cs})
    assert study["reached"] == ["dcgan", "vae"] and study["never"] == ["wgan"]
    assert study["by_final"] == ["vae", "dcgan", "wgan"]
    assert study["hidden"] == [("vae", "dcgan")], "the VAE ends best but reaches the threshold later"
    assert compute_study({"order": [], "curves": {}}) is None

    from genreview.publish.figures import figure_names
    from genreview.publish.figures.training import quality_compute_figure
    from genreview.publish.plan import Plan
    from genreview.publish.tables import table_names
    from genreview.publish.tables.results import threshold_table

    summary = {"order": ["vae", "dcgan", "wgan"], "curves": cs, "device": "Test CPU"}
    quality_compute_figure(summary, tmp_path / "quality_vs_compute.pdf")
    assert (tmp_path / "quality_vs_compute.pdf").stat().st_size > 1000
    table = threshold_table(summary).set_index("Model")
    assert table.loc["WGAN", "Reached at"] == "not reached" and table.loc["WGAN", "Images seen"] == "--"
    assert table.loc["DCGAN", "Reached at"].startswith("$\\le$ ") and table.loc["VAE", "Seeds reached"] == "2/2"
    assert "quality_vs_compute.pdf" in figure_names(Plan(["vae"], curves=["vae"]))
    assert "quality_vs_compute.pdf" not in figure_names(Plan(["vae"]))
    assert "time_to_threshold.tex" in table_names(Plan(["vae"], curves=["vae"]))
    assert "time_to_threshold.tex" not in table_names(Plan(["vae"]))


# --------------------------------------------------------------------------- the curve job

def _trained(fmnist_root, tmp_path, name: str) -> tuple[dict, Path]:
    """A smoke run of `name` as the pipeline trains it (12 steps; snapshots from curves.snapshots)."""
    cfg = smoke_config(fmnist_root)
    spec = C.train_spec(cfg, name, 0)
    assert spec["train"]["snapshots"] == C.curves_config(cfg)["snapshots"]
    run = tmp_path / "run"
    train(spec, run)
    ev = C.eval_config(cfg)
    ev.update(n_reference=200, kid_subset_size=10, batch_size=25)
    cspec = {**C.curve_spec(cfg, name, 0), "device": "cpu", "eval": ev}
    cspec["curves"].update(n=30)
    return cspec, run


def test_curve_job_scores_every_snapshot_and_resumes_point_by_point(fmnist_root, tiny_classifier_dir, tmp_path,
                                                                    monkeypatch):
    spec, run = _trained(fmnist_root, tmp_path, "vae")
    clf, out = tiny_classifier_dir / "classifier.pt", tmp_path / "curve"
    calls = []
    real = CV.generate
    monkeypatch.setattr(CV, "generate", lambda *a, **k: calls.append(1) or real(*a, **k))
    res = CV.curve_run(spec, run, clf, out)
    steps = snapshot_steps(12, spec["curves"]["snapshots"])
    assert [r["step"] for r in res["rows"]] == steps and len(calls) == len(steps)
    for r in res["rows"]:
        assert r["images"] == r["step"] * 128 and r["n"] == 30 and r["sample_ms"] > 0
        assert torch.isfinite(torch.tensor([r["fd"], r["kid"]])).all()
    walls = [r["wall"] for r in res["rows"]]
    assert walls == sorted(walls) and res["sampler"] == "native" and res["threshold"] > 0
    assert json.loads((out / "curve.json").read_text())["rows"] == res["rows"]

    (out / "curve.json").unlink()  # as snakemake does before a rerun
    (out / "points" / f"step{steps[1]}.json").unlink()
    calls.clear()
    again = CV.curve_run(spec, run, clf, out)
    assert len(calls) == 1, "a resumed job must rescore only the snapshot whose point is missing"
    assert [r["step"] for r in again["rows"]] == steps
    assert [r["fd"] for r in again["rows"]] == pytest.approx([r["fd"] for r in res["rows"]])

    calls.clear()
    spec["curves"]["n"] = 24  # another N: every point is rescored
    assert [r["n"] for r in CV.curve_run(spec, run, clf, out)["rows"]] == [24] * len(steps) and len(calls) == 3


def test_curve_job_samples_diffusion_with_ddim(fmnist_root, tiny_classifier_dir, tmp_path):
    spec, run = _trained(fmnist_root, tmp_path, "ddpm")
    res = CV.curve_run(spec, run, tiny_classifier_dir / "classifier.pt", tmp_path / "curve")
    assert res["sampler"] == "ddim" and res["sampler_steps"] == spec["curves"]["sampler_steps"] == res["nfe"]
    assert len(res["rows"]) == len(snapshot_steps(12, spec["curves"]["snapshots"]))


def test_curve_job_names_the_fix_for_a_run_without_snapshots(fmnist_root, tiny_classifier_dir, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    save_json({"status": "ok", "planned_steps": 12, "steps": 12, "train_config": {}, "hparams": {},
               "precision": "fp32", "train_seconds": 1.0}, run / "train_summary.json")
    spec = {**C.curve_spec(smoke_config(fmnist_root), "vae", 0), "device": "cpu"}
    with pytest.raises(RuntimeError, match="curves.models.*--forcerun train"):
        CV.curve_run(spec, run, tiny_classifier_dir / "classifier.pt", tmp_path / "curve")


# --------------------------------------------------------------------------- config

def test_only_the_curve_models_train_specs_change():
    cfg = smoke_config()
    curve = C.curve_models(cfg)
    assert curve == ["vae", "dcgan", "stylegan", "ddpm"]
    n = C.curves_config(cfg)["snapshots"]
    for m in cfg["models"]:
        train = C.train_spec(cfg, m, 0)["train"]
        assert train.get("snapshots") == (n if m in curve else None), m
    assert "snapshots" not in C.dynamics_spec(cfg, "vae", 0)["train_spec"]["train"], \
        "the dynamics study's short runs keep no snapshots"
    with pytest.raises(C.ConfigError, match="curves.models lists gmm"):
        C.curve_models({**cfg, "curves": {**cfg["curves"], "models": ["gmm", "vae"]}})
    with pytest.raises(C.ConfigError, match="curves.models lists cyclegan"):
        C.curve_models({**cfg, "curves": {**cfg["curves"], "models": ["cyclegan"]}})
