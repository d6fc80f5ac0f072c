"""The GAN section's figures of samples: StyleGAN (Karras et al. 2019), the style-mixing table, the
truncation trick, FD and recall against psi (style_mixing.pdf); image-to-image translation, CycleGAN's
cycles (Zhu et al. 2017) and 2x super-resolution, adversarial (Isola et al. 2017; Ledig et al. 2017)
against L1 only (translation.pdf); and inversion, test images reconstructed by optimising a GAN's z
(Zhu et al. 2016) or by the VAE's encoder (gan_inversion.pdf)."""
from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import torch

from ...evaluation.evaluate import TRUNCATION_PSIS
from ..formatting import fmt, pm
from ..gan_section import display_name, domains, ordered
from ..plan import Plan
from ..plotting import COLORS, label_columns, label_rows, notice, panels, save_figure, show
from .inputs import Draw

EXAMPLES = 8         # test images in each translation example
MIX_ROWS = 6         # rows of the style-mixing table shown (plus its row of sources)
TRUNCATION_ROWS = 4
INVERSION_IMAGES = 8


def figures(plan: Plan) -> dict[str, Draw]:
    """The files this module draws, each with its drawing function."""
    out = {}
    if "stylegan" in plan.models:
        out["style_mixing.pdf"] = lambda i, p: style_figure(i.summary, i.samples.get("stylegan"), p)
    if any(plan.family(m) == "translation" for m in plan.models):
        out["translation.pdf"] = lambda i, p: translation_figure(i.summary, i.samples, p)
    if plan.probes:
        out["gan_inversion.pdf"] = lambda i, p: inversion_figure(i.summary, i.probe_grids, p)
    return out


def _psis(summary: dict, n: int) -> list[float]:
    """The psi of each of the truncation grid's n columns: the summary's sweep, else the evaluation's."""
    trunc = summary.get("models", {}).get("stylegan", {}).get("truncation") or []
    if len(trunc) == n:
        return [t["psi"] for t in trunc]
    return list(TRUNCATION_PSIS)[:n]


def style_figure(summary, samples_stylegan: dict | None, path):
    """StyleGAN (Karras et al. 2019). Left, the style-mixing table: the first row and column hold the
    two sets of sources, and each cell takes its coarse styles (the lowest resolutions) from its row's
    source and the fine ones from its column's. Middle, the same z at decreasing truncation psi, a
    column per psi. Right, FD, precision and recall of samples at each psi."""
    s = samples_stylegan or {}
    trunc = sorted(summary.get("models", {}).get("stylegan", {}).get("truncation") or [], key=lambda t: t["psi"])
    panels = [k for k in ("style_mix", "truncation_grid") if k in s and len(s[k])] + (["curve"] if trunc else [])
    if not panels:
        return notice(path, "StyleGAN has no samples")
    widths = {"style_mix": s["style_mix"].shape[1] if "style_mix" in panels else 0,
              "truncation_grid": s["truncation_grid"].shape[1] if "truncation_grid" in panels else 0, "curve": 5.5}
    fig, axes = plt.subplots(1, len(panels), figsize=(6.8, 2.2), squeeze=False,
                             gridspec_kw={"width_ratios": [widths[p] for p in panels], "wspace": 0.45})
    for ax, p in zip(axes[0], panels):
        if p == "style_mix":
            mix = s["style_mix"][:MIX_ROWS + 1]                             # (R + 1, K + 1, C, H, W)
            h, w = mix.shape[-2:]
            show(ax, mix.flatten(0, 1), mix.shape[1], "style mixing")
            ax.axhline(h + 1, color="0.2", lw=0.6)                          # sources | mixed cells
            ax.axvline(w + 1, color="0.2", lw=0.6)
            ax.set_xlabel("coarse styles from the row's source,\nfine styles from the column's", fontsize=6)
        elif p == "truncation_grid":
            tg = s["truncation_grid"][:TRUNCATION_ROWS]                     # (rows, P, C, H, W)
            show(ax, tg.flatten(0, 1), tg.shape[1], "truncation")
            label_columns(ax, tg.shape[-1], [f"{v:g}" for v in _psis(summary, tg.shape[1])])
            ax.set_xlabel("$\\psi$")
        else:
            psi = [t["psi"] for t in trunc]
            fd = [t["fd"] for t in trunc]
            ax.plot(psi, fd, "-o", ms=3, lw=1, color=COLORS["gan"], label="FD")
            if min(fd) > 0 and max(fd) / min(fd) > 10:
                ax.set_yscale("log")
                ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: fmt(v, 2)))
                ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_xlabel("truncation $\\psi$")
            ax.set_ylabel(f"FD (N={trunc[0].get('n', '?')})")
            ax.grid(alpha=0.3)
            right = ax.twinx()
            for key, style, color in (("precision", ":^", "tab:green"), ("recall", "--s", "tab:blue")):
                if all(key in t for t in trunc):
                    right.plot(psi, [t[key] for t in trunc], style, ms=3, lw=1, color=color, label=key)
            right.set_ylim(0, 1.02)
            right.set_ylabel("precision, recall")
            handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
            ax.legend(handles=handles, frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3,
                      handlelength=1.6, columnspacing=0.8)
    save_figure(fig, path)


def _translation_panels(summary: dict, samples: dict) -> list[list[tuple[str, torch.Tensor, list[str]]]]:
    """The example grids that exist, as columns of panels (CycleGAN's, then super-resolution's), each
    panel (title, images (kinds, examples, C, H, W), a label per kind)."""
    cycle, sr_panels = [], []
    cyc = samples.get("cyclegan") or {}
    a, b = domains(summary)
    for key, (src, dst) in (("grid_ab", (a, b)), ("grid_ba", (b, a))):
        if len(cyc.get(key, ())) > 0:                                       # (examples, 3, C, H, W)
            cycle.append((f"CycleGAN, {src} → {dst}", cyc[key][:EXAMPLES].transpose(0, 1),
                          ["source", "translated", "reconstructed"]))
    sr = {m: samples[m]["grid_sr"][:EXAMPLES] for m in ("srgan", "sr_l1")
          if len((samples.get(m) or {}).get("grid_sr", ())) > 0}                 # (examples, 4, C, H, W) each
    if sr:
        g = next(iter(sr.values()))
        low = f"input {g.shape[-2] // 2}×{g.shape[-1] // 2}"
        if len(sr) == 2 and sr["srgan"].shape == sr["sr_l1"].shape and torch.equal(sr["srgan"][:, 0],
                                                                                     sr["sr_l1"][:, 0]):
            gan, l1 = sr["srgan"].transpose(0, 1), sr["sr_l1"].transpose(0, 1)
            sr_panels.append(("2× super-resolution", torch.stack([*gan[:3], l1[2], gan[3]]),
                              [low, "bicubic", "GAN", "L1 only", "original"]))
        else:  # different test images: each model on its own
            for m, grid in sr.items():
                sr_panels.append((display_name(summary, m), grid.transpose(0, 1),
                                  [low, "bicubic", "output", "original"]))
    return [col for col in (cycle, sr_panels) if col]


def translation_figure(summary, samples: dict, path):
    """Image-to-image examples on test images, a column per example. CycleGAN: a test image of one
    domain, its translation to the other and the translation mapped back (the cycle). Super-resolution:
    the half-resolution input (shown nearest-upsampled), bicubic interpolation, the adversarial model,
    the L1-only model and the original; the two models see the same inputs."""
    columns = _translation_panels(summary, samples or {})
    if not columns:
        return notice(path, "no translation examples")
    kinds = [sum(len(p[1]) for p in col) for col in columns]
    fig = plt.figure(figsize=(3.4 * len(columns), 0.36 * max(kinds) + 0.35 * max(map(len, columns)) + 0.2))
    outer = fig.add_gridspec(1, len(columns), wspace=0.3)
    for i, col in enumerate(columns):
        inner = outer[i].subgridspec(len(col), 1, height_ratios=[len(p[1]) for p in col], hspace=0.35)
        for j, (title, grid, labels) in enumerate(col):
            ax = fig.add_subplot(inner[j])
            show(ax, grid.flatten(0, 1), grid.shape[1], title)
            label_rows(ax, grid.shape[-2], labels)
    save_figure(fig, path)


def inversion_figure(summary, probe_grids: dict, path):
    """Reconstructions of test images, a pair of rows per model: the targets above, below them the
    images found by optimising the GAN's z to match each target (GAN inversion) or the VAE's
    encoder-decoder pass; the panel title gives the reconstruction MSE on all probed test images."""
    names = ordered(summary, [m for m, g in (probe_grids or {}).items() if len((g or {}).get("recon", ())) > 0])
    if not names:
        return notice(path, "no reconstructions")
    fig, axes = panels(len(names), 3.3, 1.15, per_row=2)
    fig.subplots_adjust(hspace=0.4, wspace=0.25)
    for ax, m in zip(axes, names):
        rec = probe_grids[m]["recon"][:INVERSION_IMAGES]                     # (rows, 2, C, H, W)
        p = (summary.get("probes") or {}).get(m, {})
        how = {"inversion": "inversion", "encoder": "encoder"}.get(p.get("recon_kind"), "reconstruction")
        mse = (p.get("metrics") or {}).get("recon_mse")
        title = f"{display_name(summary, m)} ({how})" + (f": MSE {pm(mse)}" if mse and mse.get("mean") is not None
                                                          else "")
        show(ax, torch.cat([rec[:, 0], rec[:, 1]]), len(rec), title)
        label_rows(ax, rec.shape[-2], ["target", "recon."])
    save_figure(fig, path)
