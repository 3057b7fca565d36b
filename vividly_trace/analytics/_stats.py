"""Small statistics, standard library only: percentiles, Wilson intervals, z-tests.

Every formula here is written out so that a test can check it by hand, and so that the
SQLite path computes exactly what PostgreSQL computes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

__all__ = [
    "percentile_cont",
    "two_proportion_z_test",
    "wilson_interval",
    "z_for_confidence",
]


def percentile_cont(sorted_values: Sequence[float], fraction: float) -> float | None:
    """The continuous percentile of already sorted values, as PostgreSQL computes it.

    ``PERCENTILE_CONT(f) WITHIN GROUP (ORDER BY x)`` takes the rows at 0-based positions
    ``floor(f * (n - 1))`` and ``ceil(f * (n - 1))`` and interpolates linearly between them
    (``lo + (hi - lo) * (f * (n - 1) - floor(f * (n - 1)))``, PostgreSQL's ``float8_lerp``).
    This is also what ``statistics.quantiles(method="inclusive")`` and numpy's default
    ``"linear"`` method give.

    Args:
        sorted_values: the values in ascending order.
        fraction: the percentile as a fraction in ``[0, 1]`` (0.95 for p95).

    Returns:
        The percentile, or ``None`` for no values.

    Raises:
        ValueError: ``fraction`` is outside ``[0, 1]``.

    .. versionadded:: 0.1.0
    """
    if not 0.0 <= fraction <= 1.0 or math.isnan(fraction):
        raise ValueError(f"a percentile fraction must be in [0, 1], got {fraction!r}")
    n = len(sorted_values)
    if n == 0:
        return None
    position = fraction * (n - 1)
    first = math.floor(position)
    second = math.ceil(position)
    low = float(sorted_values[first])
    if first == second:
        return low
    high = float(sorted_values[second])
    return low + (position - first) * (high - low)


def z_for_confidence(confidence: float) -> float:
    """The two-sided standard normal quantile for ``confidence`` (1.959964 for 0.95).

    Raises:
        ValueError: ``confidence`` is not strictly between 0 and 1.

    .. versionadded:: 0.1.0
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence!r}")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def wilson_interval(
    successes: int, trials: int, confidence: float = 0.95
) -> tuple[float, float] | None:
    """The Wilson score interval of a success proportion.

    With ``p = successes / trials`` and ``z`` the two-sided normal quantile::

        centre = (p + z^2 / (2n)) / (1 + z^2 / n)
        half   = z * sqrt(p (1 - p) / n + z^2 / (4 n^2)) / (1 + z^2 / n)

    Unlike the normal ("Wald") interval it stays inside ``[0, 1]`` and is sensible for
    small samples and for rates near 0 or 1.

    Returns:
        ``(low, high)``, or ``None`` when ``trials`` is 0.

    Raises:
        ValueError: counts out of range.

    .. versionadded:: 0.1.0
    """
    if trials < 0 or successes < 0 or successes > trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")
    if trials == 0:
        return None
    z = z_for_confidence(confidence)
    n = float(trials)
    p = successes / n
    z2 = z * z
    denominator = 1.0 + z2 / n
    centre = (p + z2 / (2.0 * n)) / denominator
    half = z * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denominator
    # At 0 (or all) successes the bound is exactly 0 (or 1); rounding would leave 1e-17.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


def two_proportion_z_test(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int
) -> tuple[float, float] | None:
    """Two-sided two-proportion z-test (pooled standard error) of B's rate against A's.

    ::

        p  = (x_a + x_b) / (n_a + n_b)
        se = sqrt(p (1 - p) (1 / n_a + 1 / n_b))
        z  = (x_b / n_b - x_a / n_a) / se
        p-value = erfc(|z| / sqrt(2))

    When both samples are all successes or all failures (``se`` is 0) the rates are equal:
    ``z = 0`` and the p-value is 1.

    Returns:
        ``(z, p_value)``; ``z > 0`` means B's rate is higher. ``None`` when a sample is empty.

    Raises:
        ValueError: counts out of range.

    .. versionadded:: 0.1.0
    """
    for x, n in ((successes_a, trials_a), (successes_b, trials_b)):
        if n < 0 or x < 0 or x > n:
            raise ValueError(f"need 0 <= successes <= trials, got {x}/{n}")
    if trials_a == 0 or trials_b == 0:
        return None
    pooled = (successes_a + successes_b) / (trials_a + trials_b)
    se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / trials_a + 1.0 / trials_b))
    if se == 0.0:
        return 0.0, 1.0
    z = (successes_b / trials_b - successes_a / trials_a) / se
    return z, math.erfc(abs(z) / math.sqrt(2.0))
