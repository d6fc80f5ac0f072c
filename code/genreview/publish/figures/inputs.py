"""What the figures are drawn from: the summary and the files that training, evaluation and the studies
save for the first seed (samples, training logs, progress grids, sweep, guidance, dynamics and probe
grids), and the real test images beside the samples."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable
from pathlib import Path

import torch

from ... import data as D
from ...files import load_jsonl, load_torch


@dataclass
class Inputs:
    """summary: summary.json; samples: model -> its samples.pt (first seed); logs: model -> the rows of its
    train_log.jsonl; progress: model -> its progress.pt; real: uint8 (N, C, H, W) test images;
    sweep_grids / guidance_grids / dynamics_grids / probe_grids: model -> its sweep_grids.pt /
    guidance_grids.pt / dynamics_grids.pt / probes.pt; claims: claims.json (the ledger's verdicts, with each
    quality claim judged along training compute), or None. A missing entry is left out of the figures."""
    summary: dict
    samples: dict = field(default_factory=dict)
    logs: dict = field(default_factory=dict)
    progress: dict = field(default_factory=dict)
    real: torch.Tensor | None = None
    sweep_grids: dict = field(default_factory=dict)
    guidance_grids: dict = field(default_factory=dict)
    dynamics_grids: dict = field(default_factory=dict)
    probe_grids: dict = field(default_factory=dict)
    claims: dict | None = None


def _pt(folder, name: str):
    return load_torch(Path(folder) / name)


def load_inputs(summary: dict, run_dirs: dict, eval_dirs: dict, data_root: str, sweep_dirs: dict | None = None,
                guidance_dirs: dict | None = None, dynamics_dirs: dict | None = None,
                probe_dirs: dict | None = None) -> Inputs:
    """run_dirs / eval_dirs / sweep_dirs / guidance_dirs / probe_dirs: model -> folder of its first seed's
    training run / evaluation / sampling sweep / guidance sweep / probes; dynamics_dirs: model -> folder
    of its training-dynamics study."""
    order = summary["order"]
    return Inputs(
        summary,
        samples={m: _pt(d, "samples.pt") for m, d in eval_dirs.items()},
        logs={m: load_jsonl(Path(run_dirs[m]) / "train_log.jsonl") for m in order},
        progress={m: _pt(run_dirs[m], "progress.pt") for m in order},
        real=D.load(summary["dataset"], data_root, "test").images,
        sweep_grids={m: _pt(d, "sweep_grids.pt") for m, d in (sweep_dirs or {}).items()},
        guidance_grids={m: _pt(d, "guidance_grids.pt") for m, d in (guidance_dirs or {}).items()},
        dynamics_grids={m: _pt(d, "dynamics_grids.pt") for m, d in (dynamics_dirs or {}).items()},
        probe_grids={m: _pt(d, "probes.pt") for m, d in (probe_dirs or {}).items()})


Draw = Callable[[Inputs, Path], object]  # draws one declared figure from the inputs into the path
