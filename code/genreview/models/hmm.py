"""Gaussian hidden Markov model over image rows, fitted by Baum-Welch (EM).

HMM: a Gaussian hidden Markov model (Rabiner 1989) that reads an image as a sequence of its H
rows, each a (C W)-dimensional emission; log p(y) is the forward algorithm over the rows.

Fitted by hmmlearn on uniformly dequantised images and evaluated in torch from buffers
(see `genreview.models.classical`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ..hparams import hp
from .classical import (PRIOR_MEAN, PRIOR_VAR, Classical, blas_threads, gauss_log_density, gauss_sample,
                        subsample)


@dataclass
class HMMConfig:
    states: int = hp(32, minimum=1)  # hidden states S
    # covariance of each state's row emission: "diag" or "full"
    covariance_type: str = hp("diag", enum=["diag", "full"])
    n_iter: int = hp(20, minimum=1, maximum=10**4)  # EM (Baum-Welch) iterations at most
    tol: float = hp(1e-2, exclusive_minimum=0)  # EM stops when the total log-likelihood gains less than this
    train_images: int = hp(10000, minimum=0, maximum=10**6, doc="images fitted on (a seeded random subset); 0 = all")



class HMM(Classical):
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
        emit = gauss_log_density(seq.reshape(b * h, f), self.means, self.covars, self.diag)
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
            rows.append(gauss_sample(s, self.means, self.covars, self.diag, generator))  # (n, C W)
        seq = torch.stack(rows, dim=1)                                  # (n, H, C W)
        return seq.view(n, h, c, w).permute(0, 2, 1, 3).clamp(0, 1).float()

    def fit(self, x, seed):
        from hmmlearn.hmm import GaussianHMM

        cfg, t0 = self.cfg, time.perf_counter()
        y, n = subsample(x, cfg.train_images, seed)                    # (N, D)
        c, h, w = self.shape
        seq = self.rows(torch.from_numpy(y).view(n, c, h, w)).reshape(n * h, c * w).numpy()  # (N H, F)
        lengths = [h] * n
        with blas_threads():
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
