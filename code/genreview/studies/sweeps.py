"""The sampling-cost studies: what a trained model's samples are worth at each budget.

- `sweep_run`: FD (and the rest of the protocol) against network evaluations per sample. A
  diffusion model is sampled with each configured sampler (DDIM, Song et al. 2021; DDPM's
  ancestral chain, Ho et al. 2020) at each step count; a one-shot model (VAE, GAN) gives the
  single point it has, on the same N, so that all of them share one pair of axes.
- `guidance_run`: classifier-free guidance (Ho and Salimans 2022) on a class-conditional model,
  swept over the guidance weight w: FD against conditional accuracy (how often the domain
  classifier names the class that was asked for).

Every point is scored against the same real images by `metrics.Reference`, with the sweep's
own N (smaller than the main evaluation's, which is reported with each point).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import data as D
from ..hparams import MODEL_NAME, hp
from ..evaluation.classifier import load_classifier
from ..evaluation.evaluate import generate, shared_reference
from ..evaluation.metrics import EvalConfig, embed
from ..models import load_trained
from ..utils import load_json, log, pick_device, save_json, seed_everything, set_threads, torch_save


@dataclass
class SweepConfig:
    models: list[str] = hp(["ddpm", "iddpm", "ldm", "cascade", "vae", "dcgan"], unique_items=True, items=MODEL_NAME,
                           doc="models the sweep covers (those also in `models`); one-shot models give one point")
    samplers: list[str] = hp(["ddim", "ddpm"], min_items=1, unique_items=True,
                             items={"enum": ["ddim", "ddpm"]})  # ddpm: ancestral
    steps: list[int] = hp([10, 20, 50, 100], min_items=1, unique_items=True,
                          items={"minimum": 1, "maximum": 10**5})  # step counts; > T are skipped
    ddim_eta: float = hp(0.0, minimum=0)  # DDIM's noise in the sweep: 0 is the deterministic sampler of the paper
    n_samples: int = hp(1000, minimum=20, maximum=10**6)  # N per point
    grid: int = hp(16, minimum=1, maximum=10**6)  # images kept per point for the figures


@dataclass
class GuidanceConfig:
    models: list[str] = hp(["guided_ldm"], unique_items=True, items=MODEL_NAME)
    weights: list[float] = hp([0.0, 0.5, 1.0, 2.0, 4.0], min_items=1, unique_items=True,
                              items={"minimum": 0})  # w; 0 = conditional, unguided
    n_samples: int = hp(1000, minimum=20, maximum=10**6)  # N per weight, the classes balanced
    per_class: int = hp(4, minimum=1, maximum=10**5)  # images per class and weight kept for the figure


def _setup(spec: dict, run_dir: Path, classifier, n_samples: int, reference=None):
    """The trained model, the classifier and a Reference at the study's N (None when the run diverged);
    `reference`: the `reference` rule's features file (None: computed here)."""
    summary = load_json(run_dir / "train_summary.json")
    if summary["status"] != "ok":
        return summary, None, None, None, None
    cfg = dataclasses.replace(EvalConfig(**spec["eval"]), n_samples=n_samples)
    device = pick_device(spec["device"])
    seed_everything(cfg.seed + spec["seed"])
    model = load_trained(run_dir / "model.pt", device)
    clf = load_classifier(classifier, device)
    test = D.load(spec["dataset"], spec["data_root"], "test")
    return summary, model, clf, shared_reference(reference, clf, classifier, cfg, spec, test), cfg


def sweep_run(spec: dict, run_dir: str | Path, classifier: str | Path, out: str | Path,
              threads: int | None = None, reference: str | Path | None = None) -> dict:
    """Writes sweep.json (one row per sampler and step count) and sweep_grids.pt into `out`."""
    set_threads(threads)
    run_dir, out = Path(run_dir), Path(out)
    sw = SweepConfig(**spec["sweep"])
    summary, model, clf, ref, cfg = _setup(spec, run_dir, classifier, sw.n_samples, reference)
    res = {"model": spec["model"], "seed": spec["seed"], "status": summary["status"], "n": sw.n_samples,
           "points": []}
    grids = {}
    if model is None:
        log.warning("%s seed %s %s: no sweep", spec["model"], spec["seed"], summary["status"])
    elif model.samplers:  # an iterative sampler: a point per sampler and step count
        model.cfg = dataclasses.replace(model.cfg, ddim_eta=sw.ddim_eta)
        for sampler in sw.samplers:
            for steps in sorted(sw.steps):
                if steps > model.cfg.timesteps:
                    log.info("skipping %d steps: the model has only T = %d", steps, model.cfg.timesteps)
                    continue
                row = {"sampler": sampler, "steps": steps, "eta": sw.ddim_eta if sampler == "ddim" else 1.0,
                       "nfe": model.network_evaluations(sampler, steps)}
                grids[f"{sampler}/{steps}"] = _point(model, row, ref, cfg, spec, summary, sw, res,
                                                     sampler=sampler, steps=steps)
    else:
        row = {"sampler": "native", "steps": 1, "eta": None, "nfe": model.nfe}
        grids["native/1"] = _point(model, row, ref, cfg, spec, summary, sw, res)
    save_json(res, out / "sweep.json")
    torch_save(grids, out / "sweep_grids.pt")
    return res


def _point(model, row, ref, cfg, spec, summary, sw, res, **options):
    fake, secs = generate(model, sw.n_samples, cfg.batch_size, cfg.seed + spec["seed"], ref.device,
                          summary["precision"], **options)
    row.update(ms_per_image=1000 * secs / len(fake), **ref.score(fake))
    log.info("%s: %s", spec["model"], {k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()})
    res["points"].append(row)
    return fake[:sw.grid]


def guidance_run(spec: dict, run_dir: str | Path, classifier: str | Path, out: str | Path,
                 threads: int | None = None, reference: str | Path | None = None) -> dict:
    """Writes guidance.json (one row per weight) and guidance_grids.pt ({w: (K * per_class, C, H, W)})."""
    set_threads(threads)
    run_dir, out = Path(run_dir), Path(out)
    gc = GuidanceConfig(**spec["guidance"])
    summary, model, clf, ref, cfg = _setup(spec, run_dir, classifier, gc.n_samples, reference)
    res = {"model": spec["model"], "seed": spec["seed"], "status": summary["status"], "n": gc.n_samples,
           "points": []}
    grids = {}
    if model is not None:
        k = model.num_classes
        if not model.conditional:
            raise ValueError(f"guidance.models lists {spec['model']!r}, which is not class-conditional "
                             f"(hparams.{spec['model']}.num_classes is 0): set num_classes or remove it there")
        labels = torch.arange(gc.n_samples) % k                                   # balanced classes
        first = [torch.nonzero(labels == c)[:gc.per_class, 0] for c in range(k)]
        for w in gc.weights:
            fake, secs = generate(model, gc.n_samples, cfg.batch_size, cfg.seed + spec["seed"], ref.device,
                                  summary["precision"], labels=labels, guidance=w)
            embedded = embed(clf, fake)                                           # features, logits
            pred = embedded[1].argmax(1)
            per_class = [float((pred[labels == c] == c).float().mean()) for c in range(k)]
            row = {"guidance": w, "nfe": model.network_evaluations(guidance=w),
                   "ms_per_image": 1000 * secs / len(fake),
                   "cond_accuracy": float((pred == labels).float().mean()), "cond_accuracy_by_class": per_class,
                   **ref.score(fake, embedded)}
            log.info("w=%g: FD %.3f, conditional accuracy %.3f, %.2f ms/image", w, row["fd"],
                     row["cond_accuracy"], row["ms_per_image"])
            res["points"].append(row)
            grids[w] = torch.cat([fake[i] for i in first])                        # class by class
    save_json(res, out / "guidance.json")
    torch_save(grids, out / "guidance_grids.pt")
    return res
