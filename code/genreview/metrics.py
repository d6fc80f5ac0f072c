"""The evaluation protocol shared by every family, computed in the domain classifier's space.

- Frechet distance (Heusel et al. 2017) and KID (Binkowski et al. 2018): torchmetrics'
  FrechetInceptionDistance and KernelInceptionDistance with the classifier's penultimate
  layer as `feature`.
- Inception Score (Salimans et al. 2016): torchmetrics' InceptionScore on its logits.
- Precision and recall (Kynkaanniemi et al. 2019, k = 3) and density and coverage
  (Naeem et al. 2020, k = 5): the authors' reference implementation, `prdc`.
- Standard Inception FID as well, when local Inception weights are configured.

All metrics take uint8 images, (N, C, H, W), as an 8-bit image file would hold them.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from .classifier import DomainClassifier, Features, Logits


@dataclass
class EvalConfig:
    n_samples: int = 5000        # N generated images per model (and real images for the floor)
    n_reference: int = 0         # test images in the reference; 0 = the whole test split
    batch_size: int = 256        # sampling batch; the ms/image figure is measured at this batch
    kid_subset_size: int = 1000
    kid_subsets: int = 50
    is_splits: int = 10
    pr_k: int = 3                # k of precision/recall (Kynkaanniemi et al. 2019)
    dc_k: int = 5                # k of density/coverage (Naeem et al. 2020)
    inception_weights: str | None = None  # path to FID Inception weights (pt_inception-2015-12-05)
    interp_steps: int = 10
    seed: int = 1234
    # per-model sample counts for models whose sampling is slow (PixelCNN); FD is reported with its N
    n_samples_by_model: dict = field(default_factory=dict)
    # the likelihood protocol (genreview.likelihood): bits/dim on a fixed subset of the test split
    nll_images: int = 1000       # 0 skips bits/dim
    nll_batch: int = 250
    iw_samples: int = 64         # k of the VAE's importance-weighted bound (Burda et al. 2016)
    vlb_timesteps: int = 0       # DDPM bound: KL terms estimated from this many timesteps; 0 = all
    translation_images: int = 1000  # test images per domain that CycleGAN and super-resolution translate


class InceptionWeightsMissing(FileNotFoundError):
    pass


def check_inception_weights(path: str | None) -> None:
    if path and not Path(path).is_file():
        raise InceptionWeightsMissing(
            f"eval.inception_weights is set to {path}, but no such file exists. Download the FID "
            f"Inception weights (pt_inception-2015-12-05-6726825d.pth, as torch-fidelity names them) "
            f"to that path, or set eval.inception_weights: null to report only the classifier-based metrics.")


def _batched(x: torch.Tensor, batch: int = 500):
    for i in range(0, len(x), batch):
        yield x[i:i + batch]


@torch.no_grad()
def features(clf: DomainClassifier, images: torch.Tensor) -> torch.Tensor:
    f = Features(clf)
    device = next(clf.parameters()).device
    return torch.cat([f(b.to(device)).cpu() for b in _batched(images)])


class Reference:
    """The real side of every comparison: test-split images and their features, computed once."""

    def __init__(self, clf: DomainClassifier, real: torch.Tensor, cfg: EvalConfig):
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.kid import KernelInceptionDistance

        self.clf, self.cfg, self.real = clf, cfg, real
        self.device = next(clf.parameters()).device
        self.fid = FrechetInceptionDistance(feature=Features(clf), reset_real_features=False).to(self.device)
        self.kid = KernelInceptionDistance(feature=Features(clf), reset_real_features=False,
                                           subsets=cfg.kid_subsets, subset_size=cfg.kid_subset_size).to(self.device)
        for b in _batched(real):
            b = b.to(self.device)
            self.fid.update(b, real=True)
            self.kid.update(b, real=True)
        g = torch.Generator().manual_seed(cfg.seed)
        self.prdc_real = features(clf, real[torch.randperm(len(real), generator=g)[:cfg.n_samples]]).numpy()
        self.inception = None
        if cfg.inception_weights:
            check_inception_weights(cfg.inception_weights)
            self.inception = FrechetInceptionDistance(feature=2048, reset_real_features=False,
                                                      feature_extractor_weights_path=cfg.inception_weights)
            for b in _batched(real):
                self.inception.update(_rgb(b), real=True)

    @torch.no_grad()
    def score(self, fake: torch.Tensor) -> dict:
        """All protocol metrics of uint8 images `fake` against the reference."""
        from torchmetrics.image.inception import InceptionScore

        cfg, dev = self.cfg, self.device
        n = len(fake)
        self.fid.reset()
        self.kid.reset()
        torch.manual_seed(cfg.seed)  # KID subsets and the IS split permutation are random
        inc = InceptionScore(feature=Logits(self.clf), splits=min(cfg.is_splits, n)).to(dev)
        for b in _batched(fake):
            b = b.to(dev)
            self.fid.update(b, real=False)
            self.kid.update(b, real=False)
            inc.update(b)
        self.kid.subset_size = min(cfg.kid_subset_size, n)
        kid_mean, kid_std = self.kid.compute()
        is_mean, is_std = inc.compute()
        fake_feats = features(self.clf, fake).numpy()
        out = {"fd": float(self.fid.compute()), "kid": float(kid_mean), "kid_std": float(kid_std),
               "is": float(is_mean), "is_std": float(is_std), "n": n}
        out.update(prdc(self.prdc_real, fake_feats, cfg.pr_k, cfg.dc_k))
        if self.inception is not None:
            self.inception.reset()
            for b in _batched(fake):
                self.inception.update(_rgb(b), real=False)
            out["fid_inception"] = float(self.inception.compute())
        return out


def prdc(real: np.ndarray, fake: np.ndarray, pr_k: int = 3, dc_k: int = 5) -> dict:
    """Precision/recall at k = pr_k and density/coverage at k = dc_k (two calls of the reference code)."""
    from prdc import compute_prdc

    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the sample counts
        pr = compute_prdc(real, fake, nearest_k=pr_k)
        dc = compute_prdc(real, fake, nearest_k=dc_k) if dc_k != pr_k else pr
    return {"precision": float(pr["precision"]), "recall": float(pr["recall"]),
            "density": float(dc["density"]), "coverage": float(dc["coverage"])}


def _rgb(b: torch.Tensor) -> torch.Tensor:
    return b.expand(-1, 3, -1, -1) if b.shape[1] == 1 else b


def uniform_noise(n: int, shape, seed: int) -> torch.Tensor:
    """The noise ceiling: i.i.d. uniform 8-bit pixels."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8)


KL_FLOOR = 1e-6  # the reference's class shares are floored at this in class_kl


def class_coverage(hist, ref_hist, min_share: float = 0.25) -> dict:
    """How the samples' classes, as the domain classifier names them, cover the reference's.

    hist, ref_hist: class histograms (K,), lists or tensors (normalised here to sum to 1).
    - classes_covered: reference classes whose share of the samples is at least min_share times
      their share of the reference; n_classes: the classes the reference holds (K on Fashion-MNIST).
    - class_kl: KL(hist || ref) in nats. A class the samples lack adds 0 (0 log 0 = 0); the reference
      is floored at KL_FLOOR and renormalised, so that samples in a class the reference lacks cost a
      large finite amount (at most log(1 / KL_FLOOR), about 13.8 nats, per unit of mass), not infinity.
    - class_tv: total variation, half the L1 distance, in [0, 1].
    """
    p = torch.as_tensor(hist, dtype=torch.float64).flatten()                 # (K,)
    q = torch.as_tensor(ref_hist, dtype=torch.float64).flatten()             # (K,)
    if p.shape != q.shape:
        raise ValueError(f"class histograms of different lengths: {len(p)} and {len(q)}")
    p, q = p / p.sum(), q / q.sum()
    present = q > 0
    covered = (p >= min_share * q) & present
    q_floor = q.clamp_min(KL_FLOOR) / q.clamp_min(KL_FLOOR).sum()
    kl = torch.where(p > 0, p * (p / q_floor).log(), torch.zeros_like(p)).sum()
    return {"classes_covered": int(covered.sum()), "n_classes": int(present.sum()),
            "class_kl": float(kl), "class_tv": float(0.5 * (p - q).abs().sum())}
