"""The results section's figures about training: each model's losses against images seen
(training_curves.pdf), FD against training wall time (quality_vs_training.pdf), and the curves of
quality against training compute, FD of weight snapshots against wall time and images seen
(quality_vs_compute.pdf)."""
from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from ...models import DISPLAY
from ..formatting import fmt
from ..plan import Plan
from ..plotting import COLORS, log_axis, panels, save_figure
from .inputs import Draw


def figures(plan: Plan) -> dict[str, Draw]:
    """The files this module draws, each with its drawing function."""
    out = {"training_curves.pdf": lambda i, p: curves_figure(i.summary, i.logs, p),
           "quality_vs_training.pdf": lambda i, p: training_compute_figure(i.summary, p)}
    if plan.curves:
        out["quality_vs_compute.pdf"] = lambda i, p: quality_compute_figure(i.summary, p)
    return out


LOSS_LABEL = {"vae": "negative ELBO (nats)", "gan": "BCE loss", "diffusion": "noise MSE",
              "autoregressive": "NLL (nats/dim)", "flow": "NLL (nats/dim)"}


def curves_figure(summary, logs: dict, path):
    """Training losses against images seen, one panel per gradient-trained model."""
    names = [n for n in summary["order"] if len(logs.get(n, [])) > 1]
    fig, axes = panels(max(1, len(names)), 2.3, 1.8)
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
    save_figure(fig, path)


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
    save_figure(fig, path)


CURVE_STYLES = ("-", "--", ":", "-.")  # models of one family share its colour; line style and marker tell them apart
CURVE_MARKERS = ("o", "s", "D", "^", "v")


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
        log_axis(ax)
    axes[0].set_xlabel("training wall time (s)")
    axes[1].set_xlabel("images seen in training")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, frameon=False, loc="upper center", ncol=min(4, max(1, len(labels))),
               bbox_to_anchor=(0.5, 1.0 + 0.045 * (len(labels) // 4 + 1)))
    fig.tight_layout()
    save_figure(fig, path)
