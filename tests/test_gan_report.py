"""The GAN section's verdicts follow the numbers: stability, sensitivity, equilibrium and the detach
ablation are read from the short runs and the main runs by stated rules."""
from __future__ import annotations

import pytest

from genreview.publish.formatting import sci
from genreview.publish.verdicts import (EQUILIBRIUM_TOL, UNSTABLE_CV, dynamics_study, equilibrium,
                                        sensitivity_verdict, stability_verdict)


def _run(kind, seed, fd=None, status="ok", collapsed=False, ms=10.0, label=None):
    r = {"label": label or f"{kind}{seed}", "kind": kind, "seed": seed, "status": status, "ms_per_step": ms}
    if status == "ok":
        r.update(fd=fd, collapsed=collapsed)
    return r


def _summary(**models):
    return {"dynamics": {m: {"model": m, "n": 50, "steps": 300, "runs": runs} for m, runs in models.items()},
            "models": {}}


VAE = [_run("seed", 0, 50.0), _run("seed", 1, 51.0), _run("seed", 2, 52.0),
       _run("draw", 0, 60.0, label="draw0"), _run("draw", 0, 70.0, label="draw1")]


def test_more_failed_runs_make_a_model_less_stable():
    gan = [_run("seed", 0, 30.0), _run("seed", 1, status="diverged"), _run("seed", 2, 31.0),
           _run("draw", 0, 40.0, label="draw0"), _run("draw", 0, 45.0, label="draw1")]
    v = stability_verdict(_summary(vae=VAE, gan=gan), "gan")
    assert v["more_failures"] and v["less_stable"]
    assert v["a"]["n_failed"] == 1 and v["a"]["n_runs"] == 5 and v["b"]["n_failed"] == 0
    assert v["a"]["fd"]["n"] == 2, "the diverged seed has no FD to average"


def test_spread_beyond_the_rule_makes_a_model_less_stable_and_within_it_does_not():
    cv_vae = VAE[1]["fd"] and (1.0 / 51.0)  # std 1 around 51
    wide = [_run("seed", 0, 20.0), _run("seed", 1, 40.0), _run("seed", 2, 60.0)]
    v = stability_verdict(_summary(vae=VAE, gan=wide), "gan")
    assert v["cv_ratio"] == pytest.approx((20.0 / 40.0) / cv_vae)
    assert v["cv_ratio"] > UNSTABLE_CV and v["wider"] and v["less_stable"] and not v["more_failures"]
    calm = [_run("seed", 0, 40.0), _run("seed", 1, 40.5), _run("seed", 2, 41.0)]
    v = stability_verdict(_summary(vae=VAE, gan=calm), "gan")
    assert not v["less_stable"], "half the VAE's variation is not instability"
    assert stability_verdict(_summary(vae=VAE), "gan") is None


def test_collapsed_runs_count_as_failed():
    gan = [_run("seed", 0, 30.0, collapsed=True), _run("seed", 1, 31.0), _run("seed", 2, 32.0)]
    st = dynamics_study(_summary(gan=gan), "gan")
    assert st["n_collapsed"] == 1 and st["n_failed"] == 1 and st["n_diverged"] == 0


def test_sensitivity_reads_failed_draws_first_then_the_range():
    failing = VAE[:3] + [_run("draw", 0, status="diverged", label="draw0"), _run("draw", 0, 40.0, label="draw1")]
    assert sensitivity_verdict(_summary(vae=VAE, gan=failing), "gan")["more_sensitive"]
    narrow = VAE[:3] + [_run("draw", 0, 40.0, label="draw0"), _run("draw", 0, 41.0, label="draw1")]
    sv = sensitivity_verdict(_summary(vae=VAE, gan=narrow), "gan")
    assert not sv["more_sensitive"], "a 1-point range is narrower than the VAE's 10-point one"
    assert sv["a"]["draw_fd"] == [40.0, 41.0]
    no_draws = {"vae": VAE[:3], "gan": narrow[:3]}
    assert sensitivity_verdict(_summary(**no_draws), "gan") is None


def test_detach_ablation_pairs_the_run_with_its_seed():
    runs = [_run("seed", 0, 30.0, ms=10.0), _run("seed", 1, 31.0, ms=11.0),
            _run("detach", 0, 30.0, ms=15.0, label="detach_seed0")]
    d = dynamics_study(_summary(dcgan=runs), "dcgan")["detach"]
    assert d["with"]["label"] == "seed0" and d["time_ratio"] == pytest.approx(1.5)
    assert "detach" not in dynamics_study(_summary(dcgan=runs[:2]), "dcgan")


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
