"""Percentiles and medians for the benchmark scripts."""

from __future__ import annotations

import statistics


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def median_of_runs(runs: list[list[float]], q: float | None = None) -> float:
    """The median over runs of each run's median (or ``q`` quantile)."""
    return statistics.median(statistics.median(r) if q is None else pct(r, q) for r in runs)
