"""booktabs tables written by pandas from the summary; numbers formatted by `report`."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .report import duration, fmt, pm
from .files import atomic_path

# (metric, column header, scale, fixed decimals or None for significant digits)
QUALITY = [("fd", "FD $\\downarrow$", 1.0, None), ("kid", "KID$\\times 10^3$ $\\downarrow$", 1e3, None),
           ("is", "IS $\\uparrow$", 1.0, 2), ("precision", "Prec. $\\uparrow$", 1.0, 3),
           ("recall", "Rec. $\\uparrow$", 1.0, 3), ("density", "Dens. $\\uparrow$", 1.0, 3),
           ("coverage", "Cov. $\\uparrow$", 1.0, 3)]


def _write(df: pd.DataFrame, path: Path, column_format: str) -> None:
    tex = df.to_latex(index=False, escape=False, column_format=column_format)
    with atomic_path(path) as tmp:
        tmp.write_text(tex)


def _quality_columns(summary: dict) -> list:
    """The protocol's columns, plus standard Inception FID when it was configured."""
    if "fid_inception" in summary["reference"]["floor"]:
        return QUALITY + [("fid_inception", "Incep.\\ FID $\\downarrow$", 1.0, None)]
    return QUALITY


def results_table(summary: dict) -> pd.DataFrame:
    rows = []
    ref = summary["reference"]
    cols = _quality_columns(summary)
    n_ref = fmt(summary["n_samples"])
    rows.append({"Model": "Real data (floor)", **{h: fmt(ref["floor"][k] * s, decimals=d) for k, h, s, d in cols},
                 "$N$": n_ref, "Seeds": "--"})
    for name in summary["order"]:
        m = summary["models"][name]
        row = {"Model": m["display"]}
        if m["n_ok"] == 0:
            row.update({h: "diverged" if i == 0 else "" for i, (_, h, _, _) in enumerate(cols)})
            row["$N$"] = "--"
        else:
            row.update({h: pm(m["metrics"].get(k), scale=s, decimals=d) for k, h, s, d in cols})
            row["$N$"] = fmt(m["metrics"]["n"]["mean"]) if "n" in m["metrics"] else n_ref
        row["Seeds"] = f"{m['n_ok']}/{m['n_seeds']}"
        rows.append(row)
    rows.append({"Model": "Uniform noise (ceiling)",
                 **{h: fmt(ref["ceiling"][k] * s, decimals=d) for k, h, s, d in cols}, "$N$": n_ref, "Seeds": "--"})
    return pd.DataFrame(rows)


def cost_table(summary: dict) -> pd.DataFrame:
    rows = []
    for name in summary["order"]:
        m = summary["models"][name]["metrics"]
        rows.append({
            "Model": summary["models"][name]["display"],
            "Params": fmt(m["params"]["mean"] / 1e6, 2) + "\\,M",
            "Train time": duration(m["train_seconds"]["mean"]),
            "ms/step": fmt(m["ms_per_step"]["mean"]),
            "Images seen": fmt(m["images_seen"]["mean"] / 1e3, 3) + "\\,k",
            "Sampling ms/image": pm(m.get("sample_ms_per_image")),
            "NFE": fmt(m["nfe"]["mean"]) if "nfe" in m else "--",
        })
    return pd.DataFrame(rows)


NO_DENSITY = {"gan": "implicit model, no density"}


def likelihood_table(summary: dict) -> pd.DataFrame:
    """Bits/dim on test images for every model, marked exact or bound; models without a density say why."""
    rows = []
    for name in summary["order"]:
        s = summary["models"][name]
        m = s["metrics"]
        if s["likelihood"] == "none":
            rows.append({"Model": s["display"], "Bits/dim $\\downarrow$": "n/a", "Kind": "--",
                         "How": NO_DENSITY.get(s["family"], "no tractable density"), "Test images": "--",
                         "ms/image": "--"})
            continue
        bpd = m.get("bpd")
        rows.append({"Model": s["display"],
                     "Bits/dim $\\downarrow$": pm(bpd, decimals=3) if bpd and bpd["mean"] is not None else "diverged",
                     "Kind": s["likelihood"], "How": s.get("likelihood_note", ""),
                     "Test images": fmt(m["bpd_images"]["mean"]) if "bpd_images" in m else "--",
                     "ms/image": fmt(m["bpd_ms_per_image"]["mean"]) if "bpd_ms_per_image" in m else "--"})
    return pd.DataFrame(rows)


SAMPLER_NAME = {"ddim": "DDIM", "ddpm": "ancestral", "native": "one-shot"}


def sweep_table(summary: dict) -> pd.DataFrame:
    """FD at each step count, a row per model and sampler, and the sampling time per network evaluation."""
    sweep = summary["sweep"]
    steps = sorted({p["steps"] for v in sweep.values() for p in v["points"] if p["sampler"] != "native"})
    rows = []
    for name in [n for n in summary["order"] if n in sweep]:
        by_sampler: dict = {}
        for p in sweep[name]["points"]:
            by_sampler.setdefault(p["sampler"], {})[p["steps"]] = p
        for sampler, pts in by_sampler.items():
            row = {"Model": summary["models"][name]["display"], "Sampler": SAMPLER_NAME[sampler]}
            if sampler == "native":
                p = pts[1]
                row.update({f"$k={k}$": "" for k in steps})
                row[f"$k={steps[0]}$" if steps else "FD"] = f"{pm(p['fd'])} (1 NFE)"
            else:
                row.update({f"$k={k}$": pm(pts[k]["fd"]) if k in pts else "--" for k in steps})
            per = [p["ms_per_image"]["mean"] / p["nfe"]["mean"] for p in pts.values()]
            row["ms/NFE"] = fmt(sum(per) / len(per), decimals=2)
            rows.append(row)
    return pd.DataFrame(rows)


def guidance_table(summary: dict, name: str) -> pd.DataFrame:
    if not summary["guidance"][name]["points"]:
        return pd.DataFrame([{"$w$": "--", "NFE": "", "FD": "the run diverged", "Cond.\\ acc.": "", "Prec.": "",
                              "Rec.": "", "IS": "", "ms/image": ""}])
    rows = []
    for p in sorted(summary["guidance"][name]["points"], key=lambda p: p["guidance"]):
        rows.append({"$w$": f"{p['guidance']:g}", "NFE": fmt(p["nfe"]["mean"]), "FD $\\downarrow$": pm(p["fd"]),
                     "Cond.\\ acc.\\ $\\uparrow$": pm(p["cond_accuracy"], decimals=3),
                     "Prec. $\\uparrow$": pm(p["precision"], decimals=3),
                     "Rec. $\\uparrow$": pm(p["recall"], decimals=3),
                     "IS $\\uparrow$": pm(p["is"], decimals=2), "ms/image": pm(p["ms_per_image"])})
    return pd.DataFrame(rows)


def write_tables(summary: dict, out_dir: str | Path) -> list[Path]:
    out_dir = Path(out_dir)
    paths = [out_dir / "results.tex", out_dir / "cost.tex", out_dir / "likelihood.tex"]
    _write(results_table(summary), paths[0], "l" + "r" * len(_quality_columns(summary)) + "rc")
    _write(cost_table(summary), paths[1], "lrrrrrr")
    _write(likelihood_table(summary), paths[2], "lrllrr")
    if summary.get("sweep"):
        df = sweep_table(summary)
        paths.append(out_dir / "sweep.tex")
        _write(df, paths[-1], "ll" + "r" * (len(df.columns) - 2))
    for name in summary.get("guidance", {}):
        paths.append(out_dir / f"guidance_{name}.tex")
        _write(guidance_table(summary, name), paths[-1], "rrrrrrrr")
    from .gan_figures import write_gan_tables
    return paths + write_gan_tables(summary, out_dir)
