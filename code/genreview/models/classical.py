"""What the classical background models (`gmm`, `hmm`) share: fitted by EM rather than by
gradient steps, evaluated in torch from buffers.

Both are fitted on uniformly dequantised images (`likelihood.dequantize`), the GMM by scikit-learn, the HMM
by Baum-Welch in torch checked against hmmlearn (`hmm`), and evaluated in torch from buffers, so `log_prob`
follows the protocol of `genreview.models.likelihood` (a lower bound on log P(k)) and a checkpoint loads into
a freshly built model. Before `fit`, the buffers hold an isotropic Gaussian N(1/2, 1/12 I) (the moments of
the uniform law on [0, 1]).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .likelihood import dequantize, discrete_log_prob
from .base import GenerativeModel

LOG_2PI = math.log(2 * math.pi)
PRIOR_MEAN, PRIOR_VAR = 0.5, 1 / 12  # the unfitted model: moments of U[0, 1]



def gauss_log_density(x, mean, cov, diag: bool):
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


def gauss_sample(idx, mean, cov, diag: bool, generator):
    """One draw from N(mean_k, cov_k) for each k in idx (n,): -> (n, F)."""
    eps = torch.randn(len(idx), mean.shape[-1], generator=generator, device=mean.device, dtype=mean.dtype)
    if diag:
        return mean[idx] + cov[idx].sqrt() * eps
    chol = torch.linalg.cholesky(cov)                                   # (K, F, F)
    return mean[idx] + (chol[idx] @ eps[..., None]).squeeze(-1)


def blas_threads():
    # NumPy's BLAS and scikit-learn's OpenMP use as many threads as torch was given: spinning threads
    # on a loaded machine make EM many times slower than one thread would.
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=torch.get_num_threads())


def subsample(x: torch.Tensor, n: int, seed: int) -> tuple[np.ndarray, int]:
    """A seeded subset of n images (0 = all), dequantised, flattened: (N, D) float64 numpy."""
    g = torch.Generator().manual_seed(seed)
    x = x.detach().cpu()
    if 0 < n < len(x):
        x = x[torch.randperm(len(x), generator=g)[:n]]
    y = dequantize(x, g)                                                # (N, C, H, W) in [0, 1)
    return y.flatten(1).double().numpy(), len(y)


class Classical(GenerativeModel):
    """What the two share: dequantised log_prob, a loss for generic callers, no trainable weights."""

    family = "classical"
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


