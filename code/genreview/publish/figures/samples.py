"""The results section's image figures: every model's samples beside real images (samples.pdf), and
samples from fixed noise as training goes on (progress.pdf)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from ..formatting import fmt
from ..plan import Plan
from ..plotting import panels, save_figure, show
from .inputs import Draw


def figures(plan: Plan) -> dict[str, Draw]:
    """The files this module draws, each with its drawing function."""
    return {"samples.pdf": lambda i, p: samples_figure(i.summary, i.real, i.samples, p),
            "progress.pdf": lambda i, p: progress_figure(i.summary, i.progress, p)}


def samples_figure(summary, real: torch.Tensor, samples: dict, path):
    """Real images beside each model's samples, captioned with FD."""
    names = summary["order"]
    fig, axes = panels(len(names) + 1, 1.75, 2.0)
    show(axes[0], real[:36], 6, f"Real {summary['dataset_name']}")
    for ax, name in zip(axes[1:], names):
        m = summary["models"][name]
        grid = samples[name].get("grid")
        if grid is None or len(grid) == 0:
            ax.text(0.5, 0.5, "diverged", ha="center", va="center", transform=ax.transAxes)
            ax.axis("off")
            ax.set_title(m["display"])
            continue
        fd = m["metrics"].get("fd", {}).get("mean")
        show(ax, grid[:36], 6, f"{m['display']} (FD {fmt(fd)})")
    save_figure(fig, path)


def progress_figure(summary, progress: dict, path):
    """Samples from fixed noise at the epochs listed in config: one panel per model, a row per epoch."""
    names = [n for n in summary["order"] if progress.get(n)]
    heights = [len(progress[n]) + 0.9 for n in names] or [1]
    fig, axes = plt.subplots(len(names) or 1, 1, figsize=(6.0, 0.5 * sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, name in zip(axes[:, 0], names):
        epochs = sorted(progress[name])
        rows = torch.cat([progress[name][e][:12] for e in epochs])
        show(ax, rows, min(12, len(progress[name][epochs[0]])), summary["models"][name]["display"])
        h = rows.shape[-2] + 1
        ax.set_yticks([h * (i + 0.5) for i in range(len(epochs))], [f"epoch {e}" for e in epochs])
        ax.tick_params(length=0)
    save_figure(fig, path)
