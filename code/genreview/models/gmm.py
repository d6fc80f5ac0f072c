"""Gaussian mixture model fitted by expectation-maximisation (Dempster et al. 1977).

GMM: a Gaussian mixture on a principal-component basis of the pixels. The density is defined
in pixel space, so that bits/dim compares with every other family: with the mean m and the
orthonormal basis P (d, D) of the top d principal components,
    p(y) = GMM(z) * N(r; 0, sigma^2 I_{D-d}),   z = P (y - m),   r = (I - P^T P)(y - m),
i.e. the mixture on the kept directions and an isotropic Gaussian on the D - d discarded ones,
whose variance sigma^2 is the mean discarded PCA variance, as in probabilistic PCA (Tipping and
Bishop 1999). The change of basis is a rotation, so there is no Jacobian term.

Fitted by scikit-learn on uniformly dequantised images and evaluated in torch from buffers
(see `genreview.models.classical`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ..hparams import hp
from .classical import (LOG_2PI, PRIOR_MEAN, PRIOR_VAR, Classical, blas_threads, gauss_log_density, gauss_sample,
                        subsample)


@dataclass
class GMMConfig:
    components: int = hp(32, minimum=1)  # mixture components K
    pca_dim: int = hp(64, minimum=1)  # principal components d kept (the rest get an isotropic Gaussian)
    covariance: str = hp("full", enum=["full", "diag"])  # covariance of each component: "full" or "diag"
    max_iter: int = hp(100, minimum=1, maximum=10**4)  # EM iterations at most
    tol: float = hp(1e-3, exclusive_minimum=0)  # EM stops when the mean log-likelihood gains less than this
    reg_covar: float = hp(1e-6, exclusive_minimum=0)  # added to the covariance diagonals
    train_images: int = hp(20000, minimum=0, maximum=10**6, doc="images fitted on (a seeded random subset); 0 = all")



class GMM(Classical):
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
        comp = gauss_log_density(z, self.means, self.covariances, self.diag)   # (B, K)
        mix = torch.logsumexp(comp + self.weights.log()[None], dim=1)           # (B,)
        return mix + self.residual_log_density(r2)

    @torch.no_grad()
    def sample(self, n, generator=None):
        k = torch.multinomial(self.weights.expand(n, -1), 1, generator=generator).squeeze(1)  # (n,)
        z = gauss_sample(k, self.means, self.covariances, self.diag, generator)             # (n, d)
        e = torch.randn(n, self.dims, generator=generator, device=z.device, dtype=z.dtype)
        e = e - (e @ self.basis.T) @ self.basis                         # (n, D), in the discarded directions
        y = self.mean + z @ self.basis + self.noise_var.sqrt() * e       # (n, D)
        return y.view(n, *self.shape).clamp(0, 1).float()

    def fit(self, x, seed):
        from sklearn.decomposition import PCA
        from sklearn.mixture import GaussianMixture

        cfg, t0 = self.cfg, time.perf_counter()
        y, n = subsample(x, cfg.train_images, seed)                    # (N, D)
        with blas_threads():
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
