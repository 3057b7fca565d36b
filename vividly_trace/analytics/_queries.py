"""Queries over the SQL store: cost, latency percentiles, success rates, error patterns.

Every function takes the store as a URL or an SQLAlchemy ``Engine`` and an optional time
window (``since`` inclusive, ``until`` exclusive; see :func:`parse_time` for the accepted
forms) and returns a :class:`ResultList` of frozen dataclasses, or a pandas DataFrame with
``as_dataframe=True``.

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

import datetime as _dt
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, overload

from ..exceptions import ConfigurationError
from ._patterns import normalize_error_message
from ._stats import percentile_cont
from ._store import ResultList, StoreSource, TimeBound, open_store, parse_time, to_utc

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement, Table
    from sqlalchemy.engine import Connection, Engine

__all__ = [
    "DailyCost",
    "ErrorPattern",
    "ExecutionRow",
    "LatencyPercentiles",
    "TemplateSummary",
    "ab_templates",
    "cost_by_day",
    "error_patterns",
    "latency_percentiles",
    "recent_executions",
    "success_rates",
    "variant_label",
]

DEFAULT_PERCENTILES: tuple[float, ...] = (0.5, 0.95, 0.99)
_PICO = Decimal(10) ** -12
_ZERO = Decimal(0)


def variant_label(version: str | None, ab_group: str | None) -> str:
    """How a variant is named in reports: ``"v3/A"``, ``"v3"``, ``"A"`` or ``"(none)"``.

    .. versionadded:: 0.1.0
    """
    if version and ab_group:
        return f"{version}/{ab_group}"
    return version or ab_group or "(none)"


def percentile_key(fraction: float) -> str:
    """Column name of a percentile: ``p50_ms``, ``p95_ms``, ``p99.9_ms``."""
    return f"p{fraction * 100:g}_ms"


# -- result rows ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DailyCost:
    """Cost of one template (and model, with ``by_model=True``) on one UTC day.

    ``cost_usd`` sums the executions that have a cost; ``priced_executions`` says how many
    did (an unknown model leaves the cost empty).

    .. versionadded:: 0.1.0
    """

    day: _dt.date
    template: str
    model: str | None
    executions: int
    priced_executions: int
    cost_usd: Decimal
    input_tokens: int
    output_tokens: int

    def to_dict(self) -> dict[str, Any]:
        """The row as a flat dict."""
        return {
            "day": self.day,
            "template": self.template,
            "model": self.model,
            "executions": self.executions,
            "priced_executions": self.priced_executions,
            "cost_usd": self.cost_usd,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
        }


@dataclass(frozen=True, slots=True)
class LatencyPercentiles:
    """Latency of one template (or template variant) in milliseconds.

    ``percentiles`` maps each requested fraction (0.95) to its value; ``p50_ms``,
    ``p95_ms`` and ``p99_ms`` read it. ``version`` and ``ab_group`` are ``None`` unless
    the query was made with ``by_version=True``.

    .. versionadded:: 0.1.0
    """

    template: str
    version: str | None
    ab_group: str | None
    executions: int
    mean_ms: float
    percentiles: Mapping[float, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """``template`` or ``template v3/A``."""
        if self.version is None and self.ab_group is None:
            return self.template
        return f"{self.template} {variant_label(self.version, self.ab_group)}"

    def percentile(self, fraction: float) -> float | None:
        """The value for ``fraction`` (e.g. 0.95), if it was requested."""
        return self.percentiles.get(fraction)

    @property
    def p50_ms(self) -> float | None:
        """The median."""
        return self.percentiles.get(0.5)

    @property
    def p95_ms(self) -> float | None:
        """The 95th percentile."""
        return self.percentiles.get(0.95)

    @property
    def p99_ms(self) -> float | None:
        """The 99th percentile."""
        return self.percentiles.get(0.99)

    def to_dict(self) -> dict[str, Any]:
        """The row as a flat dict, one ``pNN_ms`` column per percentile."""
        out: dict[str, Any] = {
            "template": self.template,
            "version": self.version,
            "ab_group": self.ab_group,
            "executions": self.executions,
            "mean_ms": self.mean_ms,
        }
        for fraction, value in sorted(self.percentiles.items()):
            out[percentile_key(fraction)] = value
        return out


@dataclass(frozen=True, slots=True)
class TemplateSummary:
    """Executions, success and error rates, cost and tokens of a template (or variant).

    .. versionadded:: 0.1.0
    """

    template: str
    version: str | None
    ab_group: str | None
    executions: int
    successes: int
    failures: int
    cost_usd: Decimal
    input_tokens: int
    output_tokens: int
    first_seen: _dt.datetime
    last_seen: _dt.datetime

    @property
    def success_rate(self) -> float:
        """Successes / executions."""
        return self.successes / self.executions if self.executions else 0.0

    @property
    def error_rate(self) -> float:
        """Failures / executions."""
        return self.failures / self.executions if self.executions else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The row as a flat dict (with the rates)."""
        return {
            "template": self.template,
            "version": self.version,
            "ab_group": self.ab_group,
            "executions": self.executions,
            "successes": self.successes,
            "failures": self.failures,
            "success_rate": self.success_rate,
            "error_rate": self.error_rate,
            "cost_usd": self.cost_usd,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
        }


@dataclass(frozen=True, slots=True)
class ErrorPattern:
    """One kind of failure of one template: the normalised message and how often it occurred.

    ``share`` is the fraction of the template's failures (in the window) with this pattern;
    ``example`` is the latest raw message.

    .. versionadded:: 0.1.0
    """

    template: str
    error_type: str | None
    http_status: int | None
    pattern: str
    count: int
    share: float
    first_seen: _dt.datetime
    last_seen: _dt.datetime
    example: str | None

    def to_dict(self) -> dict[str, Any]:
        """The row as a flat dict."""
        return {
            "template": self.template,
            "error_type": self.error_type,
            "http_status": self.http_status,
            "pattern": self.pattern,
            "count": self.count,
            "share": self.share,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "example": self.example,
        }


@dataclass(frozen=True, slots=True)
class ExecutionRow:
    """One stored execution, as ``vividly-trace tail`` shows it.

    .. versionadded:: 0.1.0
    """

    id: str
    executed_at: _dt.datetime
    template: str
    version: str | None
    ab_group: str | None
    model: str | None
    success: bool
    response_time_ms: float
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: Decimal | None
    error_type: str | None
    error_message: str | None
    http_status: int | None
    streamed: bool

    def to_dict(self) -> dict[str, Any]:
        """The row as a flat dict."""
        return {name: getattr(self, name) for name in self.__slots__}


# -- helpers ----------------------------------------------------------------------------------


def _table() -> Table:
    from ..sinks.sql.schema import prompt_executions

    return prompt_executions


def _is_postgres(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "postgresql"


def _bound(engine: Engine, value: _dt.datetime) -> _dt.datetime:
    # SQLite keeps naive UTC text: bind a naive UTC datetime so the text compares right.
    value = to_utc(value)
    return value.replace(tzinfo=None) if engine.dialect.name == "sqlite" else value


def _conditions(
    engine: Engine,
    since: TimeBound,
    until: TimeBound,
    template: str | None,
    extra: Iterable[ColumnElement[bool]] = (),
) -> list[ColumnElement[bool]]:
    e = _table().c
    start = parse_time(since)
    end = parse_time(until)
    if start is not None and end is not None and end <= start:
        raise ConfigurationError(f"the time window is empty: until ({end}) <= since ({start})")
    out: list[ColumnElement[bool]] = list(extra)
    if start is not None:
        out.append(e.executed_at >= _bound(engine, start))
    if end is not None:
        out.append(e.executed_at < _bound(engine, end))
    if template is not None:
        if not isinstance(template, str) or not template:
            raise ConfigurationError(f"template must be a non-empty string, got {template!r}")
        out.append(e.template_name == template)
    return out


def _day_expr(engine: Engine) -> ColumnElement[Any]:
    from sqlalchemy import func

    e = _table().c
    if _is_postgres(engine):
        return func.date(func.timezone("UTC", e.executed_at))
    return func.date(e.executed_at)


def _cost_sum_expr(engine: Engine) -> ColumnElement[Any]:
    from sqlalchemy import BigInteger, Double, cast, func, literal_column, type_coerce

    e = _table().c
    if _is_postgres(engine):
        return func.sum(e.cost_usd)
    # Integer pico-dollars: exact where a float sum would drift in the last digits.
    pico = func.round(type_coerce(e.cost_usd, Double) * literal_column("1000000000000"))
    return func.sum(cast(pico, BigInteger))


def _cost_value(engine: Engine, raw: Any) -> Decimal:
    if raw is None:
        return _ZERO
    if _is_postgres(engine):
        return raw if isinstance(raw, Decimal) else Decimal(str(raw))
    return (Decimal(int(raw)) * _PICO).normalize() if raw else _ZERO


def _as_date(value: Any) -> _dt.date:
    if isinstance(value, _dt.datetime):
        return value.date()
    if isinstance(value, _dt.date):
        return value
    return _dt.date.fromisoformat(str(value))


def _as_time(value: Any) -> _dt.datetime:
    if isinstance(value, _dt.datetime):
        return to_utc(value)
    return to_utc(_dt.datetime.fromisoformat(str(value)))


def _sort_key(*parts: str | None) -> tuple[tuple[int, str], ...]:
    # None first, then by text: the same order on every engine.
    return tuple((0, "") if p is None else (1, p) for p in parts)


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


def _frame_or_rows(rows: ResultList[Any], as_dataframe: bool) -> Any:
    return rows.to_dataframe() if as_dataframe else rows


# -- cost -------------------------------------------------------------------------------------


@overload
def cost_by_day(
    source: StoreSource,
    *,
    since: TimeBound = ...,
    until: TimeBound = ...,
    template: str | None = ...,
    by_model: bool = ...,
    as_dataframe: Literal[False] = ...,
) -> ResultList[DailyCost]: ...
@overload
def cost_by_day(
    source: StoreSource,
    *,
    since: TimeBound = ...,
    until: TimeBound = ...,
    template: str | None = ...,
    by_model: bool = ...,
    as_dataframe: Literal[True],
) -> Any: ...
def cost_by_day(
    source: StoreSource,
    *,
    since: TimeBound = None,
    until: TimeBound = None,
    template: str | None = None,
    by_model: bool = False,
    as_dataframe: bool = False,
) -> Any:
    """Cost, executions and tokens per UTC day and template (and model).

    The original design's budget query (``SELECT DATE(executed_at), template_name,
    SUM(cost_usd), COUNT(*) ... GROUP BY 1, 2``), exact on both engines.

    Args:
        source: database URL or SQLAlchemy Engine.
        since: start of the window, inclusive (e.g. ``"30d"``, a datetime); None: no limit.
        until: end of the window, exclusive; None: no limit.
        template: only this template key.
        by_model: one row per model too (the ``model`` column, else ``None``).
        as_dataframe: return a pandas DataFrame instead.

    Returns:
        Rows ordered by day, then cost (highest first), then template and model.

    Raises:
        StoreError: the store cannot be used. ConfigurationError: bad arguments.

    .. versionadded:: 0.1.0
    """
    from sqlalchemy import func, select

    e = _table().c
    with open_store(source) as engine:
        day = _day_expr(engine).label("day")
        keys: list[Any] = [day, e.template_name]
        if by_model:
            keys.append(e.model)
        query = (
            select(
                *keys,
                func.count().label("n"),
                func.count(e.cost_usd).label("priced"),
                _cost_sum_expr(engine).label("cost"),
                func.coalesce(func.sum(e.input_token_count), 0).label("input_tokens"),
                func.coalesce(func.sum(e.output_token_count), 0).label("output_tokens"),
            )
            .where(*_conditions(engine, since, until, template))
            .group_by(*keys)
        )
        with engine.connect() as conn:
            rows = [
                DailyCost(
                    day=_as_date(r.day),
                    template=r.template_name,
                    model=r.model if by_model else None,
                    executions=int(r.n),
                    priced_executions=int(r.priced),
                    cost_usd=_cost_value(engine, r.cost),
                    input_tokens=int(r.input_tokens),
                    output_tokens=int(r.output_tokens),
                )
                for r in conn.execute(query)
            ]
    rows.sort(key=lambda r: (r.day, -r.cost_usd, _sort_key(r.template, r.model)))
    return _frame_or_rows(ResultList(rows), as_dataframe)


# -- latency ----------------------------------------------------------------------------------


def _latency_postgres(
    conn: Connection,
    engine: Engine,
    conditions: list[ColumnElement[bool]],
    by_version: bool,
    fractions: tuple[float, ...],
) -> list[LatencyPercentiles]:
    from sqlalchemy import func, literal_column, select

    e = _table().c
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

    e = _table().c
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


@overload
def latency_percentiles(
    source: StoreSource,
    *,
    since: TimeBound = ...,
    until: TimeBound = ...,
    template: str | None = ...,
    by_version: bool = ...,
    percentiles: Sequence[float] = ...,
    successful_only: bool = ...,
    as_dataframe: Literal[False] = ...,
) -> ResultList[LatencyPercentiles]: ...
@overload
def latency_percentiles(
    source: StoreSource,
    *,
    since: TimeBound = ...,
    until: TimeBound = ...,
    template: str | None = ...,
    by_version: bool = ...,
    percentiles: Sequence[float] = ...,
    successful_only: bool = ...,
    as_dataframe: Literal[True],
) -> Any: ...
def latency_percentiles(
    source: StoreSource,
    *,
    since: TimeBound = None,
    until: TimeBound = None,
    template: str | None = None,
    by_version: bool = False,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    successful_only: bool = False,
    as_dataframe: bool = False,
) -> Any:
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
        as_dataframe: return a pandas DataFrame instead.

    Returns:
        Rows ordered by template, then version and group (``None`` first).

    Raises:
        StoreError: the store cannot be used. ConfigurationError: bad arguments.

    .. versionadded:: 0.1.0
    """
    fractions = _check_percentiles(percentiles)
    e = _table().c
    with open_store(source) as engine:
        extra = [e.success.is_(True)] if successful_only else []
        conditions = _conditions(engine, since, until, template, extra)
        with engine.connect() as conn:
            if _is_postgres(engine):
                rows = _latency_postgres(conn, engine, conditions, by_version, fractions)
            else:
                rows = _latency_python(conn, conditions, by_version, fractions)
    rows.sort(key=lambda r: _sort_key(r.template, r.version, r.ab_group))
    return _frame_or_rows(ResultList(rows), as_dataframe)


# -- success rates ------------------------------------------------------------------------


@overload
def success_rates(
    source: StoreSource,
    *,
    since: TimeBound = ...,
    until: TimeBound = ...,
    template: str | None = ...,
    by_version: bool = ...,
    as_dataframe: Literal[False] = ...,
) -> ResultList[TemplateSummary]: ...
@overload
def success_rates(
    source: StoreSource,
    *,
    since: TimeBound = ...,
    until: TimeBound = ...,
    template: str | None = ...,
    by_version: bool = ...,
    as_dataframe: Literal[True],
) -> Any: ...
def success_rates(
    source: StoreSource,
    *,
    since: TimeBound = None,
    until: TimeBound = None,
    template: str | None = None,
    by_version: bool = False,
    as_dataframe: bool = False,
) -> Any:
    """Executions, successes, failures (with success and error rates), cost and tokens.

    Args:
        source: database URL or SQLAlchemy Engine.
        since, until: the time window (``since`` inclusive, ``until`` exclusive).
        template: only this template key.
        by_version: one row per (template, version, A/B group).
        as_dataframe: return a pandas DataFrame instead.

    Returns:
        Rows ordered by template, then version and group (``None`` first).

    Raises:
        StoreError: the store cannot be used. ConfigurationError: bad arguments.

    .. versionadded:: 0.1.0
    """
    from sqlalchemy import case, func, select

    e = _table().c
    with open_store(source) as engine:
        keys: list[Any] = [e.template_name]
        if by_version:
            keys += [e.template_version, e.template_ab_test_group]
        query = (
            select(
                *keys,
                func.count().label("n"),
                func.sum(case((e.success.is_(True), 1), else_=0)).label("ok"),
                _cost_sum_expr(engine).label("cost"),
                func.coalesce(func.sum(e.input_token_count), 0).label("input_tokens"),
                func.coalesce(func.sum(e.output_token_count), 0).label("output_tokens"),
                func.min(e.executed_at).label("first_seen"),
                func.max(e.executed_at).label("last_seen"),
            )
            .where(*_conditions(engine, since, until, template))
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
                        cost_usd=_cost_value(engine, r.cost),
                        input_tokens=int(r.input_tokens),
                        output_tokens=int(r.output_tokens),
                        first_seen=_as_time(r.first_seen),
                        last_seen=_as_time(r.last_seen),
                    )
                )
    rows.sort(key=lambda r: _sort_key(r.template, r.version, r.ab_group))
    return _frame_or_rows(ResultList(rows), as_dataframe)


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


@overload
def error_patterns(
    source: StoreSource,
    *,
    since: TimeBound = ...,
    until: TimeBound = ...,
    template: str | None = ...,
    top: int | None = ...,
    as_dataframe: Literal[False] = ...,
) -> ResultList[ErrorPattern]: ...
@overload
def error_patterns(
    source: StoreSource,
    *,
    since: TimeBound = ...,
    until: TimeBound = ...,
    template: str | None = ...,
    top: int | None = ...,
    as_dataframe: Literal[True],
) -> Any: ...
def error_patterns(
    source: StoreSource,
    *,
    since: TimeBound = None,
    until: TimeBound = None,
    template: str | None = None,
    top: int | None = 10,
    as_dataframe: bool = False,
) -> Any:
    """The most frequent kinds of failure: failed executions grouped by template, error type,
    HTTP status and normalised message (:func:`normalize_error_message`).

    Args:
        source: database URL or SQLAlchemy Engine.
        since, until: the time window (``since`` inclusive, ``until`` exclusive).
        template: only this template key.
        top: keep the ``top`` most frequent patterns (None: all).
        as_dataframe: return a pandas DataFrame instead.

    Returns:
        Rows ordered by count (highest first), then template, pattern.

    Raises:
        StoreError: the store cannot be used. ConfigurationError: bad arguments.

    .. versionadded:: 0.1.0
    """
    from sqlalchemy import select

    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
        raise ConfigurationError(f"top must be a positive int or None, got {top!r}")
    e = _table().c
    groups: dict[tuple[str, str | None, int | None, str], list[Any]] = {}
    failures: dict[str, int] = {}
    with open_store(source) as engine:
        query = (
            select(e.template_name, e.error_type, e.http_status, e.error_message, e.executed_at)
            .where(*_conditions(engine, since, until, template, [e.success.is_(False)]))
            .order_by(e.executed_at, e.id)
        )
        with engine.connect() as conn:
            for r in conn.execution_options(yield_per=10_000).execute(query):
                at = _as_time(r.executed_at)
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
            _sort_key(r.error_type),
            r.http_status or 0,
        )
    )
    if top is not None:
        rows = rows[:top]
    return _frame_or_rows(ResultList(rows), as_dataframe)


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
    e = _table().c
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
            .where(*_conditions(engine, since, None, template))
            .order_by(e.executed_at.desc(), e.id.desc())
        )
        if limit is not None:
            query = query.limit(limit)
        with engine.connect() as conn:
            rows = [
                ExecutionRow(
                    id=r.id,
                    executed_at=_as_time(r.executed_at),
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
