"""Gaussian hidden Markov model over image rows, fitted by Baum-Welch (EM).

HMM: a Gaussian hidden Markov model (Rabiner 1989) that reads an image as a sequence of its H
rows, each a (C W)-dimensional emission; log p(y) is the forward algorithm over the rows.

Fitted on uniformly dequantised images by Baum-Welch (Baum et al. 1970; Rabiner 1989, section III.C)
in torch, in float64, on the device of the model's buffers, batched over the images and a chunk of
images at a time so that memory stays bounded. The forward-backward recursions run in log space; the
sum over the previous state is one matrix product of exp(log alpha - max log alpha) with the transition
matrix (as pomegranate does), exact but for terms over 700 nats below the largest, which float64 rounds
to zero. The fit reproduces hmmlearn's `GaussianHMM` (the oracle of tests/test_hmm_em.py):
its initialisation (start and transition probabilities drawn from Dirichlet(1/S) by NumPy's
RandomState(seed), means from scikit-learn's k-means with random_state=seed, every state's covariance
the data's plus `MIN_COVAR`), its M-step with its default priors, and its stopping rule (a gain in
the total log-likelihood below `tol`, or `n_iter` iterations); the k-means runs on the CPU, with the job's
threads. backend "hmmlearn" fits with hmmlearn itself, on the CPU (the reference, far slower).
Evaluated in torch from buffers (see `genreview.models.classical`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ..hparams import hp
from ..utils import device_name
from .classical import (LOG_2PI, PRIOR_MEAN, PRIOR_VAR, Classical, blas_threads, gauss_log_density, gauss_sample,
                        subsample)

# hmmlearn GaussianHMM's defaults: the floor added to the data's covariance at initialisation, and the
# prior on each state's covariance (COVARS_PRIOR added to the scatter, of weight COVARS_WEIGHT). Its other
# priors add nothing: Dirichlet(1) on pi and on the rows of A, and a mean prior of weight 0.
MIN_COVAR, COVARS_PRIOR, COVARS_WEIGHT = 1e-3, 1e-2, 1
# float64 elements in the largest array of one E-step chunk: 32 MiB on a CPU (faster there than larger
# chunks, which leave the cache), 256 MiB on a GPU (fewer sequential steps of the recursions)
CHUNK_ELEMENTS = {"cpu": 2**22, "cuda": 2**25}
PARAMS = ("startprob", "transmat", "means", "covars")


@dataclass
class HMMConfig:
    states: int = hp(32, minimum=1)  # hidden states S
    # covariance of each state's row emission: "diag" or "full"
    covariance_type: str = hp("diag", enum=["diag", "full"])
    n_iter: int = hp(20, minimum=1, maximum=10**4)  # EM (Baum-Welch) iterations at most
    tol: float = hp(1e-2, exclusive_minimum=0)  # EM stops when the total log-likelihood gains less than this
    train_images: int = hp(10000, minimum=0, maximum=10**6, doc="images fitted on (a seeded random subset); 0 = all")
    backend: str = hp("torch", enum=["torch", "hmmlearn"],
                      doc="torch: Baum-Welch in torch on the model's device; hmmlearn: the reference, on one CPU")


# --------------------------------------------------------------------------- Baum-Welch, batched over sequences

def features(x, diag: bool):
    """What the emission density and the M-step's statistics read of the frames x (B, F): the diagonal
    case [x, x^2] (B, 2F), the full case x itself."""
    return torch.cat([x, x.pow(2)], dim=1) if diag else x


def emission_log_prob(feats, means, covars, diag: bool):
    """log N(x_n; mean_s, cov_s) from feats = features(x, diag): -> (B, S). The diagonal case as one matrix
    product of [x, x^2] (B, 2F) with (2F, S), the terms without x folded into a bias."""
    if not diag:
        return gauss_log_density(feats, means, covars, diag=False)
    prec = 1 / covars                                                   # (S, F)
    weight = torch.cat([means * prec, -0.5 * prec], dim=1).T            # (2F, S)
    bias = -0.5 * (means.shape[1] * LOG_2PI + covars.log().sum(1) + (means.pow(2) * prec).sum(1))  # (S,)
    return torch.addmm(bias, feats, weight)


def log_matmul_exp(v, a, scaled, peak, out):
    """out = log(exp(v) @ a) for v (B, S) in log space and a (S, S) >= 0, the sum over the previous (or next)
    state, as one matrix product of exp(v - max_s v); writes exp(v - max) into scaled (B, S) and the max into
    peak (B, 1). out (B, S) may be v."""
    torch.nan_to_num(v.amax(1, keepdim=True), neginf=0.0, out=peak)   # an impossible row stays -inf
    torch.exp(v - peak, out=scaled)
    return torch.mm(scaled, a, out=out).log_().add_(peak)


def forward(log_b, startprob, transmat):
    """The forward recursion: log_b (T, B, S) -> log alpha_t(s) = log p(y_1..t, z_t = s) (T, B, S), and for the
    xi sums exp(log alpha_t - m_t) (T-1, B, S) with m_t = max_s log alpha_t (T-1, B, 1), t < T."""
    alpha, scaled, peak = torch.empty_like(log_b), torch.empty_like(log_b[1:]), torch.empty_like(log_b[1:, :, :1])
    alpha[0] = startprob.log() + log_b[0]
    for t in range(1, len(log_b)):
        log_matmul_exp(alpha[t - 1], transmat, scaled[t - 1], peak[t - 1], out=alpha[t]).add_(log_b[t])
    return alpha, scaled, peak


def backward(log_b, transmat):
    """The backward recursion: log_b (T, B, S) -> log beta_t(s) = log p(y_t+1..T | z_t = s) (T, B, S), and for
    the xi sums exp(log b_t+1 + log beta_t+1 - m_t) (T-1, B, S) with m_t its max over s (T-1, B, 1)."""
    beta, scaled, peak = torch.empty_like(log_b), torch.empty_like(log_b[1:]), torch.empty_like(log_b[1:, :, :1])
    beta[-1] = 0
    for t in range(len(log_b) - 2, -1, -1):
        torch.add(log_b[t + 1], beta[t + 1], out=beta[t])
        log_matmul_exp(beta[t], transmat.T, scaled[t], peak[t], out=beta[t])
    return beta, scaled, peak


def chunks(seq, states: int, diag: bool):
    """seq (N, T, F) in chunks of sequences whose largest E-step array holds about CHUNK_ELEMENTS."""
    n, t, f = seq.shape
    per_seq = t * states * (1 if diag else f)                           # (T, S) or, full: (T, S, F)
    return seq.split(max(1, CHUNK_ELEMENTS.get(seq.device.type, CHUNK_ELEMENTS["cpu"]) // per_seq))


def features_and_log_b(x, p: dict, diag: bool):
    """A chunk x (B, T, F) -> the features of its frames, time-major (T B, 2F or F), and their emission
    log-densities (T, B, S)."""
    b, t, f = x.shape
    feats = features(x.transpose(0, 1).reshape(t * b, f), diag)        # (T B, 2F) or (T B, F)
    return feats, emission_log_prob(feats, p["means"], p["covars"], diag).view(t, b, -1)


def log_likelihood(seq, p: dict, diag: bool):
    """log p(y) of every sequence: seq (N, T, F) -> (N,)."""
    out = []
    for x in chunks(seq, len(p["startprob"]), diag):
        alpha = forward(features_and_log_b(x, p, diag)[1], p["startprob"], p["transmat"])[0]  # (T, B, S)
        out.append(torch.logsumexp(alpha[-1], dim=1))
    return torch.cat(out)


def estep(seq, p: dict, diag: bool) -> dict:
    """The expected sufficient statistics of hmmlearn's GaussianHMM under parameters p, summed over the
    sequences seq (N, T, F), and the total log-likelihood "log_prob" (a 0-dim tensor)."""
    s, f = p["means"].shape
    z = dict(dtype=seq.dtype, device=seq.device)
    st = {"log_prob": torch.zeros((), **z), "start": torch.zeros(s, **z), "trans": torch.zeros(s, s, **z),
          "post": torch.zeros(s, **z), "obs": torch.zeros(s, f, **z),
          "obs2": torch.zeros(s, f, **z) if diag else torch.zeros(s, f, f, **z)}
    for x in chunks(seq, s, diag):
        feats, log_b = features_and_log_b(x, p, diag)                  # (T B, 2F or F), (T, B, S)
        alpha, fwd, fwd_peak = forward(log_b, p["startprob"], p["transmat"])
        beta, bwd, bwd_peak = backward(log_b, p["transmat"])
        ll = torch.logsumexp(alpha[-1], dim=1)                          # log p(y), (B,)
        # xi summed over t: alpha_t(i) A_ij b_t+1(j) beta_t+1(j) / p(y), one product over the (T-1) B pairs
        w = (fwd_peak + bwd_peak - ll[:, None]).exp()                  # (T-1, B, 1)
        xi = fwd.reshape(-1, s).T @ (bwd * w).reshape(-1, s)            # (S, S)
        gamma = alpha.add_(beta).sub_(ll[:, None]).exp_()              # p(z_t = s | y), (T, B, S)
        g = gamma.reshape(-1, s)                                        # (T B, S)
        st["log_prob"] += ll.sum()
        st["start"] += gamma[0].sum(0)
        st["trans"] += p["transmat"] * xi
        st["post"] += g.sum(0)
        moments = g.T @ feats                                           # (S, 2F) or (S, F)
        st["obs"] += moments[:, :f]                                     # sum_t gamma_t(s) x_t
        if diag:
            st["obs2"] += moments[:, f:]                                # sum_t gamma_t(s) x_t^2
        else:                                                           # sum_t gamma_t(s) x_t x_t^T, (S, F, F)
            st["obs2"] += ((g[:, :, None] * feats[:, None]).reshape(-1, s * f).T @ feats).view(s, f, f)
    return st


def mstep(st: dict, p: dict, diag: bool) -> dict:
    """hmmlearn GaussianHMM's M-step with its default priors (`BaseHMM._do_mstep`, `GaussianHMM._do_mstep`):
    the new parameters from the statistics `st` of `estep` and the old parameters p."""
    # pi and the rows of A: the expected counts, normalised; a probability that is 0 stays 0
    start = torch.where(p["startprob"] == 0, 0, st["start"].clamp_min(0))
    trans = torch.where(p["transmat"] == 0, 0, st["trans"].clamp_min(0))
    rows = trans.sum(1, keepdim=True)                                   # (S, 1); a row never left stays 0
    post = st["post"][:, None]                                          # (S, 1)
    means = st["obs"] / post                                            # (S, F)
    if diag:
        scatter = st["obs2"] - 2 * means * st["obs"] + means.pow(2) * post  # (S, F)
        covars = (COVARS_PRIOR + scatter) / (max(COVARS_WEIGHT - 1, 0) + post).clamp_min(1e-5)
    else:
        f = means.shape[1]
        cross = st["obs"][:, :, None] * means[:, None]                  # obs_s mean_s^T, (S, F, F)
        scatter = st["obs2"] - cross - cross.transpose(1, 2) + means[:, :, None] * means[:, None] * post[:, :, None]
        covars = (COVARS_PRIOR + scatter) / (max(COVARS_WEIGHT - f, 0) + post[:, :, None])
    return {"startprob": start / start.sum(), "transmat": trans / torch.where(rows == 0, 1, rows),
            "means": means, "covars": covars}


def hmmlearn_init(seq: np.ndarray, states: int, diag: bool, seed: int) -> dict:
    """hmmlearn GaussianHMM's initialisation (init_params "stmc") from the frames seq (N T, F), as float64 numpy."""
    from sklearn.cluster import KMeans

    rng = np.random.RandomState(seed)                                   # sklearn's check_random_state(seed)
    alpha = np.full(states, 1 / states)
    p = {"startprob": rng.dirichlet(alpha), "transmat": rng.dirichlet(alpha, size=states)}
    p["means"] = KMeans(n_clusters=states, random_state=seed, n_init=10).fit(seq).cluster_centers_
    cov = np.cov(seq.T) + MIN_COVAR * np.eye(seq.shape[1])              # (F, F)
    p["covars"] = np.tile(np.diag(cov), (states, 1)) if diag else np.tile(cov, (states, 1, 1))
    return p


# --------------------------------------------------------------------------- the model

class HMM(Classical):
    """Gaussian HMM over image rows. Args: cfg (HMMConfig), shape (C, H, W): H steps of C W-dim emissions."""

    def __init__(self, cfg: HMMConfig, shape):
        super().__init__(cfg, shape)
        if cfg.covariance_type not in ("full", "diag"):
            raise ValueError(f"hmm covariance_type must be 'full' or 'diag', got {cfg.covariance_type!r}")
        if cfg.backend not in ("torch", "hmmlearn"):
            raise ValueError(f"hmm backend must be 'torch' or 'hmmlearn', got {cfg.backend!r}")
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

    @torch.no_grad()
    def fit(self, x, seed):
        cfg, t0 = self.cfg, time.perf_counter()
        y, n = subsample(x, cfg.train_images, seed)                    # (N, D)
        c, h, w = self.shape
        seq = self.rows(torch.from_numpy(y).view(n, c, h, w)).contiguous()  # (N, H, F)
        fit = self._fit_hmmlearn if cfg.backend == "hmmlearn" else self._fit_torch
        history, train_ll, device = fit(seq, seed)
        self.fitted.fill_(True)
        # hmmlearn's monitor also calls reaching n_iter "converged"; report only a gain below tol.
        converged = len(history) >= 2 and history[-1] - history[-2] < cfg.tol
        return {"n_iter": len(history), "converged": bool(converged), "train_images": n,
                "train_log_likelihood_nats": train_ll / n, "fit_seconds": time.perf_counter() - t0,
                "fit_backend": cfg.backend, "device": device}

    def _fit_torch(self, seq, seed):
        cfg, dev = self.cfg, self.means.device
        with blas_threads():                                           # k-means on the CPU, as hmmlearn's
            init = hmmlearn_init(seq.flatten(0, 1).numpy(), cfg.states, self.diag, seed)
        p = {k: torch.as_tensor(v, dtype=torch.float64, device=dev) for k, v in init.items()}
        seq = seq.to(dev)                                               # (N, H, F)
        history = []
        for _ in range(cfg.n_iter):
            st = estep(seq, p, self.diag)
            p = mstep(st, p, self.diag)
            history.append(float(st["log_prob"]))                      # under the parameters before this step
            if len(history) >= 2 and history[-1] - history[-2] < cfg.tol:
                break
        for name in PARAMS:
            getattr(self, name).copy_(p[name])
        return history, float(log_likelihood(seq, p, self.diag).sum()), device_name(dev)

    def _fit_hmmlearn(self, seq, seed):
        from hmmlearn.hmm import GaussianHMM

        cfg, (n, h, f) = self.cfg, seq.shape
        frames, lengths = seq.reshape(n * h, f).numpy(), [h] * n       # (N H, F)
        with blas_threads():
            hm = GaussianHMM(cfg.states, covariance_type=cfg.covariance_type, n_iter=cfg.n_iter, tol=cfg.tol,
                             random_state=seed).fit(frames, lengths)
            train_ll = hm.score(frames, lengths)
        covars = hm.covars_ if not self.diag else np.diagonal(hm.covars_, axis1=1, axis2=2)
        for name, value in zip(PARAMS, [hm.startprob_, hm.transmat_, hm.means_, covars]):
            getattr(self, name).copy_(torch.tensor(np.asarray(value, dtype=np.float64)))
        return list(hm.monitor_.history), float(train_ll), device_name(torch.device("cpu"))
