"""Name-to-family registry (each family is one file with a config dataclass beside its model), `build`,
and `load_trained`, the model of a trained run."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from ..files import load_torch
from .base import GenerativeModel
from .cascade import CascadeConfig, CascadedDiffusion
from .gmm import GMM, GMMConfig
from .hmm import HMM, HMMConfig
from .dcgan import DCGAN, DCGANConfig
from .ddpm import DDPM, DDPMConfig, IDDPMConfig
from .flow import Flow, FlowConfig
from .wgan import WGAN, WGANConfig
from .wgan_gp import WGANGP, WGANGPConfig
from .cgan import CGANConfig, ProjectionCGAN
from .ldm import GuidedLatentDiffusionConfig, LatentDiffusion, LatentDiffusionConfig
from .pixelcnn import PixelCNN, PixelCNNConfig
from .stylegan import StyleGAN, StyleGANConfig
from .cyclegan import CycleGAN, CycleGANConfig
from .srgan import SuperResolutionConfig, SuperResolutionGAN, SuperResolutionL1Config
from .vae import VAE, VAEConfig

REGISTRY: dict[str, tuple[type[GenerativeModel], type]] = {
    "gmm": (GMM, GMMConfig),
    "hmm": (HMM, HMMConfig),
    "pixelcnn": (PixelCNN, PixelCNNConfig),
    "flow": (Flow, FlowConfig),
    "vae": (VAE, VAEConfig),
    "dcgan": (DCGAN, DCGANConfig),
    "wgan": (WGAN, WGANConfig),
    "wgan_gp": (WGANGP, WGANGPConfig),
    "cgan": (ProjectionCGAN, CGANConfig),
    "stylegan": (StyleGAN, StyleGANConfig),
    "cyclegan": (CycleGAN, CycleGANConfig),
    "srgan": (SuperResolutionGAN, SuperResolutionConfig),
    "sr_l1": (SuperResolutionGAN, SuperResolutionL1Config),
    "ddpm": (DDPM, DDPMConfig),
    "iddpm": (DDPM, IDDPMConfig),
    "ldm": (LatentDiffusion, LatentDiffusionConfig),
    "guided_ldm": (LatentDiffusion, GuidedLatentDiffusionConfig),
    "cascade": (CascadedDiffusion, CascadeConfig),
}

# How the paper names each model.
LABELS = {
    "gmm": "GMM",
    "hmm": "HMM",
    "pixelcnn": "PixelCNN",
    "flow": "RealNVP",
    "vae": "VAE",
    "dcgan": "DCGAN",
    "wgan": "WGAN",
    "wgan_gp": "WGAN-GP",
    "cgan": "Projection cGAN",
    "stylegan": "StyleGAN",
    "cyclegan": "CycleGAN",
    "srgan": "SR-GAN (L1 + adv.)",
    "sr_l1": "SR, L1 only",
    "ddpm": "DDPM",
    "iddpm": "Improved DDPM",
    "ldm": "LDM",
    "guided_ldm": "Guided LDM",
    "cascade": "Cascaded DDPM",
}
# name -> (label, family), the family as the model's class declares it (`GenerativeModel.family`).
DISPLAY = {name: (label, REGISTRY[name][0].family) for name, label in LABELS.items()}

# Models renamed since an earlier release: the old name gets an error naming the new one.
RENAMED = {"cfg": "guided_ldm"}  # `cfg` collided with the name of every config variable


def renamed_hint(name) -> str:
    """' (renamed: use ...)' for a model's old name, else ''."""
    return f" (model {name!r} was renamed {RENAMED[name]!r}: use the new name)" if name in RENAMED else ""


def config_fields(name: str) -> set[str]:
    return {f.name for f in dataclasses.fields(REGISTRY[name][1])}


def build(name: str, hparams: dict, shape) -> GenerativeModel:
    """Instantiate family `name` with its dataclass defaults overridden by `hparams`."""
    if name not in REGISTRY:
        raise KeyError(f"unknown model {name!r}{renamed_hint(name)}; known: {', '.join(REGISTRY)}")
    cls, cfg_cls = REGISTRY[name]
    unknown = set(hparams) - config_fields(name)
    if unknown:
        raise KeyError(f"hparams.{name}: unknown key(s) {sorted(unknown)}; allowed: {sorted(config_fields(name))}")
    return cls(cfg_cls(**hparams), shape)


def load_trained(path, device) -> GenerativeModel:
    """The model of a trained run's checkpoint (`model.pt`, as `genreview.training.train` saves it), on
    `device` and in eval mode. Raises ResultsFileError, naming the fix, when it is missing or unreadable, and
    RuntimeError, saying how to retrain, when the checkpoint no longer fits the family's current network."""
    ck = load_torch(path, map_location="cpu")
    model = build(ck["model"], ck["hparams"], ck["shape"])
    try:
        model.load_state_dict(ck["state_dict"])
    except RuntimeError as e:
        raise RuntimeError(
            f"{path} does not fit the current {ck['model']} code (it was trained before the network changed). "
            f"Retrain it: snakemake --cores all --forcerun train (or delete {Path(path).parent}).\n{e}") from e
    return model.to(device).eval()
