"""``compare_ab(metric="score:NAME")``: the A/B verdict on a score matches a Welch t-test
computed independently (scipy) on the same values; other sources, categories and
executions without the score are left out."""

from __future__ import annotations

import random

import pytest
from scipy import stats as scipy_stats

import vividly_trace
from vividly_trace import logged_prompt, score
from vividly_trace.analytics import ABDirection, compare_ab
from vividly_trace.exceptions import ConfigurationError
from vividly_trace.sinks import SQLSink


def _experiment(url: str) -> dict[str, dict[str, list[float]]]:
    """60 calls per version, scored as users would; returns the user scores per version."""
    rng = random.Random(13)
    vividly_trace.configure(sinks=[SQLSink(url)], spool_dir=False)
    given: dict[str, dict[str, list[float]]] = {
        v: {"stars": [], "resolved": []} for v in ("v1", "v2")
    }
    later: list[tuple[str, str, float]] = []
    for i in range(120):
        version = "v1" if i % 2 else "v2"
        with logged_prompt("support_reply", version=version) as call:
            call.set_model("gemini-2.5-flash")
            call.set_usage(input_tokens=100, output_tokens=20)
            if i % 10 == 0:
                continue  # no feedback on this one
            stars = round(rng.gauss(3.4 if version == "v1" else 3.9, 0.9), 1)
            resolved = rng.random() < (0.55 if version == "v1" else 0.7)
            call.score("stars", stars)
            call.score("stars", 1.0, source="llm_judge")  # another source: not counted
            later.append((call.execution_id, version, float(resolved)))
            given[version]["stars"].append(stars)
        if i % 7 == 0:
            score(call.execution_id, "tone", "curt")  # categorical: no mean
    for eid, version, resolved in later:  # feedback from a later request
        score(eid, "resolved", bool(resolved))
        given[version]["resolved"].append(resolved)
    assert vividly_trace.flush(timeout=60)
    return given


def test_a_score_metric_matches_an_independent_welch_test(fresh_url: str) -> None:
    """Numeric and boolean scores: difference, t and p equal scipy's Welch t-test."""
    given = _experiment(fresh_url)
    for name in ("stars", "resolved"):
        result = compare_ab(fresh_url, "support_reply", control="v1", metric=f"score:{name}")
        assert result.metric == f"score:{name}"
        control, challenger = result.variants
        assert (control.label, challenger.label) == ("v1", "v2")
        a, b = given["v1"][name], given["v2"][name]
        assert (control.metric_executions, challenger.metric_executions) == (len(a), len(b))
        assert control.metric_value == pytest.approx(sum(a) / len(a))
        assert challenger.metric_value == pytest.approx(sum(b) / len(b))
        expected = scipy_stats.ttest_ind(b, a, equal_var=False)
        (verdict,) = result.verdicts
        assert verdict.test == "Welch t"
        assert verdict.difference == pytest.approx(sum(b) / len(b) - sum(a) / len(a))
        assert verdict.z == pytest.approx(float(expected.statistic), rel=1e-6)
        assert verdict.p_value == pytest.approx(float(expected.pvalue), rel=1e-4)
        # The seeded data differ (p = 0.0015 and 0.027): a real "better" verdict to check.
        assert float(expected.pvalue) < 0.05 and float(expected.statistic) > 0
        assert verdict.direction is ABDirection.BETTER


def test_another_source_and_bad_names(fresh_url: str) -> None:
    """``score:NAME@SOURCE`` reads that source; an empty name is a configuration error."""
    _experiment(fresh_url)
    judged = compare_ab(fresh_url, "support_reply", control="v1", metric="score:stars@llm_judge")
    assert [v.metric_value for v in judged.variants] == [1.0, 1.0]
    with pytest.raises(ConfigurationError, match="score:NAME"):
        compare_ab(fresh_url, "support_reply", metric="score:")
