"""The ``alert_state`` table: firing once per window, delivery claimed by a lease.

Firing is an insert that does nothing when the row (rule, subject, window start) exists,
so only one check, in one process, fires an alert in its window. Delivery is claimed by an
``UPDATE`` that takes a lease (``lease_until``) only when none is held; the row is marked
delivered only after the webhook answered 2xx; a failure sets ``lease_until`` to the time
of the next attempt (exponential backoff), so the next check retries and nothing is lost.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..analytics._store import to_utc
from ..sinks.sql.schema import alert_state

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = ["Pending", "claim", "ensure_table", "fire", "mark_delivered", "mark_failed"]

_MAX_BACKOFF_S = 3600.0


@dataclass(frozen=True)
class Pending:
    """An undelivered alert this process holds the lease of."""

    rule: str
    subject: str
    window_start: _dt.datetime
    message: str
    payload: dict[str, Any]
    attempts: int


def _t(engine: Engine, value: _dt.datetime) -> _dt.datetime:
    # SQLite keeps naive UTC text: bind naive UTC so comparisons of the text hold.
    value = to_utc(value)
    return value.replace(tzinfo=None) if engine.dialect.name == "sqlite" else value


def ensure_table(engine: Engine) -> None:
    """Create ``alert_state`` by migrating the store (revision 0009) when it is missing."""
    from sqlalchemy import inspect

    from ..sinks.sql import migrate

    with engine.connect() as conn:
        if inspect(conn).has_table("alert_state"):
            return
    migrate.upgrade(engine)


def _key(engine: Engine, rule: str, subject: str, start: _dt.datetime) -> Any:
    c = alert_state.c
    return (c.rule == rule) & (c.subject == subject) & (c.window_start == _t(engine, start))


def fire(
    engine: Engine,
    *,
    rule: str,
    subject: str,
    kind: str,
    window: tuple[_dt.datetime, _dt.datetime],
    message: str,
    payload: dict[str, Any],
    now: _dt.datetime,
) -> bool:
    """Record the alert; True when this call fired it (no row for its window yet)."""
    values = {
        "rule": rule,
        "subject": subject,
        "window_start": _t(engine, window[0]),
        "window_end": _t(engine, window[1]),
        "kind": kind,
        "fired_at": _t(engine, now),
        "message": message,
        "payload": payload,
        "attempts": 0,
    }
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        statement: Any = (
            pg_insert(alert_state)
            .values(values)
            .on_conflict_do_nothing()
            .returning(alert_state.c.rule)
        )
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = (
            sqlite_insert(alert_state)
            .values(values)
            .on_conflict_do_nothing()
            .returning(alert_state.c.rule)
        )
    # RETURNING gives a row only when the insert happened (rowcount is unreliable here).
    with engine.begin() as conn:
        return conn.execute(statement).first() is not None


def claim(
    engine: Engine, owner: str, now: _dt.datetime, lease_s: float, limit: int = 100
) -> list[Pending]:
    """Take the lease of every undelivered alert whose lease is free (or expired)."""
    from sqlalchemy import or_, select, update

    c = alert_state.c
    free = or_(c.lease_until.is_(None), c.lease_until <= _t(engine, now))
    until = _t(engine, now + _dt.timedelta(seconds=lease_s))
    claimed = []
    with engine.begin() as conn:
        rows = conn.execute(
            select(c.rule, c.subject, c.window_start, c.message, c.payload, c.attempts)
            .where(c.delivered_at.is_(None), free)
            .order_by(c.fired_at)
            .limit(limit)
        ).all()
    for r in rows:
        start = to_utc(r.window_start)
        with engine.begin() as conn:
            taken = conn.execute(
                update(alert_state)
                .where(_key(engine, r.rule, r.subject, start), c.delivered_at.is_(None), free)
                .values(lease_until=until, lease_owner=owner)
            ).rowcount
        if taken == 1:
            claimed.append(
                Pending(r.rule, r.subject, start, r.message, dict(r.payload), int(r.attempts))
            )
    return claimed


def mark_delivered(engine: Engine, pending: Pending, owner: str, now: _dt.datetime) -> None:
    """The webhook answered 2xx: the alert is delivered."""
    from sqlalchemy import update

    c = alert_state.c
    with engine.begin() as conn:
        conn.execute(
            update(alert_state)
            .where(
                _key(engine, pending.rule, pending.subject, pending.window_start),
                c.lease_owner == owner,
            )
            .values(
                delivered_at=_t(engine, now),
                lease_until=None,
                lease_owner=None,
                attempts=pending.attempts + 1,
                last_error=None,
            )
        )


def mark_failed(
    engine: Engine, pending: Pending, owner: str, now: _dt.datetime, error: str, base_s: float
) -> None:
    """Delivery failed: count it, keep the error, hold the next attempt off (backoff)."""
    from sqlalchemy import update

    c = alert_state.c
    delay = min(_MAX_BACKOFF_S, base_s * 2**pending.attempts)
    with engine.begin() as conn:
        conn.execute(
            update(alert_state)
            .where(
                _key(engine, pending.rule, pending.subject, pending.window_start),
                c.lease_owner == owner,
            )
            .values(
                lease_until=_t(engine, now + _dt.timedelta(seconds=delay)),
                lease_owner=None,
                attempts=pending.attempts + 1,
                last_error=error[:1000],
            )
        )
