"""Build the PDF with latexmk (pdflatex + bibtex), and explain a failure in terms of the
template an author edits rather than the generated file."""
from __future__ import annotations

import difflib
import os
import re
import shutil
import subprocess
from pathlib import Path

from ..files import atomic_path

ERROR_LINE = re.compile(r"^(?:\./)?(?P<file>[^:\s]+\.tex):(?P<line>\d+): (?P<msg>.*)$")
# LaTeX's message for an environment left open: it notices at the \end that closes the enclosing one.
ENDED_BY = re.compile(r"\\begin\{(?P<env>[^}]+)\} on input line (?P<line>\d+) ended by \\end\{")
BEGIN_END = re.compile(r"(?<!\\)\\(?P<kind>begin|end)\s*\{(?P<env>[^}]+)\}")
# Where the lines after an error stop belonging to its message: a blank line, TeX's context (l.<n> ...),
# or the help that follows every LaTeX Error.
MESSAGE_END = re.compile(r"^(?:\s*$|l\.\d+ |See the LaTeX manual|Type  H <return>|\s*\.\.\.\s*$)")
WRAP = 79  # TeX's default max_print_line: a log line this long was cut and goes on in the next one


class LatexError(RuntimeError):
    pass


def _template_of(tex: Path) -> str | None:
    first = tex.read_text(errors="replace").split("\n", 1)[0] if tex.exists() else ""
    m = re.match(r"% Generated from (\S+?);", first)
    return m.group(1) if m else None


def _template_line(template: Path, text: str, near: int | None = None) -> int | None:
    """The template line that produced `text`: an exact match (the nearest to `near`, the rendered line
    less the generated header, when several), else the closest in wording."""
    if not template.exists() or not text.strip():
        return None
    lines = [ln.strip() for ln in template.read_text(errors="replace").splitlines()]
    exact = [i + 1 for i, ln in enumerate(lines) if ln == text.strip()]
    if exact:
        return min(exact, key=lambda i: abs(i - near)) if near else exact[0]
    match = difflib.get_close_matches(text.strip(), lines, n=1, cutoff=0.6)
    return lines.index(match[0]) + 1 if match else None


def unclosed(text: str) -> list[tuple[str, int]]:
    """(environment, line) of each \\begin without its \\end in `text`, LaTeX comments aside; an \\end
    closes the innermost open environment of its name."""
    stack: list[tuple[str, int]] = []
    for n, line in enumerate(text.splitlines(), 1):
        line = re.sub(r"(?<!\\)%.*", "", line)
        for m in BEGIN_END.finditer(line):
            if m["kind"] == "begin":
                stack.append((m["env"], n))
            else:
                for i in range(len(stack) - 1, -1, -1):
                    if stack[i][0] == m["env"]:
                        del stack[i:]
                        break
    return stack


def _opened_at(tex_dir: Path, env: str, line: int) -> Path | None:
    """The rendered file whose `line` opens `env` (LaTeX names the line, not the file): the one that leaves
    it open when several have such a line."""
    found = []
    for tex in sorted(tex_dir.rglob("*.tex")):
        lines = tex.read_text(errors="replace").splitlines()
        if 0 < line <= len(lines) and f"\\begin{{{env}}}" in lines[line - 1].replace(" ", ""):
            found.append(tex)
    still_open = [t for t in found if (env, line) in unclosed(t.read_text(errors="replace"))]
    return (still_open or found or [None])[0]


def _opening(tex_dir: Path, env: str, line: int) -> str:
    """Where an environment left open was opened: the rendered file and line, its template and the template
    line (the template's own unclosed \\begin of that name when it has one, else the matching line)."""
    tex = _opened_at(tex_dir, env, line)
    if tex is None:
        return f"\n  the environment {env} was opened on line {line} of one of the files under {tex_dir}"
    lines = tex.read_text(errors="replace").splitlines()
    where = f"\n  the environment {env} was opened at {tex} line {line}, and never closed"
    template = _template_of(tex)
    if template:
        src = Path(template)
        open_there = [n for e, n in unclosed(src.read_text(errors="replace"))
                      if e == env] if src.exists() else []
        tl = open_there[-1] if open_there else _template_line(src, lines[line - 1], near=line - 1)
        where += f"\n  opened by the template {template}" + (f" line {tl}: add its \\end{{{env}}}" if tl else "")
    return where + f"\n    {line:4d} | {lines[line - 1]}"


def _message(log: list[str], i: int, first: str) -> str:
    """The whole message of the error on log line i: TeX cuts log lines at 79 characters."""
    msg, prev = first, log[i]
    for ln in log[i + 1:]:
        if MESSAGE_END.match(ln) or ERROR_LINE.match(ln) or ln.startswith("!"):
            break
        msg += ("" if len(prev) == WRAP else " ") + ln
        prev = ln
    return msg


def explain(tex_dir: Path, log_file: Path, context: int = 2) -> str:
    """The failing lines, with the generated file, its template and the nearest template line; for an
    environment left open, where it was opened."""
    tex_dir = Path(tex_dir)
    log = log_file.read_text(errors="replace").splitlines() if log_file.exists() else []
    out = []
    for i, ln in enumerate(log):
        m = ERROR_LINE.match(ln)
        if not m or "Fatal error occurred" in m["msg"]:
            continue
        msg = _message(log, i, m["msg"])
        tex = tex_dir / m["file"]
        n = int(m["line"])
        lines = tex.read_text(errors="replace").splitlines() if tex.exists() else []
        template = _template_of(tex)
        head = f"LaTeX error in {tex} line {n}: {msg}"
        env = ENDED_BY.search(msg)
        if env:
            head += _opening(tex_dir, env["env"], int(env["line"]))
            head += f"\n  (LaTeX noticed it at {tex} line {n}"
            head += f", from the template {template})" if template else ")"
        elif template:
            tl = _template_line(Path(template), lines[n - 1] if 0 < n <= len(lines) else "", near=n - 1)
            head += f"\n  produced by the template {template}" + (f" (near line {tl})" if tl else "")
        snippet = [f"  {'>' if k + 1 == n else ' '} {k + 1:4d} | {lines[k]}"
                   for k in range(max(0, n - 1 - context), min(len(lines), n + context))]
        out.append("\n".join([head, *snippet]))
    if not out:  # an error latexmk reports without file:line (a missing file, bibtex)
        bang = [_message(log, i, ln) for i, ln in enumerate(log) if ln.startswith("!")]
        out.append("LaTeX failed: " + ("; ".join(bang[:5]) if bang else f"see {log_file}"))
    return "\n\n".join(dict.fromkeys(out))


def build_pdf(tex_dir: str | Path, out_pdf: str | Path, main: str = "main.tex") -> Path:
    tex_dir, out_pdf = Path(tex_dir), Path(out_pdf)
    if shutil.which("latexmk") is None:
        raise LatexError("latexmk not found: install the Debian packages latexmk texlive-latex-base "
                         "texlive-latex-recommended (sudo apt-get install ...), or run ./bootstrap.sh")
    cmd = ["latexmk", "-pdf", "-bibtex", "-interaction=nonstopmode", "-halt-on-error", "-file-line-error", main]
    # max_print_line: TeX cuts log lines at 79 characters by default, and an error message with them.
    env = {**os.environ, "max_print_line": "10000"}
    r = subprocess.run(cmd, cwd=tex_dir, capture_output=True, text=True, env=env)
    stem = Path(main).stem
    if r.returncode != 0:
        raise LatexError(explain(tex_dir, tex_dir / f"{stem}.log")
                         + f"\n\n(full log: {tex_dir / (stem + '.log')}; fix the template, then rerun snakemake)")
    with atomic_path(out_pdf) as tmp:
        shutil.copyfile(tex_dir / f"{stem}.pdf", tmp)
    return out_pdf
