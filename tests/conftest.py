"""Shared fixtures: real Fashion-MNIST prepared once per session, a small subset for quick
training, a tiny domain classifier for the metric tests, and helpers for the config and
a temporary copy of the workflow.

The tests run on CPU with one intra-op thread: on a small machine that is shared with other
jobs, two spinning OpenMP threads per process are many times slower than one.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
CONFIG_YAML = REPO / "config.yaml"
DEBIAN_DIR = Path(os.environ.get("GENREVIEW_TEST_DEBIAN_DIR", "/usr/share/datasets/fashion-mnist"))
CPU = torch.device("cpu")
SHAPE = (1, 28, 28)

torch.set_num_threads(int(os.environ.get("GENREVIEW_TEST_THREADS", "1")))

from genreview import config as C  # noqa: E402
from genreview import data as D  # noqa: E402


# --------------------------------------------------------------------------- config helpers

def load_raw_config() -> dict:
    """A fresh copy of the repository's config.yaml, as the Snakefile reads it."""
    return copy.deepcopy(C.load(CONFIG_YAML))


def smoke_config(data_root: str | Path = "data") -> dict:
    raw = load_raw_config()
    raw["profile"] = "smoke"
    raw.setdefault("data", {})["root"] = str(data_root)
    raw["data"]["debian_dir"] = str(DEBIAN_DIR)
    raw["device"] = "cpu"
    return C.resolve(raw)


def smoke_hparams(name: str) -> dict:
    """The smoke profile's hyperparameters of one family (tiny networks), as train_spec passes them."""
    return C.train_spec(smoke_config(), name, 0)["hparams"]


# --------------------------------------------------------------------------- workflow copy

from genreview.bench.workflow import WORKFLOW_FILES, copy_workflow, snakemake_cmd, snakemake_env  # noqa: E402,F401


# --------------------------------------------------------------------------- data

@pytest.fixture(scope="session")
def fmnist_root(tmp_path_factory) -> Path:
    """Fashion-MNIST in torchvision's layout under a temporary data.root, prepared by the real code."""
    missing = D.missing_data_message("fashion_mnist", "/nonexistent", DEBIAN_DIR)
    if missing:
        pytest.skip(f"Fashion-MNIST is not installed (Debian package dataset-fashion-mnist): {missing}")
    root = tmp_path_factory.mktemp("data")
    info = D.prepare("fashion_mnist", root, DEBIAN_DIR, root / "prepared.manifest.json")
    assert info["train"]["n"] == 60_000 and info["test"]["n"] == 10_000, info
    return root


@pytest.fixture(scope="session")
def train_split(fmnist_root) -> D.Split:
    return D.load("fashion_mnist", fmnist_root, "train")


@pytest.fixture(scope="session")
def test_split(fmnist_root) -> D.Split:
    return D.load("fashion_mnist", fmnist_root, "test")


@pytest.fixture(scope="session")
def small_train(train_split) -> D.Split:
    """1024 real training images (a fixed random subset) for quick training."""
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(train_split), generator=g)[:1024]
    return D.Split(train_split.images[idx].clone(), train_split.labels[idx].clone())


# --------------------------------------------------------------------------- classifier

@pytest.fixture(scope="session")
def tiny_classifier_dir(fmnist_root, tmp_path_factory) -> Path:
    """A folder holding classifier.pt and classifier.json: the protocol's DomainClassifier trained
    for 100 steps by the real code."""
    from genreview.evaluation.classifier import train_classifier

    spec = C.classifier_spec(smoke_config(fmnist_root))
    spec["device"] = "cpu"
    spec["classifier"].update(epochs=1, max_steps=100, batch_size=64, width=16)
    out = tmp_path_factory.mktemp("classifier")
    train_classifier(spec, out)
    return out


@pytest.fixture(scope="session")
def tiny_classifier(tiny_classifier_dir):
    """(classifier, info) of `tiny_classifier_dir`."""
    import json
    from genreview.evaluation.classifier import load_classifier

    return (load_classifier(tiny_classifier_dir / "classifier.pt"),
            json.loads((tiny_classifier_dir / "classifier.json").read_text()))
