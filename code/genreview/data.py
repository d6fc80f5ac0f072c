"""Datasets: real images in torchvision's layout, loaded whole into memory as uint8.

Fashion-MNIST (Xiao et al. 2017) is the default and comes from the Debian package
`dataset-fashion-mnist`, gunzipped into `<data.root>/FashionMNIST/raw/` where
`torchvision.datasets.FashionMNIST` reads it. MNIST and CIFAR-10 use torchvision's own
downloads, for machines that are online.
"""
from __future__ import annotations

import gzip
import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .utils import log, save_json

FASHION_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]

CLASS_NAMES = {
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
    "mnist": [str(i) for i in range(10)],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer",
                "dog", "frog", "horse", "ship", "truck"],
}

PRETTY = {"fashion_mnist": "Fashion-MNIST", "mnist": "MNIST", "cifar10": "CIFAR-10"}


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


def _fashion_raw(root: Path) -> Path:
    return Path(root) / "FashionMNIST" / "raw"


def missing_data_message(dataset: str, root: str | Path, debian_dir: str | Path) -> str | None:
    """None when the data can be prepared, else an error message naming the fix."""
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
    else:
        _download(dataset, root)
    info = {"dataset": dataset, "root": str(root)}
    for split in ("train", "test"):
        s = load(dataset, root, split)
        info[split] = {"n": len(s), "shape": list(s.shape),
                       "sha1": hashlib.sha1(s.images.numpy().tobytes()).hexdigest()}
    save_json(info, manifest)
    return info


def _download(dataset: str, root: Path) -> None:
    cls = _torchvision_class(dataset)
    try:
        for train in (True, False):
            cls(root, train=train, download=True)
    except Exception as e:  # network errors come in many types
        raise DataError(f"{PRETTY[dataset]} could not be downloaded by torchvision into {root}/ ({e}). "
                        f"Connect to the internet, or place the files there by hand and set data.root, "
                        f"or use dataset: fashion_mnist, which works offline.") from e


def _torchvision_class(dataset: str):
    import torchvision.datasets as tvd
    return {"fashion_mnist": tvd.FashionMNIST, "mnist": tvd.MNIST, "cifar10": tvd.CIFAR10}[dataset]


def load(dataset: str, root: str | Path, split: str,
         debian_dir: str | Path = "/usr/share/datasets/fashion-mnist") -> Split:
    """Load a whole split as uint8 tensors, (N, C, H, W)."""
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
