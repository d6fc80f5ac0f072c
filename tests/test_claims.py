"""The claims ledger: its file, its verdict rules on both sides of each threshold, and the paper's
sentences following the results files."""
from __future__ import annotations

import json
import re
from pathlib import Path

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


def test_every_claim_gives_the_passages_of_its_sources(tmp_path):
    """Each claim ties each of its sources to the lines of that source's text that make it; the passages
    reach claims.json and the ledger table, beside the citation."""
    led = CL.load_ledger(LEDGER)
    for key, s in led["sources"].items():
        assert s.get("file") and s.get("key"), f"source {key} needs its key and the file of its text"
    for c in led["claims"]:
        assert c["sources"], f"{c['id']} has no source"
        assert list(c["passages"]) == c["sources"], f"{c['id']}: one passage for each source"
        for s, where in c["passages"].items():
            assert CL.passage_lines(where), f"{c['id']}: {s} has no lines"
    s = _summary(tmp_path, seeds=(0,))
    result = CL.evaluate(s, led)
    row = result["by_id"]["gan_mode_collapse"]
    assert row["passages"] == next(c for c in led["claims"] if c["id"] == "gan_mode_collapse")["passages"]
    cell = CT.sources_cell({"sources": ["S0", "S4"], "passages": {"S0": "41-43, 50", "S4": "297"}}, led["sources"])
    assert cell == ("{\\raggedright S0~\\citep[l.~41--43, 50]{" + led["sources"]["S0"]["key"] + "}; "
                    "S4~\\citep[l.~297]{" + led["sources"]["S4"]["key"] + "}\\par}")
    table = CT.claims_table(result, CT.CAPTION)
    line = next(x for x in table.splitlines() if x.startswith(row["claim"]))
    for src, where in row["passages"].items():
        assert f"{src}~\\citep[l.~{where.replace('-', '--')}]" in line, line


@pytest.mark.parametrize("passages, message", [
    ({}, "no passage for source"),                        # a source without its passage
    ("41", "must map each source"),
    ({"S0": "forty-one"}, "not line numbers or ranges"),
    ({"S0": "41-"}, "not line numbers or ranges"),
    ({"S0": "41;43"}, "not line numbers or ranges"),
    ({"S0": "43-41"}, "not a range of lines"),
    ({"S0": "0"}, "not a range of lines"),
    ({"S0": "41", "S3": "12"}, "not among its sources"),  # a passage for a source the claim does not cite
])
def test_a_malformed_passage_names_the_claim_and_the_fix(tmp_path, passages, message):
    led = yaml.safe_load(LEDGER.read_text())
    claim = next(c for c in led["claims"] if c["sources"] == ["S0"])
    claim["passages"] = passages
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump(led))
    with pytest.raises(CL.LedgerError) as e:
        CL.load_ledger(path)
    assert message in str(e.value) and claim["id"] in str(e.value), str(e.value)
    assert "e.g." in str(e.value) or "drop the passage" in str(e.value), "the error says how to fix it"


@pytest.mark.parametrize("written, ranges, text", [
    ("12", [(12, 12)], "12"), (12, [(12, 12)], "12"), ("12-14", [(12, 14)], "12-14"),
    ("12 - 14 ,30", [(12, 14), (30, 30)], "12-14, 30"),
])
def test_passage_forms(written, ranges, text):
    assert CL.passage_lines(written) == ranges and CL.passage_text(written) == text


def _seeds_dir() -> Path | None:
    """The source texts, which live outside the repository (absent on CI): ../shared/seeds beside the
    checkout, or /work/shared/seeds."""
    return next((d for d in (REPO.parent / "shared" / "seeds", Path("/work/shared/seeds")) if d.is_dir()), None)


def _lines(path) -> list[str]:
    """A file's lines as `grep -n` numbers them (a last line without a newline counts)."""
    text = path.read_text(encoding="utf-8")
    return text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")


def test_every_passage_is_lines_of_its_source_text():
    seeds = _seeds_dir()
    if seeds is None:
        pytest.skip("the source texts (shared/seeds beside the repository) are not here")
    led = CL.load_ledger(LEDGER)
    texts = {}
    for key, s in led["sources"].items():
        assert (seeds / s["file"]).is_file(), f"source {key}: no file {s['file']} in {seeds}"
        texts[key] = _lines(seeds / s["file"])
    for c in led["claims"]:
        for s, where in c["passages"].items():
            for lo, hi in CL.passage_lines(where):
                assert hi <= len(texts[s]), f"{c['id']}: {s} has {len(texts[s])} lines, not {hi}"
                assert any(x.strip() for x in texts[s][lo - 1:hi]), f"{c['id']}: {s} lines {lo}-{hi} are blank"


def test_the_ledger_copies_no_sentence_of_its_sources():
    """The ledger paraphrases: no run of eight words of a source text appears in it."""
    seeds = _seeds_dir()
    if seeds is None:
        pytest.skip("the source texts (shared/seeds beside the repository) are not here")

    def runs(text, n=8):
        w = re.findall(r"[a-z0-9]+", text.lower())
        return {" ".join(w[i:i + n]) for i in range(len(w) - n + 1)}
    ledger = runs(LEDGER.read_text())
    for s in CL.load_ledger(LEDGER)["sources"].values():
        copied = runs((seeds / s["file"]).read_text(encoding="utf-8")) & ledger
        assert not copied, f"claims.yaml copies {s['file']}: {sorted(copied)[:3]}"


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
    _levelled_off(s)
    for name, fd in [("ddpm", 50.0), ("iddpm", 20.0), ("guided_ldm", 1.0), ("dcgan", 30.0), ("vae", 90.0)]:
        s["models"][name]["metrics"]["fd_inf"] = st(fd, 1.0, 3)
    for name in s["order"]:
        if name not in ("ddpm", "iddpm", "guided_ldm", "dcgan", "vae"):
            s["models"][name]["metrics"]["fd_inf"] = st(200.0, 1.0, 3)
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
    """Collapse is real-looking samples that cover little (precision near the real data's, coverage far below);
    the main runs' seeds and the short seed runs count, the hyperparameter draws do not."""
    s = _summary(tmp_path, seeds=(0, 1, 2))
    floor = s["reference"]["floor"]
    healthy = {"precision": 0.9 * floor["precision"], "coverage": 0.9 * floor["coverage"]}
    narrow = {"precision": floor["precision"], "coverage": 0.1 * floor["coverage"]}

    def set_runs(name, scores, draws=None):
        for k in ("precision", "coverage"):
            s["models"][name]["metrics"][k] = st(scores[k], 0.0, 3)
        for r in s["dynamics"].get(name, {}).get("runs", []):
            if r.get("status") == "ok":
                r.update(draws if draws and r["kind"] == "draw" else scores)

    gans = [n for n in CL.family_members(s, "gan") if n in s["models"]]
    for name in gans + ["vae"]:
        set_runs(name, healthy, draws=narrow)  # collapsed draws: not the claim's evidence
    r = _verdict(s, "gan_mode_collapse")
    assert r["verdict"] == "contradicted" and r["evidence"].startswith("0 of"), r  # no GAN seed run collapsed
    set_runs("dcgan", narrow)
    r = _verdict(s, "gan_mode_collapse")
    assert r["verdict"] == "inconclusive" and r["reason"] == "Fisher's test not significant", r
    for name in gans:
        set_runs(name, narrow)
    r = _verdict(s, "gan_mode_collapse")
    assert r["verdict"] == "supported" and "Fisher" in r["evidence"], r
    assert _verdict(s, "vae_no_mode_collapse")["verdict"] == "supported"
    untrained = {"precision": 0.01, "coverage": 0.01}
    for name in gans:
        set_runs(name, untrained)
    assert _verdict(s, "gan_mode_collapse")["verdict"] == "contradicted", "an untrained model has not collapsed"


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
    _levelled_off(s)
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


def _levelled_off(summary: dict) -> None:
    """Every training curve of the summary flat at its last FD: no quality verdict is budget-limited."""
    for curve in summary.get("curves", {}).values():
        for row in curve["rows"]:
            row["fd"] = curve["rows"][-1]["fd"]


def _curve(fds, images=(1000, 2000, 4000, 8000)):
    return {"rows": [{"step": i, "images": st(float(n)), "fd": st(f)} for i, (n, f) in enumerate(zip(images, fds))]}


def test_plateau_is_the_fall_over_the_last_doubling_of_compute():
    from genreview.summary.stats import plateau
    falling = plateau(_curve([90.0, 60.0, 40.0, 30.0])["rows"], 0.05)
    assert falling["fall"] == pytest.approx(0.25) and not falling["plateaued"]  # 40 -> 30 from 4000 to 8000 images
    assert falling["from_images"] == 4000 and falling["to_images"] == 8000
    assert plateau(_curve([90.0, 60.0, 40.0, 39.0])["rows"], 0.05)["plateaued"]
    assert plateau(_curve([90.0, 60.0, 40.0, 44.0])["rows"], 0.05)["plateaued"], "a rise is no gain"
    assert plateau(_curve([90.0, 60.0], images=(5000, 8000))["rows"], 0.05) is None, "no snapshot at half"


def test_a_quality_verdict_on_a_model_still_improving_is_budget_limited(tmp_path):
    s = _summary(tmp_path, seeds=(0, 1, 2))
    s["models"]["dcgan"]["metrics"]["fd_inf"] = st(20.0, 0.5, 3)
    s["models"]["vae"]["metrics"]["fd_inf"] = st(80.0, 0.5, 3)
    s["curves"] = {"vae": _curve([90.0, 82.0, 80.5, 80.0]), "dcgan": _curve([90.0, 60.0, 40.0, 39.5])}
    r = _verdict(s, "gan_better_than_vae")
    assert r["verdict"] == "supported" and r["convergence"]["dcgan"]["plateaued"]
    assert "convergence not checked" not in r["evidence"]
    s["curves"]["dcgan"] = _curve([90.0, 60.0, 40.0, 20.0])  # halved over the last doubling: still learning
    r = _verdict(s, "gan_better_than_vae")
    assert r["verdict"] == "inconclusive" and r["reason"].startswith("budget-limited") and "50" in r["reason"], r
    del s["curves"]["vae"]
    s["curves"]["dcgan"] = _curve([90.0, 60.0, 40.0, 39.5])
    r = _verdict(s, "gan_better_than_vae")
    assert r["verdict"] == "supported" and "convergence not checked for" in r["evidence"], r
    s["curves"] = {}
    assert CL.evaluate(s, CL.load_ledger(LEDGER))["budget_limited"] == 0


def test_a_diversity_verdict_on_a_model_still_improving_is_budget_limited(tmp_path):
    """What the samples cover is asked of models still learning too: recall, VAE against DCGAN."""
    s = _summary(tmp_path, seeds=(0, 1, 2))
    s["models"]["vae"]["metrics"]["recall"] = st(0.40, 0.02, 3)
    s["models"]["dcgan"]["metrics"]["recall"] = st(0.67, 0.02, 3)
    s["curves"] = {"vae": _curve([90.0, 82.0, 80.5, 80.0]), "dcgan": _curve([90.0, 60.0, 40.0, 39.5])}
    assert _verdict(s, "vae_more_diverse_than_gan")["verdict"] == "contradicted"
    s["curves"]["dcgan"] = _curve([90.0, 60.0, 40.0, 20.0])
    r = _verdict(s, "vae_more_diverse_than_gan")
    assert r["verdict"] == "inconclusive" and r["reason"].startswith("budget-limited: DCGAN"), r


def test_ddim_is_judged_on_sampling_time_against_the_longest_ancestral_chain(tmp_path):
    s = _summary(tmp_path, seeds=(0, 1, 2))
    pts = s["sweep"]["ddpm"]["points"]
    ddim = [p for p in pts if p["sampler"] == "ddim"]
    chain = max((p for p in pts if p["sampler"] == "ddpm"), key=lambda p: p["steps"])
    assert ddim and chain
    for p in ddim:
        p["ms_per_image"] = st(1.0, 0.01, 3)
    chain["ms_per_image"] = st(20.0, 0.1, 3)
    r = _verdict(s, "ddim_fast_little_loss")
    assert r["verdict"] == "supported" and "ancestral chain" in r["evidence"], r
    for p in ddim:
        p["ms_per_image"] = st(40.0, 0.1, 3)
    assert _verdict(s, "ddim_fast_little_loss")["verdict"] == "contradicted"


def test_exact_likelihood_reads_the_models_declaration_and_its_bits_per_dim(tmp_path):
    s = _summary(tmp_path, seeds=(0,))
    r = _verdict(s, "autoregressive_best_likelihood")
    assert r["verdict"] == "supported" and "exact likelihood" in r["evidence"], r
    s["models"]["pixelcnn"]["likelihood"] = "bound"
    assert _verdict(s, "autoregressive_best_likelihood")["verdict"] == "contradicted"


def _kid_curve(kids, steps=(100, 200, 400, 800)):
    return {"rows": [{"step": k, "images": st(64.0 * k), "fd": st(100 * v), "kid": st(v, 0.01 * v, 3)}
                     for k, v in zip(steps, kids)]}


def test_quality_claims_are_also_judged_at_matched_training_compute(tmp_path):
    """DCGAN (1 GFLOP a step) against the VAE (2 GFLOPs a step): compared at the FLOPs both reached, each as of
    its latest snapshot by then; the verdict at the largest such compute, and where it flips."""
    s = _summary(tmp_path, seeds=(0, 1, 2))
    _levelled_off(s)
    s["models"]["dcgan"]["metrics"]["flops_per_step"] = st(1e9)
    s["models"]["vae"]["metrics"]["flops_per_step"] = st(2e9)
    s["curves"]["vae"] = _kid_curve([0.30, 0.20, 0.10, 0.10])
    s["curves"]["dcgan"] = _kid_curve([0.50, 0.40, 0.05, 0.05])  # behind at 2e11 FLOPs, ahead from 4e11 on
    m = CL.along_compute(s, {"claimed": "lower"}, ("dcgan", "vae"), CL.I.InferenceConfig())
    assert [p["compute"] for p in m["points"]] == [2e11, 4e11, 8e11]
    assert [p["kind"] for p in m["points"]] == ["contradicted", "supported", "supported"]
    assert m["at"] == 8e11 and m["kind_at"] == "supported" and m["flip_at"] == 4e11
    s["models"]["dcgan"]["metrics"]["fd_inf"] = st(20.0, 0.5, 3)
    s["models"]["vae"]["metrics"]["fd_inf"] = st(80.0, 0.5, 3)
    r = _verdict(s, "gan_better_than_vae")
    assert r["matched"]["kind_at"] == "supported" and "at matched compute" in r["evidence"]
    assert "from $4 \\times 10^{11}$ FLOPs on" in CT.verdict_text(r), CT.verdict_text(r)
    del s["models"]["vae"]["metrics"]["flops_per_step"]
    assert CL.along_compute(s, {"claimed": "lower"}, ("dcgan", "vae"), CL.I.InferenceConfig()) is None


def test_the_verdict_strip_figure_draws_each_claim_judged_along_compute(tmp_path):
    from genreview.publish.figures import figure_names
    from genreview.publish.figures.ledger import claims_compute_figure, strips
    from genreview.publish.plan import Plan

    s = _summary(tmp_path, seeds=(0, 1, 2))
    _levelled_off(s)
    s["models"]["dcgan"]["metrics"]["flops_per_step"] = st(1e9)
    s["models"]["vae"]["metrics"]["flops_per_step"] = st(2e9)
    s["curves"]["vae"]["rows"] = _kid_curve([0.30, 0.20, 0.10, 0.10])["rows"]  # the rest of the curve as it was
    s["curves"]["dcgan"]["rows"] = _kid_curve([0.50, 0.40, 0.05, 0.05])["rows"]
    result = CL.evaluate(s, CL.load_ledger(LEDGER))
    rows = strips(result)
    ids = [r["id"] for r in rows]
    assert "gan_better_than_vae" in ids and "vae_better_than_gan" in ids, ids
    row = rows[ids.index("gan_better_than_vae")]
    assert row["flip_at"] == 4e11 and [p["kind"] for p in row["points"]][-1] == "supported"
    claims_compute_figure(result, tmp_path / "claims_vs_compute.pdf")
    claims_compute_figure(None, tmp_path / "empty.pdf")
    assert (tmp_path / "claims_vs_compute.pdf").stat().st_size > 1000 and (tmp_path / "empty.pdf").exists()
    assert "claims_vs_compute.pdf" in figure_names(Plan.from_summary(s))
    assert "claims_vs_compute.pdf" not in figure_names(Plan.from_summary({**s, "curves": {}}))
    path = tmp_path / "along" / "summary.json"
    path.parent.mkdir()
    save_json(s, path)
    assert "\\includegraphics[width=\\linewidth]{claims_vs_compute}" in _section(tmp_path / "along", path)
    s["curves"] = {}  # no claim judged along compute: the figure is left out of the paper
    save_json(s, path)
    assert "claims_vs_compute" not in _section(tmp_path / "along2", path)


def test_a_quality_verdict_the_other_judges_do_not_share_is_judge_dependent(tmp_path):
    s = _summary(tmp_path, seeds=(0, 1, 2))
    _levelled_off(s)
    s["models"]["dcgan"]["metrics"]["fd_inf"] = st(20.0, 0.5, 3)
    s["models"]["vae"]["metrics"]["fd_inf"] = st(80.0, 0.5, 3)

    def judges(dcgan_resnet, dcgan_ae):
        out = {}
        for name, (res, ae) in {"dcgan": (dcgan_resnet, dcgan_ae), "vae": (50.0, 50.0),
                                "ddpm": (10.0, 90.0), "wgan_gp": (30.0, 20.0)}.items():
            dom = s["models"][name]["metrics"]
            out[name] = {"n_seeds": 3, "judges": {
                "domain": {"fd": dom["fd"], "fd_inf": dom["fd_inf"]},
                "resnet": {"fd": st(res, 0.5, 3), "fd_inf": st(res, 0.5, 3)},
                "autoencoder": {"fd": st(ae, 0.5, 3), "fd_inf": st(ae, 0.5, 3)}}}
        return out

    s["judges"] = judges(10.0, 12.0)  # every judge: DCGAN far better
    r = _verdict(s, "gan_better_than_vae")
    assert r["verdict"] == "supported" and set(r["judges"]) == {"resnet", "autoencoder"}
    assert all(v["kind"] == "supported" for v in r["judges"].values()) and "other judges" in r["evidence"]
    s["judges"] = judges(10.0, 95.0)  # the label-free judge calls DCGAN worse
    r = _verdict(s, "gan_better_than_vae")
    assert r["verdict"] == "inconclusive" and r["reason"] == "judge-dependent: autoencoder contradicted", r
    result = CL.evaluate(s, CL.load_ledger(LEDGER))
    assert result["judge_dependent"] >= 1
    agreement = result["judge_agreement"]
    assert agreement["judges"] == ["autoencoder", "domain", "resnet"] and agreement["n_models"] == 4
    assert set(agreement["spearman"]) == {"autoencoder-domain", "autoencoder-resnet", "domain-resnet"}
    assert all(-1 <= v <= 1 for v in agreement["spearman"].values())
    path = tmp_path / "judged" / "summary.json"
    path.parent.mkdir()
    save_json(s, path)
    text = _section(tmp_path / "judged", path)
    assert "judge-dependent" in text and "Spearman's $\\rho$ from" in text
    s["judges"] = {}
    assert CL.evaluate(s, CL.load_ledger(LEDGER))["judge_agreement"] is None


def test_inconclusive_verdicts_are_grouped_by_what_keeps_them_open():
    from genreview.publish.claims import WHY, why

    assert why("one seed") == "one seed"
    assert why("budget-limited: DCGAN's FD still fell 12\\% over its last doubling of training") == "budget-limited"
    assert why("budget-limited: too few runs left the noise ceiling") == "budget-limited"
    assert why("judge-dependent: the ResNet judge disagrees") == "judge-dependent"
    assert why("fewer than 3 runs") == "too few runs"
    for r in ("interval includes no difference", "not significant after correction", "neither test significant",
              "both ways round", None):
        assert why(r) == "not significant"
    assert set(WHY) == {why(r) for r in ("one seed", "budget-limited", "judge-dependent", "fewer than", "x")}


def test_inception_fid_is_the_fourth_judge_where_its_weights_gave_one(tmp_path):
    """With eval.inception_weights the main evaluation's Inception FID judges FD claims beside the trained
    judges (at the evaluation's shared N only), and it joins the judges' rank correlation."""
    s = _summary(tmp_path, seeds=(0, 1, 2))
    _levelled_off(s)
    s["models"]["dcgan"]["metrics"]["fd_inf"] = st(20.0, 0.5, 3)
    s["models"]["vae"]["metrics"]["fd_inf"] = st(80.0, 0.5, 3)
    s["judges"] = {name: {"n_seeds": 3, "judges": {"domain": {"fd": s["models"][name]["metrics"]["fd"]},
                                                   "resnet": {"fd_inf": st(v, 0.5, 3), "fd": st(v, 0.5, 3)}}}
                   for name, v in {"dcgan": 10.0, "vae": 50.0, "ddpm": 5.0, "wgan_gp": 30.0}.items()}
    for name, v in {"dcgan": 40.0, "vae": 20.0, "ddpm": 10.0, "wgan_gp": 30.0}.items():
        s["models"][name]["metrics"]["fid_inception"] = st(v, 0.5, 3)
        s["models"][name]["metrics"]["n"] = st(2000.0, 0.0, 3)
    s["eval"] = {**s.get("eval", {}), "n_samples": 2000}
    r = _verdict(s, "gan_better_than_vae")
    assert set(r["judges"]) == {"resnet", "inception"} and r["judges"]["inception"]["kind"] == "contradicted"
    assert r["verdict"] == "inconclusive" and r["reason"] == "judge-dependent: inception contradicted", r
    agreement = CL.evaluate(s, CL.load_ledger(LEDGER))["judge_agreement"]
    assert "inception" in agreement["judges"] and agreement["n_models"] == 4
    s["models"]["vae"]["metrics"]["n"] = st(500.0, 0.0, 3)  # at another N: not compared
    assert "inception" not in _verdict(s, "gan_better_than_vae").get("judges", {})


def test_autoregressive_scaling_is_judged_on_the_growth_of_sampling_time_with_pixels():
    from genreview.publish.claims import Test, rule_resolution

    s = {"models": {"pixelcnn": {"resolution": {
        "sizes": [[1, 7, 7], [1, 14, 14], [1, 28, 28]], "pixels": [49, 196, 784], "sample_slope": [0.95, 0.97, 0.96],
        "pass_slope": [0.40, 0.45, 0.42], "sequential_steps": [49, 196, 784]}}}}
    test, ev, numbers = rule_resolution(s, {"a": "pixelcnn"}, 0.1)
    assert isinstance(test, Test) and test["metric"] == "resolution_slope" and test["claimed"] == "higher"
    assert test["a"]["n"] == 3 and numbers["sample_slope"] == pytest.approx(0.96) and "784 sequential" in ev
    j = CL.judge(**test)
    assert j.kind == "supported", j
    assert rule_resolution({"models": {"pixelcnn": {}}}, {"a": "pixelcnn"}, 0.1)[0] == "not measured"


def test_a_model_that_never_reached_the_threshold_is_judged_on_its_lower_bound():
    """Training time to the FD threshold of a model whose seeds never reached it is at least its whole training:
    the claim "StyleGAN trains more slowly than DCGAN" is judged on that bound, and a verdict stands only where it
    calls the censored model the slower one; otherwise it is budget-limited."""
    from genreview.publish.claims import Test, _censored, rule_compare
    from genreview.summary.stats import stat

    def curve(times, n_never, bound):
        return {"to_threshold": {"wall": stat(times), "images": stat(times), "n_never": n_never,
                                 "at_least": {"wall": stat(bound), "images": stat(bound)}}}
    models = {n: {"display": n.upper(), "n_ok": 3, "family": "gan", "metrics": {}} for n in ("stylegan", "dcgan")}
    summary = {"models": models, "order": list(models),
               "curves": {"stylegan": curve([], 3, [300.0, 310.0, 320.0]),
                          "dcgan": curve([90.0, 95.0, 100.0], 0, [90.0, 95.0, 100.0])}}
    c = {"quantity": "curve:wall", "a": "stylegan", "b": "dcgan", "expect": "higher"}
    test, ev, numbers = rule_compare(summary, c, 0.1)
    assert isinstance(test, Test) and test["a"]["values"] == [300.0, 310.0, 320.0]
    assert numbers["censored"] == ["stylegan"] and "never reached the FD threshold in 3 of 3 seeds" in ev

    def judged(verdict, claimed="higher", censored=("stylegan",)):
        row = {"verdict": verdict, "reason": None, "numbers": {"a": "stylegan", "b": "dcgan",
                                                                "censored": list(censored)}}
        _censored(summary, row, {"claimed": claimed})
        return row["verdict"], row["reason"]
    assert judged("supported") == ("supported", None), "slower even by its lower bound: stands"
    assert judged("contradicted")[0] == "inconclusive", "faster than the other by a lower bound says nothing"
    assert judged("contradicted")[1].startswith("budget-limited: STYLEGAN never reached")
    assert judged("equivalent")[0] == "inconclusive"
    assert judged("supported", censored=("dcgan",))[0] == "inconclusive", "above the other's lower bound only"
    assert judged("contradicted", censored=("dcgan",)) == ("contradicted", None)
    assert judged("contradicted", claimed="lower") == ("contradicted", None), "claimed faster, but slower: stands"
    summary["curves"]["dcgan"] = curve([], 3, [50.0])   # neither reached it: still judged on the bounds, and
    assert judged("supported", censored=("stylegan", "dcgan"))[0] == "inconclusive"   # no verdict can stand
    del summary["curves"]["dcgan"]
    assert rule_compare(summary, c, 0.1)[0] == "not measured"
