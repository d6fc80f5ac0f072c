"""The GAN section's verdicts follow the numbers: stability, sensitivity, equilibrium and the detach
ablation are read from the short runs and the main runs by stated rules."""
from __future__ import annotations

import pytest

from genreview.publish.formatting import sci
from genreview.publish.verdicts import (COLLAPSE_COVERAGE, COLLAPSE_PRECISION, EQUILIBRIUM_TOL, STARTED,
                                        collapsed, dynamics_study, equilibrium, sensitivity_verdict,
                                        stability_verdict)

FLOOR = {"fd": 1.0, "precision": 0.8, "coverage": 0.9}   # real test images against the reference
CEILING = {"fd": 400.0, "precision": 0.0, "coverage": 0.0}  # uniform noise
LOOKS_REAL_NARROW = {"precision": 0.9, "coverage": 0.1}    # collapse: real-looking, little of the data covered


def _run(kind, seed, fd=None, status="ok", ms=10.0, label=None, precision=0.5, coverage=0.6):
    r = {"label": label or f"{kind}{seed}", "kind": kind, "seed": seed, "status": status, "ms_per_step": ms}
    if status == "ok":
        r.update(fd=fd, precision=precision, coverage=coverage)
    return r


def _summary(**models):
    return {"dynamics": {m: {"model": m, "n": 50, "steps": 300, "runs": runs} for m, runs in models.items()},
            "models": {}, "reference": {"floor": FLOOR, "ceiling": CEILING}}


VAE = [_run("seed", s, 50.0 + s) for s in range(6)] + [_run("draw", 0, 60.0, label="draw0"),
                                                         _run("draw", 0, 70.0, label="draw1")]


def test_collapse_is_real_looking_samples_that_cover_little():
    assert collapsed(LOOKS_REAL_NARROW, FLOOR)
    assert not collapsed({"precision": 0.05, "coverage": 0.02}, FLOOR), "an untrained model has not collapsed"
    assert not collapsed({"precision": 0.7, "coverage": 0.8}, FLOOR), "a good model has not collapsed"
    edge = {"precision": COLLAPSE_PRECISION * FLOOR["precision"], "coverage": COLLAPSE_COVERAGE * FLOOR["coverage"]}
    assert not collapsed(edge, FLOOR) and collapsed({**edge, "coverage": edge["coverage"] - 1e-6}, FLOOR)
    assert collapsed({"precision": None, "coverage": 0.1}, FLOOR) is None and collapsed(LOOKS_REAL_NARROW, None) is None


def test_more_failed_seed_runs_make_a_model_less_stable_by_fishers_test():
    gan = [_run("seed", s, status="diverged") for s in range(4)] + [_run("seed", 4, 30.0), _run("seed", 5, 31.0),
                                                                    _run("draw", 0, 40.0, label="draw0")]
    v = stability_verdict(_summary(vae=VAE, gan=gan), "gan")
    assert v["a"]["n_failed"] == 4 and v["a"]["n_runs"] == 6 and v["b"]["n_failed"] == 0
    assert v["p_failures"] == pytest.approx(15 / 495)  # hypergeometric: C(6,4) C(6,0) / C(12,4)
    assert v["more_failures"] and v["less_stable"] and not v["budget_limited"]
    assert v["a"]["fd"]["n"] == 2, "the diverged seeds have no FD to average"
    one = [_run("seed", 0, status="diverged")] + [_run("seed", s, 30.0 + s) for s in range(1, 6)]
    v = stability_verdict(_summary(vae=VAE, gan=one), "gan")
    assert not v["more_failures"] and not v["less_stable"], "1 of 6 against 0 of 6 is not evidence"


def test_draws_do_not_count_towards_stability():
    gan = [_run("seed", s, 30.0 + s) for s in range(6)] + [_run("draw", d, status="diverged", label=f"draw{d}")
                                                         for d in range(5)]
    v = stability_verdict(_summary(vae=VAE, gan=gan), "gan")
    assert v["a"]["n_failed"] == 0 and v["a"]["n_draws_failed"] == 5 and not v["less_stable"]


def test_a_wider_spread_of_log_fd_counts_only_when_brown_forsythe_says_so():
    wide = [_run("seed", s, fd) for s, fd in enumerate([10.0, 20.0, 40.0, 80.0, 160.0, 15.0])]
    v = stability_verdict(_summary(vae=VAE, gan=wide), "gan")
    assert v["p_spread"] < 0.05 and v["wider"] and v["less_stable"] and not v["more_failures"]
    calm = [_run("seed", s, 40.0 + 0.5 * s) for s in range(6)]
    v = stability_verdict(_summary(vae=VAE, gan=calm), "gan")
    assert not v["wider"] and not v["less_stable"], "a spread like the VAE's is not instability"
    assert stability_verdict(_summary(vae=VAE), "gan") is None


def test_runs_that_never_left_the_noise_ceiling_make_stability_budget_limited():
    stuck = [_run("seed", s, STARTED * CEILING["fd"] + 10.0) for s in range(6)]
    v = stability_verdict(_summary(vae=VAE, gan=stuck), "gan")
    assert v["budget_limited"] and not v["less_stable"] and v["a"]["never_started"] == 6 and v["a"]["n_runs"] == 0


def test_collapsed_runs_count_as_failed():
    gan = [_run("seed", 0, 30.0, **LOOKS_REAL_NARROW), _run("seed", 1, 31.0), _run("seed", 2, 32.0)]
    st = dynamics_study(_summary(gan=gan), "gan")
    assert st["n_collapsed"] == 1 and st["n_failed"] == 1 and st["n_diverged"] == 0


def test_sensitivity_tests_failed_draws_and_their_spread():
    """The sensitivity rule judges draws as the stability rule judges seeds: Fisher's exact test on failed draws,
    Brown-Forsythe on the spread of log FD, only over draws that diverged or left the noise ceiling."""
    base = VAE[:6] + [_run("draw", 0, 50.0 + k, label=f"draw{k}") for k in range(6)]
    failing = VAE[:3] + [_run("draw", 0, status="diverged", label=f"draw{k}") for k in range(5)] + [
        _run("draw", 0, 40.0, label="draw5")]
    sv = sensitivity_verdict(_summary(vae=base, gan=failing), "gan")
    assert sv["more_sensitive"] and sv["more_failures"] and sv["p_failures"] < 0.05
    fds = [5.0, 20.0, 60.0, 150.0, 8.0, 100.0]
    wide = VAE[:3] + [_run("draw", 0, fd, label=f"draw{k}") for k, fd in enumerate(fds)]
    sv = sensitivity_verdict(_summary(vae=base, gan=wide), "gan")
    assert sv["wider"] and sv["more_sensitive"] and not sv["more_failures"]
    narrow = VAE[:3] + [_run("draw", 0, 40.0, label="draw0"), _run("draw", 0, 41.0, label="draw1")]
    sv = sensitivity_verdict(_summary(vae=base, gan=narrow), "gan")
    assert not sv["more_sensitive"], "two draws a point apart are not more sensitive"
    assert sv["a"]["draw_fd"] == [40.0, 41.0] and sv["p_failures"] == pytest.approx(1.0)
    one_failed = VAE[:3] + [_run("draw", 0, status="diverged", label="draw0"), _run("draw", 0, 40.0, label="draw1")]
    sv = sensitivity_verdict(_summary(vae=VAE, gan=one_failed), "gan")
    assert not sv["more_sensitive"], "1 of 2 failed draws against 0 of 2 is not significant"
    stuck = VAE[:3] + [_run("draw", 0, 0.9 * CEILING["fd"], label=f"draw{k}") for k in range(3)]
    sv = sensitivity_verdict(_summary(vae=base, gan=stuck), "gan")
    assert sv["budget_limited"] and not sv["more_sensitive"], "draws that never started say nothing"
    no_draws = {"vae": VAE[:3], "gan": narrow[:3]}
    assert sensitivity_verdict(_summary(**no_draws), "gan") is None


def test_detach_ablation_pairs_each_run_with_its_seed():
    runs = [_run("seed", 0, 30.0, ms=10.0), _run("seed", 1, 31.0, ms=11.0), _run("seed", 2, 32.0, ms=10.0),
            _run("detach", 0, 30.0, ms=15.0, label="detach_seed0"),
            _run("detach", 1, 31.0, ms=22.0, label="detach_seed1"),
            _run("leak", 0, 90.0, label="leak_seed0"), _run("leak", 1, status="diverged", label="leak_seed1")]
    d = dynamics_study(_summary(dcgan=runs), "dcgan")["detach"]
    assert [r["label"] for r in d["with"]["runs"]] == ["seed0", "seed1"]  # seed 2 has no ablation run
    assert d["time_ratio"] == pytest.approx(1.75) and d["with"]["fd"]["values"] == [30.0, 31.0]
    assert d["leak"]["n"] == 2 and d["leak"]["n_diverged"] == 1 and d["leak"]["fd"]["values"] == [90.0]
    assert dynamics_study(_summary(dcgan=runs[:5]), "dcgan")["detach"]["leak"] is None
    assert "detach" not in dynamics_study(_summary(dcgan=runs[:3]), "dcgan")


def _main(d_output, d_real, d_fake):
    return {"models": {"g": {"d_output": d_output, "metrics": {"final_d_real": {"mean": d_real},
                                                              "final_d_fake": {"mean": d_fake}}}}}


def test_equilibrium_is_judged_only_for_probabilities():
    near = 0.5 + 0.9 * EQUILIBRIUM_TOL
    assert equilibrium(_main("probability", near, 0.5 - 0.5 * EQUILIBRIUM_TOL), "g")["at_equilibrium"]
    assert not equilibrium(_main("probability", 0.5 + 1.1 * EQUILIBRIUM_TOL, 0.5), "g")["at_equilibrium"]
    assert equilibrium(_main("critic", 0.5, 0.5), "g") is None, "a critic's scores have no value of one half"
    assert equilibrium(_main("probability", 0.5, 0.5), "missing") is None


def test_scientific_notation():
    assert sci(1e-4) == "$10^{-4}$"
    assert sci(4e-4) == "$4 \\times 10^{-4}$"
    assert sci(2.5e-3, math_mode=False) == "2.5 \\times 10^{-3}"
    assert sci(None) == "n/a"


def test_the_detach_claim_is_judged_on_the_loop_where_it_matters():
    """rule_detach asks the engine about the leak runs (G's gradients kept) against the seed runs over their
    seeds, not about our loop's runs (the same updates); every leak run diverging supports it outright."""
    from genreview.publish.claims import Test, rule_detach

    c = {"a": "dcgan"}
    seeds = [_run("seed", s, 30.0 + s, ms=10.0) for s in range(3)]
    ours = [_run("detach", s, 30.0 + s, ms=14.0, label=f"detach_seed{s}") for s in range(3)]
    leak = [_run("leak", s, 80.0 + s, ms=14.0, label=f"leak_seed{s}") for s in range(3)]
    test, ev, numbers = rule_detach(_summary(dcgan=seeds + ours + leak), c, 0.1)
    assert isinstance(test, Test) and test["claimed"] == "higher" and test["metric"] == "fd"
    assert test["a"]["values"] == [80.0, 81.0, 82.0] and test["b"]["values"] == [30.0, 31.0, 32.0]
    assert numbers["leak"] and "keeps G's gradients" in ev and "1.4" in ev
    test, ev, numbers = rule_detach(_summary(dcgan=seeds + ours), c, 0.1)  # an older build: no leak runs
    assert test["a"]["values"] == [30.0, 31.0, 32.0] and not numbers["leak"]
    gone = [_run("leak", s, status="diverged", label=f"leak_seed{s}") for s in range(3)]
    verdict, ev, _ = rule_detach(_summary(dcgan=seeds + ours + gone), c, 0.1)
    assert verdict == "supported" and "diverged" in ev
    assert rule_detach(_summary(dcgan=seeds), c, 0.1)[0] == "not measured"


def test_blur_against_the_kl_weight():
    """beta_study groups the VAE's KL-weight runs with its seed runs (the configured weight) by increasing
    weight; rule_beta_blur asks the engine about blur at the largest weight against the smallest."""
    from genreview.publish.claims import Test, rule_beta_blur
    from genreview.publish.verdicts import beta_study

    def run(kind, seed, b, blur, status="ok"):
        r = _run(kind, seed, 50.0, status=status, label=f"{kind}{b}_seed{seed}")
        r.update(changed={"beta": b} if kind == "beta" else {}, blur=blur if status == "ok" else None)
        return r
    runs = ([run("seed", s, 1.0, 0.30 + s / 100) for s in range(3)] + [run("beta", s, 4.0, 0.60 + s / 100)
                                                                        for s in range(3)]
            + [run("beta", s, 0.25, 0.10) for s in range(2)] + [run("beta", 2, 0.25, None, status="diverged")])
    summary = _summary(vae=runs)
    st = beta_study(summary, "vae")
    assert [r["beta"] for r in st["rows"]] == [0.25, 1.0, 4.0] and [r["configured"] for r in st["rows"]] == [
        False, True, False]
    assert st["rows"][0]["n"] == 3 and st["rows"][0]["blur"]["values"] == [0.10, 0.10]
    test, ev, numbers = rule_beta_blur(summary, {"a": "vae"}, 0.1)
    assert isinstance(test, Test) and test["claimed"] == "higher" and test["metric"] == "blur"
    assert test["a"]["values"] == pytest.approx([0.60, 0.61, 0.62]) and test["b"]["values"] == [0.10, 0.10]
    assert "0.25" in ev and "4" in ev and (numbers["beta_low"], numbers["beta_high"]) == (0.25, 4.0)
    summary["models"]["vae"] = {"hparams": {"beta": 0.5}}   # the seed runs' weight comes from the main run
    assert [r["beta"] for r in beta_study(summary, "vae")["rows"]] == [0.25, 0.5, 4.0]
    assert beta_study(_summary(vae=runs[:3]), "vae") is None
    assert rule_beta_blur(_summary(vae=runs[:3]), {"a": "vae"}, 0.1)[0] == "not measured"


def test_kl_weight_runs_at_the_main_budget_stand_beside_the_main_runs():
    """KL-weight runs that trained as far as the main runs are compared with the main runs at the configured weight
    (not the short seed runs), and their verdict is checked like a quality verdict (the model's plateau, `_budget`),
    not against the short runs' (`_short_budget`); shorter ones stay short runs."""
    from genreview.publish.claims import _budget, rule_beta_blur
    from genreview.publish.verdicts import beta_study
    from genreview.summary.stats import stat

    def run(kind, seed, b, blur, steps):
        r = _run(kind, seed, 50.0, label=f"{kind}{b}_seed{seed}")
        r.update(changed={"beta": b} if kind == "beta" else {}, blur=blur, steps=steps, max_steps=steps)
        return r
    runs = ([run("seed", s, 1.0, 0.9, 300) for s in range(3)] + [run("beta", s, 4.0, 0.60 + s / 100, 3000)
                                                                  for s in range(3)]
            + [run("beta", s, 0.25, 0.10 + s / 100, 3000) for s in range(3)])
    summary = _summary(vae=runs)
    summary["models"]["vae"] = {"display": "VAE", "hparams": {"beta": 1.0}, "n_seeds": 3, "n_ok": 3,
                                "metrics": {"steps": stat([3000] * 3), "blur": stat([0.40, 0.41, 0.42])}}
    st = beta_study(summary, "vae")
    assert st["main_budget"] and st["steps"] == 3000
    mid = st["rows"][1]
    assert (mid["beta"], mid["source"], mid["blur"]["values"]) == (1.0, "main runs", [0.40, 0.41, 0.42]), \
        "the configured weight at the main budget is the main runs, not the short seed runs (blur 0.9)"
    test, ev, numbers = rule_beta_blur(summary, {"a": "vae"}, 0.1)
    assert test["b"]["values"] == pytest.approx([0.10, 0.11, 0.12]), "the test compares the KL-weight runs only"
    assert numbers["a"] == "vae" and "short_runs" not in numbers and "main runs' budget" in ev
    summary["curves"] = {"vae": {"rows": [{"images": 1000 * 2 ** i, "fd": {"mean": 100.0 / (1 + i)}}
                                          for i in range(4)]}}
    row = {"verdict": "supported", "reason": None, "evidence": ev, "numbers": numbers}
    _budget(summary, row, 0.05)
    assert row["verdict"] == "inconclusive" and row["reason"].startswith("budget-limited"), \
        "a VAE still improving at its main budget leaves the KL-weight verdict budget-limited"
    summary["models"]["vae"]["metrics"]["steps"] = stat([30000] * 3)   # the main runs trained ten times longer
    st = beta_study(summary, "vae")
    assert not st["main_budget"] and st["rows"][1]["source"] == "short runs"
    assert rule_beta_blur(summary, {"a": "vae"}, 0.1)[2]["short_runs"] == "vae"


def test_short_run_verdicts_are_budget_limited_when_the_main_runs_train_further():
    """A verdict read from short runs (detach, KL weight) stands only when the model's main runs, with far more
    images, reach about the same KID (the short runs had levelled off); otherwise it is budget-limited."""
    from genreview.publish.claims import _short_budget, short_run_convergence

    runs = [dict(_run("seed", s, 160.0), kid=0.10, images_seen=19200) for s in range(3)]

    def summary(main_kid):
        s = _summary(vae=runs)
        if main_kid is not None:
            s["curves"] = {"vae": {"rows": [{"images": {"mean": 1e5}, "kid": {"mean": 0.5}},
                                            {"images": {"mean": 4.8e5}, "kid": {"mean": main_kid}}]}}
        return s

    def row(verdict):
        return {"verdict": verdict, "reason": None, "evidence": "e", "numbers": {"short_runs": "vae"}}

    c = short_run_convergence(summary(0.02), "vae", 0.05)
    assert c["fall"] == pytest.approx(0.8) and not c["plateaued"] and c["n_runs"] == 3
    r = row("equivalent")
    _short_budget(summary(0.02), r, 0.05)
    assert r["verdict"] == "inconclusive" and r["reason"].startswith("budget-limited") and "25 times" in r["reason"]
    for kid in (0.098, 0.12):   # within the gain, or the main runs worse: the short runs had levelled off
        r = row("supported")
        _short_budget(summary(kid), r, 0.05)
        assert r["verdict"] == "supported" and r["reason"] is None
    r = row("contradicted")
    _short_budget(summary(None), r, 0.05)
    assert r["verdict"] == "contradicted" and "not checked" in r["evidence"]
    r = {**row("equivalent"), "numbers": {}}
    _short_budget(summary(0.02), r, 0.05)
    assert r["verdict"] == "equivalent", "a verdict not read from short runs is left alone"
