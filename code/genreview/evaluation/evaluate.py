"""Evaluate one trained run under the shared protocol, plus the real-data reference points.

`evaluate_run` draws N samples (timing them), scores them with `metrics.Reference`, and
saves what the figures need: a sample grid, interpolations for latent-variable models,
reconstructions for models with an encoder, and a denoising chain for diffusion models.
`reference` scores the floor (real train images against the test split) and the ceiling
(uniform noise), and saves the reference's classifier features, which every scoring job of a build
loads (`shared_reference`) instead of running the classifier over the test split again.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from .. import data as D
from .classifier import classifier_digest, load_classifier, predict
from ..models.likelihood import bits_per_dim
from .metrics import EvalConfig, Reference, embed, sharpness, uniform_noise
from ..models import load_trained
from .translation import evaluate_translation
from ..utils import (Stopwatch, autocast, device_name, load_json, log, pick_device, save_json,
                    seed_everything, set_deterministic, set_threads, torch_save)


@torch.no_grad()
def generate(model, n: int, batch: int, seed: int, device, precision: str, labels: torch.Tensor | None = None,
             **sample_options):
    """n uint8 samples, drawn in batches; returns (images, seconds).

    `labels` (n,) are passed batch by batch to a conditional model; `sample_options` (sampler, steps,
    guidance) go to every `model.sample` call."""
    g = torch.Generator(device=device).manual_seed(seed)
    warm = {"labels": labels[:min(4, n)].to(device)} if labels is not None else {}
    with autocast(device, precision):  # warm-up
        model.sample(min(4, n), generator=torch.Generator(device=device).manual_seed(0), **warm, **sample_options)
    out = []
    with Stopwatch(device) as sw:
        with autocast(device, precision):
            for i in range(0, n, batch):
                b = min(batch, n - i)
                cond = {"labels": labels[i:i + b].to(device)} if labels is not None else {}
                out.append(D.to_uint8(model.sample(b, generator=g, **cond, **sample_options)))
    return torch.cat(out), sw.seconds


def _lerp_grid(a, b, steps):  # (R, ...) x2 -> (R * steps, ...)
    w = torch.linspace(0, 1, steps, device=a.device).view(1, steps, *([1] * (a.dim() - 1)))
    return (a[:, None] * (1 - w) + b[:, None] * w).flatten(0, 1)


def _slerp_grid(a, b, steps):
    """Spherical interpolation, the usual path between Gaussian noise vectors (White 2016)."""
    w = torch.linspace(0, 1, steps, device=a.device).view(1, steps, 1)
    an, bn = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    omega = torch.acos((an * bn).sum(1).clamp(-1 + 1e-7, 1 - 1e-7)).view(-1, 1, 1)
    so = torch.sin(omega)
    return ((torch.sin((1 - w) * omega) / so) * a[:, None] + (torch.sin(w * omega) / so) * b[:, None]).flatten(0, 1)


TRUNCATION_PSIS = (0.0, 0.25, 0.5, 0.75, 1.0)  # StyleGAN's truncation figure and FD-recall trade-off
CHAIN_STEPS = 100  # the denoising-chain figure's ancestral sampler: at most this many steps (respaced)


@torch.no_grad()
def extras(model, test: D.Split, cfg: EvalConfig, device) -> dict:
    """Family-specific material for the figures, chosen by what the model declares it can do."""
    out = {}
    g = torch.Generator(device=device).manual_seed(cfg.seed)
    rows, steps = 6, cfg.interp_steps
    if model.latent_sampling == "encoder":  # encoder-decoder: reconstructions and latent interpolation
        x = D.to_unit(test.images[:2000]).to(device)
        rec = torch.cat([model.reconstruct(b) for b in x.split(500)])
        out["recon_mse"] = float((rec - x).pow(2).mean())
        out["recon_bce"] = float(torch.nn.functional.binary_cross_entropy(rec.clamp(1e-6, 1 - 1e-6), x,
                                                                          reduction="none").flatten(1).sum(1).mean())
        out["neg_elbo_nats"] = float(-torch.cat([model.elbo(b) for b in x.split(500)]).mean())
        first = [int((test.labels == c).nonzero()[0]) for c in range(int(test.labels.max()) + 1)]
        out["recon"] = torch.stack([test.images[first], D.to_uint8(model.reconstruct(x[first]))])  # (2, K, C, H, W)
        a = model.encode(x[:rows])[0]
        b = model.encode(x[rows:2 * rows])[0]
        out["interp"] = D.to_uint8(model.decode(_lerp_grid(a, b, steps))).view(rows, steps, *model.shape)
    elif model.latent_sampling == "generator":  # noise-to-image generator: interpolation between noise vectors
        z = torch.randn(2 * rows, model.latent_dim, generator=g, device=device)
        # a class-conditional generator keeps one class along each row
        cond = {"labels": torch.arange(rows, device=device).repeat_interleave(steps)} if model.conditional else {}
        out["interp"] = D.to_uint8(model.generate(_slerp_grid(z[:rows], z[rows:], steps), **cond)).view(
            rows, steps, *model.shape)
    if model.style_mixing:  # StyleGAN: the style-mixing table and the truncation trick
        z = torch.randn(2 * rows, model.latent_dim, generator=g, device=device)
        crossover = model.num_layers // 2
        out["style_mix"] = D.to_uint8(model.style_mix(z[:rows // 2], z[rows // 2:rows], crossover))
        out["style_mix_crossover"] = float(crossover)
        out["truncation_grid"] = D.to_uint8(model.truncation_sweep(z[rows:], TRUNCATION_PSIS))
    if "ddpm" in model.samplers:  # diffusion: the ancestral denoising chain
        steps = min(model.cfg.timesteps, CHAIN_STEPS)
        ts = model.make_scheduler("ddpm", steps).timesteps.tolist()             # descending
        want = [ts[0], *(int(ts[0] * f) for f in (0.8, 0.6, 0.4, 0.3, 0.2, 0.1, 0.05)), 0]
        at = sorted({min(ts, key=lambda t: abs(t - w)) for w in want}, reverse=True)
        _, chain = model.sample(8, generator=g, sampler="ddpm", steps=steps, chain_at=at)
        out["chain_t"] = at
        out["chain_steps"] = float(steps)
        out["chain_x"] = torch.stack([D.to_uint8(chain[t][0]) for t in at], 1)   # (8, len(at), C, H, W)
        out["chain_x0"] = torch.stack([D.to_uint8(chain[t][1]) for t in at], 1)
    return out


def evaluate_run(spec: dict, run_dir: str | Path, classifier: str | Path, out: str | Path,
                 threads: int | None = None, reference: str | Path | None = None) -> dict:
    """Score the run in `run_dir`; writes metrics.json, samples.pt (a grid of 64, and all N samples under
    "samples") and features.pt (the samples' classifier
    features and logits, for bootstrap intervals) into `out`. `reference`: the `reference` rule's features
    file (None: the reference is computed here)."""
    set_threads(threads)
    set_deterministic(spec.get("deterministic", False))
    run_dir, out = Path(run_dir), Path(out)
    cfg = EvalConfig(**spec["eval"])
    device = pick_device(spec["device"])
    summary = load_json(run_dir / "train_summary.json")
    metrics = {"model": spec["model"], "seed": spec["seed"], "status": summary["status"],
               "train": summary, "device": device_name(device)}
    if summary["status"] != "ok":
        log.warning("%s seed %s %s; recording that instead of scoring samples", spec["model"], spec["seed"],
                    summary["status"])
        save_json(metrics, out / "metrics.json")
        torch_save({}, out / "samples.pt")
        torch_save({}, out / "features.pt")
        return metrics
    seed_everything(cfg.seed + spec["seed"])
    model = load_trained(run_dir / "model.pt", device)
    clf = load_classifier(classifier, device)
    test = D.load(spec["dataset"], spec["data_root"], "test")
    if model.translator:  # image-to-image: scored on the test images it translates
        return _evaluate_translator(model, test, clf, cfg, device, metrics, out)
    precision = summary["precision"]  # what measured fastest for this model in training
    n_samples = cfg.n_samples_by_model.get(spec["model"], cfg.n_samples)
    fake, secs = generate(model, n_samples, cfg.batch_size, cfg.seed + spec["seed"], device, precision)
    log.info("sampled %d images in %.1fs (%.2f ms/image)", len(fake), secs, 1000 * secs / len(fake))
    if not torch.isfinite(fake.float()).all():
        raise RuntimeError("samples contain NaN")
    ref = shared_reference(reference, clf, classifier, cfg, spec, test)
    embedded = embed(clf, fake)
    metrics.update(ref.score(fake, embedded, replicates=cfg.bootstrap))
    predicted = embedded[1].argmax(1)
    hist = torch.bincount(predicted, minlength=int(test.labels.max()) + 1).float()
    metrics.update(
        sample_ms_per_image=1000 * secs / len(fake), sample_batch=cfg.batch_size, nfe=model.nfe,
        sample_precision=precision, class_histogram=(hist / hist.sum()).tolist(),
        latency_ms=latency_ms(model, device, precision, cfg.seed + spec["seed"]), latency_batch=1,
        **blur(metrics["sharpness"], sharpness(reference_images(test.images, cfg))),
    )
    if model.conditional:  # the classes `generate` asked for, batch by batch (the models' default labels)
        asked = torch.cat([torch.arange(min(cfg.batch_size, n_samples - i)) % model.num_classes
                           for i in range(0, n_samples, cfg.batch_size)])
        metrics["cond_accuracy"] = float((predicted.cpu() == asked).float().mean())
    if model.style_mixing:
        metrics["truncation"] = truncation_study(model, ref, cfg, spec["seed"], device, precision)
    if model.any_resolution:
        metrics["resolution"] = resolution_study(model, device, precision, cfg.seed + spec["seed"])
    if model.likelihood != "none" and cfg.nll_images:
        metrics.update(score_likelihood(model, test, cfg, device))
    ex = extras(model, test, cfg, device)
    metrics.update({k: v for k, v in ex.items() if isinstance(v, float)})
    save_json(metrics, out / "metrics.json")
    # "samples": all N images, which the judges (evaluation/judges.py) score in their own feature spaces
    torch_save({"grid": fake[:64], "samples": fake, **{k: v for k, v in ex.items() if not isinstance(v, float)}},
               out / "samples.pt")
    torch_save({"features": embedded[0], "logits": embedded[1], "classifier_digest": classifier_digest(classifier)},
               out / "features.pt")
    return metrics


LATENCY_REPEATS = 5  # single-image draws timed after a warm-up; their median is the latency


def latency_ms(model, device, precision: str, seed: int) -> float:
    """Milliseconds to draw one image at batch size 1 (the median of LATENCY_REPEATS draws after one
    warm-up): what an interactive use waits for, unlike the per-image cost of a large batch."""
    g = torch.Generator(device=device).manual_seed(seed)
    label = {"labels": torch.zeros(1, dtype=torch.long, device=device)} if model.conditional else {}
    times = []
    with torch.no_grad(), autocast(device, precision):
        for _ in range(LATENCY_REPEATS + 1):
            with Stopwatch(device) as sw:
                model.sample(1, generator=g, **label)
            times.append(sw.seconds)
    return 1000 * float(sorted(times[1:])[LATENCY_REPEATS // 2])


RESOLUTION_DIVISORS = (4, 2, 1)  # the resolution study samples at H/4 x W/4, H/2 x W/2 and H x W
RESOLUTION_REPEATS = 3           # timed repeats (after one warm-up); each gives its own slopes
RESOLUTION_BATCH = 4             # images per timed draw
RESOLUTION_TIMINGS = (3, 9)      # a repeat's time at one size: the median of 3 draws, of 9 parallel passes


def resolution_study(model, device, precision: str, seed: int) -> dict:
    """How a model's sampling cost grows with the image size, for a model that samples at any size with the
    same weights (`any_resolution`: the PixelCNN). At H/4, H/2 and H (RESOLUTION_DIVISORS), ms per image of
    drawing RESOLUTION_BATCH images and of one parallel pass of the same network over as many images of that
    size (what a one-shot decoder of this network would pay), each the median of RESOLUTION_TIMINGS timings,
    RESOLUTION_REPEATS times after a warm-up. Each
    repeat gives the slope of log time against log pixel count for both ("sample_slope", "pass_slope": 1 is
    cost in proportion to the pixels). The network steps of one sample are the pixel count times the channels
    ("sequential_steps")."""
    C, H, W = model.shape
    sizes = [(C, max(2, H // d), max(2, W // d)) for d in RESOLUTION_DIVISORS]
    net = model.sampling_network()
    g = torch.Generator(device=device).manual_seed(seed)
    sample_ms, pass_ms = [], []
    with torch.no_grad(), autocast(device, precision):
        for rep in range(RESOLUTION_REPEATS + 1):
            row_s, row_p = [], []
            for shape in sizes:
                with model.at_shape(shape):
                    draws = []
                    for _ in range(RESOLUTION_TIMINGS[0]):
                        with Stopwatch(device) as sw:
                            model.sample(RESOLUTION_BATCH, generator=g)
                        draws.append(sw.seconds)
                    x = torch.rand(RESOLUTION_BATCH, *shape, generator=g, device=device) * 2 - 1
                    passes = []
                    for _ in range(RESOLUTION_TIMINGS[1]):
                        with Stopwatch(device) as sp:
                            net(x)
                        passes.append(sp.seconds)
                row_s.append(1000 * float(np.median(draws)) / RESOLUTION_BATCH)
                row_p.append(1000 * float(np.median(passes)) / RESOLUTION_BATCH)
            if rep:  # the first round warms up
                sample_ms.append(row_s)
                pass_ms.append(row_p)
    pixels = [h * w for _, h, w in sizes]

    def slope(ms):
        return float(np.polyfit(np.log(pixels), np.log(ms), 1)[0])
    return {"pixels": pixels, "sizes": [list(s) for s in sizes], "batch": RESOLUTION_BATCH,
            "sample_ms": sample_ms, "pass_ms": pass_ms, "sample_slope": [slope(r) for r in sample_ms],
            "pass_slope": [slope(r) for r in pass_ms], "sequential_steps": [C * p for p in pixels]}


def blur(s: float, s_real: float) -> dict:
    """Blur as a deficit of fine detail against real images: log(s_real / s) of the Laplacian variances
    (`metrics.sharpness`) when the samples have less of it than the reference images, else 0. Noise raises
    the Laplacian's variance, so a noisy model is not "sharp"; it is not blurry either, which is all this
    measures."""
    return {"sharpness_real": s_real, "blur": max(0.0, float(np.log(s_real / s))) if s > 0 else None}


def truncation_study(model, ref: Reference, cfg: EvalConfig, seed: int, device, precision: str) -> list[dict]:
    """FD, precision and recall of StyleGAN's samples at each truncation psi (Karras et al. 2019; Brock
    et al. 2019 trade fidelity for variety the same way): N/4 samples per psi, the same z for each."""
    n = max(20, cfg.n_samples // 4)
    rows = []
    for psi in TRUNCATION_PSIS:
        fake, secs = generate(model, n, cfg.batch_size, cfg.seed + seed + 7, device, precision, truncation=psi)
        sc = ref.score(fake)
        rows.append({"psi": psi, "n": n, **{k: sc[k] for k in ("fd", "precision", "recall", "density", "coverage")}})
        log.info("truncation psi %.2f: FD %.3f, precision %.3f, recall %.3f", psi, sc["fd"], sc["precision"],
                 sc["recall"])
    return rows


def _evaluate_translator(model, test: D.Split, clf, cfg: EvalConfig, device, metrics: dict, out: Path) -> dict:
    """CycleGAN and super-resolution: `translation_eval` on the test split; its numbers go under
    metrics["translation"], so that no unconditional ranking reads them."""
    def reference_fn(real):
        real = reference_images(real, cfg)
        n = len(real)
        sized = dataclasses.replace(cfg, n_samples=n, kid_subset_size=min(cfg.kid_subset_size, n))
        return Reference.from_images(clf, real, sized)

    res = evaluate_translation(model, test, clf, reference_fn, device, n=cfg.translation_images)
    metrics["translation"] = {k: v for k, v in res.items() if not k.startswith("grid_")}
    save_json(metrics, out / "metrics.json")
    torch_save({k: v for k, v in res.items() if k.startswith("grid_")}, out / "samples.pt")
    torch_save({}, out / "features.pt")  # translations are scored per domain, not as one sample set
    return metrics


@torch.no_grad()
def score_likelihood(model, test: D.Split, cfg: EvalConfig, device) -> dict:
    """Bits per dimension on a fixed random subset of the test split (see `genreview.models.likelihood`), in fp32."""
    g = torch.Generator().manual_seed(cfg.seed + 2)
    idx = torch.randperm(len(test), generator=g)[:cfg.nll_images]
    x = D.to_unit(test.images[idx])
    gen = torch.Generator(device=device).manual_seed(cfg.seed + 3)
    opts = {"iw_samples": cfg.iw_samples, "vlb_timesteps": cfg.vlb_timesteps}
    dims = x[0].numel()
    with Stopwatch(device) as sw:
        lp = torch.cat([model.log_prob(b.to(device), generator=gen, **opts).float().cpu()
                        for b in x.split(cfg.nll_batch)])
    bpd = bits_per_dim(lp.double(), dims)
    if not torch.isfinite(bpd).all():
        raise RuntimeError(f"bits/dim is not finite for {int((~torch.isfinite(bpd)).sum())} test images")
    log.info("bits/dim %.4f on %d test images (%s) in %.1fs", bpd.mean(), len(x), model.likelihood, sw.seconds)
    return {"bpd": float(bpd.mean()), "bpd_se": float(bpd.std() / len(bpd) ** 0.5), "bpd_images": len(x),
            "bpd_kind": model.likelihood, "bpd_note": model.likelihood_note, "bpd_seconds": sw.seconds,
            "bpd_ms_per_image": 1000 * sw.seconds / len(x)}


def reference_images(images: torch.Tensor, cfg: EvalConfig) -> torch.Tensor:
    """The real side of the protocol: `images` (the test split's, or one class's), or a fixed subset of
    eval.n_reference of them."""
    if not cfg.n_reference or cfg.n_reference >= len(images):
        return images
    g = torch.Generator().manual_seed(cfg.seed + 1)
    return images[torch.randperm(len(images), generator=g)[:cfg.n_reference]]


def reference_selection(spec: dict, cfg: EvalConfig) -> dict:
    """What decides which test images form the reference (`reference_images`)."""
    return {"dataset": spec["dataset"], "n_reference": cfg.n_reference, "seed": cfg.seed}


def shared_reference(path: str | Path | None, clf, classifier: str | Path, cfg: EvalConfig, spec: dict,
                     test: D.Split) -> Reference:
    """The reference of a scoring job: the features the `reference` rule saved at `path` (one classifier
    pass over the test split for the whole build), or, with no path, computed here."""
    if path is None:
        return Reference.from_images(clf, reference_images(test.images, cfg), cfg)
    return Reference.load(path, clf, cfg, classifier_digest(classifier), reference_selection(spec, cfg),
                          real_images=lambda: reference_images(test.images, cfg))


def reference(spec: dict, classifier: str | Path, out: str | Path, threads: int | None = None,
              features: str | Path | None = None) -> dict:
    """Floor (N real train images vs the test split) and ceiling (N uniform-noise images); with `features`,
    the reference's classifier features saved there for every scoring job of the build."""
    set_threads(threads)
    cfg = EvalConfig(**spec["eval"])
    device = pick_device(spec["device"])
    clf = load_classifier(classifier, device)
    train, test = (D.load(spec["dataset"], spec["data_root"], s) for s in ("train", "test"))
    ref = Reference.from_images(clf, reference_images(test.images, cfg), cfg)
    if features:
        ref.write(features, classifier_digest(classifier), reference_selection(spec, cfg))
    g = torch.Generator().manual_seed(cfg.seed)
    n = min(cfg.n_samples, len(train))
    real = train.images[torch.randperm(len(train), generator=g)[:n]]
    res = {"floor": ref.score(real), "ceiling": ref.score(uniform_noise(n, train.shape, cfg.seed)),
           "n_samples": n, "n_reference": ref.n, "device": device_name(device)}
    res["floor"]["class_histogram"] = (torch.bincount(predict(clf, real), minlength=10).float() / n).tolist()
    log.info("floor FD %.3f, ceiling FD %.1f", res["floor"]["fd"], res["ceiling"]["fd"])
    save_json(res, Path(out))
    return res
