"""The sampling-cost studies: the words the paper draws from a sweep follow its numbers, seeds are
aggregated per point, and a sweep over a trained run writes the points, samples and timings it
promises."""
from __future__ import annotations

import pytest

from genreview.publish.verdicts import SMALL_LOSS, guidance_study, sampler_study
from genreview.summary.collect import study_summary
from genreview.utils import save_json


def _st(x, n=1):
    return {"mean": x, "std": 0.0, "n": n, "values": [x]}


def _point(sampler, steps, fd, ms=None):
    return {"sampler": sampler, "steps": steps, "eta": 0.0, "nfe": _st(steps), "fd": _st(fd),
            "ms_per_image": _st(ms if ms is not None else 0.5 * steps)}


def _summary(points):
    return {"sweep": {"m": {"n": 100, "n_seeds": 1, "points": points}}}


def test_ddim_claim_holds_when_few_steps_stay_within_the_margin():
    pts = [_point("ddim", 10, 12.0), _point("ddim", 100, 10.5), _point("ddpm", 10, 40.0), _point("ddpm", 100, 10.0)]
    st = sampler_study(_summary(pts), "m")
    assert st["ref"]["sampler"] == "ddpm" and st["ref"]["steps"] == 100, "the reference is the best at most steps"
    assert st["fastest"]["steps"] == 10 and st["supported"], "12 <= 1.25 * 10 at a tenth of the evaluations"
    assert st["speedup"] == pytest.approx(10.0)
    assert st["few_steps"].word == "lower than", "at 10 steps DDIM (12) beats the ancestral sampler (40)"


def test_ddim_claim_fails_when_quality_drops_or_saving_is_small():
    worse = [_point("ddim", 10, 10.0 * SMALL_LOSS + 1), _point("ddim", 50, 11.0), _point("ddpm", 100, 10.0)]
    st = sampler_study(_summary(worse), "m")
    assert st["fastest"]["steps"] == 50 and not st["supported"], "a two-fold saving is not 'much faster'"
    none_close = [_point("ddim", 10, 30.0), _point("ddim", 100, 20.0), _point("ddpm", 100, 10.0)]
    st = sampler_study(_summary(none_close), "m")
    assert st["fastest"] is None and not st["supported"] and st["speedup"] is None


def test_sampler_study_without_points_is_none():
    assert sampler_study({"sweep": {}}, "m") is None
    native = {"sweep": {"m": {"n": 5, "n_seeds": 1, "points": [{**_point("native", 1, 3.0)}]}}}
    assert sampler_study(native, "m") is None, "one-shot models have no samplers to compare"


def test_guidance_study_reads_the_trade_off():
    pts = [{"guidance": w, "fd": _st(fd), "cond_accuracy": _st(acc), "recall": _st(rec), "precision": _st(pr)}
           for w, fd, acc, rec, pr in [(0.0, 20.0, 0.6, 0.5, 0.5), (1.0, 15.0, 0.8, 0.4, 0.6),
                                       (4.0, 25.0, 0.95, 0.2, 0.7)]]
    g = guidance_study({"guidance": {"m": {"n": 10, "points": pts[::-1]}}}, "m")
    assert g["lo"]["guidance"] == 0.0 and g["hi"]["guidance"] == 4.0, "points are ordered by weight"
    assert g["best_fd"]["guidance"] == 1.0 and g["best_acc"]["guidance"] == 4.0
    assert g["acc"].word == "higher than" and g["recall"].word == "lower than"
    assert guidance_study({"guidance": {}}, "m") is None


def test_study_summary_groups_points_across_seeds(tmp_path):
    files = []
    for seed, fd in [(0, 10.0), (1, 14.0)]:
        pts = [{"sampler": "ddim", "steps": 10, "eta": 0.0, "nfe": 10, "ms_per_image": 2.0, "fd": fd},
               {"sampler": "ddim", "steps": 20, "eta": 0.0, "nfe": 20, "ms_per_image": 4.0, "fd": fd / 2}]
        files.append(tmp_path / f"s{seed}.json")
        save_json({"model": "m", "seed": seed, "status": "ok", "n": 100, "points": pts}, files[-1])
    files.append(tmp_path / "s2.json")
    save_json({"model": "m", "seed": 2, "status": "diverged", "n": 100, "points": []}, files[-1])
    out = study_summary([str(f) for f in files], lambda r: (r["sampler"], r["steps"]))["m"]
    assert out["n_seeds"] == 2 and out["n"] == 100
    by = {p["steps"]: p for p in out["points"]}
    assert by[10]["fd"]["mean"] == pytest.approx(12.0) and by[10]["fd"]["n"] == 2
    assert by[10]["fd"]["std"] == pytest.approx(2.8284, rel=1e-3)
    assert by[20]["fd"]["values"] == [5.0, 7.0] and by[20]["sampler"] == "ddim"


# --------------------------------------------------------------------------- sweeps over a trained run

def _fake_run(tmp, name: str, seed: int = 0, status: str = "ok"):
    """A run folder as `train.train` leaves it, holding an untrained smoke-sized model."""
    import torch
    from genreview.models import build
    from genreview.utils import torch_save
    from conftest import SHAPE, smoke_hparams

    torch.manual_seed(seed)
    hp = smoke_hparams(name)
    model = build(name, hp, SHAPE)
    run = tmp / name
    run.mkdir(parents=True)
    torch_save({"model": name, "hparams": hp, "shape": SHAPE, "state_dict": model.state_dict()}, run / "model.pt")
    save_json({"status": status, "precision": "fp32"}, run / "train_summary.json")
    return run


def _study_spec(fmnist_root, name, **over):
    from genreview import config as C
    from conftest import smoke_config

    cfg = smoke_config(fmnist_root)
    for k, v in over.items():
        cfg[k] = {**cfg.get(k, {}), **v}
    spec = {**C.sweep_spec(cfg, name, 0), "guidance": C.guidance_config(cfg)}
    spec["eval"].update(n_reference=200, kid_subset_size=10, batch_size=16)
    return spec


def test_sweep_covers_every_sampler_and_step_count(fmnist_root, tiny_classifier_dir, tmp_path):
    from genreview.studies.sweeps import sweep_run

    spec = _study_spec(fmnist_root, "ddpm", sweep={"steps": [2, 5, 500], "n_samples": 24, "grid": 4})
    res = sweep_run(spec, _fake_run(tmp_path, "ddpm"), tiny_classifier_dir / "classifier.pt", tmp_path / "out")
    got = sorted((p["sampler"], p["steps"]) for p in res["points"])
    assert got == [("ddim", 2), ("ddim", 5), ("ddpm", 2), ("ddpm", 5)], "500 > T = 100 must be skipped"
    for p in res["points"]:
        assert p["nfe"] == p["steps"] and p["ms_per_image"] > 0 and p["n"] == 24 and p["fd"] > 0
    import torch
    grids = torch.load(tmp_path / "out" / "sweep_grids.pt")
    assert set(grids) == {"ddim/2", "ddim/5", "ddpm/2", "ddpm/5"} and grids["ddim/2"].shape == (4, 1, 28, 28)
    assert grids["ddim/2"].dtype == torch.uint8


def test_one_shot_model_gives_one_point_and_a_diverged_run_none(fmnist_root, tiny_classifier_dir, tmp_path):
    from genreview.studies.sweeps import sweep_run

    clf = tiny_classifier_dir / "classifier.pt"
    spec = _study_spec(fmnist_root, "vae", sweep={"n_samples": 20})
    res = sweep_run(spec, _fake_run(tmp_path, "vae"), clf, tmp_path / "vae_out")
    assert [(p["sampler"], p["nfe"]) for p in res["points"]] == [("native", 1)]
    res = sweep_run(spec, _fake_run(tmp_path, "dcgan", status="diverged"), clf, tmp_path / "d_out")
    assert res["status"] == "diverged" and res["points"] == []


def test_guidance_sweep_scores_each_weight(fmnist_root, tiny_classifier_dir, tmp_path):
    from genreview.studies.sweeps import guidance_run

    clf = tiny_classifier_dir / "classifier.pt"
    spec = _study_spec(fmnist_root, "guided_ldm", guidance={"weights": [0.0, 3.0], "n_samples": 20, "per_class": 2})
    res = guidance_run(spec, _fake_run(tmp_path, "guided_ldm"), clf, tmp_path / "out")
    assert [p["guidance"] for p in res["points"]] == [0.0, 3.0]
    assert [p["nfe"] for p in res["points"]] == [5, 10], "a guided step costs two network evaluations"
    for p in res["points"]:
        assert 0 <= p["cond_accuracy"] <= 1 and len(p["cond_accuracy_by_class"]) == 10
    import torch
    grids = torch.load(tmp_path / "out" / "guidance_grids.pt")
    assert grids[3.0].shape == (20, 1, 28, 28), "two images for each of the ten classes"
    with pytest.raises(ValueError, match="not class-conditional"):
        guidance_run({**spec, "model": "ldm"}, _fake_run(tmp_path, "ldm"), clf, tmp_path / "ldm_out")
