"""The queries over the SQL store: cost by day, latency percentiles, success rates, errors.

Every function takes the store as a URL or an SQLAlchemy ``Engine`` and an optional time
window (``since`` inclusive, ``until`` exclusive; see :func:`parse_time` for the accepted
forms) and returns a :class:`ResultList` of frozen dataclasses (``.to_dataframe()`` makes it
a pandas DataFrame).

The two supported engines give equal answers on equal data:

- days are UTC days on both (``date(timezone('UTC', executed_at))`` on PostgreSQL);
- money sums are exact: ``SUM(numeric)`` on PostgreSQL; on SQLite, whose ``NUMERIC`` is a
  double, costs are summed as integer pico-dollars (exact for costs with up to 12 decimals
  and totals below 9.2 million USD);
- percentiles are ``PERCENTILE_CONT`` on PostgreSQL and the same linear interpolation,
  computed in Python over the sorted values, elsewhere (:func:`percentile_cont`);
- rows come back in the same, documented order.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..exceptions import ConfigurationError
from ._patterns import normalize_error_message
from ._rows import DailyCost, ErrorPattern, ExecutionRow, LatencyPercentiles, TemplateSummary
from ._sql import (
    as_date,
    as_time,
    cost_sum,
    cost_value,
    executions_table,
    is_postgres,
    sort_key,
    utc_day,
    window_conditions,
)
from ._stats import percentile_cont
from ._store import ResultList, StoreSource, TimeBound, open_store

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement
    from sqlalchemy.engine import Connection, Engine

__all__ = [
    "ab_templates",
    "cost_by_day",
    "error_patterns",
    "latency_percentiles",
    "recent_executions",
    "success_rates",
]

DEFAULT_PERCENTILES: tuple[float, ...] = (0.5, 0.95, 0.99)


def _check_percentiles(percentiles: Sequence[float]) -> tuple[float, ...]:
    if isinstance(percentiles, (str, bytes)) or not percentiles:
        raise ConfigurationError("percentiles must be a non-empty sequence of fractions")
    out: list[float] = []
    for p in percentiles:
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise ConfigurationError(
                f"percentiles are fractions in [0, 1] (0.95 for p95), got {p!r}"
            )
        if math.isnan(p):
            raise ConfigurationError("a percentile cannot be NaN")
        if float(p) not in out:
            out.append(float(p))
    return tuple(out)


# -- cost -------------------------------------------------------------------------------------


def cost_by_day(
    source: StoreSource,
    *,
    since: TimeBound = None,
    until: TimeBound = None,
    template: str | None = None,
    by_model: bool = False,
) -> ResultList[DailyCost]:
    """Cost, executions and tokens per UTC day and template (and model).

    The original design's budget query (``SELECT DATE(executed_at), template_name,
    SUM(cost_usd), COUNT(*) ... GROUP BY 1, 2``), exact on both engines.

    Args:
        source: database URL or SQLAlchemy Engine.
        since: start of the window, inclusive (e.g. ``"30d"``, a datetime); None: no limit.
        until: end of the window, exclusive; None: no limit.
        template: only this template key.
        by_model: one row per model too (the ``model`` column, else ``None``).

    Returns:
        Rows ordered by day, then cost (highest first), then template and model.

    Raises:
        StoreError: the store cannot be used. ConfigurationError: bad arguments.

    .. versionadded:: 0.1.0
    """
    from sqlalchemy import func, select

    e = executions_table().c
    with open_store(source) as engine:
        day = utc_day(engine).label("day")
        keys: list[Any] = [day, e.template_name]
        if by_model:
            keys.append(e.model)
        query = (
            select(
                *keys,
                func.count().label("n"),
                func.count(e.cost_usd).label("priced"),
                cost_sum(engine).label("cost"),
                func.coalesce(func.sum(e.input_token_count), 0).label("input_tokens"),
                func.coalesce(func.sum(e.output_token_count), 0).label("output_tokens"),
            )
            .where(*window_conditions(engine, since, until, template))
            .group_by(*keys)
        )
        with engine.connect() as conn:
            rows = [
                DailyCost(
                    day=as_date(r.day),
                    template=r.template_name,
                    model=r.model if by_model else None,
                    executions=int(r.n),
                    priced_executions=int(r.priced),
                    cost_usd=cost_value(engine, r.cost),
                    input_tokens=int(r.input_tokens),
                    output_tokens=int(r.output_tokens),
                )
                for r in conn.execute(query)
            ]
    rows.sort(key=lambda r: (r.day, -r.cost_usd, sort_key(r.template, r.model)))
    return ResultList(rows)


# -- latency ----------------------------------------------------------------------------------


def _latency_postgres(
    conn: Connection,
    engine: Engine,
    conditions: list[ColumnElement[bool]],
    by_version: bool,
    fractions: tuple[float, ...],
) -> list[LatencyPercentiles]:
    from sqlalchemy import func, literal_column, select

    e = executions_table().c
    keys: list[Any] = [e.template_name]
    if by_version:
        keys += [e.template_version, e.template_ab_test_group]
    percentile_columns = [
        # The fractions are validated floats, so the literal is safe (and typed float8).
        func.percentile_cont(literal_column(repr(f)))
        .within_group(e.response_time_ms)
        .label(f"q{i}")
        for i, f in enumerate(fractions)
    ]
    query = (
        select(*keys, func.count().label("n"), func.avg(e.response_time_ms).label("mean"))
        .add_columns(*percentile_columns)
        .where(*conditions)
        .group_by(*keys)
    )
    out = []
    for r in conn.execute(query):
        m = r._mapping
        out.append(
            LatencyPercentiles(
                template=r.template_name,
                version=m["template_version"] if by_version else None,
                ab_group=m["template_ab_test_group"] if by_version else None,
                executions=int(r.n),
                mean_ms=float(r.mean),
                percentiles={f: float(m[f"q{i}"]) for i, f in enumerate(fractions)},
            )
        )
    return out


def _interpolate(values: list[float], fraction: float) -> float:
    value = percentile_cont(values, fraction)
    assert value is not None  # groups are never empty
    return value


def _latency_python(
    conn: Connection,
    conditions: list[ColumnElement[bool]],
    by_version: bool,
    fractions: tuple[float, ...],
) -> list[LatencyPercentiles]:
    from sqlalchemy import select

    e = executions_table().c
    keys: list[Any] = [e.template_name]
    if by_version:
        keys += [e.template_version, e.template_ab_test_group]
    query = select(*keys, e.response_time_ms).where(*conditions).order_by(*keys, e.response_time_ms)
    result = conn.execution_options(yield_per=10_000).execute(query)
    out = []
    width = len(keys)
    for group, rows in itertools.groupby(result, key=lambda r: tuple(r[:width])):
        values = [float(r[width]) for r in rows]
        out.append(
            LatencyPercentiles(
                template=group[0],
                version=group[1] if by_version else None,
                ab_group=group[2] if by_version else None,
                executions=len(values),
                mean_ms=math.fsum(values) / len(values),
                percentiles={f: _interpolate(values, f) for f in fractions},
            )
        )
    return out


def latency_percentiles(
    source: StoreSource,
    *,
    since: TimeBound = None,
    until: TimeBound = None,
    template: str | None = None,
    by_version: bool = False,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    successful_only: bool = False,
) -> ResultList[LatencyPercentiles]:
    """Latency percentiles (and mean, in ms) per template, or per template variant.

    On PostgreSQL this is ``PERCENTILE_CONT(f) WITHIN GROUP (ORDER BY response_time_ms)``,
    the original design's SLA query. On SQLite the same linear interpolation is computed in
    Python over the sorted values of each group (:func:`percentile_cont`), so both engines
    give the same numbers.

    Args:
        source: database URL or SQLAlchemy Engine.
        since, until: the time window (``since`` inclusive, ``until`` exclusive).
        template: only this template key.
        by_version: one row per (template, version, A/B group).
        percentiles: fractions in ``[0, 1]``; default p50, p95, p99.
        successful_only: leave failed calls out (by default every call counts, as in the
            original query: a fast 429 is also a latency your users saw).

    Returns:
        Rows ordered by template, then version and group (``None`` first).

    Raises:
        StoreError: the store cannot be used. ConfigurationError: bad arguments.

    .. versionadded:: 0.1.0
    """
    fractions = _check_percentiles(percentiles)
    e = executions_table().c
    with open_store(source) as engine:
        extra = [e.success.is_(True)] if successful_only else []
        conditions = window_conditions(engine, since, until, template, extra)
        with engine.connect() as conn:
            if is_postgres(engine):
                rows = _latency_postgres(conn, engine, conditions, by_version, fractions)
            else:
                rows = _latency_python(conn, conditions, by_version, fractions)
    rows.sort(key=lambda r: sort_key(r.template, r.version, r.ab_group))
    return ResultList(rows)


# -- success rates ------------------------------------------------------------------------


def success_rates(
    source: StoreSource,
    *,
    since: TimeBound = None,
    until: TimeBound = None,
    template: str | None = None,
    by_version: bool = False,
) -> ResultList[TemplateSummary]:
    """Executions, successes, failures (with success and error rates), cost and tokens, and
    how many executions have no token usage (input and output counts both NULL) and no cost
    (``cost_usd`` NULL).

    Args:
        source: database URL or SQLAlchemy Engine.
        since, until: the time window (``since`` inclusive, ``until`` exclusive).
        template: only this template key.
        by_version: one row per (template, version, A/B group).

    Returns:
        Rows ordered by template, then version and group (``None`` first).

    Raises:
        StoreError: the store cannot be used. ConfigurationError: bad arguments.

    .. versionadded:: 0.1.0
    """
    from sqlalchemy import and_, case, func, select

    e = executions_table().c
    no_usage = and_(e.input_token_count.is_(None), e.output_token_count.is_(None))
    with open_store(source) as engine:
        keys: list[Any] = [e.template_name]
        if by_version:
            keys += [e.template_version, e.template_ab_test_group]
        query = (
            select(
                *keys,
                func.count().label("n"),
                func.sum(case((e.success.is_(True), 1), else_=0)).label("ok"),
                func.sum(case((no_usage, 1), else_=0)).label("no_usage"),
                func.count(e.cost_usd).label("priced"),
                cost_sum(engine).label("cost"),
                func.coalesce(func.sum(e.input_token_count), 0).label("input_tokens"),
                func.coalesce(func.sum(e.output_token_count), 0).label("output_tokens"),
                func.min(e.executed_at).label("first_seen"),
                func.max(e.executed_at).label("last_seen"),
            )
            .where(*window_conditions(engine, since, until, template))
            .group_by(*keys)
        )
        with engine.connect() as conn:
            rows = []
            for r in conn.execute(query):
                m = r._mapping
                rows.append(
                    TemplateSummary(
                        template=r.template_name,
                        version=m["template_version"] if by_version else None,
                        ab_group=m["template_ab_test_group"] if by_version else None,
                        executions=int(r.n),
                        successes=int(r.ok),
                        failures=int(r.n) - int(r.ok),
                        cost_usd=cost_value(engine, r.cost),
                        input_tokens=int(r.input_tokens),
                        output_tokens=int(r.output_tokens),
                        first_seen=as_time(r.first_seen),
                        last_seen=as_time(r.last_seen),
                        no_usage_executions=int(r.no_usage),
                        unpriced_executions=int(r.n) - int(r.priced),
                    )
                )
    rows.sort(key=lambda r: sort_key(r.template, r.version, r.ab_group))
    return ResultList(rows)


def ab_templates(
    source: StoreSource,
    *,
    since: TimeBound = None,
    until: TimeBound = None,
    template: str | None = None,
) -> list[str]:
    """Template keys with two or more variants (version / A/B group) in the window, sorted.

    .. versionadded:: 0.1.0
    """
    counts: dict[str, int] = {}
    for row in success_rates(source, since=since, until=until, template=template, by_version=True):
        counts[row.template] = counts.get(row.template, 0) + 1
    return sorted(t for t, n in counts.items() if n >= 2)


# -- error patterns ---------------------------------------------------------------------------


def error_patterns(
    source: StoreSource,
    *,
    since: TimeBound = None,
    until: TimeBound = None,
    template: str | None = None,
    top: int | None = 10,
) -> ResultList[ErrorPattern]:
    """The most frequent kinds of failure: failed executions grouped by template, error type,
    HTTP status and normalised message (:func:`normalize_error_message`).

    Args:
        source: database URL or SQLAlchemy Engine.
        since, until: the time window (``since`` inclusive, ``until`` exclusive).
        template: only this template key.
        top: keep the ``top`` most frequent patterns (None: all).

    Returns:
        Rows ordered by count (highest first), then template, pattern.

    Raises:
        StoreError: the store cannot be used. ConfigurationError: bad arguments.

    .. versionadded:: 0.1.0
    """
    from sqlalchemy import select

    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
        raise ConfigurationError(f"top must be a positive int or None, got {top!r}")
    e = executions_table().c
    groups: dict[tuple[str, str | None, int | None, str], list[Any]] = {}
    failures: dict[str, int] = {}
    with open_store(source) as engine:
        query = (
            select(e.template_name, e.error_type, e.http_status, e.error_message, e.executed_at)
            .where(*window_conditions(engine, since, until, template, [e.success.is_(False)]))
            .order_by(e.executed_at, e.id)
        )
        with engine.connect() as conn:
            for r in conn.execution_options(yield_per=10_000).execute(query):
                at = as_time(r.executed_at)
                key = (
                    r.template_name,
                    r.error_type,
                    r.http_status,
                    normalize_error_message(r.error_message),
                )
                failures[r.template_name] = failures.get(r.template_name, 0) + 1
                entry = groups.get(key)
                if entry is None:
                    groups[key] = [1, at, at, r.error_message]
                else:
                    entry[0] += 1
                    entry[2] = at
                    entry[3] = r.error_message
    rows = [
        ErrorPattern(
            template=key[0],
            error_type=key[1],
            http_status=key[2],
            pattern=key[3],
            count=entry[0],
            share=entry[0] / failures[key[0]],
            first_seen=entry[1],
            last_seen=entry[2],
            example=entry[3],
        )
        for key, entry in groups.items()
    ]
    rows.sort(
        key=lambda r: (
            -r.count,
            r.template,
            r.pattern,
            sort_key(r.error_type),
            r.http_status or 0,
        )
    )
    if top is not None:
        rows = rows[:top]
    return ResultList(rows)


# -- recent executions ------------------------------------------------------------------------


def recent_executions(
    source: StoreSource,
    *,
    since: TimeBound = None,
    template: str | None = None,
    limit: int | None = 20,
) -> ResultList[ExecutionRow]:
    """The newest executions (at or after ``since``), returned oldest first.

    Args:
        source: database URL or SQLAlchemy Engine (pass an Engine when polling).
        since: only executions that started at or after this time.
        template: only this template key.
        limit: at most this many (the newest ones); None: all.

    Raises:
        StoreError: the store cannot be used. ConfigurationError: bad arguments.

    .. versionadded:: 0.1.0
    """
    from sqlalchemy import select

    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigurationError(f"limit must be a positive int or None, got {limit!r}")
    e = executions_table().c
    with open_store(source) as engine:
        query = (
            select(
                e.id,
                e.executed_at,
                e.template_name,
                e.template_version,
                e.template_ab_test_group,
                e.model,
                e.success,
                e.response_time_ms,
                e.input_token_count,
                e.output_token_count,
                e.cost_usd,
                e.error_type,
                e.error_message,
                e.http_status,
                e.streamed,
            )
            .where(*window_conditions(engine, since, None, template))
            .order_by(e.executed_at.desc(), e.id.desc())
        )
        if limit is not None:
            query = query.limit(limit)
        with engine.connect() as conn:
            rows = [
                ExecutionRow(
                    id=r.id,
                    executed_at=as_time(r.executed_at),
                    template=r.template_name,
                    version=r.template_version,
                    ab_group=r.template_ab_test_group,
                    model=r.model,
                    success=bool(r.success),
                    response_time_ms=float(r.response_time_ms),
                    input_tokens=r.input_token_count,
                    output_tokens=r.output_token_count,
                    cost_usd=r.cost_usd,
                    error_type=r.error_type,
                    error_message=r.error_message,
                    http_status=r.http_status,
                    streamed=bool(r.streamed),
                )
                for r in conn.execute(query)
            ]
    rows.reverse()
    return ResultList(rows)
