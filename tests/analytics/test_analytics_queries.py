"""The analytics queries on the seeded data set, on SQLite and on PostgreSQL, against answers
computed by hand; and the two engines against each other."""

from __future__ import annotations

import datetime as dt
import math
import sys
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest

from tests.analytics.analytics_data import (
    DAYS,
    JSON_PATTERN,
    QUOTA_PATTERN,
    START,
    TIMEOUT_PATTERN,
    UPSTREAM_PATTERN,
    UTC,
    expected_cost_by_day,
    expected_percentile,
    latencies,
)
from tests.factories import make_record
from tests.sql.sql_helpers import write_records
from vividly_trace import ConfigurationError, MissingExtraError, PromptExecution
from vividly_trace.analytics import (
    ABComparison,
    ab_templates,
    build_report,
    compare_ab,
    cost_by_day,
    error_patterns,
    latency_percentiles,
    recent_executions,
    success_rates,
)

FRACTIONS = (0.0, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)


class TestCostByDay:
    def test_sums_match_the_hand_computed_ones(
        self, store: str, dataset: list[PromptExecution]
    ) -> None:
        """Every (UTC day, template) row equals the Decimal sum of the records, exactly."""
        rows = cost_by_day(store)
        expected = expected_cost_by_day(dataset)
        assert {(r.day, r.template) for r in rows} == set(expected)
        for r in rows:
            n, priced, cost, inp, out = expected[(r.day, r.template)]
            assert (r.executions, r.priced_executions, r.input_tokens, r.output_tokens) == (
                n,
                priced,
                inp,
                out,
            )
            assert r.cost_usd == cost  # exact, not approximately
            assert isinstance(r.cost_usd, Decimal)
            assert r.model is None

    def test_days_are_utc_days_whatever_the_session_time_zone(self, store: str) -> None:
        """23:59:59.999999 and 00:00:00 UTC land on two days (PostgreSQL runs in Auckland time)."""
        rows = cost_by_day(store, template="scripts")
        assert [r.day for r in rows] == [(START + dt.timedelta(days=d)).date() for d in range(DAYS)]
        edge = cost_by_day(
            store,
            template="scripts",
            since=START + dt.timedelta(days=1) - dt.timedelta(microseconds=1),
            until=START + dt.timedelta(days=1, microseconds=1),
        )
        assert [(r.day, r.executions) for r in edge] == [
            (START.date(), 1),
            ((START + dt.timedelta(days=1)).date(), 1),
        ]

    def test_ordered_by_day_then_cost(self, store: str) -> None:
        """Rows come by day, the most expensive template first."""
        rows = cost_by_day(store)
        keys = [(r.day, -r.cost_usd) for r in rows]
        assert keys == sorted(keys)

    def test_by_model_splits_the_unknown_model(
        self, store: str, dataset: list[PromptExecution]
    ) -> None:
        """by_model=True gives the unpriced in-house model its own rows, with no cost."""
        rows = cost_by_day(store, by_model=True, template="nlu")
        models = Counter()
        for r in rows:
            models[r.model] += r.executions
            if r.model == "in-house-model":
                assert r.priced_executions == 0
                assert r.cost_usd == 0
        assert models == Counter(r.model for r in dataset if r.template_key == "nlu")

    def test_window_is_since_inclusive_until_exclusive(
        self, store: str, dataset: list[PromptExecution]
    ) -> None:
        """since <= executed_at < until."""
        since = START + dt.timedelta(hours=30)
        until = START + dt.timedelta(hours=50)
        rows = cost_by_day(store, since=since, until=until)
        inside = [r for r in dataset if since <= r.started_at < until]
        assert sum(r.executions for r in rows) == len(inside)
        assert sum(r.cost_usd for r in rows) == sum(r.cost_usd or 0 for r in inside)

    def test_dataframe(self, store: str) -> None:
        """.to_dataframe() gives one column per field, money as float."""
        pandas = pytest.importorskip("pandas")
        rows = cost_by_day(store)
        frame = rows.to_dataframe()
        assert isinstance(frame, pandas.DataFrame)
        assert list(frame.columns) == [
            "day",
            "template",
            "model",
            "executions",
            "priced_executions",
            "cost_usd",
            "input_tokens",
            "output_tokens",
            "rolled_up_cost_usd",
            "rolled_up_executions",
            "rolled_up_unpriced",
        ]
        assert frame["cost_usd"].dtype == float
        assert len(frame) == len(rows)
        assert list(frame["cost_usd"]) == [float(r.cost_usd) for r in rows]


class TestResultList:
    @pytest.mark.parametrize(
        "query", [cost_by_day, latency_percentiles, success_rates, error_patterns]
    )
    def test_as_dataframe_is_gone(self, sqlite_store: str, query: Any) -> None:
        """The queries take no as_dataframe= any more: .to_dataframe() replaces it."""
        with pytest.raises(TypeError, match="as_dataframe"):
            query(sqlite_store, as_dataframe=True)

    def test_to_dataframe_without_pandas(
        self, sqlite_store: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without pandas, .to_dataframe() raises MissingExtraError naming the extra."""
        rows = success_rates(sqlite_store)
        monkeypatch.setitem(sys.modules, "pandas", None)  # makes `import pandas` fail
        with pytest.raises(MissingExtraError, match=r"vividly-trace\[dataframe\]") as info:
            rows.to_dataframe()
        assert info.value.extra == "dataframe"


class TestLatencyPercentiles:
    def test_equal_to_statistics_quantiles_inclusive(
        self, store: str, dataset: list[PromptExecution]
    ) -> None:
        """PERCENTILE_CONT (PostgreSQL) and the SQLite path equal statistics.quantiles."""
        rows = latency_percentiles(store, percentiles=FRACTIONS)
        expected = latencies(dataset)
        assert [(r.template, r.version, r.ab_group) for r in rows] == sorted(expected)
        for r in rows:
            values = expected[(r.template, None, None)]
            assert r.executions == len(values)
            assert r.mean_ms == pytest.approx(math.fsum(values) / len(values), rel=1e-12)
            for f in FRACTIONS:
                assert r.percentiles[f] == pytest.approx(expected_percentile(values, f), rel=1e-12)

    def test_by_version(self, store: str, dataset: list[PromptExecution]) -> None:
        """One row per (template, version, group), None sorting first."""
        rows = latency_percentiles(store, by_version=True)
        expected = latencies(dataset, by_version=True)
        assert {(r.template, r.version, r.ab_group) for r in rows} == set(expected)
        for r in rows:
            values = expected[(r.template, r.version, r.ab_group)]
            assert r.p50_ms == pytest.approx(statistics_median(values), rel=1e-12)
            assert r.p95_ms == pytest.approx(expected_percentile(values, 0.95), rel=1e-12)
            assert r.p99_ms == pytest.approx(expected_percentile(values, 0.99), rel=1e-12)
        assert rows[0].template == "clarify"
        assert [r.label for r in rows if r.template == "nlu"] == ["nlu v1/A", "nlu v2/B"]

    def test_successful_only(self, store: str, dataset: list[PromptExecution]) -> None:
        """successful_only leaves failed calls out."""
        (row,) = latency_percentiles(store, template="nlu", successful_only=True)
        values = sorted(
            r.response_time_ms for r in dataset if r.template_key == "nlu" and r.success
        )
        assert row.executions == len(values)
        assert row.p95_ms == pytest.approx(expected_percentile(values, 0.95), rel=1e-12)

    @pytest.mark.parametrize("bad", [(), (1.5,), (-0.1,), ("0.5",), (math.nan,), "0.5"])
    def test_bad_percentiles(self, sqlite_store: str, bad: Any) -> None:
        """Fractions outside [0, 1] or not numbers are a ConfigurationError."""
        with pytest.raises(ConfigurationError):
            latency_percentiles(sqlite_store, percentiles=bad)

    def test_dataframe_columns(self, store: str) -> None:
        """One pNN_ms column per percentile."""
        pytest.importorskip("pandas")
        frame = latency_percentiles(store, percentiles=(0.5, 0.999)).to_dataframe()
        assert list(frame.columns) == [
            "template",
            "version",
            "ab_group",
            "executions",
            "mean_ms",
            "p50_ms",
            "p99.9_ms",
        ]


def statistics_median(values: list[float]) -> float:
    import statistics

    return statistics.median(values)


class TestSuccessRates:
    def test_counts_and_rates(self, store: str, dataset: list[PromptExecution]) -> None:
        """Executions, successes, failures, cost and time span per template, by hand."""
        rows = {r.template: r for r in success_rates(store)}
        for name in {r.template_key for r in dataset}:
            mine = [r for r in dataset if r.template_key == name]
            row = rows[name]
            assert row.executions == len(mine)
            assert row.successes == sum(r.success for r in mine)
            assert row.failures == len(mine) - row.successes
            assert row.success_rate == row.successes / len(mine)
            assert row.error_rate == pytest.approx(1 - row.success_rate)
            assert row.cost_usd == sum(r.cost_usd or 0 for r in mine)
            assert row.unpriced_executions == sum(r.cost_usd is None for r in mine) > 0
            assert row.priced_executions == sum(r.cost_usd is not None for r in mine)
            assert row.no_usage_executions == 0  # every seeded record has token counts
            assert row.first_seen == min(r.started_at for r in mine)
            assert row.last_seen == max(r.started_at for r in mine)
            assert row.first_seen.tzinfo is not None

    def test_counts_executions_without_usage_and_without_cost(self, fresh_url: str) -> None:
        """No usage is input and output both NULL; no cost is cost NULL (0 is a cost)."""
        records = [
            make_record(
                "a", n=1, input_token_count=10, output_token_count=5, cost_usd=Decimal("0.01")
            ),
            make_record("a", n=2),  # no usage, no cost
            make_record("a", n=3, output_token_count=7),  # usage (output only), no cost
            make_record("a", n=4, input_token_count=3),  # usage (input only), no cost
            make_record("a", n=5, cost_usd=Decimal("0.002")),  # a manual cost without usage
            make_record("a", n=6, input_token_count=0, output_token_count=0, cost_usd=Decimal(0)),
            make_record("b", n=7, template_version="v2", success=False),
            make_record("b", n=8, template_version="v1", input_token_count=1),
        ]
        write_records(fresh_url, records)
        rows = {r.template: r for r in success_rates(fresh_url)}
        assert (rows["a"].executions, rows["a"].no_usage_executions) == (6, 2)
        assert (rows["a"].unpriced_executions, rows["a"].priced_executions) == (3, 3)
        assert rows["a"].cost_usd == Decimal("0.012")
        assert (rows["b"].no_usage_executions, rows["b"].unpriced_executions) == (1, 2)
        assert rows["b"].cost_usd == 0
        assert rows["a"].to_dict()["no_usage_executions"] == 2
        assert rows["a"].to_dict()["unpriced_executions"] == 3
        by_version = {r.version: r for r in success_rates(fresh_url, template="b", by_version=True)}
        assert (by_version["v1"].no_usage_executions, by_version["v1"].unpriced_executions) == (
            0,
            1,
        )
        assert (by_version["v2"].no_usage_executions, by_version["v2"].unpriced_executions) == (
            1,
            1,
        )

    def test_ab_templates(self, store: str) -> None:
        """Only nlu has two variants."""
        assert ab_templates(store) == ["nlu"]
        assert ab_templates(store, template="clarify") == []


class TestErrorPatterns:
    def test_ids_and_numbers_do_not_split_patterns(
        self, store: str, dataset: list[PromptExecution]
    ) -> None:
        """Each template's failures fall into the four known patterns, counted by hand."""
        rows = error_patterns(store, top=None)
        by_key = {(r.template, r.pattern): r for r in rows}
        for name in {r.template_key for r in dataset}:
            failed = [r for r in dataset if r.template_key == name and not r.success]
            expected = Counter(r.error_type for r in failed)
            patterns = {
                "ClientError": QUOTA_PATTERN,
                "TimeoutError": TIMEOUT_PATTERN,
                "NLUParseError": JSON_PATTERN,
                "ServerError": UPSTREAM_PATTERN,
            }
            mine = [r for r in rows if r.template == name]
            assert {r.pattern for r in mine} == {patterns[t] for t in expected}
            for error_type, count in expected.items():
                row = by_key[(name, patterns[error_type])]
                assert row.count == count
                assert row.error_type == error_type
                assert row.share == pytest.approx(count / len(failed))
                raw = [r for r in failed if r.error_type == error_type]
                assert row.first_seen == min(r.started_at for r in raw)
                assert row.last_seen == max(r.started_at for r in raw)
                assert row.example in {r.error_message for r in raw}
        assert by_key[("nlu", QUOTA_PATTERN)].http_status == 429

    def test_top_and_order(self, store: str) -> None:
        """The most frequent first; top cuts the list."""
        everything = error_patterns(store, top=None)
        assert [r.count for r in everything] == sorted((r.count for r in everything), reverse=True)
        assert error_patterns(store, top=3) == everything[:3]

    @pytest.mark.parametrize("top", [0, -1, True, 1.5])
    def test_bad_top(self, sqlite_store: str, top: Any) -> None:
        """top is a positive int or None."""
        with pytest.raises(ConfigurationError):
            error_patterns(sqlite_store, top=top)


class TestCompareAB:
    def test_by_hand(self, store: str, dataset: list[PromptExecution]) -> None:
        """Counts, rates, costs and latencies per variant; v1/A (lowest version, none
        registered) is the baseline; every failure counts with include_infra_errors."""
        result = compare_ab(store, "nlu", include_infra_errors=True)
        assert isinstance(result, ABComparison)
        assert result.baseline == "v1/A"
        assert [v.label for v in result.variants] == ["v1/A", "v2/B"]
        for v in result.variants:
            mine = [
                r for r in dataset if r.template_key == "nlu" and r.template_version == v.version
            ]
            ok = sum(r.success for r in mine)
            priced = [r.cost_usd for r in mine if r.cost_usd is not None]
            assert (v.executions, v.successes) == (len(mine), ok)
            assert v.total_cost_usd == sum(priced)
            assert v.mean_cost_usd == sum(priced) / len(priced)
            assert v.cost_per_success_usd == sum(priced) / ok
            values = sorted(r.response_time_ms for r in mine)
            assert v.mean_latency_ms == pytest.approx(math.fsum(values) / len(values), rel=1e-12)
            assert v.p95_latency_ms == pytest.approx(expected_percentile(values, 0.95), rel=1e-12)
            assert v.ci_low is not None and v.ci_high is not None
            assert v.ci_low < v.success_rate < v.ci_high
        base, b = result.variants
        assert base.is_baseline and base.verdict == "baseline" and base.p_value is None
        assert b.difference == pytest.approx(b.success_rate - base.success_rate)
        assert b.p_value is not None and b.p_value < 0.05
        assert b.verdict == "v2/B better at 95%"
        assert "v2/B better at 95%" in result.summary

    def test_given_baseline(self, store: str) -> None:
        """Against v2/B, v1/A is worse; the baseline can be named by version or group."""
        for name in ("v2/B", "v2", "B"):
            result = compare_ab(store, "nlu", baseline=name)
            assert result.baseline == "v2/B"
            assert result.variants[1].verdict == "v1/A worse at 95%"

    def test_unknown_baseline(self, store: str) -> None:
        """A baseline that names no variant is an error listing the variants."""
        with pytest.raises(ConfigurationError, match="v1/A, v2/B"):
            compare_ab(store, "nlu", baseline="v9")

    def test_not_enough_data(self, store: str) -> None:
        """Under the minimum sample size the verdict says so."""
        result = compare_ab(store, "nlu", min_samples=500)
        assert result.variants[1].verdict.startswith("not enough data")

    def test_stricter_confidence_can_remove_the_verdict(self, store: str) -> None:
        """At a confidence level above 1 - p the difference is no longer significant."""
        p = compare_ab(store, "nlu").variants[1].p_value
        assert p is not None
        strict = compare_ab(store, "nlu", confidence=1 - p / 2)
        assert strict.variants[1].verdict == "no significant difference"

    def test_single_variant_and_no_data(self, store: str) -> None:
        """One variant: nothing to compare. No executions: no variants."""
        assert "only one variant" in compare_ab(store, "clarify").summary
        empty = compare_ab(store, "nope")
        assert empty.variants == [] and "no executions" in empty.summary

    def test_dataframe(self, store: str) -> None:
        """One row per variant."""
        pytest.importorskip("pandas")
        frame = compare_ab(store, "nlu").to_dataframe()
        assert list(frame["label"]) == ["v1/A", "v2/B"]
        assert {"ci_low", "ci_high", "p_value", "verdict", "cost_per_success_usd"} <= set(frame)


class TestRecentAndReport:
    def test_recent_executions(self, store: str, dataset: list[PromptExecution]) -> None:
        """The newest N, oldest first, as stored."""
        rows = recent_executions(store, limit=5)
        newest = sorted(dataset, key=lambda r: (r.started_at, r.execution_id))[-5:]
        assert [r.id for r in rows] == [r.execution_id for r in newest]
        assert rows[-1].executed_at == newest[-1].started_at
        since = newest[2].started_at
        assert [r.id for r in recent_executions(store, since=since, limit=None)] == [
            r.execution_id for r in newest[2:]
        ]

    def test_report_bundles_everything(self, store: str, dataset: list[PromptExecution]) -> None:
        """build_report runs every query over one window."""
        steps: list[str] = []
        report = build_report(store, progress=steps.append)
        assert steps == [
            "success rates",
            "daily cost",
            "cost by model",
            "latency percentiles",
            "error patterns",
            "cost by user",
            "scores",
            "A/B comparisons",
        ]
        assert report.executions == len(dataset)
        assert report.cost_usd == sum(r.cost_usd or 0 for r in dataset)
        assert [c.template for c in report.ab] == ["nlu"]
        assert len(report.errors) == 10
        assert report.source.startswith(("sqlite:///", "postgresql+psycopg://"))


@pytest.mark.postgres
class TestEnginesAgree:
    def test_same_answers(self, sqlite_store: str, pg_store: str) -> None:
        """SQLite and PostgreSQL give the same rows; percentiles to the last bit."""
        for query in (
            lambda url: cost_by_day(url, by_model=True),
            lambda url: success_rates(url, by_version=True),
            lambda url: error_patterns(url, top=None),
            lambda url: recent_executions(url, limit=50),
            lambda url: [compare_ab(url, "nlu").variants],
        ):
            assert _plain(query(sqlite_store)) == _plain(query(pg_store))
        lite = latency_percentiles(sqlite_store, by_version=True, percentiles=FRACTIONS)
        pg = latency_percentiles(pg_store, by_version=True, percentiles=FRACTIONS)
        assert [(r.template, r.version, r.executions) for r in lite] == [
            (r.template, r.version, r.executions) for r in pg
        ]
        for a, b in zip(lite, pg, strict=True):
            assert a.percentiles == b.percentiles  # bit-identical interpolation
            assert a.mean_ms == pytest.approx(b.mean_ms, rel=1e-12)


def _plain(rows: Any) -> Any:
    """Rows as comparable values (means compared to 12 significant digits)."""
    out = []
    for row in rows:
        if isinstance(row, list):
            out.append(_plain(row))
            continue
        values = row.to_dict()
        for key in ("mean_latency_ms",):
            if key in values:
                values[key] = round(values[key], 9)
        out.append(values)
    return out


def test_dates_are_aware_utc(sqlite_store: str) -> None:
    """Times come back as aware UTC datetimes on SQLite too."""
    row = recent_executions(sqlite_store, limit=1)[0]
    assert row.executed_at.tzinfo == UTC
