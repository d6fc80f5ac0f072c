"""Probes of three claims about GANs, measured on one trained run beside the VAE.

- Interpolation smoothness: the perceptual path length (PPL) of Karras et al. (2019, section 4.1),
  E ||f(g(slerp(z1, z2, t))) - f(g(slerp(z1, z2, t + eps)))||^2 / eps^2 over z1, z2 ~ N(0, I) and
  t ~ U(0, 1), the mean taken after dropping the distances outside the 1st-99th percentile as they
  do. The perceptual space f is the domain classifier's penultimate layer (the evaluation protocol's
  feature space), where they use VGG16 features (LPIPS). The path is a slerp in z for every model;
  StyleGAN's own PPL lerps in W, which this one does not.
- No reconstruction: a GAN has no encoder, so an image is recovered by GAN inversion, optimising z
  with Adam so that G(z) matches it in pixel MSE (Zhu et al. 2016; Creswell and Bharath 2019). The
  VAE's encoder reconstructs in one pass (Kingma and Welling 2014).
- Weak representations: a linear probe (Alain and Bengio 2017), a logistic regression fitted on
  frozen features to predict the class: the discriminator's penultimate layer for GANs (Radford et
  al. 2016, section 5.1, classify with DCGAN's discriminator features), the VAE's encoder mean, and
  raw pixels as the baseline every representation should beat.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from .. import data as D
from ..hparams import hp
from ..evaluation.classifier import DomainClassifier, load_classifier
from ..models import load_trained
from ..utils import Stopwatch, device_name, load_json, log, pick_device, save_json, set_threads, torch_save


@dataclass
class ProbeConfig:
    n_pairs: int = hp(500, minimum=2, maximum=10**6)  # latent pairs (z1, z2, t) averaged by the path length
    ppl_eps: float = hp(1e-2, exclusive_minimum=0)  # step along the path; Karras et al. use 1e-4 with VGG16 features
    invert_images: int = hp(64, minimum=1, maximum=10**6)  # test images reconstructed (GAN inversion, VAE encoder)
    invert_steps: int = hp(200, minimum=1, maximum=10**8)  # Adam steps on z per inversion
    invert_lr: float = hp(0.05, exclusive_minimum=0)  # Adam's learning rate on z
    probe_train: int = hp(5000, minimum=10, maximum=10**6)  # train images the linear probe is fitted on
    probe_test: int = hp(2000, minimum=10, maximum=10**6)  # test images it is scored on
    grid_rows: int = hp(8, minimum=1, maximum=10**3)  # targets and reconstructions kept for the figure
    seed: int = hp(1234, minimum=0, maximum=2**32 - 1)  # image subsets, latent pairs and inversion starts


# ------------------------------------------------------------------------------ the generators

def _latent_generator(model):
    """(z_dim, g) with g(z, y) -> images in [0, 1], (B, C, H, W), the model's own sampler (no
    gradients) on z (B, z_dim): the decoder of an encoder-decoder, the generator of a GAN (StyleGAN's
    at truncation cfg.truncation, with fixed noise); y (B,), class labels, is read by a conditional
    model only. None for a model without a map from Gaussian noise to images (`model.latent_sampling`)."""
    if model.latent_sampling == "encoder":
        return model.latent_dim, lambda z, y: model.decode(z)
    if model.latent_sampling == "generator":
        return model.latent_dim, (model.generate if model.conditional else lambda z, y: model.generate(z))
    return None


def _differentiable_generator(model):
    """g(z, y) -> images in [0, 1] exactly as the GAN's `generate` computes them, but differentiable in
    z (`generate` runs under torch.no_grad()), the model's `differentiable_generate`; the sampling
    network is put in eval mode."""
    if model.latent_sampling != "generator":
        raise TypeError(f"{type(model).__name__} is not a GAN: inversion is for the GANs' generators")
    model.sampling_network().eval()
    if model.conditional:
        return model.differentiable_generate
    return lambda z, y: model.differentiable_generate(z)


def slerp(a, b, t):  # (B, D), (B, D), (B,) -> (B, D)
    """Spherical interpolation between Gaussian noise vectors (White 2016), one t per row: the
    formula of the interpolation figures (`evaluate._slerp_grid`). Karras et al. slerp on the unit
    sphere instead, which their mapping network's normalisation of z makes equivalent."""
    an, bn = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    omega = torch.acos((an * bn).sum(1).clamp(-1 + 1e-7, 1 - 1e-7))[:, None]   # (B, 1)
    so, t = torch.sin(omega), t[:, None]
    return (torch.sin((1 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b


# ------------------------------------------------------------------------------ the probes

@torch.no_grad()
def path_length(model, clf: DomainClassifier, n_pairs: int, eps: float, generator: torch.Generator,
                batch: int = 250) -> dict:
    """Perceptual path length (Karras et al. 2019) in the classifier's feature space, {} for a model
    without a latent generator (see the module docstring). Pairs z1, z2 ~ N(0, I), t ~ U(0, 1) and,
    for the conditional GAN, one class per pair (the same at both ends) are drawn from `generator`,
    which must live on the model's device. Puts the model in eval mode.

    Returns "ppl" (the trimmed mean), "ppl_median", "ppl_pairs", "ppl_eps", "ppl_space"."""
    gen = _latent_generator(model.eval())
    if gen is None:
        return {}
    z_dim, g = gen
    device = generator.device
    num_classes = model.num_classes or 1  # an unconditional model's labels are drawn (and ignored) all the same
    dist = []
    for i in range(0, n_pairs, batch):
        b = min(batch, n_pairs - i)
        z1, z2 = (torch.randn(b, z_dim, generator=generator, device=device) for _ in range(2))
        t = torch.rand(b, generator=generator, device=device)
        y = torch.randint(0, num_classes, (b,), generator=generator, device=device)
        z = torch.cat([slerp(z1, z2, t), slerp(z1, z2, t + eps)])                  # (2b, z_dim)
        f = clf.features(g(z, y.repeat(2)).float())                                # (2b, F)
        dist.append(((f[:b] - f[b:]).pow(2).sum(1) / eps ** 2).double().cpu())     # (b,)
    d = torch.cat(dist).numpy()
    lo, hi = np.percentile(d, 1, method="lower"), np.percentile(d, 99, method="higher")
    return {"ppl": float(d[(d >= lo) & (d <= hi)].mean()), "ppl_median": float(np.median(d)),
            "ppl_pairs": len(d), "ppl_eps": eps, "ppl_space": "z (slerp)"}


def invert(model, images: torch.Tensor, steps: int, lr: float, generator: torch.Generator,
           labels: torch.Tensor | None = None):
    """GAN inversion (Zhu et al. 2016): z, started at N(0, I) from `generator`, is optimised by Adam
    (`steps` steps of rate `lr`) to minimise the pixel MSE between G(z) and images in [0, 1],
    (B, C, H, W), all in one batch with G's weights untouched. `labels` (B,), the images' classes,
    condition the conditional GAN's generator. Puts the model in eval mode.

    Returns the MSE per image at the final z, (B,), and the reconstructions G(z) in [0, 1]."""
    g = _differentiable_generator(model.eval())
    z = torch.randn(len(images), model.latent_dim, generator=generator, device=images.device).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    for _ in range(steps):
        loss = (g(z, labels) - images).pow(2).flatten(1).mean(1).sum()  # each z sees its own image's MSE
        opt.zero_grad(set_to_none=True)
        loss.backward(inputs=[z])
        opt.step()
    with torch.no_grad():
        rec = g(z, labels)                                                      # (B, C, H, W)
    return (rec - images).pow(2).flatten(1).mean(1), rec


def linear_probe(train_feats, train_y, test_feats, test_y) -> float:
    """Test accuracy of a multinomial logistic regression (L2, C = 1, L-BFGS) fitted on standardised
    frozen features: train_feats (N, F) with classes train_y (N,), scored on test_feats (M, F), test_y
    (M,). In float32, about twice as fast as float64 for the same accuracy; BLAS gets torch's thread
    count, since its default of one thread per core thrashes on a machine shared with other jobs."""
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=0))
    with threadpool_limits(torch.get_num_threads()):
        probe.fit(np.asarray(train_feats, dtype=np.float32), np.asarray(train_y))
        return float(probe.score(np.asarray(test_feats, dtype=np.float32), np.asarray(test_y)))


def feature_extractor(model):
    """The representation a model offers the linear probe (`model.probe_features`): (name, fn) with
    fn(x) -> (B, F) for images x in [0, 1], (B, C, H, W), or None. GANs: "discriminator", the input of
    D's last linear layer (for the projection discriminator, its phi(x), which does not see the class).
    StyleGAN's minibatch standard deviation mixes each image with the others of its group, as in
    training. The VAE: "encoder", the mean of q(z|x)."""
    if model.probe_features is None:
        return None
    return model.probe_features, model.features


@torch.no_grad()
def _features(fn, images: torch.Tensor, device, batch: int = 500) -> torch.Tensor:
    """fn on uint8 images (N, C, H, W), in batches; (N, F) float on the CPU."""
    return torch.cat([fn(D.to_unit(images[i:i + batch]).to(device)).float().flatten(1).cpu()
                      for i in range(0, len(images), batch)])


def _reconstruct(model, x, labels, cfg: ProbeConfig, generator):
    """(kind, MSE per image (B,), reconstructions in [0, 1]) of images x, (B, C, H, W), with classes
    labels (B,): the VAE's encoder and decoder, or a GAN's inversion; None for any other model."""
    if model.latent_sampling == "encoder":
        rec = model.reconstruct(x)
        return "encoder", (rec - x).pow(2).flatten(1).mean(1), rec
    if _latent_generator(model) is None:
        return None
    return "inversion", *invert(model, x, cfg.invert_steps, cfg.invert_lr, generator, labels)


def _subset(n_total: int, n: int, seed: int) -> torch.Tensor:
    return torch.randperm(n_total, generator=torch.Generator().manual_seed(seed))[:n]


# ------------------------------------------------------------------------------ one run

def probe_run(spec: dict, run_dir: str | Path, classifier: str | Path, out: str | Path,
              threads: int | None = None) -> dict:
    """Probe the run in `run_dir`; writes probes.json and probes.pt (the reconstruction grid) into `out`.

    spec: "dataset", "data_root", "device", "model", "seed" and "probe" (a ProbeConfig as a dict). The
    image subsets depend on probe.seed only, so every model and seed is probed on the same images."""
    set_threads(threads)
    run_dir, out = Path(run_dir), Path(out)
    cfg = ProbeConfig(**spec["probe"])
    device = pick_device(spec["device"])
    summary = load_json(run_dir / "train_summary.json")
    res = {"model": spec["model"], "seed": spec["seed"], "status": summary["status"]}
    if summary["status"] != "ok":
        log.warning("%s seed %s %s; recording that instead of probing it", spec["model"], spec["seed"],
                    summary["status"])
        save_json(res, out / "probes.json")
        torch_save({}, out / "probes.pt")
        return res
    model = load_trained(run_dir / "model.pt", device)
    clf = load_classifier(classifier, device)
    train, test = (D.load(spec["dataset"], spec["data_root"], s) for s in ("train", "test"))
    res.update(device=device_name(device), probe_config=asdict(cfg))
    saved = {}
    with Stopwatch(device) as total:
        with Stopwatch(device) as sw:
            g = torch.Generator(device=device).manual_seed(cfg.seed + spec["seed"])
            res.update(path_length(model, clf, cfg.n_pairs, cfg.ppl_eps, g))
        if "ppl" in res:
            res["ppl_seconds"] = sw.seconds
            log.info("path length %.4g (median %.4g) over %d pairs in %.1fs", res["ppl"], res["ppl_median"],
                     res["ppl_pairs"], sw.seconds)

        idx = _subset(len(test), cfg.invert_images, cfg.seed)
        x = D.to_unit(test.images[idx]).to(device)                                 # (N, C, H, W)
        with Stopwatch(device) as sw:
            g = torch.Generator(device=device).manual_seed(cfg.seed + spec["seed"] + 1)
            recon = _reconstruct(model, x, test.labels[idx].to(device), cfg, g)
        if recon is not None:
            kind, mse, rec = recon
            res.update(recon_mse=float(mse.mean()), recon_mse_se=float(mse.std() / len(mse) ** 0.5),
                       recon_kind=kind, recon_images=len(mse), recon_seconds=sw.seconds)
            rows = min(cfg.grid_rows, len(x))
            saved["recon"] = torch.stack([D.to_uint8(x[:rows]), D.to_uint8(rec[:rows])], 1)  # (rows, 2, C, H, W)
            log.info("reconstruction (%s) MSE %.4f on %d test images in %.1fs", kind, res["recon_mse"],
                     len(mse), sw.seconds)

        tr, te = _subset(len(train), cfg.probe_train, cfg.seed + 1), _subset(len(test), cfg.probe_test, cfg.seed + 2)
        ytr, yte = train.labels[tr].numpy(), test.labels[te].numpy()
        with Stopwatch(device) as sw:
            res["probe_acc_pixels"] = linear_probe(D.to_unit(train.images[tr]).flatten(1), ytr,
                                                   D.to_unit(test.images[te]).flatten(1), yte)
            extractor = feature_extractor(model)
            if extractor is not None:
                name, fn = extractor
                ftr, fte = _features(fn, train.images[tr], device), _features(fn, test.images[te], device)
                res.update(probe_feature=name, probe_dim=ftr.shape[1], probe_acc=linear_probe(ftr, ytr, fte, yte))
        res.update(probe_train_images=len(tr), probe_test_images=len(te), linear_probe_seconds=sw.seconds)
        log.info("linear probe: %s %.4f, pixels %.4f (%d train, %d test images) in %.1fs",
                 res.get("probe_feature"), res.get("probe_acc", float("nan")), res["probe_acc_pixels"],
                 len(tr), len(te), sw.seconds)
    res["probe_seconds"] = total.seconds
    save_json(res, out / "probes.json")
    torch_save(saved, out / "probes.pt")
    return res
