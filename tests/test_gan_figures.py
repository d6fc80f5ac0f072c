"""The GAN section's figures and tables (`genreview.publish.figures.gan_dynamics`, `.gan_samples`,
`genreview.publish.tables.gan`) from a small fake summary: every figure is a PDF, the tables print the
summary's numbers through `formatting`, the names a plan declares are exactly the files written, and
missing models, runs and grids are left out."""
from __future__ import annotations

import copy

import pytest
import torch

from genreview.publish.figures import gan_dynamics, gan_samples
from genreview.publish.figures.inputs import Inputs
from genreview.publish.plan import Plan
from genreview.publish.tables import gan as GT
from genreview.publish.tables.booktabs import write_booktabs
from genreview.data import CLASS_NAMES
from genreview.evaluation.metrics import class_coverage
from genreview.publish.formatting import fmt, pm
from genreview.summary.stats import stat

NAMES = CLASS_NAMES["fashion_mnist"]
SHAPE = (1, 28, 28)
ORDER = ["vae", "dcgan", "wgan", "stylegan", "ddpm"]
UNIFORM = [0.1] * 10


def _images(*lead, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (*lead, *SHAPE), generator=g, dtype=torch.uint8)


def _model(name, display, family, fd, hist, d_output=None, d=None):
    m = {"display": display, "family": family, "d_output": d_output, "n_seeds": 2, "n_ok": 2,
         "metrics": {"fd": stat([fd, fd + 1]), "precision": stat([0.6]), "recall": stat([0.4]),
                     "sample_ms_per_image": stat([0.1])},
         "class_histogram": hist, "class_coverage": class_coverage(hist, UNIFORM)}
    if d:
        m["metrics"].update(final_d_real=stat([d[0]]), final_d_fake=stat([d[1]]))
    return m


def _run(label, kind, fd=None, collapsed=False, **extra):
    run = {"label": label, "kind": kind, "seed": 0, "batch_size": 64, "changed": {}, "ms_per_step": 5.0,
           "status": "ok" if fd is not None else "diverged", "collapsed": collapsed, **extra}
    if fd is not None:  # collapsed: real-looking samples (precision near the floor's) covering little of the data
        run.update(fd=fd, precision=0.75 if collapsed else 0.5, coverage=0.05 if collapsed else 0.6, recall=0.4,
                   classes_covered=10, n_classes=10, class_kl=0.1)
    return run


def _dynamics(model, runs):
    return {"model": model, "n": 50, "steps": 300, "config": {"seeds": [0, 1, 2], "draws": 3}, "runs": runs}


def _trans(**values):
    return {k: stat([v, v * 1.01]) for k, v in values.items()}


def fake_summary() -> dict:
    """VAE, three GANs and a diffusion model (outside the GAN section); DCGAN's short runs hold a
    diverged seed, a collapsed seed, a diverged draw and a collapsed draw; WGAN's critic outputs happen to lie in
    [0, 1]."""
    hole = [0.125] * 10
    hole[3] = hole[5] = 0.0                                                  # DCGAN misses two classes
    models = {"vae": _model("vae", "VAE", "vae", 40.0, UNIFORM),
              "dcgan": _model("dcgan", "DCGAN", "gan", 20.0, hole, "probability", (0.62, 0.41)),
              "wgan": _model("wgan", "WGAN", "gan", 25.0, UNIFORM, "critic", (0.3, 0.2)),
              "stylegan": _model("stylegan", "StyleGAN", "gan", 15.0, UNIFORM, "probability", (0.55, 0.45)),
              "ddpm": _model("ddpm", "DDPM", "diffusion", 10.0, UNIFORM)}
    models["stylegan"]["truncation"] = [{"psi": p, "n": 25, "fd": 200.0 - 180 * p, "precision": 0.9 - 0.4 * p,
                                         "recall": 0.05 + 0.5 * p, "density": 1.0, "coverage": 0.5}
                                        for p in (0.0, 0.25, 0.5, 0.75, 1.0)]
    dynamics = {
        "vae": _dynamics("vae", [_run(f"seed{i}", "seed", fd) for i, fd in enumerate((41.0, 43.0, 42.0))]
                         + [_run(f"draw{i}", "draw", fd) for i, fd in enumerate((60.0, 48.0, 90.0))]),
        "dcgan": _dynamics("dcgan", [_run("seed0", "seed", 30.0, g_grad_in_d_step=0.0),
                                     _run("seed1", "seed", 34.0, collapsed=True), _run("seed2", "seed"),
                                     _run("draw0", "draw", 80.0, collapsed=True), _run("draw1", "draw", 45.0),
                                     _run("draw2", "draw"),
                                     _run("detach_seed0", "detach", 31.0, g_grad_in_d_step=2.5, ms_per_step=7.0)]),
        "wgan": _dynamics("wgan", [_run("seed0", "seed", 500.0), _run("seed1", "seed", 520.0)]),
    }
    probes = {m: {"n_seeds": 1, "n_ok": 1, "recon_kind": "encoder" if m == "vae" else "inversion",
                  "probe_feature": "encoder" if m == "vae" else "discriminator",
                  "metrics": {"ppl": stat([12.0 + i]), "ppl_median": stat([10.0]), "recon_mse": stat([0.02 + i / 100]),
                              "probe_acc": stat([0.8 - i / 100]), "probe_acc_pixels": stat([0.75]),
                              "probe_dim": stat([128])}}
              for i, m in enumerate(["vae", "dcgan", "stylegan"])}
    translation = {
        "cyclegan": {"display": "CycleGAN", "n_ok": 1, "metrics": {"train_seconds": stat([60.0])},
                     "translation": _trans(success_ab=0.875, success_ba=0.625, cycle_l1_aba=0.05, cycle_l1_bab=0.06,
                                           cycle_mse_aba=0.01, cycle_mse_bab=0.012, fd_ab=12.0, fd_ba=14.0,
                                           fd_ab_identity=55.0, fd_ba_identity=56.0, kid_ab=0.01, kid_ba=0.02,
                                           translate_ms_per_image=0.2, domain_a=7, domain_b=9, n_a=50, n_b=50)},
        "srgan": {"display": "SR-GAN (L1 + adv.)", "n_ok": 1, "metrics": {},
                  "translation": _trans(psnr=23.456, ssim=0.8123, fd=3.2, kid=0.001, psnr_bicubic=21.5,
                                        ssim_bicubic=0.7612, fd_bicubic=9.5, kid_bicubic=0.004, fd_original=0.9,
                                        upscale_ms_per_image=0.1, n=50)},
        "sr_l1": {"display": "SR, L1 only", "n_ok": 1, "metrics": {},
                  "translation": _trans(psnr=24.01, ssim=0.8345, fd=5.1, kid=0.002, psnr_bicubic=21.5,
                                        ssim_bicubic=0.7612, fd_bicubic=9.5, kid_bicubic=0.004, fd_original=0.9,
                                        upscale_ms_per_image=0.1, n=50)},
    }
    return {"order": ORDER, "models": models, "class_names": NAMES, "n_samples": 100,
            "reference": {"floor": {"fd": 0.61, "precision": 0.8, "coverage": 0.9, "class_histogram": UNIFORM},
                          "ceiling": {"fd": 900.0, "precision": 0.0, "coverage": 0.0}},
            "dynamics": dynamics, "dynamics_config": {"collapse_share": 0.25}, "probes": probes,
            "translation": translation}


def fake_grids():
    """(samples, probe_grids, dynamics_grids) as the pipeline's .pt files hold them."""
    low = _images(6, seed=1)
    sr = {m: {"grid_sr": torch.stack([low, _images(6, seed=2), _images(6, seed=i), _images(6, seed=3)], 1)}
          for i, m in ((4, "srgan"), (5, "sr_l1"))}
    samples = {"stylegan": {"grid": _images(64), "style_mix": _images(4, 4), "truncation_grid": _images(6, 5)},
               "cyclegan": {"grid_ab": _images(8, 3), "grid_ba": _images(8, 3, seed=1)}, **sr,
               "dcgan": {"grid": _images(64)}}
    probes = {m: {"recon": _images(8, 2, seed=i)} for i, m in enumerate(["vae", "dcgan", "stylegan"])}
    dyn = {m: {r["label"]: _images(16, seed=i) for i, r in enumerate(d["runs"]) if r["status"] == "ok"}
           for m, d in fake_summary()["dynamics"].items()}
    return samples, probes, dyn


def _is_pdf(path):
    data = path.read_bytes()
    return data.startswith(b"%PDF") and len(data) > 1000


def gan_figure_names(plan):
    return [*gan_dynamics.figures(plan), *gan_samples.figures(plan)]


def make_gan_figures(summary, samples, probe_grids, dynamics_grids, out):
    """Draw the GAN section's declared figures as `make_figures` does; their paths."""
    inputs = Inputs(summary, samples=samples, probe_grids=probe_grids, dynamics_grids=dynamics_grids)
    plan = Plan.from_summary(summary)
    paths = []
    for module in (gan_dynamics, gan_samples):
        for name, draw in module.figures(plan).items():
            draw(inputs, out / name)
            paths.append(out / name)
    return paths


def write_gan_tables(summary, out):
    """Write the GAN section's declared tables as `write_tables` does; their paths."""
    paths = []
    for name, table in GT.tables(Plan.from_summary(summary)).items():
        df, column_format = table(summary)
        write_booktabs(df, out / name, column_format)
        paths.append(out / name)
    return paths


# --------------------------------------------------------------------------- figures

@pytest.mark.parametrize("name", ["dynamics", "mode_coverage", "style", "translation", "inversion"])
def test_every_figure_is_a_pdf(name, tmp_path):
    s = fake_summary()
    samples, probes, dyn = fake_grids()
    path = tmp_path / f"{name}.pdf"
    {"dynamics": lambda: gan_dynamics.dynamics_figure(s, path, dyn),
     "mode_coverage": lambda: gan_dynamics.mode_coverage_figure(s, path),
     "style": lambda: gan_samples.style_figure(s, samples["stylegan"], path),
     "translation": lambda: gan_samples.translation_figure(s, samples, path),
     "inversion": lambda: gan_samples.inversion_figure(s, probes, path)}[name]()
    assert _is_pdf(path)


def test_make_gan_figures_writes_exactly_the_declared_names(tmp_path):
    s = fake_summary()
    written = make_gan_figures(s, *fake_grids(), tmp_path)
    names = gan_figure_names(Plan(s["order"] + list(s["translation"]), dynamics=s["dynamics"], probes=s["probes"]))
    assert names == ["gan_dynamics.pdf", "mode_coverage.pdf", "style_mixing.pdf", "translation.pdf",
                     "gan_inversion.pdf"]
    assert [p.name for p in written] == names
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)
    assert all(_is_pdf(p) for p in written)


@pytest.mark.parametrize("models, expected", [
    (["ddpm", "gmm"], []),
    (["vae"], ["mode_coverage.pdf"]),
    (["dcgan", "stylegan"], ["mode_coverage.pdf", "style_mixing.pdf"]),
    (["sr_l1"], ["translation.pdf"]),
])
def test_figure_names_follow_the_models(models, expected):
    assert gan_figure_names(Plan(models)) == expected
    assert sorted(gan_figure_names(Plan(models, dynamics=["dcgan"], probes=["vae"]))) == sorted(
        ["gan_dynamics.pdf", *expected, "gan_inversion.pdf"])


def test_missing_data_is_left_out_not_an_error(tmp_path):
    """StyleGAN diverged (no samples, no truncation sweep), no histograms, no probes' grids, no
    dynamics grids, no CycleGAN and an SR model whose grid is missing: every declared file is written (a
    figure whose every model diverged says so)."""
    s = fake_summary()
    del s["models"]["stylegan"]["truncation"]
    for m in s["models"].values():
        del m["class_histogram"], m["class_coverage"]
    del s["translation"]["cyclegan"]
    s["dynamics"]["wgan"]["runs"] = [_run("seed0", "seed"), _run("seed1", "seed")]   # every run diverged
    samples = {"stylegan": {}, "srgan": {"grid_sr": fake_grids()[0]["srgan"]["grid_sr"]}}
    written = make_gan_figures(s, samples, {}, {}, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written)
    assert len(written) == 5 and all(p.stat().st_size > 0 for p in written)
    # the studies absent altogether: their figures are not declared and not written
    empty = {**s, "dynamics": {}, "probes": {}, "translation": {}, "order": ["ddpm"]}
    assert make_gan_figures(empty, {}, {}, {}, tmp_path / "none") == []


def test_super_resolution_models_share_one_panel_when_their_inputs_agree():
    s = fake_summary()
    samples = fake_grids()[0]
    cycle, sr = gan_samples._translation_panels(s, samples)
    assert [p[0] for p in cycle] == ["CycleGAN, Sneaker → Ankle boot", "CycleGAN, Ankle boot → Sneaker"]
    assert [p[2] for p in cycle][0] == ["source", "translated", "reconstructed"]
    (title, grid, labels), = sr
    assert grid.shape[:2] == (5, 6) and labels[1:] == ["bicubic", "GAN", "L1 only", "original"]
    assert torch.equal(grid[3], samples["sr_l1"]["grid_sr"][:, 2]), "the L1 model's outputs in their own row"
    other = copy.deepcopy(samples)
    other["sr_l1"]["grid_sr"][:, 0] = 0                                      # different test images
    assert [p[0] for p in gan_samples._translation_panels(s, other)[1]] == ["SR-GAN (L1 + adv.)", "SR, L1 only"]


# --------------------------------------------------------------------------- tables

def test_gan_study_table_numbers():
    s = fake_summary()
    df = GT.gan_study_table(s)
    assert list(df["Model"]) == ["VAE", "DCGAN", "WGAN", "StyleGAN"], "the diffusion model stays out"
    dc = df.set_index("Model").loc["DCGAN"]
    assert dc["FD, seeds $\\downarrow$"] == pm(stat([30.0, 34.0])) == "$32.0 \\pm 2.8$"
    assert dc["$n$"] == "2"
    assert dc["Failed (div., coll.)"] == "2/3 (1, 1)", "1 diverged and 1 collapsed of 3 seeds (draws apart)"
    assert dc["FD, draws"] == f"{fmt(62.5)} [45, 80]"
    assert dc["Classes"] == "8/10"
    assert dc["KL $\\downarrow$"] == fmt(s["models"]["dcgan"]["class_coverage"]["class_kl"], 2)
    assert dc["$D(x)$ / $D(G(z))$"] == "0.62 / 0.41"
    assert dc["Recon.\\ MSE $\\downarrow$"] == "0.0300"
    assert dc["Probe acc.\\ (feat.\\ / pix.)"] == "0.790 / 0.750"
    wg = df.set_index("Model").loc["WGAN"]
    assert wg["$D(x)$ / $D(G(z))$"] == "--", "a critic's outputs are not probabilities"
    assert wg["PPL $\\downarrow$"] == "--" and wg["Failed (div., coll.)"] == "0/0 (0, 0), 2 not started"
    assert df.set_index("Model").loc["StyleGAN"]["FD, seeds $\\downarrow$"] == "--", "StyleGAN has no short runs"


def test_translation_table_numbers():
    s = fake_summary()
    df = GT.translation_table(s)
    cyc = s["translation"]["cyclegan"]["translation"]
    rows = {r["Measure"]: r for r in df.to_dict("records")}
    assert rows["success, Sneaker $\\to$ Ankle boot $\\uparrow$"]["Value"] == pm(cyc["success_ab"], decimals=3)
    fd_ba = rows["FD, Ankle boot $\\to$ Sneaker $\\downarrow$"]
    assert fd_ba["Value"] == pm(cyc["fd_ba"]) and fd_ba["Baseline"] == f"{pm(cyc['fd_ba_identity'])} (untranslated)"
    assert list(df["Model"]).count("CycleGAN") == 1, "a model is named on its first row only"
    sr = df[df["Measure"] == "PSNR (dB) $\\uparrow$"]
    assert list(sr["Value"]) == [pm(s["translation"][m]["translation"]["psnr"], decimals=2) for m in ("srgan", "sr_l1")]
    assert sr["Baseline"].iloc[0].endswith("(bicubic)")
    assert df.iloc[-1]["Model"] == "Original test images"


def test_write_gan_tables(tmp_path):
    s = fake_summary()
    paths = write_gan_tables(s, tmp_path)
    assert [p.name for p in paths] == ["gan_study.tex", "translation.tex"]
    study = paths[0].read_text()
    assert "\\toprule" in study and "$32.0 \\pm 2.8$" in study and "2/3 (1, 1)" in study
    assert "(untranslated)" in paths[1].read_text()
    assert write_gan_tables({**s, "dynamics": {}, "translation": {}}, tmp_path / "none") == []
    diverged = {**s, "translation": {"cyclegan": {"display": "CycleGAN", "n_ok": 0, "metrics": {}}}}
    assert "diverged" in write_gan_tables(diverged, tmp_path / "div")[1].read_text()
