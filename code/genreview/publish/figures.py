"""The paper's figures, drawn by matplotlib from the results files only."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torchvision.utils import make_grid  # noqa: E402

from .. import data as D  # noqa: E402
from .report import fmt  # noqa: E402
from ..models import DISPLAY, REGISTRY  # noqa: E402
from .gan_figures import make_gan_figures  # noqa: E402
from ..paths import figure_names  # noqa: E402
from ..utils import atomic_path  # noqa: E402

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


def _show(ax, images, nrow, title=None):
    """uint8 (N, C, H, W) images as one grid: grey for one channel, colour for three."""
    g = _grid(images, nrow)
    ax.imshow(g, cmap="gray" if g.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([]), ax.set_yticks([])
    for s in ax.spines.values():
        s.set_visible(False)
    if title:
        ax.set_title(title)


def _save(fig, path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=Path(path).suffix[1:], bbox_inches="tight", pad_inches=0.02)
    plt.close(fig)


def _panels(n: int, width: float, height: float, per_row: int = PER_ROW):
    """A grid of n panels, per_row to a row; unused axes hidden."""
    cols = min(n, per_row)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, list(axes.flat[:n])


def samples_figure(summary, real: torch.Tensor, samples: dict, path):
    """Real images beside each model's samples, captioned with FD."""
    names = summary["order"]
    fig, axes = _panels(len(names) + 1, 1.75, 2.0)
    _show(axes[0], real[:36], 6, f"Real {summary['dataset_name']}")
    for ax, name in zip(axes[1:], names):
        m = summary["models"][name]
        grid = samples[name].get("grid")
        if grid is None or len(grid) == 0:
            ax.text(0.5, 0.5, "diverged", ha="center", va="center", transform=ax.transAxes)
            ax.axis("off")
            ax.set_title(m["display"])
            continue
        fd = m["metrics"].get("fd", {}).get("mean")
        _show(ax, grid[:36], 6, f"{m['display']} (FD {fmt(fd)})")
    _save(fig, path)


def progress_figure(summary, progress: dict, path):
    """Samples from fixed noise at the epochs listed in config: one panel per model, a row per epoch."""
    names = [n for n in summary["order"] if progress.get(n)]
    heights = [len(progress[n]) + 0.9 for n in names] or [1]
    fig, axes = plt.subplots(len(names) or 1, 1, figsize=(6.0, 0.5 * sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, name in zip(axes[:, 0], names):
        epochs = sorted(progress[name])
        rows = torch.cat([progress[name][e][:12] for e in epochs])
        _show(ax, rows, min(12, len(progress[name][epochs[0]])), summary["models"][name]["display"])
        h = rows.shape[-2] + 1
        ax.set_yticks([h * (i + 0.5) for i in range(len(epochs))], [f"epoch {e}" for e in epochs])
        ax.tick_params(length=0)
    _save(fig, path)


def recon_figure(summary, recon: torch.Tensor, path):
    """Test images (top) and the VAE's reconstructions (bottom), one per class."""
    fig, ax = plt.subplots(figsize=(4.2, 1.0))
    _show(ax, torch.cat([recon[0], recon[1]]), recon.shape[1])
    h = recon.shape[-2] + 1
    ax.set_yticks([h * 0.5, h * 1.5], ["test", "recon."])
    ax.tick_params(length=0)
    _save(fig, path)


def interpolation_figure(summary, interps: dict, path):
    """Rows of interpolations: between encoded test images (VAE), between noise vectors (GAN)."""
    names = [n for n in summary["order"] if n in interps]
    fig, axes = plt.subplots(1, len(names), figsize=(3.3 * len(names), 2.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        it = interps[name]  # (rows, steps, C, H, W)
        kind = "latent" if summary["models"][name]["family"] == "vae" else "noise"
        _show(ax, it.flatten(0, 1), it.shape[1], f"{summary['models'][name]['display']}: {kind} interpolation")
    _save(fig, path)


def chain_figure(summary, name, s: dict, path):
    """The ancestral denoising chain: x_t (top block) and the predicted x_0 (bottom block)."""
    ts = s["chain_t"]
    x, x0 = s["chain_x"][:4], s["chain_x0"][:4]  # (4, T', C, H, W)
    fig, axes = plt.subplots(2, 1, figsize=(0.36 * len(ts) + 0.4, 3.6), gridspec_kw={"hspace": 0.45})
    _show(axes[0], x.flatten(0, 1), len(ts), "$x_t$")
    _show(axes[1], x0.flatten(0, 1), len(ts), "predicted $x_0$")
    w = x.shape[-1] + 1
    for ax in axes:
        ax.set_xticks([w * (i + 0.5) for i in range(len(ts))], [f"{t}" for t in ts])
        ax.tick_params(length=0)
    axes[1].set_xlabel("timestep $t$")
    _save(fig, path)


def variant_chains_figure(summary, samples: dict, names: list[str], path, per_model: int = 2):
    """Each diffusion variant's ancestral chain for `per_model` samples: x_t above the network's
    prediction of x_0 from it, from t = T - 1 (left) to t = 0 (right)."""
    fig, axes = _panels(max(1, len(names)), 3.3, 0.3 * 2 * per_model + 0.6, per_row=2)
    fig.subplots_adjust(hspace=0.45, wspace=0.25)
    for ax, name in zip(axes, names):
        s = samples[name]
        ts = s["chain_t"]
        rows = torch.cat([torch.stack([s["chain_x"][i], s["chain_x0"][i]]) for i in range(per_model)])
        _show(ax, rows.flatten(0, 1), len(ts), summary["models"][name]["display"])
        h, w = rows.shape[-2] + 1, rows.shape[-1] + 1
        ax.set_yticks([h * (i + 0.5) for i in range(2 * per_model)], ["$x_t$", "pred. $x_0$"] * per_model)
        ax.set_xticks([w * (i + 0.5) for i in range(len(ts))], [f"{t}" for t in ts], fontsize=5)
        ax.tick_params(length=0)
    _save(fig, path)


def _repel(pts: dict, gap: float = 0.055, near: float = 0.35):
    """(name, (x, y), label_y) for scatter labels on log axes: labels of points whose x lie within
    `near` decades of each other are pushed apart to at least `gap` decades in y."""
    placed = []
    for name, (x, y) in sorted(pts.items(), key=lambda kv: kv[1][1]):
        ly = np.log10(y)
        for _, (px, _), pl in placed:
            if abs(np.log10(x) - np.log10(px)) < near and ly - np.log10(pl) < gap:
                ly = np.log10(pl) + gap
        placed.append((name, (x, y), 10 ** ly))
    return placed


def training_compute_figure(summary, path):
    """FD against the wall time of training (log scales), every model of the build: what each
    family bought with its training budget on this machine."""
    fig, ax = plt.subplots(figsize=(3.3, 2.6))
    pts = {}
    for name in summary["order"]:
        m = summary["models"][name]
        fd, sec = m["metrics"].get("fd"), m["metrics"].get("train_seconds")
        if not fd or fd["mean"] is None or not sec or sec["mean"] is None:
            continue
        ax.errorbar(sec["mean"], fd["mean"], xerr=sec["std"] or None, yerr=fd["std"] or None, fmt="o",
                    color=COLORS.get(m["family"]), capsize=2, ms=4)
        pts[name] = (sec["mean"], fd["mean"])
    for name, (x, y), ly in _repel(pts):
        ax.annotate(summary["models"][name]["display"], (x, y), xytext=(x * 1.12, ly), fontsize=6, va="center",
                    arrowprops={"arrowstyle": "-", "lw": 0.4, "color": "0.5"} if abs(np.log10(ly / y)) > 0.02
                    else None)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.margins(x=0.45, y=0.15)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: fmt(v, 2)))
        axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("training wall time (s)")
    ax.set_ylabel(f"FD (N={summary['n_samples']}, log scale)")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    _save(fig, path)


CURVE_STYLES = ("-", "--", ":", "-.")  # models of one family share its colour; line style and marker tell them apart
CURVE_MARKERS = ("o", "s", "D", "^", "v")


def _log_axis(ax):
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):  # plain numbers at 1, 2 and 5 per decade
        axis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: fmt(v, 2)))
        axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.grid(alpha=0.3, which="both")


def _linear_path(n: int, per_segment: int = 24):
    """Positions along a polyline of n points, per_segment to a segment (for np.interp against `marks`),
    and the positions of the points themselves."""
    marks = np.arange(n) * per_segment
    return np.arange(max(1, (n - 1) * per_segment + 1)), marks


def quality_compute_figure(summary, path):
    """Quality against training compute (`curves`): the FD of each model's weight snapshots against the
    training wall time (left) and the images seen (right) up to each, log scales, a line per model in
    its family's colour; a band spans one standard deviation over seeds where several ran. The dashed
    line is the threshold, and a cross marks where a curve first reaches it."""
    curves = {m: c for m, c in (summary.get("curves") or {}).items() if c.get("rows")}
    names = [m for m in summary["order"] if m in curves] + [m for m in curves if m not in summary["order"]]
    fig, axes = plt.subplots(1, 2, figsize=(6.6, 2.6), sharey=True)
    per_family: dict = {}
    for name in names:
        c = curves[name]
        family = DISPLAY[name][1]
        k = per_family[family] = per_family.get(family, -1) + 1
        style = {"color": COLORS.get(family), "ls": CURVE_STYLES[k % len(CURVE_STYLES)],
                 "marker": CURVE_MARKERS[k % len(CURVE_MARKERS)], "ms": 3, "lw": 1}
        rows = [r for r in c["rows"] if r["fd"]["mean"] is not None]
        fd = np.array([r["fd"]["mean"] for r in rows])
        sd = np.array([r["fd"]["std"] or 0.0 for r in rows])
        tt = c.get("time_to_threshold")
        for ax, key in zip(axes, ("wall", "images")):
            x = np.array([r[key]["mean"] for r in rows])
            # straight between snapshots in linear units, as time_to_threshold interpolates (curved on log axes)
            dense, marks = _linear_path(len(x))
            ax.plot(np.interp(dense, marks, x), np.interp(dense, marks, fd), markevery=list(marks),
                    label=DISPLAY[name][0] if ax is axes[0] else None, **style)
            if sd.any():
                lo, hi = np.maximum(fd - sd, fd / 10), fd + sd
                ax.fill_between(np.interp(dense, marks, x), np.interp(dense, marks, lo), np.interp(dense, marks, hi),
                                color=style["color"], alpha=0.15, lw=0)
            if tt:
                ax.plot([tt[key]], [tt["fd"]], "x", color=style["color"], ms=5, mew=1.2)
    if curves:
        first = curves[names[0]]
        for ax in axes:
            ax.axhline(first["threshold"], color="gray", ls="--", lw=0.8,
                       label=f"threshold, FD {fmt(first['threshold'])}" if ax is axes[0] else None)
        axes[0].set_ylabel(f"FD (N={first['n']})")
    for ax in axes:
        _log_axis(ax)
    axes[0].set_xlabel("training wall time (s)")
    axes[1].set_xlabel("images seen in training")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, frameon=False, loc="upper center", ncol=min(4, max(1, len(labels))),
               bbox_to_anchor=(0.5, 1.0 + 0.045 * (len(labels) // 4 + 1)))
    fig.tight_layout()
    _save(fig, path)


def curves_figure(summary, logs: dict, path):
    """Training losses against images seen, one panel per gradient-trained model."""
    names = [n for n in summary["order"] if len(logs.get(n, [])) > 1]
    fig, axes = _panels(max(1, len(names)), 2.3, 1.8)
    for ax, name in zip(axes, names):
        rows = logs[name]
        m = summary["models"][name]
        keys = [k for k in ("d_loss", "g_loss") if rows and k in rows[0]] or ["loss"]
        for k in keys:
            ax.plot([r["images"] / 1e3 for r in rows], [r[k] for r in rows], lw=0.8, label=k.replace("_", " "))
        ax.set_title(m["display"])
        ax.set_xlabel("images seen (thousands)")
        if len(keys) > 1:
            ax.legend(frameon=False)
        ax.set_ylabel(LOSS_LABEL.get(m["family"], "loss"))
        ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)


LOSS_LABEL = {"vae": "negative ELBO (nats)", "gan": "BCE loss", "diffusion": "noise MSE",
              "autoregressive": "NLL (nats/dim)", "flow": "NLL (nats/dim)"}


def _means(summary, key: str) -> dict:
    """model -> mean of metric `key`, for the models that report it."""
    return {n: s["metrics"][key]["mean"] for n, s in summary["models"].items()
            if (s["metrics"].get(key) or {}).get("mean") is not None}


def _offsets(xs: dict) -> dict:
    """Label offsets (points) for scatter labels: alternately above and below, in the order of x."""
    order = sorted(xs, key=xs.get)
    return {k: ((4, 3) if i % 2 == 0 else (4, -9)) for i, k in enumerate(order)}


def likelihood_figure(summary, path):
    """Bits/dim against FD for every model with a density or a bound; GANs, which have neither,
    as horizontal lines at their FD. Theis et al. (2016): the two need not agree."""
    fig, ax = plt.subplots(figsize=(3.3, 2.4))
    offs = _offsets(_means(summary, "bpd"))
    for name in summary["order"]:
        m = summary["models"][name]
        fd, bpd = m["metrics"].get("fd"), m["metrics"].get("bpd")
        if not fd or fd["mean"] is None:
            continue
        color = COLORS.get(m["family"])
        if bpd and bpd["mean"] is not None:
            marker = "o" if m["likelihood"] == "exact" else "v"
            ax.errorbar(bpd["mean"], fd["mean"], xerr=bpd["std"] or None, yerr=fd["std"] or None, fmt=marker,
                        color=color, capsize=2, ms=4)
            ax.annotate(m["display"], (bpd["mean"], fd["mean"]), textcoords="offset points", xytext=offs[name],
                        fontsize=7)
        else:
            ax.axhline(fd["mean"], color=color, ls=":", lw=0.9)
            ax.annotate(f"{m['display']} (no likelihood)", (0.02, fd["mean"]), xycoords=("axes fraction", "data"),
                        textcoords="offset points", xytext=(0, 2), fontsize=7, color=color)
    ax.plot([], [], "o", color="k", ms=4, label="exact")
    ax.plot([], [], "v", color="k", ms=4, label="bound")
    ax.set_yscale("log")
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.margins(x=0.2, y=0.25)
    ax.set_xlabel("bits/dim on test images (lower is better)")
    ax.set_ylabel("FD (lower is better)")
    ax.legend(frameon=False, loc="lower right")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    _save(fig, path)


def quality_cost_figure(summary, path):
    """FD against sampling time per image (log scale), with the real-data floor."""
    fig, ax = plt.subplots(figsize=(3.3, 2.3))
    offs = _offsets(_means(summary, "sample_ms_per_image"))
    for name in summary["order"]:
        m = summary["models"][name]
        fd, ms = m["metrics"].get("fd"), m["metrics"].get("sample_ms_per_image")
        if not fd or fd["mean"] is None:
            continue
        ax.errorbar(ms["mean"], fd["mean"], yerr=fd["std"] or None, fmt="o", color=COLORS.get(m["family"]),
                    capsize=2, ms=4)
        nfe = m["metrics"].get("nfe", {}).get("mean")
        dx, dy = offs.get(name, (5, -3))
        ax.annotate(f"{m['display']}, {fmt(nfe)} NFE", (ms["mean"], fd["mean"]), textcoords="offset points",
                    xytext=(dx, dy + (4 if dy > 0 else 0)), fontsize=6, va="bottom" if dy > 0 else "top")
    ax.axhline(summary["reference"]["floor"]["fd"], color="gray", ls="--", lw=0.8, label="real data (floor)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.margins(x=0.35, y=0.3)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel(f"sampling time (ms/image, batch {summary['eval'].get('batch_size', 256)})")
    ax.set_ylabel(f"FD (N={summary['n_samples']})")
    ax.legend(frameon=False, loc="lower left")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    _save(fig, path)


SAMPLER_STYLE = {"ddim": ("-", "o", "DDIM"), "ddpm": ("--", "s", "ancestral"), "native": ("", "D", "one-shot")}


def _model_colors(names):
    cmap = plt.get_cmap("tab10")
    return {n: cmap(i % 10) for i, n in enumerate(names)}


def sampling_cost_figure(summary, path):
    """The sampling-cost study: FD against network evaluations per sample (left) and against
    sampling time (right), a line per model and sampler; one-shot models are single points."""
    sweep = summary["sweep"]
    names = [n for n in summary["order"] if n in sweep and sweep[n]["points"]]
    colors = _model_colors(names)
    fig, axes = plt.subplots(1, 2, figsize=(6.6, 2.6), sharey=True)
    for name in names:
        display = summary["models"][name]["display"]
        by_sampler: dict = {}
        for p in sweep[name]["points"]:
            by_sampler.setdefault(p["sampler"], []).append(p)
        for sampler, pts in by_sampler.items():
            pts = sorted(pts, key=lambda p: p["nfe"]["mean"])
            ls, marker, label = SAMPLER_STYLE[sampler]
            fd = [p["fd"]["mean"] for p in pts]
            err = [p["fd"]["std"] or 0 for p in pts]
            for ax, key in zip(axes, ("nfe", "ms_per_image")):
                ax.errorbar([p[key]["mean"] for p in pts], fd, yerr=err if any(err) else None, ls=ls or "none",
                            marker=marker, ms=3.5, lw=1, color=colors[name], capsize=2,
                            label=f"{display}, {label}" if ax is axes[0] else None)
    n = next(iter(sweep.values()))["n"] if sweep else 0
    axes[0].set_xlabel("network evaluations per sample (NFE)")
    axes[1].set_xlabel(f"sampling time (ms/image, batch {summary['eval'].get('batch_size', 256)})")
    axes[0].set_ylabel(f"FD (N={n})")
    for ax in axes:
        _log_axis(ax)
    fig.legend(*axes[0].get_legend_handles_labels(), frameon=False, loc="upper center", ncol=4,
               bbox_to_anchor=(0.5, 1.0 + 0.045 * (len(axes[0].get_legend_handles_labels()[0]) // 4 + 1)))
    fig.tight_layout()
    _save(fig, path)


def sweep_samples_figure(summary, grids: dict, path, per_row: int = 8):
    """Samples of each diffusion model from the same noise at each step count of the DDIM sweep."""
    names = [n for n in summary["order"] if n in grids and any(k.startswith("ddim/") for k in grids[n])]
    fig, axes = _panels(max(1, len(names)), 3.3, 1.9, per_row=2)
    for ax, name in zip(axes, names):
        keys = sorted((k for k in grids[name] if k.startswith("ddim/")), key=lambda k: int(k.split("/")[1]))
        _show(ax, torch.cat([grids[name][k][:per_row] for k in keys]), per_row,
              f"{summary['models'][name]['display']}, DDIM")
        h = grids[name][keys[0]].shape[-2] + 1
        ax.set_yticks([h * (i + 0.5) for i in range(len(keys))], [f"{k.split('/')[1]} steps" for k in keys])
        ax.tick_params(length=0)
    _save(fig, path)


def guidance_figure(summary, name: str, grids: dict, path, per_class: int = 2):
    """Classifier-free guidance: FD against conditional accuracy as w grows (left), and samples for
    each weight, two per class (right)."""
    pts = sorted(summary["guidance"][name]["points"], key=lambda p: p["guidance"])
    fig, (ax, im) = plt.subplots(1, 2, figsize=(6.8, 2.3), gridspec_kw={"width_ratios": [1, 2.2]})
    acc = [p["cond_accuracy"]["mean"] for p in pts]
    fd = [p["fd"]["mean"] for p in pts]
    ax.plot(acc, fd, "-o", ms=3.5, lw=1, color=COLORS["diffusion"])
    for p, a, f in zip(pts, acc, fd):
        ax.annotate(f"w={p['guidance']:g}", (a, f), textcoords="offset points", xytext=(4, 3), fontsize=6)
    ax.ticklabel_format(useOffset=False)
    ax.set_xlabel("conditional accuracy")
    ax.set_ylabel(f"FD (N={summary['guidance'][name]['n']})")
    ax.margins(x=0.25, y=0.2)
    ax.grid(alpha=0.3)
    weights = [p["guidance"] for p in pts]
    k = len(summary["class_names"])
    rows = []
    for w in weights:
        g = grids[w].view(k, -1, *grids[w].shape[1:])[:, :per_class]          # (K, per_class, C, H, W)
        rows.append(g.flatten(0, 1))
    _show(im, torch.cat(rows), k * per_class, f"{summary['models'][name]['display']}: two samples per class")
    h = rows[0].shape[-2] + 1
    im.set_yticks([h * (i + 0.5) for i in range(len(weights))], [f"w={w:g}" for w in weights])
    im.tick_params(length=0)
    fig.tight_layout()
    _save(fig, path)


def make_figures(summary_path, run_dirs: dict, eval_dirs: dict, data_root: str, out_dir,
                 sweep_dirs: dict | None = None, guidance_dirs: dict | None = None,
                 dynamics_dirs: dict | None = None, probe_dirs: dict | None = None) -> None:
    """run_dirs / eval_dirs / sweep_dirs / guidance_dirs / probe_dirs: model -> folder of its first seed's
    training run / evaluation / sampling sweep / guidance sweep / probes; dynamics_dirs: model -> folder
    of its training-dynamics study."""
    summary = json.loads(Path(summary_path).read_text())
    out = Path(out_dir)
    pt = lambda d, name: torch.load(Path(d) / name, weights_only=False)  # noqa: E731
    make_gan_figures(summary, {m: pt(d, "samples.pt") for m, d in eval_dirs.items()},
                     {m: pt(d, "probes.pt") for m, d in (probe_dirs or {}).items()},
                     {m: pt(d, "dynamics_grids.pt") for m, d in (dynamics_dirs or {}).items()}, out)
    if summary.get("sweep"):
        sampling_cost_figure(summary, out / "sampling_cost.pdf")
        grids = {m: torch.load(Path(d) / "sweep_grids.pt", weights_only=False) for m, d in (sweep_dirs or {}).items()}
        if any(hasattr(REGISTRY[m][0], "make_scheduler") for m in grids):
            sweep_samples_figure(summary, grids, out / "sweep_samples.pdf")
    for name, d in (guidance_dirs or {}).items():
        if summary["guidance"].get(name, {}).get("points"):
            guidance_figure(summary, name, torch.load(Path(d) / "guidance_grids.pt", weights_only=False),
                            out / f"guidance_{name}.pdf")
    samples = {m: torch.load(Path(eval_dirs[m]) / "samples.pt", weights_only=False) for m in summary["order"]}
    real = D.load(summary["dataset"], data_root, "test").images
    samples_figure(summary, real, samples, out / "samples.pdf")
    logs = {m: [json.loads(line) for line in (Path(run_dirs[m]) / "train_log.jsonl").read_text().splitlines()]
            for m in summary["order"]}
    curves_figure(summary, logs, out / "training_curves.pdf")
    quality_cost_figure(summary, out / "quality_vs_cost.pdf")
    if any(summary["models"][m]["likelihood"] != "none" for m in summary["order"]):
        likelihood_figure(summary, out / "likelihood_vs_quality.pdf")
    progress = {m: torch.load(Path(run_dirs[m]) / "progress.pt", weights_only=False) for m in summary["order"]}
    progress_figure(summary, progress, out / "progress.pdf")
    if "vae" in samples and "recon" in samples["vae"]:
        recon_figure(summary, samples["vae"]["recon"], out / "vae_reconstructions.pdf")
    interps = {m: s["interp"] for m, s in samples.items() if "interp" in s}
    if {"vae", "dcgan"} & set(summary["order"]):
        interpolation_figure(summary, interps, out / "interpolation.pdf")
    if "ddpm" in samples and "chain_t" in samples["ddpm"]:
        chain_figure(summary, "ddpm", samples["ddpm"], out / "ddpm_chain.pdf")
    variants = [m for m in summary["order"] if m != "ddpm" and "chain_t" in samples[m]]
    if variants:
        variant_chains_figure(summary, samples, variants, out / "diffusion_chains.pdf")
    training_compute_figure(summary, out / "quality_vs_training.pdf")
    if summary.get("curves"):
        quality_compute_figure(summary, out / "quality_vs_compute.pdf")
    names = figure_names(summary["order"] + list(summary.get("translation", {})), list(summary.get("sweep", {})),
                         list(summary.get("guidance", {})), list(summary.get("dynamics", {})),
                         list(summary.get("probes", {})), list(summary.get("curves") or {}))
    for name in names:  # a diverged run still gets a placeholder figure
        if not (out / name).exists():
            fig, ax = plt.subplots(figsize=(3, 1))
            ax.text(0.5, 0.5, "not available: the run diverged", ha="center", va="center")
            ax.axis("off")
            _save(fig, out / name)
