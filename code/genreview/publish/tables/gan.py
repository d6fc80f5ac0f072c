"""The GAN section's tables: the training-dynamics study beside each model's main run (gan_study.tex),
and the image-to-image models on test images (translation.tex)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..formatting import fmt, pm
from ..gan_section import SECTION_FAMILIES, display_name, domains, ordered
from ..plan import Plan
from ..render import tex_escape
from ..verdicts import dynamics_study
from .booktabs import label_then_numbers


def tables(plan: Plan) -> dict:
    """The files this module writes: name -> table(summary), a (frame, column format) pair."""
    out = {}
    if plan.dynamics:
        out["gan_study.tex"] = lambda s: label_then_numbers(gan_study_table(s))
    if any(plan.family(m) == "translation" for m in plan.models):
        out["translation.tex"] = lambda s: (translation_table(s), "llrr")
    return out


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
    models = ordered(summary, [m for m in summary.get("order", []) if m in dyn or
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
            "Model": tex_escape(display_name(summary, m)),
            "FD, seeds $\\downarrow$": pm(st["fd"]) if st and st["fd"]["n"] else "--",
            "$n$": str(st["fd"]["n"]) if st else "--",
            "Failed (div., coll.)": (f"{st['n_failed']}/{st['n_runs']} ({st['n_diverged']}, {st['n_collapsed']})"
                                     + (f", {st['never_started']} not started" if st["never_started"] else ""))
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
        a, b = (tex_escape(x) for x in domains(summary))
        model = tex_escape(display_name(summary, "cyclegan"))
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
        model = tex_escape(display_name(summary, m))
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
