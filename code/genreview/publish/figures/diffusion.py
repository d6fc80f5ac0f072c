"""The diffusion section's figures: DDPM's denoising chain (ddpm_chain.pdf) and the other variants'
(diffusion_chains.pdf); the sampling-cost study, FD against network evaluations and time per sampler
(sampling_cost.pdf) and samples at each DDIM step count (sweep_samples.pdf) (Song et al. 2021); and
classifier-free guidance, FD against conditional accuracy as the weight grows (guidance_<model>.pdf)
(Ho and Salimans 2022)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from ..plan import Plan
from ..plotting import COLORS, log_axis, notice, panels, save_figure, show
from .inputs import Draw


def figures(plan: Plan) -> dict[str, Draw]:
    """The files this module draws, each with its drawing function."""
    diffusion = [m for m in plan.sampling_models if plan.family(m) == "diffusion"]
    out = {}
    if "ddpm" in diffusion:
        out["ddpm_chain.pdf"] = lambda i, p: chain_figure(i.summary, "ddpm", i.samples["ddpm"], p)
    if any(m != "ddpm" for m in diffusion):
        out["diffusion_chains.pdf"] = lambda i, p: variant_chains_figure(
            i.summary, i.samples, [m for m in i.summary["order"] if m != "ddpm" and "chain_t" in i.samples[m]], p)
    if plan.sweep:
        out["sampling_cost.pdf"] = lambda i, p: sampling_cost_figure(i.summary, p)
        if any(plan.family(m) == "diffusion" for m in plan.sweep):
            out["sweep_samples.pdf"] = lambda i, p: sweep_samples_figure(i.summary, i.sweep_grids, p)
    for m in plan.guidance:
        out[f"guidance_{m}.pdf"] = lambda i, p, m=m: guidance_figure(i.summary, m, i.guidance_grids.get(m), p)
    return out


def chain_figure(summary, name, s: dict, path):
    """The ancestral denoising chain: x_t (top block) and the predicted x_0 (bottom block)."""
    if "chain_t" not in s:
        return notice(path, "the run diverged")
    ts = s["chain_t"]
    x, x0 = s["chain_x"][:4], s["chain_x0"][:4]  # (4, T', C, H, W)
    fig, axes = plt.subplots(2, 1, figsize=(0.36 * len(ts) + 0.4, 3.6), gridspec_kw={"hspace": 0.45})
    show(axes[0], x.flatten(0, 1), len(ts), "$x_t$")
    show(axes[1], x0.flatten(0, 1), len(ts), "predicted $x_0$")
    w = x.shape[-1] + 1
    for ax in axes:
        ax.set_xticks([w * (i + 0.5) for i in range(len(ts))], [f"{t}" for t in ts])
        ax.tick_params(length=0)
    axes[1].set_xlabel("timestep $t$")
    save_figure(fig, path)


def variant_chains_figure(summary, samples: dict, names: list[str], path, per_model: int = 2):
    """Each diffusion variant's ancestral chain for `per_model` samples: x_t above the network's
    prediction of x_0 from it, from t = T - 1 (left) to t = 0 (right)."""
    if not names:
        return notice(path, "the run diverged")
    fig, axes = panels(len(names), 3.3, 0.3 * 2 * per_model + 0.6, per_row=2)
    fig.subplots_adjust(hspace=0.45, wspace=0.25)
    for ax, name in zip(axes, names):
        s = samples[name]
        ts = s["chain_t"]
        rows = torch.cat([torch.stack([s["chain_x"][i], s["chain_x0"][i]]) for i in range(per_model)])
        show(ax, rows.flatten(0, 1), len(ts), summary["models"][name]["display"])
        h, w = rows.shape[-2] + 1, rows.shape[-1] + 1
        ax.set_yticks([h * (i + 0.5) for i in range(2 * per_model)], ["$x_t$", "pred. $x_0$"] * per_model)
        ax.set_xticks([w * (i + 0.5) for i in range(len(ts))], [f"{t}" for t in ts], fontsize=5)
        ax.tick_params(length=0)
    save_figure(fig, path)


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
        log_axis(ax)
    fig.legend(*axes[0].get_legend_handles_labels(), frameon=False, loc="upper center", ncol=4,
               bbox_to_anchor=(0.5, 1.0 + 0.045 * (len(axes[0].get_legend_handles_labels()[0]) // 4 + 1)))
    fig.tight_layout()
    save_figure(fig, path)


def sweep_samples_figure(summary, grids: dict, path, per_row: int = 8):
    """Samples of each diffusion model from the same noise at each step count of the DDIM sweep."""
    names = [n for n in summary["order"] if n in grids and any(k.startswith("ddim/") for k in grids[n])]
    fig, axes = panels(max(1, len(names)), 3.3, 1.9, per_row=2)
    for ax, name in zip(axes, names):
        keys = sorted((k for k in grids[name] if k.startswith("ddim/")), key=lambda k: int(k.split("/")[1]))
        show(ax, torch.cat([grids[name][k][:per_row] for k in keys]), per_row,
              f"{summary['models'][name]['display']}, DDIM")
        h = grids[name][keys[0]].shape[-2] + 1
        ax.set_yticks([h * (i + 0.5) for i in range(len(keys))], [f"{k.split('/')[1]} steps" for k in keys])
        ax.tick_params(length=0)
    save_figure(fig, path)


def guidance_figure(summary, name: str, grids: dict, path, per_class: int = 2):
    """Classifier-free guidance: FD against conditional accuracy as w grows (left), and samples for
    each weight, two per class (right)."""
    pts = sorted(summary["guidance"][name]["points"], key=lambda p: p["guidance"])
    if not pts:
        return notice(path, "the run diverged")
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
    show(im, torch.cat(rows), k * per_class, f"{summary['models'][name]['display']}: two samples per class")
    h = rows[0].shape[-2] + 1
    im.set_yticks([h * (i + 0.5) for i in range(len(weights))], [f"w={w:g}" for w in weights])
    im.tick_params(length=0)
    fig.tight_layout()
    save_figure(fig, path)
