"""The arXiv tarball: built from a fake rendered paper folder laid out as the pipeline lays it out
(build/<tag>/paper beside figures/<tag>/ and tables/<tag>/), it holds exactly what the paper uses, with paths rewritten
to folders inside the tarball, the .bbl, and no build litter."""
from __future__ import annotations

import io
import tarfile

import pytest

from genreview.publish.arxiv import ArxivError, build

MAIN = r"""% Generated from paper/main.tex.j2; edit that file, not this one.
\documentclass{article}
\usepackage{graphicx}
\graphicspath{{../../../figures/smoke/}}
\begin{document}
\input{sections/intro}
% \includegraphics{commented_out}
\bibliographystyle{plainnat}
\bibliography{references}
\end{document}
"""
INTRO = r"""\section{Intro}
A 50\% share. \includegraphics[width=0.5\linewidth]{samples} and \includegraphics{curves.pdf}
\input{../../../tables/smoke/results}
% \input{../../../tables/smoke/unused}
"""


@pytest.fixture
def rendered(tmp_path):
    """tmp/build/smoke/paper (rendered and compiled: main.tex, sections/, main.bbl and latexmk's litter),
    tmp/figures/smoke and tmp/tables/smoke."""
    paper = tmp_path / "build" / "smoke" / "paper"
    (paper / "sections").mkdir(parents=True)
    (paper / "main.tex").write_text(MAIN)
    (paper / "sections" / "intro.tex").write_text(INTRO)
    (paper / "main.bbl").write_text("\\begin{thebibliography}{1}\n\\end{thebibliography}\n")
    for litter in ("main.aux", "main.log", "main.blg", "main.fls", "main.fdb_latexmk", "main.pdf", "references.bib"):
        (paper / litter).write_text("litter")
    (tmp_path / "figures" / "smoke").mkdir(parents=True)
    for fig in ("samples.pdf", "curves.pdf", "unused.pdf", "commented_out.pdf"):
        (tmp_path / "figures" / "smoke" / fig).write_bytes(b"%PDF-1.4 " + fig.encode())
    (tmp_path / "tables" / "smoke").mkdir(parents=True)
    (tmp_path / "tables" / "smoke" / "results.tex").write_text("\\begin{tabular}{l}x\\end{tabular}\n")
    (tmp_path / "tables" / "smoke" / "unused.tex").write_text("unused\n")
    return paper


def _members(tarball) -> dict[str, bytes]:
    with tarfile.open(tarball, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def test_the_tarball_holds_what_the_paper_uses(rendered, tmp_path):
    out = tmp_path / "build" / "smoke" / "arxiv.tar.gz"
    build(rendered, out)
    files = _members(out)
    assert sorted(files) == ["figures/curves.pdf", "figures/samples.pdf", "main.bbl", "main.tex",
                             "sections/intro.tex", "tables/results.tex"], "only what the paper uses, no litter"
    main = files["main.tex"].decode()
    assert main.startswith("\\pdfoutput=1\n"), "arXiv picks pdflatex from \\pdfoutput=1 in the first lines"
    assert "\\graphicspath{{figures/}}" in main and "../../" not in main
    intro = files["sections/intro.tex"].decode()
    assert "\\input{tables/results}" in intro, intro
    assert "\\includegraphics[width=0.5\\linewidth]{samples}" in intro and "\\includegraphics{curves.pdf}" in intro
    assert "% \\input{../../../tables/smoke/unused}" in intro, "comments are kept as they are"
    assert files["figures/samples.pdf"] == (tmp_path / "figures" / "smoke" / "samples.pdf").read_bytes()
    assert files["main.bbl"] == (rendered / "main.bbl").read_bytes()
    assert files["tables/results.tex"] == (tmp_path / "tables" / "smoke" / "results.tex").read_bytes()


def test_the_tarball_is_deterministic(rendered, tmp_path):
    a, b = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    build(rendered, a)
    (rendered / "main.bbl").touch()  # a newer time changes nothing
    build(rendered, b)
    assert a.read_bytes() == b.read_bytes()
    with tarfile.open(fileobj=io.BytesIO(a.read_bytes()), mode="r:gz") as tar:
        assert all(m.uid == 0 and m.mode == 0o644 for m in tar.getmembers())


def test_without_the_bbl_or_a_figure_it_says_what_to_do(rendered, tmp_path):
    (tmp_path / "figures" / "smoke" / "samples.pdf").unlink()
    with pytest.raises(ArxivError, match=r"includegraphics\{samples\}.*run the figures rule"):
        build(rendered, tmp_path / "x.tar.gz")
    (rendered / "main.bbl").unlink()
    with pytest.raises(ArxivError, match="main.bbl does not exist.*BibTeX"):
        build(rendered, tmp_path / "x.tar.gz")
    assert not (tmp_path / "x.tar.gz").exists(), "a failed build leaves no tarball"
