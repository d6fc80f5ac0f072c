"""Numbers and words for the paper, chosen from the results.

Tables and templates format every number through `fmt`/`pm`, so the PDF shows the same
digits everywhere. Comparative words ("lower", "faster") come from `compare`, which
also says whether the gap exceeds the seed spread and how many seeds stand behind it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# The trainer keeps fp32/contiguous unless another precision or memory format saves this fraction of a step.
CLEARLY_FASTER = 0.1

# Metric name -> (label in the paper, True if lower is better)
METRIC_INFO = {
    "fd": ("FD", True), "fd_inf": ("FD extrapolated to infinite N", True), "kid": ("KID", True), "is": ("IS", False),
    "precision": ("precision", False), "recall": ("recall", False),
    "density": ("density", False), "coverage": ("coverage", False),
    "sample_ms_per_image": ("sampling time", True), "train_seconds": ("training time", True),
    "ms_per_step": ("time per step", True), "params": ("parameters", True), "nfe": ("NFE", True),
    "recon_mse": ("reconstruction MSE", True), "fid_inception": ("Inception FID", True),
    "bpd": ("bits/dim", True),
}


def stat(values) -> dict:
    """Values aggregated over seeds (None dropped): {"mean", "std" (sample, ddof 1), "n", "values"}."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return {"mean": None, "std": None, "n": 0, "values": []}
    return {"mean": float(np.mean(vals)), "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
            "n": len(vals), "values": vals}


def _decimals(x: float, sig: int) -> int:
    if x == 0 or not math.isfinite(x):
        return 0
    return max(0, sig - 1 - math.floor(math.log10(abs(x))))


def fmt(x, sig: int = 3, decimals: int | None = None) -> str:
    """x to `sig` significant digits without exponent (large numbers keep all integer digits)."""
    if x is None:
        return "n/a"
    x = float(x)
    if not math.isfinite(x):
        return "n/a"
    if decimals is None and x.is_integer() and abs(x) >= 1:
        return f"{int(x)}"
    d = _decimals(x, sig) if decimals is None else decimals
    s = f"{x:.{d}f}"
    return "0" if s.strip("-0.") == "" and d == 0 else s


def pm(st: dict, sig: int = 3, scale: float = 1.0, math_mode: bool = True, decimals: int | None = None) -> str:
    """A seed-aggregated stat as 'mean \\pm std' (std to two significant digits, mean to the
    same decimals); a single seed shows the mean alone."""
    if not st or st.get("mean") is None:
        return "n/a"
    mean = st["mean"] * scale
    if st["n"] < 2 or not st["std"]:
        return fmt(mean, sig, decimals)
    std = st["std"] * scale
    d = max(_decimals(std, 2), 0) if decimals is None else decimals
    body = f"{mean:.{d}f} \\pm {std:.{d}f}"
    return f"${body}$" if math_mode else body


def column_decimals(entries, sig: int = 2, scale: float = 1.0, max_decimals: int = 3) -> int:
    """One count of decimals for a whole table column, so that its numbers align: enough for `sig`
    significant digits of the column's smallest nonzero value and for two of its smallest nonzero seed
    spread (pm's rule for one row), but at most `max_decimals` (a value near zero, such as the real-data
    floor, would otherwise give every row many digits that carry nothing).

    entries: seed-aggregated stats ({"mean", "std", ...}), plain numbers, or None (skipped), before
    `scale`. Pass the result to fmt/pm as `decimals`."""
    values, stds = [], []
    for e in entries:
        if isinstance(e, dict):
            if e.get("mean") is not None:
                values.append(e["mean"] * scale)
                if e.get("n", 0) > 1 and e.get("std"):
                    stds.append(e["std"] * scale)
        elif e is not None:
            values.append(float(e) * scale)
    d = [_decimals(min(abs(v) for v in xs if v and math.isfinite(v)), k) for xs, k in ((values, sig), (stds, 2))
         if any(v and math.isfinite(v) for v in xs)]
    return min(max(d, default=0), max_decimals)


@dataclass
class Comparison:
    word: str            # the comparative word chosen from the numbers
    a: str               # formatted values, as the paper prints them
    b: str
    ratio: float         # a / b
    decisive: bool       # the gap exceeds the summed seed spreads (False with a single seed)
    n: int               # seeds behind the smaller side

    def __str__(self):
        return self.word


def compare(a: dict, b: dict, lower_is_better: bool, words=("better", "worse"), sig: int = 3,
            tie_rel: float = 0.02) -> Comparison:
    """Compare two seed-aggregated stats; `words` = (word when a is better, word when a is worse).

    Within `tie_rel` relative difference the word is "about the same as".
    """
    ma, mb = a["mean"], b["mean"]
    n = min(a["n"], b["n"])
    gap = abs(ma - mb)
    spread = (a.get("std") or 0) + (b.get("std") or 0)
    if gap <= tie_rel * max(abs(ma), abs(mb), 1e-12):
        word = "about the same as"
    else:
        a_better = (ma < mb) == lower_is_better
        word = words[0] if a_better else words[1]
    return Comparison(word, fmt(ma, sig), fmt(mb, sig), (ma / mb) if mb else float("inf"),
                      n >= 2 and gap > spread, n)


def evidence(c: Comparison) -> str:
    """How much a comparison can be trusted, in words: the seed count and the spread."""
    if c.n < 2:
        return "one seed each"
    return f"{c.n} seeds each, gap {'larger than' if c.decisive else 'within'} the seed spread"


def ordinal_rank(summary: dict, metric: str) -> list[str]:
    """Model names ordered best first by `metric` (models without it are left out)."""
    lower = METRIC_INFO[metric][1]
    ms = [(m, s["metrics"][metric]["mean"]) for m, s in summary["models"].items()
          if s["metrics"].get(metric, {}).get("mean") is not None]
    return [m for m, _ in sorted(ms, key=lambda t: t[1] if lower else -t[1])]


def swaps(first: list[str], second: list[str]) -> list[tuple[str, str]]:
    """Pairs (a, b) that `first` orders a before b and `second` orders b before a (shared items only)."""
    common = [x for x in first if x in second]
    pos = {x: i for i, x in enumerate(second)}
    return [(a, b) for i, a in enumerate(common) for b in common[i + 1:] if pos[b] < pos[a]]


def times(ratio: float) -> str:
    """'3.2 times', or 'about as' for ratios within 5% of one."""
    return "about as" if 0.95 <= ratio < 1.05 else f"{fmt(ratio, 2)} times"


def sci(x: float, math_mode: bool = True) -> str:
    """A small number as LaTeX scientific notation, '2 \\times 10^{-4}' (in $...$ unless math_mode is False)."""
    if x is None:
        return "n/a"
    exp = math.floor(math.log10(abs(x))) if x else 0
    mant = fmt(x / 10 ** exp, 2)
    body = f"10^{{{exp}}}" if mant == "1" else f"{mant} \\times 10^{{{exp}}}"
    if exp == 0:
        body = mant
    return f"${body}$" if math_mode else body


def duration(seconds: float) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 90:
        return f"{fmt(seconds, 2)}\\,s"
    if seconds < 5400:
        return f"{fmt(seconds / 60, 2)}\\,min"
    return f"{fmt(seconds / 3600, 2)}\\,h"


# --------------------------------------------------------------------------- the sampling-cost studies

SMALL_LOSS = 1.25  # an FD at most 25% above the reference counts as "little loss" of quality


def _fd(p: dict) -> float:
    return p["fd"]["mean"]


def sampler_study(summary: dict, model: str) -> dict | None:
    """What the sweep says about one diffusion model's samplers.

    ref: the best point at the largest step count (any sampler); fastest: the DDIM point with the
    fewest steps whose FD is within SMALL_LOSS of ref's (None if no DDIM point is); fewest_ddim and
    fewest_ancestral: both samplers at the smallest step count; supported: whether DDIM at one fifth
    of ref's network evaluations or fewer stays within SMALL_LOSS (the claim of Song et al. 2021)."""
    pts = [p for p in summary.get("sweep", {}).get(model, {}).get("points", []) if p["sampler"] != "native"]
    if not pts:
        return None
    top = max(p["steps"] for p in pts)
    ref = min((p for p in pts if p["steps"] == top), key=_fd)
    ddim = sorted((p for p in pts if p["sampler"] == "ddim"), key=lambda p: p["steps"])
    anc = sorted((p for p in pts if p["sampler"] == "ddpm"), key=lambda p: p["steps"])
    close = [p for p in ddim if _fd(p) <= SMALL_LOSS * _fd(ref)]
    fastest = close[0] if close else None
    out = {"ref": ref, "fastest": fastest, "ddim": ddim, "ancestral": anc,
           "fewest_ddim": ddim[0] if ddim else None, "fewest_ancestral": anc[0] if anc else None,
           "supported": bool(fastest and fastest["nfe"]["mean"] * 5 <= ref["nfe"]["mean"]),
           "speedup": (ref["ms_per_image"]["mean"] / fastest["ms_per_image"]["mean"]) if fastest else None}
    if ddim and anc and ddim[0]["steps"] == anc[0]["steps"]:
        out["few_steps"] = compare(ddim[0]["fd"], anc[0]["fd"], True, ("lower than", "higher than"))
    return out


def best_point(points: list[dict], key: str = "fd") -> dict:
    return min(points, key=lambda p: p[key]["mean"])


def guidance_study(summary: dict, model: str) -> dict | None:
    """Guidance weights ordered; the weight with the lowest FD; how accuracy and recall move from the
    smallest weight to the largest."""
    pts = sorted(summary.get("guidance", {}).get(model, {}).get("points", []), key=lambda p: p["guidance"])
    if not pts:
        return None
    lo, hi = pts[0], pts[-1]
    return {"points": pts, "lo": lo, "hi": hi, "best_fd": best_point(pts),
            "best_acc": max(pts, key=lambda p: p["cond_accuracy"]["mean"]),
            "acc": compare(hi["cond_accuracy"], lo["cond_accuracy"], False, ("higher than", "lower than")),
            "recall": compare(hi["recall"], lo["recall"], False, ("higher than", "lower than")),
            "precision": compare(hi["precision"], lo["precision"], False, ("higher than", "lower than")),
            "fd": compare(hi["fd"], lo["fd"], True, ("lower than", "higher than"))}


# --------------------------------------------------------------------------- the GAN study

UNSTABLE_CV = 2.0   # a model is "less stable" than the VAE when its seed-to-seed spread of FD is this many times
#                     the VAE's (as a coefficient of variation), or when more of its runs fail
EQUILIBRIUM_TOL = 0.1  # D's mean output within this of one half, on real and on fake images, counts as equilibrium


def _failed(run: dict) -> bool:
    return run.get("status") != "ok" or bool(run.get("collapsed"))


def dynamics_study(summary: dict, model: str) -> dict | None:
    """One model's short runs (Lucic et al. 2018), summarised.

    seeds: FD over the seed runs that trained (a stat) and its coefficient of variation; draws: the
    FD of the random-hyperparameter runs, sorted, and their relative range (max - min) / median;
    failed: runs (seeds and draws) that diverged or collapsed, out of all; detach: the ablation pair."""
    d = summary.get("dynamics", {}).get(model)
    if not d:
        return None
    runs = d["runs"]
    seeds = [r for r in runs if r["kind"] == "seed"]
    draws = [r for r in runs if r["kind"] == "draw"]
    fd = stat(r.get("fd") for r in seeds if r.get("status") == "ok")
    draw_fd = sorted(r["fd"] for r in draws if r.get("status") == "ok" and r.get("fd") is not None)
    main = seeds + draws
    out = {"model": model, "steps": d["steps"], "n": d["n"], "seeds": seeds, "draws": draws, "fd": fd,
           "cv": (fd["std"] / fd["mean"]) if fd["n"] > 1 and fd["mean"] else None,
           "draw_fd": draw_fd, "draw_median": draw_fd[len(draw_fd) // 2] if draw_fd else None,
           "draw_range": ((draw_fd[-1] - draw_fd[0]) / draw_fd[len(draw_fd) // 2]) if len(draw_fd) > 1 else None,
           "n_runs": len(main), "n_diverged": sum(r.get("status") != "ok" for r in main),
           "n_collapsed": sum(bool(r.get("collapsed")) for r in main if r.get("status") == "ok"),
           "n_failed": sum(_failed(r) for r in main),
           "n_draws_failed": sum(_failed(r) for r in draws)}
    out["fail_rate"] = out["n_failed"] / out["n_runs"] if out["n_runs"] else None
    detached = next((r for r in runs if r["kind"] == "detach"), None)
    if detached:
        pair = next((r for r in seeds if r["seed"] == detached["seed"]), None)
        if pair:
            out["detach"] = {"with": pair, "without": detached,
                             "time_ratio": detached["ms_per_step"] / pair["ms_per_step"]}
    return out


def stability_verdict(summary: dict, model: str, baseline: str = "vae") -> dict | None:
    """Is `model` less stable than `baseline` in the short runs? Yes when more of its runs fail, or when
    its seed-to-seed coefficient of variation of FD exceeds UNSTABLE_CV times the baseline's."""
    a, b = dynamics_study(summary, model), dynamics_study(summary, baseline)
    if not a or not b:
        return None
    more_failures = a["n_failed"] / a["n_runs"] > b["n_failed"] / b["n_runs"]
    wider = a["cv"] is not None and b["cv"] is not None and a["cv"] > UNSTABLE_CV * max(b["cv"], 1e-9)
    return {"a": a, "b": b, "less_stable": more_failures or wider, "more_failures": more_failures,
            "wider": wider, "cv_ratio": (a["cv"] / b["cv"]) if a["cv"] is not None and b["cv"] else None}


def sensitivity_verdict(summary: dict, model: str, baseline: str = "vae") -> dict | None:
    """Is `model` more sensitive to its hyperparameters than `baseline`? Yes when more of its random
    draws fail, or, with equal failures, when its draws' FD spans a wider relative range."""
    a, b = dynamics_study(summary, model), dynamics_study(summary, baseline)
    if not a or not b or not a["draws"] or not b["draws"]:
        return None
    if a["n_draws_failed"] != b["n_draws_failed"]:
        more = a["n_draws_failed"] > b["n_draws_failed"]
    else:
        more = (a["draw_range"] or 0) > (b["draw_range"] or 0)
    return {"a": a, "b": b, "more_sensitive": more}


def equilibrium(summary: dict, model: str) -> dict | None:
    """D's mean probability on real and fake images over the last logged steps of the main run, and
    whether both lie within EQUILIBRIUM_TOL of one half (Goodfellow et al. 2014's optimum)."""
    m = summary["models"].get(model)
    if not m or m.get("d_output") != "probability" or "final_d_real" not in m["metrics"]:
        return None
    dr, df = m["metrics"]["final_d_real"]["mean"], m["metrics"]["final_d_fake"]["mean"]
    return {"d_real": dr, "d_fake": df,
            "at_equilibrium": abs(dr - 0.5) < EQUILIBRIUM_TOL and abs(df - 0.5) < EQUILIBRIUM_TOL}


def probe_metric(summary: dict, model: str, key: str) -> dict | None:
    p = summary.get("probes", {}).get(model, {})
    st = p.get("metrics", {}).get(key)
    return st if st and st.get("mean") is not None else None


# --------------------------------------------------------------------------- quality against training compute

def time_to_threshold(rows: list[dict], threshold: float, key: str = "fd") -> dict | None:
    """When a training curve first reaches `key` <= threshold.

    rows: the curve in step order, each {"step", "images", "wall", key} with plain numbers (a row
    without a finite `key` is skipped). Between the last snapshot above the threshold and the first at
    or below it, step, images and wall are interpolated linearly in `key`: {"step", "images", "wall",
    key: threshold, "first": False}. Reached already at the first snapshot: that snapshot's values and
    "first": True (the curve says only that it was reached by then). None when it is never reached."""
    prev = None
    for r in rows:
        v = r.get(key)
        if v is None or not math.isfinite(v):
            continue
        if v <= threshold:
            if prev is None:
                return {"step": r["step"], "images": r["images"], "wall": r["wall"], key: v, "first": True}
            w = (prev[key] - threshold) / (prev[key] - v)          # in [0, 1): prev is above, r at or below
            return {**{k: prev[k] + w * (r[k] - prev[k]) for k in ("step", "images", "wall")}, key: threshold,
                    "first": False}
        prev = r
    return None


def compute_study(summary: dict) -> dict | None:
    """What the quality-against-compute curves (summary["curves"], `genreview.studies.curves`) say.

    models: the models with a curve, in the summary's order; tt: model -> its time_to_threshold (of the
    mean curve over seeds) or None; reached: the models that reach the threshold, soonest in training
    wall time first; by_images: the same, fewest images seen first; never: those that do not reach it;
    final: model -> FD of its last snapshot (a stat); by_final: the models by that FD, best first;
    hidden: pairs (a, b) of models that reach the threshold where a ends training with an FD `compare`
    calls lower than b's, yet b reaches the threshold sooner in wall time: what a comparison at the end of
    fixed budgets does not show; ddim: whether any model was sampled with DDIM, and sampler_steps its steps."""
    curves = {m: c for m, c in (summary.get("curves") or {}).items() if c.get("rows")}
    if not curves:
        return None
    order = summary.get("order", [])
    models = [m for m in order if m in curves] + [m for m in curves if m not in order]
    tt = {m: curves[m]["time_to_threshold"] for m in models}
    reached = sorted((m for m in models if tt[m]), key=lambda m: tt[m]["wall"])
    final = {m: curves[m]["rows"][-1]["fd"] for m in models}
    by_final = sorted((m for m in models if final[m]["mean"] is not None), key=lambda m: final[m]["mean"])
    first = next(iter(curves.values()))
    return {"models": models, "threshold": first["threshold"], "n": first["n"], "tt": tt, "reached": reached,
            "by_images": sorted(reached, key=lambda m: tt[m]["images"]),
            "never": [m for m in models if not tt[m]], "final": final, "by_final": by_final,
            "hidden": [(a, b) for a, b in swaps([m for m in by_final if m in reached], reached)
                       if compare(final[a], final[b], True, ("lower than", "higher than")).word == "lower than"],
            "ddim": any(c["sampler"] == "ddim" for c in curves.values()),
            "sampler_steps": next((c["sampler_steps"] for c in curves.values() if c["sampler"] == "ddim"), None)}
