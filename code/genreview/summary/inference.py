"""Inference over seeds: the effect of one model against another, its 95% interval, a p-value, the
Benjamini-Hochberg correction over a family of tests, and the verdict these allow.

The effect of a comparison of model a with model b on one metric is on the metric's natural scale
(`METRICS`, the one table of metric facts: label, direction, scale):

    ratio metrics (FD, KID, IS, times, bits/dim, ...: positive, unbounded)   log(mean_a / mean_b)
    difference metrics (precision, recall, coverage, accuracy, ...: bounded) mean_a - mean_b

Interval. Each side's uncertainty comes from B bootstrap replicates of its seed mean, made here by
resampling seeds with replacement (Efron and Tibshirani 1993, ch. 6), or taken from `stat["replicates"]`
where the summary supplies them: for FD_inf (in every judge's features) a two-level bootstrap, the seeds
resampled, then each drawn seed's samples (`stats.two_level` over `metrics.fd_inf_replicates`), so the
interval carries both the spread between seeds and each seed's sampling noise.
A percentile interval from so few seeds is too narrow twice over:
the replicates of a mean of n seeds spread sqrt((n - 1) / n) times too little, and normal tails stand in
for Student's. We therefore expand each side's replicates about its mean by sqrt(n / (n - 1)) (the
"expanded percentile" correction of Hesterberg 2015, "What teachers should know about the bootstrap",
Am. Stat. 69(4)), take the variance of the effect from them (the two sides are independent) and use
Student-t quantiles with Welch-Satterthwaite degrees of freedom from the seed counts (Welch 1947):

    interval = effect +- t_{0.975, nu} * se,    p = 2 * P(T_nu > |effect| / se).

The p-value is the one that belongs to the interval (p < 0.05 exactly when the interval excludes 0);
the tail share of the raw replicates, which it replaces, calls two identical models different far
more often than 5% of the time with three seeds (tests/test_inference.py measures both).

One seed on a side, without replicates, gives no interval: the verdict is then "inconclusive" with
the reason "one seed". A fixed reference value (a threshold) has no variance and no seeds.

Verdicts (`verdict`): "equivalent" when the whole interval lies inside the practical margin (log(1 +
margin) for a ratio, margin times the metric's unit for a difference); "supported" / "contradicted"
when the Benjamini-Hochberg adjusted p (Benjamini and Hochberg 1995) is below alpha and the interval
excludes 0 on the claimed / the opposite side ("different" for a comparison that claims no direction);
"inconclusive" otherwise, with its reason.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
from scipy import stats as sps

from ..hparams import hp


@dataclass
class InferenceConfig:
    """The ledger's statistical settings (paper/claims.yaml's top-level keys of the same names)."""
    margin: float = hp(0.1, minimum=0, maximum=10,
                       doc="practical margin: a relative difference (ratio metrics: log(1 + margin)) or a "
                           "difference in the metric's unit below which two models count as equivalent")
    alpha: float = hp(0.05, exclusive_minimum=0, exclusive_maximum=1,
                      doc="false discovery rate of the Benjamini-Hochberg correction over the ledger's tests")
    level: float = hp(0.95, exclusive_minimum=0, exclusive_maximum=1, doc="confidence level of the intervals")
    n_boot: int = hp(2000, minimum=100, maximum=10**6, doc="bootstrap replicates of each seed mean")
    seed: int = hp(0, minimum=0, maximum=2**32 - 1, doc="seed of the bootstrap's resampling")
    plateau_gain: float = hp(0.05, minimum=0, maximum=1,
                             doc="a model whose FD fell by this fraction or more over its last doubling of "
                                 "training compute has not plateaued: a quality verdict on it is budget-limited")

    @classmethod
    def from_mapping(cls, d: dict, where: str) -> "InferenceConfig":
        """The fields named in `d` (others ignored), each checked against its declared bounds."""
        out = cls()
        for f in fields(cls):
            if f.name not in d:
                continue
            v, sch = d[f.name], f.metadata["schema"]
            kind = int if f.type in (int, "int") else float
            if isinstance(v, bool) or not isinstance(v, (int, float)) or (kind is int and not float(v).is_integer()):
                raise ValueError(f"{where}: {f.name} must be a {kind.__name__}, not {v!r} ({sch['description']})")
            checks = (("minimum", float.__ge__), ("maximum", float.__le__),
                      ("exclusiveMinimum", float.__gt__), ("exclusiveMaximum", float.__lt__))
            bad = [(k, sch[k]) for k, ok in checks if sch.get(k) is not None and not ok(float(v), float(sch[k]))]
            if bad:
                raise ValueError(f"{where}: {f.name} = {v} breaks its bound {bad[0][0]} {bad[0][1]} "
                                 f"({sch['description']}); set a value within it")
            setattr(out, f.name, kind(v))
        return out


# --------------------------------------------------------------------------- the metric table

@dataclass(frozen=True)
class Metric:
    label: str             # how the paper names it
    lower_is_better: bool
    scale: str             # "ratio": positive, compared by log(a / b); "difference": bounded, by a - b
    unit: float | None = 1.0  # a difference metric's unit for the margin; None: relative to |mean of b|


def _r(label, lower=True):
    return Metric(label, lower, "ratio")


def _d(label, lower=False, unit=1.0):
    return Metric(label, lower, "difference", unit)


# Metric (or ledger quantity) -> its facts. The one table of directions: the verdicts, the ledger and the
# rankings read it. KID's unbiased estimate and FD extrapolated to infinite N can fall to or below zero, so
# a ratio metric whose values are not all positive is compared by its difference (`scale_of`).
METRICS = {
    "fd": _r("FD"), "fd_inf": _d("FD$_\\infty$", True, None), "kid": _r("KID"),
    "is": _r("IS", False), "fid_inception": _r("Inception FID"),
    "precision": _d("precision"), "recall": _d("recall"), "coverage": _d("coverage"),
    "density": _r("density", False),
    "sample_ms_per_image": _r("ms per image"), "train_seconds": _r("training time"), "ms_per_step": _r("ms per step"),
    "params": _r("parameters"), "nfe": _r("NFE"), "recon_mse": _r("reconstruction MSE"), "bpd": _r("bits/dim"),
    "sharpness": _r("sharpness", False), "blur": _d("blur (detail deficit against real images)", True),
    "latency_ms": _r("latency at batch 1"), "train_flops": _r("training FLOPs"),
    "peak_memory_mb": _r("peak memory"), "class_kl": _r("class KL"),
    "cond_accuracy": _d("conditional accuracy"), "psnr": _d("PSNR", False, None), "ssim": _d("SSIM"),
    "probe:recon_mse": _r("reconstruction MSE"), "probe:probe_acc": _d("linear-probe accuracy"),
    "probe:ppl": _r("path length"), "translation:fd": _r("FD"),
    "resolution_slope": _d("growth of time with the pixel count (log-log slope)", True),
    "curve:wall": _r("training time to the FD threshold"), "curve:images": _r("images seen to the FD threshold"),
}


def metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric '{name}': add it to genreview.summary.inference.METRICS with its label, "
                       f"direction and scale (known: {', '.join(sorted(METRICS))})") from None


def scale_of(name: str, *values) -> str:
    """'log_ratio' or 'difference' for this metric and these values (a ratio needs positive values)."""
    if metric(name).scale == "ratio" and all(np.all(np.asarray(v, dtype=float) > 0) for v in values):
        return "log_ratio"
    return "difference"


# --------------------------------------------------------------------------- the effect and its interval

@dataclass(frozen=True)
class Effect:
    scale: str                 # "log_ratio" | "difference"
    estimate: float            # log(mean_a / mean_b) or mean_a - mean_b
    lo: float | None           # the interval; None without one (one seed and no replicates)
    hi: float | None
    se: float | None
    df: float | None           # Welch-Satterthwaite degrees of freedom (inf: replicates of one seed)
    p: float | None            # two-sided, for "no difference"
    n_a: int
    n_b: int | None            # None: b is a fixed value
    reason: str | None = None  # why there is no interval


def seed_replicates(values, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot,) means of the seed values resampled with replacement."""
    v = np.asarray(values, dtype=float)                       # (n,)
    idx = rng.integers(0, len(v), size=(n_boot, len(v)))      # (B, n)
    return v[idx].mean(axis=1)                                # (B,)


def _side(st, log: bool, cfg: InferenceConfig, rng) -> tuple[float, int | None, float | None, float | None]:
    """(mean, seeds, variance of g(mean), degrees of freedom) of one side; g = log or identity.
    A plain number is a fixed reference: (value, None, 0, None)."""
    if not isinstance(st, dict):
        return float(st), None, 0.0, None
    vals = np.asarray(st.get("values") or [], dtype=float)
    if len(vals) == 0:
        raise ValueError("a stat without its per-seed values: build it with genreview.summary.stats.stat")
    n, mean = len(vals), float(vals.mean())
    reps = st.get("replicates")
    if reps is not None:
        reps = np.asarray(reps, dtype=float)
    elif n >= 2:
        reps = seed_replicates(vals, cfg.n_boot, rng)
    else:
        return mean, n, None, None
    if n >= 2:  # a mean of n resampled seeds spreads sqrt((n - 1) / n) too little (Hesterberg 2015)
        reps = mean + math.sqrt(n / (n - 1)) * (reps - mean)
    if log and np.all(reps > 0):
        var = float(np.var(np.log(reps), ddof=1))
    else:  # the delta method where an expanded replicate left the positive axis
        var = float(np.var(reps, ddof=1)) / (mean * mean if log else 1.0)
    return mean, n, var, (n - 1 if n >= 2 else math.inf)


def effect(a, b, name: str, cfg: InferenceConfig | None = None) -> Effect:
    """The effect of a against b on metric `name` with its interval and p-value.

    a: a seed stat {"mean", "std", "n", "values"[, "replicates"]} (`stats.stat`); b: the same, or a plain
    number (a fixed reference such as a threshold)."""
    cfg = cfg or InferenceConfig()
    rng = np.random.default_rng(cfg.seed)
    va = a.get("values") if isinstance(a, dict) else a
    vb = b.get("values") if isinstance(b, dict) else b
    scale = scale_of(name, va, vb)
    log = scale == "log_ratio"
    ma, na, var_a, df_a = _side(a, log, cfg, rng)
    mb, nb, var_b, df_b = _side(b, log, cfg, rng)
    est = math.log(ma / mb) if log else ma - mb
    if var_a is None or var_b is None:
        return Effect(scale, est, None, None, None, None, None, na, nb, "one seed")
    se = math.sqrt(var_a + var_b)
    dfs = [(v, d) for v, d in ((var_a, df_a), (var_b, df_b)) if d is not None]
    if se > 0:
        den = sum(v * v / d for v, d in dfs if v > 0)
        df = (se ** 4) / den if den > 0 else math.inf
        tq = float(sps.t.ppf(0.5 + cfg.level / 2, df))
        p = float(2 * sps.t.sf(abs(est) / se, df))
    else:  # every seed agrees: the interval is the point
        df, tq, p = sum(d for _, d in dfs), 0.0, (0.0 if est != 0 else 1.0)
    return Effect(scale, est, est - tq * se, est + tq * se, se, df, p, na, nb)


# --------------------------------------------------------------------------- the family of tests

def bh_adjust(pvalues) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (scipy.stats.false_discovery_control), in the given order."""
    p = np.asarray(list(pvalues), dtype=float)
    if p.size == 0:
        return []
    return [float(x) for x in sps.false_discovery_control(p, method="bh")]


KINDS = ("supported", "contradicted", "equivalent", "inconclusive")


def margin_of(e: Effect, name: str, margin: float, b_mean: float) -> float:
    """The practical margin on the effect's scale."""
    if e.scale == "log_ratio":
        return math.log1p(margin)
    unit = metric(name).unit
    return margin * (unit if unit is not None else abs(b_mean))


def verdict(e: Effect, claimed: str | None, margin_eff: float, alpha: float,
            p_adj: float | None = None) -> tuple[str, str | None]:
    """(kind, reason) for effect e of a claim that a is `claimed` ("lower"/"higher" in the metric's value,
    None: no direction claimed) than b; margin_eff on the effect's scale (`margin_of`); p_adj the adjusted
    p-value (the raw one when None). Kinds: KINDS, and "different" for a decisive unclaimed comparison."""
    if e.lo is None:
        return "inconclusive", e.reason
    if -margin_eff <= e.lo and e.hi <= margin_eff:
        return "equivalent", None
    p = e.p if p_adj is None else p_adj
    side = "lower" if e.hi < 0 else "higher" if e.lo > 0 else None
    if side is None:
        return "inconclusive", "interval includes no difference"
    if p >= alpha:
        return "inconclusive", "not significant after correction"
    if claimed is None:
        return "different", None
    return ("supported" if side == claimed else "contradicted"), None
