"""The statistics behind every verdict (genreview.summary.inference), checked as oracles on synthetic
seeds: identical models are rarely called different, clearly different ones are called right, the
interval covers the true effect about 95% of the time, and Benjamini-Hochberg matches scipy and the
textbook example."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from genreview.summary import inference as I
from genreview.summary.stats import stat

CFG = I.InferenceConfig(n_boot=500)
REPS = 200


def _judge(a, b, metric="fd", claimed="lower", seed=0):
    cfg = I.InferenceConfig(n_boot=CFG.n_boot, seed=seed)
    e = I.effect(stat(a), stat(b), metric, cfg)
    return e, I.verdict(e, claimed, I.margin_of(e, metric, cfg.margin, float(np.mean(b))), cfg.alpha)[0]


@pytest.mark.parametrize("n", [3, 5])
def test_identical_models_are_rarely_called_different(n):
    """Same distribution on both sides: supported + contradicted at most about alpha (5%) of the time.
    Tolerance: 200 repetitions give a binomial sd of 1.5 points at 5%, so the bound is 9%."""
    rng = np.random.default_rng(n)
    kinds = [_judge(rng.normal(10, 1, n), rng.normal(10, 1, n), seed=r)[1] for r in range(REPS)]
    wrong = sum(k in ("supported", "contradicted") for k in kinds) / REPS
    assert wrong <= 0.09, f"{wrong:.3f} of identical pairs called different"


def test_the_tail_share_of_raw_replicates_would_not_do():
    """Why the p-value is Student's on the bootstrap's standard error: the tail share of the raw seed
    replicates (2 * min(P(d <= 0), P(d >= 0))) calls identical models with three seeds different far
    more often than 5% of the time."""
    rng = np.random.default_rng(3)
    hits = 0
    for r in range(REPS):
        g = np.random.default_rng(r)
        d = np.log(I.seed_replicates(rng.normal(10, 1, 3), 500, g) / I.seed_replicates(rng.normal(10, 1, 3), 500, g))
        hits += max(2 * min((d <= 0).mean(), (d >= 0).mean()), 1 / 500) < 0.05
    assert hits / REPS > 0.12


def test_clearly_different_models_are_called_right():
    rng = np.random.default_rng(7)
    for claimed, want in (("lower", "supported"), ("higher", "contradicted")):
        kinds = [_judge(rng.normal(10, 1, 3), rng.normal(15, 1, 3), claimed=claimed, seed=r)[1] for r in range(50)]
        assert sum(k == want for k in kinds) >= 48, kinds
    # precision, a bounded metric: compared by its difference
    e, kind = _judge([0.50, 0.52, 0.49], [0.70, 0.71, 0.69], "precision", claimed="lower")
    assert e.scale == "difference" and kind == "supported" and e.estimate == pytest.approx(-0.1967, abs=1e-3)


@pytest.mark.parametrize("n", [3, 5])
def test_the_interval_covers_the_true_log_ratio(n):
    """Coverage of log(12 / 10) by the 95% interval over 400 repetitions: within [0.91, 0.99] (a binomial
    sd of 1.1 points; the Welch degrees of freedom make the interval slightly conservative)."""
    rng = np.random.default_rng(100 + n)
    truth = math.log(12.0 / 10.0)
    hits = 0
    for r in range(400):
        e, _ = _judge(rng.normal(12, 1, n), rng.normal(10, 1, n), seed=r)
        hits += e.lo <= truth <= e.hi
    assert 0.91 <= hits / 400 <= 0.99, hits / 400


def test_one_seed_gives_no_interval_unless_replicates_come_with_it():
    e, kind = _judge([10.0], [20.0])
    assert (e.lo, e.hi, e.p, kind, e.reason) == (None, None, None, "inconclusive", "one seed")
    # a two-level bootstrap's replicates of the seed mean (samples within the seed resampled) give one
    rng = np.random.default_rng(0)
    a, b = stat([10.0], replicates=rng.normal(10, 0.2, 500)), stat([20.0], replicates=rng.normal(20, 0.2, 500))
    e = I.effect(a, b, "fd", CFG)
    assert e.df == math.inf and e.lo < math.log(0.5) < e.hi and e.p < 1e-6


def test_a_fixed_reference_and_the_scale_of_each_metric():
    e = I.effect(stat([1.0, 1.2, 1.1]), 2.0, "sample_ms_per_image", CFG)
    assert e.n_b is None and e.df == pytest.approx(2) and e.hi < 0
    assert I.scale_of("fd", [1.0], [2.0]) == "log_ratio" and I.scale_of("recall", [0.1], [0.2]) == "difference"
    assert I.scale_of("kid", [0.01, -0.001], [0.02]) == "difference", "a non-positive value has no log ratio"
    assert I.margin_of(I.effect(stat([1.0]), stat([1.0]), "fd"), "fd", 0.1, 1.0) == pytest.approx(math.log(1.1))
    with pytest.raises(KeyError, match="METRICS"):
        I.metric("sharpnes")


def test_equivalence_needs_the_whole_interval_inside_the_margin():
    e = I.Effect("log_ratio", 0.01, -0.05, 0.07, 0.03, 4, 0.7, 3, 3)
    assert I.verdict(e, "lower", math.log(1.1), 0.05) == ("equivalent", None)
    wide = I.Effect("log_ratio", 0.01, -0.2, 0.2, 0.1, 4, 0.9, 3, 3)
    assert I.verdict(wide, "lower", math.log(1.1), 0.05) == ("inconclusive", "interval includes no difference")
    decisive = I.Effect("log_ratio", -0.5, -0.7, -0.3, 0.1, 4, 0.004, 3, 3)
    assert I.verdict(decisive, "lower", math.log(1.1), 0.05) == ("supported", None)
    assert I.verdict(decisive, "higher", math.log(1.1), 0.05) == ("contradicted", None)
    assert I.verdict(decisive, None, math.log(1.1), 0.05) == ("different", None)
    assert I.verdict(decisive, "lower", math.log(1.1), 0.05, p_adj=0.08) == \
        ("inconclusive", "not significant after correction")


def test_benjamini_hochberg_matches_scipy_and_the_textbook():
    # m = 4: sorted 0.005, 0.01, 0.03, 0.04 -> 0.02, 0.02, 0.04, 0.04 (p * m / rank, then the running minimum)
    assert I.bh_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    p = np.random.default_rng(0).uniform(0, 0.2, 38)
    assert I.bh_adjust(p) == pytest.approx(list(sps.false_discovery_control(p, method="bh")))
    assert I.bh_adjust([]) == []


def test_the_settings_keep_their_bounds():
    assert I.InferenceConfig.from_mapping({"margin": 0.2, "alpha": 0.1}, "x").margin == 0.2
    for bad in ({"alpha": 0}, {"margin": -1}, {"n_boot": 10}, {"alpha": "5%"}, {"n_boot": 1000.5}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            I.InferenceConfig.from_mapping(bad, "paper/claims.yaml")
