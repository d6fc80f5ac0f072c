"""One verdict engine: templates print the words `verdicts.judge` chooses and never compare numbers
themselves, and the ledger and the prose ask the same engine."""
from __future__ import annotations

from pathlib import Path

import jinja2.nodes as N
import pytest

from genreview.publish import claims as CL
from genreview.publish import verdicts as V
from genreview.publish.render import environment

from conftest import REPO

PAPER = REPO / "paper"
ORDER = ("lt", "gt", "lteq", "gteq")

# Order comparisons that are not verdicts: configuration (channels, patch size, respacing), a plural, and the
# sign of a difference the sentence prints. Each entry: (template, the expression as `_src` writes it).
ALLOWED = {
    ("sections/setup.tex.j2", "s.data.train.shape[0] > 1"),            # grey or colour: the data's channels
    ("sections/diffusion.tex.j2", "d.hparams.patch > 1"),              # a config value
    ("sections/diffusion.tex.j2", "metric('ddpm', 'chain_steps').mean < d.hparams.timesteps"),  # respaced chain
    ("sections/results.tex.j2", "metric(fast, 'nfe').mean > 1"),        # "evaluation" or "evaluations"
    ("sections/results.tex.j2", "gaps[0][0] < 0"),                      # explains a printed negative number
    ("sections/results.tex.j2", "ref.ceiling.precision > 0.5"),         # noise's precision: a property of the metric
}


def _src(n) -> str:
    """A Jinja expression node written back as source (enough of it to name a comparison)."""
    if isinstance(n, N.Name):
        return n.name
    if isinstance(n, N.Const):
        return repr(n.value)
    if isinstance(n, N.Getattr):
        return f"{_src(n.node)}.{n.attr}"
    if isinstance(n, N.Getitem):
        return f"{_src(n.node)}[{_src(n.arg)}]"
    if isinstance(n, N.Call):
        return f"{_src(n.node)}({', '.join(_src(a) for a in n.args)})"
    if isinstance(n, N.Filter):
        return f"{_src(n.node)} | {n.name}"
    if isinstance(n, N.BinExpr):
        return f"{_src(n.left)} {n.operator} {_src(n.right)}"
    if isinstance(n, N.Neg):
        return f"-{_src(n.node)}"
    if isinstance(n, N.Compare):
        sym = {"lt": "<", "gt": ">", "lteq": "<=", "gteq": ">=", "eq": "==", "ne": "!="}
        return _src(n.expr) + "".join(f" {sym.get(o.op, o.op)} {_src(o.expr)}" for o in n.ops)
    return type(n).__name__


def _is_count(n) -> bool:
    """A length or a loop counter: comparing those is grammar, not a verdict."""
    return (isinstance(n, N.Filter) and n.name == "length") or \
        (isinstance(n, N.Getattr) and isinstance(n.node, N.Name) and n.node.name == "loop")


def _tests(node):
    """The expressions that decide something: if-tests, conditional expressions, loop filters."""
    for n in node.find_all((N.If, N.CondExpr, N.For)):
        t = n.test
        if t is not None:
            yield t


def violations(source: str, name: str = "<snippet>") -> list[str]:
    """Each place where a template compares two numbers with <, >, <=, >= or computes a ratio to choose
    a word (a ratio inside a test or a comparison, or handed to `times`)."""
    tree = environment(PAPER).parse(source)
    out = []
    for c in tree.find_all(N.Compare):
        ops = [o for o in c.ops if o.op in ORDER]
        if not ops or _is_count(c.expr) or any(_is_count(o.expr) for o in c.ops):
            continue
        if (name, _src(c)) not in ALLOWED:
            out.append(f"{name}:{c.lineno}: compares numbers: {_src(c)}")
    for t in _tests(tree):
        for d in t.find_all((N.Div, N.FloorDiv)):
            out.append(f"{name}:{d.lineno}: a ratio decides a word: {_src(d)}")
    for call in tree.find_all(N.Call):
        if isinstance(call.node, N.Name) and call.node.name == "times":
            for d in (x for a in call.args for x in ([a] if isinstance(a, N.Div) else list(a.find_all(N.Div)))):
                out.append(f"{name}:{d.lineno}: a ratio handed to times() (use the judgement's .times()): {_src(d)}")
    return out


def _templates() -> list[Path]:
    return sorted(PAPER.rglob("*.j2"))


def test_no_template_compares_numbers_itself():
    found = [v for p in _templates() for v in violations(p.read_text(), p.relative_to(PAPER).as_posix())]
    assert not found, ("templates choose words from numbers themselves; ask the engine "
                       "(compare(a, b, metric) = verdicts.judge) and print its word:\n" + "\n".join(found))


def test_every_allowed_comparison_is_still_there():
    """A whitelist entry whose expression left its template is stale: it would hide a new comparison."""
    seen = set()
    for p in _templates():
        tree = environment(PAPER).parse(p.read_text())
        seen |= {(p.relative_to(PAPER).as_posix(), _src(c)) for c in tree.find_all(N.Compare)}
    assert ALLOWED <= seen, sorted(ALLOWED - seen)


@pytest.mark.parametrize("line, n", [
    # what the templates did before the one engine
    (r"\BLOCK{if t.ratio < 1}faster\BLOCK{else}slower\BLOCK{endif}", 1),
    (r"\BLOCK{if pr > rc + 0.1}trades\BLOCK{endif}", 1),
    (r"\BLOCK{if v.a.fd.mean and v.a.fd.mean > 1.5 * v.b.fd.mean}far\BLOCK{endif}", 1),
    (r"\BLOCK{for x in pa if probe_metric(s, x, 'probe_acc').mean > px.mean}\BLOCK{endfor}", 1),
    (r"\VAR{times(metric(a, 'fd').mean / metric(b, 'fd').mean)} that of the best", 1),
    (r"\VAR{times(1 / c.ratio)} slower", 1),
    (r"\BLOCK{if a.mean / b.mean == 2}twice\BLOCK{endif}", 1),
    # what they may do
    (r"\BLOCK{if by_fd | length > 1}ranked\BLOCK{endif}", 0),
    (r"\BLOCK{for x in xs}\BLOCK{if loop.index > 1}, \BLOCK{endif}\BLOCK{endfor}", 0),
    (r"\BLOCK{set c = compare(metric(a, 'fd'), metric(b, 'fd'), 'fd')}"
     r"\BLOCK{if c.word == 'lower than'}x\BLOCK{endif}", 0),
    (r"\VAR{fmt(metric('flow', 'params').mean / 1e6, 2)} M", 0),
])
def test_the_lint_finds_comparisons(line, n):
    assert len(violations(line)) == n, violations(line)


def st(*values):
    return {"mean": sum(values) / len(values), "std": 0.0, "n": len(values), "values": list(values)}


def test_the_ledger_and_the_prose_ask_the_same_engine(monkeypatch):
    """The ledger's compare rule and the templates' `compare` both go through `verdicts.judge`."""
    calls = []
    real = V.judge

    def spy(*a, **k):
        calls.append((a, k))
        return real(*a, **k)
    monkeypatch.setattr(V, "judge", spy)
    monkeypatch.setattr(CL, "judge", spy)
    V.compare(st(1.0, 1.1, 1.2), st(2.0, 2.1, 2.2), "fd")
    assert len(calls) == 1
    summary = {"profile": "t", "order": ["x", "y"],
               "models": {n: {"n_ok": 3, "family": "f", "display": n, "metrics": {"fd": st(*v)}}
                          for n, v in (("x", (1.0, 1.1, 1.2)), ("y", (2.0, 2.1, 2.2)))}}
    ledger = {"sources": {}, "claims": [{"id": "c", "claim": "x beats y", "sources": [], "topic": "t",
                                         "test": "compare", "quantity": "fd", "a": "x", "b": "y", "expect": "lower"}]}
    r = CL.evaluate(summary, ledger)["by_id"]["c"]
    assert len(calls) == 3 and r["verdict"] == "supported"   # judged for its p-value, then with the adjusted one
    assert r["seeds"] == [3, 3] and r["p_adj"] == pytest.approx(r["p"]) and "FD" in r["effect"]["text"]


def test_judge_words_kinds_and_reasons():
    a, b = st(10.0, 11.0, 12.0), st(20.0, 21.0, 19.0)
    j = V.judge(a, b, "fd", claimed="lower")
    assert (j.word, j.kind, j.reason) == ("lower than", "supported", None)
    assert V.judge(a, b, "fd", claimed="higher").kind == "contradicted"
    assert V.judge(a, b, "sample_ms_per_image", words=("faster than", "slower than")).word == "faster than"
    assert j.interval.startswith("FD 0.55$\\times$ [") and j.interval.endswith("3 seeds each")
    same = V.judge(st(10.0, 10.1, 9.9), st(10.05, 10.0, 10.1), "fd", claimed="lower")
    assert (same.word, same.kind) == ("about the same as", "equivalent") and same.times("faster") == "about as fast"
    one = V.judge(st(10.0), st(20.0), "fd", claimed="lower")
    assert (one.kind, one.reason, one.word) == ("inconclusive", "one seed", "lower than")
    assert one.evidence == "one seed each, so no interval" and "[" not in one.interval
    spread = V.judge(st(10.0, 16.0, 22.0), st(14.0, 20.0, 26.0), "fd", claimed="lower")
    assert spread.kind == "inconclusive" and spread.reason == "interval includes no difference"
    bounded = V.judge(st(0.5, 0.52, 0.49), st(0.6, 0.61, 0.62), "recall")
    assert bounded.effect.scale == "difference" and bounded.kind == "different" and bounded.word == "lower than"
    adjusted = V.judge(a, b, "fd", claimed="lower", p_adj=0.2)
    assert adjusted.kind == "inconclusive" and adjusted.reason == "not significant after correction"
    fixed = V.judge(st(1.0, 1.1), 30.0, "sample_ms_per_image", claimed="lower")
    assert fixed.kind == "supported" and fixed.seeds == "2 seeds"
    with pytest.raises(ValueError, match="claimed"):
        V.judge(a, b, "fd", claimed="below")
    with pytest.raises(KeyError, match="METRICS"):
        V.judge(a, b, "no_such_metric")


def test_a_sentence_comparing_a_ledger_tests_data_takes_its_adjusted_p():
    """A comparison in the prose of exactly the data of a ledger test (either way round) uses the ledger's
    settings and Benjamini-Hochberg adjusted p-value, so it cannot call different what the ledger calls
    inconclusive; other comparisons keep their own p-value."""
    import numpy as np

    rng = np.random.default_rng(0)
    x, y = st(10.0, 10.6, 11.2, 10.3, 10.9), st(11.1, 11.4, 11.9, 10.8, 11.6)   # raw p near 0.04
    z, w = st(*rng.normal(10, 1, 5)), st(*rng.normal(10, 1, 5))                 # no difference
    summary = {"profile": "t", "order": list("xyzw"),
               "models": {n: {"n_ok": 5, "family": "f", "display": n, "metrics": {"fd": v}}
                          for n, v in zip("xyzw", (x, y, z, w))}}
    claim = {"sources": [], "topic": "t", "test": "compare", "quantity": "fd", "expect": "lower"}
    ledger = {"sources": {}, "claims": [{**claim, "id": "c1", "claim": "x beats y", "a": "x", "b": "y"},
                                        {**claim, "id": "c2", "claim": "z beats w", "a": "z", "b": "w"}]}
    out = CL.evaluate(summary, ledger)
    r = out["by_id"]["c1"]
    assert r["p"] < 0.05 < r["p_adj"] and r["verdict"] == "inconclusive", r
    assert V.compare(x, y, "fd").kind == "different", "alone, the raw p-value would call them different"
    prose = V.Ledger(out)
    for a, b in ((x, y), (y, x)):
        j = prose.compare(a, b, "fd")
        assert j.kind == "inconclusive" and j.p_adj == pytest.approx(r["p_adj"])
    assert prose.compare(x, w, "fd").p_adj == V.compare(x, w, "fd").p_adj   # not a ledger test: its own p
    assert V.Ledger(None).cfg == V.Ledger({}).cfg
