"""The diffusion section's tables: FD at each step count of the sampling sweep, a row per model and
sampler (sweep.tex), and each guided model's guidance sweep (guidance_<model>.tex)."""
from __future__ import annotations

import pandas as pd

from ..formatting import fmt, pm
from ..plan import Plan


def tables(plan: Plan) -> dict:
    """The files this module writes: name -> table(summary), a (frame, column format) pair."""
    out = {}
    if plan.sweep:
        out["sweep.tex"] = lambda s: _sweep(sweep_table(s))
    for m in plan.guidance:
        out[f"guidance_{m}.tex"] = lambda s, m=m: (guidance_table(s, m), "rrrrrrrr")
    return out


def _sweep(df: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    return df, "ll" + "r" * (len(df.columns) - 2)


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
