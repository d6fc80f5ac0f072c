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

import genreview.training.train as T
from genreview import config as C
from genreview.data import Batches
from genreview.models import REGISTRY, build
from genreview.models.base import GenerativeModel
from genreview.models.vae import VAE, VAEConfig
from genreview.training.config import DIVERGENCE_POLICY, run_id, TrainConfig
from genreview.training.trainer import Trainer
from genreview.utils import seed_everything

from conftest import CPU, SHAPE, smoke_config, smoke_hparams

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
    from genreview.evaluation.evaluate import evaluate_run
    from genreview.summary.collect import model_summary
    from genreview.publish.tables.results import results_table

    k = 5
    monkeypatch.setattr(T, "build", lambda name, hparams, shape: BlowsUpAt(k))
    spec = {"dataset": "fashion_mnist", "data_root": str(fmnist_root), "device": "cpu", "model": "vae", "seed": 0,
            "hparams": {}, "train": {**asdict(BASE), "max_steps": 20}}
    summary = T.train(spec, tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert saved == summary
    assert saved["status"] == "diverged" and saved["diverged_at"] == k and saved["steps"] == k, saved
    assert (tmp_path / "run" / "model.pt").exists(), "snakemake expects model.pt even for a diverged run"
    assert saved["images_per_s"] == pytest.approx(k * BASE.batch_size / saved["train_seconds"])
    assert saved["peak_memory_mb"] > 0 and saved["peak_memory_kind"] == "rss"

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


def test_a_checkpoint_loads_on_the_cpu_whatever_the_trainers_device(small_train, tmp_path):
    """A GPU job resumes from a checkpoint whose random state must reach torch.set_rng_state as a CPU tensor
    (a CUDA one is a TypeError): the checkpoint is read onto the CPU and the states are copied onto the
    model's device by load_state_dict. A trainer for a CUDA device reads it here too, without a GPU."""
    _fit(tmp_path, _vae(), small_train, max_steps=10)
    ck = Trainer(replace(BASE, max_steps=N_STEPS), tmp_path, 0, torch.device("cuda"), rid="r")._load_checkpoint()
    assert ck is not None, "the checkpoint was not read for a CUDA trainer"
    assert ck["state"]["step"] == 10
    tensors = [ck["rng"]["torch"], *ck["model"].values(),
               *(v for o in ck["optimizers"].values() for st in o["state"].values() for v in st.values()
                 if torch.is_tensor(v))]
    assert {t.device.type for t in tensors} == {"cpu"}, "a checkpoint tensor was not loaded onto the CPU"


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


def _kill_at(k: int, model, cfg, split, out):
    """Train `model` into `out` until its k-th step raises Killed, as a killed job stops: the checkpoint and the
    log lines written so far stay."""
    calls, real_step = [], model.train_step

    def train_step(*args, **kwargs):
        calls.append(1)
        if len(calls) == k:
            raise Killed(f"killed at step {k}")
        return real_step(*args, **kwargs)

    model.train_step = train_step
    trainer = Trainer(cfg, out, 0, CPU, rid="r")
    with pytest.raises(Killed):
        trainer.fit(model, Batches(split, cfg.batch_size, 0, CPU))
    trainer._logf.close()


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

    _kill_at(10, fresh(0), cfg, small_train, tmp_path / "run")

    resumed = fresh(7)
    st = fit(tmp_path / "run", resumed)
    assert st["step"] == 12
    _assert_same_state(resumed, reference, f"{name}: resumed at step 8 after a crash at 10 vs uninterrupted")
    assert _losses(_log_rows(tmp_path / "run" / "train_log.jsonl")) == \
        _losses(_log_rows(tmp_path / "ref" / "train_log.jsonl"))


@pytest.mark.parametrize("name", ["vae", "dcgan", "ddpm"])  # plain; BatchNorm and two optimisers; EMA and LR warm-up
def test_the_smoke_profiles_mid_run_checkpoints_change_no_result(name, small_train, tmp_path):
    """The smoke profile checkpoints mid-run (train.checkpoint_every below its max_steps) so that a killed smoke
    job resumes; saving a checkpoint reads the random state but never draws from it, so the run ends exactly
    where a run with no mid-run checkpoint ends."""
    spec = C.train_spec(smoke_config(), name, 0)
    smoke = replace(TrainConfig(**spec["train"]), batch_size=64)  # 16 steps per epoch of small_train: no epoch end
    assert smoke.checkpoint_every < smoke.max_steps < len(small_train) // smoke.batch_size, asdict(smoke)
    models = {}
    for every in (smoke.checkpoint_every, 10**6):
        seed_everything(0)
        models[every] = build(name, spec["hparams"], SHAPE)
        cfg = replace(smoke, checkpoint_every=every)
        st = Trainer(cfg, tmp_path / str(every), 0, CPU, rid="r").fit(models[every],
                                                                       Batches(small_train, cfg.batch_size, 0, CPU))
        assert st["step"] == smoke.max_steps
    _assert_same_state(models[smoke.checkpoint_every], models[10**6], f"{name}: mid-run checkpoints vs none")
    logs = [_losses(_log_rows(tmp_path / str(every) / "train_log.jsonl")) for every in models]
    assert logs[0] == logs[1], f"{name}: the losses changed with mid-run checkpoints"


def test_a_checkpoint_between_two_log_lines_keeps_the_losses_of_its_window(small_train, tmp_path):
    """checkpoint_every 5, log_every 2 (the smoke profile's): the checkpoint at step 5 falls inside the window of
    steps 5-6, so a run resumed there must average step 5's loss (from the checkpoint) into its line for step 6."""
    cfg = replace(BASE, max_steps=12, checkpoint_every=5, log_every=2)
    ref = _vae()
    Trainer(cfg, tmp_path / "ref", 0, CPU, rid="r").fit(ref, Batches(small_train, cfg.batch_size, 0, CPU))

    _kill_at(8, _vae(), cfg, small_train, tmp_path / "run")
    resumed = _vae(seed=3)
    Trainer(cfg, tmp_path / "run", 0, CPU, rid="r").fit(resumed, Batches(small_train, cfg.batch_size, 0, CPU))
    _assert_same_state(resumed, ref, "resumed at step 5 vs uninterrupted")
    assert _losses(_log_rows(tmp_path / "run" / "train_log.jsonl")) == \
        _losses(_log_rows(tmp_path / "ref" / "train_log.jsonl")), "the line for step 6 lost step 5's loss"


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


# --------------------------------------------------------------------------- divergence policy: record or retry

class ExplodesAboveLr(GenerativeModel):
    """Two parameters, each with its own SGD optimiser (the second under a constant LambdaLR schedule),
    on the quadratic loss c (w - m)^2, m the batch mean plus a little noise (which draws random numbers):
    gradient descent scales w - m by |1 - 2 c lr| per step, so it diverges exactly when lr > 1 / c.
    `crash_at`: the train_step call (counted over every attempt) at which the process 'dies'."""

    likelihood = "none"

    def __init__(self, lr: float, curvature: float, crash_at: int = 0):
        super().__init__(SimpleNamespace(lr=lr), SHAPE)
        self.a, self.b = nn.Parameter(1 + torch.randn(())), nn.Parameter(1 + torch.randn(()))
        self.c, self.crash_at, self.calls = curvature, crash_at, 0

    def loss(self, x, y=None):
        m = x.mean() + 0.01 * torch.randn(())
        la, lb = self.c * (self.a - m) ** 2, self.c * (self.b - m) ** 2
        return {"loss": la + lb, "loss_a": la, "loss_b": lb}

    def configure_optimizers(self):
        return {"a": torch.optim.SGD([self.a], lr=self.cfg.lr), "b": torch.optim.SGD([self.b], lr=self.cfg.lr)}

    def lr_schedulers(self, optimizers, total_steps):
        return [torch.optim.lr_scheduler.LambdaLR(optimizers["b"], lambda step: 1.0)]

    def train_step(self, x, y, optimizers, amp=None):
        self.calls += 1
        if self.calls == self.crash_at:
            raise Killed(f"killed at train_step call {self.calls}")
        losses = self.loss(x, y)
        for o in optimizers.values():
            o.zero_grad(set_to_none=True)
        losses["loss"].backward()
        for o in optimizers.values():
            o.step()
        return {k: v.detach() for k, v in losses.items()}

    @torch.no_grad()
    def sample(self, n, generator=None):
        return torch.full((n, *SHAPE), 0.5)


LR, STABLE_AT_HALF, UNSTABLE_AT_QUARTER = 0.1, 15.0, 100.0  # 1/c: 0.067 (lr 0.1 diverges, 0.05 not), 0.01
RETRY = replace(BASE, max_steps=30, log_every=1, checkpoint_every=5, on_divergence="retry", divergence_retries=2,
                retry_lr_factor=0.5)


def _explodes(lr=LR, curvature=STABLE_AT_HALF, crash_at=0, seed=0):
    seed_everything(seed)
    return ExplodesAboveLr(lr, curvature, crash_at)


def _fit_cfg(cfg, out, model, split, rid="r"):
    return Trainer(cfg, out, 0, CPU, rid=rid).fit(model, Batches(split, cfg.batch_size, 0, CPU))


def _untimed(attempts):
    return [{k: v for k, v in a.items() if k != "train_seconds"} for a in attempts]


def test_record_keeps_stopping_at_the_divergence(small_train, tmp_path):
    st = _fit_cfg(replace(RETRY, on_divergence="record"), tmp_path, _explodes(), small_train)
    assert st["status"] == "diverged" and 1 < st["diverged_at"] < RETRY.max_steps, st
    assert _untimed(st["attempts"]) == [{"lr_scale": 1.0, "diverged_at": st["diverged_at"],
                                         "divergence": st["divergence"]}]
    assert not list(tmp_path.glob("train_log.attempt*.jsonl")), "record made a restart"
    assert [r["step"] for r in _log_rows(tmp_path / "train_log.jsonl")] == list(range(1, st["diverged_at"]))


def test_retry_recovers_at_a_lower_learning_rate_exactly(small_train, tmp_path):
    """lr 0.1 diverges, 0.05 does not: the retry ends "ok" after one restart, and that restart is exactly
    a fresh run at lr 0.05 (same initial weights and random numbers, both optimisers and the schedule's
    base rate scaled)."""
    record = _fit_cfg(replace(RETRY, on_divergence="record"), tmp_path / "record", _explodes(), small_train)
    diverged_at = record["diverged_at"]
    retried = _explodes()
    st = _fit_cfg(RETRY, tmp_path / "retry", retried, small_train)
    assert st["status"] == "ok" and st["step"] == RETRY.max_steps, st
    assert _untimed(st["attempts"]) == [
        {"lr_scale": 1.0, "diverged_at": diverged_at, "divergence": record["divergence"]},
        {"lr_scale": 0.5, "diverged_at": None, "divergence": None}], st["attempts"]
    assert st.get("diverged_at") is None and st["lr_scale"] == 0.5 and st["attempt"] == 1

    half = _explodes(lr=LR * 0.5)
    ref = _fit_cfg(replace(RETRY, on_divergence="record"), tmp_path / "half", half, small_train)
    assert ref["status"] == "ok"
    _assert_same_state(retried, half, "the retried attempt vs a fresh run at half the learning rate")
    assert _losses(_log_rows(tmp_path / "retry" / "train_log.jsonl")) == \
        _losses(_log_rows(tmp_path / "half" / "train_log.jsonl"))
    kept = _log_rows(tmp_path / "retry" / "train_log.attempt0.jsonl")
    assert [r["step"] for r in kept] == list(range(1, diverged_at)), "the diverged attempt's log was not kept"


def test_retry_when_every_attempt_diverges_ends_diverged(small_train, tmp_path):
    st = _fit_cfg(RETRY, tmp_path, _explodes(curvature=UNSTABLE_AT_QUARTER), small_train)
    assert st["status"] == "diverged", "a run whose every attempt diverged must say so"
    assert [a["lr_scale"] for a in st["attempts"]] == [1.0, 0.5, 0.25]
    assert all(a["diverged_at"] and "loss" in a["divergence"] for a in st["attempts"]), st["attempts"]
    assert st["diverged_at"] == st["attempts"][-1]["diverged_at"] and st["divergence"] == st["attempts"][-1][
        "divergence"]
    assert sorted(p.name for p in tmp_path.glob("train_log.attempt*.jsonl")) == \
        ["train_log.attempt0.jsonl", "train_log.attempt1.jsonl"]
    # Rerunning the same configuration starts over and records the same three attempts.
    again = _fit_cfg(RETRY, tmp_path, _explodes(curvature=UNSTABLE_AT_QUARTER), small_train)
    assert _untimed(again["attempts"]) == _untimed(st["attempts"])


@pytest.mark.parametrize("after", [1, 12], ids=["before-the-attempts-first-checkpoint", "mid-attempt"])
def test_resuming_a_retry_keeps_its_attempt_and_scale(after, small_train, tmp_path):
    """Killed `after` steps into the second attempt: killed at step 1, the checkpoint on disk is the first
    attempt's diverged one; at step 12 it is the second attempt's from step 10. Either way the next run goes
    on with attempt 1 at half the learning rate and ends as an uninterrupted retry does."""
    ref_model = _explodes()
    ref = _fit_cfg(RETRY, tmp_path / "ref", ref_model, small_train)
    first = ref["attempts"][0]["diverged_at"]
    crashing = _explodes(crash_at=first + after)
    with pytest.raises(Killed):
        _fit_cfg(RETRY, tmp_path / "run", crashing, small_train)
    ck = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["state"]
    assert (ck["attempt"], ck["status"]) == ((0, "diverged") if after == 1 else (1, "running")), ck["status"]

    resumed = _explodes(seed=0)
    st = _fit_cfg(RETRY, tmp_path / "run", resumed, small_train)
    assert st["status"] == "ok" and _untimed(st["attempts"]) == _untimed(ref["attempts"]), st["attempts"]
    _assert_same_state(resumed, ref_model, f"a retry killed {after} steps into its second attempt, resumed")
    assert _losses(_log_rows(tmp_path / "run" / "train_log.jsonl")) == \
        _losses(_log_rows(tmp_path / "ref" / "train_log.jsonl"))


def test_retries_reach_train_summary_and_the_summary(fmnist_root, tmp_path, monkeypatch):
    from genreview.summary.collect import model_summary

    monkeypatch.setattr(T, "build", lambda name, hparams, shape: _explodes())
    spec = {"dataset": "fashion_mnist", "data_root": str(fmnist_root), "device": "cpu", "model": "vae", "seed": 0,
            "hparams": {}, "train": asdict(replace(RETRY, max_steps=20))}
    summary = T.train(spec, tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert saved == summary
    assert saved["status"] == "ok" and [a["lr_scale"] for a in saved["attempts"]] == [1.0, 0.5], saved["attempts"]
    assert saved["attempts"][0]["diverged_at"] and saved["attempts"][1]["diverged_at"] is None
    ms = model_summary("vae", [{"model": "vae", "seed": 0, "status": "ok", "train": saved}])
    assert ms["retried"] == [{"seed": 0, "attempts": 2, "lr_scale": 0.5, "status": "ok"}]
    assert ms["diverged"] == []


def test_run_id_leaves_out_only_the_default_divergence_policy():
    spec = {"model": "vae", "seed": 0, "hparams": {"lr": 1e-3}, "train": asdict(BASE)}
    old = {**spec, "train": {k: v for k, v in spec["train"].items() if k not in DIVERGENCE_POLICY}}
    assert run_id(spec) == run_id(old), "the default policy changed the ids of existing runs"
    assert run_id({"train": spec}) == run_id({"train": old}), "nested specs (the dynamics study's) too"
    retry = {**spec, "train": {**spec["train"], "on_divergence": "retry"}}
    assert run_id(retry) != run_id(spec)
    assert run_id(retry) != run_id({**retry, "train": {**retry["train"], "retry_lr_factor": 0.25}})
    assert run_id(retry) != run_id({**retry, "train": {**retry["train"], "divergence_retries": 3}})


def test_an_unknown_divergence_policy_is_an_error_naming_the_choices():
    with pytest.raises(ValueError, match="record or retry"):
        TrainConfig(on_divergence="skip")


def test_deterministic_algorithms_change_nothing_on_the_cpu(small_train, tmp_path):
    """`deterministic: true` (and the reproduce target) turns on PyTorch's deterministic algorithms: on a CPU the
    run is the same, so a reviewer's deterministic re-run repeats the paper's run exactly."""
    from genreview.utils import set_deterministic
    models = []
    try:
        for on in (False, True):
            set_deterministic(on)
            assert torch.are_deterministic_algorithms_enabled() is on
            model = _vae()
            _fit(tmp_path / str(on), model, small_train, max_steps=10)
            models.append(model)
    finally:
        set_deterministic(False)
    _assert_same_state(models[1], models[0], "deterministic algorithms on vs off")


def test_precision_and_memory_format_are_measured_once_per_model_and_machine(small_train, tmp_path, monkeypatch):
    """The first seed measures and writes the choice beside the seeds' folders; the other seeds read it (so seeds
    differ only by seed); a model with other hyperparameters measures anew."""
    calls = []
    real = Trainer._measure_speed_settings

    def measure(self, model, batches, precisions, formats):
        calls.append(self.out.name)
        return real(self, model, batches, precisions, formats)

    monkeypatch.setattr(Trainer, "_measure_speed_settings", measure)
    cfg = replace(BASE, max_steps=2, memory_format="auto", precision="fp32")
    cache = tmp_path / "speed_settings.json"
    batches = Batches(small_train, cfg.batch_size, 0, CPU)
    first = Trainer(cfg, tmp_path / "seed0", 0, CPU, speed_cache=cache)._choose_speed_settings(_vae(), batches)
    second = Trainer(cfg, tmp_path / "seed1", 1, CPU, speed_cache=cache)._choose_speed_settings(_vae(1), batches)
    assert calls == ["seed0"], f"measured by {calls}: only the first seed measures"
    assert first["speed_settings"] == "measured" and second["speed_settings"] == str(cache)
    choice = ("precision", "memory_format")
    assert [second[k] for k in choice] == [first[k] for k in choice]
    other = build("vae", {**smoke_hparams("vae"), "latent_dim": 4}, SHAPE)
    Trainer(cfg, tmp_path / "seed2", 2, CPU, speed_cache=cache)._choose_speed_settings(other, batches)
    assert calls == ["seed0", "seed2"], "other hyperparameters: measured again"
    fixed = Trainer(replace(cfg, memory_format="contiguous"), tmp_path / "x", 0, CPU, speed_cache=cache)
    assert fixed._choose_speed_settings(_vae(), batches)["speed_settings"] == "configured"
