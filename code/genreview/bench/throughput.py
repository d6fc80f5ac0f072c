"""Training throughput of every family under one profile: a benchmark, not a test.

    python -m genreview.bench.throughput --profile full --steps 20 --out bench/throughput_full.json

For each model of the profile, the network is built with the profile's hyperparameters and
trained for `--warmup` untimed and `--steps` timed steps on real batches at the profile's batch
size, with the precision and memory format the trainer would choose (`train.precision` and
`train.memory_format`; "auto" measures them as `Trainer` does). Reported per model: parameters,
images per second, ms per step, and peak memory: on CUDA the peak of
`torch.cuda.max_memory_allocated` over the timed steps, on a CPU the process's peak resident set
(each model is measured in a fresh process, so that one model's peak is not another's).
Classical models (GMM, HMM) are fitted by EM, not by steps, and are skipped. Use it to size a
GPU job before the `full` profile runs, or to compare machines.
"""
from __future__ import annotations

import argparse
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
from ..training.config import TrainConfig
from ..training.trainer import ema_params, peak_memory_mb, Trainer
from ..utils import autocast, count_parameters, device_name, log, pick_device, save_json, set_threads


def measure(name: str, spec: dict, train: D.Split, device, steps: int, warmup: int, out: Path) -> dict:
    torch.manual_seed(0)
    model = build(name, spec["hparams"], train.shape).to(device)
    if model.classical:
        return {"skipped": "fitted by EM, not by training steps"}
    cfg = TrainConfig(**spec["train"])
    batches = D.Batches(train, cfg.batch_size, 0, device)
    settings = Trainer(cfg, out / name, 0, device)._choose_speed_settings(model, batches)
    channels_last = settings["memory_format"] == "channels_last"
    if channels_last:
        model.to(memory_format=torch.channels_last)
    opts = model.configure_optimizers()
    amp = lambda: autocast(device, settings["precision"])  # noqa: E731
    it = iter(batches.epoch(0))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    t0 = None
    for i in range(warmup + steps):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
        x, y = next(it)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        model.train_step(x, y, opts, amp)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    return {"params": count_parameters(model) - ema_params(model), "batch_size": cfg.batch_size,
            "precision": settings["precision"], "memory_format": settings["memory_format"],
            "ms_per_step": 1e3 * seconds / steps,
            "images_per_s": steps * cfg.batch_size / seconds, "peak_memory_mb": peak_memory_mb(device),
            "peak_memory_kind": "cuda max allocated" if device.type == "cuda" else "process max RSS"}


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
        save_json(res, args.out)  # after each model, so a long run keeps what it measured
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
