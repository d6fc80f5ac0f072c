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

# What two runs of the same computation may disagree on:
# - time and memory: these keys, and every key ending in one of TIMED_SUFFIXES;
TIMING = {"wall", "elapsed", "calibration_ms", "images_per_s", "peak_memory_mb", "seconds", "sample_ms", "time_ratio",
          "cpu_s", "max_rss_mib", "longest_job",  # these three: the job benchmarks in provenance.json
          "latency_ms"}
TIMED_SUFFIXES = ("_seconds", "ms_per_image", "ms_per_step", "wall_s")
# - the build's identity (commit, local changes, dates);
IDENTITY = {"commit", "dirty", "created", "date", "hostname", "started", "finished"}
# - bookkeeping ids that hash file bytes or modification times rather than content (a dynamics run's run_id
#   hashes classifier.pt's bytes, which change on every save; a curve point's key hashes a snapshot's size
#   and mtime), so they differ between two runs of the same code;
BOOKKEEPING = {"run_id", "key", "bytes"}  # bytes: checked.json's sizes of the files it read, timings inside
# - a claim's evidence, a sentence written from numbers compared elsewhere (some quote a timing), and the
#   numbers of the claims whose quantity is a timing.
TIMED_QUANTITIES = {"ms per image", "ms per step", "latency at batch 1", "training time", "peak memory"}
# - the cells of the sources' comparison table (claims.json "comparison") that quote timings.
TIMED_CELLS = {"time", "resources"}
IGNORED = TIMING | IDENTITY | BOOKKEEPING


def _strip(obj):
    if isinstance(obj, dict):
        timed = obj.get("quantity") in TIMED_QUANTITIES
        return {k: _strip(v) for k, v in obj.items()
                if k not in IGNORED and not k.endswith(TIMED_SUFFIXES) and not (k == "evidence" and "claim" in obj)
                and not (timed and k == "numbers")}
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
    obj = json.loads(text)
    if isinstance(obj, dict) and isinstance(obj.get("comparison"), dict):
        obj["comparison"] = {fam: {k: v for k, v in cells.items() if k not in TIMED_CELLS}
                             for fam, cells in obj["comparison"].items()}
    return _strip(obj)


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
    print(f"compared {len(files)} files; ignored: the keys {', '.join(sorted(IGNORED))}, keys ending in "
          f"{', '.join(TIMED_SUFFIXES)}, the claims' evidence sentences, the numbers of claims about "
          f"{', '.join(sorted(TIMED_QUANTITIES))} and the comparison table's {', '.join(sorted(TIMED_CELLS))} cells")
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
