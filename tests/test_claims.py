"""The claims ledger: its file, its verdict rules on both sides of each threshold, and the paper's
sentences following the results files."""
from __future__ import annotations

import json
import re

import pytest
import yaml

from genreview.publish import claims as CL
from genreview.publish.tables import claims as CT
from genreview.utils import load_json, save_json

from conftest import REPO
from test_paper import _render, make_summary

LEDGER = REPO / "paper" / "claims.yaml"


def st(mean, std=0.0, n=1):
    """A seed stat with n values of this mean and sample standard deviation."""
    z = [0.0] if n == 1 else [(2 * i - (n - 1)) for i in range(n)]
    scale = (sum(x * x for x in z) / (n - 1)) ** 0.5 if n > 1 else 1.0
    return {"mean": mean, "std": std, "n": n, "values": [mean + std * x / scale for x in z]}


def test_the_ledger_holds_enough_claims_each_with_a_source_and_a_test():
    led = CL.load_ledger(LEDGER)
    claims = led["claims"]
    assert len(claims) >= 25
    assert {s for c in claims for s in c["sources"]} == set(led["sources"]), "a declared source no claim cites"
    bib = (REPO / "paper" / "references.bib").read_text()
    for s in led["sources"].values():
        assert "{" + s["key"] + "," in bib, f"source {s['key']} has no BibTeX entry"
    assert {c["test"] for c in claims} == set(CL.TESTS), "a rule that no claim uses, or a claim with no rule"


@pytest.mark.parametrize("change, message", [
    ({"colour": "red"}, "unknown field"),
    ({"test": "vibes"}, "unknown test"),
    ({"sources": ["S9"]}, "unknown source"),
    ({"expect": "sideways"}, "expect must be"),
    ({"a": None}, "needs field 'a'"),
])
def test_a_broken_ledger_names_the_claim_and_the_problem(tmp_path, change, message):
    led = yaml.safe_load(LEDGER.read_text())
    claim = next(c for c in led["claims"] if c["test"] == "compare")
    claim.update(change)
    if change.get("a", 0) is None:
        del claim["a"]
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump(led))
    with pytest.raises(CL.LedgerError) as e:
        CL.load_ledger(path)
    assert message in str(e.value) and claim["id"] in str(e.value)


@pytest.mark.parametrize("a, b, expect, verdict, reason", [
    (st(1.0), st(1.2), "lower", "inconclusive", "one seed"),   # the old rule called 17% apart with one seed supported
    (st(1.0), st(1.2), "higher", "inconclusive", "one seed"),  # ... and this one contradicted
    (st(1.0, 0.05, 3), st(1.2, 0.05, 3), "lower", "supported", None),
    (st(1.0, 0.05, 3), st(1.2, 0.05, 3), "higher", "contradicted", None),
    (st(1.0, 0.15, 3), st(1.2, 0.15, 3), "lower", "inconclusive", "interval includes no difference"),
    (st(1.0, 0.01, 3), st(1.01, 0.01, 3), "lower", "equivalent", None),   # within the 10% margin, both ends
    (st(1.0, 0.01, 5), st(1.05, 0.01, 5), "higher", "equivalent", None),  # a decisive gap inside the margin
    (st(1.0, 0.01, 5), st(1.15, 0.01, 5), "higher", "contradicted", None),
])
def test_the_compare_rule(a, b, expect, verdict, reason):
    """The ledger's compare rule asks the engine: an interval over seeds, never one seed's gap."""
    summary = {"profile": "t", "order": ["x", "y"],
               "models": {n: {"n_ok": v["n"], "family": "f", "display": n, "metrics": {"fd": v}}
                          for n, v in (("x", a), ("y", b))}}
    ledger = {"sources": {}, "claims": [{"id": "c", "claim": "x", "sources": [], "topic": "t", "test": "compare",
                                         "quantity": "fd", "a": "x", "b": "y", "expect": expect}]}
    r = CL.evaluate(summary, ledger)["by_id"]["c"]
    assert (r["verdict"], r["reason"]) == (verdict, reason)
    assert r["seeds"] == [a["n"], b["n"]]
    assert ("[" in r["effect"]["text"]) == (a["n"] > 1), "an interval exactly when there are seeds"


def test_benjamini_hochberg_spans_the_ledger():
    """A comparison decisive alone loses its verdict among many null ones: the ledger corrects for its tests."""
    models = {"x": st(1.0, 0.1, 3), "y": st(1.3, 0.1, 3)}
    claims = [{"id": "c0", "claim": "x", "sources": [], "topic": "t", "test": "compare", "quantity": "fd",
               "a": "x", "b": "y", "expect": "lower"}]
    for i in range(30):
        models[f"n{i}"] = st(1.0, 0.1 + 0.001 * i, 3)
        models[f"m{i}"] = st(1.0 + 0.002 * i, 0.1, 3)
        claims.append({**claims[0], "id": f"c{i + 1}", "a": f"n{i}", "b": f"m{i}"})
    summary = {"profile": "t", "order": list(models),
               "models": {n: {"n_ok": 3, "family": "f", "display": n, "metrics": {"fd": v}} for n, v in models.items()}}
    alone = CL.evaluate(summary, {"sources": {}, "claims": claims[:1]})["by_id"]["c0"]
    among = CL.evaluate(summary, {"sources": {}, "claims": claims})["by_id"]["c0"]
    assert alone["verdict"] == "supported" and alone["p"] < 0.05
    assert among["p"] == alone["p"] and among["p_adj"] > 0.05 and among["verdict"] == "inconclusive"
    assert among["reason"] == "not significant after correction"


def test_the_ledger_reads_its_statistical_settings(tmp_path):
    led = yaml.safe_load(LEDGER.read_text())
    assert CL.load_ledger(LEDGER)["alpha"] == led["alpha"]
    for key, bad in (("alpha", 1.5), ("margin", -0.1), ("alpha", "small")):
        path = tmp_path / "claims.yaml"
        path.write_text(yaml.safe_dump({**led, key: bad}))
        with pytest.raises(CL.LedgerError, match=key):
            CL.load_ledger(path)


def _summary(tmp_path, **kw):
    return load_json(make_summary(tmp_path / "results", **kw))


def _verdict(summary, cid):
    led = CL.load_ledger(LEDGER)
    return CL.evaluate(summary, led)["by_id"][cid]


def test_threshold_rule_on_both_sides(tmp_path):
    s = _summary(tmp_path, seeds=(0,))
    s["models"]["dcgan"]["metrics"]["latency_ms"] = st(2.0, 0.2, 3)
    assert _verdict(s, "gan_real_time")["verdict"] == "supported"
    s["models"]["dcgan"]["metrics"]["latency_ms"] = st(80.0, 2.0, 3)
    assert _verdict(s, "gan_real_time")["verdict"] == "contradicted"
    s["models"]["dcgan"]["metrics"]["latency_ms"] = st(32.0, 10.0, 3)
    assert _verdict(s, "gan_real_time")["verdict"] == "inconclusive"
    s["models"]["dcgan"]["metrics"]["latency_ms"] = st(2.0)
    r = _verdict(s, "gan_real_time")
    assert (r["verdict"], r["reason"]) == ("inconclusive", "one seed"), "one seed is never a verdict"


def test_family_selectors_pick_the_best_member_and_skip_conditional_models(tmp_path):
    s = _summary(tmp_path, seeds=(0,))
    for name, fd in [("ddpm", 50.0), ("iddpm", 20.0), ("guided_ldm", 1.0), ("dcgan", 30.0), ("vae", 90.0)]:
        s["models"][name]["metrics"]["fd"] = st(fd, 1.0, 3)
    for name in s["order"]:
        if name not in ("ddpm", "iddpm", "guided_ldm", "dcgan", "vae"):
            s["models"][name]["metrics"]["fd"] = st(200.0, 1.0, 3)
    r = _verdict(s, "diffusion_best_quality")
    assert (r["numbers"]["a"], r["numbers"]["b"]) == ("iddpm", "dcgan")  # guided_ldm is class-conditional
    assert r["verdict"] == "supported"


def test_a_missing_model_is_not_measured_never_a_verdict(tmp_path):
    s = _summary(tmp_path, models=("vae",), seeds=(0,))
    r = _verdict(s, "vae_blurrier_than_gan")
    assert r["verdict"] == "not measured" and "dcgan" in r["evidence"]
    s2 = _summary(tmp_path / "b", models=("dcgan",), seeds=(0,))
    assert r"wgan\_gp" in _verdict(s2, "wgan_gp_more_stable_than_dcgan")["evidence"]  # LaTeX-safe ids


def test_collapse_counts_main_runs_and_short_runs(tmp_path):
    s = _summary(tmp_path, seeds=(0,))
    gans = CL.family_members(s, "gan")
    for name in gans:
        s["models"][name]["class_coverage"] = {"classes_covered": 10, "n_classes": 10, "class_kl": 0.0}
        for r in s["dynamics"].get(name, {}).get("runs", []):
            r["collapsed"] = False
    s["models"]["vae"]["class_coverage"] = {"classes_covered": 10, "n_classes": 10, "class_kl": 0.0}
    for r in s["dynamics"]["vae"]["runs"]:
        r["collapsed"] = False
    assert _verdict(s, "gan_mode_collapse")["verdict"] == "contradicted"  # no GAN run collapsed
    s["models"]["dcgan"]["class_coverage"]["classes_covered"] = 3
    assert _verdict(s, "gan_mode_collapse")["verdict"] == "supported"
    assert "1 of" in _verdict(s, "gan_mode_collapse")["evidence"]


def _section(tmp_path, summary_path) -> str:
    _render(tmp_path, summary_path)
    return (tmp_path / "build" / "paper" / "sections" / "comparison.tex").read_text()


def _contradicted(tex: str) -> list[str]:
    block = tex.split(r"\begin{itemize}")[1].split(r"\end{itemize}")[0] if r"\begin{itemize}" in tex else ""
    return re.findall(r"\\emph\{([^}]*)\}", block)


def test_altering_the_results_changes_the_verdicts_and_the_sentences(tmp_path):
    """The paper's comparative prose follows the results files: flip two measurements, and the
    verdicts, the counts and the sentences that quote them change."""
    path = make_summary(tmp_path / "results", seeds=(0, 1))
    s = load_json(path)
    s["models"]["vae"]["metrics"]["blur"] = st(0.8, 0.01, 2)
    s["models"]["dcgan"]["metrics"]["blur"] = st(0.3, 0.001, 2)
    save_json(s, path)
    before = _section(tmp_path / "a", path)
    verdicts = json.loads((tmp_path / "a" / "claims.json").read_text())
    assert verdicts["by_id"]["vae_blurrier_than_gan"]["verdict"] == "supported"

    s["models"]["vae"]["metrics"]["blur"] = st(0.05, 0.001, 2)  # the VAE now the sharper
    save_json(s, path)
    after = _section(tmp_path / "b", path)
    changed = json.loads((tmp_path / "b" / "claims.json").read_text())
    assert changed["by_id"]["vae_blurrier_than_gan"]["verdict"] == "contradicted"
    claim = "VAE samples are blurrier than GAN samples."
    assert claim not in _contradicted(before) and claim in _contradicted(after)
    assert changed["counts"]["contradicted"] == verdicts["counts"]["contradicted"] + 1
    assert f"{changed['counts']['contradicted']}\ncontradicted" in after.replace(" contradicted", "\ncontradicted")
    assert "0.0500" in after and "0.0500" not in before  # the number quoted beside the verdict
    table = (tmp_path / "b" / "tables" / "claims.tex").read_text()
    row = next(line for line in table.splitlines() if line.startswith(claim))
    assert "contradicted" in row and "blur" in row and "adjusted $p" in row, row


def test_one_seed_is_never_a_bare_verdict_in_the_table(tmp_path):
    path = make_summary(tmp_path / "results", seeds=(0,))
    _section(tmp_path / "a", path)
    result = json.loads((tmp_path / "a" / "claims.json").read_text())
    one = [r for r in result["claims"] if r["reason"] == "one seed"]
    assert one and all(r["verdict"] == "inconclusive" for r in one) and result["one_seed"] == len(one)
    table = (tmp_path / "a" / "tables" / "claims.tex").read_text()
    row = next(line for line in table.splitlines() if line.startswith(one[0]["claim"]))
    assert "inconclusive} (one seed)" in row, row


def test_the_comparison_table_fills_every_cell_from_the_summary(tmp_path):
    s = _summary(tmp_path, seeds=(0, 1))
    cells = CT.comparison_cells(s, CL.load_ledger(LEDGER))
    assert set(cells) == {"gan", "vae", "diffusion"}
    for fam, row in cells.items():
        for key, _ in CT.ASPECTS:
            assert row.get(key) and row[key] != "n/a" or key == "ease", f"{fam}: {key} is empty"
    s["models"]["dcgan"]["metrics"]["fd"] = st(7.25, 0.5, 2)
    assert "7.25" in CT.comparison_cells(s, CL.load_ledger(LEDGER))["gan"]["quality"]
