"""SQL helpers for the queries: dialect expressions, window conditions, cost sums, casting."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..exceptions import ConfigurationError
from ._store import TimeBound, parse_time, to_utc

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement, Table
    from sqlalchemy.engine import Connection, Engine

__all__ = [
    "as_date",
    "as_time",
    "cost_sum",
    "cost_value",
    "executions_table",
    "is_postgres",
    "sort_key",
    "utc_day",
    "window_conditions",
]

_PICO = Decimal(10) ** -12
_ZERO = Decimal(0)


def executions_table() -> Table:
    """The ``prompt_executions`` table (imported on first use: SQLAlchemy is heavy)."""
    from ..sinks.sql.schema import prompt_executions

    return prompt_executions


def is_postgres(engine: Engine | Connection) -> bool:
    """Whether ``engine`` talks to PostgreSQL (the other supported engine is SQLite)."""
    return engine.dialect.name == "postgresql"


def _bound(engine: Engine, value: _dt.datetime) -> _dt.datetime:
    # SQLite keeps naive UTC text: bind a naive UTC datetime so the text compares right.
    value = to_utc(value)
    return value.replace(tzinfo=None) if engine.dialect.name == "sqlite" else value


def window_conditions(
    engine: Engine,
    since: TimeBound,
    until: TimeBound,
    template: str | None,
    extra: Iterable[ColumnElement[bool]] = (),
) -> list[ColumnElement[bool]]:
    """``WHERE`` conditions for a time window (``since`` inclusive, ``until`` exclusive), a
    template filter, and ``extra``.

    Raises:
        ConfigurationError: the window is empty, or ``template`` is not a non-empty string.
    """
    e = executions_table().c
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


def utc_day(engine: Engine) -> ColumnElement[Any]:
    """The UTC day of ``executed_at``, whatever the session time zone."""
    from sqlalchemy import func

    e = executions_table().c
    if is_postgres(engine):
        return func.date(func.timezone("UTC", e.executed_at))
    return func.date(e.executed_at)


def cost_sum(engine: Engine) -> ColumnElement[Any]:
    """An exact ``SUM(cost_usd)``; read its value with :func:`cost_value`."""
    from sqlalchemy import BigInteger, Double, cast, func, literal_column, type_coerce

    e = executions_table().c
    if is_postgres(engine):
        return func.sum(e.cost_usd)
    # Integer pico-dollars: exact where a float sum would drift in the last digits.
    pico = func.round(type_coerce(e.cost_usd, Double) * literal_column("1000000000000"))
    return func.sum(cast(pico, BigInteger))


def cost_value(engine: Engine, raw: Any) -> Decimal:
    """The ``Decimal`` of a :func:`cost_sum` read back (0 for no priced rows)."""
    if raw is None:
        return _ZERO
    if is_postgres(engine):
        return raw if isinstance(raw, Decimal) else Decimal(str(raw))
    return (Decimal(int(raw)) * _PICO).normalize() if raw else _ZERO


def as_date(value: Any) -> _dt.date:
    """A day read back (SQLite gives text) as a ``date``."""
    if isinstance(value, _dt.datetime):
        return value.date()
    if isinstance(value, _dt.date):
        return value
    return _dt.date.fromisoformat(str(value))


def as_time(value: Any) -> _dt.datetime:
    """A time read back (SQLite gives naive UTC or text) as an aware UTC datetime."""
    if isinstance(value, _dt.datetime):
        return to_utc(value)
    return to_utc(_dt.datetime.fromisoformat(str(value)))


def sort_key(*parts: str | None) -> tuple[tuple[int, str], ...]:
    """Sort key of nullable text columns: ``None`` first, then by text, on every engine."""
    return tuple((0, "") if p is None else (1, p) for p in parts)
