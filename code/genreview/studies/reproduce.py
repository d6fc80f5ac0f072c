"""A reviewer re-runs one experiment and learns whether it lands within the paper's spread.

`reproduce` trains one model at one seed into a folder of its own,
results/<profile>/reproduce/<model>/seed<k>/ (run/ and eval/; the paper's runs are never touched),
with the same train and eval specs as the paper's rules, and compares every headline metric with
that model's entry in summary.json.

The rule, printed in every report:

    a metric lands when |x - mean| <= max(k_sigma * std, rel_tol * |mean|)

with x the re-run's value and mean, std the paper's over its seeds (std is 0 with one seed, so
then rel_tol alone decides). The verdict is "lands" when every quality metric lands, "misses"
(naming them) otherwise. Timings (training seconds, sampling milliseconds per image) are judged
by the same rule with cost_rel_tol in place of rel_tol and reported, but never decide: another
machine is expected to differ in time.

Judging a re-run against the spread over seeds, not against one number, follows the case that
seed-to-seed variance is part of a result (Lucic et al. 2018, "Are GANs created equal?";
Bouthillier et al. 2019, "Unreproducible research is reproducible"; the checklist of Pineau et
al. 2021, "Improving reproducibility in machine learning research").

If the paper ran this seed, the re-run repeats its computation: on the same CPU, thread count
and profile the numbers should be bit-identical, and the report says whether they are (and
which part of the set-up differs when they are not). A seed the paper did not run is judged by
the seed spread alone.
"""
from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from ..hparams import hp
from ..models import DISPLAY
from ..provenance import SHORT_HASH, code_provenance
from ..training.config import SPEED_SETTINGS, TRAIN_METRICS
from ..utils import load_json, log, save_json, set_deterministic

# Headline metrics of the models that draw samples, and of the image-to-image models (their numbers live
# under "translation"; baselines that do not depend on the model, such as bicubic upsampling, are left out).
QUALITY = ["fd", "kid", "precision", "recall", "density", "coverage", "is", "bpd", "fid_inception"]
TRANSLATION_QUALITY = ("fd", "kid", "success", "cycle", "psnr", "ssim")
TRANSLATION_BASELINES = ("bicubic", "identity", "original")
COST = ["train_seconds", "sample_ms_per_image"]

RULE = "a metric lands when |x - mean| <= max(k_sigma * std, rel_tol * |mean|)"


@dataclass
class ReproduceConfig:
    """Tolerances of the verdict (config.yaml `reproduce`).

    Args: k_sigma (seed standard deviations a quality metric may stray from the paper's mean),
    rel_tol (or this fraction of the mean; with one seed the only yardstick), cost_rel_tol (the
    fraction for timings, which are reported but never decide).
    """
    k_sigma: float = hp(2.0, minimum=0)
    rel_tol: float = hp(0.1, minimum=0)
    cost_rel_tol: float = hp(0.5, minimum=0)


class ReproduceError(RuntimeError):
    """The re-run cannot be judged; the message says why and what to do."""


# --------------------------------------------------------------------------- the rule

def tolerance(paper: dict, k_sigma: float, rel_tol: float) -> float:
    """max(k_sigma * std, rel_tol * |mean|) of a seed-aggregated stat {mean, std, n}."""
    return max(k_sigma * (paper.get("std") or 0.0), rel_tol * abs(paper["mean"]))


def judge(x, paper: dict, k_sigma: float, rel_tol: float) -> dict:
    """One metric under the rule: the re-run's value x against the paper's stat."""
    tol = tolerance(paper, k_sigma, rel_tol)
    finite = x is not None and math.isfinite(x)
    dev = abs(x - paper["mean"]) if finite else None
    return {"paper": {k: paper.get(k) for k in ("mean", "std", "n")}, "rerun": x, "deviation": dev,
            "tolerance": tol, "lands": bool(finite and dev <= tol)}


def verdict(rows: dict[str, dict]) -> dict:
    """"lands" when every deciding (quality) metric lands; the misses listed, timings apart."""
    if not any(r["decides"] for r in rows.values()):
        raise ReproduceError("no quality metric to compare: the paper's entry and the re-run share none")
    missed = [k for k, r in rows.items() if r["decides"] and not r["lands"]]
    return {"verdict": "misses" if missed else "lands", "missed": missed,
            "cost_missed": [k for k, r in rows.items() if not r["decides"] and not r["lands"]]}


# --------------------------------------------------------------------------- the paper's entry

def paper_entry(summary: dict, model: str, summary_path: str = "summary.json") -> tuple[dict, bool]:
    """(the model's summary entry, whether it is an image-to-image model); a clear error otherwise."""
    if model in summary.get("models", {}):
        entry, translator = summary["models"][model], False
    elif model in summary.get("translation", {}):
        entry, translator = summary["translation"][model], True
    else:
        have = sorted([*summary.get("models", {}), *summary.get("translation", {})])
        raise ReproduceError(
            f"{model} is not in {summary_path} (it has {', '.join(have) or 'no models'}): add {model} to `models` "
            f"in config.yaml and build the paper's runs first (snakemake --cores all {summary_path})")
    if entry["n_ok"] == 0:
        why = "; ".join(f"seed {d['seed']} at step {d['at_step']}: {d['reason']}" for d in entry.get("diverged", []))
        raise ReproduceError(
            f"every paper run of {model} diverged ({why}), so there is no spread to land in: make its training "
            f"stable (hparams.{model} in config.yaml, e.g. a lower learning rate) and rebuild the summary")
    return entry, translator


def _seed_value(stat_: dict, seeds: list, seed: int):
    """The value a given seed contributed to a stat (stat values follow `seeds`' order), or None."""
    values = stat_.get("values", [])
    return values[seeds.index(seed)] if seed in seeds and len(values) == len(seeds) else None


def headline(entry: dict, translator: bool) -> list[tuple[str, str, dict, str]]:
    """(metric, "quality" | "cost", the paper's stat, where the re-run's metrics.json holds it)."""
    m, out = entry.get("metrics", {}), []
    if translator:
        t = entry.get("translation", {})
        for k, st in t.items():
            if st.get("mean") is None:
                continue
            if k.startswith(TRANSLATION_QUALITY) and not any(b in k for b in TRANSLATION_BASELINES):
                out.append((k, "quality", st, "translation"))
            elif k.endswith("_ms_per_image"):
                out.append((k, "cost", st, "translation"))
    else:
        out += [(k, "quality", m[k], "top") for k in QUALITY if k in m and m[k].get("mean") is not None]
    out += [(k, "cost", m[k], "train" if k in TRAIN_METRICS else "top") for k in COST
            if k in m and m[k].get("mean") is not None]
    return out


def compare(entry: dict, translator: bool, metrics: dict, seed: int, cfg: ReproduceConfig) -> dict:
    """Every headline metric of the re-run (its metrics.json) against the paper's entry, and the verdict."""
    ok_seeds = [s for s in entry["seeds"] if s not in {d["seed"] for d in entry.get("diverged", [])}]
    same_seed = seed in entry["seeds"]
    rows = {}
    for key, kind, st, where in headline(entry, translator):
        holder = metrics.get("translation", {}) if where == "translation" else (
            metrics.get("train", {}) if where == "train" else metrics)
        x = holder.get(key)
        x = float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None
        row = judge(x, st, cfg.k_sigma, cfg.rel_tol if kind == "quality" else cfg.cost_rel_tol)
        paper_x = _seed_value(st, entry["seeds"] if where == "train" else ok_seeds, seed) if same_seed else None
        row.update(kind=kind, decides=kind == "quality", paper_seed=paper_x,  # timings are never identical
                   identical=(x == paper_x) if kind == "quality" and None not in (x, paper_x) else None)
        rows[key] = row
    out = verdict(rows)
    if same_seed:
        quality = {k: r for k, r in rows.items() if r["decides"]}
        known = [r["identical"] for r in quality.values() if r["identical"] is not None]
        out["identical"] = bool(known) and all(known)
        out["differing"] = [k for k, r in quality.items() if r["identical"] is False]
    else:
        out["identical"], out["differing"] = None, []
    out["metrics"] = rows
    out["same_seed"] = same_seed
    return out


def _setup(entry: dict, metrics: dict, paper_prov: dict, prov: dict, config: tuple = (None, None)) -> dict:
    """What could make a same-seed re-run differ: device (with its thread count), precision, code, packages,
    and the config hash (paper's, re-run's) where the paper's build recorded one."""
    train = metrics.get("train", {})
    pairs = {"config_hash": config} if config[0] else {}
    pairs |= {"train_device": (entry.get("train_device"), train.get("device")),
              "sample_device": (entry.get("sample_device"), metrics.get("device")),
              "precision": (entry.get("precision_mode"), train.get("precision")),
              "commit": (paper_prov.get("commit"), prov.get("commit")),
              "platform": (paper_prov.get("platform"), prov.get("platform"))}
    pkgs_a, pkgs_b = paper_prov.get("packages", {}), prov.get("packages", {})
    for p in sorted(set(pkgs_a) | set(pkgs_b)):
        pairs[f"package {p}"] = (pkgs_a.get(p), pkgs_b.get(p))
    return {"paper": {k: a for k, (a, _) in pairs.items()}, "rerun": {k: b for k, (_, b) in pairs.items()},
            "differs": [k for k, (a, b) in pairs.items() if a != b]}


# --------------------------------------------------------------------------- the run

def _fresh(run_dir: Path) -> None:
    """A finished run in the folder is cleared (a re-run is a re-run); an unfinished one resumes from its
    checkpoint, as the paper's runs do."""
    if (run_dir / "train_summary.json").exists():
        shutil.rmtree(run_dir)


def reproduce(spec: dict, summary_path: str | Path, classifier: str | Path, out: str | Path,
              threads: int | None = None) -> dict:
    """Re-run spec["model"] at spec["seed"] into `out` (see `genreview.config.reproduce_spec`), judge it
    against `summary_path`, write report.json there and return the report (`genreview.publish.reproduce_report`
    writes it as report.md)."""
    from ..evaluation.evaluate import evaluate_run
    from ..training.train import train

    model, seed, out = spec["model"], int(spec["seed"]), Path(out)
    cfg = ReproduceConfig(**spec["reproduce"])
    summary = load_json(summary_path)
    if summary.get("profile") != spec["profile"]:
        raise ReproduceError(
            f"{summary_path} holds the {summary.get('profile')} profile's runs, the re-run is at profile "
            f"{spec['profile']}: ask for results/{summary.get('profile')}/reproduce/... or set --config "
            f"profile={summary.get('profile')}")
    entry, translator = paper_entry(summary, model, str(summary_path))

    run_dir, eval_dir = out / "run", out / "eval"
    _fresh(run_dir)
    log.info("re-running %s at seed %d into %s", model, seed, out)
    was = torch.are_deterministic_algorithms_enabled()
    try:  # the specs turn PyTorch's deterministic algorithms on (config.reproduce_spec); restore the caller's mode
        # the paper's precision and memory format for this model, so that the same seed repeats its computation
        train(spec["train"], run_dir, threads,
              speed_cache=Path(summary_path).parent / "runs" / model / SPEED_SETTINGS)
        metrics = evaluate_run(spec["eval"], run_dir, classifier, eval_dir, threads)
    finally:
        set_deterministic(was)
    if metrics["status"] != "ok":
        t = metrics["train"]
        paper_too = any(d["seed"] == seed for d in entry.get("diverged", []))
        raise ReproduceError(
            f"the re-run of {model} at seed {seed} diverged at step {t.get('diverged_at')} ({t.get('divergence')}); "
            + ("the paper's run of this seed diverged too. " if paper_too else "")
            + f"Its losses are in {run_dir / 'train_log.jsonl'}: try another seed, or make training stable "
              f"(hparams.{model} in config.yaml) and rebuild the paper's runs")

    prov = code_provenance()
    full = spec["config_hash"]  # genreview.provenance.config_hash of the resolved config
    record = Path(summary_path).parent / "provenance.json"  # the paper's build record, where one was written
    paper_hash = load_json(record).get("config_hash") if record.exists() else None
    report = {"model": model, "display": DISPLAY[model][0], "seed": seed, "profile": spec["profile"],
              "config_sha256": full, "config_hash": full[:SHORT_HASH], "paper_config_hash": paper_hash,
              "commit": prov["commit"], "rule": RULE,
              "k_sigma": cfg.k_sigma, "rel_tol": cfg.rel_tol, "cost_rel_tol": cfg.cost_rel_tol,
              "paper_seeds": entry["seeds"], "paper_n_ok": entry["n_ok"],
              **compare(entry, translator, metrics, seed, cfg),
              "setup": _setup(entry, metrics, summary.get("provenance", {}), prov, (paper_hash, full[:SHORT_HASH])),
              "provenance": prov, "run": str(run_dir), "eval": str(eval_dir)}
    save_json(report, out / "report.json")
    return report
