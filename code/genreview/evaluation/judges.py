"""More than one judge: the samples of every run scored in three feature spaces that share no training run.

Every quality number of the protocol is a distance in the domain classifier's features (`classifier.py`),
so every verdict rests on one network's idea of what matters. A ranking that holds in the features of
judges trained independently, of another architecture and without labels, is a finding about the
samples; one that reverses is a finding about the judge. The judges:

- `domain`: the protocol's DomainClassifier (plain conv-conv-pool blocks, flattened 4x4 map, seed 0),
  trained by the `train_classifier` rule; its reference features are the `reference` rule's.
- `resnet`: a second classifier of another architecture (`ResNetJudge`: residual blocks, strided
  convolutions, global average pooling) trained here on the same labels at another seed.
- `autoencoder`: a small convolutional autoencoder trained on reconstruction alone, no labels
  (`ConvAutoencoder`); its features are the bottleneck's channels, globally average- and max-pooled.

`train_judges` trains the last two once per build, saves each with its weights' digest and its reference
features (the test images' features, written by `metrics.Reference.write`), and scores the real floor and
the noise ceiling in each. `judge_run` scores one run's samples (samples.pt, written by the `evaluate`
rule) in every judge with `metrics.Reference.score`: the same FD, FD_inf, KID, precision/recall and
density/coverage as metrics.json, computed by the same code.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .. import data as D
from ..files import ResultsFileError, load_json, load_torch, rebuild_command
from ..hashing import state_dict_digest
from ..hparams import MODEL_NAME, hp
from ..utils import log, pick_device, save_json, seed_everything, set_threads, torch_save
from .classifier import _augment, classifier_digest, fit_network, load_classifier
from .evaluate import reference_images, reference_selection, shared_reference
from .metrics import EvalConfig, Reference, embed, uniform_noise

JUDGES = ("domain", "resnet", "autoencoder")  # every judge, in the order judges.json lists them
DOMAIN = "domain"                             # the protocol's classifier: trained by `train_classifier`
TRAINED = ("resnet", "autoencoder")           # trained by `train_judges`
METRICS = ("fd", "fd_inf", "fd_inf_boot", "kid", "kid_std", "precision", "recall", "density", "coverage")
JUDGE_FORMAT = 1  # the layout of a judge's file (`_save_judge`)


@dataclass
class JudgesConfig:
    judges: list[str] = hp(list(JUDGES), unique_items=True, min_items=1, items={"enum": list(JUDGES)},
                           doc="the feature spaces every run's samples are scored in")
    models: list[str] | None = hp(None, unique_items=True, items=MODEL_NAME,
                                  doc="the models whose runs are judged (one job per main seed), models that "
                                      "draw samples; null: every one of them")
    seed: int = hp(1, minimum=0, maximum=2**32 - 1,
                   doc="seed of the judges' training (the domain classifier's is 0)")
    epochs: int = hp(3, minimum=1, maximum=10**4)
    max_steps: int = hp(0, minimum=0, maximum=10**8, doc="> 0 caps each judge's training (smoke runs)")
    batch_size: int = hp(128, minimum=1)
    lr: float = hp(2e-3, exclusive_minimum=0)
    resnet_width: int = hp(16, minimum=1, doc="channels of the ResNet judge's first stage (x2, x4 after)")
    resnet_features: int = hp(128, minimum=2, doc="width of the ResNet judge's penultimate layer, its features")
    ae_width: int = hp(16, minimum=1, doc="channels of the autoencoder's first layer")
    ae_latent: int = hp(32, minimum=1, doc="bottleneck channels; the features are their global mean and max")
    n: int = hp(0, minimum=0, maximum=10**6, doc="samples scored per run (the first n of samples.pt); 0 = all")

    def trained(self) -> list[str]:
        """The judges `train_judges` trains (all listed but the domain classifier)."""
        return [j for j in self.judges if j in TRAINED]


# --------------------------------------------------------------------------- the networks

class _Residual(nn.Module):
    """Two 3x3 convolutions with a skip connection (He et al. 2016), the first strided to downsample."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.skip = (nn.Identity() if stride == 1 and cin == cout else
                     nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x):
        return F.relu(self.body(x) + self.skip(x))


class ResNetJudge(nn.Module):
    """A small ResNet: a stem, three residual stages (width w, 2w, 4w; the last two strided), global average
    pooling, a `features`-wide layer (the judge's features) and the class logits. Unlike DomainClassifier: skip
    connections, strided convolutions instead of max pooling, and a globally pooled map instead of a
    flattened 4x4 one.

    Args: channels, num_classes, width, features."""

    def __init__(self, channels: int = 1, num_classes: int = 10, width: int = 16, features: int = 128):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU(True))
        self.body = nn.Sequential(
            _Residual(width, width, 1),                                   # (B, w, H, W)
            _Residual(width, 2 * width, 2),                               # (B, 2w, H/2, W/2)
            _Residual(2 * width, 4 * width, 2),                           # (B, 4w, H/4, W/4)
            nn.AdaptiveAvgPool2d(1), nn.Flatten())                        # (B, 4w)
        self.fc = nn.Sequential(nn.Linear(4 * width, features), nn.ReLU(True))
        self.head = nn.Linear(features, num_classes)
        self.num_features = features

    def features(self, x):  # x in [0, 1], (B, C, H, W) -> (B, features)
        return self.fc(self.body(self.stem(x * 2 - 1)))

    def forward(self, x):  # -> logits (B, classes)
        return self.head(self.features(x))


class ConvAutoencoder(nn.Module):
    """A convolutional autoencoder trained on reconstruction alone: encoder (two stride-2 convolutions to a
    `latent`-channel map at a quarter of the resolution), decoder (two transposed convolutions back). Its
    features are the bottleneck map's channels, averaged and maxed over positions: (B, 2 * latent). It has
    no class head, so `metrics.embed` gives no logits for it (no Inception Score).

    Args: channels, width, latent."""

    def __init__(self, channels: int = 1, width: int = 16, latent: int = 32):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True),          # (B, w, H/2, W/2)
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.LeakyReLU(0.2, True),         # (B, 2w, H/4, W/4)
            nn.Conv2d(2 * width, latent, 3, 1, 1))                                 # (B, latent, H/4, W/4)
        self.decoder = nn.Sequential(
            nn.Conv2d(latent, 2 * width, 3, 1, 1), nn.LeakyReLU(0.2, True),
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.LeakyReLU(0.2, True),  # (B, w, H/2, W/2)
            nn.ConvTranspose2d(width, channels, 4, 2, 1))                          # (B, C, H, W) logits
        self.num_features = 2 * latent

    def encode(self, x):  # x in [0, 1] -> (B, latent, H/4, W/4)
        return self.encoder(x * 2 - 1)

    def features(self, x):  # x in [0, 1] -> (B, 2 * latent)
        z = self.encode(x)
        return torch.cat([z.mean((2, 3)), z.amax((2, 3))], 1)

    def forward(self, x):  # -> the reconstruction in [0, 1]
        return torch.sigmoid(self.decoder(self.encode(x)))


def build_judge(name: str, cfg: JudgesConfig, channels: int, num_classes: int) -> nn.Module:
    if name == "resnet":
        return ResNetJudge(channels, num_classes, cfg.resnet_width, cfg.resnet_features)
    if name == "autoencoder":
        return ConvAutoencoder(channels, cfg.ae_width, cfg.ae_latent)
    raise ValueError(f"no trainable judge {name!r}: the judges trained here are {', '.join(TRAINED)}")


# --------------------------------------------------------------------------- training

def _loss(name: str, net: nn.Module, x, y):
    if name == "resnet":
        return F.cross_entropy(net(_augment(x)), y)
    return F.mse_loss(net(x), x)  # the autoencoder sees no label


@torch.no_grad()
def _test_score(name: str, net: nn.Module, test: D.Split, device, batch: int = 1000) -> dict:
    """The resnet's test accuracy, or the autoencoder's test reconstruction error (mean squared, pixels in [0, 1])."""
    net.eval()
    total = 0.0
    for i in range(0, len(test), batch):
        x = D.to_unit(test.images[i:i + batch]).to(device)
        if name == "resnet":
            total += (net(x).argmax(1).cpu() == test.labels[i:i + batch]).sum().item()
        else:
            total += F.mse_loss(net(x), x, reduction="sum").item() / x[0].numel()
    return {"test_accuracy" if name == "resnet" else "test_mse": total / len(test)}


def train_judge(name: str, cfg: JudgesConfig, train: D.Split, test: D.Split, device,
                seed: int) -> tuple[nn.Module, dict]:
    """One judge trained on `train` (the autoencoder without its labels); returns (network on the CPU, eval
    mode, frozen; its record: steps, params, features and its test score)."""
    seed_everything(seed)
    num_classes = int(train.labels.max()) + 1
    net = build_judge(name, cfg, train.shape[0], num_classes).to(device)
    batches = D.Batches(train, min(cfg.batch_size, len(train)), seed, device)
    step = fit_network(net, lambda x, y: _loss(name, net, x, y), batches, cfg.epochs, cfg.max_steps, cfg.lr,
                       f"judge {name}")
    info = {"steps": step, "features": net.num_features, "params": sum(p.numel() for p in net.parameters()),
            "seed": seed, "architecture": type(net).__name__, "labels": name == "resnet",
            **_test_score(name, net, test, device)}
    log.info("judge %s: %s", name, info)
    return net.cpu().eval().requires_grad_(False), info


def judge_file(judges_dir: str | Path, name: str) -> Path:
    """The weights of a trained judge."""
    return Path(judges_dir) / f"{name}.pt"


def judge_reference_file(judges_dir: str | Path, name: str) -> Path:
    """A trained judge's features of the reference (test) images (`metrics.Reference.write`)."""
    return Path(judges_dir) / f"{name}_reference.pt"


def _save_judge(net: nn.Module, name: str, cfg: JudgesConfig, channels: int, num_classes: int, path: Path) -> None:
    torch_save({"format": JUDGE_FORMAT, "judge": name, "state_dict": net.state_dict(), "channels": channels,
                "num_classes": num_classes, "cfg": dataclasses.asdict(cfg)}, path)


def load_judge(path: str | Path, name: str, device="cpu") -> nn.Module:
    """The trained judge `name` saved at `path`, frozen. A file of another judge, or not a judge's file at all
    (the domain classifier's, say), is refused with the command that rebuilds it."""
    ck = load_torch(path, map_location="cpu")
    got = ck.get("judge") if isinstance(ck, dict) else None
    if got != name or ck.get("format") != JUDGE_FORMAT:
        what = f"the judge {got!r}" if got else "no judge (another kind of file)"
        raise ResultsFileError(
            f"{path} holds {what}, format {ck.get('format') if isinstance(ck, dict) else None!r}, not the "
            f"{name!r} judge of format {JUDGE_FORMAT}: rebuild it with `{rebuild_command(path)}` "
            f"(the `train_judges` rule), or delete it")
    net = build_judge(name, JudgesConfig(**ck["cfg"]), ck["channels"], ck["num_classes"])
    net.load_state_dict(ck["state_dict"])
    return net.to(device).eval().requires_grad_(False)


def judge_digest(path: str | Path, name: str) -> str:
    """The judge's weights, not its file's bytes (as `classifier.classifier_digest`)."""
    with torch.random.fork_rng(devices=[]):
        return state_dict_digest(load_judge(path, name).state_dict())


def _picked(scores: dict) -> dict:
    return {k: scores.get(k) for k in METRICS}


def train_judges(spec: dict, out: str | Path, threads: int | None = None) -> dict:
    """Train every listed judge but the domain classifier, once per build. Writes into `out`: <judge>.pt (the
    weights), <judge>_reference.pt (its features of the reference test images, for every `judge_run`), and
    judges.json: {judge: {"architecture", "labels", "seed", "steps", "params", "features", "digest",
    "test_accuracy" (resnet) or "test_mse" (autoencoder), "floor": {metric: value}, "ceiling": {...}}},
    the floor being N real train images and the ceiling N uniform-noise images scored in that judge, as
    reference.json holds them for the domain classifier.

    spec: dataset, data_root, device, judges (JudgesConfig as a dict), eval (EvalConfig as a dict: the
    reference images, N, and the metrics' settings)."""
    set_threads(threads)
    out = Path(out)
    cfg = JudgesConfig(**spec["judges"])
    ev = EvalConfig(**{**spec["eval"], "inception_weights": None})
    device = pick_device(spec["device"])
    train, test = (D.load(spec["dataset"], spec["data_root"], s) for s in ("train", "test"))
    num_classes = int(train.labels.max()) + 1
    g = torch.Generator().manual_seed(ev.seed)
    n = min(ev.n_samples, len(train))
    floor_images = train.images[torch.randperm(len(train), generator=g)[:n]]
    ceiling_images = uniform_noise(n, train.shape, ev.seed)
    info = {}
    for i, name in enumerate(cfg.trained()):
        net, rec = train_judge(name, cfg, train, test, device, cfg.seed + i)
        path = judge_file(out, name)
        _save_judge(net, name, cfg, train.shape[0], num_classes, path)
        digest = judge_digest(path, name)
        ref = Reference.from_images(net.to(device), reference_images(test.images, ev), ev)
        ref.write(judge_reference_file(out, name), digest, reference_selection(spec, ev))
        info[name] = {**rec, "digest": digest, "floor": _picked(ref.score(floor_images)),
                      "ceiling": _picked(ref.score(ceiling_images))}
        log.info("judge %s: floor FD %.4g, ceiling FD %.4g", name, info[name]["floor"]["fd"],
                 info[name]["ceiling"]["fd"])
    save_json(info, out / "judges.json")
    return info


# --------------------------------------------------------------------------- scoring

def judge_references(spec: dict, classifier: str | Path, reference: str | Path | None, judges_dir: str | Path,
                     test: D.Split, device) -> dict[str, tuple[Reference, str]]:
    """judge -> (its Reference, its weights' digest), for every listed judge: the domain classifier's from the
    `reference` rule's file (computed here when `reference` is None), the others from their files in
    `judges_dir`, each checked against its judge's digest and this job's selection of test images."""
    cfg = JudgesConfig(**spec["judges"])
    ev = EvalConfig(**{**spec["eval"], "inception_weights": None})
    out = {}
    for name in cfg.judges:
        if name == DOMAIN:
            clf = load_classifier(classifier, device)
            out[name] = (shared_reference(reference, clf, classifier, ev, spec, test), classifier_digest(classifier))
            continue
        path = judge_file(judges_dir, name)
        net = load_judge(path, name, device)
        digest = judge_digest(path, name)
        out[name] = (Reference.load(judge_reference_file(judges_dir, name), net, ev, digest,
                                    reference_selection(spec, ev), rule="train_judges"), digest)
    return out


def score_in_judges(fake: torch.Tensor, references: dict[str, tuple[Reference, str]]) -> dict[str, dict]:
    """uint8 images `fake` (N, C, H, W) scored in every judge: judge -> {fd, fd_inf, kid, kid_std, precision,
    recall, density, coverage, "features": the judge's feature width, "digest": its weights' digest}."""
    out = {}
    for name, (ref, digest) in references.items():
        scores = ref.score(fake, embed(ref.clf, fake), replicates=ref.cfg.bootstrap)
        out[name] = {**_picked(scores), "features": int(ref.features.shape[1]), "digest": digest}
        log.info("judge %s: FD %.4g, precision %.3f, recall %.3f", name, scores["fd"], scores["precision"],
                 scores["recall"])
    return out


def load_samples(path: str | Path) -> torch.Tensor:
    """The N generated images of a run, uint8 (N, C, H, W), from the `evaluate` rule's samples.pt. An older
    samples.pt holds only a grid of 64: it is refused with the command that rebuilds it."""
    ck = load_torch(path)
    if "samples" not in ck:
        raise ResultsFileError(
            f"{path} holds no 'samples' (only {sorted(ck)}): it was written before the evaluation kept its N "
            f"samples for the judges. Rebuild it: {rebuild_command(path)}")
    return ck["samples"]


def judge_run(spec: dict, samples: str | Path, metrics: str | Path, classifier: str | Path, judges_dir: str | Path,
              out: str | Path, threads: int | None = None, reference: str | Path | None = None) -> dict:
    """Score one run's samples in every judge; writes out/judges.json:
    {"model", "seed", "status", "n", "judges": {judge: {fd, fd_inf, kid, kid_std, precision, recall, density,
    coverage, features, digest}}}. A run that diverged (metrics.json's status is not "ok") gets its status and
    no scores ("judges": {}).

    spec: dataset, data_root, device, model, seed, eval (EvalConfig as a dict), judges (JudgesConfig as a dict).
    samples, metrics: the `evaluate` rule's samples.pt and metrics.json of the run; classifier, reference: the
    domain classifier and the `reference` rule's features (None: computed here); judges_dir: the
    `train_judges` rule's folder."""
    set_threads(threads)
    out = Path(out)
    cfg = JudgesConfig(**spec["judges"])
    status = load_json(metrics).get("status", "ok")
    result = {"model": spec["model"], "seed": spec["seed"], "status": status, "n": 0, "judges": {}}
    if status != "ok":
        log.warning("%s seed %s %s: nothing to judge", spec["model"], spec["seed"], status)
        save_json(result, out / "judges.json")
        return result
    fake = load_samples(samples)
    if cfg.n:
        fake = fake[:cfg.n]
    device = pick_device(spec["device"])
    seed_everything(spec["eval"]["seed"] + spec["seed"])
    test = D.load(spec["dataset"], spec["data_root"], "test")
    refs = judge_references(spec, classifier, reference, judges_dir, test, device)
    result.update(n=len(fake), judges=score_in_judges(fake, refs))
    save_json(result, out / "judges.json")
    return result
