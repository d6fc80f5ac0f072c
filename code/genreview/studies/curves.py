"""Quality against training compute: a model's weights at several points of its main training run,
each scored under the protocol.

One FD per model at the end of a fixed budget mixes how good a family gets with how much training
it was given. Lucic et al. (2018, "Are GANs created equal?") argue that families should be compared
at equal computational budgets; this study gives each model its whole curve instead. The trainer
keeps the weights at `snapshots` log-spaced steps (`train.snapshot_steps`, with the images seen and
the training seconds up to each); `curve_run` draws `n` samples from every snapshot and scores them
in the domain classifier's features (`metrics.Reference`, at that N). Diffusion models are sampled
with DDIM (Song et al. 2021) at `sampler_steps` steps, with the model's own eta, to keep the many
evaluations cheap; the other families with their own one-pass `sample`. Every snapshot is drawn from
the same noise, so the curve follows the weights alone.

The time to reach a quality threshold (`report.time_to_threshold`) and the paper's verdicts
(`report.compute_study`) are read from these curves.

The job is resumable point by point: a scored snapshot leaves points/step<k>.json, read back (not
rescored) while the snapshot's content and the scoring settings are unchanged.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from .. import data as D
from ..files import load_cache, load_torch, rebuild_command
from ..hashing import content_digest
from ..hparams import MODEL_NAME, hp
from ..evaluation.classifier import classifier_digest, load_classifier
from ..evaluation.evaluate import generate, shared_reference
from ..evaluation.metrics import EvalConfig
from ..models import build
from ..training.config import snapshot_steps
from ..utils import load_json, log, pick_device, save_json, seed_everything, set_threads


@dataclass
class CurvesConfig:
    models: list[str] = hp(["vae", "dcgan", "wgan_gp", "stylegan", "ddpm", "ldm"], unique_items=True, items=MODEL_NAME,
                           doc="models trained by gradient steps that draw samples (not gmm, hmm or the "
                               "image-to-image models)")  # one job per seed
    snapshots: int = hp(6, minimum=1, maximum=10**3, doc="snapshots per run, log-spaced in steps; the last step always")
    n: int = hp(500, minimum=20, maximum=10**6, doc="N scored per snapshot")
    threshold: float = hp(100.0, exclusive_minimum=0, doc="the FD (at N = n) that counts as reached")
    sampler_steps: int = hp(50, minimum=1, maximum=10**5, doc="DDIM steps of the diffusion models (at most their T)")


def snapshot_files(run_dir: str | Path) -> dict[int, Path]:
    """step -> run_dir/snapshots/step<step>.pt, for the snapshots on disk."""
    return {int(p.stem[len("step"):]): p for p in (Path(run_dir) / "snapshots").glob("step*.pt")}


def expected_steps(train_summary: dict) -> list[int]:
    """The snapshot steps a finished (or diverged) run should have kept: those of its planned length,
    up to the step it stopped at."""
    cfg = train_summary.get("train_config", {})
    steps = snapshot_steps(int(train_summary["planned_steps"]), int(cfg.get("snapshots", 0)))
    return [k for k in steps if k <= train_summary["steps"]]


def sample_options(model, cc: CurvesConfig) -> dict:
    """What `evaluate.generate` passes on to model.sample: DDIM at sampler_steps (at most T) for a
    diffusion model, nothing for a one-pass sampler."""
    if "ddim" in model.samplers:
        return {"sampler": "ddim", "steps": min(cc.sampler_steps, model.cfg.timesteps)}
    return {}


def point_key(path: Path, step: int, scoring: dict, rebuild: str | None = None) -> str:
    """What a scored point depends on: the snapshot's content (its weights in sorted-key order, its step,
    images and seconds), never its file's bytes or modification time, and the scoring settings.
    rebuild: the command named when the snapshot cannot be read."""
    snap = load_torch(path, rebuild=rebuild)
    return content_digest({"step": step, "snapshot": snap, "scoring": scoring})


def curve_run(spec: dict, run_dir: str | Path, classifier: str | Path, out: str | Path,
              threads: int | None = None, reference: str | Path | None = None) -> dict:
    """Score every snapshot of the run in `run_dir`; writes out/points/step<k>.json per snapshot and
    out/curve.json: {"model", "seed", "status", "n", "threshold", "sampler", "sampler_steps", "nfe",
    "rows": [{"step", "images", "wall", "fd", "kid", ..., "sample_ms"}] in step order}.

    spec: dataset, data_root, device, model, seed, eval (EvalConfig as a dict; its n_samples is replaced
    by curves.n), curves (CurvesConfig as a dict). reference: the `reference` rule's features file (None:
    computed here)."""
    set_threads(threads)
    run_dir, out = Path(run_dir), Path(out)
    cc = CurvesConfig(**spec["curves"])
    ev = EvalConfig(**spec["eval"])
    cfg = dataclasses.replace(ev, n_samples=cc.n, kid_subset_size=min(ev.kid_subset_size, cc.n))
    device = pick_device(spec["device"])
    summary = load_json(run_dir / "train_summary.json")
    steps = expected_steps(summary)
    files = snapshot_files(run_dir)
    missing = [k for k in steps if k not in files]
    if not summary.get("train_config", {}).get("snapshots"):
        raise RuntimeError(f"{run_dir} kept no weight snapshots: it was trained with train.snapshots 0. List "
                           f"{spec['model']} in curves.models and retrain it (snakemake --forcerun train, or "
                           f"delete {run_dir}).")
    if missing:
        raise RuntimeError(f"{run_dir}/snapshots lacks the snapshots of steps {missing}: retrain the run "
                           f"(snakemake --forcerun train, or delete {run_dir}).")

    seed_everything(cfg.seed + spec["seed"])
    test = D.load(spec["dataset"], spec["data_root"], "test")
    model = build(spec["model"], summary["hparams"], test.shape).to(device).eval()
    options = sample_options(model, cc)
    nfe = model.network_evaluations("ddim", options["steps"]) if options else model.nfe
    scoring = {"eval": dataclasses.asdict(cfg), "n": cc.n, "options": options,
               "classifier": classifier_digest(classifier), "precision": summary["precision"]}
    ref = None  # built at the first snapshot that needs scoring
    rows = []
    for step in steps:
        path, done = files[step], out / "points" / f"step{step}.json"
        # a corrupt snapshot: retrain the run from scratch (a finished checkpoint writes no snapshots)
        key = point_key(path, step, scoring, rebuild=rebuild_command(run_dir / "model.pt", run_dir))
        cached = load_cache(done)
        if cached is not None and cached.get("key") == key:
            rows.append(cached)
            log.info("curve %s: step %d read from %s", spec["model"], step, done)
            continue
        if ref is None:
            ref = shared_reference(reference, load_classifier(classifier, device), classifier, cfg, spec, test)
        # a corrupt snapshot: retrain the run from scratch (a finished checkpoint writes no snapshots)
        snap = load_torch(path, device, rebuild=rebuild_command(run_dir / "model.pt", run_dir))
        model.load_state_dict(snap["state_dict"])
        model.eval()
        fake, secs = generate(model, cc.n, cfg.batch_size, cfg.seed + spec["seed"], device, summary["precision"],
                              **options)                                         # (n, C, H, W) uint8
        row = {"step": step, "images": snap["images"], "wall": snap["wall"], **ref.score(fake),
               "sample_ms": 1000 * secs / len(fake), "key": key}
        save_json(row, done)
        rows.append(row)
        log.info("curve %s: step %d (%d images, %.0fs of training): FD %.3f", spec["model"], step, row["images"],
                 row["wall"], row["fd"])
    res = {"model": spec["model"], "seed": spec["seed"], "status": summary["status"], "n": cc.n,
           "threshold": cc.threshold, "sampler": options.get("sampler", "native"),
           "sampler_steps": options.get("steps"), "nfe": nfe, "planned_steps": summary["planned_steps"],
           "train_seconds": summary["train_seconds"], "rows": rows}
    save_json(res, out / "curve.json")
    return res
