"""Numbers and words for the paper, chosen from the results.

Tables and templates format every number through `fmt`/`pm`, so the PDF shows the same
digits everywhere. Comparative words ("lower", "faster") come from `compare`, which
also says whether the gap exceeds the seed spread and how many seeds stand behind it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

# Metric name -> (label in the paper, True if lower is better)
METRIC_INFO = {
    "fd": ("FD", True), "kid": ("KID", True), "is": ("IS", False),
    "precision": ("precision", False), "recall": ("recall", False),
    "density": ("density", False), "coverage": ("coverage", False),
    "sample_ms_per_image": ("sampling time", True), "train_seconds": ("training time", True),
    "ms_per_step": ("time per step", True), "params": ("parameters", True), "nfe": ("NFE", True),
    "recon_mse": ("reconstruction MSE", True), "fid_inception": ("Inception FID", True),
    "bpd": ("bits/dim", True),
}


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
