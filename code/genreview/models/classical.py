"""Classical background models fitted by expectation-maximisation (Dempster et al. 1977).

GMM: a Gaussian mixture on a principal-component basis of the pixels. The density is defined
in pixel space, so that bits/dim compares with every other family: with the mean m and the
orthonormal basis P (d, D) of the top d principal components,
    p(y) = GMM(z) * N(r; 0, sigma^2 I_{D-d}),   z = P (y - m),   r = (I - P^T P)(y - m),
i.e. the mixture on the kept directions and an isotropic Gaussian on the D - d discarded ones,
whose variance sigma^2 is the mean discarded PCA variance, as in probabilistic PCA (Tipping and
Bishop 1999). The change of basis is a rotation, so there is no Jacobian term.

HMM: a Gaussian hidden Markov model (Rabiner 1989) that reads an image as a sequence of its H
rows, each a (C W)-dimensional emission; log p(y) is the forward algorithm over the rows.

Both are fitted by scikit-learn / hmmlearn on uniformly dequantised images (`likelihood.dequantize`)
and evaluated in torch from buffers, so `log_prob` follows the protocol of `genreview.models.likelihood`
(a lower bound on log P(k)) and a checkpoint loads into a freshly built model. Before `fit`, the
buffers hold an isotropic Gaussian N(1/2, 1/12 I) (the moments of the uniform law on [0, 1]).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from .likelihood import dequantize, discrete_log_prob
from .base import GenerativeModel

LOG_2PI = math.log(2 * math.pi)
PRIOR_MEAN, PRIOR_VAR = 0.5, 1 / 12  # the unfitted model: moments of U[0, 1]


@dataclass
class GMMConfig:
    components: int = 32         # mixture components K
    pca_dim: int = 64            # principal components d kept (the rest get an isotropic Gaussian)
    covariance: str = "full"     # covariance of each component: "full" or "diag"
    max_iter: int = 100          # EM iterations at most
    tol: float = 1e-3            # EM stops when the mean log-likelihood gains less than this
    reg_covar: float = 1e-6      # added to the covariance diagonals
    train_images: int = 20000    # images fitted on (a seeded random subset); 0 = all


@dataclass
class HMMConfig:
    states: int = 32             # hidden states S
    covariance_type: str = "diag"  # covariance of each state's row emission: "diag" or "full"
    n_iter: int = 20             # EM (Baum-Welch) iterations at most
    tol: float = 1e-2            # EM stops when the total log-likelihood gains less than this
    train_images: int = 10000    # images fitted on (a seeded random subset); 0 = all


def _gauss_log_density(x, mean, cov, diag: bool):
    """log N(x; mean_k, cov_k) for every row of x and every k: x (B, F), mean (K, F),
    cov (K, F) if diag else (K, F, F) -> (B, K)."""
    diff = x[:, None, :] - mean[None]                                   # (B, K, F)
    f = x.shape[-1]
    if diag:
        maha = (diff.pow(2) / cov[None]).sum(-1)                        # (B, K)
        logdet = cov.log().sum(-1)                                      # (K,)
    else:
        chol = torch.linalg.cholesky(cov)                               # (K, F, F)
        eye = torch.eye(f, dtype=cov.dtype, device=cov.device)
        chol_inv = torch.linalg.solve_triangular(chol, eye, upper=False)  # L^-1, (K, F, F)
        maha = torch.einsum("kij,bkj->bki", chol_inv, diff).pow(2).sum(-1)  # |L^-1 (x - mean)|^2, (B, K)
        logdet = 2 * torch.diagonal(chol, dim1=-2, dim2=-1).log().sum(-1)  # (K,)
    return -0.5 * (f * LOG_2PI + logdet[None] + maha)


def _gauss_sample(idx, mean, cov, diag: bool, generator):
    """One draw from N(mean_k, cov_k) for each k in idx (n,): -> (n, F)."""
    eps = torch.randn(len(idx), mean.shape[-1], generator=generator, device=mean.device, dtype=mean.dtype)
    if diag:
        return mean[idx] + cov[idx].sqrt() * eps
    chol = torch.linalg.cholesky(cov)                                   # (K, F, F)
    return mean[idx] + (chol[idx] @ eps[..., None]).squeeze(-1)


def _blas_threads():
    # NumPy's BLAS and scikit-learn's OpenMP use as many threads as torch was given: spinning threads
    # on a loaded machine make EM many times slower than one thread would.
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=torch.get_num_threads())


def _subsample(x: torch.Tensor, n: int, seed: int) -> tuple[np.ndarray, int]:
    """A seeded subset of n images (0 = all), dequantised, flattened: (N, D) float64 numpy."""
    g = torch.Generator().manual_seed(seed)
    x = x.detach().cpu()
    if 0 < n < len(x):
        x = x[torch.randperm(len(x), generator=g)[:n]]
    y = dequantize(x, g)                                                # (N, C, H, W) in [0, 1)
    return y.flatten(1).double().numpy(), len(y)


class _Classical(GenerativeModel):
    """What the two share: dequantised log_prob, a loss for generic callers, no trainable weights."""

    classical = True
    likelihood = "bound"
    likelihood_note = "dequantised density"

    def __init__(self, cfg, shape):
        super().__init__(cfg, shape)
        self.dims = math.prod(self.shape)
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    def log_density(self, y: torch.Tensor) -> torch.Tensor:
        """log p(y) of the continuous density at y in [0, 1]^D, (B, C, H, W) -> (B,) float64."""
        raise NotImplementedError

    @torch.no_grad()
    def log_prob(self, x, generator=None, **options):
        y = dequantize(x, generator)                                    # (B, C, H, W)
        return discrete_log_prob(self.log_density(y), self.dims).float()

    def loss(self, x, y=None):
        return {"loss": -self.log_prob(x).mean() / self.dims}           # nats per dimension


class GMM(_Classical):
    """Gaussian mixture on a PCA basis, with a probabilistic-PCA residual. Args: cfg (GMMConfig),
    shape (C, H, W) with C H W > cfg.pca_dim."""

    def __init__(self, cfg: GMMConfig, shape):
        super().__init__(cfg, shape)
        if cfg.covariance not in ("full", "diag"):
            raise ValueError(f"gmm covariance must be 'full' or 'diag', got {cfg.covariance!r}")
        k, d, dims = cfg.components, cfg.pca_dim, self.dims
        if not 0 < d < dims:
            raise ValueError(f"gmm pca_dim must lie in 1..{dims - 1} for images of shape {self.shape}, got {d}")
        f64 = dict(dtype=torch.float64)
        cov = torch.eye(d, **f64).expand(k, d, d) if cfg.covariance == "full" else torch.ones(k, d, **f64)
        self.register_buffer("mean", torch.full((dims,), PRIOR_MEAN, **f64))       # m, (D,)
        self.register_buffer("basis", torch.eye(d, dims, **f64))                    # P, (d, D), orthonormal rows
        self.register_buffer("noise_var", torch.tensor(PRIOR_VAR, **f64))           # sigma^2, ()
        self.register_buffer("weights", torch.full((k,), 1 / k, **f64))             # (K,)
        self.register_buffer("means", torch.zeros(k, d, **f64))                     # (K, d)
        self.register_buffer("covariances", PRIOR_VAR * cov.clone())                # (K, d, d) or (K, d)

    @property
    def diag(self) -> bool:
        return self.cfg.covariance == "diag"

    def project(self, y):
        """(B, C, H, W) -> PCA coordinates z (B, d) and the squared residual norm |r|^2 (B,)."""
        c = y.flatten(1).to(self.mean) - self.mean                      # (B, D)
        z = c @ self.basis.T                                            # (B, d)
        r = c - z @ self.basis                                          # (B, D), orthogonal to the basis
        return z, r.pow(2).sum(1)

    def residual_log_density(self, r2):
        """log N(r; 0, sigma^2 I_{D-d}) from |r|^2, (B,) -> (B,)."""
        m = self.dims - self.cfg.pca_dim
        return -0.5 * (m * (LOG_2PI + self.noise_var.log()) + r2 / self.noise_var)

    def log_density(self, y):
        z, r2 = self.project(y)
        comp = _gauss_log_density(z, self.means, self.covariances, self.diag)   # (B, K)
        mix = torch.logsumexp(comp + self.weights.log()[None], dim=1)           # (B,)
        return mix + self.residual_log_density(r2)

    @torch.no_grad()
    def sample(self, n, generator=None):
        k = torch.multinomial(self.weights.expand(n, -1), 1, generator=generator).squeeze(1)  # (n,)
        z = _gauss_sample(k, self.means, self.covariances, self.diag, generator)             # (n, d)
        e = torch.randn(n, self.dims, generator=generator, device=z.device, dtype=z.dtype)
        e = e - (e @ self.basis.T) @ self.basis                         # (n, D), in the discarded directions
        y = self.mean + z @ self.basis + self.noise_var.sqrt() * e       # (n, D)
        return y.view(n, *self.shape).clamp(0, 1).float()

    def fit(self, x, seed):
        from sklearn.decomposition import PCA
        from sklearn.mixture import GaussianMixture

        cfg, t0 = self.cfg, time.perf_counter()
        y, n = _subsample(x, cfg.train_images, seed)                    # (N, D)
        with _blas_threads():
            pca = PCA(n_components=cfg.pca_dim, random_state=seed).fit(y)
            z = pca.transform(y)                                        # (N, d)
            gm = GaussianMixture(cfg.components, covariance_type=cfg.covariance, max_iter=cfg.max_iter,
                                 tol=cfg.tol, reg_covar=cfg.reg_covar, random_state=seed).fit(z)
            mix_ll = gm.score(z)                                        # mean log GMM(z)
        for name, value in [("mean", pca.mean_), ("basis", pca.components_), ("noise_var", pca.noise_variance_),
                            ("weights", gm.weights_), ("means", gm.means_), ("covariances", gm.covariances_)]:
            getattr(self, name).copy_(torch.tensor(np.asarray(value, dtype=np.float64)))
        self.fitted.fill_(True)
        r2 = ((y - pca.mean_) - z @ pca.components_) ** 2               # (N, D)
        residual = self.residual_log_density(torch.as_tensor(r2.sum(1), device=self.mean.device))
        return {"n_iter": int(gm.n_iter_), "converged": bool(gm.converged_), "train_images": n,
                "train_log_likelihood_nats": float(mix_ll + residual.mean()),
                "explained_variance": float(pca.explained_variance_ratio_.sum()),
                "noise_variance": float(pca.noise_variance_), "fit_seconds": time.perf_counter() - t0}


class HMM(_Classical):
    """Gaussian HMM over image rows. Args: cfg (HMMConfig), shape (C, H, W): H steps of C W-dim emissions."""

    def __init__(self, cfg: HMMConfig, shape):
        super().__init__(cfg, shape)
        if cfg.covariance_type not in ("full", "diag"):
            raise ValueError(f"hmm covariance_type must be 'full' or 'diag', got {cfg.covariance_type!r}")
        c, h, w = self.shape
        s, f = cfg.states, c * w
        f64 = dict(dtype=torch.float64)
        cov = torch.ones(s, f, **f64) if self.diag else torch.eye(f, **f64).expand(s, f, f)
        self.register_buffer("startprob", torch.full((s,), 1 / s, **f64))           # pi, (S,)
        self.register_buffer("transmat", torch.full((s, s), 1 / s, **f64))          # A[i, j] = p(j | i), (S, S)
        self.register_buffer("means", torch.full((s, f), PRIOR_MEAN, **f64))        # (S, F)
        self.register_buffer("covars", PRIOR_VAR * cov.clone())                     # (S, F) or (S, F, F)

    @property
    def diag(self) -> bool:
        return self.cfg.covariance_type == "diag"

    @property
    def nfe(self):
        return self.shape[1]  # one emission per row, drawn in sequence

    def rows(self, y):
        """(B, C, H, W) -> the row sequence (B, H, C W)."""
        b, c, h, w = y.shape
        return y.permute(0, 2, 1, 3).reshape(b, h, c * w)

    def log_density(self, y):
        seq = self.rows(y.to(self.means))                               # (B, H, F)
        b, h, f = seq.shape
        emit = _gauss_log_density(seq.reshape(b * h, f), self.means, self.covars, self.diag)
        emit = emit.view(b, h, -1)                                      # (B, H, S)
        log_a = self.transmat.log()                                     # (S, S)
        alpha = self.startprob.log()[None] + emit[:, 0]                 # (B, S)
        for t in range(1, h):                                           # the forward recursion, in log space
            alpha = torch.logsumexp(alpha[:, :, None] + log_a[None], dim=1) + emit[:, t]
        return torch.logsumexp(alpha, dim=1)                            # (B,)

    @torch.no_grad()
    def sample(self, n, generator=None):
        c, h, w = self.shape
        s = torch.multinomial(self.startprob.expand(n, -1), 1, generator=generator).squeeze(1)  # (n,)
        rows = []
        for t in range(h):
            if t > 0:
                s = torch.multinomial(self.transmat[s], 1, generator=generator).squeeze(1)
            rows.append(_gauss_sample(s, self.means, self.covars, self.diag, generator))  # (n, C W)
        seq = torch.stack(rows, dim=1)                                  # (n, H, C W)
        return seq.view(n, h, c, w).permute(0, 2, 1, 3).clamp(0, 1).float()

    def fit(self, x, seed):
        from hmmlearn.hmm import GaussianHMM

        cfg, t0 = self.cfg, time.perf_counter()
        y, n = _subsample(x, cfg.train_images, seed)                    # (N, D)
        c, h, w = self.shape
        seq = self.rows(torch.from_numpy(y).view(n, c, h, w)).reshape(n * h, c * w).numpy()  # (N H, F)
        lengths = [h] * n
        with _blas_threads():
            hm = GaussianHMM(cfg.states, covariance_type=cfg.covariance_type, n_iter=cfg.n_iter, tol=cfg.tol,
                             random_state=seed).fit(seq, lengths)
            train_ll = hm.score(seq, lengths) / n
        covars = hm.covars_ if not self.diag else np.diagonal(hm.covars_, axis1=1, axis2=2)
        for name, value in [("startprob", hm.startprob_), ("transmat", hm.transmat_), ("means", hm.means_),
                            ("covars", covars)]:
            getattr(self, name).copy_(torch.tensor(np.asarray(value, dtype=np.float64)))
        self.fitted.fill_(True)
        history = list(hm.monitor_.history)
        # hmmlearn's monitor also calls reaching n_iter "converged"; report only a gain below tol.
        converged = len(history) >= 2 and history[-1] - history[-2] < cfg.tol
        return {"n_iter": int(hm.monitor_.iter), "converged": bool(converged), "train_images": n,
                "train_log_likelihood_nats": float(train_ll),
                "fit_seconds": time.perf_counter() - t0}
