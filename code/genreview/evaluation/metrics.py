"""The evaluation protocol shared by every family, computed in the domain classifier's space.

- Frechet distance (Heusel et al. 2017) and KID (Binkowski et al. 2018): torchmetrics'
  FrechetInceptionDistance and KernelInceptionDistance with the classifier's penultimate
  layer as `feature`.
- FD extrapolated to infinitely many samples, FD_inf (Chong and Forsyth 2020, "Effectively unbiased FID
  and Inception Score and where to find them"): FD is biased upwards at finite N, by about k / N, so
  it is computed on random subsets of the samples at sizes evenly spaced in 1/N and the line
  FD_N = FD_inf + k / N is fitted by least squares; `frechet_distance` is the same distance as
  torchmetrics' (a test checks it), on the same classifier features.
- Inception Score (Salimans et al. 2016): torchmetrics' InceptionScore on its logits.
- Precision and recall (Kynkaanniemi et al. 2019, k = 3) and density and coverage
  (Naeem et al. 2020, k = 5): as the authors' reference implementation `prdc` computes them (a test
  checks equality), from one distance matrix in torch and k-NN radii of the reference computed once.
- The classifier runs once per set of images (`embed`); FD, KID and IS read its outputs through `Given`.
- Standard Inception FID as well, when local Inception weights are configured.

All metrics take uint8 images, (N, C, H, W), as an 8-bit image file would hold them.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..hparams import hp
from .classifier import DomainClassifier, Features


@dataclass
class EvalConfig:
    n_samples: int = hp(5000, minimum=20, maximum=10**6)  # N generated images per model (and real images for the floor)
    n_reference: int = hp(0, minimum=0, maximum=10**6)    # test images in the reference; 0 = the whole test split
    batch_size: int = hp(256, minimum=1)   # sampling batch; the ms/image figure is measured at this batch
    kid_subset_size: int = hp(1000, minimum=2)
    kid_subsets: int = hp(50, minimum=1, maximum=10**4)
    is_splits: int = hp(10, minimum=1)
    pr_k: int = hp(3, minimum=1)           # k of precision/recall (Kynkaanniemi et al. 2019)
    dc_k: int = hp(5, minimum=1)           # k of density/coverage (Naeem et al. 2020)
    inception_weights: str | None = hp(None)  # path to FID Inception weights (pt_inception-2015-12-05)
    interp_steps: int = hp(10, minimum=2, maximum=10**4)
    seed: int = hp(1234, minimum=0, maximum=2**32 - 1)
    # per-model sample counts for models whose sampling is slow (PixelCNN); FD is reported with its N
    n_samples_by_model: dict = hp({}, doc="sample count N for chosen models whose sampling is slow, e.g. "
                                          "{pixelcnn: 500}",
                                  schema={"propertyNames": {"$ref": "#/$defs/model_name"},
                                          "additionalProperties": {"type": "integer", "minimum": 20,
                                                                  "maximum": 10**6}})
    # the likelihood protocol (genreview.models.likelihood): bits/dim on a fixed subset of the test split
    nll_images: int = hp(1000, minimum=0, maximum=10**6, doc="test images for bits/dim; 0 skips it")
    nll_batch: int = hp(250, minimum=1)
    iw_samples: int = hp(64, minimum=1, maximum=10**4,
                         doc="k of the VAE's importance-weighted bound (Burda et al. 2016)")
    vlb_timesteps: int = hp(0, minimum=0, maximum=10**5,
                            doc="DDPM bound: KL terms estimated from this many timesteps; 0 = all")
    translation_images: int = hp(1000, minimum=1, maximum=10**6,
                                 doc="test images per domain that CycleGAN and super-resolution translate")
    bootstrap: int = hp(200, minimum=0, maximum=10**5,
                        doc="bootstrap replicates of a run's FD_inf over its samples (the lower level of the "
                            "verdicts' two-level bootstrap: seeds, then samples within a seed); 0 = none")


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


# --------------------------------------------------------------------------- FD extrapolated to N = infinity

FD_INF_POINTS = 15           # sample sizes in the extrapolation, as in Chong and Forsyth (2020)
FD_INF_MIN_FRACTION = 1 / 8  # the smallest of them, as a fraction of N
FD_INF_DRAWS = 10            # random subsets averaged at each size below N (one draw leaves FD_inf noisy)
FD_INF_PER_DIM = 2           # and at least this many samples per feature dimension: nearer the dimension,
#                              FD bends away from the line in 1/N and the fit overcorrects


def gaussian(feats) -> tuple[np.ndarray, np.ndarray]:
    """Mean (F,) and covariance (F, F) of features (N, F) in float64, the covariance with ddof 1 as
    torchmetrics' FD computes it."""
    x = np.asarray(feats, dtype=np.float64)                                # (N, F)
    return x.mean(0), np.cov(x, rowvar=False, ddof=1)


def psd_sqrt(cov: np.ndarray) -> np.ndarray:
    """The symmetric square root of a covariance matrix (eigenvalues below zero, rounding errors, clipped)."""
    w, v = np.linalg.eigh(cov)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, cov1, mu2, cov2, sqrt_cov2: np.ndarray | None = None) -> float:
    """Frechet distance between N(mu1, cov1) and N(mu2, cov2) (Dowson and Landau 1982; the FID of Heusel
    et al. 2017): |mu1 - mu2|^2 + Tr(cov1 + cov2 - 2 (cov1 cov2)^(1/2)).

    Tr (cov1 cov2)^(1/2) is taken as Tr (R cov1 R)^(1/2) with R = cov2^(1/2): cov1 R R and R cov1 R share
    their eigenvalues (AB and BA do), and the second is symmetric positive semi-definite, so its
    eigenvalues are real and found by eigvalsh. Pass `sqrt_cov2` when cov2 is fixed and reused."""
    r = psd_sqrt(cov2) if sqrt_cov2 is None else sqrt_cov2
    w = np.linalg.eigvalsh(r @ cov1 @ r)
    diff = np.asarray(mu1) - np.asarray(mu2)
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * np.sqrt(np.clip(w, 0, None)).sum())


def fd_sizes(n: int, dims: int = 0, points: int = FD_INF_POINTS,
             min_fraction: float = FD_INF_MIN_FRACTION) -> np.ndarray:
    """Sample sizes from n * min_fraction (and at least FD_INF_PER_DIM * dims, and 2) to n, evenly spaced
    in 1/N, duplicates merged; a single size, n, when the smallest would not be below n."""
    if n < 2:
        return np.array([], dtype=int)
    lo = min(n, max(2, int(round(n * min_fraction)), FD_INF_PER_DIM * dims))
    inv = np.linspace(1 / lo, 1 / n, points)
    return np.unique(np.clip(np.round(1 / inv).astype(int), lo, n))


def fd_curve(fake, real_mean, real_cov, sizes, seed: int, draws: int = FD_INF_DRAWS,
             sqrt_real_cov: np.ndarray | None = None) -> np.ndarray:
    """FD against the full reference's Gaussian at each of `sizes` (len(sizes),): at a size below N, the mean
    FD of `draws` random subsets of the generated features `fake` (N, F), drawn without replacement by a
    generator seeded with `seed`; at N, the FD of all of them."""
    x = np.asarray(fake, dtype=np.float64)                                 # (N, F)
    rng = np.random.default_rng(seed)
    r = psd_sqrt(real_cov) if sqrt_real_cov is None else sqrt_real_cov

    def fd(sub):
        return frechet_distance(*gaussian(sub), real_mean, real_cov, sqrt_cov2=r)

    return np.array([fd(x) if size >= len(x) else
                     np.mean([fd(x[rng.choice(len(x), int(size), replace=False)]) for _ in range(draws)])
                     for size in sizes])


def fd_infinity(fake, real_mean, real_cov, seed: int, points: int = FD_INF_POINTS,
                min_fraction: float = FD_INF_MIN_FRACTION, draws: int = FD_INF_DRAWS,
                sqrt_real_cov: np.ndarray | None = None) -> dict:
    """FD extrapolated to infinitely many generated samples (Chong and Forsyth 2020).

    FD at `points` sample sizes from N * min_fraction to N, evenly spaced in 1/N (`fd_curve`), and the
    least-squares line FD_N = fd_inf + fd_inf_slope / N through them. The reference side is fixed (the
    whole reference set's mean and covariance), so only the generated side's bias is extrapolated away.
    Returns {"fd_inf", "fd_inf_slope"} and how they were found: "fd_inf_sizes" (how many sizes),
    "fd_inf_n_min" (the smallest), "fd_inf_draws"; only {"fd_inf": None, "fd_inf_slope": None} when N holds
    fewer than three distinct sizes (N below about FD_INF_PER_DIM times the feature dimension)."""
    sizes = fd_sizes(len(fake), np.shape(fake)[1], points, min_fraction)
    if len(sizes) < 3:
        return {"fd_inf": None, "fd_inf_slope": None}
    fds = fd_curve(fake, real_mean, real_cov, sizes, seed, draws, sqrt_real_cov)
    slope, intercept = np.polyfit(1.0 / sizes, fds, 1)
    return {"fd_inf": float(intercept), "fd_inf_slope": float(slope), "fd_inf_sizes": len(sizes),
            "fd_inf_n_min": int(sizes[0]), "fd_inf_draws": draws}


def fd_inf_replicates(fake, real_mean, sqrt_real_cov, real_cov, fd_inf: float, n_boot: int, seed: int,
                      chunk: int = 25) -> list[float]:
    """Bootstrap replicates of one run's FD_inf over its generated samples (`n_boot` numbers): the lower
    level of the verdicts' two-level bootstrap (`summary.stats.two_level`).

    Each replicate resamples the N generated features `fake` (N, F) with replacement and takes their FD at
    N against the fixed reference Gaussian; the replicates are these FDs centred on the run's `fd_inf`:
    fd_inf + (FD_b - mean_b FD_b). A resample's FD carries the finite-N bias that FD_inf extrapolates away
    (and a little more, from its repeated points), so the spread is taken from the resamples and the
    centre from the extrapolation; refitting the 1/N line inside every replicate would cost about 140
    FDs each for the same spread. The FDs of a chunk of replicates are found at once in float64 torch:
    mean and covariance from multinomial counts, Tr (R C R)^(1/2) by one batched eigvalsh."""
    if n_boot <= 0 or fd_inf is None:
        return []
    x = torch.as_tensor(np.asarray(fake), dtype=torch.float64)            # (N, F)
    n = x.shape[0]
    r = torch.as_tensor(np.asarray(sqrt_real_cov), dtype=torch.float64)   # (F, F)
    mr = torch.as_tensor(np.asarray(real_mean), dtype=torch.float64)      # (F,)
    tr_real = float(np.trace(real_cov))
    g = torch.Generator().manual_seed(int(seed))
    fds = []
    for start in range(0, n_boot, chunk):
        k = min(chunk, n_boot - start)
        idx = torch.randint(n, (k, n), generator=g)                          # (k, N)
        w = torch.zeros(k, n, dtype=torch.float64).scatter_add_(1, idx, torch.ones(k, n, dtype=torch.float64))
        mu = w @ x / n                                                       # (k, F)
        second = (x.T * w[:, None, :]) @ x                                   # (k, F, F): sum of w x x^T
        cov = (second - n * mu[:, :, None] * mu[:, None, :]) / (n - 1)       # ddof 1, as `gaussian`
        ev = torch.linalg.eigvalsh(r @ cov @ r)                              # (k, F)
        d = mu - mr
        fd = (d * d).sum(1) + cov.diagonal(dim1=1, dim2=2).sum(1) + tr_real - 2 * ev.clamp_min(0).sqrt().sum(1)
        fds.append(fd)
    fd = torch.cat(fds)
    return [float(v) for v in fd_inf + (fd - fd.mean())]


class Given(nn.Module):
    """Features computed beforehand, passed through: the `feature` module that lets torchmetrics' FD, KID and
    IS run on the classifier's outputs for a set of images computed once (`embed`), not once per metric."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, x):  # (B, F) -> (B, F)
        return x


@torch.no_grad()
def embed(clf: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The classifier's penultimate features (N, F) and class logits (N, K) of uint8 images, from one pass
    in batches of 500 (the batches torchmetrics' updates saw), on the CPU.

    `clf` is the domain classifier or any other feature extractor with the same protocol: a module with
    `features(x)` of images in [0, 1] and `num_features` (the judges of `evaluation.judges`). One without a
    classification `head` (an autoencoder's encoder) gives None for the logits."""
    f = Features(clf)
    device = next(clf.parameters()).device
    head = getattr(clf, "head", None)
    feats, logits = [], []
    for b in _batched(images):
        h = f(b.to(device))                                              # (B, F)
        feats.append(h.cpu())
        if head is not None:
            logits.append(head(h).cpu())                                 # eval mode: dropout is the identity
    return torch.cat(feats), (torch.cat(logits) if head is not None else None)


REFERENCE_FORMAT = 1  # the layout of the reference features file (`Reference.write`)


class Reference:
    """The real side of every comparison, computed once: the classifier's features of the reference
    (test-split) images, their Gaussian for FD and FD_inf, the KID side, and the precision/recall and
    density/coverage subset with its k-NN radii.

    Build it from images (`from_images`: one classifier pass), or load the features the `reference` rule
    saved (`load`): every scoring job of a build then shares one pass over the test split.

    Args: clf (the domain classifier, or any feature extractor `embed` takes), real_features (N, F) float32,
    cfg (EvalConfig), real_predicted (N,) the classifier's classes of the reference images (None for an
    extractor without class logits), real_images (only needed for Inception FID)."""

    def __init__(self, clf: nn.Module, real_features: torch.Tensor, cfg: EvalConfig,
                 real_predicted: torch.Tensor | None = None, real_images: torch.Tensor | None = None):
        from torchmetrics.image.fid import FrechetInceptionDistance
        from torchmetrics.image.kid import KernelInceptionDistance

        self.clf, self.cfg = clf, cfg
        self.device = next(clf.parameters()).device
        self.features, self.predicted = real_features, real_predicted
        self.n = len(real_features)
        given = Given(real_features.shape[1])
        self.fid = FrechetInceptionDistance(feature=given, reset_real_features=False)
        self.kid = KernelInceptionDistance(feature=given, reset_real_features=False,
                                           subsets=cfg.kid_subsets, subset_size=cfg.kid_subset_size)
        for b in _batched(real_features):  # the batches (and so the float64 sums) of a pass over the images
            self.fid.update(b, real=True)
            self.kid.update(b, real=True)
        self.real_mean, self.real_cov = _real_gaussian(self.fid)  # FD_inf's reference side
        self.sqrt_real_cov = psd_sqrt(self.real_cov)
        g = torch.Generator().manual_seed(cfg.seed)
        self.prdc_real = real_features[torch.randperm(self.n, generator=g)[:cfg.n_samples]].numpy()
        self.prdc_radii = knn_radii(self.prdc_real, sorted({cfg.pr_k, cfg.dc_k}))
        self.inception = None
        if cfg.inception_weights:
            check_inception_weights(cfg.inception_weights)
            if real_images is None:
                raise ValueError("Inception FID needs the reference images: pass real_images")
            self.inception = FrechetInceptionDistance(feature=2048, reset_real_features=False,
                                                      feature_extractor_weights_path=cfg.inception_weights)
            for b in _batched(real_images):
                self.inception.update(_rgb(b), real=True)

    @classmethod
    def from_images(cls, clf: nn.Module, real: torch.Tensor, cfg: EvalConfig) -> "Reference":
        feats, logits = embed(clf, real)
        return cls(clf, feats, cfg, logits.argmax(1) if logits is not None else None, real)

    def write(self, path: str | Path, classifier_digest: str, selection: dict) -> None:
        """The features for every later scoring job, written atomically (`torch_save`): `load` checks the
        classifier and the selection of reference images (dataset, n_reference, seed) against the job's."""
        from ..utils import torch_save
        torch_save({"format": REFERENCE_FORMAT, "features": self.features, "predicted": self.predicted,
                    "classifier_digest": classifier_digest, "selection": selection}, Path(path))

    @classmethod
    def load(cls, path: str | Path, clf: nn.Module, cfg: EvalConfig, classifier_digest: str,
             selection: dict, real_images=None, rule: str = "reference") -> "Reference":
        """The reference the `reference` rule saved, for this job's classifier and selection of images
        (`real_images`: a function returning them, called only for Inception FID). rule: the rule that
        writes `path`, named in the error when the file does not fit (the judges' is `train_judges`)."""
        from ..files import ResultsFileError, load_torch

        ck = load_torch(path, map_location="cpu")
        for what, want, got in [("format", REFERENCE_FORMAT, ck.get("format")),
                                ("classifier", classifier_digest, ck.get("classifier_digest")),
                                ("selection of test images", selection, ck.get("selection"))]:
            if want != got:
                raise ResultsFileError(
                    f"{path} holds reference features for another {what} ({got!r}, this job needs {want!r}): "
                    f"rebuild it with `snakemake --cores all {path}` (the `{rule}` rule), or delete it")
        images = real_images() if (cfg.inception_weights and real_images) else None
        return cls(clf, ck["features"], cfg, ck["predicted"], images)

    @torch.no_grad()
    def score(self, fake: torch.Tensor, embedded: tuple[torch.Tensor, torch.Tensor | None] | None = None,
              replicates: int = 0) -> dict:
        """All protocol metrics of uint8 images `fake` against the reference; `embedded`: their
        (features, logits) from `embed`, when the caller has them already. An extractor without class
        logits (logits None) gives every metric but the Inception Score ("is", "is_std" left out).
        replicates: with B > 0, also "fd_inf_boot", B bootstrap replicates of FD_inf over the samples
        (`fd_inf_replicates`), for the verdicts' intervals."""
        from torchmetrics.image.inception import InceptionScore

        cfg = self.cfg
        feats, logits = embedded if embedded is not None else embed(self.clf, fake)
        n = len(fake)
        self.fid.reset()
        self.kid.reset()
        torch.manual_seed(cfg.seed)  # KID subsets and the IS split permutation are random
        inc = InceptionScore(feature=Given(logits.shape[1]), splits=min(cfg.is_splits, n)) if logits is not None \
            else None
        for f, lg in zip(_batched(feats), _batched(logits) if inc is not None else repeat(None)):
            self.fid.update(f, real=False)
            self.kid.update(f, real=False)
            if inc is not None:
                inc.update(lg)
        self.kid.subset_size = min(cfg.kid_subset_size, n)
        kid_mean, kid_std = self.kid.compute()
        out = {"fd": float(self.fid.compute()), "kid": float(kid_mean), "kid_std": float(kid_std), "n": n}
        if inc is not None:
            is_mean, is_std = inc.compute()
            out.update({"is": float(is_mean), "is_std": float(is_std)})
        out.update(prdc(self.prdc_real, feats.numpy(), cfg.pr_k, cfg.dc_k, self.prdc_radii))
        out.update(fd_infinity(feats.numpy(), self.real_mean, self.real_cov, cfg.seed,
                               sqrt_real_cov=self.sqrt_real_cov))
        if replicates and out["fd_inf"] is not None:
            out["fd_inf_boot"] = fd_inf_replicates(feats.numpy(), self.real_mean, self.sqrt_real_cov, self.real_cov,
                                                   out["fd_inf"], replicates, cfg.seed)
        out["sharpness"] = sharpness(fake)
        if self.inception is not None:
            self.inception.reset()
            for b in _batched(fake):
                self.inception.update(_rgb(b), real=False)
            out["fid_inception"] = float(self.inception.compute())
        return out


def sharpness(images: torch.Tensor) -> float:
    """Variance of the Laplacian (Pech-Pacheco et al. 2000), the usual focus measure: the mean over
    images of the variance of the 3x3 Laplacian response of the grey-level image in [0, 1]. Blur
    lowers it; the paper reads it relative to the real images' value."""
    x = images.float().mean(1, keepdim=True) / 255                          # (N, 1, H, W)
    k = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
    lap = torch.cat([torch.nn.functional.conv2d(b, k) for b in _batched(x)])  # (N, 1, H-2, W-2)
    return float(lap.flatten(1).var(1).mean())


def _real_gaussian(fid) -> tuple[np.ndarray, np.ndarray]:
    """The reference's feature mean and covariance from the sums torchmetrics' FD accumulated (float64),
    computed as its `compute` does: the features need no second pass over the reference images."""
    n = int(fid.real_features_num_samples)
    mean = (fid.real_features_sum / n).cpu().numpy()
    cov = (fid.real_features_cov_sum.cpu().numpy() - n * np.outer(mean, mean)) / (n - 1)
    return mean, cov


def _distances(a: np.ndarray, b: np.ndarray) -> torch.Tensor:
    """Euclidean distances (len(a), len(b)) in float64, rounded to float32 as prdc's (scikit-learn's) are
    for float32 features, so that a distance and a radius compare as they do there."""
    d = torch.cdist(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64),
                    compute_mode="donot_use_mm_for_euclid_dist")
    return d.to(torch.float32) if np.asarray(a).dtype == np.float32 else d


def knn_radii(feats: np.ndarray, ks) -> dict[int, torch.Tensor]:
    """Distance of every point of `feats` (N, F) to its k-th nearest neighbour in `feats` (itself not
    counted), for each k of `ks`: {k: (N,)}. One distance matrix serves every k."""
    d = _distances(feats, feats)                                         # (N, N), 0 on the diagonal
    return {k: d.kthvalue(k + 1, dim=1).values for k in ks}


def prdc(real: np.ndarray, fake: np.ndarray, pr_k: int = 3, dc_k: int = 5,
         real_radii: dict[int, torch.Tensor] | None = None) -> dict:
    """Precision and recall at k = pr_k (Kynkaanniemi et al. 2019) and density and coverage at k = dc_k
    (Naeem et al. 2020), as the authors' `prdc.compute_prdc` defines them (a test checks equality), from one
    real-fake distance matrix. `real_radii`: knn_radii(real, ...) computed once for a fixed reference.

    precision: share of fake points inside some real point's pr_k-NN ball; recall: share of real points
    inside some fake point's pr_k-NN ball; density: mean number of real dc_k-NN balls holding a fake
    point, over dc_k; coverage: share of real points whose dc_k-NN ball holds a fake point."""
    radii = real_radii if real_radii is not None else knn_radii(real, sorted({pr_k, dc_k}))
    d = _distances(real, fake)                                           # (R, G)
    fake_radii = knn_radii(fake, [pr_k])[pr_k]                           # (G,)
    in_pr = d < radii[pr_k][:, None]                                     # (R, G)
    in_dc = in_pr if dc_k == pr_k else d < radii[dc_k][:, None]
    return {"precision": float(in_pr.any(0).double().mean()),
            "recall": float((d < fake_radii[None, :]).any(1).double().mean()),
            "density": float(in_dc.double().sum(0).mean() / dc_k),
            "coverage": float((d.min(1).values < radii[dc_k]).double().mean())}


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
