"""Train one model as a spec describes: the data, the model from the registry, and either the training loop
(`trainer.Trainer`, for every family trained by gradient steps) or the model's own fit (the classical models,
fitted by EM); then model.pt, progress.pt and train_summary.json in the run folder.

The summary holds the run's compute beside its images seen and wall time: the FLOPs of its training steps
(`flops.train_flops`, counted after the run on a copy of the model, every network of it included) and, for
an adversarial model, its generator updates (a critic GAN's critic steps are in the FLOPs on top)."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch

from .. import data as D
from ..models import build
from ..models.base import GenerativeModel
from ..utils import (atomic_path, autocast, count_parameters, device_name, log, pick_device,
                    save_json, seed_everything, set_deterministic, set_threads, torch_save)

from . import flops as F
from .config import SPEED_SETTINGS, TrainConfig, run_id
from .trainer import Trainer, ema_params, last_logged, peak_memory_mb, save_grid


def train(spec: dict, out: str | Path, threads: int | None = None, speed_cache: str | Path | None = None) -> dict:
    """Train one model as described by `spec` (see `genreview.config.train_spec`) into folder `out`.

    speed_cache: the file holding the precision and memory format measured for this model on this machine
    (default: speed_settings.json beside the seeds' folders, `out`/..), shared by every seed."""
    set_threads(threads)
    set_deterministic(spec.get("deterministic", False))
    out = Path(out)
    seed_everything(spec["seed"])
    device = pick_device(spec["device"])
    split = D.load(spec["dataset"], spec["data_root"], "train")
    cfg = TrainConfig(**spec["train"])
    model = build(spec["model"], spec["hparams"], split.shape)
    split = training_split(model, split)
    if model.classical:
        st, per_epoch = fit_classical(model, split, cfg, out, spec["seed"]), 1
        peak = peak_memory_mb(device)
        flops = CLASSICAL_FLOPS
    else:
        batches = D.Batches(split, cfg.batch_size, spec["seed"], device)
        trainer = Trainer(cfg, out, spec["seed"], device, rid=run_id(spec),
                          speed_cache=speed_cache or out.parent / SPEED_SETTINGS)
        st, per_epoch = trainer.fit(model, batches), len(batches)
        peak = peak_memory_mb(device)  # the run's, read before the FLOP count adds a copy of the model
        flops = run_flops(model, batches, device, st)
    model.cpu()
    torch_save({"model": spec["model"], "hparams": spec["hparams"], "shape": split.shape,
                "state_dict": model.state_dict()}, out / "model.pt")
    torch_save({int(k): v for k, v in st["progress"].items()}, out / "progress.pt")
    summary = {
        "model": spec["model"], "seed": spec["seed"], "status": st["status"],
        "diverged_at": st.get("diverged_at"), "divergence": st.get("divergence"),
        "steps": st["step"], "planned_steps": st["total_steps"], "epochs": st["step"] / per_epoch,
        "batch_size": st.get("batch_size", cfg.batch_size),
        "images_seen": st.get("images_seen", st["step"] * cfg.batch_size),
        "train_seconds": st["elapsed"], "ms_per_step": 1000 * st["elapsed"] / max(1, st["step"]),
        # throughput and the peak memory of this process (CUDA: max allocated on the GPU; else the peak RSS)
        "images_per_s": st.get("images_seen", st["step"] * cfg.batch_size) / max(st["elapsed"], 1e-9),
        "peak_memory_mb": peak, "peak_memory_kind": "cuda" if device.type == "cuda" else "rss",
        "params": count_parameters(model) - ema_params(model),
        "sampling_params": count_parameters(model.sampling_network()),
        "precision": st["precision"], "memory_format": st["memory_format"],
        "speed_settings": st.get("speed_settings", "measured"),  # or the file they were read from
        "calibration_ms": st["calibration_ms"], "device": device_name(device),
        "final_loss": last_logged(out / "train_log.jsonl"),
        # every attempt, in order: more than one when on_divergence "retry" restarted a diverged run
        "attempts": st.get("attempts") or [{"lr_scale": 1.0, "diverged_at": st.get("diverged_at"),
                                            "divergence": st.get("divergence"), "train_seconds": st["elapsed"]}],
        "hparams": spec["hparams"], "train_config": spec["train"], "fit": st.get("fit", {}),
        **flops,
    }
    save_json(summary, out / "train_summary.json")
    return summary


def training_split(model: GenerativeModel, split: D.Split) -> D.Split:
    """The images `model` trains on: all of `split`, or only its `train_classes` (CycleGAN's two domains)."""
    if not model.train_classes:
        return split
    keep = torch.isin(split.labels, torch.tensor(model.train_classes))
    log.info("training on the %d images of classes %s", int(keep.sum()), list(model.train_classes))
    return D.Split(split.images[keep], split.labels[keep])


# A classical model is fitted by EM in numpy/torch without autograd: FlopCounterMode sees no training steps.
CLASSICAL_FLOPS = {"flops_per_step": None, "train_flops": None, "generator_updates": None, "flops_counter": None,
                   "flops": {"note": "fitted by EM (numpy/torch without autograd), not by training steps: "
                                     "no FLOP counter"}}


def run_flops(model: GenerativeModel, batches: D.Batches, device: torch.device, st: dict) -> dict:
    """The FLOP fields of train_summary.json for a finished run (`flops.train_flops`): per step averaged over
    the run's schedule, for the steps taken (the phase-weighted sum), the generator updates of an adversarial
    model, and the breakdown. Counted on a copy of the model on the run's device, at the run's precision, with
    the random state restored, after the run: nothing of the run changes. A failure to count is logged and
    recorded (null counts, the error under "flops"), not raised: the trained model is worth keeping."""
    amp = lambda: autocast(device, st["precision"])  # noqa: E731
    try:
        r = F.train_flops(model, batches.epoch(0), amp, total_steps=st["total_steps"], steps=st["step"])
    except Exception as e:  # noqa: BLE001 - recorded, see above
        log.error("could not count the run's FLOPs: %s: %s", type(e).__name__, e)
        return {"flops_per_step": None, "train_flops": None, "generator_updates": None, "flops_counter": F.COUNTER,
                "flops": {"error": f"{type(e).__name__}: {e}"}}
    log.info("%.3g FLOPs per step, %.3g for the run's %d steps", r["per_step"], r["train_flops"], st["step"])
    breakdown = {k: r[k] for k in ("cycle_steps", "per_generator_update", "phases")}
    return {"flops_per_step": r["per_step"], "train_flops": r["train_flops"],
            "generator_updates": r["generator_updates"], "flops_counter": F.COUNTER, "flops": breakdown}


def fit_classical(model: GenerativeModel, split: D.Split, cfg: TrainConfig, out: Path, seed: int) -> dict:
    """Fit a classical model (GMM, HMM) by its own algorithm on the CPU, in one call.

    Writes what a gradient-trained run writes: a one-line log, a sample grid, the state for the summary.
    An EM step visits every training image, so a step here is one EM iteration over `train_images`.
    """
    out.mkdir(parents=True, exist_ok=True)
    x = D.to_unit(split.images)
    log.info("fitting %s on up to %d images", type(model).__name__, len(x))
    t0 = time.perf_counter()
    stats = model.fit(x, seed)
    elapsed = time.perf_counter() - t0
    n_iter, n_images = int(stats.get("n_iter", 1)), int(stats.get("train_images", len(x)))
    st = {"step": n_iter, "total_steps": int(stats.get("max_iter", n_iter)), "elapsed": elapsed, "progress": {},
          "status": "ok", "precision": "fp64", "memory_format": "contiguous", "calibration_ms": {},
          "batch_size": n_images, "images_seen": n_iter * n_images, "fit": stats}
    nll = stats.get("train_log_likelihood_nats")
    if nll is None or not math.isfinite(nll):
        st.update(status="diverged", diverged_at=n_iter, divergence=f"train log-likelihood {nll}")
    with atomic_path(out / "train_log.jsonl") as tmp:
        row = {"step": n_iter, "epoch": 1, "wall": elapsed, "images": n_iter * n_images,
               "loss": -nll / x[0].numel() if nll is not None else float("nan")}
        tmp.write_text(json.dumps(row) + "\n")
    if st["status"] == "ok":
        g = torch.Generator().manual_seed(seed + 12345)
        grid = D.to_uint8(model.sample(cfg.sample_grid, generator=g))
        st["progress"][1] = grid
        save_grid(grid, out / "samples_epoch001.png")
    log.info("fitted in %.1fs (%d iterations, converged %s)", elapsed, n_iter, stats.get("converged"))
    return st
