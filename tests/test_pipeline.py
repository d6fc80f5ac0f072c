"""End to end: the smoke profile builds the PDF from real data in a temporary copy of the
workflow; the results table in the PDF shows exactly the numbers in the results files; and
editing one template reruns only the presentation steps.

One snakemake run (module-scoped fixture) serves every check here. Jobs run with one thread
each (--max-threads 1): on a small machine shared with other work, two spinning OpenMP threads
per job are slower than two one-thread jobs side by side.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from genreview.models import DISPLAY
from genreview.paths import Paths
from genreview.publish.formatting import fmt, pm
from genreview.publish.tables.results import OTHER_N, QUALITY, quality_columns

from conftest import DEBIAN_DIR, copy_workflow, load_raw_config, snakemake_cmd, snakemake_env

pytestmark = pytest.mark.slow

CORES = os.environ.get("GENREVIEW_TEST_CORES", "2")
MAX_THREADS = os.environ.get("GENREVIEW_TEST_MAX_THREADS", "1")
TIMEOUT = int(os.environ.get("GENREVIEW_TEST_PIPELINE_TIMEOUT", "1200"))
CAPTION = "Sample quality under the shared protocol"
P = Paths("smoke")


def _snakemake(workdir: Path, *args: str, timeout: int = TIMEOUT) -> subprocess.CompletedProcess:
    # Targets and flags before --config: it takes every word after it up to the next flag.
    cmd = snakemake_cmd(*args, "--cores", CORES, "--max-threads", MAX_THREADS, "--config", "profile=smoke")
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=snakemake_env())


def _explain(workdir: Path, r: subprocess.CompletedProcess) -> str:
    logs = []
    for log in sorted((workdir / P.logs).rglob("*.log")) if (workdir / P.logs).exists() else []:
        logs.append(f"--- {log.relative_to(workdir)}\n{log.read_text(errors='replace')[-1500:]}")
    return f"snakemake exited {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}\n" + "\n".join(logs[-4:])


def _pdftotext(pdf: Path, *args: str) -> str:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    return subprocess.run(["pdftotext", "-layout", *args, str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout


def _rules_in(output: str) -> set[str]:
    """Rules snakemake ran (or, in a dry run, would run), from its job log lines."""
    return set(re.findall(r"^\s*(?:local)?rule (\w+):", output, flags=re.M))


@pytest.fixture(scope="module")
def pipeline(fmnist_root, tmp_path_factory):
    for tool in ("latexmk", "pdflatex", "bibtex"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (Debian: latexmk texlive-latex-base texlive-latex-recommended)")
    # a data root of its own (the prepared images linked, no manifest), so that the build runs prepare_data
    # whatever other tests wrote beside the shared images
    root = tmp_path_factory.mktemp("pipeline_data")
    for d in fmnist_root.iterdir():
        if d.is_dir():
            (root / d.name).symlink_to(d, target_is_directory=True)
    raw = load_raw_config()
    raw["profile"] = "smoke"
    raw["data"] = {"root": str(root), "debian_dir": str(DEBIAN_DIR)}
    workdir = copy_workflow(tmp_path_factory.mktemp("workflow"), raw)
    r = _snakemake(workdir)
    assert r.returncode == 0, _explain(workdir, r)
    pdf = workdir / P.pdf
    assert pdf.exists() and pdf.stat().st_size > 10_000, f"{pdf} was not built"
    summary = json.loads((workdir / P.summary).read_text())
    reference = json.loads((workdir / P.reference).read_text())
    return SimpleNamespace(dir=workdir, pdf=pdf, run=r, summary=summary, reference=reference)


def test_pipeline_builds_the_pdf(pipeline):
    ran = _rules_in(pipeline.run.stdout + pipeline.run.stderr)
    expected = {"prepare_data", "train_classifier", "train", "evaluate", "reference", "summarize", "sweep",
                "guidance", "dynamics", "probe", "figures", "tables", "render", "latex", "latest_pdf", "all"}
    assert expected <= ran, f"rules that did not run: {expected - ran}"
    s = pipeline.summary
    models = load_raw_config()["models"]
    translators = [m for m in models if DISPLAY[m][1] == "translation"]
    assert s["profile"] == "smoke" and s["order"] == [m for m in models if m not in translators]
    assert sorted(s["translation"]) == sorted(translators), "image-to-image models are kept out of the sample rankings"
    for name in s["order"]:
        assert s["models"][name]["n_ok"] == 1, f"{name} did not train cleanly in the smoke profile: {s['models'][name]}"
    for name in translators:
        t = s["translation"][name]
        assert t["n_ok"] == 1 and t["translation"], f"{name} was not scored on translated test images: {t}"
    assert set(s["dynamics"]) and all(d["runs"] for d in s["dynamics"].values()), "the dynamics study is empty"
    assert all(p["n_ok"] == 1 for p in s["probes"].values()), s["probes"]



def test_outputs_are_kept_per_profile(pipeline):
    """Figures, tables and the paper live under the build's tag, so another profile's build never overwrites
    them; build/review.pdf is a copy of the latest build's PDF."""
    wd = pipeline.dir
    assert (P.figures, P.tables, P.pdf) == ("figures/smoke", "tables/smoke", "build/smoke/review.pdf")
    assert (wd / P.figures / "samples.pdf").exists() and (wd / P.tables / "results.tex").exists()
    assert (wd / P.paper_build / "main.tex").exists()
    assert (wd / P.latest_pdf).read_bytes() == pipeline.pdf.read_bytes(), "build/review.pdf is not the latest PDF"


def test_first_page_names_the_profile(pipeline):
    page1 = _pdftotext(pipeline.pdf, "-f", "1", "-l", "1")
    assert re.search(r"profile:?\s+smoke", page1), f"page 1 does not name the build profile:\n{page1[:1500]}"


# --------------------------------------------------------------------------- Table 1

def _table_rows(text: str) -> list[list[str]]:
    """The body rows of Table 1 as cells (pdftotext -layout separates cells by 2+ spaces)."""
    assert CAPTION in text, f"no table captioned {CAPTION!r} in the PDF"
    lines = text[text.index(CAPTION):].splitlines()
    head = next(i for i, ln in enumerate(lines) if re.match(r"\s*Model\s{2,}FD\b", ln))
    rows = []
    for ln in lines[head + 1:]:
        if not ln.strip():
            if rows:
                break
            continue
        rows.append([c for c in re.split(r"\s{2,}", ln.strip().replace("\u2212", "-"))])
        if ln.strip().startswith("Uniform noise"):
            break
    return rows


def _spec(q):
    key, _header, scale, *rest = q
    decimals = rest[0] if rest else None
    return key, scale, ({"decimals": decimals} if decimals is not None else {})


def _as_text(cell: str) -> str:
    """What pdftotext shows for a cell written by fmt/pm ($a \\pm b$ -> 'a ± b'; the other-N mark -> '†')."""
    return cell.replace(OTHER_N, "\u2020").replace("$", "").replace(r" \pm ", " ± ")


def _side(value, s, kw) -> str:
    return fmt(value * s, **kw) if value is not None else "n/a"


def _expected_rows(summary: dict, reference: dict) -> list[list[str]]:
    """Table 1 as the results files give it, each column at the decimals the table chose for it
    (tables.quality_columns), an FD measured at a model's own N marked."""
    specs = [_spec(q) for q in quality_columns(summary)]
    rows = [["Real data (floor)", *[_side(reference["floor"].get(k), s, kw) for k, s, kw in specs]]]
    for name in summary["order"]:
        m = summary["models"][name]
        cells = [_as_text(pm(m["metrics"].get(k), scale=s, **kw)) for k, s, kw in specs]
        if m["metrics"]["n"]["mean"] != summary["n_samples"]:
            cells[0] += _as_text(OTHER_N)
        rows.append([m["display"], *cells, f"{m['n_ok']}/{m['n_seeds']}"])
    rows.append(["Uniform noise (ceiling)", *[_side(reference["ceiling"].get(k), s, kw) for k, s, kw in specs]])
    return rows


def _formatted_values(summary: dict, reference: dict) -> set[str]:
    """Every number in the results files, formatted the ways the paper formats numbers."""
    specs = [_spec(q) for q in QUALITY + quality_columns(summary)] + [(None, 1.0, {})]
    out: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            if {"mean", "std", "n"} <= node.keys():
                for _, s, kw in specs:
                    out.update(re.findall(r"-?\d+(?:\.\d+)?", pm(node, scale=s, **kw)))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
        elif isinstance(node, (int, float)) and not isinstance(node, bool):
            for _, s, kw in specs:
                out.add(fmt(node * s, **kw))

    walk(summary)
    walk(reference)
    return out


def test_results_table_shows_the_results_files(pipeline):
    text = _pdftotext(pipeline.pdf)
    rows = _table_rows(text)
    want = _expected_rows(pipeline.summary, pipeline.reference)
    assert [r[0] for r in rows] == [w[0] for w in want], f"Table 1's rows: {[r[0] for r in rows]}"
    allowed = _formatted_values(pipeline.summary, pipeline.reference)
    for row, expected in zip(rows, want):
        numbers = [n for cell in row[1:] if not re.fullmatch(r"\d+/\d+", cell)
                   for n in re.findall(r"-?\d+(?:\.\d+)?", cell)]
        missing = [n for n in numbers if n not in allowed]
        assert not missing, f"Table 1 row {row[0]!r}: {missing} appear in no results file (row {row})"
        got = row[1:1 + len(QUALITY)]
        assert got == expected[1:1 + len(QUALITY)], (
            f"Table 1 row {row[0]!r} shows {got}, the results files give {expected[1:1 + len(QUALITY)]}")
        if len(expected) > 1 + len(QUALITY):
            assert row[-1] == expected[-1], f"seeds column of {row[0]!r}: {row[-1]} vs {expected[-1]}"


def test_table_values_come_from_the_run(pipeline):
    """The reference and summary agree with the per-run files they were collected from."""
    s, ref = pipeline.summary, pipeline.reference
    assert s["reference"] == ref
    for name in s["order"]:
        metrics = json.loads((pipeline.dir / P.eval_dir(name, 0) / "metrics.json").read_text())
        for key in [q[0] for q in QUALITY]:  # a metric that could not be computed (None) has no value
            assert s["models"][name]["metrics"][key]["values"] == [v for v in [metrics[key]] if v is not None], (
                f"{name} {key}")
    assert ref["floor"]["fd"] < ref["ceiling"]["fd"], "real images must score better than uniform noise"


# --------------------------------------------------------------------------- incremental rebuild

def test_editing_a_template_reruns_only_render_latex_and_the_pdf_copy(pipeline):
    wd = pipeline.dir
    dry = _snakemake(wd, "-n", timeout=300)
    assert dry.returncode == 0, _explain(wd, dry)
    assert not _rules_in(dry.stdout + dry.stderr), (
        f"a finished build should be up to date, but snakemake would rerun:\n{dry.stdout[-3000:]}")

    main = (wd / P.templates / "main.tex.j2").read_text()
    section = re.search(r"\\input\{(sections/[^}]+)\}", main).group(1)
    template = wd / P.templates / f"{section}.tex.j2"
    marker = "Edited by the test 8472"  # short words: LaTeX does not hyphenate them
    template.write_text(template.read_text() + f"\n\\par {marker}.\n")

    dry = _snakemake(wd, "-n", timeout=300)
    assert dry.returncode == 0, _explain(wd, dry)
    assert _rules_in(dry.stdout + dry.stderr) == {"render", "latex", "latest_pdf", "all"}, (
        f"after editing {template.name} snakemake plans:\n{dry.stdout[-3000:]}")

    before = {p: p.stat().st_mtime_ns for p in (wd / P.results).rglob("*") if p.is_file()}
    r = _snakemake(wd)
    assert r.returncode == 0, _explain(wd, r)
    assert _rules_in(r.stdout + r.stderr) == {"render", "latex", "latest_pdf", "all"}, r.stderr[-3000:]
    after = {p: p.stat().st_mtime_ns for p in (wd / P.results).rglob("*") if p.is_file()}
    assert before == after, "a template edit touched results files"
    assert marker in " ".join(_pdftotext(pipeline.pdf).split()), "the edited text did not reach the PDF"


# --------------------------------------------------------------------------- a reviewer's re-run

def test_reproduce_the_same_seed_lands_with_identical_numbers(pipeline):
    wd, model = pipeline.dir, "gmm"  # the cheapest model
    paper_runs = [wd / P.run_dir(model, 0), wd / P.eval_dir(model, 0), wd / P.summary]
    before = {p: p.stat().st_mtime_ns for d in paper_runs for p in ([d] if d.is_file() else d.rglob("*"))}
    target = f"{P.reproduce_dir(model, 0)}/report.json"
    r = _snakemake(wd, target, timeout=600)
    assert r.returncode == 0, _explain(wd, r)
    ran = _rules_in(r.stdout + r.stderr)
    assert "reproduce" in ran and not ran & {"train", "evaluate", "summarize"}, f"ran {ran}: the paper's runs reran"
    report = json.loads((wd / target).read_text())
    assert report["verdict"] == "lands" and report["same_seed"], report["metrics"]
    assert report["identical"] is True, f"same seed, machine and profile, yet {report['differing']} differ"
    assert "Verdict: lands" in r.stdout + r.stderr, "the job prints report.md"
    after = {p: p.stat().st_mtime_ns for d in paper_runs for p in ([d] if d.is_file() else d.rglob("*"))}
    assert before == after, "the re-run touched the paper's runs"


# --------------------------------------------------------------------------- delivering the paper

def test_provenance_records_every_compute_job(pipeline):
    wd = pipeline.dir
    record = json.loads((wd / P.provenance).read_text())
    assert record["profile"] == "smoke" and re.fullmatch(r"[0-9a-f]{64}", record["config_sha256"]), record
    assert record["config_hash"] == record["config_sha256"][:len(record["config_hash"])]
    assert record["hardware"]["cores"] >= 1 and record["hardware"]["gpu"], record["hardware"]
    rules = {r["rule"]: r for r in record["rules"]}
    n_runs = len(pipeline.summary["order"]) + len(pipeline.summary["translation"])
    assert rules["train"]["n_jobs"] == rules["evaluate"]["n_jobs"] == n_runs, {k: r["n_jobs"] for k, r in rules.items()}
    assert {"prepare_data", "train_classifier", "reference", "sweep", "dynamics", "summarize"} <= set(rules)
    assert not set(rules) & {"figures", "tables", "claims", "render", "latex", "latest_pdf", "provenance", "arxiv"}, (
        "presentation rules run after the record and must not be in it")
    assert record["missing"] == [], f"compute jobs without a benchmark file: {record['missing']}"
    vae = next(j for j in rules["train"]["jobs"] if j["job"] == "vae_seed0")
    bench = (wd / P.benchmarks / "train" / "vae_seed0.tsv").read_text().splitlines()
    assert vae["wall_s"] == pytest.approx(float(bench[1].split("\t")[0])), "the wall time is the benchmark file's"
    assert record["total"]["wall_s"] == pytest.approx(sum(r["wall_s"] for r in record["rules"]))
    appendix = " ".join(_pdftotext(pipeline.pdf).split())
    assert "Provenance" in appendix and record["config_hash"] in appendix, "the appendix does not print the record"


def test_arxiv_tarball_compiles_on_its_own(pipeline, tmp_path):
    wd = pipeline.dir
    r = _snakemake(wd, "arxiv", timeout=300)
    assert r.returncode == 0, _explain(wd, r)
    with tarfile.open(wd / P.arxiv, "r:gz") as tar:
        names = tar.getnames()
        tar.extractall(tmp_path / "arxiv", filter="data")
    assert "main.tex" in names and "main.bbl" in names, names
    assert not [n for n in names if n.rsplit(".", 1)[-1] in ("log", "aux", "blg", "fls", "fdb_latexmk", "pdf")
                and not n.startswith("figures/")], f"build litter in the tarball: {names}"
    figures = [n for n in names if n.startswith("figures/")]
    assert "figures/samples.pdf" in figures and all((wd / P.figures / n.split("/", 1)[1]).exists() for n in figures)
    assert any(n.startswith("tables/") for n in names), names
    for n in names:
        if n.endswith(".tex"):
            assert "../" not in (tmp_path / "arxiv" / n).read_text(), f"{n} points outside the tarball"
    src = tmp_path / "arxiv"
    latex = subprocess.run(["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "main.tex"], cwd=src,
                           capture_output=True, text=True, timeout=300)
    assert latex.returncode == 0, latex.stdout[-3000:] + (src / "main.log").read_text(errors="replace")[-3000:]
    text = " ".join(_pdftotext(src / "main.pdf").split())
    assert CAPTION in text and "Provenance" in text, "the tarball's PDF lacks Table 1 or the appendix"
    assert "[?]" not in text, "unresolved citations: the .bbl was not used"


def test_snakemake_report_shows_the_figures(pipeline):
    wd = pipeline.dir
    report = wd / P.report
    report.parent.mkdir(parents=True, exist_ok=True)
    r = _snakemake(wd, "--report", str(report), timeout=300)
    assert r.returncode == 0, _explain(wd, r)
    html = report.read_text(errors="replace")
    assert "samples.pdf" in html and "provenance.json" in html, "the report lacks the figures or the record"
