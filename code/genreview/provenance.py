"""The build's provenance: which code, which configuration, which machine, and what every compute step cost.

A record in the spirit of the W3C PROV model (the entities a result was derived from and the activities
that derived it) kept to what a reader of the paper needs to judge and repeat a build:

- the code: git commit and whether the working tree had local changes, Python and package versions;
- the configuration: a SHA-256 hash of the resolved config (`config.resolve`, JSON with sorted keys),
  without the machine-local data locations, so that two machines running the same experiment agree;
- the machine: CPU model, logical cores, memory, GPU (or "none"), operating system, of the machine that
  writes the record; and, since on a cluster the compute jobs ran elsewhere, where each job ran: every step
  of the command line writes its host, CPU, GPU, torch version and threads to its log (`job_hardware`), and
  the record reads them back per job and lists the machines per rule and overall (`machines`);
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
                  "dynamics", "probe", "curve", "train_judges", "judge", "summarize"]
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


def _cores_available() -> int | None:
    try:
        return len(os.sched_getaffinity(0))  # what a SLURM job (or taskset) lets this process use
    except AttributeError:  # not on Linux
        return os.cpu_count()


def hardware() -> dict:
    name, memory = gpu()
    return {"cpu": cpu_model(), "machine": platform.machine(), "cores": os.cpu_count(),
            "cores_available": _cores_available(), "ram_gib": ram_gib(), "gpu": name, "gpu_memory_gib": memory}


# --------------------------------------------------------------------------- where each job ran

# The prefix of the line in which a step of the command line states where it ran (its log: `> {log} 2>&1`).
JOB_HARDWARE_MARK = "genreview job hardware:"


def job_hardware(threads: int | None = None) -> dict:
    """Where this process (one pipeline step) ran: host name, CPU model and the cores it could use, the GPU it
    used ("none" unless the step initialised CUDA, which this never does just to ask), torch's version and thread
    count (`threads`, the step's --threads, when torch was never imported), and the SLURM job id under SLURM."""
    import sys
    torch = sys.modules.get("torch")
    name, memory = "none", None
    if torch is not None and torch.cuda.is_initialized():
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        name, memory = props.name, props.total_memory / 2 ** 30
    return {"host": platform.node(), "cpu": cpu_model(), "cores_available": _cores_available(), "gpu": name,
            "gpu_memory_gib": memory, "torch": torch.__version__ if torch else package_versions(["torch"])["torch"],
            "threads": torch.get_num_threads() if torch else threads, "slurm_job_id": os.environ.get("SLURM_JOB_ID")}


def job_hardware_line(record: dict) -> str:
    return f"{JOB_HARDWARE_MARK} {json.dumps(record, sort_keys=True)}"


def read_job_hardware(log: str | Path) -> dict | None:
    """The `job_hardware` record a job wrote to its log (the last one), or None: no log, or none in it (a log
    written before steps recorded where they ran)."""
    try:
        lines = Path(log).read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if JOB_HARDWARE_MARK in line:
            try:
                return json.loads(line.split(JOB_HARDWARE_MARK, 1)[1])
            except json.JSONDecodeError:
                return None
    return None


def log_files(files_by_rule: dict[str, list[str]], bench_dir: str | Path, log_dir: str | Path) -> dict[str, str]:
    """benchmark file -> the log of the same job, by the rules' naming (benchmarks/<profile>/<rule>/<job>.tsv and
    logs/<profile>/<rule>/<job>.log): for the command line, where no Snakefile names the logs."""
    return {f: str(Path(log_dir) / Path(f).relative_to(bench_dir).with_suffix(".log"))
            for files in files_by_rule.values() for f in files}


def machines(jobs: list[dict]) -> list[dict]:
    """The kinds of machine that ran `jobs` (those with a `ran_on` record): one entry per CPU model, GPU and torch
    version, with its host names and number of jobs (by rule, when the jobs name theirs), most jobs first."""
    kinds: dict[tuple, dict] = {}
    for j in jobs:
        hw = j.get("ran_on")
        if not hw:
            continue
        key = (hw.get("cpu"), hw.get("gpu"), hw.get("torch"))
        m = kinds.setdefault(key, {"cpu": key[0], "gpu": key[1], "gpu_memory_gib": hw.get("gpu_memory_gib"),
                                   "torch": key[2], "hosts": set(), "n_jobs": 0, "rules": {}})
        m["hosts"].add(hw.get("host"))
        m["n_jobs"] += 1
        if "rule" in j:
            m["rules"][j["rule"]] = m["rules"].get(j["rule"], 0) + 1
    out = sorted(kinds.values(), key=lambda m: (-m["n_jobs"], str(m["cpu"]), str(m["gpu"])))
    for m in out:
        m["hosts"] = sorted(str(h) for h in m["hosts"])
        if not m["rules"]:
            del m["rules"]
    return out


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


def rule_costs(files_by_rule: dict[str, list[str]], logs: dict[str, str] | None = None) -> dict:
    """{"rules": [per rule: its jobs, their total and longest wall time, peak RSS, the machines that ran them],
    "total": {...}, "missing": [benchmark files that do not exist]}. A job is named by its file's stem (vae_seed0);
    `logs` (benchmark file -> the job's log) gives where each job ran (`ran_on`, None where its log says not)."""
    rules, missing = [], []
    logs = logs or {}
    for rule in sorted(files_by_rule, key=_pipeline_position):
        files = files_by_rule[rule]
        jobs = []
        for f in sorted(files):
            if not Path(f).exists():
                missing.append(str(f))
                continue
            ran_on = read_job_hardware(logs[f]) if f in logs else None
            jobs.append({"job": Path(f).stem, **read_benchmark(f), "ran_on": ran_on})
        if not jobs:
            continue
        walls = [j["wall_s"] for j in jobs if j["wall_s"] is not None]
        longest = max((j for j in jobs if j["wall_s"] is not None), key=lambda j: j["wall_s"], default=None)
        rules.append({"rule": rule, "n_jobs": len(jobs), "wall_s": sum(walls),
                      "max_job_wall_s": longest["wall_s"] if longest else None,
                      "longest_job": longest["job"] if longest else None,
                      "max_rss_mib": _max(j["max_rss_mib"] for j in jobs), "machines": machines(jobs),
                      "n_jobs_unrecorded": sum(j["ran_on"] is None for j in jobs), "jobs": jobs})
    longest = max((r for r in rules if r["max_job_wall_s"] is not None), key=lambda r: r["max_job_wall_s"],
                  default=None)
    total = {"n_jobs": sum(r["n_jobs"] for r in rules), "wall_s": sum(r["wall_s"] for r in rules),
             "max_job_wall_s": longest["max_job_wall_s"] if longest else None,
             "longest_rule": longest["rule"] if longest else None,
             "longest_job": longest["longest_job"] if longest else None,
             "max_rss_mib": _max(r["max_rss_mib"] for r in rules)}
    every_job = [{**j, "rule": r["rule"]} for r in rules for j in r["jobs"]]
    return {"rules": rules, "total": total, "missing": missing, "machines": machines(every_job)}


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

def build(cfg: dict, files_by_rule: dict[str, list[str]], logs: dict[str, str] | None = None) -> dict:
    """The provenance record of a build (see the module docstring) as a JSON-ready dict. `hardware` is the
    machine writing it (on a cluster, the submitting one); `machines` and each job's `ran_on`, where the
    compute jobs ran (read from their logs: `logs` maps each benchmark file to its job's log)."""
    full = config_hash(cfg)
    return {**code_provenance(), "profile": cfg.get("profile"), "dataset": cfg.get("dataset"),
            "config_sha256": full, "config_hash": full[:SHORT_HASH], "hardware": hardware(), "os": os_name(),
            **rule_costs(files_by_rule, logs)}


def write(cfg: dict, files_by_rule: dict[str, list[str]], out: str | Path, logs: dict[str, str] | None = None) -> dict:
    record = build(cfg, files_by_rule, logs)
    save_json(record, out)
    t = record["total"]
    print(f"provenance: commit {record['commit']}, config {record['config_hash']}, {t['n_jobs']} jobs on "
          f"{len(record['machines'])} kinds of machine, {t['wall_s']:.0f} s of wall time, "
          f"{len(record['missing'])} benchmark files missing -> {out}")
    return record
