"""Training throughput of every family under one profile: a benchmark, not a test.

    python -m genreview.bench.throughput --profile full --steps 20 --out bench/throughput_full.json

For each model of the profile, the network is built with the profile's hyperparameters and
trained for `--warmup` untimed and `--steps` timed steps on real batches at the profile's batch
size, with the precision and memory format the trainer would choose (`train.precision` and
`train.memory_format`; "auto" measures them as `Trainer` does). The timed steps are rounded up to
whole cycles of the model (`training.flops.cycle_steps`: a critic GAN's n_critic steps, StyleGAN's
lazy R1 interval), and a model that trains in phases (the LDM's autoencoder, then its denoiser) is
timed in each phase and weighted by the phase's share of the profile's planned steps.

Reported per model: parameters, images per second, ms per step, peak memory (on CUDA the peak of
`torch.cuda.max_memory_allocated` over the timed steps, on a CPU the process's peak resident set;
each model is measured in a fresh process, so that one model's peak is not another's), the FLOPs
of a training step (`training.flops.train_flops`, FlopCounterMode: matrix products, convolutions
and attention, forward and backward, every network of the model), the achieved TFLOP/s (FLOPs per
step / seconds per step), and on a known CUDA device the share of its dense bf16 peak
(`BF16_PEAK_TFLOPS`; null elsewhere, whatever precision the model ran in).

Then an estimate of the profile's wall time on this machine (`estimate`, also in the JSON): for each
model, its planned steps (epochs x steps per epoch, or max_steps) x the measured seconds per step x
its seeds, summed: the training steps of the main runs only, one job at a time. Classical models
(GMM, HMM) are fitted by EM, not by steps: they are skipped and left out of the estimate. Use it to
size a GPU job before the `full` profile runs, or to compare machines.
"""
from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from .. import config as C
from .. import data as D
from ..models import build
from ..training import flops as F
from ..training.config import TrainConfig
from ..training.train import training_split
from ..training.trainer import ema_params, peak_memory_mb, Trainer
from ..utils import autocast, count_parameters, device_name, log, pick_device, save_json, set_threads

# Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s from the vendors' data sheets, keyed by a part of the
# name torch.cuda.get_device_name reports; the first match wins, so the more specific names come first. The
# RTX 4090's is its FP16-accumulate figure (with FP32 accumulate, which PyTorch's matmuls use, it is half).
BF16_PEAK_TFLOPS: list[tuple[str, float | None]] = [
    ("H100 NVL", None),        # not in the table: its figure differs from the SXM part's
    ("H100 PCIe", 756.0),
    ("H100", 989.0),           # SXM ("NVIDIA H100 80GB HBM3")
    ("H200", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("RTX 4090", 165.0),
]

ESTIMATE_COVERS = ("the training steps of the profile's main runs (each model's planned steps x its measured "
                   "seconds per step x its seeds) and of the KL-weight runs, which train as long (dynamics.betas "
                   "x its seeds, for dynamics.beta_models), one job at a time on this device; not included: the "
                   "classical models' EM fits, precision calibration, checkpoints and progress grids, the FLOP "
                   "count after each run, the domain classifier, evaluation and sampling, and the studies "
                   "(dynamics, sweeps, guidance, probes, curves, reproduce)")


def bf16_peak_tflops(device: torch.device) -> float | None:
    """The dense bf16 peak of a CUDA device named in BF16_PEAK_TFLOPS; None for a CPU or an unknown device."""
    if device.type != "cuda":
        return None
    name = device_name(device)
    return next((peak for key, peak in BF16_PEAK_TFLOPS if key in name), None)


def planned_steps(cfg: TrainConfig, per_epoch: int) -> int:
    """A run's planned steps, as `Trainer.fit` sets them: epochs x steps per epoch, capped by max_steps."""
    total = cfg.epochs * per_epoch
    return min(total, cfg.max_steps) if cfg.max_steps else total


def _sync(device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def measure(name: str, spec: dict, train: D.Split, device, steps: int, warmup: int, out: Path) -> dict:
    torch.manual_seed(0)
    model = build(name, spec["hparams"], train.shape).to(device)
    if model.classical:
        return {"skipped": "fitted by EM, not by training steps"}
    cfg = TrainConfig(**spec["train"])
    train = training_split(model, train)  # CycleGAN: its two domains, as a run trains on
    batches = D.Batches(train, cfg.batch_size, 0, device)
    total = planned_steps(cfg, len(batches))
    settings = Trainer(cfg, out / name, 0, device)._choose_speed_settings(model, batches)
    channels_last = settings["memory_format"] == "channels_last"
    if channels_last:
        model.to(memory_format=torch.channels_last)
    opts = model.configure_optimizers()
    amp = lambda: autocast(device, settings["precision"])  # noqa: E731
    it = itertools.chain.from_iterable(batches.epoch(e) for e in itertools.count())
    cycle = F.cycle_steps(model)
    timed = -(-steps // cycle) * cycle  # whole cycles
    schedule = F.phases(model, total)

    def step(opts):
        x, y = next(it)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        model.train_step(x, y, opts, amp)

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    seconds = {}
    for p in schedule:
        F.enter_phase(model, p, total)
        for _ in range(warmup):
            step(opts)
        F.enter_phase(model, p, total)
        t0 = _sync(device)
        for _ in range(timed):
            step(opts)
        seconds[p.name] = (_sync(device) - t0) / timed
    peak_memory = peak_memory_mb(device)  # before the FLOP count's copy of the model
    del opts
    fl = F.train_flops(model, batches.epoch(0), amp, total_steps=total)
    s_per_step = sum(fl["phases"][p]["share"] * s for p, s in seconds.items())
    tflops = fl["per_step"] / s_per_step / 1e12
    peak = bf16_peak_tflops(device)
    if device.type != "cuda":
        peak_note = "no bf16 peak for a CPU"
    elif peak is None:
        peak_note = f"unknown device {device_name(device)!r}: not in bench.throughput.BF16_PEAK_TFLOPS"
    else:
        peak_note = f"dense bf16 peak of {device_name(device)}; this model ran in {settings['precision']}"
    return {"params": count_parameters(model) - ema_params(model), "batch_size": cfg.batch_size,
            "precision": settings["precision"], "memory_format": settings["memory_format"],
            "planned_steps": total, "cycle_steps": cycle, "timed_steps": timed * len(schedule),
            "ms_per_step": 1e3 * s_per_step, "images_per_s": cfg.batch_size / s_per_step,
            "peak_memory_mb": peak_memory,
            "peak_memory_kind": "cuda max allocated" if device.type == "cuda" else "process max RSS",
            "flops_per_step": fl["per_step"], "flops_counter": F.COUNTER, "tflops_per_s": tflops,
            "bf16_peak_tflops": peak, "peak_share": tflops / peak if peak else None, "peak_note": peak_note,
            "per_generator_update_flops": fl["per_generator_update"],
            "phases": {p: {"share": fl["phases"][p]["share"], "ms_per_step": 1e3 * s,
                           "flops_per_step": fl["phases"][p]["per_step"],
                           "tflops_per_s": fl["phases"][p]["per_step"] / s / 1e12} for p, s in seconds.items()}}


def estimate(cfg: dict, measured: dict) -> dict:
    """The wall time of the profile's main training runs on this machine, from `measure`'s results per model:
    planned steps x seconds per step x seeds (`config.model_seeds`), summed; what it covers is `ESTIMATE_COVERS`.
    A model of the profile without a measurement is listed under "not_covered" with the reason."""
    models, missing = {}, {}
    dyn = C.dynamics_config(cfg)
    kl_runs = ({m: len(dyn["betas"]) * len(dyn["seeds"]) for m in C.dynamics_models(cfg) if m in dyn["beta_models"]}
               if dyn["beta_steps"] is None else {})   # runs at the main runs' budget (studies.dynamics.run_budget)
    for name in cfg["models"]:
        r = measured.get(name) or {}
        if "ms_per_step" not in r:
            missing[name] = r.get("skipped") or r.get("error") or "not measured"
            continue
        seeds, extra = len(C.model_seeds(cfg, name)), kl_runs.get(name, 0)
        models[name] = {"planned_steps": r["planned_steps"], "seeds": seeds, "kl_weight_runs": extra,
                        "ms_per_step": r["ms_per_step"],
                        "seconds": r["planned_steps"] * r["ms_per_step"] / 1e3 * (seeds + extra),
                        "train_flops": r["planned_steps"] * r["flops_per_step"] * (seeds + extra)}
    seconds = sum(m["seconds"] for m in models.values())
    return {"profile": cfg["profile"], "covers": ESTIMATE_COVERS, "seconds": seconds, "hours": seconds / 3600,
            "train_flops": sum(m["train_flops"] for m in models.values()), "models": models, "not_covered": missing}


def estimate_line(est: dict, device: str) -> str:
    """One readable line of `estimate`'s result."""
    left = f"; not covered: {', '.join(est['not_covered'])}" if est["not_covered"] else ""
    return (f"estimated wall time of the {est['profile']} profile's main training runs on {device}: "
            f"{est['hours']:.2f} h ({est['seconds']:.0f} s, {est['train_flops']:.3g} training FLOPs) for "
            f"{len(est['models'])} models{left}. Covers {est['covers']}.")


def _measure_alone(name: str, spec: dict, dataset: str, root: str, device: str, steps: int, warmup: int,
                   out: str, threads: int | None) -> dict:
    """`measure` in this (fresh) process: a CPU's peak RSS only grows, so each model gets its own process."""
    set_threads(threads)
    train = D.load(dataset, root, "train")
    return measure(name, spec, train, torch.device(device), steps, warmup, Path(out))


def arguments(prog: str, doc: str, steps: int, out: str) -> argparse.ArgumentParser:
    """The options every per-family benchmark takes: config, profile, models, timed and untimed steps, output."""
    p = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="config.yaml")
    p.add_argument("--profile", default="full", choices=["smoke", "small", "full"])
    p.add_argument("--models", nargs="*", help="default: the profile's models")
    p.add_argument("--steps", type=int, default=steps, help="timed steps per model")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--out", default=out)
    return p


def profile_config(args) -> tuple[dict, torch.device]:
    """The resolved config of args.profile, its device, and its dataset prepared (logging set up too)."""
    import logging
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    raw = C.load(args.config)
    raw["profile"] = args.profile
    cfg = C.resolve(raw, args.config)
    D.prepare(cfg["dataset"], cfg["data"]["root"], cfg["data"]["debian_dir"],
              Path(args.out).with_suffix(".manifest.json"))
    return cfg, pick_device(cfg.get("device", "auto"))


def main(argv=None) -> int:
    p = arguments("python -m genreview.bench.throughput", __doc__, 20, "bench/throughput.json")
    p.add_argument("--threads", type=int)
    args = p.parse_args(argv)
    set_threads(args.threads)
    cfg, device = profile_config(args)
    res = {"profile": args.profile, "dataset": cfg["dataset"], "device": device_name(device),
           "threads": torch.get_num_threads(), "steps": args.steps, "models": {}}
    for name in args.models or cfg["models"]:
        spec = C.train_spec(cfg, name, 0, snapshots=False)
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            r = pool.submit(_measure_alone, name, spec, cfg["dataset"], cfg["data"]["root"], str(device), args.steps,
                            args.warmup, str(Path(args.out).parent), args.threads).result()
        res["models"][name] = r
        log.info("%s: %s", name, r)
        res["estimate"] = estimate(cfg, res["models"])
        save_json(res, args.out)  # after each model, so a long run keeps what it measured
    print(json.dumps(res, indent=2))
    print(estimate_line(res["estimate"], res["device"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
