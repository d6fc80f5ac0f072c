"""The comparison section's figure of the claims ledger against training compute (claims_vs_compute.pdf):
each quality claim between two models with training curves, judged by KID at matched training FLOPs
(`claims.along_compute`), drawn as a strip coloured by its verdict at each compute both models reached,
with the compute from which its final verdict holds marked."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Patch

from ..plan import Plan
from ..plotting import save_figure
from .inputs import Draw

KIND_COLORS = {"supported": "#1b9e77", "contradicted": "#d95f02", "equivalent": "#7570b3",
               "inconclusive": "#bbbbbb"}
LABEL_CHARS = 48  # a claim's words on the strip's left, cut to this many characters


def figures(plan: Plan) -> dict[str, Draw]:
    """claims_vs_compute.pdf where the build has training curves (the claims judged along them)."""
    if not plan.curves:
        return {}
    return {"claims_vs_compute.pdf": lambda i, p: claims_compute_figure(i.claims, p)}


def _label(row: dict) -> str:
    text = row["claim"].rstrip(".")
    return text if len(text) <= LABEL_CHARS else text[:LABEL_CHARS - 1].rstrip() + "\u2026"


def strips(claims: dict | None) -> list[dict]:
    """The ledger rows judged along compute, in ledger order: {"label", "points", "flip_at", "at"}."""
    rows = (claims or {}).get("claims", [])
    return [{"label": _label(r), "id": r["id"], **{k: r["matched"][k] for k in ("points", "flip_at", "at")}}
            for r in rows if r.get("matched") and r["matched"].get("points")]


def claims_compute_figure(claims: dict | None, path):
    """One strip per claim: from each compute both models reached to the next, the verdict there; a black
    tick where the final verdict starts to hold after a change."""
    rows = strips(claims)
    fig, ax = plt.subplots(figsize=(6.4, 0.45 + 0.32 * max(1, len(rows))))
    if not rows:
        ax.axis("off")
        ax.text(0.5, 0.5, "No quality claim of this build has training curves of both its models.",
                ha="center", va="center", fontsize=8)
        save_figure(fig, path)
        return
    lo = min(p["compute"] for r in rows for p in r["points"])
    hi = max(p["compute"] for r in rows for p in r["points"])
    end = hi * 1.25 if hi > lo else hi * 2
    for y, r in enumerate(rows):
        cs = [p["compute"] for p in r["points"]]
        edges = cs + [cs[-1] * 1.25]  # the last verdict drawn a little past the compute it was judged at
        for p, x0, x1 in zip(r["points"], edges[:-1], edges[1:]):
            ax.barh(y, x1 - x0, left=x0, height=0.6, color=KIND_COLORS[p["kind"]], edgecolor="white", lw=0.5)
        if r["flip_at"]:
            ax.plot([r["flip_at"]] * 2, [y - 0.38, y + 0.38], color="black", lw=1.2)
    ax.set_xscale("log")
    ax.set_xlim(lo / 1.25, end)
    ax.set_yticks(np.arange(len(rows)), [r["label"] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("training compute both models reached (FLOPs)")
    ax.grid(axis="x", alpha=0.3, which="both")
    kinds = [k for k in KIND_COLORS if any(p["kind"] == k for r in rows for p in r["points"])]
    handles = [Patch(color=KIND_COLORS[k], label=k) for k in kinds]
    if any(r["flip_at"] for r in rows):
        handles.append(plt.Line2D([], [], color="black", lw=1.2, label="final verdict holds from here"))
    ax.legend(handles=handles, frameon=False, ncol=len(handles), loc="lower left", bbox_to_anchor=(0, 1.0),
              fontsize=7)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    save_figure(fig, path)
