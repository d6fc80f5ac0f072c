"""The evaluation protocol: distances in the domain classifier's feature space separate real
images from noise, and the prdc wrapper passes each k to the right metric."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from genreview.evaluation.metrics import EvalConfig, Reference, features, prdc, uniform_noise

pytestmark = pytest.mark.filterwarnings("ignore:Metric .* will save all extracted features:UserWarning")

N = 300  # images per side: enough to separate real from noise by orders of magnitude, still fast


@pytest.fixture(scope="module")
def eval_cfg():
    return EvalConfig(n_samples=N, n_reference=N, kid_subset_size=50, kid_subsets=10, is_splits=5)


@pytest.fixture(scope="module")
def real_test(test_split):
    g = torch.Generator().manual_seed(0)
    return test_split.images[torch.randperm(len(test_split), generator=g)[:N]]


@pytest.fixture(scope="module")
def real_train(train_split):
    g = torch.Generator().manual_seed(1)
    return train_split.images[torch.randperm(len(train_split), generator=g)[:N]]


@pytest.fixture(scope="module")
def reference(tiny_classifier, real_test, eval_cfg):
    clf, _ = tiny_classifier
    return Reference.from_images(clf, real_test, eval_cfg)


@pytest.fixture(scope="module")
def scores(reference, real_test, real_train):
    return {"self": reference.score(real_test), "train": reference.score(real_train),
            "noise": reference.score(uniform_noise(N, (1, 28, 28), seed=3))}


def test_tiny_classifier_learned(tiny_classifier):
    clf, info = tiny_classifier
    assert info["steps"] == 100, info
    assert info["test_accuracy"] > 0.6, f"the tiny judge is near chance: test accuracy {info['test_accuracy']:.3f}"
    assert not clf.training and not any(p.requires_grad for p in clf.parameters()), "a loaded judge must be frozen"


def test_fd_of_a_set_with_itself_is_zero(scores):
    fd = scores["self"]["fd"]
    assert abs(fd) < 1e-2 * scores["train"]["fd"] + 1e-3, f"FD(test, test) = {fd:.4g}, expected ~0"
    # KID is an unbiased estimate over random subsets: ~0 within its own spread.
    kid, kid_std = scores["self"]["kid"], scores["self"]["kid_std"]
    assert abs(kid) <= 2 * kid_std, f"KID(test, test) = {kid:.3g} +- {kid_std:.3g}, expected ~0"
    assert scores["self"]["precision"] == 1.0 and scores["self"]["recall"] == 1.0


def test_real_images_score_far_better_than_noise(scores):
    real, noise = scores["train"], scores["noise"]
    assert real["fd"] > 0, "a different real sample should not coincide with the reference"
    assert noise["fd"] > 10 * real["fd"], f"FD(train, test) = {real['fd']:.3g} vs FD(noise, test) = {noise['fd']:.3g}"
    real_kid = abs(real["kid"]) + real["kid_std"]
    assert noise["kid"] > 5 * real_kid, (
        f"KID real {real['kid']:.3g} +- {real['kid_std']:.3g} vs noise {noise['kid']:.3g}")
    assert real["is"] > noise["is"], f"IS of real images {real['is']:.3g} not above noise {noise['is']:.3g}"


def test_precision_recall(scores):
    real, noise = scores["train"], scores["noise"]
    assert real["precision"] > 0.6 and real["recall"] > 0.6, f"real vs real: {real}"
    assert real["coverage"] > 0.6 and real["density"] > 0.5, f"real vs real: {real}"
    assert noise["recall"] < 0.05 and noise["coverage"] < 0.05, f"noise: {noise}"
    assert noise["density"] < 0.6 * real["density"], (
        f"density: real {real['density']:.3g}, noise {noise['density']:.3g}")
    # Not asserted: precision of noise. Uniform noise collapses to one small region of the feature
    # space that lies inside the k-NN balls of a few real outliers, so Kynkaanniemi et al.'s precision
    # can be high for it (0.8 here, 0.99 with the small profile's judge); density is the robust one.
    assert real["n"] == N


def test_score_is_reproducible(reference, real_train):
    a, b = reference.score(real_train), reference.score(real_train)
    assert a == b, "scoring the same images twice gave different numbers (KID subsets / IS splits not seeded)"


def test_features_shape(tiny_classifier, real_test):
    clf, _ = tiny_classifier
    f = features(clf, real_test[:10])
    assert f.shape == (10, clf.num_features) and torch.isfinite(f).all()


# --------------------------------------------------------------------------- prdc wrapper

@pytest.fixture(scope="module")
def two_clouds():
    rng = np.random.default_rng(0)
    real = rng.normal(0, 1, (200, 8)).astype(np.float32)
    fake = rng.normal(0.6, 0.6, (150, 8)).astype(np.float32)
    return real, fake


def _ref(real, fake, k):
    from prdc import compute_prdc
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        return compute_prdc(real, fake, nearest_k=k)


def test_prdc_uses_pr_k_for_precision_recall_and_dc_k_for_density_coverage(two_clouds):
    real, fake = two_clouds
    r3, r5 = _ref(real, fake, 3), _ref(real, fake, 5)
    # The two k really give different numbers here, so a swapped k would be caught.
    assert r3["precision"] != r5["precision"] and r3["coverage"] != r5["coverage"]
    got = prdc(real, fake, pr_k=3, dc_k=5)
    assert got == pytest.approx({"precision": r3["precision"], "recall": r3["recall"],
                                 "density": r5["density"], "coverage": r5["coverage"]})
    got = prdc(real, fake, pr_k=5, dc_k=3)
    assert got == pytest.approx({"precision": r5["precision"], "recall": r5["recall"],
                                 "density": r3["density"], "coverage": r3["coverage"]})
    same = prdc(real, fake, pr_k=4, dc_k=4)
    r4 = _ref(real, fake, 4)
    assert same == pytest.approx({k: float(r4[k]) for k in ("precision", "recall", "density", "coverage")})
    assert all(isinstance(v, float) for v in got.values()), "prdc must return plain floats (JSON)"


def test_prdc_argument_order(two_clouds):
    """Precision asks whether fakes lie on the real manifold; recall the reverse: swapping sides swaps them."""
    real, fake = two_clouds
    a, b = prdc(real, fake, 3, 3), prdc(fake, real, 3, 3)
    assert a["precision"] != a["recall"]
    assert a["precision"] == pytest.approx(b["recall"]) and a["recall"] == pytest.approx(b["precision"])


def test_inception_fid_when_weights_are_configured(tiny_classifier, real_test, tmp_path, monkeypatch):
    """With eval.inception_weights set, the protocol adds torchmetrics' Inception FID. Real weights
    cannot be downloaded here, so a randomly initialised InceptionV3 state dict stands in for them:
    this checks the code path (loading, grey-to-RGB, scoring), not the number."""
    fe = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")
    with monkeypatch.context() as mp:  # build an InceptionV3 without its download, and save its weights
        mp.setattr(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None)
        mp.setattr(fe, "load_state_dict_from_url", lambda *a, **k: {})
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    weights = tmp_path / "inception.pth"
    torch.save(net.state_dict(), weights)
    clf, _ = tiny_classifier
    cfg = EvalConfig(n_samples=8, n_reference=8, kid_subset_size=4, kid_subsets=2, is_splits=2,
                     inception_weights=str(weights))
    ref = Reference.from_images(clf, real_test[:8], cfg)
    out = ref.score(real_test[:8])
    assert "fid_inception" in out and abs(out["fid_inception"]) < 1e-2, out.get("fid_inception")
    noisy = ref.score(uniform_noise(8, (1, 28, 28), seed=0))
    assert noisy["fid_inception"] > out["fid_inception"], "Inception FD of noise should exceed that of the real set"


def test_missing_inception_weights_is_a_clear_error(tmp_path):
    from genreview.evaluation.metrics import InceptionWeightsMissing, check_inception_weights
    with pytest.raises(InceptionWeightsMissing, match="eval.inception_weights"):
        check_inception_weights(str(tmp_path / "nope.pth"))
    check_inception_weights(None)  # not configured: nothing to check


# --------------------------------------------------------------------------- FD and its extrapolation to N = infinity

def test_frechet_distance_equals_torchmetrics_fd(tiny_classifier, reference, scores, real_test, real_train):
    """Oracle: our Frechet distance on the classifier's features, at the full N, is torchmetrics' FD."""
    from genreview.evaluation.metrics import fd_curve, frechet_distance, gaussian

    clf, _ = tiny_classifier
    real = gaussian(features(clf, real_test).numpy())
    for name, fake in (("train", real_train), ("noise", uniform_noise(N, (1, 28, 28), seed=3))):
        feats = features(clf, fake).numpy()
        ours = frechet_distance(*gaussian(feats), *real)
        assert ours == pytest.approx(scores[name]["fd"], rel=1e-4, abs=1e-4), (name, ours, scores[name]["fd"])
        # fd_infinity's curve at N, against the reference statistics Reference keeps, is the same number
        at_n = fd_curve(feats, reference.real_mean, reference.real_cov, [N], seed=0)[0]
        assert at_n == pytest.approx(scores[name]["fd"], rel=1e-4, abs=1e-4), (name, at_n)
    assert np.isfinite(scores["train"]["fd_inf"]) and scores["noise"]["fd_inf"] > 10 * abs(scores["train"]["fd_inf"])


def test_frechet_distance_closed_form():
    """Against scipy's matrix square root for covariances that do not commute, and the closed form
    |m1 - m2|^2 + sum (s1 - s2)^2 for diagonal ones."""
    from scipy.linalg import sqrtm
    from genreview.evaluation.metrics import frechet_distance

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    c1, c2 = a @ a.T + 0.1 * np.eye(6), b @ b.T + 0.1 * np.eye(6)
    m1, m2 = rng.normal(size=6), rng.normal(size=6)
    want = float((m1 - m2) @ (m1 - m2) + np.trace(c1 + c2 - 2 * sqrtm(c1 @ c2).real))
    assert frechet_distance(m1, c1, m2, c2) == pytest.approx(want, rel=1e-8)
    s1, s2 = np.array([1.0, 2.0, 0.5]), np.array([1.5, 1.0, 0.5])
    assert frechet_distance(np.ones(3), np.diag(s1 ** 2), np.zeros(3), np.diag(s2 ** 2)) == pytest.approx(
        3 + ((s1 - s2) ** 2).sum(), rel=1e-10)


def _fds(shift: float, seeds, d: int = 32, n: int = 1000):
    """(FD_N, FD_inf) of n samples of N(shift e_1, I) against the exact N(0, I), for each seed."""
    from genreview.evaluation.metrics import fd_infinity, frechet_distance, gaussian

    m = np.zeros(d)
    m[0] = shift
    out = []
    for seed in seeds:
        x = np.random.default_rng(seed).normal(size=(n, d)) + m
        out.append((frechet_distance(*gaussian(x), np.zeros(d), np.eye(d)),
                    fd_infinity(x, np.zeros(d), np.eye(d), seed=0)["fd_inf"]))
    return np.array(out)


def test_fd_infinity_removes_the_finite_sample_bias():
    """Chong and Forsyth (2020): FD_N overestimates the distance by about k/N; the extrapolation to 1/N = 0
    recovers it. Equal Gaussians (true FD 0): every FD_N is clearly positive, every FD_inf near 0. Means
    one unit apart (true FD 1): FD_N above 1 on average by the bias, FD_inf within a quarter of it."""
    same = _fds(0.0, range(4))
    assert (same[:, 0] > 0.2).all(), same
    assert (np.abs(same[:, 1]) < 0.15 * same[:, 0]).all(), f"FD_inf of equal Gaussians: {same[:, 1]}"
    apart = _fds(1.0, range(6))
    bias = apart[:, 0].mean() - 1.0
    assert (apart[:, 0] > 1.0).all() and bias > 0.2, apart
    assert abs(apart[:, 1].mean() - 1.0) < 0.25 * bias, f"mean FD_inf {apart[:, 1].mean():.3f}, true 1, bias {bias:.3f}"


def test_fd_infinity_is_deterministic_and_needs_enough_samples():
    from genreview.evaluation.metrics import FD_INF_PER_DIM, fd_infinity, fd_sizes

    x = np.random.default_rng(0).normal(size=(400, 8))
    a, b = (fd_infinity(x, np.zeros(8), np.eye(8), seed=5) for _ in range(2))
    assert a == b and a["fd_inf_slope"] > 0, a
    assert fd_infinity(x, np.zeros(8), np.eye(8), seed=6)["fd_inf"] != a["fd_inf"], "the seed picks the subsets"
    sizes = fd_sizes(2000, 128)
    assert sizes[-1] == 2000 and sizes[0] == 2 * 128 and len(sizes) == 15
    assert np.allclose(np.diff(1 / sizes), np.diff(1 / sizes)[0], rtol=0.05, atol=2e-6), "not even in 1/N"
    few = np.random.default_rng(0).normal(size=(FD_INF_PER_DIM * 8 - 1, 8))
    assert fd_infinity(few, np.zeros(8), np.eye(8), seed=0) == {"fd_inf": None, "fd_inf_slope": None}


# --------------------------------------------------------------------------- one pass, one reference

@pytest.mark.parametrize("pr_k,dc_k", [(3, 5), (1, 2), (4, 4)])
def test_prdc_in_torch_equals_the_authors_code(pr_k, dc_k):
    """The one-matrix torch version against `prdc.compute_prdc` (the oracle), with the reference's radii
    computed here or passed in as a Reference keeps them: the same counts, so the same numbers."""
    from genreview.evaluation.metrics import knn_radii
    rng = np.random.default_rng(1)
    real = rng.normal(0, 1, (300, 16)).astype(np.float32)
    fake = rng.normal(0.3, 0.8, (250, 16)).astype(np.float32)
    rp, rd = _ref(real, fake, pr_k), _ref(real, fake, dc_k)
    want = {"precision": rp["precision"], "recall": rp["recall"], "density": rd["density"],
            "coverage": rd["coverage"]}
    for got in (prdc(real, fake, pr_k, dc_k), prdc(real, fake, pr_k, dc_k, knn_radii(real, {pr_k, dc_k}))):
        assert {k: got[k] for k in ("precision", "recall", "coverage")} == \
            {k: float(want[k]) for k in ("precision", "recall", "coverage")}
        assert got["density"] == pytest.approx(float(want["density"]), rel=1e-12)


def test_scores_equal_torchmetrics_on_images(tiny_classifier, reference, real_test, real_train, eval_cfg):
    """FD, KID and IS from the one pass (`embed`, then torchmetrics on the given features) equal
    torchmetrics run on the images with the classifier as its feature extractor (the oracle)."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.inception import InceptionScore
    from torchmetrics.image.kid import KernelInceptionDistance
    from genreview.evaluation.classifier import Features
    from genreview.evaluation.metrics import _batched

    clf, _ = tiny_classifier

    class Logits(torch.nn.Module):
        def forward(self, x):
            return clf(x.float() / 255)

    fid = FrechetInceptionDistance(feature=Features(clf))
    kid = KernelInceptionDistance(feature=Features(clf), subsets=eval_cfg.kid_subsets,
                                  subset_size=eval_cfg.kid_subset_size)
    inc = InceptionScore(feature=Logits(), splits=eval_cfg.is_splits)
    for b in _batched(real_test):
        fid.update(b, real=True)
        kid.update(b, real=True)
    for b in _batched(real_train):
        fid.update(b, real=False)
        kid.update(b, real=False)
        inc.update(b)
    torch.manual_seed(eval_cfg.seed)  # as Reference.score draws KID's subsets, then IS's permutation
    kid_mean, _ = kid.compute()
    is_mean, _ = inc.compute()
    got = reference.score(real_train)
    assert got["fd"] == pytest.approx(float(fid.compute()), rel=1e-9)
    assert got["kid"] == pytest.approx(float(kid_mean), rel=1e-6)
    assert got["is"] == pytest.approx(float(is_mean), rel=1e-6)


def test_the_classifier_runs_once_per_set_of_images(tiny_classifier, reference, real_train, monkeypatch):
    """Scoring a sample set passes it through the classifier once (FD, KID, IS, precision/recall and the
    class predictions all read that pass), not once per metric."""
    clf, _ = tiny_classifier
    seen = []
    original = type(clf).features
    monkeypatch.setattr(type(clf), "features", lambda self, x: seen.append(len(x)) or original(self, x))
    reference.score(real_train)
    assert sum(seen) == len(real_train), f"the classifier saw {sum(seen)} images for a set of {len(real_train)}"


def test_a_saved_reference_scores_as_the_computed_one(tiny_classifier, reference, real_train, eval_cfg, tmp_path):
    """The `reference` rule's file, loaded by a scoring job, gives the same numbers as a reference computed
    in the job; a file made with another classifier or other reference images is refused, naming the fix."""
    from genreview.files import ResultsFileError
    clf, _ = tiny_classifier
    path = tmp_path / "reference_features.pt"
    selection = {"dataset": "fashion_mnist", "n_reference": N, "seed": eval_cfg.seed}
    reference.write(path, "digest-a", selection)
    loaded = Reference.load(path, clf, eval_cfg, "digest-a", selection)
    assert loaded.score(real_train) == reference.score(real_train)
    assert torch.equal(loaded.predicted, reference.predicted)
    with pytest.raises(ResultsFileError, match="another classifier.*rebuild it with `snakemake"):
        Reference.load(path, clf, eval_cfg, "digest-b", selection)
    with pytest.raises(ResultsFileError, match="another selection of test images"):
        Reference.load(path, clf, eval_cfg, "digest-a", {**selection, "n_reference": 0})


class _NoHead(torch.nn.Module):
    """A feature extractor without class logits (as the label-free judge of evaluation/judges.py): pooled pixels."""

    num_features = 16

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))

    def features(self, x):  # (B, 1, 28, 28) in [0, 1] -> (B, 16)
        return torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1) * self.scale


def test_a_reference_takes_any_feature_extractor(real_test, real_train, eval_cfg, tmp_path):
    """Reference and embed take any module with `features` and `num_features`; one without a class head gives
    every metric but the Inception Score, and its saved features load back as the classifier's do."""
    from genreview.evaluation.metrics import embed

    net = _NoHead().eval()
    feats, logits = embed(net, real_test)
    assert feats.shape == (N, 16) and logits is None
    ref = Reference.from_images(net, real_test, eval_cfg)
    assert ref.predicted is None
    same, other = ref.score(real_test), ref.score(real_train)
    assert "is" not in same and {"fd", "fd_inf", "kid", "precision", "recall", "density", "coverage"} <= set(same)
    assert abs(same["fd"]) < 1e-2 * other["fd"] + 1e-6 and same["precision"] == 1.0
    selection = {"dataset": "fashion_mnist", "n_reference": N, "seed": eval_cfg.seed}
    ref.write(tmp_path / "f.pt", "judge-a", selection)
    assert Reference.load(tmp_path / "f.pt", net, eval_cfg, "judge-a", selection).score(real_train) == other
    from genreview.files import ResultsFileError
    with pytest.raises(ResultsFileError, match="the `train_judges` rule"):
        Reference.load(tmp_path / "f.pt", net, eval_cfg, "judge-b", selection, rule="train_judges")
