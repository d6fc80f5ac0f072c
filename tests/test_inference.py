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


# --------------------------------------------------------------------------- the two-level bootstrap

def test_fd_inf_replicates_are_the_fds_of_resampled_sets():
    """Each replicate is the FD of a resample of the samples (found in one batch from multinomial counts),
    centred on the run's FD_inf: the difference of two replicates equals the difference of the FDs of the
    same two resamples computed one at a time by `frechet_distance`."""
    import torch
    from genreview.evaluation.metrics import fd_inf_replicates, frechet_distance, gaussian, psd_sqrt

    rng = np.random.default_rng(0)
    x, real = rng.normal(0.2, 1.1, (300, 8)), rng.normal(0, 1, (2000, 8))
    rm, rc = gaussian(real)
    r = psd_sqrt(rc)
    reps = fd_inf_replicates(x, rm, r, rc, fd_inf=3.0, n_boot=2, seed=5)
    idx = torch.randint(300, (2, 300), generator=torch.Generator().manual_seed(5)).numpy()
    fds = [frechet_distance(*gaussian(x[i]), rm, rc, sqrt_cov2=r) for i in idx]
    assert np.mean(reps) == pytest.approx(3.0) and reps[0] - reps[1] == pytest.approx(fds[0] - fds[1], rel=1e-9)
    assert fd_inf_replicates(x, rm, r, rc, fd_inf=3.0, n_boot=0, seed=5) == []


def test_fd_inf_replicates_spread_like_fresh_sets_of_samples():
    """The oracle is the model itself: the spread of FD_inf over 60 fresh sets of N samples from the same
    Gaussian against the spread of the replicates of one set; the bootstrap's standard deviation is within
    0.7-1.4 times the fresh sets' (measured 0.94-1.04 here)."""
    from genreview.evaluation.metrics import fd_inf_replicates, fd_infinity, gaussian, psd_sqrt

    rng = np.random.default_rng(0)
    f, n = 32, 600
    a = rng.normal(size=(f, f)) / np.sqrt(f)
    rm, rc = gaussian(rng.normal(size=(5000, f)) @ a)
    r = psd_sqrt(rc)

    def draw():
        return (rng.normal(size=(n, f)) + 0.3) @ a * 1.1

    fresh = np.std([fd_infinity(draw(), rm, rc, 0, sqrt_real_cov=r)["fd_inf"] for _ in range(60)], ddof=1)
    for s in range(2):
        boot = np.std(fd_inf_replicates(draw(), rm, r, rc, 1.0, 300, s), ddof=1)
        assert 0.7 * fresh <= boot <= 1.4 * fresh, (boot, fresh)


def _two_level_side(rng, mu, n, sd_seed, sd_sample, m=100):
    """n seeds of a model whose seed means spread by sd_seed and whose estimates carry sampling noise
    sd_sample; each seed's replicates over its samples spread as its sampling noise (centred on it)."""
    vals = mu + rng.normal(0, sd_seed, n) + rng.normal(0, sd_sample, n)
    within = [v + rng.normal(0, sd_sample, m) for v in vals]
    return vals, within


@pytest.mark.parametrize("n", [3, 5])
@pytest.mark.parametrize("sd_seed, sd_sample, widest", [(0.6, 0.8, 1.4), (1.0, 0.2, 1.05)])
def test_two_level_intervals_cover_and_rarely_call_identical_models_different(n, sd_seed, sd_sample, widest):
    """Two-level replicates (seeds, then samples within a seed) through the engine, over 300 repetitions:
    coverage of the true log ratio within [0.93, 1.0], identical models called different at most at the
    nominal rate, and the interval on average no narrower than the seeds' alone. Where the spread between
    seeds dominates, the sampling level adds almost nothing (mean width within 1.05 of the seeds-only
    interval: the seed level is shrunk, so the sampling noise is not counted twice); where sampling noise
    dominates, the interval is wider, since Student's t on n - 1 degrees of freedom is then applied to a
    variance that the samples pin down better (measured: coverage 0.98-1.0, width 1.16-1.29x)."""
    from genreview.summary.stats import two_level

    rng = np.random.default_rng(200 + n)
    cfg = I.InferenceConfig(n_boot=400)
    truth, hits, wrong, wider = math.log(12 / 10), 0, 0, []

    def side(mu):
        return _two_level_side(rng, mu, n, sd_seed, sd_sample)

    for r in range(300):
        (va, wa), (vb, wb) = side(12), side(10)
        e = I.effect(stat(va, two_level(va, wa, 400, r)), stat(vb, two_level(vb, wb, 400, r + 1)), "fd", cfg)
        hits += e.lo <= truth <= e.hi
        plain = I.effect(stat(va), stat(vb), "fd", cfg)
        wider.append((e.hi - e.lo) / (plain.hi - plain.lo))
        (va, wa), (vb, wb) = side(10), side(10)
        e = I.effect(stat(va, two_level(va, wa, 400, r)), stat(vb, two_level(vb, wb, 400, r + 1)), "fd", cfg)
        wrong += I.verdict(e, "lower", I.margin_of(e, "fd", 0.0, 10.0), cfg.alpha)[0] in ("supported", "contradicted")
    assert 0.93 <= hits / 300 <= 1.0, hits / 300
    assert wrong / 300 <= 0.09, wrong / 300
    assert 0.97 <= np.mean(wider) <= widest, np.mean(wider)


def test_two_level_needs_two_seeds_and_every_seeds_replicates():
    from genreview.summary.collect import seed_stat
    from genreview.summary.stats import two_level

    assert two_level([1.0], [[1.0, 1.1]]) is None
    assert two_level([1.0, 2.0], [[1.0, 1.1], []]) is None
    reps = two_level([1.0, 3.0], [[1.0] * 5, [3.0] * 5], n_boot=4000, seed=0)
    assert len(reps) == 4000 and set(np.round(reps, 9)) == {1.0, 2.0, 3.0}
    assert np.mean(reps) == pytest.approx(2, abs=0.05)
    runs = [{"fd_inf": 2.0, "fd_inf_boot": [2.0, 2.2]}, {"fd_inf": 3.0, "fd_inf_boot": [3.1, 2.9]}]
    st = seed_stat(runs, "fd_inf")
    assert st["n"] == 2 and len(st["replicates"]) == 2000 and "replicates" not in seed_stat(runs, "fd")
    assert "replicates" not in seed_stat(runs[:1], "fd_inf")  # one seed: no spread between seeds to resample
    assert "replicates" not in seed_stat([runs[0], {"fd_inf": 3.0}], "fd_inf")  # a seed without replicates
