"""Statistics, error normalisation, sticky A/B assignment and time parsing, by hand."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import os
import random
import statistics
import subprocess
import sys
from typing import Any

import pytest

from vividly_trace import ConfigurationError
from vividly_trace.analytics import (
    choose_variant,
    normalize_error_message,
    parse_time,
    percentile_cont,
    two_proportion_z_test,
    wilson_interval,
)

UTC = dt.timezone.utc


class TestPercentileCont:
    def test_worked_example(self) -> None:
        """p95 of 1..10 by hand: position 0.95 * 9 = 8.55 -> 9 + 0.55 * (10 - 9) = 9.55."""
        values = [float(v) for v in range(1, 11)]
        assert percentile_cont(values, 0.95) == pytest.approx(9.55)
        assert percentile_cont(values, 0.5) == 5.5
        assert percentile_cont(values, 0.0) == 1.0
        assert percentile_cont(values, 1.0) == 10.0
        assert percentile_cont([7.0], 0.99) == 7.0
        assert percentile_cont([], 0.5) is None

    def test_equals_statistics_quantiles_inclusive_and_numpy(self) -> None:
        """The same interpolation as statistics.quantiles(method='inclusive') and numpy."""
        numpy = pytest.importorskip("numpy")
        rng = random.Random(5)
        for n in (2, 3, 10, 101, 997):
            values = sorted(rng.lognormvariate(3, 1) for _ in range(n))
            cuts = statistics.quantiles(values, n=100, method="inclusive")
            for k in range(1, 100):
                assert percentile_cont(values, k / 100) == pytest.approx(cuts[k - 1], rel=1e-12)
                assert percentile_cont(values, k / 100) == pytest.approx(
                    float(numpy.percentile(values, k)), rel=1e-12
                )

    @pytest.mark.parametrize("bad", [-0.01, 1.01, math.nan])
    def test_bad_fraction(self, bad: float) -> None:
        """A fraction outside [0, 1] is refused."""
        with pytest.raises(ValueError):
            percentile_cont([1.0, 2.0], bad)


class TestWilson:
    def test_known_interval(self) -> None:
        """8 of 10 at 95%: (0.4902, 0.9433), the textbook Wilson score interval."""
        low, high = wilson_interval(8, 10)  # type: ignore[misc]
        assert low == pytest.approx(0.4902, abs=5e-5)
        assert high == pytest.approx(0.9433, abs=5e-5)

    def test_by_hand(self) -> None:
        """45 of 50 at 95%, the formula written out."""
        z = 1.959963984540054
        n, p = 50.0, 0.9
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        assert wilson_interval(45, 50) == pytest.approx((centre - half, centre + half), rel=1e-12)

    def test_edges(self) -> None:
        """0 and all successes stay inside [0, 1]; no trials: None."""
        low, high = wilson_interval(0, 20)  # type: ignore[misc]
        assert low == 0.0 and 0 < high < 0.2
        low, high = wilson_interval(20, 20)  # type: ignore[misc]
        assert high == 1.0 and 0.8 < low < 1
        assert wilson_interval(0, 0) is None
        wide = wilson_interval(45, 50, confidence=0.99)
        narrow = wilson_interval(45, 50, confidence=0.90)
        assert wide is not None and narrow is not None
        assert wide[0] < narrow[0] and wide[1] > narrow[1]

    @pytest.mark.parametrize("args", [(5, 4), (-1, 4), (1, -1)])
    def test_bad_counts(self, args: tuple[int, int]) -> None:
        """successes must be within [0, trials]."""
        with pytest.raises(ValueError):
            wilson_interval(*args)

    @pytest.mark.parametrize("confidence", [0.0, 1.0, 1.5])
    def test_bad_confidence(self, confidence: float) -> None:
        """The confidence level is strictly between 0 and 1."""
        with pytest.raises(ValueError):
            wilson_interval(1, 2, confidence)


class TestZTest:
    def test_hand_computed(self) -> None:
        """A: 45/50, B: 30/50. pooled 0.75, se = sqrt(.75 * .25 * (2/50)) = 0.0866025,
        z = (0.6 - 0.9) / 0.0866025 = -3.4641016, two-sided p = 2 * Phi(-3.4641) = 0.000532."""
        z, p = two_proportion_z_test(45, 50, 30, 50)  # type: ignore[misc]
        assert z == pytest.approx(-3.4641016, abs=1e-6)
        assert p == pytest.approx(0.00053201, rel=1e-4)
        assert p == pytest.approx(2 * statistics.NormalDist().cdf(-abs(z)), rel=1e-9)

    def test_second_example(self) -> None:
        """A: 80/100, B: 90/100: pooled .85, se = sqrt(.85 * .15 * .02) = 0.0504975,
        z = 0.1 / 0.0504975 = 1.980295; Phi(1.98) = 0.976148 (table) + 0.000295 * phi(1.98)
        (0.056 = the density) = 0.976165, so p = 2 * (1 - 0.976165) = 0.04767."""
        z, p = two_proportion_z_test(80, 100, 90, 100)  # type: ignore[misc]
        assert z == pytest.approx(1.980295, abs=1e-6)
        assert p == pytest.approx(0.04767, abs=5e-6)

    def test_symmetry_and_equal_rates(self) -> None:
        """Swapping A and B flips z only; equal or degenerate rates give p = 1."""
        z1, p1 = two_proportion_z_test(30, 60, 40, 60)  # type: ignore[misc]
        z2, p2 = two_proportion_z_test(40, 60, 30, 60)  # type: ignore[misc]
        assert z1 == -z2 and p1 == p2
        assert two_proportion_z_test(10, 20, 20, 40) == (0.0, 1.0)
        assert two_proportion_z_test(20, 20, 40, 40) == (0.0, 1.0)
        assert two_proportion_z_test(0, 20, 0, 40) == (0.0, 1.0)
        assert two_proportion_z_test(1, 2, 0, 0) is None


class TestNormalizeErrorMessage:
    @pytest.mark.parametrize(
        ("message", "expected"),
        [
            (
                "429 RESOURCE_EXHAUSTED. {'error': {'code': 429, 'message': 'Resource has "
                "been exhausted (e.g. check quota).', 'status': 'RESOURCE_EXHAUSTED'}}",
                "429 RESOURCE_EXHAUSTED: Resource has been exhausted (e.g. check quota).",
            ),
            (
                '503 UNAVAILABLE. {"error": {"code": 503, "message": "The model is '
                'overloaded for request 12345.", "status": "UNAVAILABLE"}}',
                "503 UNAVAILABLE: The model is overloaded for request <n>.",
            ),
            ("user 42 not found", "user <n> not found"),
            ("timeout after 30.5s for req_83412", "timeout after <n>s for <id>"),
            (
                "job 550e8400-e29b-41d4-a716-446655440000 failed at 2026-11-24T03:30:00.123Z",
                "job <uuid> failed at <time>",
            ),
            ("bad pointer 0xdeadbeef in 8f3a9c2e11", "bad pointer <hex> in <hex>"),
            ("Invalid value 'abc' for field \"x\"", "Invalid value '<str>' for field \"<str>\""),
            ("can't read user's file 12", "can't read user's file <n>"),
            ("HTTP 503 after 3 retries", "HTTP 503 after <n> retries"),
            ("error code: 404; took 250 ms", "error code: 404; took <n> ms"),
            ("status=500 from bob@example.com", "status=500 from <email>"),
            (
                "models/gemini-2.5-flash is not found for API version v1beta",
                "models/gemini-<n>-flash is not found for API version v1beta",
            ),
            ("  spaced\n\tout  ", "spaced out"),
            ("", "(no message)"),
            (None, "(no message)"),
        ],
    )
    def test_patterns(self, message: str | None, expected: str) -> None:
        """Variable parts become placeholders; the status code and the words stay."""
        assert normalize_error_message(message) == expected

    def test_one_pattern_for_many_requests(self) -> None:
        """A thousand messages differing in ids, numbers, UUIDs and quotes give one pattern."""
        rng = random.Random(3)
        patterns = {
            normalize_error_message(
                f"request {rng.randint(1, 10**9)} for user '{rng.random()}' "
                f"(trace {rng.getrandbits(64):016x}, id {os.urandom(16).hex()}) failed after "
                f"{rng.uniform(0, 100):.2f}s"
            )
            for _ in range(1000)
        }
        assert patterns == {
            "request <n> for user '<str>' (trace <hex>, id <hex>) failed after <n>s"
        }

    def test_long_messages_are_cut(self) -> None:
        """At most 240 characters."""
        assert len(normalize_error_message("word " * 500)) == 240


def _reference_bucket(template: str, unit: str, weights: dict[str, float]) -> str:
    """An independent implementation of the documented rule."""
    digest = hashlib.sha256(template.encode() + b"\x00" + unit.encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64
    total = sum(weights.values())
    edge = 0.0
    for name in sorted(weights):
        edge += weights[name] / total
        if point < edge:
            return name
    return sorted(weights)[-1]


class TestChooseVariant:
    def test_sticky(self) -> None:
        """The same unit gets the same variant on every call."""
        weights = {"A": 0.5, "B": 0.5}
        for i in range(200):
            first = choose_variant("nlu", f"user-{i}", weights)
            assert all(choose_variant("nlu", f"user-{i}", weights) == first for _ in range(5))

    def test_matches_the_documented_rule(self) -> None:
        """sha256(template NUL unit)[:8] as a fraction, variants in name order."""
        weights = {"B": 3.0, "A": 1.0, "C": 6.0}
        for i in range(2000):
            unit = f"u{i}"
            assert choose_variant("t", unit, weights) == _reference_bucket("t", unit, weights)
        assert choose_variant("t", 17, weights) == _reference_bucket("t", "17", weights)

    def test_same_in_another_process(self) -> None:
        """No dependence on hash randomisation or process state."""
        code = (
            "from vividly_trace.analytics import choose_variant;"
            "print(','.join(choose_variant('nlu', f'user-{i}', {'A': 1, 'B': 1}) "
            "for i in range(50)))"
        )
        here = ",".join(choose_variant("nlu", f"user-{i}", {"A": 1, "B": 1}) for i in range(50))
        for seed in ("1", "2"):
            out = subprocess.run(
                [sys.executable, "-c", code],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "PYTHONHASHSEED": seed},
            ).stdout.strip()
            assert out == here

    def test_proportions(self) -> None:
        """20/30/50 over 20,000 units, each within 4 standard deviations."""
        weights = {"A": 0.2, "B": 0.3, "C": 0.5}
        n = 20_000
        counts = {name: 0 for name in weights}
        for i in range(n):
            counts[choose_variant("checkout", f"unit-{i}", weights)] += 1
        for name, w in weights.items():
            sd = math.sqrt(n * w * (1 - w))
            assert abs(counts[name] - n * w) < 4 * sd, counts

    def test_order_of_weights_does_not_matter(self) -> None:
        """{'A': 1, 'B': 1} and {'B': 1, 'A': 1} assign alike; the scale does not matter."""
        for i in range(500):
            unit = f"x{i}"
            a = choose_variant("t", unit, {"A": 1, "B": 1})
            assert a == choose_variant("t", unit, {"B": 1, "A": 1})
            assert a == choose_variant("t", unit, {"A": 50, "B": 50})

    def test_templates_split_independently(self) -> None:
        """Two templates' 50/50 splits agree on about half of the units."""
        same = sum(
            choose_variant("one", f"u{i}", {"A": 1, "B": 1})
            == choose_variant("two", f"u{i}", {"A": 1, "B": 1})
            for i in range(4000)
        )
        assert 1800 < same < 2200

    def test_growing_the_last_variant_keeps_its_units(self) -> None:
        """From 90/10 to 80/20, every B unit stays in B."""
        for i in range(3000):
            unit = f"r{i}"
            if choose_variant("t", unit, {"A": 0.9, "B": 0.1}) == "B":
                assert choose_variant("t", unit, {"A": 0.8, "B": 0.2}) == "B"

    def test_zero_weight_is_never_chosen(self) -> None:
        """A variant with weight 0 gets nobody."""
        chosen = {choose_variant("t", f"z{i}", {"A": 1, "B": 0, "C": 1}) for i in range(2000)}
        assert chosen == {"A", "C"}

    @pytest.mark.parametrize(
        "weights",
        [
            {},
            {"A": -1, "B": 2},
            {"A": 0, "B": 0},
            {"A": math.nan},
            {"A": math.inf},
            {"A": True},
            {"A": "1"},
            {"": 1},
            {1: 1},
            [("A", 1)],
            None,
        ],
    )
    def test_bad_weights(self, weights: Any) -> None:
        """Bad weights are a ConfigurationError."""
        with pytest.raises(ConfigurationError):
            choose_variant("t", "u", weights)

    @pytest.mark.parametrize(
        ("template", "unit"), [("", "u"), (None, "u"), ("t", None), ("t", 1.5)]
    )
    def test_bad_keys(self, template: Any, unit: Any) -> None:
        """The template key is a non-empty string; the unit a string or an int."""
        with pytest.raises(ConfigurationError):
            choose_variant(template, unit, {"A": 1})


class TestParseTime:
    NOW = dt.datetime(2026, 11, 24, 15, 30, tzinfo=UTC)

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("7d", dt.datetime(2026, 11, 17, 15, 30, tzinfo=UTC)),
            ("24h", dt.datetime(2026, 11, 23, 15, 30, tzinfo=UTC)),
            ("90m", dt.datetime(2026, 11, 24, 14, 0, tzinfo=UTC)),
            ("2w", dt.datetime(2026, 11, 10, 15, 30, tzinfo=UTC)),
            ("30s", dt.datetime(2026, 11, 24, 15, 29, 30, tzinfo=UTC)),
            ("now", NOW),
            ("today", dt.datetime(2026, 11, 24, tzinfo=UTC)),
            ("2026-11-01", dt.datetime(2026, 11, 1, tzinfo=UTC)),
            ("2026-11-01T12:00:00Z", dt.datetime(2026, 11, 1, 12, tzinfo=UTC)),
            ("2026-11-01T12:00:00+01:00", dt.datetime(2026, 11, 1, 11, tzinfo=UTC)),
            (dt.timedelta(hours=1), dt.datetime(2026, 11, 24, 14, 30, tzinfo=UTC)),
            (dt.date(2026, 1, 2), dt.datetime(2026, 1, 2, tzinfo=UTC)),
            (dt.datetime(2026, 1, 2, 3), dt.datetime(2026, 1, 2, 3, tzinfo=UTC)),
            (None, None),
        ],
    )
    def test_forms(self, value: Any, expected: dt.datetime | None) -> None:
        """Relative, named and ISO forms, all to aware UTC."""
        assert parse_time(value, now=self.NOW) == expected

    @pytest.mark.parametrize("value", ["yesterdayish", "7 parsecs", "", 12])
    def test_bad(self, value: Any) -> None:
        """Anything else is a ConfigurationError naming the accepted forms."""
        with pytest.raises(ConfigurationError, match="not a time"):
            parse_time(value)
