"""A/A experiments checked after every day of traffic, through the verdict code of
compare_ab (no database): the sequential (mSPRT) verdict keeps its false-positive rate at or
under 5%, while the fixed-horizon test read after every day exceeds it.

Each experiment runs two identical variants for ``DAYS`` days; after each day the cumulative
counts go to the same judge compare_ab uses, and an experiment is a false positive if any
day's verdict is "better" or "worse". Seeded, so the figures are exact and repeatable.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from vividly_trace.analytics._ab import _judge
from vividly_trace.analytics._metrics import resolve_metric

DAYS = 30
ALPHA = 0.05


@dataclass
class _Arm:
    label: str
    n: int = 0
    total: float = 0.0
    squares: float = 0.0

    def add(self, value: float) -> None:
        self.n += 1
        self.total += value
        self.squares += value * value

    def row(self) -> dict[str, Any]:
        return {"label": self.label, "m_n": self.n, "m_sum": self.total, "m_sq": self.squares}


def _false_positive_rates(
    metric_name: str, experiments: int, per_day: int, draw: Any, seed: int
) -> tuple[float, float, float]:
    """(fixed-horizon with daily peeks, sequential with daily peeks, fixed-horizon read
    once at the end): the share of A/A experiments declared different."""
    metric = resolve_metric(metric_name)
    significant = {"BETTER", "WORSE"}
    rng = random.Random(seed)
    fixed_peeking = sequential = fixed_once = 0
    for _ in range(experiments):
        a, b = _Arm("v1/A"), _Arm("v2/B")
        fixed_hit = sequential_hit = False
        for _day in range(DAYS):
            for _ in range(per_day):
                a.add(draw(rng))
                b.add(draw(rng))
            verdict = _judge(metric, a.row(), b.row(), 1.0 - ALPHA, 30)
            fixed_hit = fixed_hit or verdict.direction.name in significant
            sequential_hit = sequential_hit or verdict.sequential_direction.name in significant
        fixed_peeking += fixed_hit
        sequential += sequential_hit
        fixed_once += verdict.direction.name in significant
    return fixed_peeking / experiments, sequential / experiments, fixed_once / experiments


def test_success_rate_a_a_with_daily_peeks() -> None:
    """1,200 A/A experiments, 30 days of 30 calls per variant per day, both at 20% success."""
    fixed, sequential, once = _false_positive_rates(
        "success", 1200, 30, lambda rng: float(rng.random() < 0.2), seed=13
    )
    print(f"success A/A: fixed peeking {fixed:.1%}, sequential {sequential:.1%}, once {once:.1%}")
    assert sequential <= ALPHA
    assert fixed > ALPHA
    # Read once, the fixed-horizon test is fine: its excess comes from peeking.
    assert 0.02 <= once <= 0.08
    assert fixed > 2 * once


def test_latency_a_a_with_daily_peeks() -> None:
    """600 A/A experiments, 30 days of 20 calls per variant per day, skewed latencies
    (log-normal, as real latencies are) from one distribution."""
    fixed, sequential, once = _false_positive_rates(
        "latency", 600, 20, lambda rng: rng.lognormvariate(5.5, 0.6), seed=14
    )
    print(f"latency A/A: fixed peeking {fixed:.1%}, sequential {sequential:.1%}, once {once:.1%}")
    assert sequential <= ALPHA
    assert fixed > ALPHA
    assert 0.02 <= once <= 0.08


def test_the_sequential_verdict_still_finds_a_real_difference() -> None:
    """Not a test that cannot fail: with B truly better (20% -> 27% success) the sequential
    verdict says so in most experiments within the 30 days, and never the wrong way."""
    metric = resolve_metric("success")
    rng = random.Random(15)
    found = wrong = 0
    for _ in range(200):
        a, b = _Arm("v1/A"), _Arm("v2/B")
        for _day in range(DAYS):
            for _ in range(30):
                a.add(float(rng.random() < 0.20))
                b.add(float(rng.random() < 0.27))
            verdict = _judge(metric, a.row(), b.row(), 1.0 - ALPHA, 30)
            if verdict.sequential_direction.name in {"BETTER", "WORSE"}:
                found += verdict.sequential_direction.name == "BETTER"
                wrong += verdict.sequential_direction.name == "WORSE"
                break
    print(f"success 20% vs 27%: sequential found B better in {found / 200:.0%}")
    assert found / 200 >= 0.6
    assert wrong == 0
