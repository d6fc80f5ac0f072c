"""Name-to-family registry: each family is one file with a config dataclass beside its model."""
from __future__ import annotations

import dataclasses

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

# How the paper names each model and which family it belongs to.
DISPLAY = {
    "gmm": ("GMM", "classical"),
    "hmm": ("HMM", "classical"),
    "pixelcnn": ("PixelCNN", "autoregressive"),
    "flow": ("RealNVP", "flow"),
    "vae": ("VAE", "vae"),
    "dcgan": ("DCGAN", "gan"),
    "wgan": ("WGAN", "gan"),
    "wgan_gp": ("WGAN-GP", "gan"),
    "cgan": ("Projection cGAN", "gan"),
    "stylegan": ("StyleGAN", "gan"),
    "cyclegan": ("CycleGAN", "translation"),
    "srgan": ("SR-GAN (L1 + adv.)", "translation"),
    "sr_l1": ("SR, L1 only", "translation"),
    "ddpm": ("DDPM", "diffusion"),
    "iddpm": ("Improved DDPM", "diffusion"),
    "ldm": ("LDM", "diffusion"),
    "guided_ldm": ("Guided LDM", "diffusion"),
    "cascade": ("Cascaded DDPM", "diffusion"),
}

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
