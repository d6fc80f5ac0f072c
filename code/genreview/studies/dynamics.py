"""The GAN training-dynamics study: many short runs of one family at an equal budget of generator updates.

After Lucic et al. (2018, "Are GANs created equal?"), a family is judged not by its best run but
by the spread of its runs. One job trains one model several times for `steps` generator updates each
(a critic GAN's n_critic critic steps per update come on top: `short_run_steps`) and scores every run
under the protocol (`metrics.Reference`) at one N:

- "seed" runs: the configured hyperparameters at each seed. Stability: the mean and spread of FD,
  and the share of runs that diverged (a non-finite or exploding loss) or collapsed (samples that look
  real but cover little of the data, `publish.verdicts.collapsed`, read from the run's precision and
  coverage; the class coverage is kept beside them).
- "draw" runs: random hyperparameters, the same draws for every family. Sensitivity: the learning
  rate, log-uniform, given to every learning rate the config has; Adam's betas where the
  optimiser uses them (not WGAN's RMSprop, Arjovsky et al. 2017); the batch size.
- "detach" runs: DCGAN with `detach_fake = False`, each paired with the seed run at the same seed. D's
  backward then also reaches G; the squared norm of the gradient it leaves there
  (`g_grad_in_d_step`, exactly 0 with the detach) and the cost per step measure the ablation in our
  loop, which clears G's gradients before G's step (so G's updates are those of the seed run).
- "leak" runs: the same without clearing them (`zero_g_grad = False`), the loop in which the detach
  matters: G then steps on its own gradient plus D's, and `g_update_cos` (the cosine between the two
  directions G could step in) says how far the leak bends its update; its FD against the seed runs' says
  what that does to the samples.
- "beta" runs: a VAE at other KL weights (`betas`) at every seed, beside the seed runs at the configured
  one: its blur against real images (`evaluate.blur`) as the weight of the regulariser grows, the
  sources' explanation of the VAE's blur (a trade-off between reconstruction and regularisation). They
  are not short runs: by default each trains for the main run's whole budget (`beta_steps`), since a
  blur measured on a model far from trained says little about a trained one.

Each run also reports D's mean output on real and fake images in its last log window: at the
optimum of the original game D(x) = 1/2 everywhere (Goodfellow et al. 2014), and a D that
separates the two perfectly gives G vanishing gradients (Arjovsky et al. 2017). The run's
"d_output" says what they are: probabilities, or a critic's mean values (WGAN, WGAN-GP).

A run is resumable at two levels: a finished run leaves `result.json` in its folder and is read
back, not retrained; an unfinished one resumes from the trainer's checkpoint.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import data as D
from ..files import load_cache, load_json, load_torch, rebuild_command
from ..hparams import MODEL_NAME, hp
from ..evaluation.classifier import classifier_digest, load_classifier
from ..evaluation.evaluate import blur, generate, reference_images, shared_reference
from ..evaluation.metrics import EvalConfig, Reference, class_coverage, embed, sharpness
from ..models import REGISTRY, build
from ..models.wgan import WGANConfig
from ..training.config import run_id, TrainConfig
from ..training.trainer import Trainer
from ..utils import log, pick_device, save_json, seed_everything, set_threads, torch_save


@dataclass
class DynamicsConfig:
    models: list[str] = hp(["vae", "dcgan", "wgan", "wgan_gp", "stylegan"], unique_items=True,
                           items=MODEL_NAME)  # one job each
    seeds: list[int] = hp([0, 1, 2], min_items=1, unique_items=True,
                          items={"minimum": 0, "maximum": 2**32 - 1},
                          schema={"maxItems": 10**3})  # "seed" runs; draws use the first, the ablation and
    #                                                        the KL-weight runs every one
    draws: int = hp(3, minimum=0, maximum=10**3, doc="random hyperparameter draws per model (Lucic et al. 2018)")
    steps: int = hp(300, minimum=1, maximum=10**8,
                    doc="generator updates of every short run (a critic GAN's critic steps come on top)")
    n_samples: int = hp(500, minimum=20, maximum=10**6)  # N scored per run
    lr_min: float = hp(1e-5, exclusive_minimum=0)  # the learning rate is drawn log-uniformly in [lr_min, lr_max]
    lr_max: float = hp(1e-2, exclusive_minimum=0)
    beta1_choices: list[float] = hp([0.0, 0.5, 0.9], min_items=1,
                                    items={"minimum": 0, "maximum": 1})  # Adam's beta1, uniformly
    beta2_choices: list[float] = hp([0.9, 0.999], min_items=1,
                                    items={"minimum": 0, "maximum": 1})  # Adam's beta2, uniformly
    batch_choices: list[int] = hp([32, 64, 128], min_items=1, items={"minimum": 1})  # batch size, uniformly
    ablation_models: list[str] = hp(["dcgan"], unique_items=True, items=MODEL_NAME)  # models that get the detach run
    beta_models: list[str] = hp(["vae"], unique_items=True, items=MODEL_NAME,
                                doc="models (with a KL weight `beta`) that also get short runs at each of `betas`")
    betas: list[float] = hp([0.25, 4.0], unique_items=True, items={"minimum": 0, "maximum": 10**3},
                            doc="KL weights of the extra runs (the configured one is the seed runs'): what the "
                                "regularisation does to the VAE's blur")
    beta_steps: int | None = hp(None, minimum=1, maximum=10**8,
                                doc="generator updates of each KL-weight run; null: the main run's whole budget "
                                    "(its train_summary's planned_steps), so that blur is compared between models "
                                    "trained as far as the main runs, whose own blur stands at the configured "
                                    "weight; `steps` where the job has no main run")
    collapse_share: float = hp(0.25, minimum=0, maximum=1,
                               doc="a class is covered when its share is >= this x its share of the reference")
    collapse_classes: float = hp(0.5, minimum=0, maximum=1,
                                 doc="a run has collapsed when it covers fewer than this fraction of the classes")
    grid: int = hp(16, minimum=1, maximum=10**6)  # samples kept per run for a figure

    def __post_init__(self):
        if not self.seeds:
            raise ValueError("dynamics.seeds is empty: list at least one seed")
        if not 0 < self.lr_min <= self.lr_max:
            raise ValueError(f"dynamics: need 0 < lr_min <= lr_max, got {self.lr_min} and {self.lr_max}")


LR_FIELDS = ("lr", "lr_g", "lr_d")  # every one a config has gets the drawn learning rate
BETA_FIELDS = ("beta1", "beta2")
# Configs whose optimisers take no betas although they inherit the fields: WGAN's RMSprop.
NO_BETAS = (WGANConfig,)
LOG_BOOKKEEPING = {"step", "epoch", "wall", "images", "lr"}  # train_log.jsonl keys that are not losses


def drawn_fields(model: str | type) -> list[str]:
    """The config fields a draw sets for `model` (a registered name or a config class): its learning
    rates, and beta1 and beta2 where its optimisers use them. The batch size is drawn for every model."""
    cfg_cls = REGISTRY[model][1] if isinstance(model, str) else model
    names = {f.name for f in dataclasses.fields(cfg_cls)}
    lrs = [f for f in LR_FIELDS if f in names]
    if not lrs:
        raise ValueError(f"{cfg_cls.__name__} has no learning rate ({', '.join(LR_FIELDS)}) to draw: "
                         f"remove it from dynamics.models")
    betas = [] if issubclass(cfg_cls, NO_BETAS) else [f for f in BETA_FIELDS if f in names]
    return lrs + betas


def draw(dyn: DynamicsConfig, seed: int, i: int) -> dict:
    """Draw i of a job with seed `seed`: {"lr", "beta1", "beta2", "batch_size"}.

    The generator is seeded by (seed, i) alone and every value is always drawn, in one order, so that
    every model meets the same draws; each uses the fields it has (`drawn_fields`)."""
    rng = np.random.default_rng([seed, i])
    return {"lr": float(math.exp(rng.uniform(math.log(dyn.lr_min), math.log(dyn.lr_max)))),
            "beta1": float(dyn.beta1_choices[rng.integers(len(dyn.beta1_choices))]),
            "beta2": float(dyn.beta2_choices[rng.integers(len(dyn.beta2_choices))]),
            "batch_size": int(dyn.batch_choices[rng.integers(len(dyn.batch_choices))])}


def plan(spec: dict) -> list[dict]:
    """The job's runs in order, each {"label", "kind", "seed", "batch_size", "changed", "draw"}: "changed"
    holds the hparams that differ from the configured ones, "draw" the whole draw (None unless kind "draw")."""
    dyn = DynamicsConfig(**spec["dynamics"])
    name, hparams = spec["model"], spec["train_spec"]["hparams"]
    batch, first = spec["train_spec"]["train"]["batch_size"], dyn.seeds[0]
    fields = drawn_fields(name)
    runs = [{"label": f"seed{s}", "kind": "seed", "seed": s, "batch_size": batch, "changed": {}, "draw": None}
            for s in dyn.seeds]
    for i in range(dyn.draws):
        d = draw(dyn, spec["seed"], i)
        runs.append({"label": f"draw{i}", "kind": "draw", "seed": first, "batch_size": d["batch_size"],
                     "changed": {f: d["lr"] if f in LR_FIELDS else d[f] for f in fields}, "draw": d})
    if name in dyn.beta_models:
        if "beta" not in {f.name for f in dataclasses.fields(REGISTRY[name][1])}:
            raise ValueError(f"dynamics.beta_models lists {name}, whose config has no KL weight `beta`: "
                             f"remove it there")
        for b in dyn.betas:
            for s in dyn.seeds:
                runs.append({"label": f"beta{b:g}_seed{s}", "kind": "beta", "seed": s, "batch_size": batch,
                             "changed": {"beta": float(b)}, "draw": None})
    if name in dyn.ablation_models:
        has = {f.name for f in dataclasses.fields(REGISTRY[name][1])}
        if not {"detach_fake", "zero_g_grad"} <= has:
            raise ValueError(f"dynamics.ablation_models lists {name}, whose config has no detach_fake or "
                             f"zero_g_grad field: remove it there")
        if not hparams.get("detach_fake", True):
            raise ValueError(f"hparams.{name}.detach_fake is false, but the ablation compares its seed runs "
                             f"(detached) with a run without the detach: set it true or remove {name} "
                             f"from dynamics.ablation_models")
        for s in dyn.seeds:  # each paired with the seed run at its seed
            runs.append({"label": f"detach_seed{s}", "kind": "detach", "seed": s, "batch_size": batch,
                         "changed": {"detach_fake": False}, "draw": None})
        for s in dyn.seeds:
            runs.append({"label": f"leak_seed{s}", "kind": "leak", "seed": s, "batch_size": batch,
                         "changed": {"detach_fake": False, "zero_g_grad": False}, "draw": None})
    return runs


def short_run_steps(name: str, hparams: dict, steps: int) -> int:
    """Training steps of a short run of `steps` generator updates: a critic GAN takes its n_critic critic steps
    per generator update on top (`GenerativeModel.steps_per_generator_update`), so that WGAN's short runs are
    not a fifth of DCGAN's."""
    cls, cfg_cls = REGISTRY[name]
    return steps * cls.steps_per_generator_update(cfg_cls(**hparams))


def run_budget(name: str, hparams: dict, dyn: DynamicsConfig, chosen: dict | None) -> int:
    """Training steps of a KL-weight run: `beta_steps` generator updates where set, else the main run's planned
    steps (`chosen`: its train_summary.json), else a short run's."""
    if dyn.beta_steps is not None:
        return short_run_steps(name, hparams, dyn.beta_steps)
    if chosen and chosen.get("planned_steps"):
        return int(chosen["planned_steps"])
    return short_run_steps(name, hparams, dyn.steps)


def _run_spec(spec: dict, run: dict, dyn: DynamicsConfig, n_train: int, chosen: dict | None = None) -> dict:
    """The run's train spec: the model's, with the run's hparams, seed and batch, and `steps` generator updates
    (`short_run_steps`). Where the
    model's precision or memory format is "auto", the one its main run chose (`chosen`: that run's
    train_summary.json), so that the short runs train as the main runs do; fp32/contiguous without one."""
    ts = copy.deepcopy(spec["train_spec"])
    ts["seed"] = run["seed"]
    ts["hparams"].update(run["changed"])
    train = ts["train"]
    steps = (run_budget(ts["model"], ts["hparams"], dyn, chosen) if run["kind"] == "beta"
             else short_run_steps(ts["model"], ts["hparams"], dyn.steps))
    train.update(
        batch_size=run["batch_size"], max_steps=steps,
        epochs=math.ceil(steps / (n_train // run["batch_size"])),
        sample_epochs=[], sample_grid=dyn.grid, checkpoint_every=100,
        # a fixed setting, so that a short run does not spend its budget on the timing calibration
        precision=(chosen or {}).get("precision", "fp32") if train["precision"] == "auto" else train["precision"],
        memory_format=((chosen or {}).get("memory_format", "contiguous") if train["memory_format"] == "auto"
                       else train["memory_format"]))
    return ts


def _log_stats(path: Path) -> dict:
    """D's outputs in the last log window, the means of g_grad_in_d_step and g_update_cos over all steps (None
    where the model does not log them), the last losses."""
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    last = rows[-1] if rows else {}
    widths = np.diff([0] + [r["step"] for r in rows]) if rows else None

    def mean(k):  # each window is a mean over its steps: weight by their count
        if not rows or k not in last:
            return None
        return float(sum(w * r[k] for w, r in zip(widths, rows) if k in r) / widths.sum())
    return {"d_real": last.get("d_real"), "d_fake": last.get("d_fake"), "g_grad_in_d_step": mean("g_grad_in_d_step"),
            "g_update_cos": mean("g_update_cos"),
            "final_losses": {k: v for k, v in last.items() if k not in LOG_BOOKKEEPING}}


def scoring_settings(cfg: EvalConfig, dyn: DynamicsConfig, classifier: str | Path) -> dict:
    """What a finished run's scores depend on besides its training, part of its run id: a change here
    rescores the run (the trainer then resumes from the finished checkpoint at once)."""
    return {"eval": dataclasses.asdict(cfg), "grid": dyn.grid, "classifier": classifier_digest(classifier),
            "collapse": [dyn.collapse_share, dyn.collapse_classes]}


def _score(model, run: dict, ref: Reference, ref_hist: torch.Tensor, cfg: EvalConfig, dyn: DynamicsConfig,
           precision: str, sharpness_real: float | None = None):
    """The protocol's metrics, the class coverage, blur against the real images' `sharpness_real` and the
    sample cost of one trained run; and its grid."""
    fake, secs = generate(model, dyn.n_samples, cfg.batch_size, cfg.seed + run["seed"], ref.device,
                          precision)                                            # (N, C, H, W) uint8
    embedded = embed(ref.clf, fake)                                             # features, logits
    hist = torch.bincount(embedded[1].argmax(1), minlength=len(ref_hist)).double() / len(fake)   # (K,)
    cov = class_coverage(hist, ref_hist, dyn.collapse_share)
    row = {**ref.score(fake, embedded), **cov,
           "collapsed": cov["classes_covered"] < dyn.collapse_classes * cov["n_classes"],
           "sample_ms_per_image": 1000 * secs / len(fake), "class_histogram": hist.tolist()}
    if sharpness_real:
        row.update(blur(row["sharpness"], sharpness_real))
    return row, fake[:dyn.grid]                                                 # (grid, C, H, W)


def dynamics_run(spec: dict, classifier: str | Path, out: str | Path, threads: int | None = None,
                 reference: str | Path | None = None, main_run: str | Path | None = None) -> dict:
    """Train and score every run of `plan(spec)` in out/runs/<label>; writes out/dynamics.json (the
    runs in plan order) and out/dynamics_grids.pt ({label: uint8 (grid, C, H, W)}, scored runs only).

    spec: dataset, data_root, device, model, seed, train_spec (`config.train_spec` of the model),
    eval (EvalConfig as a dict; its n_samples is replaced by the study's), dynamics (DynamicsConfig).
    reference: the `reference` rule's features file (None: computed here); main_run: the model's main run's
    train_summary.json, whose precision and memory format the short runs take (None: fp32, contiguous)."""
    set_threads(threads)
    out = Path(out)
    dyn = DynamicsConfig(**spec["dynamics"])
    cfg = dataclasses.replace(EvalConfig(**spec["eval"]), n_samples=dyn.n_samples)
    device = pick_device(spec["device"])
    runs = plan(spec)
    chosen = load_json(main_run) if main_run else None  # the main run's precision and memory format
    train = D.load(spec["dataset"], spec["data_root"], "train")
    scoring = scoring_settings(cfg, dyn, classifier)
    ref = ref_hist = s_real = None  # built at the first run that needs scoring, then shared by all
    rows, grids, spent = [], {}, []
    for k, run in enumerate(runs):
        run_dir = out / "runs" / run["label"]
        ts = _run_spec(spec, run, dyn, len(train), chosen)
        rid = run_id({"train": ts, "scoring": scoring})
        done = run_dir / "result.json"
        cached = load_cache(done)
        if cached is not None and cached.get("run_id") == rid:
            row = cached
            log.info("dynamics %s: %s read from %s", spec["model"], run["label"], done)
        else:
            if ref is None:
                clf = load_classifier(classifier, device)
                test = D.load(spec["dataset"], spec["data_root"], "test")
                ref = shared_reference(reference, clf, classifier, cfg, spec, test)
                ref_hist = torch.bincount(ref.predicted, minlength=int(test.labels.max()) + 1).double()
                ref_hist = ref_hist / ref_hist.sum()                            # (K,)
                s_real = sharpness(reference_images(test.images, cfg))
            t0 = time.perf_counter()
            row = _train_and_score(ts, run, run_dir, rid, train, device, ref, ref_hist, cfg, dyn, s_real)
            spent.append(time.perf_counter() - t0)
            what = (f"FD {row['fd']:.3f}, {row['classes_covered']}/{row['n_classes']} classes"
                    if row["status"] == "ok" else row["status"])
            log.info("dynamics %s: %s (%d/%d) %s in %.0fs; at most %.0fs left", spec["model"], run["label"], k + 1,
                     len(runs), what, spent[-1], np.mean(spent) * (len(runs) - k - 1))
        rows.append(row)
        if row["status"] == "ok":
            grid = load_torch(run_dir / "grid.pt", rebuild=rebuild_command(out / "dynamics.json", run_dir))
            grids[run["label"]] = grid
    res = {"model": spec["model"], "seed": spec["seed"], "status": "ok", "n": dyn.n_samples, "steps": dyn.steps,
           "config": dataclasses.asdict(dyn), "runs": rows}
    save_json(res, out / "dynamics.json")
    torch_save(grids, out / "dynamics_grids.pt")
    return res


def _train_and_score(ts, run, run_dir, rid, train, device, ref, ref_hist, cfg, dyn, s_real=None) -> dict:
    """Train one run (resuming from its checkpoint), score it unless it diverged, and write grid.pt and
    then result.json, whose presence marks the run done."""
    seed_everything(run["seed"])
    model = build(ts["model"], ts["hparams"], train.shape)
    tcfg = TrainConfig(**ts["train"])
    st = Trainer(tcfg, run_dir, run["seed"], device, rid=run_id(ts)).fit(
        model, D.Batches(train, tcfg.batch_size, run["seed"], device))
    row = {"label": run["label"], "kind": run["kind"], "seed": run["seed"], "batch_size": tcfg.batch_size,
           "changed": run["changed"], "draw": run["draw"], "status": st["status"], "steps": st["step"],
           "max_steps": tcfg.max_steps,
           "images_seen": st["step"] * tcfg.batch_size, "train_seconds": st["elapsed"],
           "ms_per_step": 1000 * st["elapsed"] / max(1, st["step"]), "train_precision": st["precision"],
           "memory_format": st["memory_format"], "diverged_at": st.get("diverged_at"),
           "divergence": st.get("divergence"), "d_output": model.d_output,
           **_log_stats(run_dir / "train_log.jsonl"), "run_id": rid}
    if st["status"] == "ok":
        scores, grid = _score(model.eval(), run, ref, ref_hist, cfg, dyn, st["precision"], s_real)
        row.update(scores)
        torch_save(grid, run_dir / "grid.pt")
    save_json(row, run_dir / "result.json")
    return row
