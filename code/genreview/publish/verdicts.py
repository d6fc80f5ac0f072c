"""Verdicts: the words the paper chooses from the results, as data.

`compare` turns two seed-aggregated measurements into a comparative word ("lower", "faster"),
and says whether the gap exceeds the seed spread and how many seeds stand behind it; the study
functions below summarise one study each (the sampler sweep of Song et al. 2021, classifier-free
guidance, the short-run training dynamics of Lucic et al. 2018, the discriminator's equilibrium of
Goodfellow et al. 2014, quality against training compute) for the templates to print.
"""
from __future__ import annotations

from dataclasses import dataclass

from .formatting import fmt
from ..summary.stats import stat

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
