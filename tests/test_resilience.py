"""Resilience end to end, through Snakemake, in temporary copies of the workflow at the smoke profile
with one model (the VAE) trained long enough to be killed half-way:

- a SIGKILL of snakemake and its training job (the whole process group) leaves no declared output
  half-written, Snakemake plans to rerun the job, and the next call (after `--unlock`, which a killed
  snakemake needs) resumes from the checkpoint and ends with exactly the results of an uninterrupted run;
- every writer of a file in the package goes through `atomic_path` (a static check);
- the same seed and profile on CPU give identical results files in two copies.

Three workflow copies in all (module-scoped fixtures): two uninterrupted runs side by side, and the
killed one. Jobs run with one thread each; timing fields are the only ones allowed to differ.
"""
from __future__ import annotations

import ast
import base64
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from genreview import data as D
from genreview.paths import Paths

from conftest import DEBIAN_DIR, REPO, copy_workflow, load_raw_config, snakemake_cmd, snakemake_env

pytestmark = pytest.mark.slow

CORES = os.environ.get("GENREVIEW_TEST_CORES", "2")
TIMEOUT = int(os.environ.get("GENREVIEW_TEST_PIPELINE_TIMEOUT", "600"))
MODEL, SEED = "vae", 0
STEPS, CHECKPOINT_EVERY, LOG_EVERY = 200, 20, 10  # a few seconds of training, a checkpoint every 20 steps
P = Paths("smoke")
TARGET = P.eval_dir(MODEL, SEED) + "/metrics.json"
RUN = Path(P.run_dir(MODEL, SEED))
TRAIN_OUTPUTS = ["model.pt", "train_summary.json", "train_log.jsonl", "progress.pt"]  # rules/models.smk
# Fields that measure time or the machine's memory: the only ones two runs of the same computation may disagree on.
TIMING_KEYS = {"wall", "elapsed", "train_seconds", "ms_per_step", "calibration_ms", "sample_ms_per_image",
               "bpd_ms_per_image", "bpd_seconds", "images_per_s", "peak_memory_mb", "latency_ms"}


# --------------------------------------------------------------------------- helpers

def _config(data_root: Path) -> dict:
    raw = load_raw_config()
    raw.update(profile="smoke", models=[MODEL], seeds=[SEED])
    raw["data"] = {"root": str(data_root), "debian_dir": str(DEBIAN_DIR)}
    smoke = raw["profiles"]["smoke"]
    smoke["classifier"] = {"epochs": 1, "max_steps": 20, "width": 8, "batch_size": 64}  # only a judge here
    smoke["hparams"][MODEL] = {**smoke["hparams"].get(MODEL, {}), "max_steps": STEPS, "batch_size": 32,
                               "checkpoint_every": CHECKPOINT_EVERY, "log_every": LOG_EVERY}
    return raw


def _args(*extra: str) -> list[str]:
    # Targets and flags before --config: it takes every word after it.
    return snakemake_cmd(TARGET, *extra, "--cores", CORES, "--max-threads", "1", "--config", "profile=smoke")


def _start(workdir: Path, name: str, *extra: str) -> subprocess.Popen:
    """snakemake in its own process group (its jobs inherit it), output to <name>.out in the copy."""
    out = open(workdir / f"{name}.out", "w")
    return subprocess.Popen(_args(*extra), cwd=workdir, stdout=out, stderr=subprocess.STDOUT, env=snakemake_env(),
                            start_new_session=True)


def _finish(workdir: Path, name: str, p: subprocess.Popen) -> None:
    try:
        rc = p.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        raise
    assert rc == 0, _explain(workdir, name, rc)


def _explain(workdir: Path, name: str, rc) -> str:
    out = (workdir / f"{name}.out").read_text(errors="replace")[-4000:]
    logs = [f"--- {f.relative_to(workdir)}\n{f.read_text(errors='replace')[-1500:]}"
            for f in sorted((workdir / P.logs).rglob("*.log"))] if (workdir / P.logs).exists() else []
    return f"snakemake ({name}) exited {rc}\n{out}\n" + "\n".join(logs)


def _untimed(obj):
    if isinstance(obj, dict):
        return {k: _untimed(v) for k, v in obj.items() if k not in TIMING_KEYS}
    if isinstance(obj, list):
        return [_untimed(v) for v in obj]
    return obj


def _canonical_json(path: Path) -> bytes:
    return json.dumps(_untimed(json.loads(path.read_text())), sort_keys=True, indent=1).encode()


def _canonical_log(path: Path) -> bytes:
    rows = [_untimed(json.loads(line)) for line in path.read_text().splitlines()]
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode()


def _logged_steps(path: Path) -> list[int]:
    if not path.exists():
        return []
    return [json.loads(line)["step"] for line in path.read_text().splitlines() if line.endswith("}")]


def _rules_in(output: str) -> set[str]:
    return set(re.findall(r"^\s*(?:local)?rule (\w+):", output, flags=re.M))


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def data_root(fmnist_root) -> Path:
    """The shared data folder with the manifest the workflow's first rule writes, so that no copy prepares
    the data again (Snakemake keeps an existing output it has no record of)."""
    manifest = Paths("smoke", str(fmnist_root)).manifest
    if not Path(manifest).exists():
        D.prepare("fashion_mnist", fmnist_root, DEBIAN_DIR, manifest)
    return fmnist_root


@pytest.fixture(scope="module")
def clean_runs(data_root, tmp_path_factory) -> list[Path]:
    """Two uninterrupted runs of the same configuration in two copies, side by side."""
    dirs = [copy_workflow(tmp_path_factory.mktemp(f"clean{i}"), _config(data_root)) for i in range(2)]
    procs = [_start(d, "run") for d in dirs]
    for d, p in zip(dirs, procs):
        _finish(d, "run", p)
    return dirs


@pytest.fixture(scope="module")
def killed(data_root, tmp_path_factory) -> SimpleNamespace:
    """A run whose snakemake and training job are SIGKILLed once a checkpoint exists and the log has gone
    past it; what was on disk then; a dry run; then `--unlock` and a second call that finishes."""
    workdir = copy_workflow(tmp_path_factory.mktemp("killed"), _config(data_root))
    run = workdir / RUN
    p = _start(workdir, "first")
    deadline, ckpt_step = time.monotonic() + TIMEOUT, None
    while time.monotonic() < deadline:
        if p.poll() is not None:
            pytest.fail("snakemake ended before it could be killed mid-training (raise STEPS?)\n"
                        + _explain(workdir, "first", p.returncode))
        if (run / "checkpoint.pt").exists():
            ckpt_step = torch.load(run / "checkpoint.pt", weights_only=False)["state"]["step"]
            if max(_logged_steps(run / "train_log.partial.jsonl"), default=0) > ckpt_step:
                break
        time.sleep(0.05)
    else:
        os.killpg(p.pid, signal.SIGKILL)
        pytest.fail("no checkpoint with progress past it within the time limit\n" + _explain(workdir, "first", None))
    os.killpg(p.pid, signal.SIGKILL)  # snakemake and its jobs: one process group
    p.wait()
    time.sleep(0.2)  # let the kernel reap the group's last children
    at_kill = {name: (run / name).exists() for name in TRAIN_OUTPUTS}
    loadable = {}
    for name, exists in at_kill.items():
        if exists:
            loadable[name] = _loads(run / name)
    locked = any((workdir / ".snakemake" / "locks").glob("*")) if (workdir / ".snakemake" / "locks").exists() \
        else False
    incomplete = {name: (workdir / ".snakemake" / "incomplete" /
                         base64.b64encode(str(RUN / name).encode()).decode()).exists() for name in TRAIN_OUTPUTS}
    dry = subprocess.run(_args("-n"), cwd=workdir, capture_output=True, text=True, timeout=TIMEOUT,
                         env=snakemake_env())
    unlock = subprocess.run(snakemake_cmd("--unlock", "--cores", "1", "--config", "profile=smoke"), cwd=workdir,
                            capture_output=True, text=True, timeout=TIMEOUT, env=snakemake_env())
    assert unlock.returncode == 0, unlock.stderr[-3000:]
    _finish(workdir, "second", _start(workdir, "second"))
    return SimpleNamespace(dir=workdir, ckpt_step=ckpt_step, at_kill=at_kill, loadable=loadable, locked=locked,
                           incomplete=incomplete, dry=dry)


def _loads(path: Path) -> bool:
    try:
        if path.suffix == ".pt":
            torch.load(path, weights_only=False)
        elif path.suffix == ".jsonl":
            [json.loads(line) for line in path.read_text().splitlines()]
        else:
            json.loads(path.read_text())
    except Exception:
        return False
    return True


# --------------------------------------------------------------------------- (a) kill and resume

def test_a_sigkilled_training_job_resumes_and_ends_as_an_uninterrupted_run(killed, clean_runs):
    log = (killed.dir / P.logs / "train" / f"{MODEL}_seed{SEED}.log").read_text()
    m = re.search(r"resuming from \S+ at step (\d+)/(\d+)", log)
    assert m, f"the rerun did not resume from the checkpoint; its training log:\n{log[-2000:]}"
    step, total = int(m.group(1)), int(m.group(2))
    assert 0 < step < total == STEPS and step >= killed.ckpt_step, (step, total, killed.ckpt_step)

    ref = clean_runs[0]
    for rel in (Path(TARGET), RUN / "train_summary.json"):
        got, want = json.loads((killed.dir / rel).read_text()), json.loads((ref / rel).read_text())
        differ = sorted(k for k in set(got) | set(want) if _untimed(got.get(k)) != _untimed(want.get(k))
                        and k not in TIMING_KEYS)
        assert not differ, f"{rel}: killed-and-resumed vs uninterrupted differ in {differ}"
    got = [_untimed(json.loads(line)) for line in (killed.dir / RUN / "train_log.jsonl").read_text().splitlines()]
    want = [_untimed(json.loads(line)) for line in (ref / RUN / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in got] == list(range(LOG_EVERY, STEPS + 1, LOG_EVERY)), "steps lost or repeated"
    assert got == want, "the resumed run's losses differ from the uninterrupted run's"


# The training job the rule runs (rules/models.smk), SIGKILLed by itself inside training step `kill_at`: a real
# SIGKILL (no cleanup, no flush) at a moment that does not depend on the machine's speed, which a smoke run's few
# milliseconds of training would otherwise leave to chance.
_KILL_AT_STEP = """
import os, runpy, signal, sys
from genreview.models import REGISTRY
cls, kill_at, calls = REGISTRY[sys.argv[1]][0], int(sys.argv[2]), []
real = cls.train_step
def train_step(self, *args, **kwargs):
    calls.append(1)
    if len(calls) == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(self, *args, **kwargs)
cls.train_step = train_step
sys.argv = ["genreview", *sys.argv[3:]]
runpy.run_module("genreview", run_name="__main__")
"""


def test_a_killed_smoke_training_job_resumes_from_the_smoke_profiles_checkpoint(fmnist_root, tmp_path):
    """The smoke profile as it is (not a longer run): its train.checkpoint_every falls inside its runs, so a smoke
    job killed past that step resumes there and ends with exactly the results of an uninterrupted job."""
    from genreview import config as C
    from conftest import smoke_config

    spec = C.train_spec(smoke_config(fmnist_root), MODEL, SEED)
    every, total, log_every = (spec["train"][k] for k in ("checkpoint_every", "max_steps", "log_every"))
    kill_at = every + log_every + 1  # the log has gone past the checkpoint: the resumed job must cut it back
    assert kill_at < total, f"the smoke profile's checkpoint_every ({every}) leaves no checkpoint mid-run ({total})"

    def job(out: Path, *driver: str) -> subprocess.CompletedProcess:
        args = ["train", "--spec", json.dumps(spec), "--out", str(out), "--threads", "1"]
        cmd = [*snakemake_cmd()[:1], "-c", _KILL_AT_STEP, MODEL, *driver, *args] if driver else \
            [*snakemake_cmd()[:1], "-m", "genreview", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=snakemake_env())

    killed, clean = tmp_path / "killed", tmp_path / "clean"
    first = job(killed, str(kill_at))
    assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
    assert not (killed / "model.pt").exists(), "the job finished before it was killed"
    assert torch.load(killed / "checkpoint.pt", weights_only=False)["state"]["step"] == every
    assert max(_logged_steps(killed / "train_log.partial.jsonl")) > every

    second = job(killed)
    assert second.returncode == 0, second.stderr[-3000:]
    log = second.stdout + second.stderr
    assert re.search(rf"resuming from \S+ at step {every}/{total}\b", log), f"no resumption at step {every}:\n{log}"
    assert job(clean).returncode == 0

    for name in ("train_summary.json",):
        assert _canonical_json(killed / name) == _canonical_json(clean / name), f"{name} differs"
    assert _canonical_log(killed / "train_log.jsonl") == _canonical_log(clean / "train_log.jsonl")
    got, want = (torch.load(d / "model.pt", weights_only=False)["state_dict"] for d in (killed, clean))
    assert [k for k in want if not torch.equal(got[k], want[k])] == [], "the resumed job's weights differ"


# --------------------------------------------------------------------------- (b) atomic outputs

def test_a_killed_job_leaves_no_half_written_output_and_is_planned_again(killed):
    assert not all(killed.at_kill.values()), "the job had finished when it was killed: nothing was tested"
    broken = [name for name, ok in killed.loadable.items() if not ok]
    assert not broken, f"half-written outputs after SIGKILL: {broken}"
    assert killed.locked, "a SIGKILLed snakemake leaves its lock (the README tells users to --unlock)"
    assert any(killed.incomplete.values()), f"no incomplete marker for the killed job's outputs: {killed.incomplete}"
    dry = killed.dry.stdout + killed.dry.stderr
    assert killed.dry.returncode == 0, dry[-3000:]
    assert {"train", "evaluate"} <= _rules_in(dry), f"the dry run after the kill does not rerun training:\n{dry}"
    reason = re.search(r"rule train:.*?reason: ([^\n]*)", dry, flags=re.S)
    assert reason and re.search(r"[Mm]issing output|[Ii]ncomplete", reason.group(1)), dry[-3000:]


# Writers that are not outputs, or that write a temporary file and rename it by hand.
NOT_OUTPUTS = {
    ("workflow.py", "(dst / \"config.yaml\").write_text("),  # a scratch copy of the workflow (tests, soak)
    ("workflow.py", "shutil.copy2(src, dst / name)"),         # ... its files
    ("soak.py", "open(self.dir / f\"run{self.runs}.out\", \"w\")"),  # ... and snakemake's console output
    ("trainer.py", "open(self.work_log_path"),       # the running log; published atomically at the end
    ("trainer.py", "self.work_log_path.write_text("),  # resets that running log
    ("data.py", "open(tmp, \"wb\")"),                 # gunzip into a temporary file, then replace
    ("data.py", "np.savez(tmp"),                      # a temporary file, then replace
    ("arxiv.py", "tarfile.open(fileobj=buf"),         # in memory; written through atomic_path
}
WRITERS = {"save", "savefig", "save_image", "write_text", "write_bytes", "savez", "savez_compressed", "to_csv",
           "copyfile", "copy2", "dump", "open"}


def _writes(call: ast.Call) -> bool:
    """Whether an open(...) call opens for writing (other writers always write)."""
    mode = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "mode"), None)
    return isinstance(mode, ast.Constant) and isinstance(mode.value, str) and any(c in mode.value for c in "wax")


def test_every_file_writer_in_the_package_is_atomic():
    """torch.save, savefig, save_image, write_text, json.dump, copyfile, open for writing: each one inside a
    `with atomic_path(...)` block, or listed above as no output."""
    offenders = []
    for path in sorted((REPO / "code" / "genreview").rglob("*.py")):
        if path.name == "files.py":
            continue
        src = path.read_text()
        tree = ast.parse(src)
        inside = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.With) and any(
                    isinstance(i.context_expr, ast.Call) and getattr(i.context_expr.func, "id",
                                                                     getattr(i.context_expr.func, "attr", "")) ==
                    "atomic_path" for i in node.items):
                inside |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or id(node) in inside:
                continue
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            if name not in WRITERS or (name == "open" and not _writes(node)):
                continue
            text = ast.get_source_segment(src, node) or ""
            if any(path.name == f and text.startswith(s) for f, s in NOT_OUTPUTS):
                continue
            offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: {text[:80]}")
    assert not offenders, ("writers outside atomic_path (a killed job could leave a half-written output; "
                           "wrap them in `with atomic_path(path) as tmp:`):\n" + "\n".join(offenders))


# --------------------------------------------------------------------------- (c) determinism

def test_same_seed_and_profile_give_identical_results_files(clean_runs):
    a, b = clean_runs
    for rel in (Path(TARGET), RUN / "train_summary.json"):
        assert _canonical_json(a / rel) == _canonical_json(b / rel), f"{rel} differs between two identical runs"
    rel = RUN / "train_log.jsonl"
    assert _canonical_log(a / rel) == _canonical_log(b / rel), f"{rel} differs between two identical runs"
    assert json.loads((a / TARGET).read_text())["status"] == "ok"
