"""What every figure shares: matplotlib's style for the paper, the family colours, image grids,
panel layouts, log axes and the atomic save."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torchvision.utils import make_grid  # noqa: E402

from ..files import atomic_path  # noqa: E402
from .formatting import fmt  # noqa: E402

plt.rcParams.update({"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7,
                     "xtick.labelsize": 7, "ytick.labelsize": 7, "figure.dpi": 150, "savefig.dpi": 300,
                     "pdf.fonttype": 42})
COLORS = {"vae": "#1b9e77", "gan": "#d95f02", "diffusion": "#7570b3", "classical": "#666666",
          "autoregressive": "#e7298a", "flow": "#66a61e"}
PER_ROW = 4  # panels per row in the multi-model figures


def _grid(images: torch.Tensor, nrow: int, pad: int = 1) -> np.ndarray:
    """uint8 (N, C, H, W) -> an (H', W') or (H', W', 3) array for imshow."""
    g = make_grid(images.float() / 255, nrow=nrow, padding=pad, pad_value=1.0)
    g = g.permute(1, 2, 0).numpy()
    return g[..., 0] if images.shape[1] == 1 else g


def show(ax, images, nrow, title=None):
    """uint8 (N, C, H, W) images as one grid: grey for one channel, colour for three."""
    g = _grid(images, nrow)
    ax.imshow(g, cmap="gray" if g.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([]), ax.set_yticks([])
    for s in ax.spines.values():
        s.set_visible(False)
    if title:
        ax.set_title(title)


def save_figure(fig, path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=Path(path).suffix[1:], bbox_inches="tight", pad_inches=0.02)
    plt.close(fig)


def panels(n: int, width: float, height: float, per_row: int = PER_ROW):
    """A grid of n panels, per_row to a row; unused axes hidden."""
    cols = min(n, per_row)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, list(axes.flat[:n])


def label_columns(ax, width: int, labels, fontsize=6) -> None:
    """Column labels under an image grid whose cells are `width` pixels wide (plus the grid's padding)."""
    ax.set_xticks([(width + 1) * (i + 0.5) for i in range(len(labels))], labels, fontsize=fontsize)
    ax.tick_params(length=0)


def label_rows(ax, height: int, labels, fontsize=6) -> None:
    ax.set_yticks([(height + 1) * (i + 0.5) for i in range(len(labels))], labels, fontsize=fontsize)
    ax.tick_params(length=0)


def log_axis(ax):
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):  # plain numbers at 1, 2 and 5 per decade
        axis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: fmt(v, 2)))
        axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.grid(alpha=0.3, which="both")


def notice(path, why: str) -> None:
    """A declared figure whose only model diverged: one line that says so, in place of the drawing (which
    models a figure shows is known from the config; that a run diverges only after it ran)."""
    fig, ax = plt.subplots(figsize=(3, 1))
    ax.text(0.5, 0.5, f"not available: {why}", ha="center", va="center")
    ax.axis("off")
    save_figure(fig, path)
