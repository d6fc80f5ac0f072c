"""The results section's figures about quality against cost: FD against sampling time per image
(quality_vs_cost.pdf), and bits/dim against FD for the models with a likelihood
(likelihood_vs_quality.pdf; Theis et al. 2016: the two need not agree)."""
from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt

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
    save_figure(fig, path)


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
    save_figure(fig, path)
