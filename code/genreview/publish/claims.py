"""The claims ledger: the source material's qualitative claims, each tested against this build.

`paper/claims.yaml` writes each claim down once (its words, its sources with the passages of their
texts that make it, the measured quantity that tests it); the rules below turn the summary's numbers
into a verdict:

- the rules that compare two numbers (compare, threshold, detach, ddim) ask the one verdict engine,
  `verdicts.judge`: the effect of a against b (a log ratio or a difference, `summary.inference`), its
  95% bootstrap interval over seeds (FD_inf: seeds, then the samples within
  a seed) and a p-value; the p-values of all these claims are adjusted
  together by Benjamini-Hochberg (the ledger's `alpha`), then: supported / contradicted when the
  adjusted p is below alpha and the interval excludes no difference on the claimed / the other side;
  equivalent when the whole interval lies within the ledger's practical `margin`; inconclusive
  otherwise, with its reason ("one seed": a single seed gives no interval);
- the study rules (stability, sensitivity, collapse, ...) count failed runs, as their sections do;
- not measured: the build lacks a model or number the test needs (a profile that trains fewer
  models), never counted as evidence either way.

Each verdict carries its evidence as the paper prints it: the numbers, the models and the seed
counts, and for an engine verdict the effect with its interval and the adjusted p-value.
`tables.claims.write_claims` stores every verdict in results/<profile>/claims.json and writes the
ledger table and the family comparison table for the paper.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import yaml
from scipy import stats as sps

from ..summary import inference as I
from ..summary.stats import plateau, stat
from .formatting import fmt, pm, sci, times
from .verdicts import (EQUILIBRIUM_TOL, STUDY_ALPHA, beta_study, collapsed, data_key, dynamics_study, equilibrium,
                       judge,
                       probe_metric, sampler_study, sensitivity_verdict, stability_verdict)

VERDICTS = ("supported", "contradicted", "equivalent", "inconclusive", "not measured")
TESTS = ("compare", "threshold", "stability", "sensitivity", "collapse", "no_collapse", "no_divergence",
         "equilibrium", "detach", "ddim", "no_likelihood", "exact_likelihood", "beta_blur", "resolution")
FIELDS = {"id", "claim", "sources", "passages", "topic", "test", "quantity", "a", "b", "expect", "models",
          "baseline", "value", "value_label"}
SOURCE_FIELDS = ("key", "file")  # each source: its BibTeX key and the file of its text (the seeds folder)
PASSAGE = re.compile(r"\s*\d+(\s*-\s*\d+)?(\s*,\s*\d+(\s*-\s*\d+)?)*\s*")


class LedgerError(ValueError):
    pass


def passage_lines(text) -> list[tuple[int, int]]:
    """A passage, the line numbers of a source's file where it makes a claim ("12", "12-14" or "12-14, 30";
    a bare YAML integer is one line) -> its ranges [(first, last), ...]. ValueError if it is not that."""
    text = str(text) if isinstance(text, int) and not isinstance(text, bool) else text
    if not isinstance(text, str) or not PASSAGE.fullmatch(text):
        raise ValueError(f"{text!r} is not line numbers or ranges")
    out = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        lo, hi = int(a), int(b or a)
        if not 1 <= lo <= hi:
            raise ValueError(f"{part.strip()!r} is not a range of lines from the first to the last (1-based)")
        out.append((lo, hi))
    return out


def passage_text(text) -> str:
    """A passage in its one written form: "12-14, 30"."""
    return ", ".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in passage_lines(text))


def load_ledger(path: str | Path) -> dict:
    """Read and check claims.yaml: every source has its BibTeX key and the file of its text; every claim has
    the fields its test needs, known sources and, for each source, the passage (lines of that file) that
    makes the claim, written back in one form ("12-14, 30")."""
    path = Path(path)
    try:
        led = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise LedgerError(f"claims ledger {path} not found: it lives in paper/claims.yaml") from None
    try:
        I.InferenceConfig.from_mapping(led, str(path))
    except ValueError as e:
        raise LedgerError(str(e)) from None
    for key, s in (led.get("sources") or {}).items():
        missing = [f for f in SOURCE_FIELDS if not isinstance(s, dict) or not s.get(f)]
        if missing:
            raise LedgerError(f"{path}: source {key} lacks {', '.join(missing)}: give its BibTeX key and the file "
                              "of its text, e.g. {key: seed_blog, file: 003_c8e1368725abc40c.txt}")
    seen = set()
    for i, c in enumerate(led.get("claims", [])):
        where = f"{path}: claim {i + 1} ({c.get('id', 'no id')})"
        unknown = set(c) - FIELDS
        if unknown:
            raise LedgerError(f"{where}: unknown field(s) {sorted(unknown)}; known: {sorted(FIELDS)}")
        for f in ("id", "claim", "sources", "topic", "test"):
            if f not in c:
                raise LedgerError(f"{where}: missing field '{f}'")
        if c["id"] in seen:
            raise LedgerError(f"{where}: duplicate id '{c['id']}'")
        seen.add(c["id"])
        if c["test"] not in TESTS:
            raise LedgerError(f"{where}: unknown test '{c['test']}'; one of {', '.join(TESTS)}")
        need = {"compare": ("quantity", "a", "b", "expect"), "threshold": ("quantity", "a", "expect", "value"),
                "stability": ("a", "b"), "sensitivity": ("a", "b"), "collapse": ("models", "baseline"),
                "no_collapse": ("models",), "no_divergence": ("models",), "equilibrium": ("a",),
                "detach": ("a",), "ddim": ("a",), "no_likelihood": ("models",),
                "exact_likelihood": ("models",), "beta_blur": ("a",), "resolution": ("a",)}[c["test"]]
        for f in need:
            if f not in c:
                raise LedgerError(f"{where}: test '{c['test']}' needs field '{f}'")
        allowed = {"compare": ("lower", "higher"), "threshold": ("below", "above")}.get(c["test"])
        if allowed and c["expect"] not in allowed:
            raise LedgerError(f"{where}: expect must be one of {allowed}, not '{c['expect']}'")
        if "quantity" in c and c["quantity"] not in I.METRICS:
            raise LedgerError(f"{where}: unknown quantity '{c['quantity']}'; declare it in "
                              f"genreview.summary.inference.METRICS (known: {', '.join(sorted(I.METRICS))})")
        for s in c["sources"]:
            if s not in led.get("sources", {}):
                raise LedgerError(f"{where}: unknown source '{s}'; declare it under 'sources'")
        c["passages"] = _passages(c, where)
    return led


def _passages(c: dict, where: str) -> dict:
    """The claim's passages checked against its sources: one for each source, none for another, each line
    numbers or ranges; returned in the one written form, in the order of the claim's sources."""
    fix = ("give the line numbers of each source's file where it makes the claim, e.g. "
           "passages: {S0: \"41-43\", S4: \"297\"}")
    passages = c.get("passages")
    if passages is None:
        passages = {}
    if not isinstance(passages, dict):
        raise LedgerError(f"{where}: 'passages' must map each source to its lines; {fix}")
    missing = [s for s in c["sources"] if s not in passages]
    if missing:
        raise LedgerError(f"{where}: no passage for source(s) {', '.join(missing)}; {fix}")
    extra = [s for s in passages if s not in c["sources"]]
    if extra:
        raise LedgerError(f"{where}: passage(s) for {', '.join(map(str, extra))}, not among its sources "
                          f"{c['sources']}; add the source or drop the passage")
    out = {}
    for s in c["sources"]:
        try:
            out[s] = passage_text(passages[s])
        except ValueError as e:
            raise LedgerError(f"{where}: passage of {s}: {e}; write line numbers or ranges, "
                              "e.g. \"12\", \"12-14\" or \"12-14, 30\"") from None
    return out


# --------------------------------------------------------------------------- quantities and models

def _unconditional(summary: dict) -> list[str]:
    return [n for n in summary["order"] if summary["models"][n]["n_ok"] > 0
            and not summary["models"][n].get("hparams", {}).get("num_classes")]


def quantity(summary: dict, model: str, q: str) -> dict | None:
    """One model's measured `q` as a seed stat, or None when this build has no such number."""
    if q.startswith("probe:"):
        return probe_metric(summary, model, q.split(":", 1)[1])
    if q.startswith("curve:"):
        # the images seen (or training seconds) to the FD threshold, over the seeds of the curves study; a
        # seed that never reached it has no such number, and the others' alone would flatter the model
        t = (summary.get("curves", {}).get(model) or {}).get("to_threshold") or {}
        st = t.get(q.split(":", 1)[1])
        return st if st and st.get("mean") is not None and not t.get("n_never") else None
    if q.startswith("translation:"):
        t = summary.get("translation", {}).get(model, {}).get("translation", {}).get(q.split(":", 1)[1])
        return t if t and t.get("mean") is not None else None
    m = summary["models"].get(model)
    if not m or m["n_ok"] == 0:
        return None
    if q == "class_kl" and not (m["metrics"].get("class_kl") or {}).get("n"):   # a summary from before per-seed KL
        cov = m.get("class_coverage")
        return {"mean": cov["class_kl"], "std": 0.0, "n": 1, "values": [cov["class_kl"]]} if cov else None
    st = m["metrics"].get(q)
    return st if st and st.get("mean") is not None else None


def lower_is_better(q: str) -> bool:
    return I.metric(q).lower_is_better


def label(q: str) -> str:
    return I.metric(q).label


def family_members(summary: dict, family: str) -> list[str]:
    return [n for n in summary["order"] if summary["models"][n]["family"] == family]


def resolve(summary: dict, sel: str, q: str, other_than: str | None = None) -> str | None:
    """A model selector -> one model name: a name, family:<f> (the best unconditional member by q) or
    `others` (the best unconditional model outside `other_than`'s family)."""
    if sel.startswith("family:") or sel == "others":
        if sel == "others":
            fam = summary["models"][other_than]["family"] if other_than in summary["models"] else None
            pool = [n for n in _unconditional(summary) if summary["models"][n]["family"] != fam]
        else:
            pool = [n for n in _unconditional(summary) if summary["models"][n]["family"] == sel.split(":", 1)[1]]
        scored = [(quantity(summary, n, q)["mean"], n) for n in pool if quantity(summary, n, q)]
        if not scored:
            return None
        return (min(scored) if lower_is_better(q) else max(scored))[1]
    return sel


def _members(summary: dict, sel) -> list[str]:
    names = sel if isinstance(sel, list) else [sel]
    out = []
    for s in names:
        out += family_members(summary, s.split(":", 1)[1]) if s.startswith("family:") else [s]
    return [n for n in out if n in summary["models"] or n in summary.get("dynamics", {})]


def _display(summary: dict, name: str) -> str:
    m = summary["models"].get(name) or summary.get("translation", {}).get(name)
    return m["display"] if m else _tx(name)


def _tx(name: str) -> str:
    """A model name or selector as LaTeX text (model ids hold underscores)."""
    return "\\texttt{" + name.replace("_", "\\_") + "}"


def _seeds(st: dict) -> str:
    return f"{st['n']} seed{'s' if st['n'] != 1 else ''}"


# --------------------------------------------------------------------------- the rules

class Test(dict):
    """What a rule asks the engine (`verdicts.judge`): {"a", "b", "metric", "claimed"}. `evaluate`
    judges every Test of the ledger, adjusts their p-values together and sets the verdicts."""


def at_least(summary: dict, model: str, q: str) -> tuple[dict, int] | None:
    """A curve quantity (time to the FD threshold) over every seed of `model`'s curves, a seed that never reached
    the threshold counted with its whole training: (the stat, a lower bound where seeds never reached it; the
    number of such seeds). None without a curve."""
    t = (summary.get("curves", {}).get(model) or {}).get("to_threshold") or {}
    st = (t.get("at_least") or {}).get(q.split(":", 1)[1])
    return (st, t.get("n_never", 0)) if st and st.get("mean") is not None else None


def rule_compare(summary, c, margin):
    q = c["quantity"]
    a = resolve(summary, c["a"], q)
    b = resolve(summary, c["b"], q, other_than=a) if a else None
    qa, qb = (quantity(summary, a, q) if a else None), (quantity(summary, b, q) if b else None)
    censored = []
    if (not qa or not qb) and q.startswith("curve:") and a and b:
        # a model whose seeds never reached the threshold took at least its whole training: judged on that lower
        # bound, a verdict stands only where it calls that model the slower one (`_censored`)
        la, lb = at_least(summary, a, q), at_least(summary, b, q)
        if la and lb and (la[1] or lb[1]):
            (qa, na), (qb, nb) = la, lb
            censored = [(n, k) for n, k in ((a, na), (b, nb)) if k]
    if not qa or not qb:
        return "not measured", f"needs {label(q)} of {_tx(c['a'])} and {_tx(c['b'])}", {}
    scale, unit = (1e-6, "M") if q == "params" else (1.0, "")
    ev = (f"{label(q)} {pm(qa, scale=scale)}{unit} ({_display(summary, a)}, {_seeds(qa)}) vs.\\ "
          f"{pm(qb, scale=scale)}{unit} ({_display(summary, b)}, {_seeds(qb)})")
    ev += "".join(f"; {_display(summary, n)} never reached the FD threshold in {k} of "
                  f"{(qa if n == a else qb)['n']} seeds, "
                  + ("which count with their" if k > 1 else "which counts with its")
                  + " whole training (a lower bound)" for n, k in censored)
    numbers = {"a": a, "b": b, "a_value": qa, "b_value": qb}
    if censored:
        numbers["censored"] = [n for n, _ in censored]
    return Test(a=qa, b=qb, metric=q, claimed=c["expect"]), ev, numbers


def _censored(summary: dict, row: dict, test: "Test") -> None:
    """A verdict judged on a lower bound (`rule_compare`'s censored curve times) stands only where it calls the
    censored model the slower one, which the bound can only understate; any other verdict (the censored model
    faster, or as fast) is inconclusive, budget-limited: the model did not train long enough to tell."""
    cens = row["numbers"].get("censored")
    if not cens or row["verdict"] not in ("supported", "contradicted", "equivalent"):
        return
    a_higher = (row["verdict"] == "supported") == (test["claimed"] == "higher")
    slower = row["numbers"]["a"] if a_higher else row["numbers"]["b"]
    if row["verdict"] == "equivalent" or set(cens) - {slower}:
        row["verdict"], row["reason"] = "inconclusive", (
            "budget-limited: " + " and ".join(_display(summary, n) for n in cens) + " never reached the FD "
            "threshold in some seeds, so its time is only a lower bound")


def rule_threshold(summary, c, margin):
    q, a = c["quantity"], c["a"]
    qa = quantity(summary, a, q)
    if not qa:
        return "not measured", f"needs {label(q)} of {_tx(a)}", {}
    v = float(c["value"])
    test = Test(a=qa, b=v, metric=q, claimed={"below": "lower", "above": "higher"}[c["expect"]])
    what = c.get("value_label")
    ev = (f"{label(q)} {pm(qa)} ({_display(summary, a)}, {_seeds(qa)}) against {fmt(v)}"
          + (f" ({what})" if what else ""))
    return test, ev, {"a": a, "a_value": qa, "value": v}


def _one_way(claimed: bool, reverse: bool) -> str:
    """A study rule applied both ways round: supported when only the claimed direction holds,
    contradicted when only the reverse does, else inconclusive."""
    return "supported" if claimed and not reverse else "contradicted" if reverse and not claimed else "inconclusive"


def rule_stability(summary, c, margin):
    """Claim: `a` is less stable than `b` over seeds in the short-run study (verdicts.stability_verdict: Fisher's
    exact test on failed seed runs, Brown-Forsythe on the spread of log FD, both ways round)."""
    fwd, back = stability_verdict(summary, c["a"], c["b"]), stability_verdict(summary, c["b"], c["a"])
    if not fwd:
        return "not measured", f"needs the training-dynamics study of {_tx(c['a'])} and {_tx(c['b'])}", {}

    def one(d, name):
        return (f"{_display(summary, name)} {d['n_failed']}/{d['n_runs']} seed runs failed"
                + (f" ({d['never_started']} never started)" if d["never_started"] else ""))
    ev = f"{one(fwd['a'], c['a'])}; {one(fwd['b'], c['b'])} ({fwd['a']['steps']} generator updates)"
    return _study_verdict(fwd, back, "less_stable", ev, "runs")


def _study_verdict(fwd: dict, back: dict, flag: str, ev: str, what: str):
    """A study rule's verdict from its two tests applied both ways round (`fwd`, `back`: `verdicts._two_tests`
    results with the claim's `flag`): the tests' p-values appended to the evidence `ev`; budget-limited when too
    few `what` (runs, draws) left the noise ceiling; the reason of an inconclusive verdict."""
    tests = "; ".join(f"{name} $p = {fmt(fwd[k], 2)}$" for name, k in (("Fisher", "p_failures"),
                                                                      ("Brown--Forsythe", "p_spread"))
                      if fwd[k] is not None)
    ev += f"; {tests}" if tests else ""
    numbers = {flag: fwd[flag], "reverse": back[flag], "p_failures": fwd["p_failures"], "p_spread": fwd["p_spread"]}
    if fwd["budget_limited"]:
        return "inconclusive", ev, {**numbers, "reason": f"budget-limited: too few {what} left the noise ceiling"}
    verdict = _one_way(fwd[flag], back[flag])
    if verdict == "inconclusive":
        numbers["reason"] = "neither test significant" if not back[flag] else "both ways round"
    return verdict, ev, numbers


def rule_sensitivity(summary, c, margin):
    """Claim: `a` is more sensitive to its hyperparameters than `b` (verdicts.sensitivity_verdict: Fisher's exact
    test on failed draws, Brown-Forsythe on the spread of log FD over the draws, both ways round; budget-limited
    when a side has fewer than 2 draws that left the noise ceiling)."""
    fwd, back = sensitivity_verdict(summary, c["a"], c["b"]), sensitivity_verdict(summary, c["b"], c["a"])
    if not fwd:
        return "not measured", f"needs hyperparameter draws of {_tx(c['a'])} and {_tx(c['b'])}", {}

    def one(d, name, judged):
        rng = fmt(d["draw_range"], 2) if d["draw_range"] is not None else "n/a"
        return (f"{_display(summary, name)} {d['n_draws_failed']}/{len(d['draws'])} draws failed, "
                f"{judged} left the noise ceiling or diverged, FD range {rng}")
    ev = (f"{one(fwd['a'], c['a'], fwd['n_judged'])}; {one(fwd['b'], c['b'], fwd['n_judged_baseline'])} "
          f"(range relative to the median)")
    return _study_verdict(fwd, back, "more_sensitive", ev, "draws")


def collapse_counts(summary: dict, names: list[str]) -> tuple[int, int]:
    """(collapsed, runs) over the main runs (each seed's precision and coverage) and the seed runs of the
    dynamics study, by `verdicts.collapsed`: samples that look real but cover little of the data."""
    floor = (summary.get("reference") or {}).get("floor")
    bad = total = 0
    for n in names:
        m = summary["models"].get(n)
        if m:
            prec, cov = (m["metrics"].get(k, {}).get("values") or [] for k in ("precision", "coverage"))
            for p, c in zip(prec, cov):
                flag = collapsed({"precision": p, "coverage": c}, floor)
                if flag is not None:
                    total += 1
                    bad += flag
        for r in summary.get("dynamics", {}).get(n, {}).get("runs", []):
            flag = collapsed(r, floor) if r.get("status") == "ok" and r.get("kind") == "seed" else None
            if flag is not None:
                total += 1
                bad += flag
    return bad, total


MIN_RUNS = 3  # runs a collapse rule needs on each side before it says more than inconclusive


def rule_collapse(summary, c, margin):
    """Claim: `models` collapse more often than `baseline` (Fisher's exact test, one-sided, at STUDY_ALPHA)."""
    names, base = _members(summary, c["models"]), _members(summary, c["baseline"])
    (bad, tot), (bbad, btot) = collapse_counts(summary, names), collapse_counts(summary, base)
    if not tot or not btot:
        return "not measured", "needs precision and coverage of the models and the baseline", {}
    p = float(sps.fisher_exact([[bad, tot - bad], [bbad, btot - bbad]], alternative="greater").pvalue)
    ev = (f"{bad} of {tot} runs of {', '.join(_display(summary, n) for n in names)} collapsed vs.\\ "
          f"{bbad} of {btot} of {', '.join(_display(summary, n) for n in base)}; Fisher $p = {fmt(p, 2)}$")
    numbers = {"collapsed": bad, "runs": tot, "baseline_collapsed": bbad, "baseline_runs": btot, "p": p}
    if min(tot, btot) < MIN_RUNS:
        return "inconclusive", ev, {**numbers, "reason": f"fewer than {MIN_RUNS} runs"}
    if p < STUDY_ALPHA:
        return "supported", ev, numbers
    if bad == 0:
        return "contradicted", ev, numbers
    return "inconclusive", ev, {**numbers, "reason": "Fisher's test not significant"}


def rule_no_collapse(summary, c, margin):
    names = _members(summary, c["models"])
    bad, tot = collapse_counts(summary, names)
    if not tot:
        return "not measured", "needs precision and coverage", {}
    ev = f"{bad} of {tot} runs of {', '.join(_display(summary, n) for n in names)} collapsed"
    if bad:
        return "contradicted", ev, {}
    if tot < MIN_RUNS:
        return "inconclusive", ev, {"reason": f"fewer than {MIN_RUNS} runs"}
    return "supported", ev, {}


def rule_no_divergence(summary, c, margin):
    names = [n for n in _members(summary, c["models"]) if n in summary["models"]]
    if not names:
        return "not measured", "needs the models", {}
    div = sum(len(summary["models"][n]["diverged"]) for n in names)
    tot = sum(summary["models"][n]["n_seeds"] for n in names)
    return ("supported" if div == 0 else "contradicted",
            f"{div} of {tot} runs of {', '.join(_display(summary, n) for n in names)} diverged", {})


def rule_equilibrium(summary, c, margin):
    """Claim: training struggles to reach the equilibrium D(x) = 1/2: supported when the main run's D ends
    away from one half (beyond EQUILIBRIUM_TOL on real or fake images), contradicted when it ends there."""
    e = equilibrium(summary, c["a"])
    if not e:
        return "not measured", f"needs {_tx(c['a'])}'s discriminator outputs", {}
    ev = (f"{_display(summary, c['a'])}'s D ends at {fmt(e['d_real'], 2)} on real and {fmt(e['d_fake'], 2)} "
          f"on fake images (equilibrium: one half, tolerance {fmt(EQUILIBRIUM_TOL, 1)})")
    return ("contradicted" if e["at_equilibrium"] else "supported"), ev, e


def rule_detach(summary, c, margin):
    """Essential = without .detach(), in the loop where it matters (G's gradients not cleared before G's step,
    the ablation's "leak" runs), the runs end with a higher FD than the seed runs with it, by the engine over
    the seeds of both; every leak run diverging while the runs with the detach trained also supports it. The
    evidence also gives our loop's case (gradients cleared: the same updates, only the cost of a step grows).
    Without leak runs (an older build), the "without" runs stand in."""
    d = (dynamics_study(summary, c["a"]) or {}).get("detach")
    if not d:
        return "not measured", f"needs the detach ablation of {_tx(c['a'])}", {}
    w, wo, leak = d["with"], d["without"], d.get("leak")
    test_side = leak or wo
    cost = (f"; in our loop, which clears G's gradients, a step without it costs {times(d['time_ratio'], 'as much')}"
            f" for the same updates (FD {fmt(wo['fd']['mean'])} vs.\\ {fmt(w['fd']['mean'])})"
            if leak and d["time_ratio"] is not None and wo["fd"]["n"] else "")
    cos = (f", G's update at cosine {fmt(leak['g_update_cos'], 2)} to its own gradient"
           if leak and leak.get("g_update_cos") is not None else "")
    what = "without the detach in a loop that keeps G's gradients" if leak else "without the detach"
    numbers = {"fd_with": w["fd"]["mean"], "fd_without": test_side["fd"]["mean"], "time_ratio": d["time_ratio"],
               "leak": leak is not None, "g_update_cos": (leak or {}).get("g_update_cos"), "short_runs": c["a"]}
    if test_side["n"] and test_side["n_diverged"] == test_side["n"] and w["fd"]["n"]:
        return "supported", (f"every one of {test_side['n']} runs {what} diverged; FD {fmt(w['fd']['mean'])} with "
                             f"it ({w['fd']['n']} seeds){cost}"), numbers
    if not test_side["fd"]["n"] or not w["fd"]["n"]:
        return "not measured", "a run of the ablation did not finish", {}
    ev = (f"FD {fmt(test_side['fd']['mean'])} {what}{cos} vs.\\ {fmt(w['fd']['mean'])} with it "
          f"({_seeds(test_side['fd'])} vs.\\ {_seeds(w['fd'])}, {w['runs'][0].get('steps', '')} steps){cost}")
    return Test(a=test_side["fd"], b=w["fd"], metric="fd", claimed="higher"), ev, numbers


def rule_beta_blur(summary, c, margin):
    """Claim: the VAE's blur comes from the trade-off between reconstruction and regularisation. Test: over the
    KL-weight runs of the dynamics study (`verdicts.beta_study`), blur at the largest weight is higher than at
    the smallest (the engine, over the seeds of both); the evidence lists blur at every weight. Runs at the main
    runs' budget are judged like a quality claim, budget-limited while the model's main runs still improve
    (`_budget`); shorter ones like the short runs (`_short_budget`)."""
    st = beta_study(summary, c["a"])
    if not st:
        return "not measured", (f"needs {_tx(c['a'])}'s runs at other KL weights "
                                f"({_tx('dynamics.beta_models')})"), {}
    rows = [r for r in st["rows"] if r["blur"]["n"] and not r["configured"]]
    if len(rows) < 2:
        return "not measured", "fewer than two KL weights have scored runs", {}
    lo, hi = rows[0], rows[-1]
    listed = [r for r in st["rows"] if r["blur"]["n"]]
    budget = "the main runs' budget" if st["main_budget"] else "short runs"
    ev = ("blur " + ", ".join(f"{fmt(r['blur']['mean'], 2)} at $\\beta = {fmt(r['beta'], 2)}$"
                              + (" (the main runs)" if r["source"] == "main runs" else "") for r in listed)
          + f" ({_seeds(hi['blur'])} per weight, {st['steps']} updates each, {budget})")
    numbers = {"beta_low": lo["beta"], "beta_high": hi["beta"], "blur_low": lo["blur"]["mean"],
               "blur_high": hi["blur"]["mean"], "main_budget": st["main_budget"]}
    numbers.update({"a": c["a"]} if st["main_budget"] else {"short_runs": c["a"]})
    return Test(a=hi["blur"], b=lo["blur"], metric="blur", claimed="higher"), ev, numbers


def rule_resolution(summary, c, margin):
    """Claim: `a`'s sampling is expensive for large images, hard to scale in resolution. Test: from the
    evaluation's resolution study (`evaluate.resolution_study`), the slope of log sampling time against log pixel
    count is higher than that of one parallel pass of the same network (what a one-shot decoder of it pays), by
    the engine over the study's timing repeats of one trained model."""
    m = summary["models"].get(c["a"]) or {}
    r = m.get("resolution")
    if not r:
        return "not measured", f"needs {_tx(c['a'])}'s resolution study (a model that samples at any size)", {}
    a, b = stat(r["sample_slope"]), stat(r["pass_slope"])
    sizes = ", ".join(f"{h}$\\times${w}" for _, h, w in r["sizes"])
    ev = (f"sampling time grows as (pixels)$^{{{fmt(a['mean'], 2)}}}$ against (pixels)$^{{{fmt(b['mean'], 2)}}}$ for "
          f"one parallel pass of the same network, at {sizes} ({len(r['sample_slope'])} timing repeats of one "
          f"trained model); a sample takes {r['sequential_steps'][-1]} sequential network steps at full size")
    return (Test(a=a, b=b, metric="resolution_slope", claimed="higher"), ev,
            {"sample_slope": a["mean"], "pass_slope": b["mean"]})


def rule_ddim(summary, c, margin):
    """Claim (the source's): DDIM samples faster than DDPM. Against the longest ancestral (DDPM) chain of the
    sweep, the DDIM point with fewer steps and the lowest FD (the best quality DDIM offers at a saving), in
    milliseconds per image; the quality each gives is in the evidence (how little quality the fewer steps
    cost is Song et al.'s claim, which the diffusion section discusses)."""
    st = sampler_study(summary, c["a"])
    if not st:
        return "not measured", f"needs the sampler sweep of {_tx(c['a'])}", {}
    chain = st["ancestral"][-1] if st["ancestral"] else None
    shorter = [p for p in st["ddim"] if chain and p["steps"] < chain["steps"] and p["fd"].get("mean") is not None]
    if chain is None or not shorter:
        return "not measured", "needs an ancestral chain and a DDIM point with fewer steps in the sweep", {}
    few = min(shorter, key=lambda p: p["fd"]["mean"])
    a, b = few["ms_per_image"], chain["ms_per_image"]
    ev = (f"DDIM at {few['steps']} steps {fmt(a['mean'])}\\,ms per image (FD {fmt(few['fd']['mean'])}) vs.\\ the "
          f"sweep's longest ancestral chain, {chain['steps']} steps, "
          f"{fmt(b['mean'])}\\,ms (FD {fmt(chain['fd']['mean'])}), {_seeds(a)}")
    return (Test(a=a, b=b, metric="sample_ms_per_image", claimed="lower"), ev,
            {"steps": few["steps"], "chain_steps": chain["steps"]})


def rule_exact_likelihood(summary, c, margin):
    """Claim: the models compute an image's likelihood exactly: supported when every one declares an exact
    log-likelihood (`GenerativeModel.likelihood`) and the build measured its bits/dim."""
    names = [n for n in _members(summary, c["models"]) if n in summary["models"]]
    if not names:
        return "not measured", "needs the models", {}
    exact = [n for n in names if summary["models"][n]["likelihood"] == "exact" and quantity(summary, n, "bpd")]
    ev = ", ".join(f"{_display(summary, n)}: {summary['models'][n]['likelihood']} likelihood"
                   + (f", {pm(quantity(summary, n, 'bpd'))} bits/dim" if quantity(summary, n, "bpd") else "")
                   for n in names)
    return ("supported" if len(exact) == len(names) else "contradicted"), ev, {}


def rule_no_likelihood(summary, c, margin):
    names = [n for n in _members(summary, c["models"]) if n in summary["models"]]
    if not names:
        return "not measured", "needs the models", {}
    with_bpd = [n for n in summary["order"] if quantity(summary, n, "bpd")]
    gan_bpd = [n for n in names if summary["models"][n]["likelihood"] != "none" or n in with_bpd]
    ev = (f"bits/dim measured for {len(with_bpd)} models, none of them among "
          f"{', '.join(_display(summary, n) for n in names)}") if not gan_bpd else \
        f"bits/dim measured for {', '.join(_display(summary, n) for n in gan_bpd)}"
    return ("supported" if not gan_bpd else "contradicted"), ev, {}


RULES = {name: globals()[f"rule_{name}"] for name in TESTS}


def evaluate(summary: dict, ledger: dict) -> dict:
    """Every claim's verdict with its evidence; counts of each verdict.

    The claims the engine tests (their rule returns a `Test`) are judged twice: once for their raw
    p-values, which Benjamini-Hochberg adjusts together (`inference.bh_adjust`, the family being this
    ledger's engine tests), and once with the adjusted p-value, which decides the verdict."""
    cfg = I.InferenceConfig.from_mapping(ledger, "paper/claims.yaml")
    rows, tests = [], {}
    for c in ledger["claims"]:
        verdict, evidence, numbers = RULES[c["test"]](summary, c, cfg.margin)
        if isinstance(verdict, Test):
            tests[c["id"]] = verdict
        reason = numbers.pop("reason", None)  # a study rule's reason for an inconclusive verdict
        rows.append({"id": c["id"], "claim": c["claim"], "sources": c["sources"],
                     "passages": dict(c.get("passages") or {}), "topic": c["topic"],
                     "test": c["test"], "quantity": label(c["quantity"]) if "quantity" in c else c["test"],
                     "verdict": verdict, "evidence": evidence, "numbers": _plain(numbers), "reason": reason,
                     "matched": None})
    first = {k: judge(**t, cfg=cfg) for k, t in tests.items()}
    family = [k for k, j in first.items() if j.effect.p is not None]
    adjusted = dict(zip(family, I.bh_adjust(first[k].effect.p for k in family)))
    for r in rows:
        if r["id"] not in tests:
            continue
        j = judge(**tests[r["id"]], cfg=cfg, p_adj=adjusted.get(r["id"]))
        e = j.effect
        r.update(verdict=j.kind, reason=j.reason, seeds=[e.n_a, e.n_b], p=e.p, p_adj=adjusted.get(r["id"]),
                 effect={"scale": e.scale, "estimate": e.estimate, "lo": e.lo, "hi": e.hi, "text": j.estimate},
                 evidence=r["evidence"] + "; " + (f"{j.estimate}, adjusted $p {_p(j.p_adj)}$"
                                                   if e.lo is not None else "one seed: no interval"))
        if r["topic"] == "quality":
            _matched(summary, r, tests[r["id"]], cfg)
            _judges(summary, r, tests[r["id"]], cfg)
        _censored(summary, r, tests[r["id"]])
        if r["topic"] in ("quality", "diversity"):   # what the samples are like: asked of models still improving too
            _budget(summary, r, cfg.plateau_gain)
        _short_budget(summary, r, cfg.plateau_gain)
    counts = {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}
    for r in rows:
        r["why"] = why(r["reason"]) if r["verdict"] == "inconclusive" else None
    one_seed = sum(r["reason"] == "one seed" for r in rows)
    budget = sum(str(r["reason"]).startswith("budget-limited") for r in rows)
    judge_dependent = sum(str(r["reason"]).startswith("judge-dependent") for r in rows)
    by_data = {data_key(t["a"], t["b"], t["metric"]): adjusted[k] for k, t in tests.items() if k in adjusted}
    return {"profile": summary["profile"], "margin": cfg.margin, "alpha": cfg.alpha, "level": cfg.level,
            "n_boot": cfg.n_boot, "seed": cfg.seed, "adjusted": by_data,
            "n_tests": len(family), "claims": rows, "counts": counts, "one_seed": one_seed,
            "budget_limited": budget, "plateau_gain": cfg.plateau_gain, "judge_dependent": judge_dependent,
            "judge_agreement": judge_agreement(summary),
            "sources": ledger["sources"], "by_id": {r["id"]: r for r in rows}}


# What keeps an inconclusive verdict open, in the order the paper lists them (`why`).
WHY = ("one seed", "budget-limited", "judge-dependent", "too few runs", "not significant")


def why(reason: str | None) -> str:
    """The kind of an inconclusive verdict's reason (one of WHY): a single seed, a model still improving, judges
    that disagree, too few runs for a study's test, or an interval or test that cannot exclude no difference."""
    r = str(reason or "")
    for kind in WHY[:3]:
        if r.startswith(kind):
            return kind
    return "too few runs" if r.startswith("fewer than") else "not significant"


def convergence(summary: dict, model: str, gain: float) -> dict | None:
    """Whether `model`'s training curve (its weight snapshots' FD, mean over seeds, `curves` in the summary)
    levelled off over its last doubling of compute (`stats.plateau`); None without a curve."""
    curve = summary.get("curves", {}).get(model)
    return plateau(curve["rows"], gain) if curve else None


def _budget(summary: dict, row: dict, gain: float) -> None:
    """A quality or diversity verdict on a model still improving is budget-limited: a verdict other than
    inconclusive becomes inconclusive with that reason, naming the model and its fall; where a model has no curve the
    evidence says that its convergence was not checked."""
    names = [row["numbers"].get(k) for k in ("a", "b") if row["numbers"].get(k)]
    checked = {n: convergence(summary, n, gain) for n in names}
    row["convergence"] = {n: c for n, c in checked.items()}
    still = [(n, c) for n, c in checked.items() if c and not c["plateaued"]]
    unchecked = [n for n, c in checked.items() if c is None]
    if still and row["verdict"] in ("supported", "contradicted", "equivalent"):
        n, c = max(still, key=lambda t: t[1]["fall"])
        row["verdict"], row["reason"] = "inconclusive", (
            f"budget-limited: {_display(summary, n)}'s FD still fell {100 * c['fall']:.0f}\\% over its last "
            f"doubling of training")
    if unchecked:
        row["evidence"] += "; convergence not checked for " + ", ".join(_display(summary, n) for n in unchecked)


def short_run_convergence(summary: dict, model: str, gain: float) -> dict | None:
    """Whether `model`'s short runs (the dynamics study's seed runs) had levelled off: their KID (unbiased at any
    N, so the short runs' N and the curve's need not match) against the last weight snapshot of the model's main
    runs, which trained on many more images. fall: the relative fall from the short runs' mean KID to the main
    runs'; plateaued: the fall is below `gain` (the plateau rule's gain, over much more than one doubling of
    training). None without scored seed runs, a curve, or KID on either side."""
    runs = [r for r in (summary.get("dynamics", {}).get(model) or {}).get("runs", [])
            if r["kind"] == "seed" and r.get("status") == "ok" and r.get("kid") is not None]
    rows = ((summary.get("curves") or {}).get(model) or {}).get("rows") or []
    last = rows[-1] if rows else {}
    kid, images = (last.get(k) for k in ("kid", "images"))
    kid, images = (v.get("mean") if isinstance(v, dict) else v for v in (kid, images))
    if not runs or kid is None or not math.isfinite(float(kid)):
        return None
    short = sum(r["kid"] for r in runs) / len(runs)
    short_images = sum(r.get("images_seen") or 0 for r in runs) / len(runs)
    fall = (short - float(kid)) / abs(short) if short else 0.0
    return {"fall": fall, "plateaued": fall < gain, "short_kid": short, "main_kid": float(kid),
            "short_images": short_images, "main_images": images, "n_runs": len(runs)}


def _short_budget(summary: dict, row: dict, gain: float) -> None:
    """A verdict read from short runs (`numbers["short_runs"]` names the model) is budget-limited when the model's
    main runs, with more training, reach a KID lower by `gain` or more: the short runs had not converged, so a
    difference or its absence between them says little about trained models. Where the model has no curve to
    check against, the evidence says so."""
    model = row["numbers"].get("short_runs")
    if not model:
        return
    c = short_run_convergence(summary, model, gain)
    row["short_run_convergence"] = c
    if c is None:
        row["evidence"] += f"; convergence of the short runs not checked ({_display(summary, model)} has no curve)"
        return
    if not c["plateaued"] and row["verdict"] in ("supported", "contradicted", "equivalent"):
        more = (f" with {times(c['main_images'] / c['short_images'])} the images"
                if c["short_images"] and c["main_images"] else "")
        row["verdict"], row["reason"] = "inconclusive", (
            f"budget-limited: {_display(summary, model)}'s short runs reach KID {fmt(c['short_kid'], 3)}, its main "
            f"runs {fmt(c['main_kid'], 3)}{more}")


# Quality quantities whose better direction is KID's: a claim on one of them is also judged along the training
# curves, by KID (unbiased at any N; the curves score every snapshot at one N).
ALONG_COMPUTE = ("fd", "fd_inf", "kid")


def curve_points(summary: dict, model: str, key: str = "kid") -> list[tuple[float, dict]]:
    """(training FLOPs, `key` over seeds) at each of `model`'s weight snapshots: the snapshot's step times the
    run's FLOPs per step (`flops.train_flops`, averaged over a two-stage model's phases); [] without a curve or
    without a FLOP count."""
    curve = (summary.get("curves") or {}).get(model)
    fps = ((summary["models"].get(model) or {}).get("metrics", {}).get("flops_per_step") or {}).get("mean")
    if not curve or not fps:
        return []
    return [(r["step"] * fps, r[key]) for r in curve["rows"] if (r.get(key) or {}).get("mean") is not None]


def _at(points: list[tuple[float, dict]], compute: float) -> dict | None:
    """The model's `key` as of `compute`: its latest snapshot at or below it."""
    done = [v for c, v in points if c <= compute * (1 + 1e-9)]
    return done[-1] if done else None


def along_compute(summary: dict, test: "Test", names: tuple[str, str], cfg: I.InferenceConfig) -> dict | None:
    """The claim judged by the engine on KID at matched training compute: at every snapshot's compute that both
    models reached (each model as of its latest snapshot by then), with the verdict at the largest such compute
    ("at") and, where the verdict changes along the way, the compute from which it holds ("flip_at"). None
    when a model lacks a curve or a FLOP count, or their curves share no compute."""
    pa, pb = curve_points(summary, names[0]), curve_points(summary, names[1])
    if not pa or not pb:
        return None
    lo, hi = max(pa[0][0], pb[0][0]), min(pa[-1][0], pb[-1][0])
    grid = sorted({c for c, _ in pa + pb if lo <= c <= hi})
    points = []
    for c in grid:
        j = judge(_at(pa, c), _at(pb, c), "kid", claimed=test["claimed"], cfg=cfg)
        points.append({"compute": c, "kind": j.kind, "estimate": j.estimate, "reason": j.reason})
    if not points:
        return None
    final = points[-1]["kind"]
    flip = None
    if any(p["kind"] != final for p in points):
        i = max(k for k, p in enumerate(points) if p["kind"] != final) + 1
        flip = points[i]["compute"]
    return {"measure": "training FLOPs", "points": points, "at": points[-1]["compute"], "kind_at": final,
            "flip_at": flip}


def _matched(summary: dict, row: dict, test: "Test", cfg: I.InferenceConfig) -> None:
    """Adds the judgement at matched compute to a quality row (see `along_compute`)."""
    a, b = row["numbers"].get("a"), row["numbers"].get("b")
    if not a or not b or test["metric"] not in ALONG_COMPUTE:
        return
    m = along_compute(summary, test, (a, b), cfg)
    row["matched"] = m
    if m:
        row["evidence"] += (f"; at matched compute ({sci(m['at'])} training FLOPs, KID): {m['kind_at']}"
                            + (f", from {sci(m['flip_at'])} FLOPs on" if m["flip_at"] else ""))


JUDGED = ("fd", "fd_inf", "kid", "precision", "recall", "density", "coverage")  # what every judge scores


def judge_stats(summary: dict, model: str, metric: str) -> dict[str, dict]:
    """judge -> `model`'s `metric` over seeds in that judge's features (the judges of sample quality,
    `evaluation.judges`), for the judges other than the domain classifier that measured it."""
    js = ((summary.get("judges") or {}).get(model) or {}).get("judges") or {}
    out = {j: v[metric] for j, v in js.items() if j != "domain" and (v.get(metric) or {}).get("mean") is not None}
    inception = inception_fd(summary, model) if metric in ("fd", "fd_inf") else None
    if inception:
        out[INCEPTION] = inception
    return out


INCEPTION = "inception"  # the fourth judge: standard Inception FID, where eval.inception_weights gives its weights


def inception_fd(summary: dict, model: str) -> dict | None:
    """`model`'s Inception FID over seeds (the main evaluation's, with eval.inception_weights), as the fourth
    judge's word on FD and FD_inf claims: FD at the evaluation's N, which every model shares (eval.n_samples;
    a model sampled at another N is left out rather than compared at unequal N). None without it."""
    m = (summary.get("models") or {}).get(model) or {}
    st = (m.get("metrics") or {}).get("fid_inception")
    n = ((m.get("metrics") or {}).get("n") or {}).get("mean")
    if not st or st.get("mean") is None or n is None or n != (summary.get("eval") or {}).get("n_samples", n):
        return None
    return st


def _judges(summary: dict, row: dict, test: "Test", cfg: I.InferenceConfig) -> None:
    """A quality verdict holds only where every judge of sample quality agrees: each other judge's verdict on the
    same claim (the engine on the same metric in its features, its own p-value) goes into the row; a supported or
    contradicted verdict that another judge does not share becomes inconclusive, "judge-dependent"."""
    a, b = row["numbers"].get("a"), row["numbers"].get("b")
    if not a or not b or test["metric"] not in JUDGED:
        return
    sa, sb = judge_stats(summary, a, test["metric"]), judge_stats(summary, b, test["metric"])
    views = {j: judge(sa[j], sb[j], test["metric"], claimed=test["claimed"], cfg=cfg) for j in sa if j in sb}
    if not views:
        return
    row["judges"] = {j: {"kind": v.kind, "estimate": v.estimate} for j, v in views.items()}
    row["evidence"] += "; other judges: " + ", ".join(f"{j} {v.kind} ({v.estimate})" for j, v in views.items())
    differ = [j for j, v in views.items() if v.kind != row["verdict"]]
    if differ and row["verdict"] in ("supported", "contradicted"):
        row["verdict"], row["reason"] = "inconclusive", "judge-dependent: " + ", ".join(
            f"{j} {views[j].kind}" for j in differ)


def judge_agreement(summary: dict, metric: str = "fd") -> dict | None:
    """Spearman's rank correlation between every two judges of sample quality over the models they all scored
    (`metric`'s mean over seeds; the domain judge's from the main evaluation): how far the ranking of the models
    depends on the judge. None with fewer than two judges or three models."""
    js = summary.get("judges") or {}
    names = sorted({j for m in js.values() for j in (m.get("judges") or {})})

    def value(m, j):
        if j == INCEPTION:
            return (inception_fd(summary, m) or {}).get("mean") if metric in ("fd", "fd_inf") else None
        return ((js[m]["judges"].get(j) or {}).get(metric) or {}).get("mean")
    if js and any(inception_fd(summary, m) for m in js):
        names.append(INCEPTION)
    models = [m for m in summary["order"] if m in js and all(value(m, j) is not None for j in names)]
    if len(names) < 2 or len(models) < 3:
        return None
    vals = {j: [value(m, j) for m in models] for j in names}
    pairs = {f"{x}-{y}": float(sps.spearmanr(vals[x], vals[y]).statistic)
             for i, x in enumerate(names) for y in names[i + 1:]}
    return {"metric": metric, "n_models": len(models), "judges": names, "spearman": pairs}


def _p(p: float) -> str:
    """'= 0.012' or '< 0.001': an adjusted p-value as the ledger prints it."""
    return f"= {fmt(p, 2)}" if p >= 0.001 else "< 0.001"


def _plain(x):
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items() if not isinstance(v, (list, tuple)) or k == "values"}
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
