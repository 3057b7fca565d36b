"""The structured A/B verdict (ABVerdict): on the seeded data set and on variants written for
the test, on both engines, against a z-test computed by hand; and the reports styling the
verdicts from it rather than from the sentence."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import math

import pytest

from tests.analytics.analytics_data import START
from tests.factories import make_record
from tests.sql.sql_helpers import write_records as write
from vividly_trace import PromptExecution
from vividly_trace.analytics import (
    ABComparison,
    ABDirection,
    ABVerdict,
    Report,
    build_report,
    compare_ab,
    render_html,
)

INFRA_TYPES = {"TimeoutError", "CancelledError", "ReadTimeout", "ConnectTimeout"}


def _infra(r: PromptExecution) -> bool:
    """An infrastructure failure, by hand: HTTP 408, 429, 5xx, a timeout or a cancellation."""
    status = r.http_status or 0
    return not r.success and (
        status in (408, 429) or 500 <= status <= 599 or (r.error_type in INFRA_TYPES)
    )


def _counts(dataset: list[PromptExecution], version: str) -> tuple[int, int]:
    """Successes and executions of nlu ``version``, infrastructure failures left out (the
    default of compare_ab)."""
    mine = [
        r
        for r in dataset
        if r.template_key == "nlu" and r.template_version == version and not _infra(r)
    ]
    return sum(r.success for r in mine), len(mine)


def _z_test(ok_a: int, n_a: int, ok_b: int, n_b: int) -> tuple[float, float]:
    """B against A, pooled standard error, two-sided (by hand)."""
    pooled = (ok_a + ok_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    z = (ok_b / n_b - ok_a / n_a) / se
    return z, math.erfc(abs(z) / math.sqrt(2))


class TestSeededData:
    def test_better_by_hand(self, store: str, dataset: list[PromptExecution]) -> None:
        """v2/B against the oldest variant v1/A: better, with the p-value it rests on."""
        ok_a, n_a = _counts(dataset, "v1")
        ok_b, n_b = _counts(dataset, "v2")
        z, p = _z_test(ok_a, n_a, ok_b, n_b)
        result = compare_ab(store, "nlu")
        base, challenger = result.variants
        assert base.outcome is None
        verdict = challenger.outcome
        assert isinstance(verdict, ABVerdict)
        assert result.verdicts == [verdict]
        assert (verdict.baseline, verdict.challenger) == ("v1/A", "v2/B")
        assert verdict.direction is ABDirection.BETTER
        assert verdict.significant
        assert verdict.metric == "success_rate"
        assert verdict.difference == pytest.approx(ok_b / n_b - ok_a / n_a, rel=1e-12)
        assert verdict.z == pytest.approx(z, rel=1e-12)
        assert verdict.p_value == pytest.approx(p, rel=1e-9)
        assert verdict.p_value < 0.05
        assert (verdict.confidence, verdict.min_samples) == (0.95, 30)
        assert (verdict.baseline_executions, verdict.challenger_executions) == (n_a, n_b)
        # The sentence is the structured verdict's text, and the variant's fields agree.
        assert verdict.text == challenger.verdict == "v2/B better at 95%"
        assert (challenger.p_value, challenger.z) == (verdict.p_value, verdict.z)
        assert challenger.difference == verdict.difference

    def test_worse_against_the_other_baseline(
        self, store: str, dataset: list[PromptExecution]
    ) -> None:
        """With v2/B as the baseline, v1/A is the challenger and worse, at the same p-value."""
        ok_a, n_a = _counts(dataset, "v1")
        ok_b, n_b = _counts(dataset, "v2")
        _, p = _z_test(ok_a, n_a, ok_b, n_b)
        (verdict,) = compare_ab(store, "nlu", baseline="v2").verdicts
        assert (verdict.baseline, verdict.challenger) == ("v2/B", "v1/A")
        assert verdict.direction is ABDirection.WORSE
        assert verdict.difference == pytest.approx(ok_a / n_a - ok_b / n_b, rel=1e-12)
        assert verdict.difference < 0 and verdict.z is not None and verdict.z < 0
        assert verdict.p_value == pytest.approx(p, rel=1e-9)
        assert verdict.text == "v1/A worse at 95%"

    def test_insufficient_data(self, store: str, dataset: list[PromptExecution]) -> None:
        """Under min_samples the direction is INSUFFICIENT_DATA whatever the p-value."""
        (verdict,) = compare_ab(store, "nlu", min_samples=125).verdicts
        assert verdict.direction is ABDirection.INSUFFICIENT_DATA
        assert not verdict.significant
        assert verdict.challenger_executions == _counts(dataset, "v2")[1] < 125
        assert verdict.p_value is not None and verdict.p_value < 0.05  # still reported
        assert verdict.text == "not enough data (under 125 calls per variant)"

    def test_no_difference_at_a_stricter_confidence(self, store: str) -> None:
        """At a confidence above 1 - p the same data gives NO_DIFFERENCE."""
        (loose,) = compare_ab(store, "nlu").verdicts
        assert loose.p_value is not None
        confidence = 1 - loose.p_value / 2
        (strict,) = compare_ab(store, "nlu", confidence=confidence).verdicts
        assert strict.direction is ABDirection.NO_DIFFERENCE
        assert strict.confidence == confidence
        assert strict.p_value == loose.p_value
        assert strict.text == "no significant difference"

    def test_one_variant_or_none_has_no_verdict(self, store: str) -> None:
        """Nothing to compare, no verdict."""
        assert compare_ab(store, "clarify").verdicts == []
        assert compare_ab(store, "nope").verdicts == []

    def test_flat_dict_and_dataframe_carry_the_direction(self, store: str) -> None:
        """to_dict() and the DataFrame give the direction's value (None for the baseline)."""
        result = compare_ab(store, "nlu")
        assert [v.to_dict()["direction"] for v in result.variants] == [None, "better"]
        assert "outcome" not in result.variants[1].to_dict()
        pytest.importorskip("pandas")
        direction = result.to_dataframe()["direction"]
        assert direction.isna().tolist() == [True, False] and direction[1] == "better"


def _calls(
    version: str, group: str, calls: int, failures: int, first: int
) -> list[PromptExecution]:
    return [
        make_record(
            "extract",
            n=first + i,
            template_version=version,
            ab_test_group=group,
            success=i >= failures,
            response_time_ms=50.0 + i,
            started_at=START + dt.timedelta(minutes=first + i),
            error_type=None if i >= failures else "ServerError",
            error_message=None if i >= failures else "boom",
        )
        for i in range(calls)
    ]


def test_each_challenger_gets_its_own_verdict(fresh_url: str) -> None:
    """Equal rates (no difference, p = 1), a small variant (insufficient data), a bad one."""
    write(
        fresh_url,
        _calls("v1", "A", 40, 0, 0)
        + _calls("v2", "B", 40, 0, 100)
        + _calls("v3", "C", 10, 0, 200)
        + _calls("v4", "D", 40, 30, 300),
    )
    result = compare_ab(fresh_url, "extract")
    assert result.baseline == "v1/A"
    by_challenger = {v.challenger: v for v in result.verdicts}
    assert list(by_challenger) == ["v2/B", "v3/C", "v4/D"]
    assert {v.baseline for v in result.verdicts} == {"v1/A"}

    same = by_challenger["v2/B"]
    assert same.direction is ABDirection.NO_DIFFERENCE
    assert (same.z, same.p_value, same.difference) == (0.0, 1.0, 0.0)

    small = by_challenger["v3/C"]
    assert small.direction is ABDirection.INSUFFICIENT_DATA
    assert small.challenger_executions == 10

    bad = by_challenger["v4/D"]
    z, p = _z_test(40, 40, 10, 40)
    assert bad.direction is ABDirection.WORSE
    assert bad.difference == pytest.approx(-0.75)
    assert bad.z == pytest.approx(z, rel=1e-12)
    assert bad.p_value == pytest.approx(p, rel=1e-9)
    assert bad.text == "v4/D worse at 95%"


def _relabel(comparison: ABComparison, text: str) -> ABComparison:
    """The comparison with every challenger's sentence replaced by ``text``."""
    variants = type(comparison.variants)(
        v if v.is_baseline else dataclasses.replace(v, verdict=text) for v in comparison.variants
    )
    return dataclasses.replace(comparison, variants=variants)


class TestRendering:
    def test_html_classes_come_from_the_direction(self, sqlite_store: str) -> None:
        """The HTML verdict badge is classed by direction, not by reading the sentence."""
        pytest.importorskip("plotly")
        report = build_report(sqlite_store)
        assert "<span class='verdict better'>v2/B better at 95%</span>" in render_html(report)
        relabelled = dataclasses.replace(report, ab=[_relabel(c, "odd words") for c in report.ab])
        assert "<span class='verdict better'>odd words</span>" in render_html(relabelled)
        worse = build_report(sqlite_store, baseline="v2/B")
        assert "<span class='verdict worse'>v1/A worse at 95%</span>" in render_html(worse)
        few = build_report(sqlite_store, min_samples=500)
        assert "<span class='verdict nodata'>not enough data" in render_html(few)

    def test_terminal_styles_come_from_the_direction(self, sqlite_store: str) -> None:
        """Bold green for better, bold red for worse, whatever the sentence says."""
        from rich.console import Console

        from vividly_trace.analytics._terminal import print_report

        def shown(report: Report) -> str:
            out = io.StringIO()
            console = Console(file=out, force_terminal=True, color_system="standard", width=120)
            print_report(report, console)
            return out.getvalue()

        report = build_report(sqlite_store)
        assert "\x1b[1;32mv2/B better at 95%\x1b[0m" in shown(report)
        relabelled = dataclasses.replace(report, ab=[_relabel(c, "odd words") for c in report.ab])
        assert "\x1b[1;32modd words\x1b[0m" in shown(relabelled)
        worse = build_report(sqlite_store, baseline="v2/B")
        assert "\x1b[1;31mv1/A worse at 95%\x1b[0m" in shown(worse)
