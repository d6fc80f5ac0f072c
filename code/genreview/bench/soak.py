"""Kill the smoke build at random moments, resume it each time, and compare its results with an
uninterrupted build's: a benchmark of the workflow's resilience, not a test (it takes many minutes).

    python -m genreview.bench.soak --kills 5 --seed 0 --out bench/soak.json

Two copies of the workflow (Snakefile, rules, config.yaml, paper, profiles; code/ linked) in a temporary
folder, both at the smoke profile on the same data folder. The first is built once, uninterrupted. The second
is built by the same command, and after a random delay (uniform in [--min-delay, --max-delay] seconds; the
upper end defaults to the clean build's time over kills + 1: the kills then add up to about half a build, so
that they come before it ends, and the first ones fall where the training jobs run, early in a smoke build)
snakemake's whole process group, its jobs included, gets SIGKILL; then `snakemake --unlock` and the same
command again, until --kills kills have been made, and a last run finishes the build. At each kill the
outputs Snakemake had marked incomplete (the jobs hit) and the training checkpoints on disk are recorded;
after each run the job logs are read for "resuming from" (a training job that continued from its checkpoint).
Every JSON and JSONL file of the two results trees is then compared by `genreview.bench.same_results.compare`,
which leaves out the keys that measure time or memory or name the build (listed in the report).

Reported: kills made, the jobs each hit, resumptions, restarts, the wall time of both builds, the files
compared and every difference. Exit status 0 when the killed build completed and no file differs.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

from ..paths import Paths
from ..utils import save_json
from .workflow import REPO, copy_workflow, snakemake_cmd, snakemake_env
from .same_results import IGNORED, TIMED_CELLS, TIMED_QUANTITIES, TIMED_SUFFIXES, compare

PROFILE = "smoke"
RESUMED = re.compile(r"resuming from (\S+) at step (\d+)/(\d+)")


class Build:
    """One copy of the workflow and the snakemake runs made in it."""

    def __init__(self, workdir: Path, cores: int):
        self.dir, self.runs = workdir, 0
        self.cmd = snakemake_cmd("--cores", str(cores), "--config", f"profile={PROFILE}")

    def start(self) -> subprocess.Popen:
        out = open(self.dir / f"run{self.runs}.out", "w")
        self.runs += 1
        # its own process group, which its jobs inherit: one killpg reaches them all
        return subprocess.Popen(self.cmd, cwd=self.dir, stdout=out, stderr=subprocess.STDOUT, env=snakemake_env(),
                                start_new_session=True)

    def tail(self, chars: int = 3000) -> str:
        return (self.dir / f"run{self.runs - 1}.out").read_text(errors="replace")[-chars:]

    def unlock(self) -> None:
        r = subprocess.run(snakemake_cmd("--unlock", "--cores", "1", "--config", f"profile={PROFILE}"),
                           cwd=self.dir, capture_output=True, text=True, env=snakemake_env())
        if r.returncode != 0:
            raise RuntimeError(f"snakemake --unlock failed in {self.dir}:\n{r.stderr[-3000:]}")

    def incomplete(self) -> list[str]:
        """The outputs Snakemake has marked incomplete: those of the jobs running now."""
        names = []
        for f in sorted((self.dir / ".snakemake" / "incomplete").glob("*")):
            try:
                names.append(base64.urlsafe_b64decode(f.name.encode()).decode())
            except (binascii.Error, UnicodeDecodeError):
                names.append(f.name)
        return names

    def checkpoints(self) -> dict[str, int]:
        """Training checkpoints on disk: run folder -> the step each holds."""
        found = {}
        for ck in sorted((self.dir / Paths(PROFILE).results).rglob("checkpoint.pt")):
            try:
                step = torch.load(ck, map_location="cpu", weights_only=False)["state"]["step"]
            except Exception as e:  # written atomically: only a damaged one gets here, and that is a finding
                step = f"unreadable ({type(e).__name__})"
            found[str(ck.parent.relative_to(self.dir))] = step
        return found

    def resumptions(self) -> dict[tuple, str]:
        """Every "resuming from" line in the job logs now, keyed by the log's path and modification time: a rerun
        job rewrites its log (so read them after each run), a finished job's log stays (so count it once)."""
        lines = {}
        for f in sorted((self.dir / Paths(PROFILE).logs).rglob("*.log")):
            for m in RESUMED.finditer(f.read_text(errors="replace")):
                lines[(str(f), f.stat().st_mtime_ns, m[0])] = f"{f.relative_to(self.dir)}: step {m[2]}/{m[3]}"
        return lines


def run_to_end(build: Build, timeout: float) -> float:
    t0 = time.monotonic()
    p = build.start()
    try:
        rc = p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        raise RuntimeError(f"the build in {build.dir} did not finish within {timeout:.0f} s:\n{build.tail()}") \
            from None
    if rc != 0:
        raise RuntimeError(f"snakemake exited {rc} in {build.dir}:\n{build.tail()}")
    return time.monotonic() - t0


def soak(kills: int, seed: int, workdir: Path, data_root: Path, cores: int, device: str | None,
         min_delay: float, max_delay: float | None, timeout: float, progress=lambda report: None) -> dict:
    """The report (see the module's docstring); `progress(report)` gets the figures so far after each kill."""
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    raw["profile"] = PROFILE
    raw.setdefault("data", {})["root"] = str(data_root.resolve())
    if device:
        raw["device"] = device
    clean = Build(copy_workflow(workdir / "clean", raw), cores)
    killed = Build(copy_workflow(workdir / "killed", raw), cores)

    print(f"[soak] uninterrupted build in {clean.dir}", flush=True)
    clean_wall = run_to_end(clean, timeout)
    print(f"[soak] uninterrupted build: {clean_wall:.0f} s", flush=True)

    rng = random.Random(seed)
    hi = max_delay if max_delay is not None else max(min_delay + 1, clean_wall / (kills + 1))
    events, resumed, t0 = [], {}, time.monotonic()
    while True:
        p = killed.start()
        delay = rng.uniform(min_delay, hi) if len(events) < kills else None
        try:
            rc = p.wait(timeout=delay if delay is not None else timeout)
        except subprocess.TimeoutExpired:
            if delay is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
                raise RuntimeError(f"the last run did not finish within {timeout:.0f} s:\n{killed.tail()}") \
                    from None
            hit, ckpts = killed.incomplete(), killed.checkpoints()
            os.killpg(p.pid, signal.SIGKILL)  # snakemake and every job it started
            p.wait()
            time.sleep(0.2)  # let the kernel reap the group's last children
            resumed = {**killed.resumptions(), **resumed}  # the run that first showed a line keeps it
            events.append({"run": killed.runs - 1, "after_s": round(delay, 1), "jobs_hit": hit,
                           "checkpoints_on_disk": ckpts})
            print(f"[soak] kill {len(events)}/{kills} after {delay:.0f} s: {len(hit)} outputs incomplete, "
                  f"{len(ckpts)} checkpoints on disk", flush=True)
            progress({"status": "running", "kills": len(events), "runs": killed.runs, "events": events,
                      "resumed": list(resumed.values()), "wall_uninterrupted_s": round(clean_wall, 1),
                      "wall_killed_so_far_s": round(time.monotonic() - t0, 1)})
            killed.unlock()
            continue
        resumed = {**killed.resumptions(), **resumed}
        if rc != 0:
            raise RuntimeError(f"the resumed build failed (snakemake exited {rc}):\n{killed.tail()}")
        break
    killed_wall = time.monotonic() - t0
    resumed = list(resumed.values())
    print(f"[soak] killed build completed after {len(events)} kills and {killed.runs} runs: {killed_wall:.0f} s",
          flush=True)

    results = Paths(PROFILE).results
    differences = compare(killed.dir / results, clean.dir / results, {})
    n_files = sum(1 for f in (killed.dir / results).rglob("*") if f.suffix in (".json", ".jsonl"))
    return {
        "command": " ".join(killed.cmd[1:]), "profile": PROFILE, "seed": seed, "cores": cores,
        "device": raw.get("device", "auto"), "kills_requested": kills, "kills": len(events),
        "runs": killed.runs, "delay_range_s": [min_delay, round(hi, 1)],
        "kills_during_training": sum(any("/runs/" in h for h in e["jobs_hit"]) for e in events),
        "resumes": len(resumed), "resumed": resumed, "events": events,
        "wall_uninterrupted_s": round(clean_wall, 1), "wall_killed_s": round(killed_wall, 1),
        "files_compared": n_files, "differences": differences,
        "ignored": {"keys": sorted(IGNORED), "key_suffixes": list(TIMED_SUFFIXES),
                    "claims": f"evidence sentences; numbers of claims about {', '.join(sorted(TIMED_QUANTITIES))}",
                    "comparison_cells": sorted(TIMED_CELLS)},
        "status": "done", "ok": not differences,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m genreview.bench.soak", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kills", type=int, default=5, help="SIGKILLs of the second build (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the kill delays")
    p.add_argument("--out", type=Path, default=Path("bench/soak.json"), help="the report (JSON)")
    p.add_argument("--cores", type=int, default=2, help="snakemake --cores of both builds")
    p.add_argument("--device", default="cpu", help="the builds' device (default cpu: bit-identical runs); "
                                                   "'' keeps config.yaml's")
    p.add_argument("--data-root", type=Path, default=REPO / "data",
                   help="the prepared data folder both copies read (config.yaml data.root)")
    p.add_argument("--min-delay", type=float, default=5.0, help="shortest delay before a kill, seconds")
    p.add_argument("--max-delay", type=float, default=None, help="longest delay before a kill, seconds "
                                                                  "(default: the clean build's time / (kills + 1))")
    p.add_argument("--timeout", type=float, default=3600.0, help="limit of one uninterrupted run, seconds")
    p.add_argument("--workdir", type=Path, default=None, help="where the two copies go (default: a temporary "
                                                              "folder, removed at the end unless --keep)")
    p.add_argument("--keep", action="store_true", help="keep the two copies")
    args = p.parse_args(argv)
    if args.kills < 0 or args.min_delay <= 0 or (args.max_delay is not None and args.max_delay < args.min_delay):
        p.error("--kills must be >= 0 and 0 < --min-delay <= --max-delay")
    if not (args.data_root / "FashionMNIST").exists() and not any(args.data_root.glob("*.manifest.json")):
        p.error(f"no prepared data under {args.data_root}: run `snakemake --cores 1 --config profile=smoke` "
                "once (its first rule prepares it) or give --data-root")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="genreview-soak-"))
    if args.workdir and any(work.glob("*")):
        p.error(f"--workdir {work} is not empty: give an empty or new folder")
    try:
        report = soak(args.kills, args.seed, work, args.data_root, args.cores, args.device or None,
                      args.min_delay, args.max_delay, args.timeout, progress=lambda r: save_json(r, args.out))
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    save_json(report, args.out)
    print(f"[soak] {report['kills']} kills ({report['kills_during_training']} during training), "
          f"{report['resumes']} resumptions, {report['runs']} runs; {report['files_compared']} files compared, "
          f"{len(report['differences'])} differ; walls {report['wall_uninterrupted_s']} s uninterrupted, "
          f"{report['wall_killed_s']} s killed and resumed -> {args.out}")
    for d in report["differences"]:
        print("  " + d)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
