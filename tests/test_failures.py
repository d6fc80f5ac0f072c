"""A bad results or model file is named with its fix, and a failed build never ends green.

Unit tests of the loaders in genreview.files (JSON, JSON lines, .pt, .npz), of the check that the final target
runs, of the CLI's message and of a corrupt training checkpoint set aside; then, in one temporary copy of the
workflow at the smoke profile reduced to one cheap family (the GMM, fitted by EM in seconds) and one seed, end to
end (in this order: each later test starts from the state the one before leaves):

- invalid JSON in a metrics.json fails every plain rerun with a message naming the file and its rebuild command,
  never exit 0 over a missing summary and a stale PDF; that command rebuilds it and the PDF;
- a model.pt cut to 100 bytes fails with a message naming it and its rebuild command, which plans its training
  job and everything downstream (a dry run: the next test retrains it for real);
- a deleted model.pt is retrained by a plain rerun, and the PDF rebuilt.
"""
from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from genreview.__main__ import main as cli
from genreview.files import (ResultsFileError, check_files, load_json, load_jsonl, load_npz, load_torch,
                             rebuild_command, save_json)
from genreview.paths import Paths

from conftest import CPU, DEBIAN_DIR, copy_workflow, load_raw_config, snakemake_cmd, snakemake_env

CORES = os.environ.get("GENREVIEW_TEST_CORES", "2")
TIMEOUT = int(os.environ.get("GENREVIEW_TEST_PIPELINE_TIMEOUT", "600"))
P = Paths("smoke")


# --------------------------------------------------------------------------- the loaders

@pytest.fixture
def results(tmp_path, monkeypatch) -> Path:
    """A build's folder as the current directory (the pipeline's jobs run there), with results/smoke/ in it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / P.results).mkdir(parents=True)
    return Path(P.results)


def _fix(path) -> str:
    return f"Rebuild it: snakemake --cores all --forcerun {path} --config profile=smoke"


def test_rebuild_command_names_the_build_of_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert rebuild_command("results/small-cifar10/eval/vae/seed0/metrics.json") == (
        "snakemake --cores all --forcerun results/small-cifar10/eval/vae/seed0/metrics.json "
        "--config profile=small dataset=cifar10")
    assert rebuild_command(tmp_path / "results/full/summary.json") == (  # absolute under the build: made relative
        "snakemake --cores all --forcerun results/full/summary.json --config profile=full")
    assert rebuild_command("data/fashion_mnist.manifest.json") == (
        "snakemake --cores all --forcerun data/fashion_mnist.manifest.json")


def test_invalid_json_is_named_with_its_fix(results):
    f = results / "metrics.json"
    f.write_text('{"model": "vae", "fd": 1.')
    with pytest.raises(ResultsFileError) as e:
        load_json(f)
    assert f"{f} is not valid JSON" in str(e.value) and "JSONDecodeError" in str(e.value), e.value
    assert str(e.value).endswith(_fix(f)), e.value
    with pytest.raises(ResultsFileError, match=re.escape(f"{results / 'gone.json'} does not exist. Rebuild it")):
        load_json(results / "gone.json")


def test_invalid_json_line_is_named_by_file_and_line(results):
    f = results / "train_log.jsonl"
    f.write_text('{"step": 1}\n\n{"step": 2}\n{"step": 3, "lo\n')
    with pytest.raises(ResultsFileError, match=re.escape(f"{f} is not valid JSON lines")) as e:
        load_jsonl(f)
    assert "line 4:" in str(e.value) and str(e.value).endswith(_fix(f)), e.value
    f.write_text('{"step": 1}\n\n{"step": 2}\n')
    assert load_jsonl(f) == [{"step": 1}, {"step": 2}]


def test_truncated_model_is_named_with_its_fix(results):
    """load_trained (what evaluate, the sweeps, probes and curves call) on a model.pt cut to 100 bytes: torch
    alone says "PytorchStreamReader failed reading zip archive", without the file or the fix."""
    from genreview.models import build, load_trained

    hparams = {"components": 2, "pca_dim": 4}
    model = build("gmm", hparams, (1, 4, 4))
    f = results / "runs/gmm/seed0/model.pt"
    f.parent.mkdir(parents=True)
    torch.save({"model": "gmm", "hparams": hparams, "shape": (1, 4, 4),
                "state_dict": model.state_dict()}, f)
    assert type(load_trained(f, CPU)).__name__ == "GMM"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(ResultsFileError) as e:
        load_trained(f, CPU)
    assert f"{f} is not a readable PyTorch file" in str(e.value) and str(e.value).endswith(_fix(f)), e.value


def test_truncated_npz_is_named(results):
    f = results / "arrays.npz"
    np.savez(f, a=np.arange(1000))
    assert load_npz(f)["a"].sum() == 499500
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(ResultsFileError, match=re.escape(f"{f} is not a readable .npz archive")):
        load_npz(f, rebuild="the fix")


def test_check_names_every_bad_file_and_writes_nothing(results, capsys):
    good, bad_json, short_pt = results / "a.json", results / "b.json", results / "c.pt"
    save_json({"x": 1}, good)
    bad_json.write_text("{")
    torch.save({"t": torch.zeros(100)}, short_pt)
    assert load_torch(short_pt, mmap=True)["t"].shape == (100,)
    short_pt.write_bytes(short_pt.read_bytes()[:-10])
    out = results / "checked.json"
    files = [str(p) for p in (good, bad_json, short_pt, results / "missing.json")]
    with pytest.raises(ResultsFileError) as e:
        check_files(files, out)
    msg = str(e.value)
    assert msg.startswith("3 of 4 results files cannot be read"), msg
    for p in files[1:]:
        assert _fix(p) in msg, msg
    assert str(good) not in msg and not out.exists()
    # the command line prints it as one message, without a traceback, and exits 2
    assert cli(["check", *files, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "error: 3 of 4 results files cannot be read" in err and "Traceback" not in err, err
    assert check_files(files[:1], out)["n"] == 1 and load_json(out)["bytes"] == {str(good): good.stat().st_size}


def test_corrupt_checkpoint_is_set_aside_and_training_starts_over(tmp_path, caplog):
    from genreview.training.config import TrainConfig
    from genreview.training.trainer import Trainer

    trainer = Trainer(TrainConfig(), tmp_path, 0, CPU, rid="r")
    trainer.ckpt_path.write_bytes(b"PK\x03\x04 not a checkpoint")
    with caplog.at_level(logging.WARNING, logger="genreview"):
        assert trainer._load_checkpoint() is None
    aside = tmp_path / "checkpoint.pt.corrupt"
    assert not trainer.ckpt_path.exists() and aside.read_bytes() == b"PK\x03\x04 not a checkpoint"
    assert f"checkpoint {trainer.ckpt_path} is unreadable" in caplog.text, caplog.text
    assert f"moved it to {aside}; this run starts over from step 0" in caplog.text, caplog.text


# --------------------------------------------------------------------------- end to end

GMM_MODEL = P.run_dir("gmm", 0) + "/model.pt"
GMM_METRICS = P.eval_dir("gmm", 0) + "/metrics.json"


def _config(data_root: Path) -> dict:
    raw = load_raw_config()
    raw.update(profile="smoke", models=["gmm"], seeds=[0])
    raw["data"] = {"root": str(data_root), "debian_dir": str(DEBIAN_DIR)}
    raw["profiles"]["smoke"]["classifier"] = {"epochs": 1, "max_steps": 20, "width": 8, "batch_size": 64}
    return raw


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    # Targets and flags before --config: it takes every word after it.
    cmd = snakemake_cmd(*args, "--cores", CORES, "--max-threads", "1", "--config", "profile=smoke")
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=TIMEOUT, env=snakemake_env())


def _rebuild(workdir: Path, output: str, path: str, *extra: str) -> subprocess.CompletedProcess:
    """The rebuild command that the error message names for `path`, run as it stands (with one thread per job)."""
    fix = re.search(rf"Rebuild it: (snakemake [^\n]*--forcerun {re.escape(path)}[^\n]*)", output)
    assert fix, f"no rebuild command for {path} in:\n{output[-3000:]}"
    args = shlex.split(fix.group(1))[1:]
    cmd = snakemake_cmd("--max-threads", "1", *extra, *args)
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=TIMEOUT, env=snakemake_env())


def _rules_in(output: str) -> set[str]:
    return set(re.findall(r"^\s*(?:local)?rule (\w+):", output, flags=re.M))


def _out(r: subprocess.CompletedProcess) -> str:
    return r.stdout + r.stderr


@pytest.fixture(scope="module")
def build(fmnist_root, tmp_path_factory) -> Path:
    for tool in ("latexmk", "pdflatex", "bibtex"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (Debian: latexmk texlive-latex-base texlive-latex-recommended)")
    workdir = copy_workflow(tmp_path_factory.mktemp("failures"), _config(fmnist_root))
    r = _snakemake(workdir)
    assert r.returncode == 0, _out(r)[-5000:]
    assert (workdir / P.pdf).exists() and (workdir / P.results / "checked.json").exists()
    return workdir


def _pdf_rebuilt(workdir: Path, before: int) -> bool:
    return (workdir / P.pdf).stat().st_mtime_ns > before and (workdir / P.summary).exists()


@pytest.mark.slow
def test_invalid_json_fails_every_rerun_until_its_fix_is_run(build):
    pdf_time = (build / P.pdf).stat().st_mtime_ns
    (build / GMM_METRICS).write_text('{"model": "gmm", "fd": ')
    for attempt in range(2):  # the old code: a bare JSONDecodeError, then exit 0 with no summary and a stale PDF
        r = _snakemake(build)
        assert r.returncode != 0, f"attempt {attempt}: exit 0 over a corrupt {GMM_METRICS}\n{_out(r)[-3000:]}"
        assert f"{GMM_METRICS} is not valid JSON" in _out(r) and _fix(GMM_METRICS) in _out(r), _out(r)[-3000:]
    r = _rebuild(build, _out(r), GMM_METRICS)
    assert r.returncode == 0, _out(r)[-3000:]
    assert load_json(build / GMM_METRICS)["model"] == "gmm" and _pdf_rebuilt(build, pdf_time)


@pytest.mark.slow
def test_truncated_model_fails_with_its_name_and_fix(build):
    f = build / GMM_MODEL
    f.write_bytes(f.read_bytes()[:100])
    r = _snakemake(build)  # the old code: torch's "PytorchStreamReader failed reading zip archive", no file, no fix
    assert r.returncode != 0, _out(r)[-3000:]
    assert f"{GMM_MODEL} is not a readable PyTorch file" in _out(r) and _fix(GMM_MODEL) in _out(r), _out(r)[-3000:]
    dry = _rebuild(build, _out(r), GMM_MODEL, "--dry-run")
    assert dry.returncode == 0 and {"train", "evaluate", "latex"} <= _rules_in(_out(dry)), _out(dry)[-3000:]


@pytest.mark.slow
def test_deleted_model_is_rebuilt_by_a_plain_rerun(build):
    pdf_time = (build / P.pdf).stat().st_mtime_ns
    (build / GMM_MODEL).unlink()  # (truncated by the test before)
    r = _snakemake(build)  # the old code: "Nothing to be done", exit 0, the model missing
    assert r.returncode == 0, _out(r)[-3000:]
    assert load_torch(build / GMM_MODEL)["model"] == "gmm" and _pdf_rebuilt(build, pdf_time)


def test_an_unreadable_resume_cache_is_set_aside_and_computed_again(tmp_path, caplog):
    """A job's own cache (a curve point, a dynamics run's result, the measured speed settings) is not a rule's
    output, so --forcerun cannot rebuild it: an unreadable one is set aside and recomputed."""
    from genreview.files import load_cache
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text('{"key": "a"}')
    bad.write_text('{"key": ')
    assert load_cache(good) == {"key": "a"} and load_cache(tmp_path / "missing.json") is None
    with caplog.at_level("WARNING", logger="genreview"):
        assert load_cache(bad) is None
    assert not bad.exists() and (tmp_path / "bad.json.corrupt").exists()
    assert "bad.json is unreadable" in caplog.text
