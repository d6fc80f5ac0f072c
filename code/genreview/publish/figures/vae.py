"""The VAE section's figures: test images and the VAE's reconstructions (vae_reconstructions.pdf), and
interpolations between encoded test images (VAE) and between noise vectors (DCGAN) (interpolation.pdf)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from ..plan import Plan
from ..plotting import notice, save_figure, show
from .inputs import Draw

INTERPOLATED = ("vae", "dcgan")  # the models of the interpolation figure


def figures(plan: Plan) -> dict[str, Draw]:
    """The files this module draws, each with its drawing function."""
    out = {}
    if "vae" in plan.sampling_models:
        out["vae_reconstructions.pdf"] = lambda i, p: recon_figure(i.summary, i.samples["vae"].get("recon"), p)
    if set(INTERPOLATED) & set(plan.sampling_models):
        out["interpolation.pdf"] = lambda i, p: interpolation_figure(
            i.summary, {m: s["interp"] for m, s in i.samples.items() if "interp" in s}, p)
    return out


def recon_figure(summary, recon: torch.Tensor, path):
    """Test images (top) and the VAE's reconstructions (bottom), one per class; recon: uint8 (2, K, C, H, W),
    None when the VAE's first seed diverged."""
    if recon is None:
        return notice(path, "the run diverged")
    fig, ax = plt.subplots(figsize=(4.2, 1.0))
    show(ax, torch.cat([recon[0], recon[1]]), recon.shape[1])
    h = recon.shape[-2] + 1
    ax.set_yticks([h * 0.5, h * 1.5], ["test", "recon."])
    ax.tick_params(length=0)
    save_figure(fig, path)


def interpolation_figure(summary, interps: dict, path):
    """Rows of interpolations: between encoded test images (VAE), between noise vectors (GAN)."""
    names = [n for n in summary["order"] if n in interps]
    if not names:
        return notice(path, "the run diverged")
    fig, axes = plt.subplots(1, len(names), figsize=(3.3 * len(names), 2.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        it = interps[name]  # (rows, steps, C, H, W)
        kind = "latent" if summary["models"][name]["family"] == "vae" else "noise"
        show(ax, it.flatten(0, 1), it.shape[1], f"{summary['models'][name]['display']}: {kind} interpolation")
    save_figure(fig, path)
