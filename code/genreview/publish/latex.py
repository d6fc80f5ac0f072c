"""Build the PDF with latexmk (pdflatex + bibtex), and explain a failure in terms of the
template an author edits rather than the generated file."""
from __future__ import annotations

import difflib
import re
import shutil
import subprocess
from pathlib import Path

from ..files import atomic_path

ERROR_LINE = re.compile(r"^(?:\./)?(?P<file>[^:\s]+\.tex):(?P<line>\d+): (?P<msg>.*)$")


class LatexError(RuntimeError):
    pass


def _template_of(tex: Path) -> str | None:
    first = tex.read_text(errors="replace").split("\n", 1)[0] if tex.exists() else ""
    m = re.match(r"% Generated from (\S+?);", first)
    return m.group(1) if m else None


def _template_line(template: Path, text: str) -> int | None:
    if not template.exists() or not text.strip():
        return None
    lines = template.read_text(errors="replace").splitlines()
    match = difflib.get_close_matches(text.strip(), [ln.strip() for ln in lines], n=1, cutoff=0.6)
    return [ln.strip() for ln in lines].index(match[0]) + 1 if match else None


def explain(tex_dir: Path, log_file: Path, context: int = 2) -> str:
    """The failing lines, with the generated file, its template and the nearest template line."""
    log = log_file.read_text(errors="replace") if log_file.exists() else ""
    out = []
    for ln in log.splitlines():
        m = ERROR_LINE.match(ln)
        if not m or "Fatal error occurred" in m["msg"]:
            continue
        tex = tex_dir / m["file"]
        n = int(m["line"])
        lines = tex.read_text(errors="replace").splitlines() if tex.exists() else []
        template = _template_of(tex)
        head = f"LaTeX error in {tex} line {n}: {m['msg']}"
        if template:
            tl = _template_line(Path(template), lines[n - 1] if 0 < n <= len(lines) else "")
            head += f"\n  produced by the template {template}" + (f" (near line {tl})" if tl else "")
        snippet = [f"  {'>' if i + 1 == n else ' '} {i + 1:4d} | {lines[i]}"
                   for i in range(max(0, n - 1 - context), min(len(lines), n + context))]
        out.append("\n".join([head, *snippet]))
    if not out:  # an error latexmk reports without file:line (a missing file, bibtex)
        bang = [ln for ln in log.splitlines() if ln.startswith("!")]
        out.append("LaTeX failed: " + ("; ".join(bang[:5]) if bang else f"see {log_file}"))
    return "\n\n".join(dict.fromkeys(out))


def build_pdf(tex_dir: str | Path, out_pdf: str | Path, main: str = "main.tex") -> Path:
    tex_dir, out_pdf = Path(tex_dir), Path(out_pdf)
    if shutil.which("latexmk") is None:
        raise LatexError("latexmk not found: install the Debian packages latexmk texlive-latex-base "
                         "texlive-latex-recommended (sudo apt-get install ...), or run ./bootstrap.sh")
    cmd = ["latexmk", "-pdf", "-bibtex", "-interaction=nonstopmode", "-halt-on-error", "-file-line-error", main]
    r = subprocess.run(cmd, cwd=tex_dir, capture_output=True, text=True)
    stem = Path(main).stem
    if r.returncode != 0:
        raise LatexError(explain(tex_dir, tex_dir / f"{stem}.log")
                         + f"\n\n(full log: {tex_dir / (stem + '.log')}; fix the template, then rerun snakemake)")
    with atomic_path(out_pdf) as tmp:
        shutil.copyfile(tex_dir / f"{stem}.pdf", tmp)
    return out_pdf
