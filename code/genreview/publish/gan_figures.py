"""Figures and tables of the review's GAN section, drawn from the summary and the image grids that
evaluation (`evaluate`, `translation_eval`), the training-dynamics study (`dynamics`) and the
probes (`probes`) save.

- Training dynamics: the FD of every short run, over seeds and random hyperparameters, the way
  Lucic et al. (2018, "Are GANs created equal?") compare families by the spread of their runs.
- Mode coverage: the domain classifier's class histogram of each model's samples against the data's.
- StyleGAN (Karras et al. 2019): the style-mixing table, the truncation trick, FD and recall against psi.
- Translation: CycleGAN's cycles (Zhu et al. 2017) and 2x super-resolution, adversarial
  (Isola et al. 2017; Ledig et al. 2017) against L1 only.
- Inversion: test images reconstructed by optimising a GAN's z (Zhu et al. 2016) or by the VAE's encoder.

Every function leaves out what its input lacks (a diverged model, a missing grid) and draws a
placeholder when nothing is left, so that `make_gan_figures` writes exactly `gan_figure_names`.
The helpers of `figures` are imported inside the functions because `figures` imports this module.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from ..models import DISPLAY  # noqa: E402
from .render import tex_escape  # noqa: E402
from .report import dynamics_study, fmt, pm  # noqa: E402

SECTION_FAMILIES = ("gan", "vae")  # the models of the GAN section: the adversarial ones and the VAE beside them
COVERAGE_FAMILIES = (*SECTION_FAMILIES, "diffusion")  # the mode-coverage figure's rows
TRANSLATORS = ("cyclegan", "srgan", "sr_l1")
# run kind -> (marker, filled, legend label) in the dynamics figure
KIND_STYLE = {"seed": ("o", True, "seed, configured hyperparameters"),
              "draw": ("o", False, "random hyperparameter draw"),
              "detach": ("^", True, "without .detach() (ablation)")}
IMAGES_PER_RUN = 4   # samples of the best and of the worst run per model in the dynamics figure
EXAMPLES = 8         # test images in each translation example
MIX_ROWS = 6         # rows of the style-mixing table shown (plus its row of sources)
TRUNCATION_ROWS = 4
INVERSION_IMAGES = 8


# --------------------------------------------------------------------------- helpers

def _display(summary: dict, m: str) -> str:
    for part in ("models", "translation"):
        if m in (summary.get(part) or {}):
            return summary[part][m]["display"]
    return DISPLAY[m][0] if m in DISPLAY else m


def _ordered(summary: dict, names) -> list[str]:
    """names in the summary's model order, those outside it after, in their own order."""
    names = list(names)
    order = summary.get("order", [])
    return [m for m in order if m in names] + [m for m in names if m not in order]


def _section_models(summary: dict) -> list[str]:
    return [m for m in summary.get("order", []) if summary["models"][m]["family"] in SECTION_FAMILIES]


def _placeholder(path, why: str) -> None:
    from .figures import _save

    fig, ax = plt.subplots(figsize=(3, 1))
    ax.text(0.5, 0.5, f"not available: {why}", ha="center", va="center")
    ax.axis("off")
    _save(fig, path)


def _label_columns(ax, width: int, labels, fontsize=6) -> None:
    """Column labels under an image grid whose cells are `width` pixels wide (plus the grid's padding)."""
    ax.set_xticks([(width + 1) * (i + 0.5) for i in range(len(labels))], labels, fontsize=fontsize)
    ax.tick_params(length=0)


def _label_rows(ax, height: int, labels, fontsize=6) -> None:
    ax.set_yticks([(height + 1) * (i + 0.5) for i in range(len(labels))], labels, fontsize=fontsize)
    ax.tick_params(length=0)


def _ok_fd(run: dict):
    """FD of a run that trained, else None (a diverged run has none)."""
    return run.get("fd") if run.get("status", "ok") == "ok" else None


def _d_outputs(summary: dict, m: str):
    """(D(real), D(fake)) of the main run's last logged window when they are probabilities, else None.
    WGAN's critic and the hinge-loss discriminator give unbounded scores, which are left out."""
    s = summary["models"].get(m)
    if not s:
        return None
    dr = (s["metrics"].get("final_d_real") or {}).get("mean")
    df = (s["metrics"].get("final_d_fake") or {}).get("mean")
    if s.get("d_output") != "probability" or dr is None or df is None or not (0 <= dr <= 1 and 0 <= df <= 1):
        return None
    return dr, df


# --------------------------------------------------------------------------- figures

def _fd_limits(values, log: bool):
    lo, hi = min(values), max(values)
    if log:
        a, b = np.log10(lo), np.log10(hi)
        r = max(b - a, 0.3)
        return 10 ** (a - 0.08 * r), 10 ** (b + 0.08 * r)
    return 0.0, hi * 1.08 if hi > 0 else 1.0


def _extremes(runs: list[dict], grids: dict):
    """(best, worst) of the runs that trained and have a grid, by FD; None when there is none."""
    ok = sorted((r for r in runs if _ok_fd(r) is not None and r.get("label") in grids), key=lambda r: r["fd"])
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
    from .figures import COLORS, _save, _show

    dyn = summary.get("dynamics") or {}
    names = _ordered(summary, [m for m in dyn if dyn[m].get("runs")])
    if not names:
        return _placeholder(path, "no training-dynamics runs")
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
    fds = [_ok_fd(r) for m in names for r in dyn[m]["runs"] if _ok_fd(r) is not None]
    floor = (summary.get("reference") or {}).get("floor", {}).get("fd")
    span = fds + ([floor] if floor else [])
    log = bool(span) and min(span) > 0 and max(span) / min(span) > 10
    kinds, collapsed = set(), False
    for i, m in enumerate(names):
        runs = sorted(dyn[m]["runs"], key=_kind_rank)
        xs = i + (np.linspace(-0.3, 0.3, len(runs)) if len(runs) > 1 else np.zeros(1))
        color = COLORS.get(summary["models"].get(m, {}).get("family", DISPLAY.get(m, ("", "gan"))[1]), "k")
        for x, r in zip(xs, runs):
            if _ok_fd(r) is None:
                strip.plot(x, 0.5, "x", color=color, ms=5, mew=1.1)
                continue
            marker, filled, _ = KIND_STYLE.get(r.get("kind"), KIND_STYLE["seed"])
            kinds.add(r.get("kind") if r.get("kind") in KIND_STYLE else "seed")
            ax.plot(x, r["fd"], marker, ms=4.5, mfc=color if filled else "white", mec=color, mew=0.9)
            if r.get("collapsed"):
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
    ax.set_xticks(range(len(names)), [_display(summary, m) for m in names])
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
        _show(a, torch.cat([g_best[:k], g_worst[:k]]), k)
        words = ("best, ", "worst, ") if m == shown[0] else ("", "")
        _label_rows(a, g_best.shape[-2], [f"{words[0]}FD {fmt(best['fd'])}", f"{words[1]}FD {fmt(worst['fd'])}"])
    _save(fig, path)


def mode_coverage_figure(summary, path, models: list[str] | None = None):
    """Mode coverage as a heat map: the share of each model's samples that the domain classifier puts
    in each class (a row per model, the real data's shares on top), with the classes covered and the
    KL divergence to the data's histogram at the right. A red box marks a class the samples miss: its
    share is below `collapse_share` times the data's, the rule of `metrics.class_coverage`."""
    from .figures import _save

    if models is None:  # the GAN section's models, and the diffusion models the claims compare them with
        models = [m for m in summary.get("order", []) if summary["models"][m]["family"] in COVERAGE_FAMILIES]
    models = [m for m in models if (summary["models"].get(m) or {}).get("class_histogram")]
    ref = (summary.get("reference") or {}).get("floor", {}).get("class_histogram")
    if not models or not ref:
        return _placeholder(path, "no class histograms")
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
    ax.set_yticks(range(len(rows)), ["Real data"] + [_display(summary, m) for m in models])
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
    _save(fig, path)


def _psis(summary: dict, n: int) -> list[float]:
    """The psi of each of the truncation grid's n columns: the summary's sweep, else the evaluation's."""
    trunc = summary.get("models", {}).get("stylegan", {}).get("truncation") or []
    if len(trunc) == n:
        return [t["psi"] for t in trunc]
    from ..evaluation.evaluate import TRUNCATION_PSIS
    return list(TRUNCATION_PSIS)[:n]


def style_figure(summary, samples_stylegan: dict | None, path):
    """StyleGAN (Karras et al. 2019). Left, the style-mixing table: the first row and column hold the
    two sets of sources, and each cell takes its coarse styles (the lowest resolutions) from its row's
    source and the fine ones from its column's. Middle, the same z at decreasing truncation psi, a
    column per psi. Right, FD, precision and recall of samples at each psi."""
    from .figures import COLORS, _save, _show

    s = samples_stylegan or {}
    trunc = sorted(summary.get("models", {}).get("stylegan", {}).get("truncation") or [], key=lambda t: t["psi"])
    panels = [k for k in ("style_mix", "truncation_grid") if k in s and len(s[k])] + (["curve"] if trunc else [])
    if not panels:
        return _placeholder(path, "StyleGAN has no samples")
    widths = {"style_mix": s["style_mix"].shape[1] if "style_mix" in panels else 0,
              "truncation_grid": s["truncation_grid"].shape[1] if "truncation_grid" in panels else 0, "curve": 5.5}
    fig, axes = plt.subplots(1, len(panels), figsize=(6.8, 2.2), squeeze=False,
                             gridspec_kw={"width_ratios": [widths[p] for p in panels], "wspace": 0.45})
    for ax, p in zip(axes[0], panels):
        if p == "style_mix":
            mix = s["style_mix"][:MIX_ROWS + 1]                             # (R + 1, K + 1, C, H, W)
            h, w = mix.shape[-2:]
            _show(ax, mix.flatten(0, 1), mix.shape[1], "style mixing")
            ax.axhline(h + 1, color="0.2", lw=0.6)                          # sources | mixed cells
            ax.axvline(w + 1, color="0.2", lw=0.6)
            ax.set_xlabel("coarse styles from the row's source,\nfine styles from the column's", fontsize=6)
        elif p == "truncation_grid":
            tg = s["truncation_grid"][:TRUNCATION_ROWS]                     # (rows, P, C, H, W)
            _show(ax, tg.flatten(0, 1), tg.shape[1], "truncation")
            _label_columns(ax, tg.shape[-1], [f"{v:g}" for v in _psis(summary, tg.shape[1])])
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
    _save(fig, path)


def _domains(summary: dict) -> tuple[str, str]:
    """CycleGAN's two domains by class name ("A", "B" when the summary does not say)."""
    t = (summary.get("translation", {}).get("cyclegan") or {}).get("translation") or {}
    names = summary.get("class_names") or []
    out = []
    for key, default in (("domain_a", "A"), ("domain_b", "B")):
        v = t.get(key)
        v = v.get("mean") if isinstance(v, dict) else v
        out.append(names[int(v)] if v is not None and 0 <= int(v) < len(names) else default)
    return out[0], out[1]


def _translation_panels(summary: dict, samples: dict) -> list[list[tuple[str, torch.Tensor, list[str]]]]:
    """The example grids that exist, as columns of panels (CycleGAN's, then super-resolution's), each
    panel (title, images (kinds, examples, C, H, W), a label per kind)."""
    cycle, sr_panels = [], []
    cyc = samples.get("cyclegan") or {}
    a, b = _domains(summary)
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
                sr_panels.append((_display(summary, m), grid.transpose(0, 1), [low, "bicubic", "output", "original"]))
    return [col for col in (cycle, sr_panels) if col]


def translation_figure(summary, samples: dict, path):
    """Image-to-image examples on test images, a column per example. CycleGAN: a test image of one
    domain, its translation to the other and the translation mapped back (the cycle). Super-resolution:
    the half-resolution input (shown nearest-upsampled), bicubic interpolation, the adversarial model,
    the L1-only model and the original; the two models see the same inputs."""
    from .figures import _save, _show

    columns = _translation_panels(summary, samples or {})
    if not columns:
        return _placeholder(path, "no translation examples")
    kinds = [sum(len(p[1]) for p in col) for col in columns]
    fig = plt.figure(figsize=(3.4 * len(columns), 0.36 * max(kinds) + 0.35 * max(map(len, columns)) + 0.2))
    outer = fig.add_gridspec(1, len(columns), wspace=0.3)
    for i, col in enumerate(columns):
        inner = outer[i].subgridspec(len(col), 1, height_ratios=[len(p[1]) for p in col], hspace=0.35)
        for j, (title, grid, labels) in enumerate(col):
            ax = fig.add_subplot(inner[j])
            _show(ax, grid.flatten(0, 1), grid.shape[1], title)
            _label_rows(ax, grid.shape[-2], labels)
    _save(fig, path)


def inversion_figure(summary, probe_grids: dict, path):
    """Reconstructions of test images, a pair of rows per model: the targets above, below them the
    images found by optimising the GAN's z to match each target (GAN inversion) or the VAE's
    encoder-decoder pass; the panel title gives the reconstruction MSE on all probed test images."""
    from .figures import _panels, _save, _show

    names = _ordered(summary, [m for m, g in (probe_grids or {}).items() if len((g or {}).get("recon", ())) > 0])
    if not names:
        return _placeholder(path, "no reconstructions")
    fig, axes = _panels(len(names), 3.3, 1.15, per_row=2)
    fig.subplots_adjust(hspace=0.4, wspace=0.25)
    for ax, m in zip(axes, names):
        rec = probe_grids[m]["recon"][:INVERSION_IMAGES]                     # (rows, 2, C, H, W)
        p = (summary.get("probes") or {}).get(m, {})
        how = {"inversion": "inversion", "encoder": "encoder"}.get(p.get("recon_kind"), "reconstruction")
        mse = (p.get("metrics") or {}).get("recon_mse")
        title = f"{_display(summary, m)} ({how})" + (f": MSE {pm(mse)}" if mse and mse.get("mean") is not None else "")
        _show(ax, torch.cat([rec[:, 0], rec[:, 1]]), len(rec), title)
        _label_rows(ax, rec.shape[-2], ["target", "recon."])
    _save(fig, path)


def gan_figure_names(models, dynamics_models=(), probe_models=()) -> list[str]:
    """The files `make_gan_figures` writes for these models and studies (the Snakefile's outputs)."""
    names = []
    if dynamics_models:
        names.append("gan_dynamics.pdf")
    if any(DISPLAY[m][1] in SECTION_FAMILIES for m in models):
        names.append("mode_coverage.pdf")
    if "stylegan" in models:
        names.append("style_mixing.pdf")
    if set(TRANSLATORS) & set(models):
        names.append("translation.pdf")
    if probe_models:
        names.append("gan_inversion.pdf")
    return names


def make_gan_figures(summary: dict, samples: dict, probe_grids: dict, dynamics_grids: dict, out_dir) -> list[Path]:
    """Draw the GAN section's figures into out_dir; returns their paths, those of `gan_figure_names`.

    samples: model -> its samples.pt (first seed); probe_grids: model -> its probes.pt;
    dynamics_grids: model -> its dynamics_grids.pt. Missing entries are left out of the figures."""
    out = Path(out_dir)
    models = list(summary.get("order", [])) + list(summary.get("translation") or {})
    draw = {"gan_dynamics.pdf": lambda p: dynamics_figure(summary, p, dynamics_grids),
            "mode_coverage.pdf": lambda p: mode_coverage_figure(summary, p),
            "style_mixing.pdf": lambda p: style_figure(summary, samples.get("stylegan"), p),
            "translation.pdf": lambda p: translation_figure(summary, samples, p),
            "gan_inversion.pdf": lambda p: inversion_figure(summary, probe_grids, p)}
    paths = []
    for name in gan_figure_names(models, list(summary.get("dynamics") or {}), list(summary.get("probes") or {})):
        draw[name](out / name)
        paths.append(out / name)
    return paths


# --------------------------------------------------------------------------- tables

def _draws_fd(st: dict) -> str:
    """FD of the random draws that trained, as median [min, max]."""
    fd = st["draw_fd"]                                                       # sorted
    if not fd:
        return "--"
    if len(fd) == 1:
        return fmt(fd[0])
    return f"{fmt(np.median(fd))} [{fmt(fd[0])}, {fmt(fd[-1])}]"


def gan_study_table(summary: dict) -> pd.DataFrame:
    """A row per model of the training-dynamics study or of the GAN section. Short runs: FD over the
    seed runs and their number, failed runs (diverged, collapsed) out of all seeds and draws, the
    draws' FD. Main run: classes covered and KL to the data's class histogram, D's final mean
    probability on real / fake images, and from the probes the perceptual path length, the
    reconstruction MSE and the linear probe's accuracy on the model's features / on pixels."""
    dyn = summary.get("dynamics") or {}
    models = _ordered(summary, [m for m in summary.get("order", []) if m in dyn or
                                summary["models"][m]["family"] in SECTION_FAMILIES] +
                      [m for m in dyn if m not in summary.get("order", [])])
    rows = []
    for m in models:
        st = dynamics_study(summary, m) if m in dyn else None
        main = summary["models"].get(m) or {}
        cov = main.get("class_coverage")
        d = _d_outputs(summary, m)
        probe = ((summary.get("probes") or {}).get(m) or {}).get("metrics") or {}
        acc, pix = probe.get("probe_acc"), probe.get("probe_acc_pixels")
        rows.append({
            "Model": tex_escape(_display(summary, m)),
            "FD, seeds $\\downarrow$": pm(st["fd"]) if st and st["fd"]["n"] else "--",
            "$n$": str(st["fd"]["n"]) if st else "--",
            "Failed (div., coll.)": f"{st['n_failed']}/{st['n_runs']} ({st['n_diverged']}, {st['n_collapsed']})"
                                    if st else "--",
            "FD, draws": _draws_fd(st) if st else "--",
            "Classes": f"{cov['classes_covered']}/{cov['n_classes']}" if cov else "--",
            "KL $\\downarrow$": fmt(cov["class_kl"], 2) if cov else "--",
            "$D(x)$ / $D(G(z))$": f"{fmt(d[0], decimals=2)} / {fmt(d[1], decimals=2)}" if d else "--",
            "PPL $\\downarrow$": pm(probe["ppl"]) if probe.get("ppl") else "--",
            "Recon.\\ MSE $\\downarrow$": pm(probe["recon_mse"]) if probe.get("recon_mse") else "--",
            "Probe acc.\\ (feat.\\ / pix.)": f"{pm(acc, decimals=3)} / {pm(pix, decimals=3)}"
                                             if acc and acc.get("mean") is not None else "--",
        })
    return pd.DataFrame(rows, columns=GAN_STUDY_COLUMNS)


GAN_STUDY_COLUMNS = ["Model", "FD, seeds $\\downarrow$", "$n$", "Failed (div., coll.)", "FD, draws", "Classes",
                     "KL $\\downarrow$", "$D(x)$ / $D(G(z))$", "PPL $\\downarrow$", "Recon.\\ MSE $\\downarrow$",
                     "Probe acc.\\ (feat.\\ / pix.)"]


def translation_table(summary: dict) -> pd.DataFrame:
    """The image-to-image models on test images, a row per measure: CycleGAN's translation success
    (the share of translations the domain classifier puts in the target class) both ways, its cycle
    L1 error, and the FD of its translations against the target class beside the untranslated
    inputs' FD; each super-resolution model's PSNR, SSIM and FD beside bicubic interpolation's, and
    the FD of the original test images themselves (the floor at this number of images)."""
    tr = summary.get("translation") or {}
    rows = []

    def add(model, measure, value, baseline="--"):
        rows.append({"Model": "" if any(r["Model"] == model for r in rows) else model,  # named on its first row
                     "Measure": measure, "Value": value, "Baseline": baseline})

    if "cyclegan" in tr:
        t = tr["cyclegan"].get("translation") or {}
        a, b = (tex_escape(x) for x in _domains(summary))
        model = tex_escape(_display(summary, "cyclegan"))
        if not t:
            add(model, "--", "diverged" if tr["cyclegan"].get("n_ok") == 0 else "n/a")
        for key, measure, base in (
                ("success_ab", f"success, {a} $\\to$ {b} $\\uparrow$", None),
                ("success_ba", f"success, {b} $\\to$ {a} $\\uparrow$", None),
                ("cycle_l1_aba", f"cycle L1, {a} $\\to$ {b} $\\to$ {a} $\\downarrow$", None),
                ("cycle_l1_bab", f"cycle L1, {b} $\\to$ {a} $\\to$ {b} $\\downarrow$", None),
                ("fd_ab", f"FD, {a} $\\to$ {b} $\\downarrow$", "fd_ab_identity"),
                ("fd_ba", f"FD, {b} $\\to$ {a} $\\downarrow$", "fd_ba_identity")):
            if key in t:
                dec = 3 if key.startswith("success") else None
                add(model, measure, pm(t[key], decimals=dec),
                    f"{pm(t[base])} (untranslated)" if base in t else "--")
    floor = None
    for m in ("srgan", "sr_l1"):
        if m not in tr:
            continue
        t = tr[m].get("translation") or {}
        model = tex_escape(_display(summary, m))
        if not t:
            add(model, "--", "diverged" if tr[m].get("n_ok") == 0 else "n/a")
        for key, measure, dec in (("psnr", "PSNR (dB) $\\uparrow$", 2), ("ssim", "SSIM $\\uparrow$", 3),
                                  ("fd", "FD $\\downarrow$", None)):
            if key in t:
                base = t.get(f"{key}_bicubic")
                add(model, measure, pm(t[key], decimals=dec), f"{pm(base, decimals=dec)} (bicubic)" if base else "--")
        floor = floor or t.get("fd_original")
    if floor:
        add("Original test images", "FD (floor at this $N$)", pm(floor))
    return pd.DataFrame(rows, columns=["Model", "Measure", "Value", "Baseline"])


def gan_table_names(has_dynamics: bool, has_translation: bool) -> list[str]:
    """The files `write_gan_tables` writes (the Snakefile's outputs)."""
    return (["gan_study.tex"] if has_dynamics else []) + (["translation.tex"] if has_translation else [])


def write_gan_tables(summary: dict, out_dir) -> list[Path]:
    """Write the GAN section's booktabs tables into out_dir; returns their paths (`gan_table_names`)."""
    from .tables import _write

    out = Path(out_dir)
    paths = []
    for name in gan_table_names(bool(summary.get("dynamics")), bool(summary.get("translation"))):
        df = gan_study_table(summary) if name == "gan_study.tex" else translation_table(summary)
        _write(df, out / name, "l" + "r" * (len(df.columns) - 1) if name == "gan_study.tex" else "llrr")
        paths.append(out / name)
    return paths
