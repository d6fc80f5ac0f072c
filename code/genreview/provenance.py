"""The build's provenance: which code, which configuration, which machine, and what every compute step cost.

A record in the spirit of the W3C PROV model (the entities a result was derived from and the activities
that derived it) kept to what a reader of the paper needs to judge and repeat a build:

- the code: git commit and whether the working tree had local changes, Python and package versions;
- the configuration: a SHA-256 hash of the resolved config (`config.resolve`, JSON with sorted keys),
  without the machine-local data locations, so that two machines running the same experiment agree;
- the machine: CPU model, logical cores, memory, GPU (or "none"), operating system;
- the cost: wall time and peak resident memory of every compute job, read from the TSV files that
  Snakemake's `benchmark:` directive writes (columns s, h:m:s, max_rss, ...), grouped by rule with totals
  per rule and overall.

Only the compute rules count (those the summary depends on); the presentation rules (figures, tables,
render, latex and this one) run after the record is written and are left out.
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import importlib.metadata as md
import json
import os
import platform
import subprocess
from pathlib import Path

from .files import save_json

# The package versions the record (and the summary) reports.
PACKAGES = ["torch", "torchvision", "torchmetrics", "snakemake", "numpy", "scikit-learn", "hmmlearn", "prdc", "pandas",
            "matplotlib", "jinja2"]
# The compute rules in pipeline order: the record lists rules in this order (any other after them, by name).
# The Snakefile finds the compute jobs itself (every job the summary depends on, rules/deliver.smk).
PIPELINE_ORDER = ["prepare_data", "train_classifier", "train", "evaluate", "reference", "sweep", "guidance",
                  "dynamics", "probe", "curve", "summarize"]
# The rules that run after the summary: left out when the command line reads a benchmarks folder by itself.
PRESENTATION_RULES = {"figures", "tables", "claims", "render", "latex", "provenance", "arxiv", "reproduce"}
# Where the data lies on this machine says nothing about the experiment: left out of the config hash.
LOCAL_KEYS = {"data": ("root", "debian_dir")}
SHORT_HASH = 12  # hex digits of the hash the paper prints


class ProvenanceError(RuntimeError):
    pass


# --------------------------------------------------------------------------- code and configuration

def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions(packages=PACKAGES) -> dict[str, str | None]:
    versions = {}
    for p in packages:
        try:
            versions[p] = md.version(p)
        except md.PackageNotFoundError:
            versions[p] = None
    return versions


def code_provenance() -> dict:
    """Commit (short), local changes, Python, platform, package versions and today's date (the summary's
    "provenance" key)."""
    return {"commit": _git("rev-parse", "--short", "HEAD"), "dirty": bool(_git("status", "--porcelain")),
            "python": platform.python_version(), "platform": platform.platform(), "packages": package_versions(),
            "date": dt.date.today().isoformat()}


def config_hash(cfg: dict) -> str:
    """SHA-256 (hex) of the resolved config as JSON with sorted keys, without the machine-local LOCAL_KEYS."""
    cfg = dict(cfg)
    for key, subkeys in LOCAL_KEYS.items():
        if isinstance(cfg.get(key), dict):
            cfg[key] = {k: v for k, v in cfg[key].items() if k not in subkeys}
    text = json.dumps(cfg, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------- the machine

def _first(path: str, key: str) -> str | None:
    try:
        for line in Path(path).read_text(errors="replace").splitlines():
            if line.split(":", 1)[0].strip() == key:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    return _first("/proc/cpuinfo", "model name") or platform.processor() or platform.machine() or "unknown"


def ram_gib() -> float | None:
    kb = _first("/proc/meminfo", "MemTotal")
    if kb:
        return int(kb.split()[0]) * 1024 / 2 ** 30
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    except (ValueError, OSError, AttributeError):
        return None


def gpu() -> tuple[str, float | None]:
    """(name, memory in GiB) of the first CUDA device torch sees, or ("none", None)."""
    try:
        import torch
    except ImportError:
        return "none", None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        n = torch.cuda.device_count()
        return (f"{n} x {props.name}" if n > 1 else props.name), props.total_memory / 2 ** 30
    return "none", None


def os_name() -> str:
    """The distribution (from /etc/os-release) and the kernel, e.g. 'Debian GNU/Linux 12 (bookworm), Linux 6.1.0'."""
    pretty = None
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                pretty = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    kernel = f"{platform.system()} {platform.release()}".strip()
    return f"{pretty}, {kernel}" if pretty else kernel


def hardware() -> dict:
    name, memory = gpu()
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count()
    return {"cpu": cpu_model(), "machine": platform.machine(), "cores": os.cpu_count(), "cores_available": available,
            "ram_gib": ram_gib(), "gpu": name, "gpu_memory_gib": memory}


# --------------------------------------------------------------------------- Snakemake's benchmark files

def _number(x: str | None) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):  # Snakemake writes NA when a job ended before its first measurement
        return None
    return v if v == v else None


def read_benchmark(path: str | Path) -> dict:
    """One job's benchmark TSV as {wall_s, max_rss_mib, cpu_s}: the mean wall and CPU time over its rows
    (one row per --benchmark-repeats), the largest resident set size (Snakemake writes MiB); None where
    Snakemake wrote NA."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if not rows or "s" not in rows[0]:
        raise ProvenanceError(f"{path} is not a Snakemake benchmark file (no header row with a column 's')")

    def column(name, agg):
        values = [v for v in (_number(r.get(name)) for r in rows) if v is not None]
        return agg(values) if values else None

    return {"wall_s": column("s", lambda v: sum(v) / len(v)), "max_rss_mib": column("max_rss", max),
            "cpu_s": column("cpu_time", lambda v: sum(v) / len(v))}


def _max(values):
    values = [v for v in values if v is not None]
    return max(values) if values else None


def rule_costs(files_by_rule: dict[str, list[str]]) -> dict:
    """{"rules": [per rule: its jobs, their total and longest wall time, peak RSS], "total": {...},
    "missing": [benchmark files that do not exist]}. A job is named by its file's stem (vae_seed0)."""
    rules, missing = [], []
    for rule in sorted(files_by_rule, key=_pipeline_position):
        files = files_by_rule[rule]
        jobs = []
        for f in sorted(files):
            if not Path(f).exists():
                missing.append(str(f))
                continue
            jobs.append({"job": Path(f).stem, **read_benchmark(f)})
        if not jobs:
            continue
        walls = [j["wall_s"] for j in jobs if j["wall_s"] is not None]
        longest = max((j for j in jobs if j["wall_s"] is not None), key=lambda j: j["wall_s"], default=None)
        rules.append({"rule": rule, "n_jobs": len(jobs), "wall_s": sum(walls),
                      "max_job_wall_s": longest["wall_s"] if longest else None,
                      "longest_job": longest["job"] if longest else None,
                      "max_rss_mib": _max(j["max_rss_mib"] for j in jobs), "jobs": jobs})
    longest = max((r for r in rules if r["max_job_wall_s"] is not None), key=lambda r: r["max_job_wall_s"],
                  default=None)
    total = {"n_jobs": sum(r["n_jobs"] for r in rules), "wall_s": sum(r["wall_s"] for r in rules),
             "max_job_wall_s": longest["max_job_wall_s"] if longest else None,
             "longest_rule": longest["rule"] if longest else None,
             "longest_job": longest["longest_job"] if longest else None,
             "max_rss_mib": _max(r["max_rss_mib"] for r in rules)}
    return {"rules": rules, "total": total, "missing": missing}


def _pipeline_position(rule: str) -> tuple[int, str]:
    return (PIPELINE_ORDER.index(rule) if rule in PIPELINE_ORDER else len(PIPELINE_ORDER), rule)


def benchmark_files(bench_dir: str | Path, exclude=PRESENTATION_RULES) -> dict[str, list[str]]:
    """rule -> its jobs' benchmark files under bench_dir (<rule>.tsv, or <rule>/<job>.tsv), without the rules
    in `exclude`: what to read when no Snakefile names the files (the command line, on a finished build).
    Unlike the Snakefile's list, this takes every file there, also those of jobs a later config dropped."""
    bench_dir = Path(bench_dir)
    if not bench_dir.is_dir():
        raise ProvenanceError(f"no benchmark folder {bench_dir}: run the pipeline first "
                              "(snakemake --cores all), or pass --benchmark-dir benchmarks/<profile>")
    out: dict[str, list[str]] = {}
    for p in sorted(bench_dir.glob("*.tsv")) + sorted(bench_dir.glob("*/*.tsv")):
        rule = p.stem if p.parent == bench_dir else p.parent.name
        if rule not in exclude:
            out.setdefault(rule, []).append(str(p))
    return dict(sorted(out.items(), key=lambda kv: _pipeline_position(kv[0])))


# --------------------------------------------------------------------------- the record

def build(cfg: dict, files_by_rule: dict[str, list[str]]) -> dict:
    """The provenance record of a build (see the module docstring) as a JSON-ready dict."""
    full = config_hash(cfg)
    return {**code_provenance(), "profile": cfg.get("profile"), "dataset": cfg.get("dataset"),
            "config_sha256": full, "config_hash": full[:SHORT_HASH], "hardware": hardware(), "os": os_name(),
            **rule_costs(files_by_rule)}


def write(cfg: dict, files_by_rule: dict[str, list[str]], out: str | Path) -> dict:
    record = build(cfg, files_by_rule)
    save_json(record, out)
    t = record["total"]
    print(f"provenance: commit {record['commit']}, config {record['config_hash']}, {t['n_jobs']} jobs, "
          f"{t['wall_s']:.0f} s of wall time, {len(record['missing'])} benchmark files missing -> {out}")
    return record
