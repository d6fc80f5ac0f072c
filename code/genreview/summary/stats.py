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


def two_level(values, within, n_boot: int = 2000, seed: int = 0) -> list[float] | None:
    """Replicates of the mean over seeds from a two-level bootstrap: resample the seeds with replacement,
    then for each drawn seed one of its own replicates over its samples, and average.

    values: the seeds' estimates (n,); within: per seed, its bootstrap replicates over its samples (centred
    on that seed's estimate, as `metrics.fd_inf_replicates` makes them). A seed's estimate already carries
    its sampling noise, so resampling both levels as they stand counts that noise twice (Davison and
    Hinkley 1997, sec. 3.8: the intervals come out too wide). As they advise, the seed level is shrunk
    towards the mean, v_mean + c (v_s - v_mean), with c^2 = max(S^2 - s_w^2, 0) / S^2 (S^2 the variance of
    the seeds' estimates, s_w^2 the mean variance of their replicates): the seed level then carries only
    the spread between seeds beyond sampling noise, and the sampling level the rest. With seeds that
    agree by chance more closely than their sampling noise allows, c = 0 and the interval still holds the
    sampling noise (the seeds-only bootstrap would shrink to nothing).

    None with fewer than two seeds (one seed says nothing of the spread between them) or where a seed has
    no replicates: the interval then comes from the seeds alone."""
    vals = np.asarray([float(v) for v in values])
    if len(vals) < 2 or len(within) != len(vals) or any(w is None or len(w) == 0 for w in within):
        return None
    m = min(len(w) for w in within)
    pool = np.asarray([list(w)[:m] for w in within], dtype=float)          # (n, m)
    n, mean = len(vals), float(vals.mean())
    between = float(np.var(vals, ddof=1))
    sampling = float(np.mean(np.var(pool, axis=1, ddof=1))) if m > 1 else 0.0
    c = math.sqrt(max(between - sampling, 0.0) / between) if between > 0 else 0.0
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, n, size=(n_boot, n))                           # (B, n): the seeds drawn
    draws = rng.integers(0, m, size=(n_boot, n))                           # (B, n): one replicate of each
    level = mean + c * (vals[seeds] - mean)                                # the shrunk seed level
    noise = pool[seeds, draws] - vals[seeds]                               # its sampling level
    return [float(v) for v in (level + noise).mean(axis=1)]


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
