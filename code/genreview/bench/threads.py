"""One job on every core, or one job per core side by side: a benchmark, not a test.

    python -m genreview.bench.threads --profile small --cores 2 --out bench/threads_small.json

Snakemake runs a profile's jobs either one at a time on all cores (`threads_per_job: 0`) or side by side
on fewer threads each (`threads_per_job: 1`). Which is faster depends on the networks: small ones spend
much of a step in Python and in single-threaded code, which a second thread does not speed up. For each
workload this runs, in fresh processes:

- `alone`: one process with `--cores` threads doing the work `--cores` times over (the jobs one after
  another);
- `side_by_side`: `--cores` processes with one thread each doing the work once, all at the same time.

Both do the same total work; the report gives each arrangement's wall time and the speed-up of side by
side. The workloads are the two the speed issue names: training steps of `train_model` (default dcgan) at
the profile's batch size and precision, and the sampling and scoring of an evaluation of `sample_model`
(default ddpm): `--n` images from its sampler, then every protocol metric against the reference. The
networks are untrained (time does not depend on the weights). Run it alone on the machine.
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
from ..evaluation.classifier import DomainClassifier
from ..evaluation.evaluate import generate, reference_images
from ..evaluation.metrics import EvalConfig, Reference
from ..models import build
from ..training.config import TrainConfig
from ..provenance import cpu_model
from ..utils import autocast, cpu_supports_bf16, save_json


def _train(spec: dict, dataset: str, root: str, steps: int, precision: str) -> float:
    train = D.load(dataset, root, "train")
    torch.manual_seed(0)
    model = build(spec["model"], spec["hparams"], train.shape)
    cfg = TrainConfig(**spec["train"])
    opts = model.configure_optimizers()
    it = iter(D.Batches(train, cfg.batch_size, 0, torch.device("cpu")).epoch(0))
    amp = lambda: autocast(torch.device("cpu"), precision)  # noqa: E731
    for _ in range(3):  # warm-up
        model.train_step(*next(it), opts, amp)
    t0 = time.perf_counter()
    for _ in range(steps):
        model.train_step(*next(it), opts, amp)
    return time.perf_counter() - t0


def _evaluate(spec: dict, dataset: str, root: str, n: int, precision: str) -> float:
    test = D.load(dataset, root, "test")
    torch.manual_seed(0)
    model = build(spec["model"], spec["hparams"], test.shape).eval()
    cfg = EvalConfig(**{**spec["eval"], "n_samples": n})
    clf = DomainClassifier(test.shape[0], int(test.labels.max()) + 1, spec.get("classifier_width", 16)).eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        fake, _ = generate(model, n, cfg.batch_size, 0, torch.device("cpu"), precision)
        Reference.from_images(clf, reference_images(test.images, cfg), cfg).score(fake)
    return time.perf_counter() - t0


def _job(kind: str, threads: int, repeats: int, *args) -> float:
    torch.set_num_threads(threads)
    fn = _train if kind == "train" else _evaluate
    return sum(fn(*args) for _ in range(repeats))


def compare(kind: str, cores: int, *args) -> dict:
    """Wall seconds of the work done `cores` times by one process on `cores` threads, and once by each of
    `cores` one-thread processes at the same time."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        t0 = time.perf_counter()
        inner = pool.submit(_job, kind, cores, cores, *args).result()
        alone = time.perf_counter() - t0
    with ProcessPoolExecutor(cores, mp_context=ctx) as pool:
        t0 = time.perf_counter()
        inners = [f.result() for f in [pool.submit(_job, kind, 1, 1, *args) for _ in range(cores)]]
        side = time.perf_counter() - t0
    return {"alone_s": alone, "alone_work_s": inner, "side_by_side_s": side, "side_by_side_work_s": inners,
            "speedup_side_by_side": alone / side}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m genreview.bench.threads", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="config.yaml")
    p.add_argument("--profile", default="small", choices=["smoke", "small", "full"])
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--train-model", default="dcgan")
    p.add_argument("--sample-model", default="ddpm")
    p.add_argument("--steps", type=int, default=100, help="timed training steps per job")
    p.add_argument("--n", type=int, default=256, help="images sampled and scored per job")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--out", default="bench/threads.json")
    args = p.parse_args(argv)
    raw = C.load(args.config)
    raw["profile"] = args.profile
    cfg = C.resolve(raw, args.config)
    ds, root = cfg["dataset"], cfg["data"]["root"]
    res = {"profile": args.profile, "cores": args.cores, "cpu": cpu_model(), "cpu_bf16": cpu_supports_bf16(),
           "precision": args.precision, "torch": torch.__version__}
    tspec = C.train_spec(cfg, args.train_model, 0, snapshots=False)
    tspec["model"] = args.train_model
    res["train"] = {"model": args.train_model, "steps": args.steps, "batch_size": tspec["train"]["batch_size"],
                    **compare("train", args.cores, tspec, ds, root, args.steps, args.precision)}
    print(json.dumps(res["train"], indent=1), flush=True)
    espec = C.eval_spec(cfg, args.sample_model, 0)
    sspec = {"model": args.sample_model, "hparams": C.train_spec(cfg, args.sample_model, 0)["hparams"],
             "eval": espec["eval"], "classifier_width": C.classifier_spec(cfg)["classifier"]["width"]}
    res["evaluate"] = {"model": args.sample_model, "n": args.n,
                       **compare("evaluate", args.cores, sspec, ds, root, args.n, args.precision)}
    print(json.dumps(res["evaluate"], indent=1), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    save_json(res, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
