"""Verdicts: the words the paper chooses from the results, as data.

`judge` is the one verdict engine: it turns two seed-aggregated measurements (or one and a fixed value)
into the effect of a against b with its 95% interval and p-value (`summary.inference`), a verdict kind
(supported, contradicted, equivalent, inconclusive; "different" where no direction is claimed) and the
comparative word the prose prints ("lower than", "faster than"; "about the same as" only when the two are
equivalent). The ledger (`claims`), the templates (through `compare`, a name for `judge` without a claim)
and the tables all take their words from it; templates print verdicts and never compare numbers
(tests/test_one_engine.py). The study functions below summarise one study each (the sampler sweep of Song
et al. 2021, classifier-free guidance, the short-run training dynamics of Lucic et al. 2018, the
discriminator's equilibrium of Goodfellow et al. 2014, quality against training compute) for the templates.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from .formatting import NEAR_ONE, column_decimals, fmt
from ..summary import inference as I
from ..summary.stats import stat

DECISIVE = ("supported", "contradicted", "different")


def _num(x: float, decimals: int) -> str:
    s = fmt(x, decimals=decimals)
    return f"${s}$" if s.startswith("-") else s


def seeds_text(n_a: int, n_b: int | None) -> str:
    """'3 seeds each', '3 and 2 seeds', 'one seed each', '3 seeds' (against a fixed value)."""
    def one(n):
        return "one seed" if n == 1 else f"{n} seeds"
    if n_b is None:
        return one(n_a)
    if n_a == n_b:
        return f"{one(n_a)} each"
    return f"{n_a} and {n_b} seeds"


@dataclass(frozen=True)
class Judgement:
    """One comparison of a with b, decided by `judge`."""
    word: str                # the comparative word ("lower than", "about the same as", ...)
    kind: str                # supported / contradicted / equivalent / inconclusive, or different (no claim)
    a: str                   # the two means, formatted as the paper prints them
    b: str
    label: str               # the metric as the paper names it
    effect: I.Effect         # the effect, its interval and p-value
    p_adj: float | None      # the Benjamini-Hochberg adjusted p-value (the raw one outside a family)
    reason: str | None       # why an inconclusive verdict is one ("one seed", ...)
    mean_a: float
    mean_b: float

    def __str__(self):
        return self.word

    @property
    def n(self) -> int:
        """Seeds behind the smaller side."""
        return min(self.effect.n_a, self.effect.n_b or self.effect.n_a)

    @property
    def decisive(self) -> bool:
        return self.kind in DECISIVE

    @property
    def ratio(self) -> float:
        return self.mean_a / self.mean_b if self.mean_b else math.inf

    @property
    def seeds(self) -> str:
        return seeds_text(self.effect.n_a, self.effect.n_b)

    @property
    def estimate(self) -> str:
        """The effect with its interval, e.g. 'FD 0.62$\\times$ [0.55, 0.70]' or 'recall $-0.05$ [...]'."""
        e = self.effect
        f = math.exp if e.scale == "log_ratio" else float
        d = column_decimals([f(e.estimate)] + ([abs(f(e.hi) - f(e.lo))] if e.lo is not None else []), sig=2)
        body = _num(f(e.estimate), d) + ("$\\times$" if e.scale == "log_ratio" else "")
        ci = f" [{_num(f(e.lo), d)}, {_num(f(e.hi), d)}]" if e.lo is not None else ""
        return f"{self.label} {body}{ci}"

    @property
    def interval(self) -> str:
        """'FD 0.62$\\times$ [0.55, 0.70], 3 seeds each' (the ledger's and the tables' form)."""
        return f"{self.estimate}, {self.seeds}"

    @property
    def evidence(self) -> str:
        """How far the comparison can be trusted, for the prose: the seeds, the interval, the verdict."""
        if self.effect.lo is None:
            return f"{self.seeds}, so no interval"
        tail = {"equivalent": ", within the margin", "inconclusive": f", {self.reason}"}.get(self.kind, "")
        return f"{self.seeds}; {self.estimate}{tail}"

    def times(self, after: str = "") -> str:
        """a's mean as a multiple of b's: '3.2 times the VAE's', '3.2 times as much'; with 'faster' or
        'slower' the larger over the smaller ('3.2 times faster'). 'About as fast' only when equivalent."""
        if after not in NEAR_ONE:
            raise ValueError(f"times(): unknown phrase {after!r}; one of {sorted(NEAR_ONE)}")
        if self.kind == "equivalent":
            return NEAR_ONE[after]
        r = self.ratio if after in ("", "as much", "more", "larger") else max(self.ratio, 1 / self.ratio)
        return f"{fmt(r, 2)} times" + (f" {after}" if after else "")


def judge(a, b, metric: str, claimed: str | None = None, words=("lower than", "higher than"),
          cfg: I.InferenceConfig | None = None, p_adj: float | None = None, sig: int = 3) -> Judgement:
    """The one verdict engine: a against b on `metric` (a key of `summary.inference.METRICS`).

    a: a seed stat ({"mean", "std", "n", "values"}); b: the same or a fixed value; claimed: "lower" or
    "higher" when a claim says which way a lies (in the metric's value), None for a plain comparison;
    words: (word when a's value is lower, word when it is higher), e.g. ("faster than", "slower than") for
    times; cfg: margin, alpha, level and bootstrap settings (the ledger's); p_adj: the p-value after the
    family's correction (the ledger's Benjamini-Hochberg step), else the raw one."""
    if claimed not in (None, "lower", "higher"):
        raise ValueError(f"claimed must be 'lower', 'higher' or None, not {claimed!r}")
    cfg = cfg or I.InferenceConfig()
    e = I.effect(a, b, metric, cfg)
    mean_a, mean_b = (a["mean"], b["mean"] if isinstance(b, dict) else float(b))
    kind, reason = I.verdict(e, claimed, I.margin_of(e, metric, cfg.margin, mean_b), cfg.alpha, p_adj)
    if kind == "equivalent":
        word = "about the same as"
    elif e.estimate == 0:
        word = "equal to"
    else:
        word = words[0] if e.estimate < 0 else words[1]
    return Judgement(word, kind, fmt(mean_a, sig), fmt(mean_b, sig), I.metric(metric).label, e,
                     p_adj if p_adj is not None else e.p, reason, mean_a, mean_b)


def compare(a: dict, b, metric: str, words=("lower than", "higher than"), sig: int = 3) -> Judgement:
    """`judge` without a claim, at the default settings (the templates get `Ledger.compare`, the same rule at
    the ledger's settings)."""
    return judge(a, b, metric, words=words, sig=sig)


def data_key(a, b, metric: str) -> str:
    """What a comparison compares, as text: the metric and each side's seed values (or fixed value). The
    ledger records its adjusted p-values under these keys, so that the prose finds them."""
    def side(x):
        if isinstance(x, dict):
            return ",".join(f"{float(v):.12g}" for v in x.get("values") or [])
        return f"={float(x):.12g}"
    return f"{metric}|{side(a)}|{side(b)}"


class Ledger:
    """The prose's comparisons at the ledger's settings (`claims.evaluate`'s output, claims.json: margin, alpha,
    level, bootstrap), and where a sentence compares exactly the data of a ledger test (either way round), with
    that test's Benjamini-Hochberg adjusted p-value: a sentence and the ledger cannot then disagree. Other
    comparisons in the prose are descriptive, judged on their own p-value. None: the default settings."""

    def __init__(self, claims: dict | None):
        claims = claims or {}
        self.cfg = I.InferenceConfig.from_mapping(claims, "claims.json") if claims else I.InferenceConfig()
        self.adjusted = dict(claims.get("adjusted") or {})

    def p_adj(self, a, b, metric: str) -> float | None:
        return self.adjusted.get(data_key(a, b, metric), self.adjusted.get(data_key(b, a, metric)))

    def compare(self, a: dict, b, metric: str, words=("lower than", "higher than"), sig: int = 3) -> Judgement:
        return judge(a, b, metric, words=words, sig=sig, cfg=self.cfg, p_adj=self.p_adj(a, b, metric))


def evidence(j: Judgement) -> str:
    """How much a comparison can be trusted, in words (`Judgement.evidence`)."""
    return j.evidence


def lower_is_better(metric: str) -> bool:
    return I.metric(metric).lower_is_better


def ordinal_rank(summary: dict, metric: str) -> list[str]:
    """Model names ordered best first by `metric` (models without it are left out)."""
    lower = lower_is_better(metric)
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
    fewest_ancestral: both samplers at the smallest step count; few: the DDIM point with the lowest FD
    among those at one fifth of ref's network evaluations or fewer (None without one); claim_test: the
    engine's test of Song et al. 2021's claim that it stays within SMALL_LOSS of ref (few's FD lower than
    SMALL_LOSS times ref's, the arguments of `judge`); claim: its judgement (the verdict; the ledger
    adjusts its p-value among its other tests); supported: what the means alone say (fastest exists at a
    fifth of ref's evaluations or fewer), a description of the sweep and no verdict."""
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
           "speedup": (ref["ms_per_image"]["mean"] / fastest["ms_per_image"]["mean"]) if fastest else None}
    few = [p for p in ddim if p["nfe"]["mean"] * 5 <= ref["nfe"]["mean"]]
    out["few"] = min(few, key=_fd) if few else None
    out["claim_test"] = out["claim"] = None
    if out["few"]:
        scaled = stat(v * SMALL_LOSS for v in ref["fd"]["values"])
        out["claim_test"] = {"a": out["few"]["fd"], "b": scaled, "metric": "fd", "claimed": "lower"}
        out["claim"] = judge(**out["claim_test"])
    out["supported"] = bool(fastest and fastest["nfe"]["mean"] * 5 <= ref["nfe"]["mean"])
    if ddim and anc and ddim[0]["steps"] == anc[0]["steps"]:
        out["few_steps"] = compare(ddim[0]["fd"], anc[0]["fd"], "fd")
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
            "acc": compare(hi["cond_accuracy"], lo["cond_accuracy"], "cond_accuracy"),
            "recall": compare(hi["recall"], lo["recall"], "recall"),
            "precision": compare(hi["precision"], lo["precision"], "precision"),
            "fd": compare(hi["fd"], lo["fd"], "fd")}


# --------------------------------------------------------------------------- the GAN study

EQUILIBRIUM_TOL = 0.1  # D's mean output within this of one half, on real and on fake images, counts as equilibrium
# Mode collapse as precision and coverage read it (Naeem et al. 2020): samples that look real but cover little of
# the data. A run has collapsed when its precision is at least COLLAPSE_PRECISION times the real data's (the
# reference floor) and its coverage below COLLAPSE_COVERAGE times the real data's. An untrained model, whose
# samples look like nothing, has a low precision too and never counts.
COLLAPSE_PRECISION, COLLAPSE_COVERAGE = 0.5, 0.5
# A short run has started to learn when its FD is below STARTED times the noise ceiling's. The stability rule
# judges only such runs: a run that never left the ceiling says the budget was too small, not that training is
# unstable.
STARTED = 0.5
STUDY_ALPHA = 0.05  # the level of the study's tests (Fisher's exact test, Brown-Forsythe)


def collapsed(row: dict, floor: dict | None) -> bool | None:
    """Whether scores `row` ({"precision", "coverage"}) show mode collapse against the real data's `floor`;
    None without the scores."""
    p, c = row.get("precision"), row.get("coverage")
    if p is None or c is None or not floor or floor.get("precision") is None or floor.get("coverage") is None:
        return None
    return p >= COLLAPSE_PRECISION * floor["precision"] and c < COLLAPSE_COVERAGE * floor["coverage"]


def _reference(summary: dict, side: str) -> dict | None:
    return (summary.get("reference") or {}).get(side)


def started(run: dict, ceiling: dict | None) -> bool:
    """Whether a trained short run left the noise ceiling (FD below STARTED times the ceiling's); without a
    ceiling every scored run counts as started."""
    fd = run.get("fd")
    if fd is None:
        return False
    return not ceiling or ceiling.get("fd") is None or fd < STARTED * ceiling["fd"]


def _failed(run: dict, floor: dict | None) -> bool:
    return run.get("status") != "ok" or bool(collapsed(run, floor))


def dynamics_study(summary: dict, model: str) -> dict | None:
    """One model's short runs (Lucic et al. 2018), summarised.

    seeds: FD over the seed runs that trained (a stat) and its coefficient of variation; draws: the
    FD of the random-hyperparameter runs, sorted, and their relative range (max - min) / median;
    seed failures (the stability rule): seed runs that diverged, or that started (`started`) and collapsed
    (`collapsed`), out of the seed runs that diverged or started; never_started: seed runs still at the noise
    ceiling; draw failures (the sensitivity rule): draws that diverged or collapsed; detach: the ablation
    (`detach_ablation`)."""
    d = summary.get("dynamics", {}).get(model)
    if not d:
        return None
    floor, ceiling = _reference(summary, "floor"), _reference(summary, "ceiling")
    runs = d["runs"]
    seeds = [r for r in runs if r["kind"] == "seed"]
    draws = [r for r in runs if r["kind"] == "draw"]
    ok = [r for r in seeds if r.get("status") == "ok"]
    fd = stat(r.get("fd") for r in ok)
    draw_fd = sorted(r["fd"] for r in draws if r.get("status") == "ok" and r.get("fd") is not None)
    judged = [r for r in seeds if r.get("status") != "ok" or started(r, ceiling)]
    out = {"model": model, "steps": d["steps"], "n": d["n"], "seeds": seeds, "draws": draws, "fd": fd,
           "cv": (fd["std"] / fd["mean"]) if fd["n"] > 1 and fd["mean"] else None,
           "log_fd": [math.log(r["fd"]) for r in ok if started(r, ceiling) and r["fd"] > 0],
           "draw_fd": draw_fd, "draw_median": draw_fd[len(draw_fd) // 2] if draw_fd else None,
           "draw_range": ((draw_fd[-1] - draw_fd[0]) / draw_fd[len(draw_fd) // 2]) if len(draw_fd) > 1 else None,
           "n_runs": len(judged), "n_seed_runs": len(seeds), "never_started": len(seeds) - len(judged),
           "n_diverged": sum(r.get("status") != "ok" for r in seeds),
           "n_collapsed": sum(bool(collapsed(r, floor)) for r in judged if r.get("status") == "ok"),
           "n_failed": sum(_failed(r, floor) for r in judged),
           "n_draws_failed": sum(_failed(r, floor) for r in draws)}
    out["fail_rate"] = out["n_failed"] / out["n_runs"] if out["n_runs"] else None
    detach = detach_ablation(runs)
    if detach:
        out["detach"] = detach
    return out


def beta_study(summary: dict, model: str = "vae") -> dict | None:
    """A model's runs at other KL weights (the dynamics study's "beta" runs) beside runs at the configured weight
    (the main run's hparams, 1 when it records none): {"model", "steps" (the beta runs' training steps),
    "main_budget" (True when they trained as far as the main runs), "rows": [{"beta", "configured", "source", "n",
    "n_ok", "blur", "fd"} by increasing beta, blur and fd stats over the runs that trained]}. The configured
    weight's row is the main runs' evaluation ("source": "main runs") when the beta runs had their budget, else the
    study's seed runs ("short runs"), which trained as long as the beta runs. None without beta runs."""
    d = summary.get("dynamics", {}).get(model)
    runs = (d or {}).get("runs", [])
    betas = [r for r in runs if r["kind"] == "beta"]
    if not betas:
        return None
    m = summary.get("models", {}).get(model) or {}
    configured = float((m.get("hparams") or {}).get("beta", 1.0))
    steps = max(int(r.get("max_steps") or r.get("steps") or 0) for r in betas)
    main_steps = ((m.get("metrics") or {}).get("steps") or {}).get("mean")
    main_budget = bool(main_steps) and steps >= main_steps
    groups: dict[float, list[dict]] = {}
    for r in betas:
        groups.setdefault(float(r["changed"]["beta"]), []).append(r)
    rows = []
    for b, rs in groups.items():
        ok = [r for r in rs if r.get("status") == "ok"]
        rows.append({"beta": b, "configured": False, "source": "KL-weight runs", "n": len(rs), "n_ok": len(ok),
                     "blur": stat(r.get("blur") for r in ok), "fd": stat(r.get("fd") for r in ok)})
    if main_budget:
        mm = m.get("metrics") or {}
        rows.append({"beta": configured, "configured": True, "source": "main runs", "n": m.get("n_seeds", 0),
                     "n_ok": m.get("n_ok", 0), "blur": mm.get("blur") or stat([]), "fd": mm.get("fd") or stat([])})
    else:
        ok = [r for r in runs if r["kind"] == "seed" and r.get("status") == "ok"]
        rows.append({"beta": configured, "configured": True, "source": "short runs",
                     "n": sum(r["kind"] == "seed" for r in runs), "n_ok": len(ok),
                     "blur": stat(r.get("blur") for r in ok), "fd": stat(r.get("fd") for r in ok)})
    return {"model": model, "steps": steps, "main_budget": main_budget,
            "rows": sorted(rows, key=lambda r: r["beta"])}


def _ablation_side(rs: list[dict]) -> dict:
    """The runs of one side of the detach ablation: FD over those that trained (a stat), and the means of the
    cost per step, the gradient D's step left on G and the cosine of G's update with its own gradient."""
    ok = [r for r in rs if r.get("status") == "ok"]

    def mean(k):
        v = [r[k] for r in rs if r.get(k) is not None]
        return float(np.mean(v)) if v else None
    return {"runs": rs, "n": len(rs), "n_diverged": len(rs) - len(ok), "fd": stat(r.get("fd") for r in ok),
            **{k: mean(k) for k in ("ms_per_step", "g_grad_in_d_step", "g_update_cos")}}


def detach_ablation(runs: list[dict]) -> dict | None:
    """The .detach() ablation of a dynamics study (`studies.dynamics`), each ablation run paired with the seed run
    at its seed: "with" (those seed runs), "without" (no detach, G's gradients cleared before its step: our loop),
    "leak" (no detach and G's gradients kept: the loop where the detach matters; None without such runs),
    each `_ablation_side`, and "time_ratio", the mean over pairs of the cost per step without the detach over
    that with it. None without a paired ablation run."""
    seeds = {r["seed"]: r for r in runs if r["kind"] == "seed"}
    sides = {k: [r for r in runs if r["kind"] == k and r["seed"] in seeds] for k in ("detach", "leak")}
    if not sides["detach"]:
        return None
    paired = sorted({r["seed"] for r in sides["detach"]} | {r["seed"] for r in sides["leak"]})
    ratios = [r["ms_per_step"] / seeds[r["seed"]]["ms_per_step"] for r in sides["detach"]
              if r.get("ms_per_step") and seeds[r["seed"]].get("ms_per_step")]
    return {"with": _ablation_side([seeds[k] for k in paired]), "without": _ablation_side(sides["detach"]),
            "leak": _ablation_side(sides["leak"]) if sides["leak"] else None,
            "time_ratio": float(np.mean(ratios)) if ratios else None}


def stability_verdict(summary: dict, model: str, baseline: str = "vae") -> dict | None:
    """Is `model` less stable than `baseline` over seeds in the short runs (the hyperparameter draws are the
    sensitivity rule's)? Two tests at STUDY_ALPHA, on the seed runs that diverged or started to learn:
    more failures (Fisher's exact test, one-sided, on the failure counts), or a wider spread of log FD over
    seeds (Brown-Forsythe: Levene's test about the median, where both have 2 started runs or more, and `model`'s
    spread the larger). budget_limited: a side with fewer than 2 such runs (its runs never left the ceiling)."""
    a, b = dynamics_study(summary, model), dynamics_study(summary, baseline)
    if not a or not b:
        return None
    out = {"a": a, "b": b, "cv_ratio": (a["cv"] / b["cv"]) if a["cv"] is not None and b["cv"] else None,
           **_two_tests((a["n_failed"], a["n_runs"], a["log_fd"]), (b["n_failed"], b["n_runs"], b["log_fd"]))}
    out["less_stable"] = out["more_failures"] or out["wider"]
    return out


def _two_tests(a: tuple, b: tuple) -> dict:
    """The study's two tests of side a against side b, each (failed, judged, log FDs of the judged runs that
    trained): more failures (Fisher's exact test, one-sided) and a wider spread of log FD (Brown-Forsythe, where
    both have 2 values or more and a's spread is the larger), at STUDY_ALPHA; budget_limited (no test) when a side
    has fewer than 2 judged runs."""
    (fa, na, la), (fb, nb, lb) = a, b
    out = {"more_failures": False, "wider": False, "p_failures": None, "p_spread": None,
           "budget_limited": na < 2 or nb < 2}
    if not out["budget_limited"]:
        out["p_failures"] = float(sps.fisher_exact([[fa, na - fa], [fb, nb - fb]], alternative="greater").pvalue)
        out["more_failures"] = out["p_failures"] < STUDY_ALPHA
        if len(la) >= 2 and len(lb) >= 2 and (np.ptp(la) > 0 or np.ptp(lb) > 0):
            out["p_spread"] = float(sps.levene(la, lb, center="median").pvalue)
            out["wider"] = out["p_spread"] < STUDY_ALPHA and np.std(la) > np.std(lb)
    return out


def sensitivity_verdict(summary: dict, model: str, baseline: str = "vae") -> dict | None:
    """Is `model` more sensitive to its hyperparameters than `baseline`? The same draws of learning rate, betas
    and batch size for both, judged like the stability rule's seeds: on the draws that diverged or started to
    learn (`started`), two tests at STUDY_ALPHA, more failed draws (Fisher's exact test, one-sided) or a wider
    spread of log FD over the draws (Brown-Forsythe, where both have 2 started draws or more, and `model`'s
    spread the larger). budget_limited: a side with fewer than 2 such draws (its draws never left the noise
    ceiling: they say the budget was too small, not that the model is sensitive)."""
    a, b = dynamics_study(summary, model), dynamics_study(summary, baseline)
    if not a or not b or not a["draws"] or not b["draws"]:
        return None
    floor, ceiling = _reference(summary, "floor"), _reference(summary, "ceiling")

    def side(st):
        judged = [r for r in st["draws"] if r.get("status") != "ok" or started(r, ceiling)]
        return (sum(_failed(r, floor) for r in judged), len(judged),
                [math.log(r["fd"]) for r in judged if r.get("status") == "ok" and r["fd"] > 0])
    sa, sb = side(a), side(b)
    out = {"a": a, "b": b, "n_judged": sa[1], "n_judged_baseline": sb[1], **_two_tests(sa, sb)}
    out["more_sensitive"] = out["more_failures"] or out["wider"]
    return out


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
                       if compare(final[a], final[b], "fd").word == "lower than"],
            "ddim": any(c["sampler"] == "ddim" for c in curves.values()),
            "sampler_steps": next((c["sampler_steps"] for c in curves.values() if c["sampler"] == "ddim"), None)}
