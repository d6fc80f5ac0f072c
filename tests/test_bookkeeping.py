"""Bookkeeping follows content, never a file's bytes or its timestamps (issue 16):

- equal weights saved twice give equal digests, though `torch.save` writes the temporary file name into
  the archive, so the two files' bytes differ;
- a re-saved classifier with equal weights keeps every dynamics run id (a changed weight changes them);
- a curve job copied with new timestamps, its classifier re-saved, reads every point back, rescoring none;
- a built workflow copied with new timestamps in the worst order (every output older than its inputs)
  plans nothing, while an input whose content changed (a model.pt over Snakemake's default 1 MB checksum
  limit) still reruns what depends on it.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import torch

import genreview.studies.curves as CV
from genreview import config as C
from genreview.evaluation.classifier import DomainClassifier
from genreview.evaluation.metrics import EvalConfig
from genreview.hashing import content_digest, state_dict_digest
from genreview.models import build
from genreview.paths import Paths
from genreview.evaluation.classifier import classifier_digest
from genreview.studies.dynamics import DynamicsConfig, scoring_settings
from genreview.training.config import run_id
from genreview.utils import save_json, torch_save

from conftest import DEBIAN_DIR, SHAPE, copy_workflow, load_raw_config, smoke_config, smoke_hparams, snakemake_cmd, \
    snakemake_env

pytestmark = pytest.mark.filterwarnings("ignore:Metric .* will save all extracted features:UserWarning")


def _classifier_checkpoint(seed: int = 0) -> dict:
    """What train_classifier saves, for a small untrained judge."""
    torch.manual_seed(seed)
    clf = DomainClassifier(1, 10, 8, 16)
    return {"state_dict": clf.state_dict(), "channels": 1, "num_classes": 10, "cfg": {"width": 8, "features": 16}}


def _copy_with_new_times(src: Path, dst: Path, shift_s: int = 1000) -> None:
    """`cp -r` without -p: the same bytes, later modification times."""
    shutil.copytree(src, dst, symlinks=True, copy_function=shutil.copyfile)
    for p in dst.rglob("*"):
        if p.is_file() and not p.is_symlink():
            t = p.stat().st_mtime_ns + shift_s * 10**9
            os.utime(p, ns=(t, t))


# --------------------------------------------------------------------------- digests

def test_equal_content_saved_twice_has_one_digest_though_the_bytes_differ(tmp_path):
    ck = _classifier_checkpoint()
    torch_save(ck, tmp_path / "a.pt")
    torch_save(ck, tmp_path / "b.pt")
    assert (tmp_path / "a.pt").read_bytes() != (tmp_path / "b.pt").read_bytes(), "the archive names its temp file"
    a, b = (torch.load(tmp_path / n, weights_only=False) for n in ("a.pt", "b.pt"))
    assert content_digest(a) == content_digest(b) == content_digest(ck)

    sd = ck["state_dict"]
    name = next(k for k, v in sd.items() if v.dtype == torch.float32 and v.dim() == 2)
    w = sd[name]
    assert state_dict_digest(dict(reversed(list(sd.items())))) == state_dict_digest(sd), "key order is not content"
    assert state_dict_digest({**sd, name: w.t().contiguous().t()}) == state_dict_digest(sd), "nor memory layout"
    changed = w.clone()
    changed.view(-1)[0] = torch.nextafter(changed.view(-1)[0], torch.tensor(1.0))  # one value, one ulp
    for other in ({**sd, name: changed}, {**sd, name: w.double()}, {**sd, name: w.reshape(1, *w.shape)},
                  {**{k: v for k, v in sd.items() if k != name}, name + "_": w}):
        assert state_dict_digest(other) != state_dict_digest(sd)
    assert content_digest({**ck, "cfg": {"width": 8, "features": 17}}) != content_digest(ck)
    assert content_digest([1, 2]) != content_digest((1, 2)) != content_digest("(1, 2)")
    with pytest.raises(TypeError, match="cannot hash a object"):
        content_digest({"x": object()})


def test_a_resaved_classifier_with_equal_weights_keeps_every_dynamics_run_id(tmp_path):
    ck = _classifier_checkpoint()
    torch_save(ck, tmp_path / "first" / "classifier.pt")
    torch_save(ck, tmp_path / "second" / "classifier.pt")  # a rerun of train_classifier with equal weights
    changed = _classifier_checkpoint()
    next(iter(changed["state_dict"].values())).view(-1)[0] += 1e-3
    torch_save(changed, tmp_path / "changed" / "classifier.pt")
    cfg, dyn = EvalConfig(), DynamicsConfig()
    train_spec = C.train_spec(smoke_config(), "dcgan", 0)

    def rid(folder: str) -> str:  # as dynamics_run builds a run's id
        return run_id({"train": train_spec, "scoring": scoring_settings(cfg, dyn, tmp_path / folder / "classifier.pt")})

    assert rid("first") == rid("second"), "re-saving equal weights invalidated the dynamics runs"
    assert classifier_digest(tmp_path / "second" / "classifier.pt") == state_dict_digest(ck["state_dict"])
    assert rid("changed") != rid("first"), "a changed judge must rescore the runs"


def test_a_curve_points_key_follows_the_snapshots_content_not_its_file(tmp_path):
    model = build("vae", smoke_hparams("vae"), SHAPE)
    snap = {"run_id": "r", "step": 3, "images": 96, "wall": 0.5, "state_dict": model.state_dict()}
    scoring = {"n": 64, "classifier": "0123456789abcdef"}
    torch_save(snap, tmp_path / "a" / "step3.pt")
    _copy_with_new_times(tmp_path / "a", tmp_path / "copied")
    torch_save(snap, tmp_path / "resaved" / "step3.pt")
    keys = {CV.point_key(tmp_path / d / "step3.pt", 3, scoring) for d in ("a", "copied", "resaved")}
    assert len(keys) == 1, "a copy with a new modification time, or a re-save, changed the key"
    key = keys.pop()

    sd = {k: v.clone() for k, v in snap["state_dict"].items()}
    next(iter(sd.values())).view(-1)[0] += 1e-3
    torch_save({**snap, "state_dict": sd}, tmp_path / "retrained" / "step3.pt")
    torch_save({**snap, "wall": 0.6}, tmp_path / "slower" / "step3.pt")  # the point reports the wall time
    for d in ("retrained", "slower"):
        assert CV.point_key(tmp_path / d / "step3.pt", 3, scoring) != key, d
    assert CV.point_key(tmp_path / "a" / "step3.pt", 3, {**scoring, "n": 32}) != key


def test_a_curve_job_copied_with_new_timestamps_reads_every_point_back(fmnist_root, tmp_path, monkeypatch):
    """A scored curve, its run and its classifier copied with later timestamps (the classifier re-saved as
    well): the copy's job reads each point back and samples nothing; the rows are the same."""
    cfg = smoke_config(fmnist_root)
    ev = C.eval_config(cfg)
    ev.update(n_reference=200, kid_subset_size=10, batch_size=25)
    spec = {**C.curve_spec(cfg, "vae", 0), "device": "cpu", "eval": ev}
    spec["curves"].update(n=20, snapshots=2)
    src = tmp_path / "src"
    model = build("vae", smoke_hparams("vae"), SHAPE)
    steps = CV.snapshot_steps(12, 2)
    for k in steps:
        torch_save({"run_id": "r", "step": k, "images": 128 * k, "wall": 0.1 * k, "state_dict": model.state_dict()},
                   src / "run" / "snapshots" / f"step{k}.pt")
    save_json({"status": "ok", "planned_steps": 12, "steps": 12, "train_config": {"snapshots": 2},
               "hparams": smoke_hparams("vae"), "precision": "fp32", "train_seconds": 1.2},
              src / "run" / "train_summary.json")
    torch_save(_classifier_checkpoint(), src / "classifier.pt")
    first = CV.curve_run(spec, src / "run", src / "classifier.pt", src / "curve")
    assert [r["step"] for r in first["rows"]] == steps

    dst = tmp_path / "dst"
    _copy_with_new_times(src, dst)
    torch_save(torch.load(dst / "classifier.pt", weights_only=False), dst / "classifier.pt")
    (dst / "curve" / "curve.json").unlink()  # as snakemake does before it reruns the job

    def no(*a, **k):
        raise AssertionError("a copied point was scored again")

    monkeypatch.setattr(CV, "generate", no)
    again = CV.curve_run(spec, dst / "run", dst / "classifier.pt", dst / "curve")
    assert again["rows"] == first["rows"]


# --------------------------------------------------------------------------- the workflow, copied

MODEL, SEED = "vae", 0
P = Paths("smoke")
TARGET = P.eval_dir(MODEL, SEED) + "/metrics.json"
MODEL_PT = Path(P.run_dir(MODEL, SEED)) / "model.pt"
SNAKEMAKE_CHECKSUM_DEFAULT = 1_000_000  # bytes: Snakemake's --max-checksum-file-size, unless the profile raises it
TIMEOUT = int(os.environ.get("GENREVIEW_TEST_PIPELINE_TIMEOUT", "600"))


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = snakemake_cmd(TARGET, *args, "--cores", os.environ.get("GENREVIEW_TEST_CORES", "2"), "--max-threads", "1",
                        "--config", "profile=smoke")  # targets and flags before --config
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=TIMEOUT, env=snakemake_env())


def _planned(r: subprocess.CompletedProcess) -> set[str]:
    assert r.returncode == 0, f"snakemake exited {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return set(re.findall(r"^\s*(?:local)?rule (\w+):", r.stdout + r.stderr, flags=re.M))


@pytest.fixture(scope="module")
def built(fmnist_root, tmp_path_factory) -> Path:
    """A workflow copy that has built one model's metrics (data, classifier, training, evaluation), with a
    model.pt larger than Snakemake's default checksum limit."""
    manifest = Paths("smoke", str(fmnist_root)).manifest
    if not Path(manifest).exists():  # the first rule's output: no copy prepares the data again
        from genreview import data as D
        D.prepare("fashion_mnist", fmnist_root, DEBIAN_DIR, manifest)
    raw = load_raw_config()
    raw.update(profile="smoke", models=[MODEL], seeds=[SEED])
    raw["data"] = {"root": str(fmnist_root), "debian_dir": str(DEBIAN_DIR)}
    smoke = raw["profiles"]["smoke"]
    smoke["classifier"] = {"epochs": 1, "max_steps": 20, "width": 8, "batch_size": 64}
    smoke["hparams"][MODEL] = {"latent_dim": 128, "width": 16}  # a 2.5 MB model.pt
    wd = copy_workflow(tmp_path_factory.mktemp("built"), raw)
    assert "evaluate" in _planned(_snakemake(wd))
    assert (wd / MODEL_PT).stat().st_size > SNAKEMAKE_CHECKSUM_DEFAULT
    return wd


@pytest.mark.slow
def test_a_built_workflow_copied_with_new_timestamps_reruns_nothing(built, tmp_path):
    wd = tmp_path / "copy"
    shutil.copytree(built, wd, symlinks=True, copy_function=shutil.copyfile)
    # The worst order: the file written last in the build gets the oldest time, so every output is older
    # than every input it was made from.
    files = sorted((p for p in wd.rglob("*") if p.is_file() and not p.is_symlink()),
                   key=lambda p: (built / p.relative_to(wd)).stat().st_mtime_ns)
    base = time.time_ns() - 10**12  # in the past: an edit made now is newer than any of them
    for i, p in enumerate(files):
        t = base - i * 10**9
        os.utime(p, ns=(t, t))
    assert not _planned(_snakemake(wd, "-n")), "a copy with new timestamps would rerun"

    ck = torch.load(wd / MODEL_PT, weights_only=False)
    w = next(v for v in ck["state_dict"].values() if v.is_floating_point())
    w.view(-1)[0] += 1.0
    torch.save(ck, wd / MODEL_PT)  # new content, and a new time
    assert _planned(_snakemake(wd, "-n")) == {"evaluate"}, "a changed model.pt must rerun its evaluation"
