"""The HMM's Baum-Welch in torch (`genreview.models.hmm`) against hmmlearn's GaussianHMM, the oracle:
the forward pass's log-likelihood and one EM step from the same parameters (both float64 computations of
the same sums, so within 1e-9 relative; they agree to about 1e-14), and a whole fit from the same seed
(the same k-means and Dirichlet draws, hence the same parameters) on real Fashion-MNIST images."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from genreview.data import to_unit
from genreview.models import HMM, HMMConfig
from genreview.models import hmm as H

from conftest import SHAPE

S, T, F, N = 3, 10, 4, 200  # states, sequence length, emission dimension, sequences


@pytest.fixture(scope="module", autouse=True)
def _one_blas_pool():
    with threadpool_limits(limits=torch.get_num_threads()):
        yield


def _sequences() -> np.ndarray:
    """N sequences of T emissions from a 3-state Gaussian HMM with distinct means: (N, T, F)."""
    rng = np.random.default_rng(0)
    trans = np.array([[0.8, 0.15, 0.05], [0.1, 0.7, 0.2], [0.3, 0.0, 0.7]])
    z = np.zeros((N, T), dtype=int)
    z[:, 0] = rng.choice(S, size=N)
    for t in range(1, T):
        z[:, t] = [rng.choice(S, p=trans[k]) for k in z[:, t - 1]]
    means = rng.normal(0, 2, (S, F))
    return means[z] + rng.normal(0, 1, (N, T, F)) * rng.uniform(0.3, 1.5, F)


def _params(covariance_type: str) -> dict:
    """Parameters away from the data's, with a forbidden start state and a forbidden transition (zeros
    that hmmlearn's M-step keeps), float64 numpy."""
    rng = np.random.default_rng(1)
    start = np.array([0.6, 0.4, 0.0])
    trans = rng.dirichlet(np.ones(S), size=S)
    trans[0, 2] = 0
    trans /= trans.sum(1, keepdims=True)
    means = rng.normal(0, 2, (S, F))
    if covariance_type == "diag":
        covars = rng.uniform(0.5, 2.0, (S, F))
    else:
        a = rng.normal(size=(S, F, F))
        covars = a @ a.transpose(0, 2, 1) / F + 0.5 * np.eye(F)
    return {"startprob": start, "transmat": trans, "means": means, "covars": covars}


def _oracle(p: dict, covariance_type: str, **kw):
    from hmmlearn.hmm import GaussianHMM

    hm = GaussianHMM(S, covariance_type=covariance_type, init_params="", **kw)
    hm.startprob_, hm.transmat_, hm.means_, hm.covars_ = p["startprob"], p["transmat"], p["means"], p["covars"]
    return hm


def _torch(p: dict) -> dict:
    return {k: torch.as_tensor(v, dtype=torch.float64) for k, v in p.items()}


def _covars(hm, covariance_type: str) -> np.ndarray:
    return np.diagonal(hm.covars_, axis1=1, axis2=2) if covariance_type == "diag" else hm.covars_


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_forward_log_likelihood_matches_hmmlearn(covariance_type):
    seq, p = _sequences(), _params(covariance_type)
    hm = _oracle(p, covariance_type)
    diag = covariance_type == "diag"
    ours = H.log_likelihood(torch.from_numpy(seq), _torch(p), diag).numpy()            # (N,)
    ref = np.array([hm.score(s) for s in seq])
    np.testing.assert_allclose(ours, ref, rtol=1e-9, err_msg="forward log p(y) != hmmlearn's score")
    total = H.estep(torch.from_numpy(seq), _torch(p), diag)["log_prob"].item()
    assert total == pytest.approx(hm.score(seq.reshape(-1, F), [T] * N), rel=1e-9)


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_one_em_step_matches_hmmlearn(covariance_type):
    seq, p = _sequences(), _params(covariance_type)
    hm = _oracle(p, covariance_type, n_iter=1).fit(seq.reshape(-1, F), [T] * N)
    diag = covariance_type == "diag"
    new = H.mstep(H.estep(torch.from_numpy(seq), _torch(p), diag), _torch(p), diag)
    for name, ref in [("startprob", hm.startprob_), ("transmat", hm.transmat_), ("means", hm.means_),
                      ("covars", _covars(hm, covariance_type))]:
        np.testing.assert_allclose(new[name].numpy(), ref, rtol=1e-9, atol=1e-12,
                                   err_msg=f"{name} after one EM step ({covariance_type}) != hmmlearn's")
    assert new["startprob"][2] == 0 and new["transmat"][0, 2] == 0, "a forbidden state or transition came back"


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_chunks_sum_to_the_whole(covariance_type, monkeypatch):
    seq, p = torch.from_numpy(_sequences()), _torch(_params(covariance_type))
    whole = H.estep(seq, p, covariance_type == "diag")
    monkeypatch.setitem(H.CHUNK_ELEMENTS, "cpu", 7 * T * S * (1 if covariance_type == "diag" else F))
    assert len(H.chunks(seq, S, covariance_type == "diag")) == -(-N // 7)
    parts = H.estep(seq, p, covariance_type == "diag")
    for k, v in whole.items():
        torch.testing.assert_close(parts[k], v, rtol=1e-12, atol=0, msg=f"{k}: chunked E-step != whole")


@pytest.mark.parametrize("covariance_type,n_iter,tol", [("diag", 6, 1e-2), ("full", 4, 1e-2), ("diag", 50, 1e3)])
def test_fit_matches_hmmlearn_fit(covariance_type, n_iter, tol, small_train):
    """The same seed gives the same k-means means and Dirichlet draws, so the torch fit and hmmlearn's reach
    the same parameters (EM from the same start, up to rounding: about 1e-12 relative here, 1e-6 leaves room
    for rounding that EM amplifies) and stop at the same iteration; tol 1e3 stops before n_iter."""
    x = to_unit(small_train.images[:120])
    cfg = HMMConfig(states=S, covariance_type=covariance_type, n_iter=n_iter, tol=tol, train_images=100)
    ours, ref = HMM(cfg, SHAPE), HMM(HMMConfig(**{**vars(cfg), "backend": "hmmlearn"}), SHAPE)
    info, ref_info = ours.fit(x, seed=4), ref.fit(x, seed=4)
    assert info["fit_backend"] == "torch" and ref_info["fit_backend"] == "hmmlearn"
    assert info["device"] and info["train_images"] == 100 and info["fit_seconds"] > 0
    for key in ("n_iter", "converged"):
        assert info[key] == ref_info[key], f"{key}: torch {info[key]} vs hmmlearn {ref_info[key]}"
    assert info["converged"] == (tol > 1)
    assert info["train_log_likelihood_nats"] == pytest.approx(ref_info["train_log_likelihood_nats"], rel=1e-6)
    for name in H.PARAMS:
        np.testing.assert_allclose(getattr(ours, name).numpy(), getattr(ref, name).numpy(), rtol=1e-6, atol=1e-9,
                                   err_msg=f"{name} after the fit ({covariance_type}) != hmmlearn's")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fit_runs_on_the_buffers_device(small_train):
    x = to_unit(small_train.images[:100])
    cfg = HMMConfig(states=S, n_iter=4, train_images=0)
    cpu, gpu = HMM(cfg, SHAPE), HMM(cfg, SHAPE).cuda()
    info = gpu.fit(x, seed=2)
    cpu.fit(x, seed=2)
    assert info["device"] == torch.cuda.get_device_name(gpu.means.device)
    for name in H.PARAMS:
        torch.testing.assert_close(getattr(gpu, name).cpu(), getattr(cpu, name), rtol=1e-9, atol=1e-12)


def test_unknown_backend_is_an_error():
    with pytest.raises(ValueError, match="backend"):
        HMM(HMMConfig(backend="pomegranate"), SHAPE)
