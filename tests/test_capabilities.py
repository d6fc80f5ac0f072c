"""What a model can do is declared on its class (`GenerativeModel`'s docstring lists the declarations), each
family's declarations hold when its model is used that way, and no caller probes a model instead."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from genreview.models import DISPLAY, REGISTRY, GenerativeModel, build, load_trained

from conftest import SHAPE, smoke_hparams

PKG = Path(__file__).resolve().parents[1] / "code" / "genreview"
FAMILIES = {"classical", "autoregressive", "flow", "vae", "gan", "translation", "diffusion"}


def _model(name):
    torch.manual_seed(0)
    return build(name, smoke_hparams(name), SHAPE).eval()


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_class_declarations_take_known_values(name):
    cls = REGISTRY[name][0]
    assert cls.family in FAMILIES and DISPLAY[name][1] == cls.family
    assert cls.likelihood in ("exact", "bound", "none")
    assert cls.translator in (None, "unpaired", "super_resolution")
    assert (cls.translator is not None) == (cls.family == "translation")
    assert cls.latent_sampling in (None, "generator", "encoder")
    assert set(cls.samplers) <= {"ddpm", "ddim"} and bool(cls.samplers) == (cls.family == "diffusion")
    assert cls.d_output in (None, "probability", "critic")
    assert cls.d_output is None or cls.family == "gan", "d_output describes a GAN's training statistics"
    assert cls.probe_features in (None, "discriminator", "encoder")
    assert not cls.style_mixing or cls.latent_sampling == "generator"
    assert cls.classical == (cls.family == "classical")


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_a_model_does_what_it_declares(name):
    m = _model(name)
    x = torch.rand(4, *SHAPE, generator=_gen(1))
    labels = torch.arange(4) % max(1, m.num_classes)
    assert m.conditional == (m.num_classes > 0)
    with torch.no_grad():
        if m.translator:
            with pytest.raises(NotImplementedError):
                m.sample(2, generator=_gen())
            if m.translator == "unpaired":
                assert m.translate_ab(x).shape == x.shape and m.translate_ba(x).shape == x.shape
                assert m.train_classes == (m.cfg.domain_a, m.cfg.domain_b)
            else:
                assert m.upscale(m.downsample(x)).shape == x.shape
        else:
            assert m.train_classes is None
            opts = {"sampler": "ddim", "steps": 2} if m.samplers else {}
            cond = {"labels": labels} if m.conditional else {}
            out = m.sample(4, generator=_gen(), **cond, **opts)
            assert out.shape == (4, *SHAPE) and out.min() >= 0 and out.max() <= 1
        for sampler in m.samplers:
            assert len(m.make_scheduler(sampler, 3).timesteps) == 3
            assert m.network_evaluations(sampler, 3) >= 3
        if m.latent_sampling == "encoder":
            mean, logvar = m.encode(x)
            assert mean.shape == logvar.shape == (4, m.latent_dim)
            assert m.decode(mean).shape == m.reconstruct(x).shape == x.shape
        if m.style_mixing:
            z = torch.randn(3, m.latent_dim, generator=_gen(2))
            assert m.style_mix(z[:1], z[1:], m.num_layers // 2).shape == (2, 3, *SHAPE)
            assert m.truncation_sweep(z, (0.5, 1.0)).shape == (3, 2, *SHAPE)
        if m.probe_features is not None:
            f = m.features(x)
            assert f.dim() == 2 and len(f) == 4
        else:
            with pytest.raises(NotImplementedError):
                m.features(x)
    if m.latent_sampling == "generator":  # generate and its differentiable twin give the same images
        z = torch.randn(4, m.latent_dim, generator=_gen(3)).requires_grad_(True)
        cond = (labels,) if m.conditional else ()
        img = m.differentiable_generate(z, *cond)
        img.sum().backward()
        assert z.grad is not None and z.grad.abs().sum() > 0
        torch.testing.assert_close(img.detach(), m.generate(z.detach(), *cond))
    else:
        assert m.latent_dim == (m.cfg.latent_dim if m.latent_sampling == "encoder" else 0)


def test_the_base_class_declares_a_plain_unconditional_sampler():
    m = GenerativeModel(None, SHAPE)
    declared = (m.family, m.translator, m.latent_sampling, m.samplers, m.d_output, m.probe_features)
    assert declared == ("", None, None, (), None, None)
    assert not m.conditional and not m.style_mixing and m.train_classes is None and m.latent_dim == 0


def test_load_trained_round_trips_and_names_a_stale_checkpoint(tmp_path):
    m = _model("vae")
    ck = {"model": "vae", "hparams": smoke_hparams("vae"), "shape": SHAPE, "state_dict": m.state_dict()}
    torch.save(ck, tmp_path / "model.pt")
    back = load_trained(tmp_path / "model.pt", "cpu")
    assert not back.training and all(torch.equal(v, back.state_dict()[k]) for k, v in m.state_dict().items())
    stale = {**ck, "hparams": {**ck["hparams"], "width": ck["hparams"].get("width", 32) + 8}}
    torch.save(stale, tmp_path / "stale.pt")
    with pytest.raises(RuntimeError, match="does not fit the current vae code"):
        load_trained(tmp_path / "stale.pt", "cpu")


# Capability probes: hasattr/getattr on a model, a model class or its config, or isinstance against a family.
MODEL_CLASSES = sorted({c.__name__ for cls, _ in REGISTRY.values() for c in cls.__mro__
                        if issubclass(c, GenerativeModel)})
PROBE = re.compile(r"\b(hasattr|getattr)\(((model|m)\b|REGISTRY\[[^]]*\]\[0\])"
                   rf"|\bisinstance\([^,]+,[^)]*\b({'|'.join(MODEL_CLASSES)})\b")


def test_no_caller_probes_a_model_for_what_it_can_do():
    """Callers read the declarations (see GenerativeModel); a probe like hasattr(model, "make_scheduler")
    lets the interface grow by accident. The private loader is gone too: use models.load_trained."""
    found = []
    for path in sorted(PKG.rglob("*.py")):
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if PROBE.search(line) or "_load_model" in line:
                found.append(f"{path.relative_to(PKG)}:{i}: {line.strip()}")
    assert not found, "capability probes (read the model's declarations instead):\n" + "\n".join(found)
