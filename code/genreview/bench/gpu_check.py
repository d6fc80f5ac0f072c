"""The prepared check for a machine with a GPU, sized to run in a few minutes: a benchmark, not a test.

    python -m genreview.bench.gpu_check --profile full --steps 10 --budget-s 420 --out bench/gpu_check.json
    python -m genreview.bench.gpu_check --profile smoke --steps 2 --out /tmp/gpu_check.json   # tiny, on a CPU

It answers, on the device `device: auto` picks (CUDA when there is one):
- resume: a run killed at its checkpoint and resumed ends where an uninterrupted run ends (the VAE with the
  profile's network, PyTorch's deterministic algorithms on): the largest weight difference, 0 when exact.
  A resumed CUDA run used to stop with a TypeError (the checkpoint's random state loaded onto the GPU).
- determinism: two runs of the same seed with deterministic algorithms on give the same weights.
- throughput: every family of the profile trained for `--steps` timed steps with the profile's networks
  and batch sizes (`genreview.bench.throughput.measure`): images/s, ms/step, peak GPU memory, the
  precision and memory format the trainer chose, FLOPs per step, achieved TFLOP/s and the share of the
  device's dense bf16 peak. Families are measured until `--budget-s` is spent; the ones left are listed
  as not measured.
- estimate: the profile's main training runs' wall time on this machine from the families measured
  (`genreview.bench.throughput.estimate`; what it covers, and the families it leaves out, are in it).
Everything measured so far is written to `--out` after each part.
"""
from __future__ import annotations

import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from .. import config as C
from .. import data as D
from ..models import build
from ..training.config import TrainConfig
from ..training.trainer import Trainer
from ..utils import device_name, log, save_json, seed_everything, set_deterministic
from .throughput import arguments, estimate, estimate_line, measure, profile_config



def _vae_run(spec: dict, split: D.Split, device, out: Path, steps: int, checkpoint_every: int, seed: int = 0):
    """The profile's VAE trained for `steps` steps into `out` (resuming from its checkpoint if one is there)."""
    cfg = replace(TrainConfig(**spec["train"]), max_steps=steps, checkpoint_every=checkpoint_every,
                  sample_epochs=[], snapshots=0, log_every=5)
    seed_everything(seed)
    model = build("vae", spec["hparams"], split.shape)
    st = Trainer(cfg, out, seed, device, rid="gpu-check").fit(model, D.Batches(split, cfg.batch_size, seed, device))
    return model, st


def _max_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    return max(float((sa[k].double() - sb[k].double()).abs().max()) for k in sa if sa[k].is_floating_point())


def resume_and_determinism(cfg: dict, split: D.Split, device, steps: int = 20) -> dict:
    """The uninterrupted run trains `steps` steps; the interrupted one stops at half and resumes."""
    spec = C.train_spec(cfg, "vae", 0, snapshots=False)
    half = max(1, steps // 2)
    set_deterministic(True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            ref, _ = _vae_run(spec, split, device, tmp / "uninterrupted", steps, half)
            again, _ = _vae_run(spec, split, device, tmp / "again", steps, half)
            _vae_run(spec, split, device, tmp / "resumed", half, half)
            try:
                resumed, st = _vae_run(spec, split, device, tmp / "resumed", steps, half)
                resume = {"ok": st["step"] == steps, "max_abs_diff": _max_diff(resumed, ref)}
            except Exception as e:  # what a GPU job met before the fix: report it, go on with the rest
                resume = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    finally:
        set_deterministic(False)
    return {"resume": {"steps": steps, "killed_at": half, **resume},
            "determinism": {"max_abs_diff": _max_diff(again, ref), "identical": _max_diff(again, ref) == 0.0}}


def main(argv=None) -> int:
    p = arguments("python -m genreview.bench.gpu_check", __doc__, 10, "bench/gpu_check.json")
    p.add_argument("--resume-steps", type=int, default=20, help="steps of the resume and determinism runs")
    p.add_argument("--budget-s", type=float, default=420, help="stop measuring families after this many seconds")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    cfg, device = profile_config(args)
    split = D.load(cfg["dataset"], cfg["data"]["root"], "train")
    res = {"profile": args.profile, "device": device_name(device), "torch": torch.__version__,
           "cuda": torch.version.cuda, "bf16": device.type == "cuda" and torch.cuda.is_bf16_supported(),
           "threads": torch.get_num_threads(), "steps": args.steps}
    res.update(resume_and_determinism(cfg, split, device, args.resume_steps))
    res["seconds_checks"] = time.perf_counter() - t0
    save_json(res, args.out)
    log.info("resume %s; determinism %s", res["resume"], res["determinism"])
    res["throughput"], res["not_measured"] = {}, []
    for name in args.models or cfg["models"]:
        if time.perf_counter() - t0 > args.budget_s:
            res["not_measured"].append(name)
            continue
        spec = C.train_spec(cfg, name, 0, snapshots=False)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        try:
            res["throughput"][name] = measure(name, spec, split, device, args.steps, args.warmup,
                                              Path(args.out).parent)
        except Exception as e:  # one family's failure is a finding, not the end of the check
            res["throughput"][name] = {"error": f"{type(e).__name__}: {e}"}
        log.info("%s: %s", name, res["throughput"][name])
        res["estimate"] = estimate(cfg, res["throughput"])
        save_json(res, args.out)
    res["estimate"] = estimate(cfg, res["throughput"])
    res["seconds"] = time.perf_counter() - t0
    save_json(res, args.out)
    print(json.dumps(res, indent=2))
    print(estimate_line(res["estimate"], res["device"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
