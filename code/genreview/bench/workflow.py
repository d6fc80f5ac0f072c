"""A scratch copy of the workflow for benchmarks and tests that run Snakemake on the side: the Snakefile, rules,
config, paper and profiles copied, code/ linked to this checkout's, and the environment its jobs run in."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]
WORKFLOW_FILES = ["Snakefile", "rules", "config.yaml", "paper", "profiles"]


def copy_workflow(dst: Path, config: dict | None = None) -> Path:
    """Copy the workflow (not its outputs) into `dst`; code/ is symlinked. Optionally write `config`."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dst / name)
        elif src.exists():
            shutil.copy2(src, dst / name)
    (dst / "code").symlink_to(REPO / "code", target_is_directory=True)
    if config is not None:
        (dst / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return dst


def snakemake_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", *args]


def snakemake_env() -> dict:
    """This environment without a SNAKEMAKE_PROFILE of the user's, one OpenMP thread per job, no .pyc files."""
    env = {k: v for k, v in os.environ.items() if k != "SNAKEMAKE_PROFILE"}
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
