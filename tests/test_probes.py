"""The probes (probes.py): the path length, GAN inversion, the linear probe and the features each model
offers it, checked on cases whose answer is known; then probe_run end to end on tiny trained runs, and
a diverged run recorded, not probed."""
from __future__ import annotations

import json
from dataclasses import asdict

import pytest
import torch

from genreview import config as C
from genreview.evaluation.classifier import DomainClassifier
from genreview.evaluation.evaluate import _slerp_grid
from genreview.models import build
from genreview.studies.probes import (ProbeConfig, _differentiable_generator, _latent_generator, feature_extractor,
                                      invert, linear_probe, path_length, probe_run, slerp)

from conftest import SHAPE, smoke_config, smoke_hparams

GANS = ["dcgan", "wgan", "wgan_gp", "cgan", "stylegan"]
# Small networks whatever the smoke profile says (it may not list every GAN variant).
TINY = {**{name: {"z_dim": 16, "width_g": 8, "width_d": 8} for name in ("dcgan", "wgan", "wgan_gp", "cgan")},
        "stylegan": {"z_dim": 16, "w_dim": 16, "mapping_layers": 2, "width_g": 8, "width_d": 8}}


def _model(name, seed=0):
    torch.manual_seed(seed)
    return build(name, {**smoke_hparams(name), **TINY.get(name, {})}, SHAPE).eval()


def _clf(seed=0):
    """An untrained domain classifier: the path length only needs some fixed feature map."""
    torch.manual_seed(seed)
    return DomainClassifier(1, 10, width=8, features=32).eval().requires_grad_(False)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _z(n, seed=1, dim=16):
    return torch.randn(n, dim, generator=_gen(seed))


@torch.no_grad()
def _lively(model):
    """Scale the weights of a fresh DCGAN-family generator by 10 per layer, so that its images vary
    across z (at DCGAN's N(0, 0.02) initialisation they are nearly constant)."""
    for p in model.sampling_network().parameters():
        if p.dim() > 1:
            p.mul_(10)
    return model


# --------------------------------------------------------------------------- the latent path

def test_slerp_is_the_interpolation_figures_path():
    a, b = _z(3, 1), _z(3, 2)
    steps = 5
    t = torch.linspace(0, 1, steps)
    ours = torch.stack([slerp(a, b, ti.expand(3)) for ti in t], 1).flatten(0, 1)   # (3 * steps, D)
    torch.testing.assert_close(ours, _slerp_grid(a, b, steps))
    torch.testing.assert_close(slerp(a, b, torch.zeros(3)), a)
    torch.testing.assert_close(slerp(a, b, torch.ones(3)), b)


@pytest.mark.parametrize("name", GANS)
def test_the_differentiable_generator_is_generate(name):
    """Inversion's generator must be the sampler's: same images as `generate`, but with a gradient."""
    m = _model(name)
    net = m.sampling_network()
    if name == "stylegan":  # make the fixed noise maps and the truncation matter
        for layer in net.synthesis.layers:
            layer.noise_strength.data = torch.randn_like(layer.noise_strength)
        net.w_avg.data = torch.randn_like(net.w_avg)
        m.cfg.truncation = 0.7
    z, y = _z(6).requires_grad_(True), torch.arange(6)
    out = _differentiable_generator(m)(z, y)
    assert out.requires_grad
    _, sampler = _latent_generator(m)
    torch.testing.assert_close(out.detach(), sampler(z.detach(), y))
    if name == "cgan":
        assert not torch.allclose(sampler(z.detach(), y), sampler(z.detach(), (y + 1) % 10)), "labels are ignored"


# --------------------------------------------------------------------------- path length

@pytest.mark.parametrize("name", ["vae", *GANS])
def test_path_length_reports_its_keys(name):
    res = path_length(_model(name), _clf(), 40, 1e-2, _gen())
    assert set(res) == {"ppl", "ppl_median", "ppl_pairs", "ppl_eps", "ppl_space"}
    assert res["ppl_pairs"] == 40 and res["ppl_eps"] == 1e-2 and res["ppl_space"] == "z (slerp)"
    assert 0 < res["ppl"] < float("inf") and 0 < res["ppl_median"] < float("inf"), res
    again = path_length(_model(name), _clf(), 40, 1e-2, _gen())
    assert again == res, "the same seed must give the same path length"


def test_path_length_is_the_formula_with_its_trimmed_mean():
    """The pairs redrawn as path_length draws them (z1, z2, then t, from one generator) and the distance
    ||f(G(slerp(z1, z2, t))) - f(G(slerp(z1, z2, t + eps)))||^2 / eps^2 computed directly; with 200 pairs
    the 1st-99th percentile trim of Karras et al. drops exactly the smallest and the largest."""
    m, clf, n, eps = _lively(_model("dcgan")), _clf(), 200, 1e-2
    g = _gen()
    z1, z2 = torch.randn(n, 16, generator=g), torch.randn(n, 16, generator=g)
    t = torch.rand(n, generator=g)
    with torch.no_grad():
        f1, f2 = clf.features(m.generate(slerp(z1, z2, t))), clf.features(m.generate(slerp(z1, z2, t + eps)))
    d = ((f1 - f2).pow(2).sum(1) / eps ** 2).double().sort().values                  # (n,), ascending
    res = path_length(m, clf, n, eps, _gen())
    assert res["ppl"] == pytest.approx(float(d[1:-1].mean()), rel=1e-4)
    assert res["ppl_median"] == pytest.approx(float(d[n // 2 - 1:n // 2 + 1].mean()), rel=1e-4)
    assert res["ppl"] != pytest.approx(float(d.mean()), rel=1e-3), "the trim should matter here"


def test_path_length_is_empty_for_a_model_without_a_latent_generator():
    gmm = build("gmm", smoke_hparams("gmm"), SHAPE)
    assert path_length(gmm, _clf(), 10, 1e-2, _gen()) == {}


def test_path_length_is_zero_when_the_generator_ignores_z():
    m = _model("dcgan")
    m.sampling_network().fc[0].weight.data.zero_()   # G(z) is the same image for every z
    res = path_length(m, _clf(), 40, 1e-2, _gen())
    assert res["ppl"] == 0 and res["ppl_median"] == 0, res


def test_path_length_grows_as_the_square_of_the_generators_scale():
    """DCGAN's generator before tanh is positively homogeneous in its first layer's weight (no bias,
    batch norm in eval mode at its initial statistics, ReLUs); near initialisation tanh and the
    classifier are close to linear over the tiny images' range, so doubling that weight multiplies
    every squared feature distance, hence the path length, by about 4."""
    ppl = {}
    for scale in (1.0, 2.0):
        m = _model("dcgan")
        m.sampling_network().fc[0].weight.data.mul_(scale)
        ppl[scale] = path_length(m, _clf(), 40, 1e-2, _gen())["ppl"]
    assert 3.5 < ppl[2.0] / ppl[1.0] < 4.5, ppl


def test_the_conditional_path_keeps_one_class():
    """A cGAN that ignores z but not the class has path length 0 only if both ends share the class."""
    m = _model("cgan")
    net = m.sampling_network()
    net.fc[0].weight.data[:, :m.cfg.z_dim] = 0   # the input is [z, embed(y)]: drop z
    z = _z(2)
    assert not torch.allclose(m.generate(z, 0), m.generate(z, 1)), "the class should change the image"
    assert path_length(m, _clf(), 40, 1e-2, _gen())["ppl"] == 0


# --------------------------------------------------------------------------- inversion

@pytest.mark.parametrize("name", ["dcgan", "cgan", "stylegan"])
def test_inversion_recovers_an_image_the_generator_made(name):
    m = _model(name)
    if name != "stylegan":
        _lively(m)
    y = torch.arange(16) % 10
    with torch.no_grad():
        target = _differentiable_generator(m)(_z(16, seed=5), y)                  # G(z*)
    before = [p.detach().clone() for p in m.parameters()]
    start, _ = invert(m, target, 0, 0.05, _gen(1), y)                            # MSE at the initial z
    mse, rec = invert(m, target, 100, 0.05, _gen(1), y)
    assert mse.shape == (16,) and rec.shape == target.shape
    assert 0 <= rec.min() and rec.max() <= 1
    assert mse.mean() < 0.1 * start.mean(), f"MSE {float(mse.mean()):.3g} from {float(start.mean()):.3g} at z0"
    assert all(torch.equal(a, p) for a, p in zip(before, m.parameters())), "inversion changed the generator"
    assert all(p.grad is None for p in m.parameters()), "inversion left gradients on the model"


def test_inversion_is_for_gans():
    with pytest.raises(TypeError, match="not a GAN"):
        invert(_model("vae"), torch.rand(2, *SHAPE), 1, 0.05, _gen())


# --------------------------------------------------------------------------- the linear probe

def test_linear_probe_separates_separable_classes_and_not_random_labels():
    g = _gen(0)
    n, dim, k = 1500, 32, 10
    y = torch.randint(0, k, (n,), generator=g)
    centres = 8 * torch.randn(k, dim, generator=g)
    x = centres[y] + torch.randn(n, dim, generator=g)                   # well-separated Gaussian clusters
    assert linear_probe(x[:1000], y[:1000], x[1000:], y[1000:]) == 1.0
    noise = torch.randn(n, dim, generator=g)
    acc = linear_probe(noise[:1000], y[:1000], noise[1000:], y[1000:])
    assert abs(acc - 1 / k) < 0.06, f"random labels should be at chance (0.1), got {acc}"


@pytest.mark.parametrize("name", ["dcgan", "wgan_gp", "cgan", "stylegan"])
def test_discriminator_features_are_the_input_of_its_last_layer(name):
    m = _model(name)
    feat_name, fn = feature_extractor(m)
    x, y = torch.rand(8, *SHAPE), torch.arange(8)
    with torch.no_grad():
        f = fn(x)
        logit = m.D(x * 2 - 1, y) if name == "cgan" else m.D(x * 2 - 1)
        if name == "stylegan":
            expect = m.D.out(f).squeeze(1)
        elif name == "cgan":  # D(x, y) = psi(phi(x)) + <embed(y), phi(x)>
            expect = m.D.head(f).squeeze(1) + (m.D.embed(y) * f).sum(1)
        else:
            expect = m.D.head(f).squeeze(1)
    assert feat_name == "discriminator" and f.dim() == 2 and len(f) == 8
    assert f.shape[1] == (4 * TINY[name]["width_d"] if name == "stylegan" else m.D.head.in_features)
    torch.testing.assert_close(expect, logit)


def test_vae_features_are_the_encoder_mean_and_other_models_offer_none():
    m = _model("vae")
    name, fn = feature_extractor(m)
    x = torch.rand(4, *SHAPE)
    with torch.no_grad():
        assert name == "encoder" and torch.equal(fn(x), m.encode(x)[0])
    assert fn(x).shape == (4, m.cfg.latent_dim)
    assert feature_extractor(build("gmm", smoke_hparams("gmm"), SHAPE)) is None


# --------------------------------------------------------------------------- one run, end to end

TINY_PROBE = ProbeConfig(n_pairs=20, invert_images=8, invert_steps=5, probe_train=300, probe_test=200, grid_rows=4)


def _probe_spec(root, model, seed=0):
    return {"dataset": "fashion_mnist", "data_root": str(root), "device": "cpu", "model": model, "seed": seed,
            "probe": asdict(TINY_PROBE)}


@pytest.mark.parametrize("name, kind, feature", [("dcgan", "inversion", "discriminator"),
                                                 ("vae", "encoder", "encoder")])
def test_probe_run_on_a_trained_run(name, kind, feature, fmnist_root, tiny_classifier_dir, tmp_path):
    from genreview.training.train import train

    spec = C.train_spec(smoke_config(fmnist_root), name, 0)
    spec["train"]["max_steps"] = 3
    train(spec, tmp_path / "run")
    res = probe_run(_probe_spec(fmnist_root, name), tmp_path / "run", tiny_classifier_dir / "classifier.pt",
                    tmp_path / "probe")
    saved = json.loads((tmp_path / "probe" / "probes.json").read_text())
    assert saved == json.loads(json.dumps(res))
    assert res["status"] == "ok" and res["model"] == name and res["seed"] == 0
    for key in ("ppl", "ppl_median", "recon_mse", "probe_acc", "probe_acc_pixels", "probe_seconds"):
        assert isinstance(res[key], float) and res[key] >= 0, (key, res[key])
    assert res["ppl_pairs"] == 20 and res["recon_images"] == 8 and res["recon_kind"] == kind
    assert res["probe_feature"] == feature
    assert res["probe_train_images"] == 300 and res["probe_test_images"] == 200
    assert res["probe_config"] == asdict(TINY_PROBE)
    hp = spec["hparams"]
    assert res["probe_dim"] == (hp["latent_dim"] if name == "vae" else 4 * hp["width_d"] * (28 // 8 + 1) ** 2)
    assert 0.5 < res["probe_acc_pixels"] <= 1, "pixels alone classify Fashion-MNIST far above chance"
    grid = torch.load(tmp_path / "probe" / "probes.pt")["recon"]
    assert grid.shape == (4, 2, *SHAPE) and grid.dtype == torch.uint8
    assert grid[:, 0].float().std() > 0, "the targets should be real test images"


def test_a_diverged_run_is_recorded_not_probed(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "train_summary.json").write_text(json.dumps({"status": "diverged", "diverged_at": 5}))
    res = probe_run(_probe_spec(tmp_path / "no-data", "dcgan", seed=3), run, tmp_path / "no-classifier.pt",
                    tmp_path / "probe")
    assert res == {"model": "dcgan", "seed": 3, "status": "diverged"}
    assert json.loads((tmp_path / "probe" / "probes.json").read_text()) == res
    assert torch.load(tmp_path / "probe" / "probes.pt") == {}
