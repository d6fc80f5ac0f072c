"""The model-agnostic trainer: divergence is recorded (not crashed on), a resumed run is
bit-identical to an uninterrupted one, and a checkpoint from another configuration is ignored."""
from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import genreview.train as T
from genreview.data import Batches
from genreview.models import REGISTRY, build
from genreview.models.base import GenerativeModel
from genreview.models.vae import VAE, VAEConfig
from genreview.train import Trainer, TrainConfig, run_id
from genreview.utils import seed_everything

from conftest import CPU, SHAPE, smoke_hparams

# fp32 and contiguous: no timing-based calibration, so runs are reproducible.
BASE = TrainConfig(epochs=2, batch_size=32, sample_epochs=[], sample_grid=4, checkpoint_every=10, log_every=5,
                   precision="fp32", memory_format="contiguous")


def _log_rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _losses(rows):
    return [{k: v for k, v in r.items() if k != "wall"} for r in rows]


def _assert_same_state(a: nn.Module, b: nn.Module, what: str):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    differ = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not differ, f"{what}: {len(differ)} tensors differ, e.g. {differ[:3]}"


# --------------------------------------------------------------------------- divergence

class BlowsUpAt(GenerativeModel):
    """A one-parameter model whose loss turns `how` (nan, inf or huge) at its k-th step."""

    likelihood = "none"

    def __init__(self, k: int, how: str = "nan"):
        super().__init__(SimpleNamespace(lr=0.1), SHAPE)
        self.w = nn.Parameter(torch.zeros(()))
        self.k, self.how, self.calls = k, how, 0

    def loss(self, x, y=None):
        self.calls += 1
        loss = (self.w - x.mean()) ** 2
        if self.calls >= self.k:
            loss = loss + {"nan": float("nan"), "inf": float("inf"), "huge": 1e9}[self.how]
        return {"loss": loss}

    @torch.no_grad()
    def sample(self, n, generator=None):
        return torch.full((n, *SHAPE), 0.5)


@pytest.mark.parametrize("how", ["nan", "inf", "huge"])
def test_divergence_is_recorded_at_its_step(how, small_train, tmp_path):
    k = 7
    cfg = replace(BASE, max_steps=30, log_every=1)
    st = Trainer(cfg, tmp_path, 0, CPU, rid="x").fit(BlowsUpAt(k, how), Batches(small_train, 32, 0, CPU))
    assert st["status"] == "diverged", f"a {how} loss at step {k} gave status {st['status']!r}"
    assert st["diverged_at"] == k and st["step"] == k, f"diverged_at={st.get('diverged_at')}, step={st['step']}"
    assert "loss" in st["divergence"]
    steps = [r["step"] for r in _log_rows(tmp_path / "train_log.jsonl")]
    assert steps == list(range(1, k)), f"the log should hold the finite steps 1..{k - 1}, has {steps}"
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["state"]["status"] == "diverged"


def test_a_diverged_run_flows_through_train_evaluate_and_summary(fmnist_root, tmp_path, monkeypatch):
    """train() writes a summary naming the step; evaluate_run records it instead of scoring; the
    summary lists the seed as diverged and the results table says so."""
    from genreview.evaluate import evaluate_run
    from genreview.summary import model_summary
    from genreview.tables import results_table

    k = 5
    monkeypatch.setattr(T, "build", lambda name, hparams, shape: BlowsUpAt(k))
    spec = {"dataset": "fashion_mnist", "data_root": str(fmnist_root), "device": "cpu", "model": "vae", "seed": 0,
            "hparams": {}, "train": {**asdict(BASE), "max_steps": 20}}
    summary = T.train(spec, tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert saved == summary
    assert saved["status"] == "diverged" and saved["diverged_at"] == k and saved["steps"] == k, saved
    assert (tmp_path / "run" / "model.pt").exists(), "snakemake expects model.pt even for a diverged run"

    metrics = evaluate_run({**spec, "eval": {}}, tmp_path / "run", tmp_path / "no-classifier.pt", tmp_path / "eval")
    assert metrics["status"] == "diverged" and "fd" not in metrics
    ms = model_summary("vae", [metrics])
    assert ms["n_ok"] == 0 and ms["diverged"] == [{"seed": 0, "at_step": k, "reason": saved["divergence"]}]
    assert ms["metrics"]["steps"]["mean"] == k, "cost of a diverged run is still reported"
    fake = {"reference": {"floor": {m: 1.0 for m in ("fd", "kid", "is", "precision", "recall", "density",
                                                          "coverage")},
                          "ceiling": {m: 2.0 for m in ("fd", "kid", "is", "precision", "recall", "density",
                                                            "coverage")}},
            "order": ["vae"], "models": {"vae": ms}, "n_samples": 100}
    row = results_table(fake).iloc[1]
    assert row["Model"] == "VAE" and "diverged" in row.tolist() and row["Seeds"] == "0/1", row.tolist()


# --------------------------------------------------------------------------- resume

class Killed(Exception):
    pass


class CrashesAt(VAE):
    """A VAE whose process 'dies' at its k-th step (as a killed job would)."""

    def __init__(self, cfg, shape, k):
        super().__init__(cfg, shape)
        self.k, self.calls = k, 0

    def loss(self, x, y=None):
        self.calls += 1
        if self.calls == self.k:
            raise Killed(f"killed at step {self.k}")
        return super().loss(x, y)


N_STEPS = 40  # 32 batches per epoch: the run crosses an epoch boundary


def _vae(seed=0):
    seed_everything(seed)
    return build("vae", smoke_hparams("vae"), SHAPE)


def _fit(out, model, split, rid="r", **over):
    cfg = replace(BASE, **{"max_steps": N_STEPS, **over})
    return Trainer(cfg, out, 0, CPU, rid=rid).fit(model, Batches(split, cfg.batch_size, 0, CPU))


@pytest.fixture(scope="module")
def uninterrupted(small_train, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    model = _vae()
    st = _fit(out, model, small_train)
    assert st["status"] == "ok" and st["step"] == N_STEPS
    return model, _log_rows(out / "train_log.jsonl")


def test_resume_after_max_steps_is_exact(uninterrupted, small_train, tmp_path):
    ref_model, ref_log = uninterrupted
    first = _fit(tmp_path, _vae(), small_train, max_steps=20)
    assert first["step"] == 20
    # A different global RNG state and a different initialisation: both must come from the checkpoint.
    resumed = _vae(seed=123)
    st = _fit(tmp_path, resumed, small_train)
    assert st["step"] == N_STEPS and st["status"] == "ok"
    _assert_same_state(resumed, ref_model, "resumed (20 + 20 steps) vs uninterrupted (40 steps)")
    rows = _log_rows(tmp_path / "train_log.jsonl")
    steps = [r["step"] for r in rows]
    assert len(steps) == len(set(steps)), f"duplicated steps in the log: {steps}"
    assert _losses(rows) == _losses(ref_log), "the resumed run's log differs from the uninterrupted run's"


def test_resume_after_a_crash_is_exact(uninterrupted, small_train, tmp_path):
    """Killed at step 27: the checkpoint is from step 20, the log already holds step 25; the
    resumed run drops that line, redoes steps 21-40, and ends where an uninterrupted run ends."""
    ref_model, ref_log = uninterrupted
    hp = smoke_hparams("vae")
    seed_everything(0)  # the same initialisation and RNG stream as _vae()
    crashing = CrashesAt(VAEConfig(**hp), SHAPE, k=27)
    trainer = Trainer(replace(BASE, max_steps=N_STEPS), tmp_path, 0, CPU, rid="r")
    with pytest.raises(Killed):
        trainer.fit(crashing, Batches(small_train, BASE.batch_size, 0, CPU))
    trainer._logf.close()  # what the OS does for a killed process: lines written so far stay
    running_log = Path(trainer._logf.name)  # the log being written (whatever its name)
    assert [r["step"] for r in _log_rows(running_log)] == [5, 10, 15, 20, 25], "lines past the checkpoint"
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["state"]["step"] == 20

    resumed = _vae(seed=99)
    st = _fit(tmp_path, resumed, small_train)
    assert st["step"] == N_STEPS
    _assert_same_state(resumed, ref_model, "resumed after a crash vs uninterrupted")
    rows = _log_rows(tmp_path / "train_log.jsonl")
    steps = [r["step"] for r in rows]
    assert steps == [r["step"] for r in ref_log], f"log steps after resuming: {steps}"
    assert _losses(rows) == _losses(ref_log)


def test_checkpoint_from_another_config_is_ignored(uninterrupted, small_train, tmp_path):
    ref_model, ref_log = uninterrupted
    spec = {"model": "vae", "seed": 0, "hparams": smoke_hparams("vae"), "train": asdict(BASE)}
    other = {**spec, "hparams": {**spec["hparams"], "lr": 1e-2}}
    assert run_id(spec) != run_id(other) and run_id(spec) == run_id(json.loads(json.dumps(spec)))
    stale_model = build("vae", other["hparams"], SHAPE)
    seed_everything(0)
    _fit(tmp_path, stale_model, small_train, rid=run_id(other), max_steps=20)

    model = _vae()  # seeds 0, as the uninterrupted run did
    st = _fit(tmp_path, model, small_train, rid=run_id(spec))
    assert st["step"] == N_STEPS
    # Resuming the stale checkpoint (trained at lr 1e-2) would have ended elsewhere.
    _assert_same_state(model, ref_model, "a fresh run beside a stale checkpoint vs the uninterrupted run")
    rows = _log_rows(tmp_path / "train_log.jsonl")
    assert _losses(rows) == _losses(ref_log), "the stale run's log lines were kept or the run did not restart"


GRADIENT_TRAINED = sorted(n for n, (cls, _) in REGISTRY.items() if not cls.classical)  # GMM/HMM fit in one call


@pytest.mark.parametrize("name", GRADIENT_TRAINED)
def test_resume_after_a_crash_is_exact_for_every_family(name, small_train, tmp_path):
    """Optimisers, LR schedules, EMA weights and BatchNorm statistics all come back from the checkpoint."""
    cfg = replace(BASE, batch_size=16, max_steps=12, checkpoint_every=4, log_every=2)

    def fresh(seed):
        seed_everything(seed)
        return build(name, smoke_hparams(name), SHAPE)

    def fit(out, model):
        return Trainer(cfg, out, 0, CPU, rid="r").fit(model, Batches(small_train, cfg.batch_size, 0, CPU))

    reference = fresh(0)
    fit(tmp_path / "ref", reference)

    crashing, calls = fresh(0), []
    real_step = crashing.train_step

    def train_step(*args, **kwargs):
        calls.append(1)
        if len(calls) == 10:
            raise Killed("killed at step 10")
        return real_step(*args, **kwargs)

    crashing.train_step = train_step
    trainer = Trainer(cfg, tmp_path / "run", 0, CPU, rid="r")
    with pytest.raises(Killed):
        trainer.fit(crashing, Batches(small_train, cfg.batch_size, 0, CPU))
    trainer._logf.close()

    resumed = fresh(7)
    st = fit(tmp_path / "run", resumed)
    assert st["step"] == 12
    _assert_same_state(resumed, reference, f"{name}: resumed at step 8 after a crash at 10 vs uninterrupted")
    assert _losses(_log_rows(tmp_path / "run" / "train_log.jsonl")) == \
        _losses(_log_rows(tmp_path / "ref" / "train_log.jsonl"))


# --------------------------------------------------------------------------- reruns after a kill or a divergence

def test_resume_when_snakemake_deleted_the_log(uninterrupted, small_train, tmp_path):
    """A killed `train` job is rerun by snakemake (rerun-incomplete), which first removes the job's
    outputs: train_log.jsonl goes, checkpoint.pt (not an output) stays. The run must still resume."""
    ref_model, ref_log = uninterrupted
    _fit(tmp_path, _vae(), small_train, max_steps=20)
    (tmp_path / "train_log.jsonl").unlink()
    resumed = _vae(seed=5)
    st = _fit(tmp_path, resumed, small_train)
    assert st["step"] == N_STEPS
    _assert_same_state(resumed, ref_model, "resumed after the log was deleted")
    steps = [r["step"] for r in _log_rows(tmp_path / "train_log.jsonl")]
    assert steps == [r["step"] for r in ref_log], f"the log after resuming holds steps {steps}"


def test_rerunning_a_diverged_run_keeps_its_record(small_train, tmp_path):
    k = 4
    cfg = replace(BASE, max_steps=20, log_every=1)
    first = Trainer(cfg, tmp_path, 0, CPU, rid="x").fit(BlowsUpAt(k), Batches(small_train, 32, 0, CPU))
    assert first["diverged_at"] == k
    again = Trainer(cfg, tmp_path, 0, CPU, rid="x").fit(BlowsUpAt(k), Batches(small_train, 32, 0, CPU))
    assert again["status"] == "diverged" and again["diverged_at"] == k, (
        f"rerunning the same diverged configuration recorded divergence at step {again.get('diverged_at')}")
