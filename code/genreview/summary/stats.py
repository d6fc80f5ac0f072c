"""Statistics of results over seeds and along training curves (the summary computes them; the paper
formats them)."""
from __future__ import annotations

import math

import numpy as np


def stat(values, replicates=None) -> dict:
    """Values aggregated over seeds (None dropped): {"mean", "std" (sample, ddof 1), "n", "values"}.

    replicates: optional bootstrap replicates of the seed mean (B numbers; a two-level bootstrap that
    resamples the seeds, then the samples within each seed), kept as "replicates" for
    `inference.effect`; without them the interval comes from resampling the seed values."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return {"mean": None, "std": None, "n": 0, "values": []}
    out = {"mean": float(np.mean(vals)), "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
           "n": len(vals), "values": vals}
    if replicates is not None:
        out["replicates"] = [float(r) for r in replicates]
    return out


def time_to_threshold(rows: list[dict], threshold: float, key: str = "fd") -> dict | None:
    """When a training curve first reaches `key` <= threshold.

    rows: the curve in step order, each {"step", "images", "wall", key} with plain numbers (a row
    without a finite `key` is skipped). Between the last snapshot above the threshold and the first at
    or below it, step, images and wall are interpolated linearly in `key`: {"step", "images", "wall",
    key: threshold, "first": False}. Reached already at the first snapshot: that snapshot's values and
    "first": True (the curve says only that it was reached by then). None when it is never reached."""
    prev = None
    for r in rows:
        v = r.get(key)
        if v is None or not math.isfinite(v):
            continue
        if v <= threshold:
            if prev is None:
                return {"step": r["step"], "images": r["images"], "wall": r["wall"], key: v, "first": True}
            w = (prev[key] - threshold) / (prev[key] - v)          # in [0, 1): prev is above, r at or below
            return {**{k: prev[k] + w * (r[k] - prev[k]) for k in ("step", "images", "wall")}, key: threshold,
                    "first": False}
        prev = r
    return None



def plateau(rows: list[dict], gain: float, key: str = "fd") -> dict | None:
    """Whether a training curve has levelled off: the relative fall of `key` (lower is better) over the
    last doubling of training compute, from the snapshot nearest to half the last snapshot's images seen
    (at or below it) to the last. plateaued: the fall is below `gain`.

    rows: the curve in step order, each {"images", key} with stats {"mean", ...} or plain numbers (a
    row without a finite `key` is skipped). None when the curve has no snapshot at or below half of the
    last one's images (too few snapshots to see a doubling)."""
    def value(r, k):
        v = r.get(k)
        v = v.get("mean") if isinstance(v, dict) else v
        return float(v) if v is not None and math.isfinite(float(v)) else None

    pts = [(value(r, "images"), value(r, key)) for r in rows]
    pts = [(i, v) for i, v in pts if i is not None and v is not None]
    if len(pts) < 2:
        return None
    last_images, last = pts[-1]
    earlier = [(i, v) for i, v in pts[:-1] if i <= last_images / 2]
    if not earlier:
        return None
    from_images, before = earlier[-1]
    fall = (before - last) / abs(before) if before else 0.0
    return {"fall": fall, "plateaued": fall < gain, "from_images": from_images, "to_images": last_images,
            "from": before, "to": last, "key": key}
