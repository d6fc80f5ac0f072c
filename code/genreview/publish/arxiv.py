"""The rendered paper as an arXiv submission: one .tar.gz that compiles on its own.

arXiv compiles the sources itself and runs no BibTeX, so the tarball holds the .bbl that bibtex wrote
(arXiv's "Preparing your submission" guide); and it cannot see files outside the tarball, so every
figure and table the paper reads is copied in and its path rewritten:

    main.tex           \\pdfoutput=1 first (arXiv then uses pdflatex), \\graphicspath{{figures/}}
    main.bbl           the bibliography as bibtex wrote it for this build
    sections/*.tex     as rendered; \\input{../../../tables/<tag>/x} becomes \\input{tables/x}
    figures/*.pdf      every \\includegraphics the paper uses (and no other)
    tables/*.tex       every table \\input from outside the rendered folder

What the paper uses is read from the rendered LaTeX itself (commented-out lines do not count), so a
figure a template leaves out is left out of the tarball too. No logs, aux files or the .bib. The archive
is deterministic (sorted names, fixed times and owners): the same paper gives the same bytes.
"""
from __future__ import annotations

import gzip
import io
import re
import tarfile
from pathlib import Path

from ..files import atomic_path

# Extensions pdflatex tries, in its order, for \includegraphics{name} without one.
GRAPHICS_EXT = [".pdf", ".png", ".jpg", ".jpeg", ".mps", ".jbig2", ".jb2", ".PDF", ".PNG", ".JPG", ".JPEG"]
FIGURES, TABLES = "figures", "tables"
MTIME = 315532800  # 1980-01-01, the fixed time of every member (as in wheels and zip archives)

GRAPHICSPATH = re.compile(r"\\graphicspath\s*\{((?:\s*\{[^{}]*\})+)\s*\}")
INCLUDEGRAPHICS = re.compile(r"(\\includegraphics\*?\s*(?:\[[^\]]*\]\s*)*\{)([^{}]+)(\})")
INPUT = re.compile(r"(\\(?:input|include)\s*\{)([^{}]+)(\})")
COMMENT = re.compile(r"(?<!\\)%")


class ArxivError(RuntimeError):
    pass


def _split_comment(line: str) -> tuple[str, str]:
    """(code, comment) of one LaTeX line; the comment keeps its %."""
    m = COMMENT.search(line)
    return (line[:m.start()], line[m.start():]) if m else (line, "")


def _sub_code(text: str, pattern: re.Pattern, repl) -> str:
    """re.sub on the code of each line, never inside a comment."""
    out = []
    for line in text.split("\n"):
        code, comment = _split_comment(line)
        out.append(pattern.sub(repl, code) + comment)
    return "\n".join(out)


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


class _Tarball:
    """Members (name -> bytes) of the submission, collected from the rendered folder."""

    def __init__(self, tex_dir: Path):
        self.dir = tex_dir
        self.members: dict[str, bytes] = {}
        self.graphics_dirs: list[Path] = [tex_dir]

    def add(self, name: str, data: bytes, source: Path) -> None:
        if name in self.members and self.members[name] != data:
            raise ArxivError(f"two different files would both be {name} in the tarball (one is {source}): "
                             "rename one of them")
        self.members[name] = data

    def graphic(self, name: str) -> str:
        """Copy the file \\includegraphics{name} shows into figures/ and return the name to write instead."""
        tried = []
        bases = [self.dir] if Path(name).is_absolute() or "/" in name else self.graphics_dirs
        for base in bases:
            for ext in ([""] if Path(name).suffix.lower() in GRAPHICS_EXT else [""] + GRAPHICS_EXT):
                f = base / f"{name}{ext}"
                tried.append(str(f))
                if f.is_file():
                    self.add(f"{FIGURES}/{f.name}", f.read_bytes(), f)
                    return Path(name).name  # found through \graphicspath{{figures/}}, as written (with or without ext)
        raise ArxivError(f"the paper shows \\includegraphics{{{name}}} but none of these exists: {', '.join(tried)}; "
                         "run the figures rule (snakemake --cores all) first")

    def tex(self, path: Path, name: str, text: str | None = None) -> None:
        """Add one LaTeX file (`text`, else read from `path`) as `name`, following its \\input and
        \\includegraphics and rewriting their paths."""
        text = path.read_text() if text is None else text

        def input_(m: re.Match) -> str:
            ref = m.group(2).strip()
            f = self.dir / ref if not Path(ref).is_absolute() else Path(ref)  # TeX resolves \input from the main folder
            if not f.is_file() and f.with_name(f.name + ".tex").is_file():
                f = f.with_name(f.name + ".tex")
            if not f.is_file():
                raise ArxivError(f"{path} inputs {ref}, which does not exist (looked for {f} and {f}.tex)")
            if _inside(f, self.dir):  # a section: kept where it is
                rel = f.resolve().relative_to(self.dir.resolve()).as_posix()
                self.tex(f, rel)
                return m.group(0)
            self.tex(f, f"{TABLES}/{f.name}")  # a table (from tables/<tag>/): into tables/ of the tarball
            new = f"{TABLES}/{f.stem}" if not ref.endswith(".tex") else f"{TABLES}/{f.name}"
            return m.group(1) + new + m.group(3)

        def graphics(m: re.Match) -> str:
            return m.group(1) + self.graphic(m.group(2).strip()) + m.group(3)

        text = _sub_code(text, INPUT, input_)
        text = _sub_code(text, INCLUDEGRAPHICS, graphics)
        self.add(name, text.encode(), path)


def _graphics_dirs(main_text: str, tex_dir: Path) -> list[Path]:
    dirs = []
    for line in main_text.split("\n"):
        code, _ = _split_comment(line)
        for m in GRAPHICSPATH.finditer(code):
            dirs += [tex_dir / d for d in re.findall(r"\{([^{}]*)\}", m.group(1))]
    return dirs + [tex_dir]


def collect(tex_dir: str | Path, main: str = "main.tex") -> dict[str, bytes]:
    """The submission's members (name -> bytes) from a rendered and compiled paper folder."""
    tex_dir = Path(tex_dir)
    main_path = tex_dir / main
    if not main_path.is_file():
        raise ArxivError(f"{main_path} does not exist: render the paper first (snakemake --cores all)")
    bbl = main_path.with_suffix(".bbl")
    if not bbl.is_file():
        raise ArxivError(f"{bbl} does not exist: arXiv runs no BibTeX and needs it; build the PDF first "
                         "(snakemake --cores all runs latexmk, which writes it)")
    main_text = main_path.read_text()
    t = _Tarball(tex_dir)
    t.graphics_dirs = _graphics_dirs(main_text, tex_dir)
    # \pdfoutput=1 in the first lines tells arXiv to use pdflatex; the figures are found in figures/.
    rewritten = "\\pdfoutput=1\n" + _sub_code(main_text, GRAPHICSPATH, lambda m: f"\\graphicspath{{{{{FIGURES}/}}}}")
    t.tex(main_path, main_path.name, rewritten)
    t.add(bbl.name, bbl.read_bytes(), bbl)
    return dict(sorted(t.members.items()))


def write_tarball(members: dict[str, bytes], out: str | Path) -> Path:
    """A deterministic .tar.gz of `members`, written atomically."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in sorted(members.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), MTIME, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            gz.write(buf.getvalue())
    return Path(out)


def build(tex_dir: str | Path, out: str | Path, main: str = "main.tex") -> list[str]:
    """Package the rendered paper in tex_dir (after latexmk) as an arXiv tarball at `out`; the member names."""
    members = collect(tex_dir, main)
    write_tarball(members, out)
    print(f"arXiv tarball {out}: {len(members)} files "
          f"({sum(n.startswith(FIGURES + '/') for n in members)} figures, "
          f"{sum(n.startswith(TABLES + '/') for n in members)} tables)")
    return list(members)
