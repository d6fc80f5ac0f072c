"""The GAN section's figures about training (Goodfellow et al. 2014): the FD of every short run of the
training-dynamics study, over seeds and random hyperparameters, the way Lucic et al. (2018, "Are GANs
created equal?") compare families by the spread of their runs (gan_dynamics.pdf); and mode coverage, the
domain classifier's class histogram of each model's samples against the data's (mode_coverage.pdf)."""
from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from ...models import DISPLAY
from ..formatting import fmt
from ..gan_section import COVERAGE_FAMILIES, SECTION_FAMILIES, display_name, ordered
from ..plan import Plan
from ..plotting import COLORS, label_rows, notice, save_figure, show
from ..verdicts import collapsed as collapsed_run
from .inputs import Draw

# run kind -> (marker, filled, legend label) in the dynamics figure
KIND_STYLE = {"seed": ("o", True, "seed, configured hyperparameters"),
              "draw": ("o", False, "random hyperparameter draw"),
              "detach": ("^", True, "without .detach(), G's gradients cleared (ablation)"),
              "leak": ("v", True, "without .detach(), G's gradients kept (ablation)")}
IMAGES_PER_RUN = 4   # samples of the best and of the worst run per model in the dynamics figure


def figures(plan: Plan) -> dict[str, Draw]:
    """The files this module draws, each with its drawing function."""
    out = {}
    if plan.dynamics:
        out["gan_dynamics.pdf"] = lambda i, p: dynamics_figure(i.summary, p, i.dynamics_grids)
    if any(plan.family(m) in SECTION_FAMILIES for m in plan.models):
        out["mode_coverage.pdf"] = lambda i, p: mode_coverage_figure(i.summary, p)
    return out


def _ok_fd(run: dict):
    """FD of a run that trained, else None (a diverged run has none)."""
    return run.get("fd") if run.get("status", "ok") == "ok" else None


def _fd_limits(values, log: bool):
    lo, hi = min(values), max(values)
    if log:
        a, b = np.log10(lo), np.log10(hi)
        r = max(b - a, 0.3)
        return 10 ** (a - 0.08 * r), 10 ** (b + 0.08 * r)
    return 0.0, hi * 1.08 if hi > 0 else 1.0


def _extremes(runs: list[dict], grids: dict):
    """(best, worst) of the seed and draw runs that trained and have a grid, by FD; None when there is none."""
    ok = sorted((r for r in runs if r.get("kind", "seed") in ("seed", "draw") and _ok_fd(r) is not None
                 and r.get("label") in grids), key=lambda r: r["fd"])
    return (ok[0], ok[-1]) if ok else None


def _kind_rank(run: dict) -> int:
    return list(KIND_STYLE).index(run["kind"]) if run.get("kind") in KIND_STYLE else len(KIND_STYLE)


def dynamics_figure(summary, path, grids: dict | None = None):
    """The FD of every short run of the training-dynamics study, one column of points per model
    (Lucic et al. 2018): seed runs with the configured hyperparameters filled, random hyperparameter
    draws hollow, the .detach() ablation a triangle; a red ring marks a run whose samples collapsed
    onto too few classes, an x in the strip above the axis a run that diverged. The dashed line is
    the real-data floor. Below, when `grids` ({model: {run label: uint8 (G, C, H, W)}}) has them,
    samples of each model's best and worst run."""
    dyn = summary.get("dynamics") or {}
    names = ordered(summary, [m for m in dyn if dyn[m].get("runs")])
    if not names:
        return notice(path, "no training-dynamics runs")
    grids = grids or {}
    shown = [m for m in names if _extremes(dyn[m]["runs"], grids.get(m, {}))]
    diverged = any(_ok_fd(r) is None for m in names for r in dyn[m]["runs"])
    image = min(0.3, (6.6 / len(names) - 0.5) / IMAGES_PER_RUN)              # inches per sample below
    below = 2 * image + 0.3 if shown else 0
    fig = plt.figure(figsize=(6.6, 3.2 + below))
    outer = fig.add_gridspec(2 if shown else 1, 1, height_ratios=[3.2, below] if shown else [1], hspace=0.1)
    top = outer[0].subgridspec(2, 1, height_ratios=[0.22, 2.3], hspace=0.06)
    ax = fig.add_subplot(top[1])
    strip = fig.add_subplot(top[0], sharex=ax)                              # the diverged runs
    fds = [_ok_fd(r) for m in names for r in dyn[m]["runs"] if _ok_fd(r) is not None and r.get("kind") != "beta"]
    real = (summary.get("reference") or {}).get("floor") or {}
    floor = real.get("fd")
    span = fds + ([floor] if floor else [])
    log = bool(span) and min(span) > 0 and max(span) / min(span) > 10
    kinds, collapsed = set(), False
    for i, m in enumerate(names):
        runs = sorted((r for r in dyn[m]["runs"] if r.get("kind") != "beta"), key=_kind_rank)  # KL weights: the ledger
        xs = i + (np.linspace(-0.3, 0.3, len(runs)) if len(runs) > 1 else np.zeros(1))
        color = COLORS.get(summary["models"].get(m, {}).get("family", DISPLAY.get(m, ("", "gan"))[1]), "k")
        for x, r in zip(xs, runs):
            if _ok_fd(r) is None:
                strip.plot(x, 0.5, "x", color=color, ms=5, mew=1.1)
                continue
            marker, filled, _ = KIND_STYLE.get(r.get("kind"), KIND_STYLE["seed"])
            kinds.add(r.get("kind") if r.get("kind") in KIND_STYLE else "seed")
            ax.plot(x, r["fd"], marker, ms=4.5, mfc=color if filled else "white", mec=color, mew=0.9)
            if collapsed_run(r, real):  # the verdicts' collapse: real-looking samples that cover little
                collapsed = True
                ax.plot(x, r["fd"], "o", ms=9, mfc="none", mec="crimson", mew=0.8)
    strip.set_ylim(0, 1)
    strip.set_yticks([0.5], ["diverged"] if diverged else [""])
    strip.tick_params(length=0, labelbottom=False)
    for sp in strip.spines.values():
        sp.set_visible(False)
    if diverged:
        strip.axhline(0.0, color="0.8", lw=0.6)
    if log:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: fmt(v, 2)))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    if span:
        ax.set_ylim(*_fd_limits(span, log))
    else:
        ax.set_yticks([])
    if floor:
        ax.axhline(floor, color="gray", ls="--", lw=0.8)
    ax.set_xlim(-0.5, len(names) - 0.5)
    ax.set_xticks(range(len(names)), [display_name(summary, m) for m in names])
    ax.tick_params(axis="x", length=0)
    n = dyn[names[0]].get("n")
    steps = {dyn[m].get("steps") for m in names} - {None}
    ax.set_ylabel("FD" + (f" after {next(iter(steps))} steps" if len(steps) == 1 else "")
                  + (f" (N={n}" + (", log scale)" if log else ")") if n else ""))
    ax.grid(alpha=0.3, axis="y", which="major")
    handles = [Line2D([], [], ls="", marker=KIND_STYLE[k][0], ms=4.5, mec="0.3",
                      mfc="0.3" if KIND_STYLE[k][1] else "white", label=KIND_STYLE[k][2])
               for k in KIND_STYLE if k in kinds]
    if collapsed:
        handles.append(Line2D([], [], ls="", marker="o", ms=9, mfc="none", mec="crimson", label="collapsed"))
    if floor:
        handles.append(Line2D([], [], color="gray", ls="--", lw=0.8,
                              label=f"real data (N={summary.get('n_samples', '?')})"))
    strip.legend(handles=handles, frameon=False, ncol=3, loc="lower center", bbox_to_anchor=(0.5, 1.0),
                 borderaxespad=0.1, columnspacing=1.2)
    if shown:  # each model's samples under its column of points
        row = outer[1].subgridspec(1, len(names), wspace=0.55)
    for j, m in enumerate(names):
        if m not in shown:
            continue
        best, worst = _extremes(dyn[m]["runs"], grids[m])
        g_best, g_worst = grids[m][best["label"]], grids[m][worst["label"]]
        k = min(IMAGES_PER_RUN, len(g_best), len(g_worst))
        a = fig.add_subplot(row[0, j])
        show(a, torch.cat([g_best[:k], g_worst[:k]]), k)
        words = ("best, ", "worst, ") if m == shown[0] else ("", "")
        label_rows(a, g_best.shape[-2], [f"{words[0]}FD {fmt(best['fd'])}", f"{words[1]}FD {fmt(worst['fd'])}"])
    save_figure(fig, path)


def mode_coverage_figure(summary, path, models: list[str] | None = None):
    """Mode coverage as a heat map: the share of each model's samples that the domain classifier puts
    in each class (a row per model, the real data's shares on top), with the classes covered and the
    KL divergence to the data's histogram at the right. A red box marks a class the samples miss: its
    share is below `collapse_share` times the data's, the rule of `metrics.class_coverage`."""
    if models is None:  # the GAN section's models, and the diffusion models the claims compare them with
        models = [m for m in summary.get("order", []) if summary["models"][m]["family"] in COVERAGE_FAMILIES]
    models = [m for m in models if (summary["models"].get(m) or {}).get("class_histogram")]
    ref = (summary.get("reference") or {}).get("floor", {}).get("class_histogram")
    if not models or not ref:
        return notice(path, "no class histograms")
    names = summary.get("class_names") or [str(k) for k in range(len(ref))]
    share = (summary.get("dynamics_config") or {}).get("collapse_share", 0.25)
    rows = np.array([ref] + [summary["models"][m]["class_histogram"] for m in models], dtype=float)
    rows /= rows.sum(1, keepdims=True)                                       # (1 + models, K)
    fig, ax = plt.subplots(figsize=(5.0, 0.27 * len(rows) + 1.1))
    vmax = rows.max()
    ax.imshow(rows, cmap="Blues", vmin=0, vmax=vmax, aspect="auto")
    for i, row in enumerate(rows):
        for j, v in enumerate(row):
            ax.text(j, i, fmt(100 * v, decimals=0), ha="center", va="center", fontsize=5.5,
                    color="white" if v > 0.6 * vmax else "black")
            if i and rows[0, j] > 0 and v < share * rows[0, j]:
                ax.add_patch(Rectangle((j - 0.47, i - 0.47), 0.94, 0.94, fill=False, ec="crimson", lw=1.0))
    ax.axhline(0.5, color="white", lw=2)
    ax.set_yticks(range(len(rows)), ["Real data"] + [display_name(summary, m) for m in models])
    ax.set_xticks(range(len(names)), names, rotation=35, ha="right")
    ax.tick_params(length=0)
    for i, m in enumerate(models, 1):
        cov = summary["models"][m].get("class_coverage")
        if cov:
            ax.text(len(names) - 0.3, i, f"{cov['classes_covered']}/{cov['n_classes']}, {fmt(cov['class_kl'], 2)}",
                    va="center", fontsize=6)
    ax.text(len(names) - 0.3, 0, "classes, KL", va="center", fontsize=6, style="italic")
    for s in ax.spines.values():
        s.set_visible(False)
    ax.set_xlabel(f"share of the samples in each class (%); red: below {fmt(share, 2)} of the data's share")
    save_figure(fig, path)
