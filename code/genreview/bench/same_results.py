"""Compare two results trees file by file, timing and memory aside: are they the same computation?

    python -m genreview.bench.same_results results/smoke /tmp/old/results/smoke --rename cfg=guided_ldm

Every JSON and JSONL file under the first tree is matched with the file at the same relative path in
the second (a renamed model's folder and its name inside the files mapped with --rename OLD=NEW) and
compared after dropping the keys that measure time, the machine's memory or the build's identity
(`IGNORED`). Exit status 0 when every file matches, 1 otherwise; the differing files are listed with
their first differing key.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# Keys two runs of the same computation may disagree on: time, memory, and what names the build itself.
TIMING = {"wall", "elapsed", "train_seconds", "ms_per_step", "calibration_ms", "sample_ms_per_image", "bpd_ms_per_image",
          "bpd_seconds", "images_per_s", "peak_memory_mb", "seconds", "ms_per_image", "sample_ms"}
IDENTITY = {"commit", "dirty", "created", "date", "hostname", "started", "finished"}
IGNORED = TIMING | IDENTITY


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in IGNORED}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _renamed(text: str, renames: dict[str, str]) -> str:
    for old, new in renames.items():
        text = text.replace(f'"{old}"', f'"{new}"').replace(f"/{old}/", f"/{new}/")
    return text


def _load(path: Path, renames: dict[str, str]):
    text = _renamed(path.read_text(), renames)
    if path.suffix == ".jsonl":
        return [_strip(json.loads(line)) for line in text.splitlines() if line.strip()]
    return _strip(json.loads(text))


def _first_difference(a, b, where: str = "") -> str:
    if type(a) is not type(b):
        return f"{where or '(top)'}: {a!r} != {b!r}"
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{where}.{k}: only in {'second' if k not in a else 'first'}"
            if a[k] != b[k]:
                return _first_difference(a[k], b[k], f"{where}.{k}")
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{where}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return _first_difference(x, y, f"{where}[{i}]")
    return f"{where or '(top)'}: {a!r} != {b!r}"


def compare(new: Path, old: Path, renames: dict[str, str]) -> list[str]:
    """Differences between the trees, one line each (empty when they agree)."""
    problems = []
    files = sorted(p for p in new.rglob("*") if p.suffix in (".json", ".jsonl"))
    back = {v: k for k, v in renames.items()}
    for f in files:
        rel = f.relative_to(new).as_posix()
        for nw, od in back.items():
            rel = rel.replace(f"/{nw}/", f"/{od}/")
        g = old / rel
        if not g.exists():
            problems.append(f"{f.relative_to(new)}: missing in {old}")
            continue
        a, b = _load(f, {}), _load(g, renames)
        if a != b:
            problems.append(f"{f.relative_to(new)}: {_first_difference(a, b)}")
    extra = {p.relative_to(old).as_posix() for p in old.rglob("*") if p.suffix in (".json", ".jsonl")}
    seen = set()
    for f in files:
        rel = f.relative_to(new).as_posix()
        for nw, od in back.items():
            rel = rel.replace(f"/{nw}/", f"/{od}/")
        seen.add(rel)
    problems += [f"{r}: only in {old}" for r in sorted(extra - seen)]
    print(f"compared {len(files)} files; ignored keys: {', '.join(sorted(IGNORED))}")
    return problems


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m genreview.bench.same_results", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("new", type=Path)
    p.add_argument("old", type=Path)
    p.add_argument("--rename", action="append", default=[], metavar="OLD=NEW", help="a model renamed between them")
    args = p.parse_args(argv)
    problems = compare(args.new, args.old, dict(r.split("=", 1) for r in args.rename))
    print("\n".join(problems) if problems else "every file matches")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
