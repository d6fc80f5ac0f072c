"""The results section's figures about quality against cost: FD against sampling time per image
(quality_vs_cost.pdf), and bits/dim against FD for the models with a likelihood
(likelihood_vs_quality.pdf; Theis et al. 2016: the two need not agree)."""
from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
from adjustText import adjust_text

from ..formatting import fmt
from ..plan import Plan
from ..plotting import COLORS, save_figure
from .inputs import Draw


def figures(plan: Plan) -> dict[str, Draw]:
    """The files this module draws, each with its drawing function."""
    out = {"quality_vs_cost.pdf": lambda i, p: quality_cost_figure(i.summary, p)}
    if any(plan.has_likelihood(m) for m in plan.sampling_models):
        out["likelihood_vs_quality.pdf"] = lambda i, p: likelihood_figure(i.summary, p)
    return out


def _place_labels(ax, texts: list, points: list) -> None:
    """Move scatter labels apart and off the points (adjustText), each joined to its point by a thin leader
    line when moved: labels of nearby models never print over each other."""
    if not texts:
        return
    xs, ys = zip(*points)
    adjust_text(texts, x=list(xs), y=list(ys), ax=ax, expand=(1.2, 1.4), min_arrow_len=4,
                arrowprops=dict(arrowstyle="-", color="0.45", lw=0.5))


def likelihood_figure(summary, path):
    """Bits/dim against FD for every model with a density or a bound; GANs, which have neither,
    as horizontal lines at their FD. Theis et al. (2016): the two need not agree."""
    fig, ax = plt.subplots(figsize=(3.3, 2.4))
    texts, points = [], []
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
            texts.append(ax.text(bpd["mean"], fd["mean"], m["display"], fontsize=7))
            points.append((bpd["mean"], fd["mean"]))
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
    _place_labels(ax, texts, points)
    save_figure(fig, path)


def quality_cost_figure(summary, path):
    """FD against sampling time per image (log scale), with the real-data floor."""
    fig, ax = plt.subplots(figsize=(3.3, 2.3))
    texts, points = [], []
    for name in summary["order"]:
        m = summary["models"][name]
        fd, ms = m["metrics"].get("fd"), m["metrics"].get("sample_ms_per_image")
        if not fd or fd["mean"] is None:
            continue
        ax.errorbar(ms["mean"], fd["mean"], yerr=fd["std"] or None, fmt="o", color=COLORS.get(m["family"]),
                    capsize=2, ms=4)
        nfe = m["metrics"].get("nfe", {}).get("mean")
        texts.append(ax.text(ms["mean"], fd["mean"], f"{m['display']}, {fmt(nfe)} NFE", fontsize=6))
        points.append((ms["mean"], fd["mean"]))
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
    _place_labels(ax, texts, points)
    save_figure(fig, path)
