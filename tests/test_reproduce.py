"""A reviewer's re-run: the verdict rule on both sides of each threshold, timings that never decide,
the same seed found bit-identical, and clear errors for a model the summary lacks or whose runs diverged.

The end-to-end test trains the smoke profile's GMM as "the paper's run", builds its summary entry with
the real summary code, then re-runs it through `reproduce` and expects identical numbers.
"""
from __future__ import annotations

import dataclasses
import json
import math

import pytest

from genreview import config as C
from genreview.__main__ import main
from genreview.studies.reproduce import (ReproduceConfig, ReproduceError, compare, headline, judge, paper_entry,
                                 reproduce, tolerance, verdict)

from conftest import smoke_config

CFG = ReproduceConfig(k_sigma=2.0, rel_tol=0.1, cost_rel_tol=0.5)


def _stat(values):
    from genreview.summary.stats import stat
    return stat(values)


# --------------------------------------------------------------------------- the rule

@pytest.mark.parametrize("x, lands", [(11.99, True), (12.01, False), (8.01, True), (7.99, False), (10.0, True)])
def test_k_sigma_decides_when_the_seed_spread_is_wide(x, lands):
    paper = {"mean": 10.0, "std": 1.0, "n": 3}  # 2 * std = 2 > 0.1 * 10
    assert tolerance(paper, 2.0, 0.1) == 2.0
    assert judge(x, paper, 2.0, 0.1)["lands"] is lands, f"x = {x} against 10 +- 2"


@pytest.mark.parametrize("x, lands", [(109.9, True), (110.1, False), (90.1, True), (89.9, False)])
def test_rel_tol_decides_when_the_seed_spread_is_narrow(x, lands):
    paper = {"mean": 100.0, "std": 1.0, "n": 3}  # 0.1 * 100 = 10 > 2 * std
    assert tolerance(paper, 2.0, 0.1) == pytest.approx(10.0)
    assert judge(x, paper, 2.0, 0.1)["lands"] is lands, f"x = {x} against 100 +- 10"


@pytest.mark.parametrize("x, lands", [(54.9, True), (55.1, False), (45.1, True), (44.9, False)])
def test_one_seed_has_std_zero_and_rel_tol_alone_decides(x, lands):
    paper = _stat([50.0])
    assert paper["std"] == 0.0 and paper["n"] == 1
    assert judge(x, paper, 2.0, 0.1)["lands"] is lands
    assert judge(50.0 + 1e-9, paper, 2.0, 0.0)["lands"] is False, "rel_tol 0 and one seed: only the same number lands"
    assert judge(50.0, paper, 2.0, 0.0)["lands"] is True


@pytest.mark.parametrize("x", [None, math.nan, math.inf])
def test_a_missing_or_non_finite_value_misses(x):
    assert judge(x, {"mean": 1.0, "std": 0.0, "n": 1}, 2.0, 0.1)["lands"] is False


def _entry(seeds=(0,), fd=(50.0,), kid=(2.0,), train_seconds=(100.0,), sample_ms=(1.0,), diverged=()):
    return {"seeds": list(seeds), "n_ok": len(fd), "diverged": [{"seed": s, "at_step": 3, "reason": "nan"}
                                                                 for s in diverged],
            "metrics": {"fd": _stat(fd), "kid": _stat(kid), "train_seconds": _stat(train_seconds),
                        "sample_ms_per_image": _stat(sample_ms)}}


def _metrics(fd=50.0, kid=2.0, train_seconds=100.0, sample_ms=1.0):
    return {"status": "ok", "fd": fd, "kid": kid, "sample_ms_per_image": sample_ms,
            "train": {"train_seconds": train_seconds}}


def test_timings_are_reported_but_do_not_decide():
    slow = compare(_entry(), False, _metrics(train_seconds=1000.0, sample_ms=9.0), 0, CFG)
    assert slow["verdict"] == "lands", "a machine ten times slower must not fail the re-run"
    assert slow["cost_missed"] == ["train_seconds", "sample_ms_per_image"]
    assert not slow["metrics"]["train_seconds"]["decides"] and slow["metrics"]["fd"]["decides"]
    assert slow["metrics"]["train_seconds"]["tolerance"] == pytest.approx(50.0), "timings use cost_rel_tol"
    worse = compare(_entry(), False, _metrics(fd=60.0), 0, CFG)
    assert worse["verdict"] == "misses" and worse["missed"] == ["fd"]


def test_no_quality_metric_to_compare_is_an_error():
    with pytest.raises(ReproduceError, match="no quality metric"):
        verdict({"train_seconds": {"decides": False, "lands": True}})


def test_same_seed_is_checked_for_identical_numbers():
    same = compare(_entry(), False, _metrics(train_seconds=123.0), 0, CFG)
    assert same["same_seed"] and same["identical"] is True and same["differing"] == []
    assert same["metrics"]["train_seconds"]["identical"] is None, "timings are never expected to be identical"
    close = compare(_entry(), False, _metrics(fd=50.000001), 0, CFG)
    assert close["verdict"] == "lands" and close["identical"] is False and close["differing"] == ["fd"]
    fresh = compare(_entry(), False, _metrics(), 7, CFG)
    assert not fresh["same_seed"] and fresh["identical"] is None
    assert all(r["paper_seed"] is None for r in fresh["metrics"].values())


def test_the_seeds_own_value_skips_diverged_seeds():
    # seeds 0, 1, 2 with 1 diverged: quality stats hold seeds 0 and 2, timings all three
    e = _entry(seeds=(0, 1, 2), fd=(40.0, 60.0), kid=(1.0, 3.0), train_seconds=(10.0, 11.0, 12.0),
               sample_ms=(1.0, 1.5), diverged=(1,))
    r = compare(e, False, _metrics(fd=60.0, kid=3.0, train_seconds=12.0, sample_ms=1.5), 2, CFG)
    assert r["metrics"]["fd"]["paper_seed"] == 60.0 and r["metrics"]["train_seconds"]["paper_seed"] == 12.0
    assert r["identical"] is True
    # the spread of two seeds: mean 50, std 14.1, so 2 std (28.3) decides and FD 75 lands
    assert compare(e, False, _metrics(fd=75.0), 5, CFG)["metrics"]["fd"]["lands"]


def test_translators_are_judged_on_their_translation_numbers():
    entry = {"seeds": [0], "n_ok": 1, "diverged": [], "metrics": {"train_seconds": _stat([5.0])},
             "translation": {"fd": _stat([9.0]), "psnr": _stat([20.0]), "fd_bicubic": _stat([30.0]),
                             "n": _stat([50]), "upscale_ms_per_image": _stat([0.5])}}
    got = {k: kind for k, kind, _, _ in headline(entry, True)}
    assert got == {"fd": "quality", "psnr": "quality", "upscale_ms_per_image": "cost", "train_seconds": "cost"}
    metrics = {"status": "ok", "train": {"train_seconds": 5.0},
               "translation": {"fd": 9.0, "psnr": 15.0, "fd_bicubic": 30.0, "n": 50, "upscale_ms_per_image": 0.5}}
    assert compare(entry, True, metrics, 0, CFG)["missed"] == ["psnr"]


def test_a_model_missing_from_the_summary_or_always_diverged_names_the_fix():
    summary = {"models": {"vae": _entry()}, "translation": {}}
    with pytest.raises(ReproduceError, match=r"add dcgan to `models` in config.yaml.*snakemake --cores all"):
        paper_entry(summary, "dcgan", "results/small/summary.json")
    summary["models"]["dcgan"] = dict(_entry(fd=(), kid=(), diverged=(0,)), n_ok=0)
    with pytest.raises(ReproduceError, match=r"diverged.*hparams.dcgan in config.yaml"):
        paper_entry(summary, "dcgan")


# --------------------------------------------------------------------------- configuration

def test_config_section_matches_the_dataclass_and_is_validated():
    schema = C.load_schema()["$defs"]["settings"]["properties"]["reproduce"]
    assert set(schema["properties"]) == {f.name for f in dataclasses.fields(ReproduceConfig)}
    cfg = smoke_config()
    assert C.reproduce_config(cfg) == {"k_sigma": 2.0, "rel_tol": 0.1, "cost_rel_tol": 0.5}
    with pytest.raises(C.ConfigError, match=r"unknown key 'reproduce.k_sgima'.*did you mean 'k_sigma'"):
        C.validate({"profile": "smoke", "reproduce": {"k_sgima": 1.0}})
    spec = C.reproduce_spec(cfg, "vae", 7)
    # the paper's specs, with PyTorch's deterministic algorithms on
    assert spec["train"] == {**C.train_spec(cfg, "vae", 7), "deterministic": True}
    assert spec["eval"] == {**C.eval_spec(cfg, "vae", 7), "deterministic": True}
    assert "deterministic" not in C.train_spec(cfg, "vae", 7), "off by default, and then left out of the spec"
    assert C.train_spec({**cfg, "deterministic": True}, "vae", 7)["deterministic"] is True
    from genreview.provenance import config_hash
    assert spec["config_hash"] == config_hash(cfg) != config_hash({**cfg, "seeds": [0, 1]})
    with pytest.raises(C.ConfigError, match="unknown model 'vea'.*did you mean 'vae'"):
        C.reproduce_spec(cfg, "vea", 0)


def test_cli_names_the_fix_for_a_model_missing_from_the_summary(tmp_path, capsys):
    (tmp_path / "summary.json").write_text(json.dumps({"profile": "smoke", "models": {}, "translation": {}}))
    spec = C.reproduce_spec(smoke_config(), "gmm", 0)
    rc = main(["reproduce", "--spec", json.dumps(spec), "--summary", str(tmp_path / "summary.json"),
               "--classifier", "unused.pt", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and "gmm is not in" in err and "add gmm to `models`" in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists(), "nothing is trained before the summary entry is found"


# --------------------------------------------------------------------------- end to end

def test_the_same_seed_reruns_identically_and_lands(fmnist_root, tiny_classifier_dir, tmp_path, capsys):
    from genreview.evaluation.evaluate import evaluate_run
    from genreview.publish.reproduce_report import reproduce_and_report
    from genreview.summary.collect import model_summary, provenance
    from genreview.training.train import train

    spec = C.reproduce_spec(smoke_config(fmnist_root), "gmm", 0)
    classifier = tiny_classifier_dir / "classifier.pt"
    train(spec["train"], tmp_path / "paper" / "run")  # the paper's run, by the paper's code
    metrics = evaluate_run(spec["eval"], tmp_path / "paper" / "run", classifier, tmp_path / "paper" / "eval")
    summary = {"profile": "smoke", "models": {"gmm": model_summary("gmm", [metrics])}, "translation": {},
               "provenance": provenance()}
    (tmp_path / "summary.json").write_text(json.dumps(summary))

    out = tmp_path / "reproduce" / "gmm" / "seed0"
    report = reproduce_and_report(spec, tmp_path / "summary.json", classifier, out)
    printed = capsys.readouterr().out
    assert report["verdict"] == "lands" and report["missed"] == [], report
    assert report["same_seed"] and report["identical"] is True, report["differing"]
    assert {"fd", "kid", "precision", "recall", "density", "coverage", "is", "bpd", "train_seconds",
            "sample_ms_per_image"} <= set(report["metrics"])
    assert report["config_sha256"] == spec["config_hash"] and report["profile"] == "smoke"
    assert spec["config_hash"].startswith(report["config_hash"]) and report["config_hash"] in printed
    assert json.loads((out / "report.json").read_text())["verdict"] == "lands"
    md = (out / "report.md").read_text()
    assert md.strip() in printed, "the markdown is printed to stdout (the rule's log)"
    assert "bit-identical" in md and "Verdict: lands" in md and "max(k_sigma * std, rel_tol * |mean|)" in md
    assert (out / "run" / "model.pt").exists() and (out / "eval" / "metrics.json").exists()

    # a profile mismatch is named before anything trains
    with pytest.raises(ReproduceError, match="profile"):
        reproduce({**spec, "profile": "small"}, tmp_path / "summary.json", classifier, tmp_path / "other")
