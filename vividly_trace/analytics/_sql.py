"""SQL helpers for the queries: dialect expressions, window conditions, cost sums, casting."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..exceptions import ConfigurationError
from ._store import TimeBound, parse_time, to_utc

if TYPE_CHECKING:
    from sqlalchemy import Column, ColumnElement, Table
    from sqlalchemy.engine import Connection, Engine

__all__ = [
    "as_date",
    "as_time",
    "cost_sum",
    "cost_value",
    "executions_table",
    "has_requests_table",
    "is_postgres",
    "requests_table",
    "sort_key",
    "time_window",
    "utc_day",
    "window_conditions",
]

_ZERO = Decimal(0)


def executions_table() -> Table:
    """The ``prompt_executions`` table (imported on first use: SQLAlchemy is heavy)."""
    from ..sinks.sql.schema import prompt_executions

    return prompt_executions


def requests_table() -> Table:
    """The ``prompt_requests`` table (schema revision 0003)."""
    from ..sinks.sql.schema import prompt_requests

    return prompt_requests


def has_requests_table(conn: Engine | Connection) -> bool:
    """Whether the store has ``prompt_requests`` (a store older than revision 0003 has none:
    its executions then count under their own model)."""
    from sqlalchemy import inspect

    return bool(inspect(conn).has_table("prompt_requests"))


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
    out: list[ColumnElement[bool]] = list(extra)
    out += time_window(engine, e.executed_at, since, until)
    if template is not None:
        if not isinstance(template, str) or not template:
            raise ConfigurationError(f"template must be a non-empty string, got {template!r}")
        out.append(e.template_name == template)
    return out


def time_window(
    engine: Engine, column: Column[Any] | ColumnElement[Any], since: TimeBound, until: TimeBound
) -> list[ColumnElement[bool]]:
    """Conditions keeping ``column`` (a timestamp) in the window: ``since`` inclusive,
    ``until`` exclusive.

    Raises:
        ConfigurationError: the window is empty.
    """
    start = parse_time(since)
    end = parse_time(until)
    if start is not None and end is not None and end <= start:
        raise ConfigurationError(f"the time window is empty: until ({end}) <= since ({start})")
    out: list[ColumnElement[bool]] = []
    if start is not None:
        out.append(column >= _bound(engine, start))
    if end is not None:
        out.append(column < _bound(engine, end))
    return out


def utc_day(
    engine: Engine, column: Column[Any] | ColumnElement[Any] | None = None
) -> ColumnElement[Any]:
    """The UTC day of ``column`` (default ``executed_at``), whatever the session time zone."""
    from sqlalchemy import func

    at = executions_table().c.executed_at if column is None else column
    if is_postgres(engine):
        return func.date(func.timezone("UTC", at))
    return func.date(at)


def cost_sum(
    engine: Engine, column: Column[Any] | ColumnElement[Any] | None = None
) -> ColumnElement[Any]:
    """An exact ``SUM`` of ``column`` (default ``prompt_executions.cost_usd``); read its
    value with :func:`cost_value`."""
    from sqlalchemy import func, type_coerce

    cost = executions_table().c.cost_usd if column is None else column
    # NUMERIC on PostgreSQL, integer pico-dollars on SQLite: both sums are exact. Read raw
    # (cost_value converts), whatever type the column expression carries.
    return type_coerce(func.sum(cost), _raw_type(engine))


def _raw_type(engine: Engine) -> Any:
    from sqlalchemy import Numeric

    # SQLite: an integer, or a double beyond 64-bit integers (see schema.to_sqlite_money).
    return Numeric(asdecimal=True) if is_postgres(engine) else Numeric(asdecimal=False)


def cost_value(engine: Engine, raw: Any) -> Decimal:
    """The ``Decimal`` of a :func:`cost_sum` read back (0 for no priced rows)."""
    if raw is None:
        return _ZERO
    if is_postgres(engine):
        return raw if isinstance(raw, Decimal) else Decimal(str(raw))
    from ..sinks.sql.schema import from_sqlite_money

    return from_sqlite_money(raw) if raw else _ZERO


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
