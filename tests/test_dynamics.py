"""The training-dynamics study: draws are reproducible and shared by every family, each family gets
only the fields its optimisers use, class coverage tells a collapsed histogram from a full one, and a
job trains, scores and resumes its short runs (the detach ablation's gradient on G included)."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from genreview import config as C
from genreview.studies.dynamics import DynamicsConfig, draw, drawn_fields, dynamics_run, plan
from genreview.evaluation.evaluate import shared_reference
from genreview.evaluation.metrics import class_coverage
from genreview.models import GMMConfig
from genreview.models.dcgan import DCGAN, DCGANConfig
from genreview.models import WGAN, WGANGP, CGANConfig, WGANConfig, WGANGPConfig
from genreview.models.stylegan import StyleGAN, StyleGANConfig
from genreview.models.vae import VAEConfig

from conftest import SHAPE, smoke_config

pytestmark = pytest.mark.filterwarnings("ignore:Metric .* will save all extracted features:UserWarning")


def _spec(name: str, data_root="data", hparams: dict | None = None, **dynamics) -> dict:
    """A dynamics job's spec at the smoke profile's sizes, as the pipeline would pass it."""
    cfg = smoke_config(data_root)
    ts = C.train_spec(cfg, name, 0)
    ts["hparams"].update(hparams or {})
    ev = C.eval_config(cfg)
    ev.update(n_reference=200, kid_subset_size=10, batch_size=25)
    return {"dataset": cfg["dataset"], "data_root": cfg["data"]["root"], "device": "cpu", "model": name, "seed": 0,
            "train_spec": ts, "eval": ev, "dynamics": dataclasses.asdict(DynamicsConfig(**dynamics))}


# --------------------------------------------------------------------------- draws

def test_draws_are_reproducible_log_uniform_and_in_range():
    dyn = DynamicsConfig()
    first = [draw(dyn, 0, i) for i in range(5)]
    assert first == [draw(dyn, 0, i) for i in range(5)], "draw i depends on (seed, i) alone"
    assert len({d["lr"] for d in first}) == 5 and draw(dyn, 1, 0) != first[0]
    lrs = torch.tensor([draw(dyn, 0, i)["lr"] for i in range(2000)])
    assert dyn.lr_min <= lrs.min() and lrs.max() <= dyn.lr_max
    mid = math.sqrt(dyn.lr_min * dyn.lr_max)  # 3.2e-4: the median of a log-uniform, far below a uniform's 5e-3
    assert abs(float((lrs < mid).double().mean()) - 0.5) < 0.05
    seen = {(d["beta1"], d["beta2"], d["batch_size"]) for d in (draw(dyn, 0, i) for i in range(200))}
    assert {b[0] for b in seen} == set(dyn.beta1_choices) and {b[2] for b in seen} == set(dyn.batch_choices)


def test_drawn_fields_follow_the_optimisers():
    assert drawn_fields(VAEConfig) == ["lr"], "the VAE's beta weighs the KL term: it is no Adam beta"
    assert drawn_fields("dcgan") == drawn_fields(DCGANConfig) == ["lr_g", "lr_d", "beta1", "beta2"]
    assert drawn_fields(WGANConfig) == ["lr_g", "lr_d"], "WGAN inherits beta1/beta2 but its RMSprop ignores them"
    for cls in (WGANGPConfig, CGANConfig, StyleGANConfig):
        assert drawn_fields(cls) == ["lr_g", "lr_d", "beta1", "beta2"], cls.__name__
    with pytest.raises(ValueError, match="no learning rate"):
        drawn_fields(GMMConfig)
    tiny = {"z_dim": 8, "width_g": 4, "width_d": 4}
    for model in (DCGAN(DCGANConfig(**tiny), SHAPE), WGAN(WGANConfig(**tiny), SHAPE),
                  WGANGP(WGANGPConfig(**tiny), SHAPE), StyleGAN(StyleGANConfig(**tiny, w_dim=8), SHAPE)):
        groups = [g for opt in model.configure_optimizers().values() for g in opt.param_groups]
        uses_betas = all("betas" in g for g in groups)
        assert uses_betas == ("beta1" in drawn_fields(type(model.cfg))), type(model).__name__


def test_plan_shares_each_draw_across_models_and_adds_the_ablation_to_dcgan_only():
    dyn = {"seeds": [0, 1], "draws": 2}
    by = {name: {r["label"]: r for r in plan(_spec(name, **dyn))} for name in ("vae", "dcgan", "wgan")}
    assert list(by["dcgan"]) == ["seed0", "seed1", "draw0", "draw1", "detach_seed0", "detach_seed1", "leak_seed0",
                                 "leak_seed1"]
    assert list(by["wgan"]) == ["seed0", "seed1", "draw0", "draw1"]
    assert list(by["vae"]) == ["seed0", "seed1", "draw0", "draw1", "beta0.25_seed0", "beta0.25_seed1", "beta4_seed0",
                               "beta4_seed1"]   # the KL-weight runs, at every seed
    assert by["vae"]["beta4_seed1"]["changed"] == {"beta": 4.0} and by["vae"]["beta4_seed1"]["kind"] == "beta"
    with pytest.raises(ValueError, match="no KL weight"):
        plan(_spec("dcgan", beta_models=["dcgan"]))
    for i in range(2):
        v, d, w = (by[m][f"draw{i}"] for m in ("vae", "dcgan", "wgan"))
        lr = v["changed"]["lr"]
        assert v["changed"] == {"lr": lr} and w["changed"] == {"lr_g": lr, "lr_d": lr}
        assert d["changed"] == {"lr_g": lr, "lr_d": lr, "beta1": d["draw"]["beta1"], "beta2": d["draw"]["beta2"]}
        assert v["batch_size"] == d["batch_size"] == w["batch_size"] == d["draw"]["batch_size"]
        assert v["seed"] == d["seed"] == 0
    assert by["dcgan"]["draw0"]["changed"]["lr_g"] != by["dcgan"]["draw1"]["changed"]["lr_g"]
    assert by["dcgan"]["seed1"]["changed"] == {} and by["dcgan"]["detach_seed1"]["changed"] == {"detach_fake": False}
    assert by["dcgan"]["leak_seed1"]["changed"] == {"detach_fake": False, "zero_g_grad": False}
    assert by["dcgan"]["leak_seed1"]["seed"] == by["dcgan"]["detach_seed1"]["seed"] == 1
    with pytest.raises(ValueError, match="no detach_fake or zero_g_grad field"):
        plan(_spec("vae", ablation_models=["vae"]))
    with pytest.raises(ValueError, match="detach_fake is false"):
        plan(_spec("dcgan", hparams={"detach_fake": False}))


def test_kl_weight_runs_train_for_the_main_runs_budget():
    """The KL-weight runs are not short runs: by default each trains as long as the main run planned
    (train_summary's planned_steps); beta_steps sets a number of generator updates instead; without a main run
    they fall back to the short runs' steps. The other runs stay short."""
    from genreview.studies.dynamics import _run_spec
    spec = _spec("vae", steps=7, seeds=[0], draws=0)
    dyn = DynamicsConfig(**spec["dynamics"])
    runs = {r["kind"]: r for r in plan(spec)}
    main = {"planned_steps": 123, "steps": 100, "precision": "fp32", "memory_format": "contiguous"}
    steps = lambda run, d=dyn, chosen=main: _run_spec(spec, run, d, 6000, chosen)["train"]["max_steps"]  # noqa: E731
    assert steps(runs["beta"]) == 123 and steps(runs["seed"]) == 7
    assert steps(runs["beta"], chosen=None) == 7, "no main run: the short runs' budget"
    assert steps(runs["beta"], dataclasses.replace(dyn, beta_steps=40)) == 40
    assert _run_spec(spec, runs["beta"], dyn, 6000, main)["train"]["epochs"] == math.ceil(
        123 / (6000 // runs["beta"]["batch_size"]))


# --------------------------------------------------------------------------- class coverage

def test_class_coverage_tells_collapse_from_a_full_histogram():
    uniform = [0.1] * 10
    full = class_coverage(uniform, uniform)
    assert full == {"classes_covered": 10, "n_classes": 10, "class_kl": 0.0, "class_tv": 0.0}
    one = class_coverage(torch.eye(10)[3], torch.tensor(uniform))
    assert one["classes_covered"] == 1 and one["n_classes"] == 10
    assert one["class_kl"] == pytest.approx(math.log(10), rel=1e-4) and one["class_tv"] == pytest.approx(0.9)
    # 0.025 = 0.25 x 0.1 is just covered, 0.02 is not
    edge = class_coverage([0.025, 0.02, 0.955] + [0.0] * 7, uniform)
    assert edge["classes_covered"] == 2
    # samples in a class the reference lacks: large but finite; that class is not counted
    odd = class_coverage(uniform, [0.0] + [1 / 9] * 9)
    assert math.isfinite(odd["class_kl"]) and odd["class_kl"] > 1.0 and odd["n_classes"] == 9
    assert class_coverage([5, 5], [1, 1])["class_kl"] == 0.0, "counts are normalised"
    with pytest.raises(ValueError, match="different lengths"):
        class_coverage([0.5, 0.5], uniform)


# --------------------------------------------------------------------------- a job end to end

def test_short_runs_take_the_precision_their_main_run_chose(fmnist_root):
    """A model whose precision and memory format are "auto" trains its short runs as its main run chose
    (that run's train_summary.json); without one, fp32 and contiguous. A configured setting stays."""
    import genreview.studies.dynamics as M

    spec = _spec("dcgan", fmnist_root, steps=3, seeds=[0], draws=0, n_samples=50, grid=4)
    spec["train_spec"]["train"].update(precision="auto", memory_format="auto")
    dyn, run = DynamicsConfig(**spec["dynamics"]), M.plan(spec)[0]
    chosen = {"precision": "bf16", "memory_format": "channels_last"}
    ts = M._run_spec(spec, run, dyn, 60000, chosen)["train"]
    assert (ts["precision"], ts["memory_format"]) == ("bf16", "channels_last")
    ts = M._run_spec(spec, run, dyn, 60000)["train"]
    assert (ts["precision"], ts["memory_format"]) == ("fp32", "contiguous")
    spec["train_spec"]["train"].update(precision="fp32")
    assert M._run_spec(spec, run, dyn, 60000, chosen)["train"]["precision"] == "fp32"


def test_dynamics_job_trains_scores_and_resumes(fmnist_root, tiny_classifier_dir, tmp_path, monkeypatch):
    import genreview.studies.dynamics as M

    spec = _spec("dcgan", fmnist_root, steps=3, seeds=[0, 1], draws=1, n_samples=50, grid=4)
    spec["train_spec"]["train"].update(precision="auto", memory_format="auto")
    clf, out = tiny_classifier_dir / "classifier.pt", tmp_path / "dcgan"
    built = []
    monkeypatch.setattr(M, "shared_reference", lambda *a: built.append(1) or shared_reference(*a))
    res = dynamics_run(spec, clf, out)
    monkeypatch.undo()
    assert len(built) == 1, "one reference per job, shared by its runs"
    runs = {r["label"]: r for r in res["runs"]}
    assert [(r["label"], r["kind"]) for r in res["runs"]] == [
        ("seed0", "seed"), ("seed1", "seed"), ("draw0", "draw"), ("detach_seed0", "detach"), ("detach_seed1", "detach"),
        ("leak_seed0", "leak"), ("leak_seed1", "leak")]
    assert res["n"] == 50 and res["steps"] == 3 and res["status"] == "ok"
    draw0 = draw(DynamicsConfig(**spec["dynamics"]), 0, 0)
    assert runs["draw0"]["batch_size"] == draw0["batch_size"] and runs["seed0"]["batch_size"] == 128
    for r in res["runs"]:
        assert r["status"] == "ok" and r["steps"] == 3 and r["n"] == 50 and r["fd"] > 0 and r["ms_per_step"] > 0
        assert (r["train_precision"], r["memory_format"]) == ("fp32", "contiguous"), "auto is not calibrated"
        assert len(r["class_histogram"]) == 10 and sum(r["class_histogram"]) == pytest.approx(1.0)
        assert r["collapsed"] == (r["classes_covered"] < 5) and r["d_output"] == "probability"
        assert 0 < r["d_real"] < 1 and 0 < r["d_fake"] < 1
        assert r["sharpness_real"] > 0 and r["blur"] >= 0, "blur against the real images, for the KL-weight runs"
    assert runs["detach_seed0"]["g_grad_in_d_step"] > 0, "without the detach D's backward reaches G"
    assert runs["seed0"]["g_grad_in_d_step"] == 0.0, "with it, G holds no gradient after D's step"
    assert runs["seed0"]["g_update_cos"] is None and runs["detach_seed0"]["g_update_cos"] is None
    assert -1 <= runs["leak_seed0"]["g_update_cos"] < 0.999999, "kept, D's gradient bends G's update"
    grids = torch.load(out / "dynamics_grids.pt")
    assert set(grids) == set(runs) and grids["draw0"].shape == (4, *SHAPE) and grids["draw0"].dtype == torch.uint8

    def no(*a, **k):
        raise AssertionError("a finished run was trained or scored again")

    with monkeypatch.context() as m:  # finished runs are read back: no training, no reference
        m.setattr(M.Trainer, "fit", no)
        m.setattr(M, "Reference", no)
        again = dynamics_run(spec, clf, out)
    assert again["runs"] == res["runs"]

    # a new N rescores every run from its finished checkpoint, without a training step
    monkeypatch.setattr(DCGAN, "train_step", no)
    spec["dynamics"]["n_samples"] = 30
    rescored = dynamics_run(spec, clf, out)
    assert [r["n"] for r in rescored["runs"]] == [30] * 7
    assert [r["train_seconds"] for r in rescored["runs"]] == pytest.approx([r["train_seconds"] for r in res["runs"]],
                                                                           abs=0.05)


def test_kl_weight_runs_of_a_job_take_the_budget_its_main_run_planned(fmnist_root, tiny_classifier_dir, tmp_path):
    """End to end: a main run trained by the pipeline's `train` writes the train_summary.json the dynamics job
    reads, and the job's KL-weight runs train for that run's planned steps while its seed runs stay short."""
    from genreview.training.train import train
    spec = _spec("vae", fmnist_root, steps=3, seeds=[0], draws=0, n_samples=20, betas=[4.0])
    main = train(spec["train_spec"], tmp_path / "main")
    assert main["planned_steps"] == 12 != 3, "the smoke profile's main runs plan 12 steps"
    res = dynamics_run(spec, tiny_classifier_dir / "classifier.pt", tmp_path / "dyn",
                       main_run=tmp_path / "main" / "train_summary.json")
    steps = {r["kind"]: (r["steps"], r["max_steps"]) for r in res["runs"]}
    assert steps == {"seed": (3, 3), "beta": (12, 12)}


def test_diverged_run_is_recorded_not_scored(fmnist_root, tiny_classifier_dir, tmp_path):
    spec = _spec("vae", fmnist_root, steps=3, seeds=[0], draws=0, n_samples=20, beta_models=[])
    spec["train_spec"]["train"]["explode_threshold"] = 1e-9  # every loss "explodes" at the first step
    res = dynamics_run(spec, tiny_classifier_dir / "classifier.pt", tmp_path)
    (run,) = res["runs"]
    assert run["status"] == "diverged" and run["diverged_at"] == 1 and "fd" not in run
    assert run["g_grad_in_d_step"] is None and run["d_real"] is None and run["d_output"] is None, \
        "the VAE has no discriminator"
    assert torch.load(tmp_path / "dynamics_grids.pt") == {}


def test_short_runs_are_counted_in_generator_updates():
    """WGAN updates its generator on every n_critic-th step: its short runs take n_critic times the steps,
    so that every family gets the same number of generator updates."""
    from genreview.studies.dynamics import short_run_steps
    assert short_run_steps("dcgan", {}, 300) == 300 and short_run_steps("vae", {}, 300) == 300
    assert short_run_steps("wgan", {}, 300) == 1500 and short_run_steps("wgan_gp", {}, 300) == 1500
    assert short_run_steps("wgan", {"n_critic": 2}, 300) == 600
