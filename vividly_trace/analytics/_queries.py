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
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..exceptions import ConfigurationError
from ._patterns import normalize_error_message
from ._rows import (
    DailyCost,
    ErrorPattern,
    ExecutionRow,
    LatencyPercentiles,
    ModelCost,
    TemplateSummary,
)
from ._sql import (
    as_date,
    as_time,
    cost_sum,
    cost_value,
    executions_table,
    has_requests_table,
    is_postgres,
    requests_table,
    sort_key,
    time_window,
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
    "cost_by_model",
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
    rollup: bool = False,
) -> ResultList[DailyCost]:
    """Cost, executions and tokens per UTC day and template (and model).

    The original design's budget query (``SELECT DATE(executed_at), template_name,
    SUM(cost_usd), COUNT(*) ... GROUP BY 1, 2``), exact on both engines. Each Gemini request
    belongs to the innermost logged call, so ``cost_usd`` summed over the rows is the bill.

    Args:
        source: database URL or SQLAlchemy Engine.
        since: start of the window, inclusive (e.g. ``"30d"``, a datetime); None: no limit.
        until: end of the window, exclusive; None: no limit.
        template: only this template key.
        by_model: split each template's row by model, from the Gemini requests (see
            :func:`cost_by_model`): a function calling two models has a row for each, and
            its counts are of requests.
        rollup: also give each row its cost with the logged calls nested in its executions
            (``rolled_up_cost_usd``, through ``parent_execution_id``, any depth).

    Returns:
        Rows ordered by day, then cost (highest first), then template and model.

    Raises:
        StoreError: the store cannot be used. ConfigurationError: bad arguments (among them
        ``by_model`` with ``rollup``: a nested call may use other models).

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.3.0 ``rollup``; ``by_model`` from the request rows.
    """
    from sqlalchemy import func, select

    if by_model and rollup:
        raise ConfigurationError("cost_by_day: by_model and rollup cannot be combined")
    if by_model:
        rows = [
            DailyCost(
                day=m.day,
                template=m.template or "",
                model=m.model,
                executions=m.calls,
                priced_executions=m.priced_calls,
                cost_usd=m.cost_usd,
                input_tokens=m.input_tokens,
                output_tokens=m.output_tokens,
            )
            for m in cost_by_model(
                source, since=since, until=until, template=template, by_template=True
            )
        ]
        rows.sort(key=lambda r: (r.day, -r.cost_usd, sort_key(r.template, r.model)))
        return ResultList(rows)
    e = executions_table().c
    with open_store(source) as engine:
        day = utc_day(engine).label("day")
        keys: list[Any] = [day, e.template_name]
        conditions = window_conditions(engine, since, until, template)
        query = (
            select(
                *keys,
                func.count().label("n"),
                func.count(e.cost_usd).label("priced"),
                cost_sum(engine).label("cost"),
                func.coalesce(func.sum(e.input_token_count), 0).label("input_tokens"),
                func.coalesce(func.sum(e.output_token_count), 0).label("output_tokens"),
            )
            .where(*conditions)
            .group_by(*keys)
        )
        with engine.connect() as conn:
            rolled = _rolled_up(conn, engine, conditions) if rollup else {}
            rows = []
            for r in conn.execute(query):
                at = as_date(r.day)
                up = rolled.get((at, r.template_name), (None, None, None))
                rows.append(
                    DailyCost(
                        day=at,
                        template=r.template_name,
                        model=None,
                        executions=int(r.n),
                        priced_executions=int(r.priced),
                        cost_usd=cost_value(engine, r.cost),
                        input_tokens=int(r.input_tokens),
                        output_tokens=int(r.output_tokens),
                        rolled_up_cost_usd=up[0],
                        rolled_up_executions=up[1],
                        rolled_up_unpriced=up[2],
                    )
                )
    rows.sort(key=lambda r: (r.day, -r.cost_usd, sort_key(r.template, r.model)))
    return ResultList(rows)


def _rolled_up(
    conn: Connection, engine: Engine, conditions: list[ColumnElement[bool]]
) -> dict[tuple[Any, str], tuple[Decimal, int, int]]:
    """(UTC day, template) -> (cost, executions, unpriced executions) of the executions
    matching ``conditions`` together with every execution nested in them.

    A recursive query walks ``parent_execution_id`` down from each execution (``UNION``,
    not ``UNION ALL``: a cycle in hand-written data ends instead of looping).
    """
    from sqlalchemy import func, select

    table = executions_table()
    e = table.c
    tree = (
        select(e.id.label("root_id"), e.id.label("node_id"))
        .where(*conditions)
        .cte("subtree", recursive=True)
    )
    child = table.alias("child")
    tree = tree.union(
        select(tree.c.root_id, child.c.id).select_from(
            tree.join(child, child.c.parent_execution_id == tree.c.node_id)
        )
    )
    root = table.alias("root")
    node = table.alias("node")
    day = utc_day(engine, root.c.executed_at).label("day")
    query = (
        select(
            day,
            root.c.template_name,
            func.count().label("n"),
            func.count(node.c.cost_usd).label("priced"),
            cost_sum(engine, node.c.cost_usd).label("cost"),
        )
        .select_from(
            tree.join(root, root.c.id == tree.c.root_id).join(node, node.c.id == tree.c.node_id)
        )
        .group_by(day, root.c.template_name)
    )
    return {
        (as_date(r.day), r.template_name): (
            cost_value(engine, r.cost),
            int(r.n),
            int(r.n) - int(r.priced),
        )
        for r in conn.execute(query)
    }


def cost_by_model(
    source: StoreSource,
    *,
    since: TimeBound = None,
    until: TimeBound = None,
    template: str | None = None,
    by_template: bool = False,
) -> ResultList[ModelCost]:
    """Cost, tokens and calls per UTC day and model (and template), from the Gemini
    requests.

    Every request client capture saw is a ``prompt_requests`` row priced at its own model,
    so a function that calls gemini-2.5-flash and then gemini-2.5-pro counts one call
    under each. Executions without request rows (``log_prompt_execution`` records, rows
    stored before schema revision 0003) count as one call each under their own
    ``model``. A request is counted on the day it started and is in the window when it
    started in it; an execution without requests when it started in it.

    Args:
        source: database URL or SQLAlchemy Engine.
        since, until: the time window (``since`` inclusive, ``until`` exclusive).
        template: only the calls of this template key.
        by_template: one row per (day, model, template).

    Returns:
        Rows ordered by day, then cost (highest first), then model and template.

    Raises:
        StoreError: the store cannot be used. ConfigurationError: bad arguments.

    .. versionadded:: 0.3.0
    """
    from sqlalchemy import case, exists, func, select

    e = executions_table().c
    # (day, model, template) -> [calls, priced, failed, cost, input, output]
    acc: dict[tuple[Any, str | None, str | None], list[Any]] = {}

    def add(key: tuple[Any, str | None, str | None], r: Any) -> None:
        entry = acc.setdefault(key, [0, 0, 0, Decimal(0), 0, 0])
        entry[0] += int(r.n)
        entry[1] += int(r.priced)
        entry[2] += int(r.failed)
        entry[3] += cost_value(engine, r.cost)
        entry[4] += int(r.input_tokens)
        entry[5] += int(r.output_tokens)

    def measures(table: Any) -> list[Any]:
        c = table.c
        return [
            func.count().label("n"),
            func.count(c.cost_usd).label("priced"),
            func.coalesce(func.sum(case((c.success.is_(False), 1), else_=0)), 0).label("failed"),
            cost_sum(engine, c.cost_usd).label("cost"),
            func.coalesce(func.sum(c.input_token_count), 0).label("input_tokens"),
            func.coalesce(func.sum(c.output_token_count), 0).label("output_tokens"),
        ]

    with open_store(source) as engine:
        # Validates the window and the template first, whatever the store holds.
        plain_conditions = window_conditions(engine, since, until, template)
        with engine.connect() as conn:
            if has_requests_table(conn):
                requests = requests_table()
                r = requests.c
                model = func.coalesce(r.model, r.response_model).label("model")
                day = utc_day(engine, r.started_at).label("day")
                keys: list[Any] = [day, model]
                conditions = time_window(engine, r.started_at, since, until)
                source_table: Any = requests
                if template is not None or by_template:
                    source_table = requests.join(executions_table(), e.id == r.execution_id)
                    if template is not None:
                        conditions.append(e.template_name == template)
                    if by_template:
                        keys.append(e.template_name)
                query = (
                    select(*keys, *measures(requests))
                    .select_from(source_table)
                    .where(*conditions)
                    .group_by(*keys)
                )
                for row in conn.execute(query):
                    add((as_date(row.day), row.model, row[2] if by_template else None), row)
                plain_conditions.append(~exists().where(r.execution_id == e.id))
            model = func.coalesce(e.model, e.response_model).label("model")
            day = utc_day(engine).label("day")
            keys = [day, model] + ([e.template_name] if by_template else [])
            query = (
                select(*keys, *measures(executions_table()))
                .where(*plain_conditions)
                .group_by(*keys)
            )
            for row in conn.execute(query):
                add((as_date(row.day), row.model, row[2] if by_template else None), row)
    rows = [
        ModelCost(
            day=key[0],
            model=key[1],
            template=key[2],
            calls=v[0],
            priced_calls=v[1],
            failed_calls=v[2],
            cost_usd=v[3],
            input_tokens=v[4],
            output_tokens=v[5],
        )
        for key, v in acc.items()
    ]
    rows.sort(key=lambda m: (m.day, -m.cost_usd, sort_key(m.model, m.template)))
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
