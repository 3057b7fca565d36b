"""Small statistics, standard library only: percentiles, Wilson intervals, z-tests.

Every formula here is written out so that a test can check it by hand, and so that the
SQLite path computes exactly what PostgreSQL computes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

__all__ = [
    "mixture_sprt",
    "percentile_cont",
    "regularized_incomplete_beta",
    "student_t_cdf",
    "student_t_quantile",
    "t_interval",
    "two_proportion_z_test",
    "welch_t_test",
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


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    # Lentz's method for the continued fraction of the incomplete beta function
    # (Numerical Recipes, "betacf"); converges fast for x < (a + 1) / (a + b + 2).
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        step = d * c
        h *= step
        if abs(step - 1.0) < 1e-15:
            break
    return h


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """``I_x(a, b)``, the regularized incomplete beta function (the beta distribution's CDF).

    Raises:
        ValueError: ``a`` or ``b`` not positive, or ``x`` outside ``[0, 1]``.

    .. versionadded:: 0.3.0
    """
    if a <= 0.0 or b <= 0.0 or not 0.0 <= x <= 1.0:
        raise ValueError(f"need a, b > 0 and 0 <= x <= 1, got a={a!r} b={b!r} x={x!r}")
    if x in (0.0, 1.0):
        return x
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def student_t_cdf(t: float, df: float) -> float:
    """The CDF of Student's t distribution with ``df`` (real, > 0) degrees of freedom.

    ``P(T <= t) = 1 - I_x(df / 2, 1 / 2) / 2`` for ``t >= 0``, with ``x = df / (df + t^2)``
    (symmetric for ``t < 0``).

    .. versionadded:: 0.3.0
    """
    if df <= 0.0 or math.isnan(df):
        raise ValueError(f"degrees of freedom must be > 0, got {df!r}")
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    tail = 0.5 * regularized_incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def student_t_quantile(probability: float, df: float) -> float:
    """The ``probability`` quantile of Student's t with ``df`` degrees of freedom (bisection
    on :func:`student_t_cdf`, to about 1e-12).

    .. versionadded:: 0.3.0
    """
    if not 0.0 < probability < 1.0:
        raise ValueError(f"probability must be strictly between 0 and 1, got {probability!r}")
    if probability < 0.5:
        return -student_t_quantile(1.0 - probability, df)
    low, high = 0.0, 1.0
    while student_t_cdf(high, df) < probability:
        low, high = high, high * 2.0
    for _ in range(200):
        mid = (low + high) / 2.0
        if student_t_cdf(mid, df) < probability:
            low = mid
        else:
            high = mid
        if high - low < 1e-12 * max(1.0, high):
            break
    return (low + high) / 2.0


def welch_t_test(
    mean_a: float, var_a: float, n_a: int, mean_b: float, var_b: float, n_b: int
) -> tuple[float, float, float] | None:
    """Welch's two-sided t-test of B's mean against A's (unequal variances).

    ::

        se = sqrt(s_a^2 / n_a + s_b^2 / n_b)
        t  = (mean_b - mean_a) / se
        df = se^4 / ((s_a^2 / n_a)^2 / (n_a - 1) + (s_b^2 / n_b)^2 / (n_b - 1))
        p-value = 2 * (1 - T_df(|t|))

    ``var_a`` and ``var_b`` are sample variances (``n - 1`` denominator). When both are 0
    the means are compared exactly: equal gives ``(0, inf, 1)``, different ``(+-inf, inf, 0)``.

    Returns:
        ``(t, df, p_value)``, or ``None`` when a sample has fewer than 2 values.

    .. versionadded:: 0.3.0
    """
    if n_a < 2 or n_b < 2:
        return None
    va, vb = max(var_a, 0.0) / n_a, max(var_b, 0.0) / n_b
    se2 = va + vb
    diff = mean_b - mean_a
    if se2 == 0.0:
        if diff == 0.0:
            return 0.0, math.inf, 1.0
        return math.copysign(math.inf, diff), math.inf, 0.0
    t = diff / math.sqrt(se2)
    df = se2 * se2 / (va * va / (n_a - 1) + vb * vb / (n_b - 1))
    p = (
        2.0 * (1.0 - student_t_cdf(abs(t), df))
        if abs(t) < 1.0
        else (2.0 * student_t_cdf(-abs(t), df))
    )
    return t, df, min(1.0, p)


def t_interval(
    mean: float, variance: float, n: int, confidence: float = 0.95
) -> tuple[float, float] | None:
    """The t confidence interval of a mean (``None`` below 2 values).

    .. versionadded:: 0.3.0
    """
    z_for_confidence(confidence)
    if n < 2:
        return None
    half = student_t_quantile(0.5 + confidence / 2.0, n - 1) * math.sqrt(max(variance, 0.0) / n)
    return mean - half, mean + half


def mixture_sprt(
    difference: float, variance: float, tau2: float, alpha: float
) -> tuple[float, bool]:
    """The normal-mixture sequential probability ratio test (mSPRT) of a zero difference.

    With ``V`` the variance of the estimated difference and a normal mixing distribution
    ``N(0, tau2)`` over the true difference, the likelihood ratio is::

        Lambda = sqrt(V / (V + tau2)) * exp(tau2 * difference^2 / (2 V (V + tau2)))

    It is a (nonnegative) martingale under "no difference", so by Ville's inequality
    ``P(Lambda ever reaches 1 / alpha) <= alpha``: a verdict of "significant when
    ``Lambda >= 1 / alpha``" may be checked after every day (or every call) without
    inflating false positives (Johari, Pekelis and Walsh, "Always valid inference", 2017).
    ``1 / Lambda`` (at most 1) is the always-valid p-value at this look.

    Returns:
        ``(p_value, significant)``.

    .. versionadded:: 0.3.0
    """
    if variance <= 0.0 or tau2 <= 0.0:
        same = difference == 0.0
        return (1.0, False) if same or variance < 0.0 else (0.0, True)
    log_ratio = 0.5 * math.log(variance / (variance + tau2)) + tau2 * difference * difference / (
        2.0 * variance * (variance + tau2)
    )
    p = 1.0 if log_ratio <= 0.0 else math.exp(-log_ratio)
    return p, p <= alpha
