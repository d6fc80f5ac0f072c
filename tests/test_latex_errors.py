"""A LaTeX error names the template line an author must fix: for an environment left open, the line that
opened it (LaTeX notices only at the enclosing \\end, often in another file), with LaTeX's whole message."""
from __future__ import annotations

import json
import shutil

import pytest

from genreview.publish.latex import LatexError, build_pdf, explain, unclosed
from genreview.publish.render import render

MAIN = r"""\documentclass{article}
\begin{document}
\input{sections/intro}

Text after the section.

\end{document}
"""
# The open itemize is template line 9, but rendered line 12: the loop writes five lines for its three,
# the comment line and the \BLOCK lines write none, and the generated header adds one.
INTRO = r"""\section{Introduction}
%# a template comment: no line in the output
\BLOCK{for k in range(5)}
Item \VAR{k}.
\BLOCK{endfor}
\begin{itemize}
\item a closed list, opened by the same line as the open one
\end{itemize}
\begin{itemize}
\item an open list
\begin{center}
centred
\end{center}
"""


def _paper(tmp_path):
    templates = tmp_path / "paper"
    (templates / "sections").mkdir(parents=True)
    (templates / "main.tex.j2").write_text(MAIN)
    (templates / "sections" / "intro.tex.j2").write_text(INTRO)
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"models": {}, "reference": {}, "classifier": {}, "order": []}))
    out = tmp_path / "build" / "paper"
    render(templates, summary, out, tmp_path / "figures", tmp_path / "tables")
    return templates, out


def test_unclosed_finds_the_open_begin():
    text = "\\begin{a}\n\\begin{b}\n% \\end{b} in a comment\n\\begin{b}\\end{b}\n\\end{a}\n\\begin{c}\n"
    assert unclosed(text) == [("c", 6)]
    assert unclosed("\\begin{a}\n\\begin{b}\n\\end{a}\n") == []  # \end{a} closes a and the b inside it


def test_an_unclosed_environment_names_the_template_line_that_opened_it(tmp_path):
    if shutil.which("latexmk") is None:
        pytest.skip("latexmk is not installed")
    templates, out = _paper(tmp_path)
    rendered = (out / "sections" / "intro.tex").read_text().splitlines()
    assert rendered[11] == r"\begin{itemize}" and INTRO.splitlines()[8] == r"\begin{itemize}"
    with pytest.raises(LatexError) as e:
        build_pdf(out, tmp_path / "build" / "review.pdf")
    msg = str(e.value)
    template = f"{(templates / 'sections' / 'intro.tex.j2').as_posix()} line 9"
    assert template in msg, f"the error does not name the template line that opened the itemize:\n{msg}"
    assert "add its \\end{itemize}" in msg, msg
    assert f"{out / 'sections' / 'intro.tex'} line 12" in msg, msg
    # LaTeX's whole message, not cut at its log's 79 characters
    assert r"\begin{itemize} on input line 12 ended by \end{document}." in msg, msg
    assert not (tmp_path / "build" / "review.pdf").exists()


def test_the_message_is_whole_when_the_log_cut_it(tmp_path):
    """A log written with TeX's default max_print_line (79) cuts long lines; the message joins them again."""
    (tmp_path / "main.tex").write_text("\\documentclass{article}\n\\begin{document}\n\\end{document}\n")
    first = r"./main.tex:3: LaTeX Error: \begin{itemize} on input line 2 ended by \end{docume"
    assert len(first) == 79
    log = [first, "nt}.", "", "See the LaTeX manual or LaTeX Companion for explanation.", "l.3 \\end{document}"]
    (tmp_path / "main.log").write_text("\n".join(log) + "\n")
    msg = explain(tmp_path, tmp_path / "main.log")
    assert r"ended by \end{document}." in msg, msg
    assert "See the LaTeX manual" not in msg, msg
