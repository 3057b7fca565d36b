"""compare_ab on data logged through the real pipeline (configure + SQLSink +
log_prompt_execution), on SQLite and PostgreSQL: cost and latency against Welch's test
computed here with scipy, the control, and infrastructure errors in and out of success."""

from __future__ import annotations

import math
import random
from decimal import Decimal
from typing import Any

import pytest

import vividly_trace
from vividly_trace import log_prompt_execution
from vividly_trace.analytics import ABDirection, compare_ab
from vividly_trace.sinks.sql import SQLSink, register_template

stats = pytest.importorskip("scipy.stats")


def _log_all(url: str, calls: list[dict[str, Any]]) -> None:
    """Log every call through configure() and the SQL sink, then drain and close."""
    vividly_trace.configure(sinks=[SQLSink(url)], sync=True, spool_dir=False)
    for call in calls:
        assert log_prompt_execution(**call) is not None
    assert vividly_trace.flush(10.0)
    assert vividly_trace.stats()["sinks"]["sql"]["written"] == len(calls)
    vividly_trace.shutdown()


def _call(key: str, version: str, group: str, **fields: Any) -> dict[str, Any]:
    fields.setdefault("success", True)
    fields.setdefault("response_time_ms", 100.0)
    return {"template_key": key, "template_version": version, "ab_test_group": group, **fields}


@pytest.fixture(name="measured", scope="module")
def _measured() -> dict[str, list[tuple[float, Decimal | None]]]:
    """(latency ms, cost USD or None) per variant: B is cheaper and slower."""
    rng = random.Random(1313)

    def draw(n: int, ms: float, sd: float, usd: float) -> list[tuple[float, Decimal | None]]:
        out: list[tuple[float, Decimal | None]] = []
        for i in range(n):
            cost = None if i % 9 == 0 else Decimal(f"{max(0.0, rng.gauss(usd, usd / 4)):.9f}")
            out.append((round(max(1.0, rng.gauss(ms, sd)), 3), cost))
        return out

    return {"v1/A": draw(60, 420.0, 60.0, 0.00040), "v2/B": draw(75, 455.0, 110.0, 0.00031)}


@pytest.fixture(name="measured_url")
def _measured_url(fresh_url: str, measured: dict[str, list[tuple[float, Decimal | None]]]) -> str:
    calls = [
        _call("summ", *label.split("/"), response_time_ms=ms, cost_usd=cost, success=i % 7 != 0)
        for label, values in measured.items()
        for i, (ms, cost) in enumerate(values)
    ]
    _log_all(fresh_url, calls)
    return fresh_url


@pytest.mark.parametrize("metric", ["cost", "latency"])
def test_mean_metrics_match_scipy_welch(
    measured_url: str, measured: dict[str, list[tuple[float, Decimal | None]]], metric: str
) -> None:
    """Mean, t interval and Welch test per variant equal scipy's on the values logged
    (cost: the priced calls only; latency: every call, failures too)."""

    def values(label: str) -> list[float]:
        if metric == "latency":
            return [ms for ms, _ in measured[label]]
        return [float(c) for _, c in measured[label] if c is not None]

    a, b = values("v1/A"), values("v2/B")
    expected = stats.ttest_ind(b, a, equal_var=False)
    result = compare_ab(measured_url, "summ", metric=metric, control="v1/A")
    assert result.metric == metric
    base, challenger = result.variants
    for variant, sample in ((base, a), (challenger, b)):
        mean = sum(sample) / len(sample)
        sem = float(stats.sem(sample))
        low, high = stats.t.interval(0.95, len(sample) - 1, loc=mean, scale=sem)
        assert variant.metric_executions == len(sample)
        assert variant.metric_value == pytest.approx(mean, rel=1e-9)
        assert variant.metric_ci_low == pytest.approx(float(low), rel=1e-6)
        assert variant.metric_ci_high == pytest.approx(float(high), rel=1e-6)
    verdict = challenger.outcome
    assert verdict is not None
    assert verdict.test == "Welch t"
    assert verdict.metric == f"mean_{metric}"
    assert verdict.difference == pytest.approx(sum(b) / len(b) - sum(a) / len(a), rel=1e-9)
    assert verdict.z == pytest.approx(float(expected.statistic), rel=1e-6)
    assert verdict.p_value == pytest.approx(float(expected.pvalue), rel=1e-5)
    assert verdict.sequential_p_value is not None
    assert 0.0 < verdict.sequential_p_value <= 1.0
    # Lower is better: cheaper B is "better", slower B is "worse".
    if verdict.p_value < 0.05:
        wanted = ABDirection.BETTER if verdict.difference < 0 else ABDirection.WORSE
        assert verdict.direction is wanted
    else:
        assert verdict.direction is ABDirection.NO_DIFFERENCE


def test_the_data_makes_both_directions(
    measured_url: str, measured: dict[str, list[tuple[float, Decimal | None]]]
) -> None:
    """The data set is strong enough for the branches above to be the interesting ones."""
    cost = compare_ab(measured_url, "summ", metric="cost").verdicts[0]
    latency = compare_ab(measured_url, "summ", metric="latency").verdicts[0]
    assert cost.direction is ABDirection.BETTER
    assert cost.text == "v2/B better at 95%"
    assert latency.direction is ABDirection.WORSE


def test_control_is_the_first_registered_not_the_first_seen(fresh_url: str) -> None:
    """v3/C is logged first (so the sink adds it to prompt_templates first), but v2/B was
    registered with a text: it is the control. A declared control wins over both."""
    calls = [_call("ctl", "v3", "C", response_time_ms=50.0 + i) for i in range(5)]
    _log_all(fresh_url, calls)
    register_template("ctl", "v2", "B", text="Summarise: {x}", url=fresh_url)
    register_template("ctl", "v1", "A", text="Summarise briefly: {x}", url=fresh_url)
    calls = [_call("ctl", v, g) for v, g in (("v1", "A"), ("v2", "B")) for _ in range(5)]
    _log_all(fresh_url, calls)

    result = compare_ab(fresh_url, "ctl")
    first_seen = min(result.variants, key=lambda v: v.first_seen)
    assert first_seen.label == "v3/C"
    assert (result.baseline, result.control_source) == ("v2/B", "first registered")
    assert [v.label for v in result.variants] == ["v2/B", "v1/A", "v3/C"]
    assert {v.baseline for v in result.verdicts} == {"v2/B"}
    assert "v1/A vs control v2/B" in result.summary

    declared = compare_ab(fresh_url, "ctl", control="v3")
    assert (declared.baseline, declared.control_source) == ("v3/C", "declared")
    assert {v.baseline for v in declared.verdicts} == {"v3/C"}


def test_registered_before_any_call(fresh_url: str) -> None:
    """Registered in the order v4/B, v3/A (no text), then logged v3/A first: v4/B."""
    register_template("reg", "v4", "B", url=fresh_url)
    register_template("reg", "v3", "A", url=fresh_url)
    _log_all(fresh_url, [_call("reg", v, g) for v, g in (("v3", "A"), ("v4", "B")) * 3])
    result = compare_ab(fresh_url, "reg")
    assert (result.baseline, result.control_source) == ("v4/B", "first registered")


def _outcomes(version: str, group: str, ok: int, plain: int, infra: int) -> list[dict[str, Any]]:
    """``ok`` successes, ``plain`` application failures and ``infra`` infrastructure
    failures (429, 503, a timeout with no status, in turn)."""
    infra_kinds = [
        {"http_status": 429, "error_type": "ClientError"},
        {"http_status": 503, "error_type": "ServerError"},
        {"error_type": "TimeoutError"},
    ]
    calls = [_call("infra", version, group) for _ in range(ok)]
    calls += [
        _call("infra", version, group, success=False, http_status=400, error_type="ValueError")
        for _ in range(plain)
    ]
    calls += [
        _call("infra", version, group, success=False, error_message="outage", **kind)
        for kind in (infra_kinds[i % 3] for i in range(infra))
    ]
    return calls


def _z(ok_a: int, n_a: int, ok_b: int, n_b: int) -> tuple[float, float]:
    pooled = (ok_a + ok_b) / (n_a + n_b)
    z = (ok_b / n_b - ok_a / n_a) / math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    return z, math.erfc(abs(z) / math.sqrt(2))


def test_infra_errors_left_out_by_default(fresh_url: str) -> None:
    """A 429/5xx/timeout storm on B: by default it does not decide the experiment; with
    include_infra_errors=True it is counted (and B loses)."""
    _log_all(fresh_url, _outcomes("v1", "A", 80, 10, 0) + _outcomes("v2", "B", 80, 10, 30))
    default = compare_ab(fresh_url, "infra", control="v1/A")
    base, b = default.variants
    assert (b.executions, b.infra_errors, base.infra_errors) == (120, 30, 0)
    assert (b.metric_executions, b.metric_value) == (90, pytest.approx(80 / 90))
    verdict = b.outcome
    assert verdict is not None
    assert verdict.challenger_executions == 90
    assert (verdict.z, verdict.p_value) == (0.0, 1.0)
    assert verdict.direction is ABDirection.NO_DIFFERENCE
    assert not default.include_infra_errors

    counted = compare_ab(fresh_url, "infra", control="v1/A", include_infra_errors=True)
    assert counted.include_infra_errors
    b = counted.variant("v2/B")
    assert (b.metric_executions, b.metric_value) == (120, pytest.approx(80 / 120))
    verdict = b.outcome
    assert verdict is not None
    z, p = _z(80, 90, 80, 120)
    assert verdict.z == pytest.approx(z, rel=1e-12)
    assert verdict.p_value == pytest.approx(p, rel=1e-9)
    assert verdict.direction is ABDirection.WORSE


def test_unknown_metric_is_a_configuration_error(fresh_url: str) -> None:
    with pytest.raises(vividly_trace.ConfigurationError, match="unknown A/B metric 'speed'"):
        compare_ab(fresh_url, "anything", metric="speed")
