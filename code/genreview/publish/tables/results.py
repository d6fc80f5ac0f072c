"""The results section's tables: every model's quality between the real-data floor and the noise
ceiling (results.tex), its cost (cost.tex), its likelihood (likelihood.tex), and when the
quality-against-compute curves reach the FD threshold (time_to_threshold.tex)."""
from __future__ import annotations

import pandas as pd

from ...models import DISPLAY
from ..formatting import column_decimals, duration, fmt, pm, sci
from ..plan import Plan
from .booktabs import label_then_numbers


def tables(plan: Plan) -> dict:
    """The files this module writes: name -> table(summary), a (frame, column format) pair."""
    out = {"results.tex": lambda s: (results_table(s), "l" + "r" * len(quality_columns(s)) + "rc"),
           "cost.tex": lambda s: label_then_numbers(cost_table(s)),
           "likelihood.tex": lambda s: (likelihood_table(s), "lrllrr")}
    if plan.curves:
        out["time_to_threshold.tex"] = lambda s: (threshold_table(s), "lrrrr")
    return out


# (metric, column header, scale, fixed decimals or None for one count per column, formatting.column_decimals)
QUALITY = [("fd", "FD $\\downarrow$", 1.0, None), ("fd_inf", "FD$_\\infty$ $\\downarrow$", 1.0, None),
           ("kid", "KID$\\times 10^3$ $\\downarrow$", 1e3, None),
           ("is", "IS $\\uparrow$", 1.0, 2), ("precision", "Prec. $\\uparrow$", 1.0, 3),
           ("recall", "Rec. $\\uparrow$", 1.0, 3), ("density", "Dens. $\\uparrow$", 1.0, 3),
           ("coverage", "Cov. $\\uparrow$", 1.0, 3)]


OTHER_N = "\\rlap{$^\\dagger$}"  # marks an FD measured at a model's own N (eval.n_samples_by_model), not the header's


def _own_n(m: dict) -> float | None:
    """The N a model's samples were scored on (None when the summary does not say)."""
    n = m["metrics"].get("n")
    return n["mean"] if n and n.get("mean") is not None else None


def quality_columns(summary: dict) -> list:
    """The results table's columns, (metric, header, scale, decimals): the protocol's, plus standard Inception
    FID when it was configured. FD's header names the summary's N; a column without fixed decimals gets one
    count for all its rows, the floor and ceiling included (formatting.column_decimals)."""
    cols = QUALITY + ([("fid_inception", "Incep.\\ FID $\\downarrow$", 1.0, None)]
                      if "fid_inception" in summary["reference"]["floor"] else [])
    ref = summary["reference"]
    ok = [summary["models"][name] for name in summary["order"] if summary["models"][name]["n_ok"]]
    out = []
    for k, h, s, d in cols:
        if k == "fd":
            h = f"FD ($N{{=}}{fmt(summary['n_samples'])}$) $\\downarrow$"
        if d is None:
            d = column_decimals([ref["floor"].get(k), ref["ceiling"].get(k), *(m["metrics"].get(k) for m in ok)],
                                scale=s)
        out.append((k, h, s, d))
    return out


def _reference_row(label: str, side: dict, cols: list, n: str) -> dict:
    return {"Model": label, **{h: fmt(side[k] * s, decimals=d) if side.get(k) is not None else "n/a"
                               for k, h, s, d in cols}, "$N$": n, "Seeds": "--"}


def results_table(summary: dict) -> pd.DataFrame:
    """Every model's quality under the protocol between the real-data floor and the noise ceiling: mean
    \\pm std over the seeds that trained, FD at the header's N (OTHER_N marks a model scored at its own N,
    which the $N$ column gives), FD extrapolated to infinite N and KID beside it."""
    ref = summary["reference"]
    cols = quality_columns(summary)
    n_ref = fmt(summary["n_samples"])
    rows = [_reference_row("Real data (floor)", ref["floor"], cols, n_ref)]
    for name in summary["order"]:
        m = summary["models"][name]
        row = {"Model": m["display"]}
        if m["n_ok"] == 0:
            row.update({h: "diverged" if i == 0 else "" for i, (_, h, _, _) in enumerate(cols)})
            row["$N$"] = "--"
        else:
            row.update({h: pm(m["metrics"].get(k), scale=s, decimals=d) for k, h, s, d in cols})
            n = _own_n(m)
            row["$N$"] = fmt(n) if n is not None else n_ref
            if n is not None and n != summary["n_samples"]:
                row[cols[0][1]] += OTHER_N
        row["Seeds"] = f"{m['n_ok']}/{m['n_seeds']}"
        rows.append(row)
    rows.append(_reference_row("Uniform noise (ceiling)", ref["ceiling"], cols, n_ref))
    return pd.DataFrame(rows)


def cost_table(summary: dict) -> pd.DataFrame:
    """Parameters, training time and steps, images seen, training FLOPs (`torch.utils.flop_counter`; none for
    the models fitted by EM), sampling time per image and NFE; each numeric column
    with one count of decimals (training time carries its own unit per row)."""
    ms = [summary["models"][name]["metrics"] for name in summary["order"]]

    def dec(key, scale=1.0, mean_only=True):
        return column_decimals([(m[key]["mean"] if mean_only else m[key]) if key in m else None for m in ms],
                               scale=scale)

    d_params, d_step, d_images = dec("params", 1e-6), dec("ms_per_step"), dec("images_seen", 1e-3)
    d_sample = dec("sample_ms_per_image", mean_only=False)
    d_rate = dec("images_per_s") if all("images_per_s" in m and m["images_per_s"]["mean"] is not None for m in ms) \
        else None
    if d_rate is not None:  # peak memory: one unit for the column, GB when any model needed a GB or more
        gb = max(m["peak_memory_mb"]["mean"] for m in ms) >= 1024
        unit, mem_scale, d_mem = ("\\,GB", 1 / 1024, 1) if gb else ("\\,MB", 1.0, 0)
    rows = []
    for name, m in zip(summary["order"], ms):
        rows.append({
            "Model": summary["models"][name]["display"],
            "Params": fmt(m["params"]["mean"] / 1e6, decimals=d_params) + "\\,M",
            "Train time": duration(m["train_seconds"]["mean"]),
            "ms/step": fmt(m["ms_per_step"]["mean"], decimals=d_step),
            "Images seen": fmt(m["images_seen"]["mean"] / 1e3, decimals=d_images) + "\\,k",
            "Train FLOPs": sci(m["train_flops"]["mean"]) if (m.get("train_flops") or {}).get("mean") else "--",
            **({"Images/s": fmt(m["images_per_s"]["mean"], decimals=d_rate),
                "Peak mem.": fmt(m["peak_memory_mb"]["mean"] * mem_scale, decimals=d_mem) + unit}
               if d_rate is not None else {}),
            "Sampling ms/image": pm(m.get("sample_ms_per_image"), decimals=d_sample),
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


def threshold_table(summary: dict) -> pd.DataFrame:
    """When each model of the quality-against-compute curves first reaches the FD threshold (interpolated
    between snapshots; "$\\le$" when already at the first snapshot), in training wall time and images
    seen, or "not reached"; its FD at the last snapshot; and the seeds whose own curve reaches it."""
    curves = summary["curves"]
    rows = []
    for name in [m for m in summary["order"] if m in curves] + [m for m in curves if m not in summary["order"]]:
        c = curves[name]
        tt = c.get("time_to_threshold")
        final = c["rows"][-1]["fd"] if c.get("rows") else None
        le = "$\\le$ " if tt and tt["first"] else ""
        rows.append({"Model": DISPLAY[name][0],
                     "Reached at": f"{le}{duration(tt['wall'])}" if tt else ("not reached" if c.get("rows")
                                                                             else "diverged"),
                     "Images seen": f"{le}{fmt(tt['images'] / 1e3, 3)}\\,k" if tt else "--",
                     "Final FD $\\downarrow$": pm(final) if final else "--",
                     "Seeds reached": f"{c['seeds_reached']}/{c['n_seeds']}"})
    return pd.DataFrame(rows, columns=["Model", "Reached at", "Images seen", "Final FD $\\downarrow$",
                                       "Seeds reached"])
