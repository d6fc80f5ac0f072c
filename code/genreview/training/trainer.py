"""The model-agnostic training loop (`Trainer`), one for every family trained by gradient steps.

The loop knows a model only through `GenerativeModel`: `configure_optimizers`,
`lr_schedulers`, `train_step` and `sample`. It adds what every run needs: resumable
checkpoints (a killed job continues from its last checkpoint with the same data order
and random numbers), a per-step JSONL log, sample grids at chosen epochs, divergence
detection, a progress bar, and the choice of precision and memory format measured on
the machine at hand.

A diverged run (a non-finite loss, or one above `explode_threshold`) is recorded and stopped
(`on_divergence: record`), or restarted from step 0 with the same initial weights and random
numbers and every learning rate scaled by `retry_lr_factor`, up to `divergence_retries` times
(`retry`). Every attempt is recorded; a checkpoint holds its attempt's number and scale.

A step never waits for the GPU: the losses are summed, and checked for divergence, on the device
(`LossWindow`), and the host reads them only at read points: log lines (every `log_every` steps),
checkpoints, epoch ends, snapshots and the last step. A divergence found there is recorded at the
step where it happened, and nothing after it is logged or saved as healthy. Checkpoints fall every
`checkpoint_every` steps, at epoch ends, and when `checkpoint_minutes` of wall time passed since the
last one; saving touches no random numbers, so when a run checkpoints changes none of its results.

With `snapshots` > 0 it also keeps the weights at that many log-spaced steps
(`snapshot_steps`) in run/snapshots/step<k>.pt, with the images seen and the training
seconds so far, for the quality-against-compute curves (`genreview.studies.curves`). Which steps
are kept depends on the run's length alone, and saving touches no random numbers, so a
run with snapshots trains exactly as one without.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import shutil
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from .. import data as D
from ..files import ResultsFileError, file_lock, load_cache, load_torch, set_aside
from ..models.base import GenerativeModel
from ..utils import (Stopwatch, atomic_path, autocast, count_parameters, cuda_speed_flags, device_name, log,
                     resolve_precision, rng_state, save_json, set_rng_state, torch_save)

from .config import CLEARLY_FASTER, Diverged, TrainConfig, snapshot_steps


class Trainer:
    """Args: cfg (TrainConfig), out (run folder), seed, device, rid (run id for checkpoints)."""

    def __init__(self, cfg: TrainConfig, out: str | Path, seed: int, device: torch.device, rid: str = "",
                 speed_cache: str | Path | None = None):
        self.cfg, self.out, self.seed, self.device, self.rid = cfg, Path(out), seed, device, rid
        # precision and memory format measured once per model and machine, shared by its seeds (None: per run)
        self.speed_cache = Path(speed_cache) if speed_cache else None
        self.ckpt_path = self.out / "checkpoint.pt"
        self.log_path = self.out / "train_log.jsonl"
        # Written while training and published to log_path at the end: Snakemake deletes a job's
        # declared outputs (train_log.jsonl) before rerunning it, and a resumed run needs its lines.
        self.work_log_path = self.out / "train_log.partial.jsonl"
        self.snapshot_dir = self.out / "snapshots"

    # ---- precision and memory format, measured ---------------------------------------------
    def _choose_speed_settings(self, model: GenerativeModel, batches: D.Batches) -> dict:
        cfg = self.cfg
        precisions = ["fp32", "bf16"] if cfg.precision == "auto" else [cfg.precision]
        if cfg.precision == "auto" and resolve_precision("auto", self.device) == "fp32":
            precisions = ["fp32"]  # no bf16 support on this device
        formats = ["contiguous", "channels_last"] if cfg.memory_format == "auto" else [cfg.memory_format]
        if len(precisions) * len(formats) == 1:
            return {"precision": precisions[0], "memory_format": formats[0], "calibration_ms": {},
                    "speed_settings": "configured"}
        if self.speed_cache is None:
            return self._measure_speed_settings(model, batches, precisions, formats)
        # The first run of a model on this machine measures; its other seeds (and reruns) read the choice, so
        # that seeds differ only by seed. Runs started side by side wait for the one that measures.
        key = {"model": type(model).__name__, "hparams": dataclasses.asdict(model.cfg), "batch": batches.batch_size,
               "device": device_name(self.device), "threads": torch.get_num_threads(), "torch": torch.__version__,
               "candidates": [f"{p}/{f}" for p in precisions for f in formats]}
        with file_lock(self.speed_cache):
            cached = load_cache(self.speed_cache) or {}
            if cached.get("key") == key:
                log.info("precision %s, memory format %s: measured for this model on this machine (%s)",
                         cached["choice"]["precision"], cached["choice"]["memory_format"], self.speed_cache)
                return {**cached["choice"], "speed_settings": str(self.speed_cache)}
            choice = self._measure_speed_settings(model, batches, precisions, formats)
            save_json({"key": key, "choice": choice}, self.speed_cache)
        return {**choice, "speed_settings": "measured"}

    def _measure_speed_settings(self, model: GenerativeModel, batches: D.Batches, precisions, formats) -> dict:
        x, y = next(batches.epoch(0))
        state = rng_state()
        timings = {}
        for p in precisions:
            for f in formats:
                m = copy.deepcopy(model)
                if f == "channels_last":
                    m = m.to(memory_format=torch.channels_last)
                opts = m.configure_optimizers()
                xb = x.contiguous(memory_format=torch.channels_last) if f == "channels_last" else x
                ms = []
                for i in range(5):
                    with Stopwatch(self.device) as sw:
                        m.train_step(xb, y, opts, lambda p=p: autocast(self.device, p))
                    if i >= 2:
                        ms.append(sw.seconds * 1000)
                timings[f"{p}/{f}"] = sorted(ms)[len(ms) // 2]
                del m, opts
        set_rng_state(state)
        base = timings.get("fp32/contiguous", min(timings.values()))
        best = min(timings, key=timings.get)
        if timings[best] > (1 - CLEARLY_FASTER) * base:  # keep fp32/contiguous unless another is clearly faster
            best = "fp32/contiguous" if "fp32/contiguous" in timings else best
        p, f = best.split("/")
        log.info("measured ms/step %s -> %s", {k: round(v, 1) for k, v in timings.items()}, best)
        return {"precision": p, "memory_format": f, "calibration_ms": timings}

    # ---- checkpoints -----------------------------------------------------------------------
    def _save_checkpoint(self, model, opts, scheds, st: dict, window: dict | None = None) -> None:
        # window: the sums of the losses of the steps since the last log line (a checkpoint between two log lines,
        # at an epoch end, every checkpoint_every steps or checkpoint_minutes); a resumed run adds them into its
        # next line as an uninterrupted run does
        st = dict(st, log_offset=self._logf.tell() if self._logf else 0, window=window)
        if self._logf:
            self._logf.flush()
        torch_save({"run_id": self.rid, "model": model.state_dict(),
                    "optimizers": {k: o.state_dict() for k, o in opts.items()},
                    "schedulers": [s.state_dict() for s in scheds], "state": st, "rng": rng_state()},
                   self.ckpt_path)

    @staticmethod
    def _clock() -> float:
        """Seconds on a monotonic clock: what checkpoint_minutes counts (never waits for the GPU)."""
        return time.monotonic()

    def _now(self) -> float:
        """perf_counter after the queued GPU work: what runs before it is training, what runs after is not."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _save_snapshot(self, model, st: dict, t_start: float) -> None:
        """The weights now (the whole state, so an EMA copy that sampling uses is in it), with the images
        seen and the training seconds so far, excluding progress grids and snapshot saving."""
        t0 = self._now()
        torch_save({"run_id": self.rid, "step": st["step"], "images": st["step"] * self.cfg.batch_size,
                    "wall": t0 - t_start - st["overhead"], "state_dict": model.state_dict()},
                   self.snapshot_dir / f"step{st['step']}.pt")
        st["overhead"] += time.perf_counter() - t0

    def _load_checkpoint(self):
        if not self.ckpt_path.exists():
            return None
        try:
            # on the CPU: the random state must reach torch.set_rng_state as a CPU tensor, and the states load
            # into the model and optimisers on their own device (load_state_dict copies)
            ck = load_torch(self.ckpt_path, map_location="cpu")
        except ResultsFileError as e:  # written atomically, so only a damaged disk or a hand edit gets here
            aside = set_aside(self.ckpt_path)  # kept to inspect; never read again
            log.warning("checkpoint %s is unreadable (%s): moved it to %s; this run starts over from step 0",
                        self.ckpt_path, e.__cause__, aside)
            return None
        if ck.get("run_id") != self.rid:
            log.warning("ignoring checkpoint %s from a different configuration", self.ckpt_path)
            return None
        if ck["state"].get("status") == "diverged" and not self._may_retry(ck["state"]):
            log.warning("not resuming %s: that run diverged; starting over", self.ckpt_path)
            return None
        return ck  # a diverged one only when a retry is due: the caller starts the next attempt

    # ---- divergence: record it, or start over at a lower learning rate ----------------------
    def _may_retry(self, st: dict) -> bool:
        return self.cfg.on_divergence == "retry" and st.get("attempt", 0) < self.cfg.divergence_retries

    def _next_attempt(self, st: dict, model: GenerativeModel, fresh: tuple) -> dict:
        """The state of a restart after the diverged attempt `st`: step 0, the initial weights and random
        state of attempt 0, every learning rate scaled by retry_lr_factor once more; the measured speed
        settings are kept. The diverged attempt's log is kept as train_log.attempt<k>.jsonl."""
        k = st.get("attempt", 0)
        past = st.get("attempts", []) + [{"lr_scale": st.get("lr_scale", 1.0), "diverged_at": st["diverged_at"],
                                          "divergence": st["divergence"], "train_seconds": st["elapsed"]}]
        scale = self.cfg.retry_lr_factor ** (k + 1)
        log.warning("attempt %d diverged (%s); restarting from step 0 with learning rates x %g (retry %d of %d)",
                    k, st["divergence"], scale, k + 1, self.cfg.divergence_retries)
        if self.work_log_path.exists():
            self.work_log_path.replace(self.out / f"train_log.attempt{k}.jsonl")
        shutil.rmtree(self.snapshot_dir, ignore_errors=True)
        for png in self.out.glob("samples_epoch*.png"):
            png.unlink()
        model.load_state_dict(fresh[0])
        set_rng_state(fresh[1])
        speed = {key: st[key] for key in ("precision", "memory_format", "calibration_ms")}
        return {"step": 0, "elapsed": 0.0, "progress": {}, "status": "running", "overhead": 0.0,
                "attempt": k + 1, "lr_scale": scale, "attempts": past, **speed}

    @staticmethod
    def _scale_lr(opts: dict, scale: float) -> None:
        """Every optimiser's learning rates x scale, before the schedulers read them as their base rates."""
        if scale != 1.0:
            for o in opts.values():
                for g in o.param_groups:
                    g["lr"] *= scale

    # ---- the loop --------------------------------------------------------------------------
    def fit(self, model: GenerativeModel, batches: D.Batches) -> dict:
        if model.classical:
            raise TypeError(f"{type(model).__name__} is fitted by its own algorithm: use fit_classical, not Trainer")
        with cuda_speed_flags(self.device) as flags:  # CUDA, deterministic off: cuDNN autotuning and TF32
            st = self._fit(model, batches)
        st["cuda_flags"] = flags  # {} on a CPU
        return st

    def _fit(self, model: GenerativeModel, batches: D.Batches) -> dict:
        cfg = self.cfg
        self._split = batches.split  # what an image-to-image model's progress grids translate
        self.out.mkdir(parents=True, exist_ok=True)
        model.to(self.device)
        total = cfg.epochs * len(batches)
        if cfg.max_steps:
            total = min(total, cfg.max_steps)
        # where every attempt starts: the initial weights and random state (kept only when retries may come)
        fresh = (copy.deepcopy(model.state_dict()), rng_state()) if cfg.on_divergence == "retry" else None
        ck = self._load_checkpoint()
        if ck and ck["state"]["status"] == "diverged":  # killed between a divergence and its restart
            st, ck = self._next_attempt(ck["state"], model, fresh), None
        elif ck:
            st = ck["state"]
            log.info("resuming from %s at step %d/%d (attempt %d)", self.ckpt_path, st["step"], total,
                     st.get("attempt", 0))
        else:
            st = {"step": 0, "elapsed": 0.0, "progress": {}, "status": "running"}
            st.update(self._choose_speed_settings(model, batches))
            shutil.rmtree(self.snapshot_dir, ignore_errors=True)  # a fresh start: earlier snapshots are stale
            for old in self.out.glob("train_log.attempt*.jsonl"):
                old.unlink()
        # seconds of progress grids and snapshot saving, which the snapshots' training time leaves out
        st.setdefault("overhead", 0.0)
        st.setdefault("attempt", 0)
        st.setdefault("lr_scale", 1.0)
        st.setdefault("attempts", [])  # the attempts before this one, each diverged
        keep = set(snapshot_steps(total, cfg.snapshots))
        channels_last = st["memory_format"] == "channels_last"
        if channels_last:
            model.to(memory_format=torch.channels_last)
        while True:
            self._fit_attempt(model, batches, st, ck, total, keep, channels_last)
            if st["status"] != "diverged" or not self._may_retry(st):
                break
            st, ck = self._next_attempt(st, model, fresh), None
        with atomic_path(self.log_path) as tmp:
            shutil.copyfile(self.work_log_path, tmp)
        st["total_steps"] = total
        this = {"lr_scale": st["lr_scale"], "diverged_at": st.get("diverged_at"),
                "divergence": st.get("divergence"), "train_seconds": st["elapsed"]}
        st["attempts"] = st["attempts"] + [this]  # every attempt, the last one included
        return st

    def _fit_attempt(self, model, batches, st, ck, total, keep, channels_last) -> None:
        """Train from st["step"] (from checkpoint `ck` when given) to `total` or to a divergence; updates st
        and leaves a checkpoint of where it ended."""
        cfg = self.cfg
        opts = model.configure_optimizers()
        self._scale_lr(opts, st["lr_scale"])
        scheds = model.lr_schedulers(opts, total)
        if ck:
            model.load_state_dict(ck["model"])
            for k, o in opts.items():
                o.load_state_dict(ck["optimizers"][k])
            for s, sd in zip(scheds, ck["schedulers"]):
                s.load_state_dict(sd)
            set_rng_state(ck["rng"])
            if self.work_log_path.exists() and self.work_log_path.stat().st_size >= st["log_offset"]:
                with open(self.work_log_path, "r+b") as f:  # drop log lines written after the checkpoint
                    f.truncate(st["log_offset"])
            else:
                log.warning("%s is missing; the log restarts at step %d", self.work_log_path, st["step"])
                self.work_log_path.write_text("")
        # line-buffered, so that `tail -f` follows a run
        self._logf = open(self.work_log_path, "a" if ck else "w", buffering=1)
        amp = lambda: autocast(self.device, st["precision"])  # noqa: E731

        per_epoch = len(batches)
        bar = tqdm(total=total, initial=st["step"], disable=not sys.stderr.isatty(), unit="step",
                   dynamic_ncols=True, desc=self.out.name)
        window = LossWindow(cfg.explode_threshold, st.pop("window", None))
        t_start = time.perf_counter() - st["elapsed"]
        report_every = max(1, total // 20)
        next_report = (st["step"] // report_every + 1) * report_every
        every_s = 60 * cfg.checkpoint_minutes  # wall-time checkpoints (0: off), timed from this attempt's start
        last_checkpoint = self._clock()
        try:
            while st["step"] < total:
                epoch, start = divmod(st["step"], per_epoch)
                for x, y in batches.epoch(epoch, start):
                    if channels_last:
                        x = x.contiguous(memory_format=torch.channels_last)
                    try:
                        losses = model.train_step(x, y, opts, amp)
                    except Exception:  # a step on weights that diverged unseen may raise: report the divergence
                        window.read(st["step"])
                        raise
                    for s in scheds:
                        s.step()
                    st["step"] += 1
                    # Summed and checked on the device: nothing here waits for the GPU. The host reads the
                    # losses (and a divergence, with its step) only at the read points below.
                    window.add(st["step"], losses)
                    bar.update(1)
                    step = st["step"]
                    log_now = step % cfg.log_every == 0 or step == total
                    epoch_end = step % per_epoch == 0 or step == total
                    checkpoint = (step % cfg.checkpoint_every == 0 or step % per_epoch == 0
                                  or (every_s > 0 and self._clock() - last_checkpoint >= every_s))
                    if not (log_now or epoch_end or checkpoint or step in keep):
                        continue
                    last = window.read(step)  # raises Diverged, naming its first step, before anything is saved
                    if log_now:
                        self._log_window(window.means(), st, scheds, t_start, per_epoch)
                        bar.set_postfix(loss=f"{last:.4g}")
                        window.clear()
                        if bar.disable and step >= next_report:  # no terminal: log lines instead
                            el = time.perf_counter() - t_start
                            log.info("step %d/%d  loss %.4g  %.0fs elapsed, %.0fs to go", step, total, last, el,
                                     el / step * (total - step))
                            next_report = (step // report_every + 1) * report_every
                    if step in keep:
                        self._save_snapshot(model, st, t_start)
                    if epoch_end:
                        t0 = self._now()
                        self._epoch_end(model, st, per_epoch, total)
                        st["overhead"] += time.perf_counter() - t0
                    if checkpoint:
                        st["elapsed"] = time.perf_counter() - t_start
                        self._save_checkpoint(model, opts, scheds, st, window.state())
                        last_checkpoint = self._clock()
                    if step >= total:
                        break
        except Diverged as e:
            retry = "; retrying" if self._may_retry(st) else "; recording it and stopping"
            log.error("run diverged: %s%s", e, retry)
            # The weights are those of the read point at or after e.step (a diverged run is never resumed);
            # the record is that of the step where it diverged.
            st["status"], st["step"], st["diverged_at"], st["divergence"] = "diverged", e.step, e.step, str(e)
        finally:
            bar.close()
        if st["status"] == "running":
            st["status"] = "ok"
        st["elapsed"] = time.perf_counter() - t_start
        self._save_checkpoint(model, opts, scheds, st)
        self._logf.close()

    def _log_window(self, means: dict, st, scheds, t_start, per_epoch):
        row = dict(means)
        row.update(step=st["step"], epoch=st["step"] / per_epoch, wall=time.perf_counter() - t_start,
                   images=st["step"] * self.cfg.batch_size)
        if scheds:
            row["lr"] = scheds[0].get_last_lr()[0]
        self._logf.write(json.dumps(row) + "\n")

    def _epoch_end(self, model, st, per_epoch, total):
        epoch = math.ceil(st["step"] / per_epoch)
        last = st["step"] == total
        if epoch not in self.cfg.sample_epochs and not last:
            return
        g = torch.Generator(device=self.device).manual_seed(self.seed + 12345)
        state = rng_state()
        model.eval()
        with torch.no_grad():
            if model.translator:  # (input, output) pairs of training images
                imgs = model.progress_grid(self._split, self.cfg.sample_grid)
            else:
                imgs = model.sample(self.cfg.sample_grid, generator=g)
        model.train()
        set_rng_state(state)  # sampling must not shift the training run's random numbers
        grid = D.to_uint8(imgs)
        st["progress"][int(epoch)] = grid
        save_grid(grid, self.out / f"samples_epoch{epoch:03d}.png")


class LossWindow:
    """The losses of the steps since the last log line, summed on the device, and the divergence check.

    `add` runs every step and never waits for the device: each loss is added, in float64, to a running sum
    (so the means are exactly the Python-float sums and means of the per-step values), and a loss that is not
    finite or above `threshold` in absolute value marks its step as the first bad one (kept on the device).
    `read`, at a read point, brings everything to the host in one transfer and raises `Diverged`, naming the
    first bad step, if there was one. `state` is what a checkpoint keeps to resume the window.

    Args: threshold (explode_threshold), saved (a checkpoint's `state()`, or None)."""

    def __init__(self, threshold: float, saved: dict | list | None = None):
        self.threshold = float(threshold)
        if isinstance(saved, list):  # a checkpoint of the per-step values: the same sums, added in Python
            saved = {"keys": list(saved[-1]), "sums": [sum(w[k] for w in saved) for k in saved[-1]],
                     "count": len(saved)} if saved else None
        self.keys: list[str] | None = saved["keys"] if saved and saved["count"] else None
        self._saved = saved["sums"] if self.keys else None  # placed on the device by the first add
        self.count = saved["count"] if self.keys else 0
        self.sums = self.last = self.bad_step = self.bad_loss = None  # on the device, from the first add
        self._read: tuple | None = None  # (step, host sums, the last loss) of the latest read

    def add(self, step: int, losses: dict) -> None:
        if self.keys is None:
            self.keys = list(losses)
        elif losses.keys() != set(self.keys):
            raise ValueError(f"train_step returned the keys {sorted(losses)} after {sorted(self.keys)}: a model "
                             f"returns the same keys every step (the trainer averages each over a log window)")
        loss = losses["loss"]
        dev = loss.device if isinstance(loss, torch.Tensor) else torch.device("cpu")
        vals = torch.stack([_float64(losses[k], dev) for k in self.keys])     # (K,)
        if self.sums is None:
            self.sums = torch.zeros(len(self.keys), dtype=torch.float64, device=dev)
            if self._saved is not None:
                self.sums += torch.tensor(self._saved, dtype=torch.float64).to(dev)
            self.bad_step = torch.zeros((), dtype=torch.long, device=dev)   # 0: none so far
            self.bad_loss = torch.zeros((), dtype=torch.float64, device=dev)
        self.sums += vals
        self.count += 1
        self.last = vals
        loss = vals[self.keys.index("loss")]
        # not finite, or |loss| > threshold: as math.isfinite and abs in Python doubles (NaN fails <=)
        first = ~(loss.abs() <= self.threshold) & (self.bad_step == 0)
        self.bad_step = torch.where(first, step, self.bad_step)
        self.bad_loss = torch.where(first, loss, self.bad_loss)

    def read(self, step: int) -> float:
        """At a read point: the latest step's loss; raises Diverged if a step since the start diverged."""
        if self.sums is None:
            return float("nan")
        if self._read is None or self._read[0] != step:
            host = torch.cat([self.sums, self.last, self.bad_step.double()[None], self.bad_loss[None]]).tolist()
            k = len(self.keys)
            self._read = (step, host[:k], host[k + self.keys.index("loss")], int(host[-2]), host[-1])
        _, _, last, bad_step, bad_loss = self._read
        if bad_step:
            raise Diverged(f"loss {bad_loss} at step {bad_step}", bad_step)
        return last

    def means(self) -> dict:
        """The mean of each loss over the window, as of the latest read."""
        return {k: s / self.count for k, s in zip(self.keys, self._read[1])}

    def clear(self) -> None:
        self.sums.zero_()
        self.count = 0
        self._read = None

    def state(self) -> dict | None:
        """The window as of the latest read, for a checkpoint: its sums as Python floats (float64, exact)."""
        if not self.count:
            return None
        return {"keys": list(self.keys), "sums": list(self._read[1]), "count": self.count}


def _float64(v, device) -> torch.Tensor:
    if isinstance(v, torch.Tensor):
        return v.detach().reshape(()).to(torch.float64)
    return torch.full((), float(v), dtype=torch.float64, device=device)


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory of this process so far: on CUDA the most the caching allocator held for tensors
    (`torch.cuda.max_memory_allocated`), on a CPU the peak resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def save_grid(grid: torch.Tensor, path: Path) -> None:
    """A uint8 grid of images (N, C, H, W) as a PNG, 8 per row, written atomically."""
    from torchvision.utils import save_image
    with atomic_path(path) as tmp:
        save_image(grid.float() / 255, tmp, nrow=8, format="png")


def ema_params(model) -> int:
    return sum(count_parameters(m) for m in model.modules() if type(m).__name__ == "EMA")


def last_logged(path: Path) -> dict:
    lines = path.read_text().splitlines() if path.exists() else []
    return json.loads(lines[-1]) if lines else {}
