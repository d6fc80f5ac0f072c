"""Render the paper's Jinja2 templates (paper/**/*.tex.j2) into LaTeX.

Delimiters are LaTeX-safe: \\VAR{expr} prints, \\BLOCK{stmt} controls, %# comments.
Undefined names are errors, so a placeholder can never reach the PDF unfilled.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import jinja2

from . import formatting as F
from . import verdicts as V
from ..files import atomic_path, load_json
from ..training.config import CLEARLY_FASTER


def environment(template_dir: str | Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir)),
        block_start_string=r"\BLOCK{", block_end_string="}",
        variable_start_string=r"\VAR{", variable_end_string="}",
        comment_start_string=r"\#{", comment_end_string="}",
        line_comment_prefix="%#", trim_blocks=True, lstrip_blocks=True,
        autoescape=False, undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
        extensions=["jinja2.ext.do"],
    )
    env.globals.update(fmt=F.fmt, pm=F.pm, compare=V.compare, rank=V.ordinal_rank,
                       evidence=V.evidence, swaps=V.swaps,
                       times=F.times, duration=F.duration, tex=tex_escape, sci=F.sci,
                       sampler_study=V.sampler_study, guidance_study=V.guidance_study,
                       best_point=V.best_point, small_loss=V.SMALL_LOSS,
                       dynamics_study=V.dynamics_study, stability_verdict=V.stability_verdict, beta_study=V.beta_study,
                       sensitivity_verdict=V.sensitivity_verdict, equilibrium=V.equilibrium,
                       probe_metric=V.probe_metric, study_alpha=V.STUDY_ALPHA, started_share=V.STARTED,
                       collapse_precision=V.COLLAPSE_PRECISION, collapse_coverage=V.COLLAPSE_COVERAGE,
                       equilibrium_tol=V.EQUILIBRIUM_TOL, clearly_faster=CLEARLY_FASTER,
                       compute_study=V.compute_study)
    env.filters.update(fmt=F.fmt, pm=F.pm, tex=tex_escape, duration=F.duration)
    return env


def join_and(items) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1] if items else ""


def tex_escape(s) -> str:
    repl = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
            "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}
    return "".join(repl.get(c, c) for c in str(s))


def context(summary: dict, out_dir: Path, figures: Path, tables: Path) -> dict:
    m = summary["models"]
    return {
        "s": summary, "m": m, "ref": summary["reference"], "clf": summary["classifier"],
        "metric": lambda name, key: m[name]["metrics"].get(key, {"mean": None, "std": None, "n": 0}),
        "has": lambda name: name in m and m[name]["n_ok"] > 0,
        "ok": [n for n in summary["order"] if m[n]["n_ok"] > 0],
        "names": lambda keys: join_and([m[k]["display"] for k in keys]),
        # any model's name as the paper prints it: sampling models and image-to-image models alike
        "display": lambda k: ((m.get(k) or summary.get("translation", {}).get(k) or {}).get("display")
                              or tex_escape(k)),
        "figdir": Path(os.path.relpath(figures, out_dir)).as_posix(),
        "tabdir": Path(os.path.relpath(tables, out_dir)).as_posix(),
    }


def render(template_dir: str | Path, summary_path: str | Path, out_dir: str | Path,
           figures: str | Path, tables: str | Path, claims: str | Path | None = None,
           provenance: str | Path | None = None) -> list[Path]:
    """Render every *.tex.j2 under template_dir into out_dir (same relative paths, .tex)
    and copy the other files (the bibliography) beside them. `claims`: the ledger's verdicts
    (genreview.publish.claims), as `claims` in the templates (None without it). `provenance`: the build's
    provenance.json (genreview.provenance), as `prov` (None without it)."""
    template_dir, out_dir = Path(template_dir), Path(out_dir)
    summary = load_json(summary_path)
    env = environment(template_dir)
    ctx = context(summary, out_dir, Path(figures), Path(tables))
    ctx["claims"] = load_json(claims) if claims else None
    ctx["compare"] = V.Ledger(ctx["claims"]).compare  # the ledger's settings and adjusted p-values
    ctx["prov"] = load_json(provenance) if provenance else None
    written = []
    for src in sorted(template_dir.rglob("*")):
        if src.is_dir():
            continue
        rel = src.relative_to(template_dir)
        if src.name.endswith(".tex.j2"):
            dst = out_dir / str(rel)[: -len(".j2")]
            try:
                text = env.get_template(rel.as_posix()).render(**ctx)
            except jinja2.TemplateError as e:
                lineno = getattr(e, "lineno", None)
                where = f"{src}:{lineno}" if lineno else str(src)
                raise RenderError(f"{where}: {type(e).__name__}: {e}") from e
            with atomic_path(dst) as tmp:
                tmp.write_text(f"% Generated from {src.as_posix()}; edit that file, not this one.\n" + text)
        elif src.suffix in (".bib", ".bst", ".sty", ".cls"):
            dst = out_dir / rel
            with atomic_path(dst) as tmp:  # a declared output (the .bib): never half-copied
                shutil.copyfile(src, tmp)
        else:
            continue
        written.append(dst)
    print(f"rendered {len(written)} files into {out_dir}")
    return written


class RenderError(RuntimeError):
    pass
