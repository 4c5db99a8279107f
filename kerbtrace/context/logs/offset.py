"""A log's clock offset from the capture's: the densest cluster of (log time - capture time) differences.

A log and a capture are written by different clocks (and an IIS log by a server that may be minutes off).
Every plausible pairing of a log entry with a capture event gives one difference; the true offset is where
most of them agree, so the median of the densest window of differences is taken, whatever its size.
"""

from __future__ import annotations

from statistics import median


def densest_offset(diffs: list[float], width: float) -> tuple[float, int] | None:
    """(offset, how many differences agree within `width` seconds), or None without differences. Ties go
    to the cluster nearest zero."""
    if not diffs:
        return None
    values = sorted(diffs)
    best: tuple[int, float, int, int] | None = None  # (count, -|centre|, lo, hi)
    lo = 0
    for hi, value in enumerate(values):  # linear: one pass, the window's median only for the winner
        while value - values[lo] > width:
            lo += 1
        key = (hi - lo + 1, -abs(values[lo] + value) / 2, lo, hi + 1)
        if best is None or key[:2] > best[:2]:
            best = key
    assert best is not None
    _count, _centre, lo, hi = best
    return median(values[lo:hi]), hi - lo
