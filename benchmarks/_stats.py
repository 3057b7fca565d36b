"""Statistics the benchmarks share: paired differences, quantiles, confidence intervals."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

Z95 = 1.959964  # the standard normal's 97.5th percentile


def paired_diffs(values: Sequence[float], reference: Sequence[float]) -> list[float]:
    """Paired: each value minus the reference measured with it (same round or block)."""
    return [v - r for v, r in zip(values, reference, strict=True)]


def quantile(values: Sequence[float], q: float) -> float:
    """The sample's ``q`` quantile: the nearest order statistic, no interpolation."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def median_ci(values: Sequence[float], z: float = Z95) -> tuple[float, float]:
    """Distribution-free 95% CI of the median: order statistics j..k of the sorted sample,
    with j, k from the normal approximation of Binomial(n, 1/2)."""
    s = sorted(values)
    n = len(s)
    half = z * (n**0.5) / 2
    j = max(0, int(n / 2 - half))  # 0-based lower index
    k = min(n - 1, int(-(-(n / 2 + half) // 1)))  # ceil, 0-based upper index
    return s[j], s[k]


def mean_ci(values: Sequence[float], z: float = Z95) -> tuple[float, float]:
    """The mean and the half-width of its 95% CI (normal approximation)."""
    return statistics.fmean(values), z * statistics.stdev(values) / len(values) ** 0.5
