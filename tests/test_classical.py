"""The classical background models (GMM on PCA, row HMM): their torch densities against
scikit-learn's and hmmlearn's, checkpoints that load into a fresh model, and bits/dim on real
Fashion-MNIST test images."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm
from threadpoolctl import threadpool_limits

from genreview.data import to_unit
from genreview.models.likelihood import bits_per_dim, dequantize
from genreview.models import GMM, HMM, GMMConfig, HMMConfig

from conftest import SHAPE

D = math.prod(SHAPE)
SEED = 3


def _small_gmm(covariance="full") -> GMMConfig:
    return GMMConfig(components=4, pca_dim=16, covariance=covariance, max_iter=50, train_images=500)


def _small_hmm(covariance_type="diag") -> HMMConfig:
    return HMMConfig(states=4, covariance_type=covariance_type, n_iter=5, train_images=300)


def _fit_data(split, n: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """n images in [0, 1] and the dequantised copy fit() makes of them when train_images = 0
    (no subsampling: the seeded generator's first use is the dequantisation). (N, C, H, W), (N, D)."""
    x = to_unit(split.images[:n])
    y = dequantize(x, torch.Generator().manual_seed(seed))
    return x, y.flatten(1).double().numpy()


@pytest.fixture(scope="module", autouse=True)
def _one_blas_pool():
    """The oracle fits use NumPy's BLAS with as many threads as torch (conftest: one), as fit() does:
    spare BLAS threads spinning on a loaded machine make a two-second fit take minutes."""
    with threadpool_limits(limits=torch.get_num_threads()):
        yield


@pytest.fixture(scope="module")
def fitted_gmm(small_train):
    model = GMM(_small_gmm(), SHAPE)
    stats = model.fit(to_unit(small_train.images), seed=SEED)
    return model, stats


@pytest.fixture(scope="module")
def fitted_hmm(small_train):
    model = HMM(_small_hmm(), SHAPE)
    stats = model.fit(to_unit(small_train.images), seed=SEED)
    return model, stats


# --------------------------------------------------------------------------- oracles

@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_gmm_density_matches_sklearn(covariance, small_train, test_split):
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    cfg = _small_gmm(covariance)
    x, y = _fit_data(small_train, cfg.train_images, SEED)
    model = GMM(GMMConfig(**{**vars(cfg), "train_images": 0}), SHAPE)
    stats = model.fit(x, seed=SEED)

    pca = PCA(n_components=cfg.pca_dim, random_state=SEED).fit(y)
    gm = GaussianMixture(cfg.components, covariance_type=covariance, max_iter=cfg.max_iter, tol=cfg.tol,
                         reg_covar=cfg.reg_covar, random_state=SEED).fit(pca.transform(y))

    def oracle(yy):  # (B, D) -> (B,): mixture on the PCA coordinates + isotropic residual on the rest
        z = pca.transform(yy)
        sd = math.sqrt(pca.noise_variance_)
        r = yy - pca.inverse_transform(z)                    # in the D - d discarded directions
        residual = norm.logpdf(r, scale=sd).sum(1) - norm.logpdf(np.zeros(cfg.pca_dim), scale=sd).sum()
        return gm.score_samples(z) + residual

    yt = dequantize(to_unit(test_split.images[:64]), torch.Generator().manual_seed(1))
    for yy in (torch.from_numpy(y[:64]).view(-1, *SHAPE), yt):
        ours = model.log_density(yy).numpy()
        ref = oracle(yy.flatten(1).double().numpy())
        np.testing.assert_allclose(ours, ref, rtol=1e-6, err_msg=f"GMM ({covariance}) log-density != sklearn")
    assert stats["n_iter"] == gm.n_iter_ and stats["converged"] == gm.converged_
    assert stats["train_images"] == cfg.train_images
    assert stats["train_log_likelihood_nats"] == pytest.approx(oracle(y).mean(), rel=1e-6)


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_hmm_density_matches_hmmlearn(covariance_type, small_train, test_split):
    from hmmlearn.hmm import GaussianHMM

    cfg = _small_hmm(covariance_type)
    x, y = _fit_data(small_train, cfg.train_images, SEED)
    model = HMM(HMMConfig(**{**vars(cfg), "train_images": 0}), SHAPE)
    stats = model.fit(x, seed=SEED)

    c, h, w = SHAPE
    seq = y.reshape(-1, c, h, w).transpose(0, 2, 1, 3).reshape(-1, c * w)  # rows of every image, (N H, C W)
    hm = GaussianHMM(cfg.states, covariance_type=covariance_type, n_iter=cfg.n_iter, tol=cfg.tol,
                     random_state=SEED).fit(seq, [h] * len(y))

    yt = dequantize(to_unit(test_split.images[:16]), torch.Generator().manual_seed(1))
    for yy in (torch.from_numpy(y[:16]).view(-1, *SHAPE), yt):
        ours = model.log_density(yy).numpy()
        rows = yy.double().numpy().transpose(0, 2, 1, 3).reshape(len(yy), h, c * w)
        ref = np.array([hm.score(r) for r in rows])           # one sequence at a time
        np.testing.assert_allclose(ours, ref, rtol=1e-6, err_msg=f"HMM ({covariance_type}) log-density != hmmlearn")
    assert stats["n_iter"] == hm.monitor_.iter
    assert stats["train_log_likelihood_nats"] == pytest.approx(hm.score(seq, [h] * len(y)) / len(y), rel=1e-6)


# --------------------------------------------------------------------------- checkpoints and sampling

@pytest.mark.parametrize("name", ["gmm", "hmm"])
def test_state_dict_round_trip(name, fitted_gmm, fitted_hmm, test_split):
    model, _ = fitted_gmm if name == "gmm" else fitted_hmm
    fresh = type(model)(model.cfg, SHAPE)
    assert not bool(fresh.fitted), f"{name}: a freshly built model claims to be fitted"
    fresh.load_state_dict(model.state_dict())
    assert bool(fresh.fitted), f"{name}: the fitted flag did not survive the state_dict"

    x = to_unit(test_split.images[:32])
    lp = model.log_prob(x, generator=torch.Generator().manual_seed(5))
    lp_fresh = fresh.log_prob(x, generator=torch.Generator().manual_seed(5))
    assert torch.equal(lp, lp_fresh), f"{name}: log_prob differs after load_state_dict"
    s = model.sample(8, generator=torch.Generator().manual_seed(5))
    s_fresh = fresh.sample(8, generator=torch.Generator().manual_seed(5))
    assert torch.equal(s, s_fresh), f"{name}: samples differ after load_state_dict"


@pytest.mark.parametrize("name", ["gmm", "hmm"])
def test_samples_and_interface(name, fitted_gmm, fitted_hmm, small_train):
    model, stats = fitted_gmm if name == "gmm" else fitted_hmm
    assert model.classical and model.likelihood == "bound" and model.likelihood_note
    assert model.nfe == (1 if name == "gmm" else SHAPE[1])
    for key in ("n_iter", "converged", "train_images", "train_log_likelihood_nats"):
        assert key in stats, f"{name}.fit() returned no {key!r}: {stats}"
    assert stats["train_images"] == model.cfg.train_images

    n = 6
    s1 = model.sample(n, generator=torch.Generator().manual_seed(7))
    s2 = model.sample(n, generator=torch.Generator().manual_seed(7))
    s3 = model.sample(n, generator=torch.Generator().manual_seed(8))
    assert s1.shape == (n, *SHAPE) and s1.dtype == torch.float32
    assert s1.min() >= 0 and s1.max() <= 1, f"{name}: samples span [{s1.min():.3g}, {s1.max():.3g}]"
    assert torch.equal(s1, s2), f"{name}: sampling with the same generator seed is not reproducible"
    assert not torch.equal(s1, s3), f"{name}: different seeds gave the same samples"
    assert model.sample(2).shape == (2, *SHAPE)  # generator=None uses the global RNG

    x = to_unit(small_train.images[:8])
    loss = model.loss(x)["loss"]
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_bad_configs_are_errors():
    with pytest.raises(ValueError, match="covariance"):
        GMM(GMMConfig(covariance="tied"), SHAPE)
    with pytest.raises(ValueError, match="pca_dim"):
        GMM(GMMConfig(pca_dim=D), SHAPE)
    with pytest.raises(ValueError, match="covariance_type"):
        HMM(HMMConfig(covariance_type="spherical"), SHAPE)


# --------------------------------------------------------------------------- bits/dim

@pytest.mark.parametrize("name", ["gmm", "hmm"])
def test_bits_per_dim_beats_the_unfitted_model(name, fitted_gmm, fitted_hmm, test_split):
    model, _ = fitted_gmm if name == "gmm" else fitted_hmm
    unfitted = type(model)(model.cfg, SHAPE)                 # the isotropic Gaussian N(1/2, 1/12 I)
    x = to_unit(test_split.images[:256])
    g = torch.Generator().manual_seed(0)
    lp = model.log_prob(x, generator=g)
    assert lp.shape == (len(x),) and torch.isfinite(lp).all()
    bpd = float(bits_per_dim(lp.double().mean(), D))
    bpd_unfitted = float(bits_per_dim(unfitted.log_prob(x, generator=g).double().mean(), D))
    # beats uniform noise (8 bits/dim) and, by over a bit/dim, the isotropic Gaussian it starts from (about 9);
    # the small GMM is held back by its isotropic residual on 768 of the 784 directions (about 7.3 bits/dim)
    assert 0 < bpd < 7.6, f"{name}: {bpd:.3f} bits/dim on test images"
    assert bpd < bpd_unfitted - 1, f"{name}: fitted {bpd:.3f} vs unfitted {bpd_unfitted:.3f} bits/dim"
