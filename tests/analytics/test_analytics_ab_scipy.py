"""The A/B statistics against scipy: the t distribution, Welch's test, the t interval, and
the Wilson interval against its formula written out here."""

from __future__ import annotations

import math
import random

import pytest

from vividly_trace.analytics._stats import (
    regularized_incomplete_beta,
    student_t_cdf,
    student_t_quantile,
    t_interval,
    welch_t_test,
    wilson_interval,
)

stats = pytest.importorskip("scipy.stats")
special = pytest.importorskip("scipy.special")

DFS = [0.5, 1.0, 1.5, 2.0, 3.0, 4.7, 7.0, 12.3, 30.0, 57.5, 120.0, 1000.0, 1e5]
TS = [-40.0, -8.0, -3.2, -1.96, -1.0, -0.3, 0.0, 0.01, 0.5, 1.3, 2.0, 2.58, 5.0, 12.0, 60.0]
PROBABILITIES = [0.0005, 0.01, 0.025, 0.1, 0.3, 0.5, 0.6, 0.9, 0.95, 0.975, 0.995, 0.9999]


@pytest.mark.parametrize("df", DFS)
def test_t_cdf_matches_scipy(df: float) -> None:
    """The CDF over a grid of t, in both tails (relative error, so tiny tails count too)."""
    for t in TS:
        assert student_t_cdf(t, df) == pytest.approx(float(stats.t.cdf(t, df)), rel=1e-10)


@pytest.mark.parametrize("df", DFS)
def test_t_quantile_matches_scipy(df: float) -> None:
    """The quantile over a grid of probabilities, and it inverts the CDF."""
    for p in PROBABILITIES:
        q = student_t_quantile(p, df)
        assert q == pytest.approx(float(stats.t.ppf(p, df)), rel=1e-9, abs=1e-10)
        assert student_t_cdf(q, df) == pytest.approx(p, rel=1e-9)


def test_incomplete_beta_matches_scipy() -> None:
    """I_x(a, b) on both sides of the continued fraction's switch point."""
    for a in (0.5, 1.0, 2.5, 10.0, 60.0):
        for b in (0.5, 1.0, 3.0, 25.0):
            for x in (1e-6, 0.05, 0.3, 0.5, 0.77, 0.99, 1 - 1e-9):
                expected = float(special.betainc(a, b, x))
                assert regularized_incomplete_beta(a, b, x) == pytest.approx(
                    expected, rel=1e-9, abs=1e-300
                )


def _sample(rng: random.Random, n: int, mean: float, sd: float) -> list[float]:
    return [rng.gauss(mean, sd) for _ in range(n)]


def _moments(values: list[float]) -> tuple[float, float, int]:
    n = len(values)
    mean = sum(values) / n
    return mean, sum((v - mean) ** 2 for v in values) / (n - 1), n


@pytest.mark.parametrize("seed", range(12))
def test_welch_matches_scipy(seed: int) -> None:
    """t, df and p of Welch's test against ``scipy.stats.ttest_ind(equal_var=False)``, from
    samples of unequal sizes and spreads (p from about 1 down to far below 1e-6)."""
    rng = random.Random(seed)
    n_a, n_b = rng.randint(2, 80), rng.randint(2, 200)
    a = _sample(rng, n_a, 100.0, rng.uniform(1, 30))
    b = _sample(rng, n_b, 100.0 + rng.uniform(-25, 25), rng.uniform(1, 30))
    got = welch_t_test(*_moments(a), *_moments(b))
    assert got is not None
    t, df, p = got
    expected = stats.ttest_ind(b, a, equal_var=False)
    assert t == pytest.approx(float(expected.statistic), rel=1e-9)
    assert df == pytest.approx(float(expected.df), rel=1e-9)
    assert p == pytest.approx(float(expected.pvalue), rel=1e-8, abs=1e-300)


def test_welch_edge_cases() -> None:
    """Too few values, and zero variance on both sides."""
    assert welch_t_test(1.0, 0.0, 1, 2.0, 1.0, 10) is None
    assert welch_t_test(5.0, 0.0, 3, 5.0, 0.0, 3) == (0.0, math.inf, 1.0)
    assert welch_t_test(5.0, 0.0, 3, 6.0, 0.0, 3) == (math.inf, math.inf, 0.0)


@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.99])
def test_t_interval_matches_scipy(confidence: float) -> None:
    """The t interval of a mean against ``scipy.stats.t.interval``."""
    rng = random.Random(7)
    for n in (2, 3, 10, 45, 300):
        values = _sample(rng, n, 50.0, 12.0)
        mean, var, _ = _moments(values)
        low, high = t_interval(mean, var, n, confidence) or (math.nan, math.nan)
        e_low, e_high = stats.t.interval(confidence, n - 1, loc=mean, scale=math.sqrt(var / n))
        assert (low, high) == (
            pytest.approx(float(e_low), rel=1e-9),
            pytest.approx(float(e_high), rel=1e-9),
        )
    assert t_interval(1.0, 0.0, 1) is None


def _wilson_by_hand(x: int, n: int, confidence: float) -> tuple[float, float]:
    """Wilson (1927): the roots in p of (x/n - p)^2 = z^2 p (1 - p) / n."""
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    phat = x / n
    a = 1 + z * z / n
    b = -(2 * phat + z * z / n)
    c = phat * phat
    root = math.sqrt(b * b - 4 * a * c)
    return (-b - root) / (2 * a), (-b + root) / (2 * a)


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_matches_the_quadratic(confidence: float) -> None:
    """The Wilson interval is the pair of roots of its defining quadratic."""
    for n in (1, 2, 7, 30, 101, 5000):
        for x in sorted({0, 1, n // 3, n // 2, n - 1, n}):
            low, high = wilson_interval(x, n, confidence) or (math.nan, math.nan)
            e_low, e_high = _wilson_by_hand(x, n, confidence)
            assert low == pytest.approx(max(0.0, e_low), abs=1e-12)
            assert high == pytest.approx(min(1.0, e_high), abs=1e-12)
            assert 0.0 <= low <= x / n <= high <= 1.0
