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
from pathlib import Path
from types import SimpleNamespace

import pytest

from genreview.models import DISPLAY
from genreview.paths import Paths
from genreview.report import fmt, pm
from genreview.tables import QUALITY

from conftest import DEBIAN_DIR, copy_workflow, load_raw_config, snakemake_cmd, snakemake_env

pytestmark = pytest.mark.slow

CORES = os.environ.get("GENREVIEW_TEST_CORES", "2")
MAX_THREADS = os.environ.get("GENREVIEW_TEST_MAX_THREADS", "1")
TIMEOUT = int(os.environ.get("GENREVIEW_TEST_PIPELINE_TIMEOUT", "1200"))
CAPTION = "Sample quality under the shared protocol"
P = Paths("smoke")


def _snakemake(workdir: Path, *args: str, timeout: int = TIMEOUT) -> subprocess.CompletedProcess:
    cmd = snakemake_cmd("--cores", CORES, "--max-threads", MAX_THREADS, "--config", "profile=smoke", *args)
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
    raw = load_raw_config()
    raw["profile"] = "smoke"
    raw["data"] = {"root": str(fmnist_root), "debian_dir": str(DEBIAN_DIR)}
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
                "guidance", "dynamics", "probe", "figures", "tables", "render", "latex", "all"}
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
    """What pdftotext shows for a cell written by fmt/pm ($a \\pm b$ -> 'a ± b')."""
    return cell.replace("$", "").replace(r" \pm ", " ± ")


def _expected_rows(summary: dict, reference: dict) -> list[list[str]]:
    specs = [_spec(q) for q in QUALITY]
    rows = [["Real data (floor)", *[fmt(reference["floor"][k] * s, **kw) for k, s, kw in specs]]]
    for name in summary["order"]:
        m = summary["models"][name]
        rows.append([m["display"], *[_as_text(pm(m["metrics"][k], scale=s, **kw)) for k, s, kw in specs],
                     f"{m['n_ok']}/{m['n_seeds']}"])
    rows.append(["Uniform noise (ceiling)", *[fmt(reference["ceiling"][k] * s, **kw) for k, s, kw in specs]])
    return rows


def _formatted_values(summary: dict, reference: dict) -> set[str]:
    """Every number in the results files, formatted the ways the paper formats numbers."""
    specs = [_spec(q) for q in QUALITY] + [(None, 1.0, {})]
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
        for key in [q[0] for q in QUALITY]:
            assert s["models"][name]["metrics"][key]["values"] == [metrics[key]], f"{name} {key}"
    assert ref["floor"]["fd"] < ref["ceiling"]["fd"], "real images must score better than uniform noise"


# --------------------------------------------------------------------------- incremental rebuild

def test_editing_a_template_reruns_only_render_and_latex(pipeline):
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
    assert _rules_in(dry.stdout + dry.stderr) == {"render", "latex", "all"}, (
        f"after editing {template.name} snakemake plans:\n{dry.stdout[-3000:]}")

    before = {p: p.stat().st_mtime_ns for p in (wd / P.results).rglob("*") if p.is_file()}
    r = _snakemake(wd)
    assert r.returncode == 0, _explain(wd, r)
    assert _rules_in(r.stdout + r.stderr) == {"render", "latex", "all"}, r.stderr[-3000:]
    after = {p: p.stat().st_mtime_ns for p in (wd / P.results).rglob("*") if p.is_file()}
    assert before == after, "a template edit touched results files"
    assert marker in " ".join(_pdftotext(pipeline.pdf).split()), "the edited text did not reach the PDF"
