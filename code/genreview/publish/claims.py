"""The claims ledger: the source material's qualitative claims, each tested against this build.

`paper/claims.yaml` writes each claim down once (its words, its sources, the measured quantity
that tests it); the rules below turn the summary's numbers into a verdict:

- the rules that compare two numbers (compare, threshold, detach, ddim) ask the one verdict engine,
  `verdicts.judge`: the effect of a against b (a log ratio or a difference, `summary.inference`), its
  95% bootstrap interval over seeds and a p-value; the p-values of all these claims are adjusted
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
from pathlib import Path

import yaml

from ..summary import inference as I
from ..summary.stats import stat
from .formatting import fmt, pm, times
from .verdicts import (EQUILIBRIUM_TOL, SMALL_LOSS, dynamics_study, equilibrium, judge, probe_metric,
                       sampler_study, sensitivity_verdict, stability_verdict)

VERDICTS = ("supported", "contradicted", "equivalent", "inconclusive", "not measured")
TESTS = ("compare", "threshold", "stability", "sensitivity", "collapse", "no_collapse", "no_divergence",
         "equilibrium", "detach", "ddim", "no_likelihood")
FIELDS = {"id", "claim", "sources", "topic", "test", "quantity", "a", "b", "expect", "models", "baseline",
          "value", "value_label"}


class LedgerError(ValueError):
    pass


def load_ledger(path: str | Path) -> dict:
    """Read and check claims.yaml: every claim has the fields its test needs and known sources."""
    path = Path(path)
    try:
        led = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise LedgerError(f"claims ledger {path} not found: it lives in paper/claims.yaml") from None
    try:
        I.InferenceConfig.from_mapping(led, str(path))
    except ValueError as e:
        raise LedgerError(str(e)) from None
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
                "detach": ("a",), "ddim": ("a",), "no_likelihood": ("models",)}[c["test"]]
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
    return led


# --------------------------------------------------------------------------- quantities and models

def _unconditional(summary: dict) -> list[str]:
    return [n for n in summary["order"] if summary["models"][n]["n_ok"] > 0
            and not summary["models"][n].get("hparams", {}).get("num_classes")]


def quantity(summary: dict, model: str, q: str) -> dict | None:
    """One model's measured `q` as a seed stat, or None when this build has no such number."""
    if q.startswith("probe:"):
        return probe_metric(summary, model, q.split(":", 1)[1])
    if q.startswith("translation:"):
        t = summary.get("translation", {}).get(model, {}).get("translation", {}).get(q.split(":", 1)[1])
        return t if t and t.get("mean") is not None else None
    m = summary["models"].get(model)
    if not m or m["n_ok"] == 0:
        return None
    if q == "class_kl":
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


def rule_compare(summary, c, margin):
    q = c["quantity"]
    a = resolve(summary, c["a"], q)
    b = resolve(summary, c["b"], q, other_than=a) if a else None
    qa, qb = (quantity(summary, a, q) if a else None), (quantity(summary, b, q) if b else None)
    if not qa or not qb:
        return "not measured", f"needs {label(q)} of {_tx(c['a'])} and {_tx(c['b'])}", {}
    scale, unit = (1e-6, "M") if q == "params" else (1.0, "")
    ev = (f"{label(q)} {pm(qa, scale=scale)}{unit} ({_display(summary, a)}, {_seeds(qa)}) vs.\\ "
          f"{pm(qb, scale=scale)}{unit} ({_display(summary, b)}, {_seeds(qb)})")
    return Test(a=qa, b=qb, metric=q, claimed=c["expect"]), ev, {"a": a, "b": b, "a_value": qa, "b_value": qb}


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
    """Claim: `a` is less stable than `b` in the short-run study (verdicts.stability_verdict)."""
    fwd, back = stability_verdict(summary, c["a"], c["b"]), stability_verdict(summary, c["b"], c["a"])
    if not fwd:
        return "not measured", f"needs the training-dynamics study of {_tx(c['a'])} and {_tx(c['b'])}", {}
    verdict = _one_way(fwd["less_stable"], back["less_stable"])

    def one(d, name):
        cv = fmt(d["cv"], 2) if d["cv"] is not None else "n/a"
        return f"{_display(summary, name)} {d['n_failed']}/{d['n_runs']} runs failed, seed CV of FD {cv}"
    ev = f"{one(fwd['a'], c['a'])}; {one(fwd['b'], c['b'])} ({fwd['a']['fd']['n']} seeds, {fwd['a']['steps']} steps)"
    return verdict, ev, {"less_stable": fwd["less_stable"], "reverse": back["less_stable"]}


def rule_sensitivity(summary, c, margin):
    fwd, back = sensitivity_verdict(summary, c["a"], c["b"]), sensitivity_verdict(summary, c["b"], c["a"])
    if not fwd:
        return "not measured", f"needs hyperparameter draws of {_tx(c['a'])} and {_tx(c['b'])}", {}
    verdict = _one_way(fwd["more_sensitive"], back["more_sensitive"])

    def one(d, name):
        rng = fmt(d["draw_range"], 2) if d["draw_range"] is not None else "n/a"
        return f"{_display(summary, name)} {d['n_draws_failed']}/{len(d['draws'])} draws failed, FD range {rng}"
    return verdict, f"{one(fwd['a'], c['a'])}; {one(fwd['b'], c['b'])} (relative to the median)", {}


def collapse_counts(summary: dict, names: list[str]) -> tuple[int, int]:
    """(collapsed, runs) over the main runs (fewer than half of the classes covered) and the short
    runs of the dynamics study (their `collapsed` flag)."""
    frac = summary.get("dynamics_config", {}).get("collapse_classes", 0.5)
    bad = total = 0
    for n in names:
        m = summary["models"].get(n)
        if m and m.get("class_coverage"):
            cov = m["class_coverage"]
            total += 1
            bad += cov["classes_covered"] < frac * cov["n_classes"]
        for r in summary.get("dynamics", {}).get(n, {}).get("runs", []):
            if r.get("status") == "ok" and r.get("kind") in ("seed", "draw"):
                total += 1
                bad += bool(r.get("collapsed"))
    return bad, total


def rule_collapse(summary, c, margin):
    names, base = _members(summary, c["models"]), _members(summary, c["baseline"])
    (bad, tot), (bbad, btot) = collapse_counts(summary, names), collapse_counts(summary, base)
    if not tot or not btot:
        return "not measured", "needs class coverage of the models and the baseline", {}
    rate, brate = bad / tot, bbad / btot
    verdict = "supported" if rate > brate else "contradicted" if bad == 0 else "inconclusive"
    ev = (f"{bad} of {tot} runs of {', '.join(_display(summary, n) for n in names)} collapsed vs.\\ "
          f"{bbad} of {btot} of {', '.join(_display(summary, n) for n in base)}")
    return verdict, ev, {"collapsed": bad, "runs": tot, "baseline_collapsed": bbad, "baseline_runs": btot}


def rule_no_collapse(summary, c, margin):
    names = _members(summary, c["models"])
    bad, tot = collapse_counts(summary, names)
    if not tot:
        return "not measured", "needs class coverage", {}
    return ("supported" if bad == 0 else "contradicted",
            f"{bad} of {tot} runs of {', '.join(_display(summary, n) for n in names)} collapsed", {})


def rule_no_divergence(summary, c, margin):
    names = [n for n in _members(summary, c["models"]) if n in summary["models"]]
    if not names:
        return "not measured", "needs the models", {}
    div = sum(len(summary["models"][n]["diverged"]) for n in names)
    tot = sum(summary["models"][n]["n_seeds"] for n in names)
    return ("supported" if div == 0 else "contradicted",
            f"{div} of {tot} runs of {', '.join(_display(summary, n) for n in names)} diverged", {})


def rule_equilibrium(summary, c, margin):
    e = equilibrium(summary, c["a"])
    if not e:
        return "not measured", f"needs {_tx(c['a'])}'s discriminator outputs", {}
    ev = (f"{_display(summary, c['a'])}'s D ends at {fmt(e['d_real'], 2)} on real and {fmt(e['d_fake'], 2)} "
          f"on fake images (tolerance {fmt(EQUILIBRIUM_TOL, 1)})")
    return ("supported" if e["at_equilibrium"] else "contradicted"), ev, e


def rule_detach(summary, c, margin):
    """Essential = the run without .detach() ends with a higher FD than the run with it (one run each:
    the engine calls one seed inconclusive)."""
    d = (dynamics_study(summary, c["a"]) or {}).get("detach")
    if not d:
        return "not measured", f"needs the detach ablation of {_tx(c['a'])}", {}
    fw, fo = d["with"].get("fd"), d["without"].get("fd")
    if fw is None or fo is None:
        return "not measured", "a run of the ablation did not finish", {}
    ev = (f"FD {fmt(fo)} without vs.\\ {fmt(fw)} with (one seed, {d['with'].get('steps', '')} steps); "
          f"a step costs {times(d['time_ratio'], 'as much')}")
    return (Test(a=stat([fo]), b=stat([fw]), metric="fd", claimed="higher"), ev,
            {"fd_with": fw, "fd_without": fo, "time_ratio": d["time_ratio"]})


def rule_ddim(summary, c, margin):
    st = sampler_study(summary, c["a"])
    if not st:
        return "not measured", f"needs the sampler sweep of {_tx(c['a'])}", {}
    ref, few = st["ref"], st["few"]
    if few is None:
        return "not measured", f"needs a DDIM point at a fifth of the {ref['steps']} steps or fewer", {}
    ev = (f"DDIM at {few['steps']} steps: FD {fmt(few['fd']['mean'])} against {fmt(SMALL_LOSS)} times "
          f"{fmt(ref['fd']['mean'])} at {ref['steps']} steps, "
          f"{times(ref['ms_per_image']['mean'] / few['ms_per_image']['mean'], 'faster')} ({_seeds(few['fd'])})")
    return Test(st["claim_test"]), ev, {"steps": few["steps"], "ref_steps": ref["steps"]}


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
        rows.append({"id": c["id"], "claim": c["claim"], "sources": c["sources"], "topic": c["topic"],
                     "test": c["test"], "quantity": label(c["quantity"]) if "quantity" in c else c["test"],
                     "verdict": verdict, "evidence": evidence, "numbers": _plain(numbers), "reason": None})
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
    counts = {v: sum(r["verdict"] == v for r in rows) for v in VERDICTS}
    one_seed = sum(r["reason"] == "one seed" for r in rows)
    return {"profile": summary["profile"], "margin": cfg.margin, "alpha": cfg.alpha, "level": cfg.level,
            "n_tests": len(family), "claims": rows, "counts": counts, "one_seed": one_seed,
            "sources": ledger["sources"], "by_id": {r["id"]: r for r in rows}}


def _p(p: float) -> str:
    """'= 0.012' or '< 0.001': an adjusted p-value as the ledger prints it."""
    return f"= {fmt(p, 2)}" if p >= 0.001 else "< 0.001"


def _plain(x):
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items() if not isinstance(v, (list, tuple)) or k == "values"}
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
