"""Queries by caller: cost per user, the top users, sessions (schema revision 0005).

The caller columns (``user_id``, ``session_id``, ``request_id`` of ``prompt_executions``)
hold what :func:`vividly_trace.context` or the middleware bound. Costs are exact (see
:mod:`._queries`) and a cost no call recorded stays unknown (``priced_calls == 0``),
never 0. A store older than revision 0005 has no caller columns: these queries then
raise :class:`StoreSchemaError` naming the upgrade command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..exceptions import ConfigurationError
from ._rows import SessionRow, UserCost
from ._sql import as_time, cost_sum, cost_value, executions_table, window_conditions
from ._store import ResultList, StoreSchemaError, StoreSource, TimeBound, hide_password, open_store

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement
    from sqlalchemy.engine import Connection, Engine

__all__ = ["cost_by_user", "has_caller_columns", "sessions", "top_users"]

_CALLER_COLUMNS = frozenset({"user_id", "session_id", "request_id"})


def has_caller_columns(conn: Engine | Connection) -> bool:
    """Whether the store has the caller columns (schema revision 0005)."""
    from sqlalchemy import inspect

    names = {c["name"] for c in inspect(conn).get_columns("prompt_executions")}
    return names >= _CALLER_COLUMNS


def _require_callers(engine: Engine) -> None:
    if not has_caller_columns(engine):
        raise StoreSchemaError(
            f"{hide_password(engine.url)} has no user_id / session_id columns (a store older "
            "than schema revision 0005): upgrade it with: vividly-trace db upgrade --url URL"
        )


def _measures(engine: Engine) -> list[Any]:
    from sqlalchemy import case, func

    e = executions_table().c
    return [
        func.count().label("n"),
        func.count(e.cost_usd).label("priced"),
        func.coalesce(func.sum(case((e.success.is_(False), 1), else_=0)), 0).label("failed"),
        cost_sum(engine).label("cost"),
        func.coalesce(func.sum(e.input_token_count), 0).label("input_tokens"),
        func.coalesce(func.sum(e.output_token_count), 0).label("output_tokens"),
        func.min(e.executed_at).label("first_seen"),
        func.max(e.executed_at).label("last_seen"),
    ]


def _check_user(user_id: Any) -> str | None:
    if user_id is None:
        return None
    if isinstance(user_id, bool) or not isinstance(user_id, (str, int)) or user_id == "":
        raise ConfigurationError(f"user_id must be a non-empty string or int, got {user_id!r}")
    return str(user_id)


def cost_by_user(
    source: StoreSource,
    *,
    since: TimeBound = None,
    until: TimeBound = None,
    template: str | None = None,
) -> ResultList[UserCost]:
    """Cost, tokens, calls and sessions per user.

    The calls made outside any :func:`vividly_trace.context` form one row with
    ``user_id=None``, so ``cost_usd`` summed over the rows is the bill of the window.

    Args:
        source: database URL or SQLAlchemy Engine.
        since, until: the time window (``since`` inclusive, ``until`` exclusive).
        template: only the calls of this template key.

    Returns:
        Rows ordered by cost (highest first), then calls (most first), then user
        (``None`` last).

    Raises:
        StoreError: the store cannot be used (StoreSchemaError: older than revision
        0005). ConfigurationError: bad arguments.

    .. versionadded:: 0.3.0
    """
    from sqlalchemy import func, select

    e = executions_table().c
    with open_store(source) as engine:
        conditions = window_conditions(engine, since, until, template)
        _require_callers(engine)
        query = (
            select(
                e.user_id,
                *_measures(engine),
                func.count(func.distinct(e.session_id)).label("sessions"),
            )
            .where(*conditions)
            .group_by(e.user_id)
        )
        with engine.connect() as conn:
            rows = [
                UserCost(
                    user_id=r.user_id,
                    calls=int(r.n),
                    priced_calls=int(r.priced),
                    failed_calls=int(r.failed),
                    cost_usd=cost_value(engine, r.cost),
                    input_tokens=int(r.input_tokens),
                    output_tokens=int(r.output_tokens),
                    sessions=int(r.sessions),
                    first_seen=as_time(r.first_seen),
                    last_seen=as_time(r.last_seen),
                )
                for r in conn.execute(query)
            ]
    rows.sort(key=lambda u: (-u.cost_usd, -u.calls, u.user_id is None, u.user_id or ""))
    return ResultList(rows)


def top_users(
    source: StoreSource,
    n: int = 10,
    *,
    since: TimeBound = None,
    until: TimeBound = None,
    template: str | None = None,
) -> ResultList[UserCost]:
    """The ``n`` users with the highest cost (then the most calls); calls without a user
    are left out. Rows as :func:`cost_by_user` gives them.

    Raises:
        StoreError: the store cannot be used. ConfigurationError: bad arguments.

    .. versionadded:: 0.3.0
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigurationError(f"n must be a positive int, got {n!r}")
    rows = cost_by_user(source, since=since, until=until, template=template)
    return ResultList([u for u in rows if u.user_id is not None][:n])


def sessions(
    source: StoreSource,
    user_id: str | int | None = None,
    *,
    since: TimeBound = None,
    until: TimeBound = None,
    template: str | None = None,
) -> ResultList[SessionRow]:
    """Per session: calls, cost, first and last call, duration and the templates used.

    Calls without a ``session_id`` belong to no session and are left out.

    Args:
        source: database URL or SQLAlchemy Engine.
        user_id: only the calls of this user.
        since, until: the time window (``since`` inclusive, ``until`` exclusive).
        template: only the calls of this template key.

    Returns:
        Rows ordered by the session's last call (newest first), then session id.

    Raises:
        StoreError: the store cannot be used (StoreSchemaError: older than revision
        0005). ConfigurationError: bad arguments.

    .. versionadded:: 0.3.0
    """
    from sqlalchemy import func, select

    user = _check_user(user_id)
    e = executions_table().c
    extra: list[ColumnElement[bool]] = [e.session_id.is_not(None)]
    if user is not None:
        extra.append(e.user_id == user)
    with open_store(source) as engine:
        conditions = window_conditions(engine, since, until, template, extra)
        _require_callers(engine)
        query = (
            select(e.session_id, func.min(e.user_id).label("user_id"), *_measures(engine))
            .where(*conditions)
            .group_by(e.session_id)
        )
        used = (
            select(e.session_id, e.template_name)
            .where(*conditions)
            .group_by(e.session_id, e.template_name)
        )
        with engine.connect() as conn:
            templates: dict[str, list[str]] = {}
            for r in conn.execute(used):
                templates.setdefault(r.session_id, []).append(r.template_name)
            rows = [
                SessionRow(
                    session_id=r.session_id,
                    user_id=r.user_id,
                    calls=int(r.n),
                    priced_calls=int(r.priced),
                    failed_calls=int(r.failed),
                    cost_usd=cost_value(engine, r.cost),
                    input_tokens=int(r.input_tokens),
                    output_tokens=int(r.output_tokens),
                    first_seen=as_time(r.first_seen),
                    last_seen=as_time(r.last_seen),
                    templates=tuple(sorted(templates.get(r.session_id, ()))),
                )
                for r in conn.execute(query)
            ]
    rows.sort(key=lambda s: s.session_id)
    rows.sort(key=lambda s: s.last_seen, reverse=True)
    return ResultList(rows)
