"""Numbers as the paper prints them: every table, figure and template formats through `fmt` and `pm`,
so the PDF shows the same digits everywhere."""
from __future__ import annotations

import math


def _decimals(x: float, sig: int) -> int:
    if x == 0 or not math.isfinite(x):
        return 0
    return max(0, sig - 1 - math.floor(math.log10(abs(x))))


def fmt(x, sig: int = 3, decimals: int | None = None) -> str:
    """x to `sig` significant digits without exponent (large numbers keep all integer digits)."""
    if x is None:
        return "n/a"
    x = float(x)
    if not math.isfinite(x):
        return "n/a"
    if decimals is None and x.is_integer() and abs(x) >= 1:
        return f"{int(x)}"
    d = _decimals(x, sig) if decimals is None else decimals
    s = f"{x:.{d}f}"
    return "0" if s.strip("-0.") == "" and d == 0 else s


def pm(st: dict, sig: int = 3, scale: float = 1.0, math_mode: bool = True, decimals: int | None = None) -> str:
    """A seed-aggregated stat as 'mean \\pm std' (std to two significant digits, mean to the
    same decimals); a single seed shows the mean alone."""
    if not st or st.get("mean") is None:
        return "n/a"
    mean = st["mean"] * scale
    if st["n"] < 2 or not st["std"]:
        return fmt(mean, sig, decimals)
    std = st["std"] * scale
    d = max(_decimals(std, 2), 0) if decimals is None else decimals
    body = f"{mean:.{d}f} \\pm {std:.{d}f}"
    return f"${body}$" if math_mode else body


def column_decimals(entries, sig: int = 2, scale: float = 1.0, max_decimals: int = 3) -> int:
    """One count of decimals for a whole table column, so that its numbers align: enough for `sig`
    significant digits of the column's smallest nonzero value and for two of its smallest nonzero seed
    spread (pm's rule for one row), but at most `max_decimals` (a value near zero, such as the real-data
    floor, would otherwise give every row many digits that carry nothing).

    entries: seed-aggregated stats ({"mean", "std", ...}), plain numbers, or None (skipped), before
    `scale`. Pass the result to fmt/pm as `decimals`."""
    values, stds = [], []
    for e in entries:
        if isinstance(e, dict):
            if e.get("mean") is not None:
                values.append(e["mean"] * scale)
                if e.get("n", 0) > 1 and e.get("std"):
                    stds.append(e["std"] * scale)
        elif e is not None:
            values.append(float(e) * scale)
    d = [_decimals(min(abs(v) for v in xs if v and math.isfinite(v)), k) for xs, k in ((values, sig), (stds, 2))
         if any(v and math.isfinite(v) for v in xs)]
    return min(max(d, default=0), max_decimals)


NEAR_ONE = {"": "about", "as much": "about as much", "faster": "about as fast", "slower": "about as fast",
            "more": "about as much", "larger": "about as large", "smaller": "about as large"}


def times(ratio: float, after: str = "") -> str:
    """A ratio as a phrase with what follows it: '3.2 times faster', '3.2 times as much', '3.2 times' (before
    a noun: '3.2 times the VAE's'); within 5% of one the phrase reads 'about as fast', 'about as much',
    'about' ('about the VAE's'). `after` is one of NEAR_ONE's keys."""
    if after not in NEAR_ONE:
        raise ValueError(f"times(): unknown phrase {after!r}; one of {sorted(NEAR_ONE)} (add it to NEAR_ONE)")
    if ratio is None or not math.isfinite(ratio):
        return "n/a"
    if 0.95 <= ratio < 1.05:
        return NEAR_ONE[after]
    return f"{fmt(ratio, 2)} times" + (f" {after}" if after else "")


def sci(x: float, math_mode: bool = True) -> str:
    """A small or large number in LaTeX scientific notation, '2 \\times 10^{-4}' (in $...$ unless
    math_mode is False)."""
    if x is None:
        return "n/a"
    exp = math.floor(math.log10(abs(x))) if x else 0
    mant = fmt(x / 10 ** exp, 2)
    body = f"10^{{{exp}}}" if mant == "1" else f"{mant} \\times 10^{{{exp}}}"
    if exp == 0:
        body = mant
    return f"${body}$" if math_mode else body


def duration(seconds: float) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 90:
        return f"{fmt(seconds, 2)}\\,s"
    if seconds < 5400:
        return f"{fmt(seconds / 60, 2)}\\,min"
    return f"{fmt(seconds / 3600, 2)}\\,h"

