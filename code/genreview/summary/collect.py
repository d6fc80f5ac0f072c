"""Collect every results file of a profile into one summary: the only input of the tables,
the figures' captions and the paper's templates.

Each metric is aggregated over seeds as {mean, std, n, values}; a diverged seed is
counted and listed, never silently dropped.
"""
from __future__ import annotations

import numpy as np

from .. import data as D
from .. import provenance as _prov
from ..evaluation.metrics import class_coverage
from ..models import DISPLAY, REGISTRY
from .stats import stat, time_to_threshold, two_level
from ..training.config import TRAIN_METRICS
from ..utils import load_json, save_json

METRICS = ["fd", "fd_inf", "kid", "is", "precision", "recall", "density", "coverage", "fid_inception",
           "sample_ms_per_image", "nfe", "recon_mse", "recon_bce", "neg_elbo_nats",
           "n", "bpd", "bpd_se", "bpd_images", "bpd_ms_per_image", "chain_steps", "cond_accuracy",
           "sharpness", "blur", "latency_ms"]
PACKAGES = _prov.PACKAGES  # the versions the summary's "provenance" reports (genreview.provenance)


BOOTSTRAPPED = {"fd_inf": "fd_inf_boot"}  # metric -> the key of its replicates over samples in a run's scores


def seed_stat(runs: list[dict], m: str) -> dict:
    """Metric `m` over the runs' seeds (`stats.stat`); where every seed with a value also carries replicates
    over its samples (BOOTSTRAPPED), the stat holds two-level replicates of the seed mean (`two_level`)."""
    st = stat(r.get(m) for r in runs)
    key = BOOTSTRAPPED.get(m)
    have = [r for r in runs if r.get(m) is not None]
    if key and have:
        reps = two_level([r[m] for r in have], [r.get(key) for r in have])
        if reps is not None:
            st["replicates"] = reps
            st["bootstrap"] = "seeds, then samples within a seed"
    return st


def model_summary(name: str, runs: list[dict]) -> dict:
    ok = [r for r in runs if r["status"] == "ok"]
    out = {"name": name, "display": DISPLAY[name][0], "family": DISPLAY[name][1],
           "likelihood": REGISTRY[name][0].likelihood, "d_output": REGISTRY[name][0].d_output,
           "likelihood_note": next((r["bpd_note"] for r in ok if r.get("bpd_note")),
                                   REGISTRY[name][0].likelihood_note),
           "n_seeds": len(runs), "n_ok": len(ok), "seeds": [r["seed"] for r in runs],
           "diverged": [{"seed": r["seed"], "at_step": r["train"].get("diverged_at"),
                         "reason": r["train"].get("divergence")} for r in runs if r["status"] == "diverged"],
           # seeds restarted after a divergence (train.on_divergence: retry): attempts made, final lr scale
           "retried": [{"seed": r["seed"], "attempts": len(r["train"]["attempts"]),
                        "lr_scale": r["train"]["attempts"][-1]["lr_scale"], "status": r["status"]}
                       for r in runs if len(r["train"].get("attempts", [])) > 1],
           "metrics": {}}
    for m in METRICS:
        if any(m in r for r in ok):
            out["metrics"][m] = seed_stat(ok, m)
    for m in TRAIN_METRICS:  # cost is known for diverged runs too
        out["metrics"][m] = stat(r["train"].get(m) for r in runs)
    for k in sorted({k for r in runs for k in r["train"].get("final_loss", {})} - {"step", "epoch", "wall", "images"}):
        out["metrics"][f"final_{k}"] = stat(r["train"].get("final_loss", {}).get(k) for r in runs)
    first = runs[0]["train"]
    out["hparams"] = first.get("hparams", {})
    out["train_config"] = first.get("train_config", {})
    out["precision_mode"] = first.get("precision")
    out["memory_format"] = first.get("memory_format")
    out["calibration_ms"] = first.get("calibration_ms", {})
    out["train_device"] = first.get("device")
    out["sample_device"] = runs[0].get("device")
    out["sample_batch"] = ok[0].get("sample_batch") if ok else None
    if ok and "class_histogram" in ok[0]:
        out["class_histogram"] = np.mean([r["class_histogram"] for r in ok], axis=0).tolist()
        out["class_histograms"] = [r["class_histogram"] for r in ok]   # each seed's, for class_kl over seeds
    if ok and ok[0].get("truncation"):
        out["truncation"] = ok[0]["truncation"]  # the first seed's psi sweep
    if ok and ok[0].get("resolution"):
        out["resolution"] = ok[0]["resolution"]  # the first seed's sampling cost at three image sizes
    if ok and "translation" in ok[0]:
        keys = [k for k, v in ok[0]["translation"].items() if isinstance(v, (int, float))]
        out["translation"] = {k: stat(r["translation"].get(k) for r in ok) for k in keys}
    return out


def by_model(files: list[str]) -> dict[str, list[dict]]:
    """The JSON results files, read and grouped by their "model"."""
    out: dict[str, list] = {}
    for f in files:
        r = load_json(f)
        out.setdefault(r["model"], []).append(r)
    return out


def dynamics_summary(files: list[str]) -> dict:
    """model -> that model's dynamics.json (every short run, by kind)."""
    out = {}
    for f in files:
        r = load_json(f)
        out[r["model"]] = r
    return out


def probe_summary(files: list[str]) -> dict:
    """model -> every number of its seeds' probes.json as a stat, plus the kinds (which features, which
    reconstruction) of the first seed."""
    out = {}
    for model, runs in by_model(files).items():
        ok = [r for r in runs if r.get("status") == "ok"]
        if not ok:
            out[model] = {"n_seeds": len(runs), "n_ok": 0}
            continue
        nums = [k for k, v in ok[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "seed"]
        out[model] = {"n_seeds": len(runs), "n_ok": len(ok), **{k: v for k, v in ok[0].items() if isinstance(v, str)},
                      "metrics": {k: stat(r.get(k) for r in ok) for k in nums}}
    return out


def judge_summary(files: list[str]) -> dict:
    """model -> judge -> every metric of the judges.json files of its seeds (`evaluation.judges`) as a stat over
    the seeds that trained; "n_seeds" beside them. {} without files."""
    out = {}
    for model, runs in by_model(files).items():
        ok = [r for r in runs if r.get("status") == "ok" and r.get("judges")]
        judges = sorted({j for r in ok for j in r["judges"]})
        out[model] = {"n_seeds": len(ok), "judges": {
            j: {k: seed_stat([r["judges"].get(j, {}) for r in ok], k)
                for k in ("fd", "fd_inf", "kid", "precision", "recall", "density", "coverage")} for j in judges}}
    return out


CURVE_METRICS = ["images", "wall", "fd", "kid", "precision", "recall", "sample_ms"]


def curve_summary(files: list[str]) -> dict:
    """model -> its curves.py curves over seeds: "rows", one per snapshot step with each of CURVE_METRICS
    as a stat over the seeds that reached that step; "time_to_threshold" of the mean curve (None when it
    never reaches the threshold) and "seeds_reached", the seeds whose own curve reaches it; "to_threshold",
    each seed's own crossing as stats over the seeds that reach it ({"wall", "images"}, training seconds and
    images seen) with "n_never", the seeds that never do (a comparison of training speed needs none), and
    "at_least": the same over every seed, a seed that never reaches it counted with its whole training (its last
    snapshot): a lower bound where n_never > 0."""
    out = {}
    for model, runs in by_model(files).items():
        runs = sorted(runs, key=lambda r: r["seed"])
        steps = sorted({row["step"] for r in runs for row in r["rows"]})
        rows = []
        for k in steps:
            at = [row for r in runs for row in r["rows"] if row["step"] == k]
            rows.append({"step": k, **{m: stat(row.get(m) for row in at) for m in CURVE_METRICS}})
        threshold = runs[0]["threshold"]
        means = [{"step": r["step"], **{m: r[m]["mean"] for m in ("images", "wall", "fd")}} for r in rows]
        out[model] = {"n": runs[0]["n"], "threshold": threshold, "sampler": runs[0]["sampler"],
                      "sampler_steps": runs[0]["sampler_steps"], "nfe": runs[0]["nfe"], "n_seeds": len(runs),
                      "n_ok": sum(r["status"] == "ok" for r in runs), "seeds": [r["seed"] for r in runs],
                      "rows": rows, "time_to_threshold": time_to_threshold(means, threshold),
                      "seeds_reached": sum(time_to_threshold(r["rows"], threshold) is not None for r in runs)}
        own = [time_to_threshold(r["rows"], threshold) for r in runs]
        reached = [t for t in own if t is not None]
        bound = [t or (r["rows"][-1] if r["rows"] else None) for t, r in zip(own, runs)]
        bound = [t for t in bound if t is not None]
        out[model]["to_threshold"] = {"wall": stat(t["wall"] for t in reached),
                                      "images": stat(t["images"] for t in reached), "n_never": len(own) - len(reached),
                                      "at_least": {k: stat(t[k] for t in bound) for k in ("wall", "images")}}
    return out


def provenance() -> dict:
    """Commit, local changes, versions and date (the full record, with hardware and cost, is
    genreview.provenance's provenance.json)."""
    return _prov.code_provenance()


STUDY_METRICS = ["fd", "kid", "is", "precision", "recall", "density", "coverage", "ms_per_image", "nfe",
                 "cond_accuracy", "fid_inception"]


def study_summary(files: list[str], key) -> dict:
    """model -> {"n", "n_seeds", "points": [...]}: the rows of every seed's sweep.json or guidance.json
    grouped by `key(row)` (the sampler and step count, or the guidance weight), each metric as a stat."""
    out = {}
    for model, runs in by_model(files).items():
        groups: dict = {}
        for r in runs:
            for row in r["points"]:
                groups.setdefault(key(row), []).append(row)
        points = []
        for rows in groups.values():
            p = {name: rows[0][name] for name in ("sampler", "steps", "eta", "guidance") if name in rows[0]}
            p.update({m: stat(row.get(m) for row in rows) for m in STUDY_METRICS if any(m in row for row in rows)})
            points.append(p)
        out[model] = {"n": runs[0]["n"], "n_seeds": sum(r["status"] == "ok" for r in runs), "points": points}
    return out


def collect(cfg: dict, metrics_files: list[str], reference: str, classifier: str, manifest: str, out: str,
            sweep_files: list[str] = (), guidance_files: list[str] = (), dynamics_files: list[str] = (),
            probe_files: list[str] = (), curve_files: list[str] = (), judge_files: list[str] = ()) -> dict:
    runs = by_model(metrics_files)
    ref = load_json(reference)
    clf = load_json(classifier)
    # image-to-image models draw no samples: they get their own entry, outside every sample ranking
    translators = [m for m in cfg["models"] if m in runs and DISPLAY[m][1] == "translation"]
    samplers = [m for m in cfg["models"] if m in runs and m not in translators]
    models = {m: model_summary(m, sorted(runs[m], key=lambda r: r["seed"])) for m in samplers}
    for m in models.values():  # mode coverage: the classes the domain classifier finds in the samples
        if "class_histogram" in m and "class_histogram" in ref["floor"]:
            share = cfg.get("dynamics", {}).get("collapse_share", 0.25)
            m["class_coverage"] = class_coverage(m["class_histogram"], ref["floor"]["class_histogram"], share)
            # the class KL of each seed's samples, so that a claim on it has a spread over seeds
            m["metrics"]["class_kl"] = stat(class_coverage(h, ref["floor"]["class_histogram"], share)["class_kl"]
                                            for h in m.get("class_histograms") or [m["class_histogram"]])
    summary = {
        "profile": cfg["profile"], "dataset": cfg["dataset"], "dataset_name": D.PRETTY[cfg["dataset"]],
        "class_names": D.CLASS_NAMES[cfg["dataset"]], "data": load_json(manifest),
        "seeds": cfg["seeds"], "seeds_by_model": cfg.get("seeds_by_model", {}),
        "n_samples": ref["n_samples"], "n_reference": ref["n_reference"],
        "eval": cfg.get("eval", {}), "classifier": clf, "reference": ref, "device": ref["device"],
        "models": models, "order": samplers,
        "translation": {m: model_summary(m, sorted(runs[m], key=lambda r: r["seed"])) for m in translators},
        "sweep": study_summary(list(sweep_files), lambda row: (row["sampler"], row["steps"])),
        "guidance": study_summary(list(guidance_files), lambda row: row["guidance"]),
        "dynamics": dynamics_summary(list(dynamics_files)), "probes": probe_summary(list(probe_files)),
        "sweep_config": cfg.get("sweep", {}), "guidance_config": cfg.get("guidance", {}),
        "dynamics_config": cfg.get("dynamics", {}), "probe_config": cfg.get("probe", {}),
        "curves": curve_summary(list(curve_files)), "curves_config": cfg.get("curves", {}),
        "judges": judge_summary(list(judge_files)),
        "provenance": provenance(),
    }
    save_json(summary, out)
    return summary
