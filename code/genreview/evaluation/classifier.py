"""The domain classifier behind the evaluation protocol.

Inception features mean little on 28x28 grey garments or 32x32 colour thumbnails, so every
family is judged in the feature space of one small CNN trained here on the train split of the
configured dataset (any number of channels) and then frozen.
Its penultimate activations feed the Frechet distance, KID and precision/recall/
density/coverage; its logits feed the Inception Score. Its test accuracy goes in the paper.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .. import data as D
from ..files import load_torch
from ..hashing import state_dict_digest
from ..hparams import hp
from ..utils import log, pick_device, save_json, seed_everything, set_threads, torch_save


@dataclass
class ClassifierConfig:
    epochs: int = hp(3, minimum=1, maximum=10**4)
    batch_size: int = hp(128, minimum=1)
    lr: float = hp(2e-3, exclusive_minimum=0)
    width: int = hp(32, minimum=1)
    features: int = hp(128, minimum=2)  # size of the penultimate layer, the protocol's feature space
    max_steps: int = hp(0, minimum=0, maximum=10**8)  # > 0 caps training (smoke runs)


class DomainClassifier(nn.Module):
    """conv-conv-pool x2, then a `features`-wide layer and the class logits.

    Args: channels, num_classes, width (first conv channels), features (penultimate width).
    """

    def __init__(self, channels: int = 1, num_classes: int = 10, width: int = 32, features: int = 128):
        super().__init__()

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True))

        self.body = nn.Sequential(
            block(channels, width), block(width, width), nn.MaxPool2d(2),        # (B, w, H/2, W/2)
            block(width, 2 * width), block(2 * width, 2 * width), nn.MaxPool2d(2),  # (B, 2w, H/4, W/4)
            nn.AdaptiveAvgPool2d(4), nn.Flatten(),                                # (B, 32w)
        )
        self.fc = nn.Sequential(nn.Linear(2 * width * 16, features), nn.ReLU(True))
        self.drop = nn.Dropout(0.3)
        self.head = nn.Linear(features, num_classes)
        self.num_features = features

    def features(self, x):  # x in [0, 1], (B, C, H, W) -> (B, features)
        return self.fc(self.body(x * 2 - 1))

    def forward(self, x):  # -> logits (B, classes)
        return self.head(self.drop(self.features(x)))


class Features(nn.Module):
    """uint8 images -> penultimate features; the `feature` module torchmetrics' FID and KID call."""

    def __init__(self, clf: DomainClassifier):
        super().__init__()
        self.clf = clf.eval()
        self.num_features = clf.num_features

    @torch.no_grad()
    def forward(self, imgs):  # (B, C, H, W) uint8 -> (B, F)
        return self.clf.features(imgs.float() / 255)


def _augment(x: torch.Tensor) -> torch.Tensor:
    """Random shifts of up to 2 pixels (reflect-padded crops)."""
    b, _, h, w = x.shape
    pad = F.pad(x, (2, 2, 2, 2), mode="reflect")
    i, j = torch.randint(0, 5, (2,)).tolist()
    return pad[:, :, i:i + h, j:j + w]


@torch.no_grad()
def accuracy(clf: DomainClassifier, split: D.Split, device, batch: int = 1000) -> float:
    clf.eval()
    correct = 0
    for i in range(0, len(split), batch):
        x = D.to_unit(split.images[i:i + batch]).to(device)
        correct += (clf(x).argmax(1).cpu() == split.labels[i:i + batch]).sum().item()
    return correct / len(split)


@torch.no_grad()
def predict(clf: DomainClassifier, images: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    """Predicted classes of uint8 images, (N,)."""
    clf.eval()
    device = next(clf.parameters()).device
    return torch.cat([clf(D.to_unit(images[i:i + batch]).to(device)).argmax(1).cpu()
                      for i in range(0, len(images), batch)])


def fit_network(net: torch.nn.Module, loss_fn, batches: D.Batches, epochs: int, max_steps: int, lr: float,
                what: str) -> int:
    """AdamW (weight decay 1e-4) with a one-cycle schedule over `epochs` of `batches`, at most `max_steps`
    steps (0: no cap), minimising loss_fn(x, y); the judges of sample quality are trained by it. Returns the
    steps taken."""
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    total = epochs * len(batches)
    if max_steps:
        total = min(total, max_steps)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total)
    step = 0
    for epoch in range(epochs):
        net.train()
        for x, y in batches.epoch(epoch):
            loss = loss_fn(x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 100 == 0:
                log.info("%s step %d/%d loss %.4f", what, step, total, loss.item())
            if step >= total:
                return step
    return step


def train_classifier(spec: dict, out: str | Path, threads: int | None = None) -> dict:
    """Train the frozen judge; writes `classifier.pt` and `classifier.json` (test accuracy) into `out`."""
    set_threads(threads)
    out = Path(out)
    seed_everything(spec["seed"])
    device = pick_device(spec["device"])
    cfg = ClassifierConfig(**spec["classifier"])
    train, test = (D.load(spec["dataset"], spec["data_root"], s) for s in ("train", "test"))
    clf = DomainClassifier(train.shape[0], int(train.labels.max()) + 1, cfg.width, cfg.features).to(device)
    batches = D.Batches(train, cfg.batch_size, spec["seed"], device)
    step = fit_network(clf, lambda x, y: F.cross_entropy(clf(_augment(x)), y), batches, cfg.epochs, cfg.max_steps,
                       cfg.lr, "classifier")
    acc = accuracy(clf, test, device)
    log.info("classifier test accuracy %.4f", acc)
    clf.cpu()
    torch_save({"state_dict": clf.state_dict(), "channels": train.shape[0],
                "num_classes": int(train.labels.max()) + 1, "cfg": spec["classifier"]}, out / "classifier.pt")
    info = {"test_accuracy": acc, "steps": step, "features": cfg.features,
            "params": sum(p.numel() for p in clf.parameters())}
    save_json(info, out / "classifier.json")
    return info


def load_classifier(path: str | Path, device="cpu") -> DomainClassifier:
    ck = load_torch(path, map_location="cpu")
    cfg = ClassifierConfig(**ck["cfg"])
    clf = DomainClassifier(ck["channels"], ck["num_classes"], cfg.width, cfg.features)
    clf.load_state_dict(ck["state_dict"])
    return clf.to(device).eval().requires_grad_(False)


def classifier_digest(path: str | Path) -> str:
    """The judge's weights, not its file's bytes (which change with every save): a re-trained classifier
    with equal weights leaves every run current. Building the network draws no number from the caller's
    random stream."""
    with torch.random.fork_rng(devices=[]):
        return state_dict_digest(load_classifier(path).state_dict())
