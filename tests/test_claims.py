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
    return {"mean": mean, "std": std, "n": n, "values": [mean] * n}


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


@pytest.mark.parametrize("a, b, claimed_way, verdict", [
    (st(1.0), st(1.2), True, "supported"),          # one seed: 17% apart, beyond the 10% margin
    (st(1.0), st(1.2), False, "contradicted"),
    (st(1.0), st(1.05), True, "inconclusive"),      # within the margin
    (st(1.0, 0.05, 3), st(1.2, 0.05, 3), True, "supported"),    # gap 0.2 > spreads 0.1
    (st(1.0, 0.15, 3), st(1.2, 0.15, 3), True, "inconclusive"),  # gap 0.2 < spreads 0.3
    (st(1.0, 0.01, 3), st(1.05, 0.01, 3), False, "contradicted"),  # seeds decide below the margin
])
def test_the_gap_rule(a, b, claimed_way, verdict):
    assert CL._gap_verdict(claimed_way, abs(a["mean"] - b["mean"]), a, b, 0.1) == verdict


def _summary(tmp_path, **kw):
    return load_json(make_summary(tmp_path / "results", **kw))


def _verdict(summary, cid):
    led = CL.load_ledger(LEDGER)
    return CL.evaluate(summary, led)["by_id"][cid]


def test_threshold_rule_on_both_sides(tmp_path):
    s = _summary(tmp_path, seeds=(0,))
    s["models"]["dcgan"]["metrics"]["sample_ms_per_image"] = st(2.0)
    assert _verdict(s, "gan_real_time")["verdict"] == "supported"
    s["models"]["dcgan"]["metrics"]["sample_ms_per_image"] = st(80.0)
    assert _verdict(s, "gan_real_time")["verdict"] == "contradicted"
    s["models"]["dcgan"]["metrics"]["sample_ms_per_image"] = st(32.0)
    assert _verdict(s, "gan_real_time")["verdict"] == "inconclusive"


def test_family_selectors_pick_the_best_member_and_skip_conditional_models(tmp_path):
    s = _summary(tmp_path, seeds=(0,))
    for name, fd in [("ddpm", 50.0), ("iddpm", 20.0), ("guided_ldm", 1.0), ("dcgan", 30.0), ("vae", 90.0)]:
        s["models"][name]["metrics"]["fd"] = st(fd)
    for name in s["order"]:
        if name not in ("ddpm", "iddpm", "guided_ldm", "dcgan", "vae"):
            s["models"][name]["metrics"]["fd"] = st(200.0)
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
    s["models"]["vae"]["metrics"]["sharpness"] = st(0.01, 0.001, 2)
    s["models"]["dcgan"]["metrics"]["sharpness"] = st(0.03, 0.001, 2)
    save_json(s, path)
    before = _section(tmp_path / "a", path)
    verdicts = json.loads((tmp_path / "a" / "claims.json").read_text())
    assert verdicts["by_id"]["vae_blurrier_than_gan"]["verdict"] == "supported"

    s["models"]["vae"]["metrics"]["sharpness"] = st(0.05, 0.001, 2)  # the VAE now the sharper
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
    assert "contradicted" in row


def test_the_comparison_table_fills_every_cell_from_the_summary(tmp_path):
    s = _summary(tmp_path, seeds=(0, 1))
    cells = CT.comparison_cells(s, CL.load_ledger(LEDGER))
    assert set(cells) == {"gan", "vae", "diffusion"}
    for fam, row in cells.items():
        for key, _ in CT.ASPECTS:
            assert row.get(key) and row[key] != "n/a" or key == "ease", f"{fam}: {key} is empty"
    s["models"]["dcgan"]["metrics"]["fd"] = st(7.25, 0.5, 2)
    assert "7.25" in CT.comparison_cells(s, CL.load_ledger(LEDGER))["gan"]["quality"]
