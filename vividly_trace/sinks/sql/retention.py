"""Retention of the SQL store: pruning old executions, and monthly partitions on PostgreSQL.

:func:`prune` deletes the executions that started before a cutoff, with their
``prompt_requests`` rows, in batches (one short transaction each, so writers never wait
long), on SQLite and PostgreSQL. On a partitioned PostgreSQL store (:func:`partition`) a
month that lies entirely before the cutoff is dropped as a whole partition (its requests
are deleted first, in batches); the boundary month and the default partition lose their old
rows by batched ``DELETE``. Afterwards the statistics of the templates that lost rows are
recomputed from the remaining rows (their template rows locked in ``id`` order first, as
the triggers do, so a concurrent batch is counted exactly once): a dropped partition fires
no trigger, and SQLite's row triggers subtract floating-point costs. On PostgreSQL the
money stays exact (``NUMERIC``).

:func:`partition` (PostgreSQL only, an explicit opt-in) turns ``prompt_executions`` into a
table partitioned by month of ``executed_at`` (``RANGE``), or, when it is one already,
only creates the partitions ahead. The layout:

- partitions ``prompt_executions_pYYYY_MM`` for ``[first of the month, first of the next)``
  in UTC, and ``prompt_executions_default``, so no insert ever fails (a row outside every
  month lands there, and moves to its month's partition when that is created);
- the primary key is ``(id, executed_at)``: PostgreSQL requires a unique constraint on a
  partitioned table to contain the partition key. A record's ``executed_at`` never
  changes, so a replayed record still conflicts (the sink's ``ON CONFLICT DO NOTHING`` and
  its ``COPY`` fallback keep writes idempotent);
- ``prompt_requests`` stays one unpartitioned table and loses its foreign key to the
  executions: a foreign key needs a unique target, ``id`` alone no longer is one, and the
  composite ``(execution_id, executed_at)`` would copy the execution's start into every
  request row and still forbid dropping a partition whose requests exist. Instead a
  statement-level ``AFTER DELETE`` trigger on the partitioned table deletes the requests
  of the deleted executions (whoever deletes), and :func:`prune` deletes a partition's
  requests before it drops the partition;
- the statistics triggers are the same statement-level triggers with transition tables
  (they fire for statements on ``prompt_executions``; a statement addressed to one
  partition directly fires none, so write and delete through the parent), the indexes are
  the same (partitioned indexes), the foreign key to ``prompt_templates`` is kept. The
  original design's queries and inserts run unchanged on it.

Converting copies every row into the new table inside one transaction that holds an
``ACCESS EXCLUSIVE`` lock on the old one: writers wait (the SDK's workers retry and
spool) for as long as the copy takes.

.. versionadded:: 0.4.0
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterable, Sequence

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.schema import CreateIndex

from . import triggers
from .schema import prompt_executions

__all__ = [
    "DEFAULT_PARTITION",
    "PartitionResult",
    "PruneResult",
    "is_partitioned",
    "parse_age",
    "partition",
    "partitions",
    "prune",
    "recompute_statistics",
]

DEFAULT_PARTITION = "prompt_executions_default"
"""The partition catching rows outside every monthly partition."""

_PARTITION_NAME = re.compile(r"^prompt_executions_p(\d{4})_(\d{2})$")
_AGE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_AGE_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

# Replaces the foreign key's ON DELETE CASCADE on a partitioned store (see the module doc).
_PG_REQUESTS_FUNCTION = """
CREATE OR REPLACE FUNCTION vividly_trace_delete_requests() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM prompt_requests AS r
     USING vividly_trace_old_executions AS o
     WHERE r.execution_id = o.id;
    RETURN NULL;
END;
$$
"""
_PG_REQUESTS_TRIGGER = """
CREATE TRIGGER trg_prompt_executions_delete_requests
AFTER DELETE ON prompt_executions
REFERENCING OLD TABLE AS vividly_trace_old_executions
FOR EACH STATEMENT EXECUTE FUNCTION vividly_trace_delete_requests()
"""
_REQUESTS_FK = "fk_prompt_requests_execution_id_prompt_executions"

# One aggregate over the affected templates' rows (the (template_id, executed_at) index),
# the same values the triggers maintain. Works on PostgreSQL and SQLite (UPDATE ... FROM).
_RECOMPUTE = """
UPDATE prompt_templates SET
    total_executions = s.n,
    successful_executions = s.ok,
    failed_executions = s.n - s.ok,
    total_input_tokens = s.input_tokens,
    total_output_tokens = s.output_tokens,
    total_tokens = s.tokens,
    total_cost_usd = s.cost,
    total_response_time_ms = s.response_time,
    avg_response_time_ms = CASE WHEN s.n > 0 THEN s.response_time / s.n END,
    first_executed_at = s.first_at,
    last_executed_at = s.last_at
FROM (
    SELECT k.id AS template_id,
           count(e.id) AS n,
           coalesce(sum(CASE WHEN e.success THEN 1 ELSE 0 END), 0) AS ok,
           coalesce(sum(e.input_token_count), 0) AS input_tokens,
           coalesce(sum(e.output_token_count), 0) AS output_tokens,
           coalesce(sum(e.total_token_count), 0) AS tokens,
           coalesce(sum(e.cost_usd), 0) AS cost,
           coalesce(sum(e.response_time_ms), 0) AS response_time,
           min(e.executed_at) AS first_at,
           max(e.executed_at) AS last_at
      FROM prompt_templates AS k
      LEFT JOIN prompt_executions AS e ON e.template_id = k.id
     WHERE k.id IN :ids
     GROUP BY k.id
) AS s
WHERE prompt_templates.id = s.template_id
"""


@dataclasses.dataclass(frozen=True)
class PruneResult:
    """What :func:`prune` did (or, with ``dry_run``, would do).

    Attributes:
        cutoff: executions that started before this instant (UTC) were pruned.
        executions: executions deleted, those of dropped partitions included.
        requests: ``prompt_requests`` rows deleted with them.
        dropped_partitions: names of the partitions dropped whole.
        batches: ``DELETE`` transactions run.
        dry_run: nothing was changed.
    """

    cutoff: dt.datetime
    executions: int
    requests: int
    dropped_partitions: tuple[str, ...]
    batches: int
    dry_run: bool


@dataclasses.dataclass(frozen=True)
class PartitionResult:
    """What :func:`partition` did.

    Attributes:
        converted: the table was converted from an unpartitioned one.
        rows_copied: rows copied into the partitioned table by the conversion.
        created: names of the partitions created (the default one included).
        moved_from_default: rows moved from the default partition into a new month.
    """

    converted: bool
    rows_copied: int
    created: tuple[str, ...]
    moved_from_default: int


def parse_age(value: str) -> dt.timedelta:
    """``"90d"`` -> 90 days. Units: ``s``, ``m`` (minutes), ``h``, ``d``, ``w``.

    Raises:
        ValueError: not a positive whole number followed by one of those units.
    """
    match = _AGE.match(value)
    if match is None or int(match.group(1)) <= 0:
        raise ValueError(
            f"not an age: {value!r} (a positive whole number and a unit s, m, h, d or w, "
            "e.g. 90d, 12h, 6w)"
        )
    return dt.timedelta(**{_AGE_UNITS[match.group(2)]: int(match.group(1))})


def _utc(moment: dt.datetime | None) -> dt.datetime:
    if moment is None:
        return dt.datetime.now(dt.timezone.utc)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc)


def _bound(conn: Connection, moment: dt.datetime) -> dt.datetime:
    """A timestamp as the dialect stores it (SQLite: naive UTC)."""
    return moment.replace(tzinfo=None) if conn.dialect.name == "sqlite" else moment


def _month_start(moment: dt.datetime) -> dt.datetime:
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _next_month(start: dt.datetime) -> dt.datetime:
    return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)


def _partition_name(start: dt.datetime) -> str:
    return f"prompt_executions_p{start.year:04d}_{start.month:02d}"


def is_partitioned(conn: Connection) -> bool:
    """True when ``prompt_executions`` is a partitioned table (PostgreSQL)."""
    if conn.dialect.name != "postgresql":
        return False
    kind = conn.execute(
        text("SELECT relkind FROM pg_class WHERE oid = to_regclass('prompt_executions')")
    ).scalar()
    return kind == "p"


def partitions(conn: Connection) -> list[tuple[str, dt.datetime | None, dt.datetime | None]]:
    """The partitions of ``prompt_executions``: ``(name, start, end)``, oldest first; the
    default partition last, with ``None`` bounds. Empty when the table is not partitioned."""
    if not is_partitioned(conn):
        return []
    names = conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass('prompt_executions')"
        )
    ).scalars()
    months: list[tuple[str, dt.datetime | None, dt.datetime | None]] = []
    others: list[tuple[str, dt.datetime | None, dt.datetime | None]] = []
    for name in names:
        match = _PARTITION_NAME.match(name)
        if match is None:
            others.append((name, None, None))
            continue
        start = dt.datetime(int(match.group(1)), int(match.group(2)), 1, tzinfo=dt.timezone.utc)
        months.append((name, start, _next_month(start)))
    months.sort(key=lambda p: p[1] or dt.datetime.min.replace(tzinfo=dt.timezone.utc))
    return months + sorted(others)


def recompute_statistics(conn: Connection, template_ids: Iterable[int]) -> None:
    """Set the statistics of these templates to the aggregates of their remaining rows.

    The template rows are locked in ``id`` order first (PostgreSQL: ``FOR NO KEY UPDATE``,
    the lock the triggers take); the recomputation is a later statement, so in ``READ
    COMMITTED`` it sees every batch committed before it, and a batch still running adds
    its rows through its trigger once this transaction commits.
    """
    ids = sorted(set(template_ids))
    if not ids:
        return
    if conn.dialect.name == "postgresql":
        conn.execute(
            text(
                "SELECT 1 FROM prompt_templates WHERE id IN :ids ORDER BY id FOR NO KEY UPDATE"
            ).bindparams(bindparam("ids", expanding=True)),
            {"ids": ids},
        )
    conn.execute(text(_RECOMPUTE).bindparams(bindparam("ids", expanding=True)), {"ids": ids})


def _delete_rows(
    engine: Engine, cutoff: dt.datetime, batch_size: int
) -> tuple[int, int, int, set[int]]:
    """Delete the executions older than ``cutoff`` in batches; (executions, requests,
    batches, template ids)."""
    deleted = requests = batches = 0
    templates: set[int] = set()
    while True:
        with engine.begin() as conn:
            bound = _bound(conn, cutoff)
            if conn.dialect.name == "sqlite":
                ids = list(
                    conn.execute(
                        text(
                            "SELECT id FROM prompt_executions WHERE executed_at < :cutoff LIMIT :n"
                        ),
                        {"cutoff": bound, "n": batch_size},
                    ).scalars()
                )
                if not ids:
                    return deleted, requests, batches, templates
                # The trigger deletes them too; counted here, before it does.
                requests += int(
                    conn.execute(
                        text(
                            "SELECT count(*) FROM prompt_requests WHERE execution_id IN :ids"
                        ).bindparams(bindparam("ids", expanding=True)),
                        {"ids": ids},
                    ).scalar_one()
                )
                rows = conn.execute(
                    text(
                        "DELETE FROM prompt_executions WHERE id IN :ids RETURNING template_id"
                    ).bindparams(bindparam("ids", expanding=True)),
                    {"ids": ids},
                ).all()
            else:
                # (id, executed_at): on a partitioned table the pair finds the partition.
                # The requests go with them (the foreign key's cascade, or the partitioned
                # table's trigger); counted from the snapshot before the delete.
                rows = conn.execute(
                    text(
                        "WITH batch AS (SELECT id, executed_at FROM prompt_executions "
                        "WHERE executed_at < :cutoff LIMIT :n), "
                        "req AS (SELECT count(*) AS n FROM prompt_requests "
                        "WHERE execution_id IN (SELECT id FROM batch)), "
                        "del AS (DELETE FROM prompt_executions AS e USING batch AS b "
                        "WHERE e.id = b.id AND e.executed_at = b.executed_at "
                        "RETURNING e.template_id) "
                        "SELECT del.template_id, req.n FROM del CROSS JOIN req"
                    ),
                    {"cutoff": bound, "n": batch_size},
                ).all()
                if not rows:
                    return deleted, requests, batches, templates
                requests += int(rows[0][1])
            batches += 1
            deleted += len(rows)
            templates.update(int(r[0]) for r in rows)


def _drop_partition(engine: Engine, name: str, batch_size: int) -> tuple[int, int, set[int]]:
    """Delete the requests of partition ``name`` in batches, then drop it; (executions,
    requests, template ids)."""
    table = f'"{name}"'
    with engine.begin() as conn:
        counts = conn.execute(
            text(f"SELECT template_id, count(*) FROM {table} GROUP BY template_id")
        ).all()
    requests = 0
    last = ""
    while True:
        with engine.begin() as conn:
            ids = list(
                conn.execute(
                    text(f"SELECT id FROM {table} WHERE id > :last ORDER BY id LIMIT :n"),
                    {"last": last, "n": batch_size},
                ).scalars()
            )
            if not ids:
                break
            last = ids[-1]
            requests += conn.execute(
                text("DELETE FROM prompt_requests WHERE execution_id = ANY(:ids)"), {"ids": ids}
            ).rowcount
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE {table}"))
    return sum(int(n) for _, n in counts), requests, {int(t) for t, _ in counts}


def prune(
    engine: Engine,
    older_than: dt.timedelta,
    *,
    now: dt.datetime | None = None,
    batch_size: int = 10_000,
    dry_run: bool = False,
) -> PruneResult:
    """Delete the executions that started more than ``older_than`` before ``now``.

    Args:
        engine: the store (SQLite or PostgreSQL, at the newest schema).
        older_than: the age beyond which executions go (e.g. ``parse_age("90d")``).
        now: the reference instant (default: the current time, UTC).
        batch_size: executions per ``DELETE`` transaction.
        dry_run: count what would go and change nothing.

    Returns:
        A :class:`PruneResult`.

    Raises:
        ValueError: ``older_than`` is not positive or ``batch_size`` is below 1.
        sqlalchemy.exc.SQLAlchemyError: the database failed.
    """
    if older_than <= dt.timedelta(0):
        raise ValueError("older_than must be positive")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    cutoff = _utc(now) - older_than
    with engine.connect() as conn:
        parts = partitions(conn)
        droppable = [p[0] for p in parts if p[2] is not None and p[2] <= cutoff]
        if dry_run:
            executions = int(
                conn.execute(
                    text("SELECT count(*) FROM prompt_executions WHERE executed_at < :cutoff"),
                    {"cutoff": _bound(conn, cutoff)},
                ).scalar_one()
            )
            requests = int(
                conn.execute(
                    text(
                        "SELECT count(*) FROM prompt_requests r JOIN prompt_executions e "
                        "ON e.id = r.execution_id WHERE e.executed_at < :cutoff"
                    ),
                    {"cutoff": _bound(conn, cutoff)},
                ).scalar_one()
            )
            return PruneResult(cutoff, executions, requests, tuple(droppable), 0, True)
    executions = requests = 0
    templates: set[int] = set()
    for name in droppable:
        n, r, ids = _drop_partition(engine, name, batch_size)
        executions, requests = executions + n, requests + r
        templates |= ids
    n, r, batches, ids = _delete_rows(engine, cutoff, batch_size)
    executions, requests = executions + n, requests + r
    templates |= ids
    with engine.begin() as conn:
        recompute_statistics(conn, templates)
    return PruneResult(cutoff, executions, requests, tuple(droppable), batches, False)


def _months(first: dt.datetime, last: dt.datetime) -> list[dt.datetime]:
    out, month = [], _month_start(first)
    while month <= last:
        out.append(month)
        month = _next_month(month)
    return out


def _create_month(conn: Connection, start: dt.datetime, has_default: bool) -> int:
    """Create the partition of the month at ``start``; rows of that month waiting in the
    default partition move into it (returned: how many)."""
    name, end = _partition_name(start), _next_month(start)
    bounds = {"start": start, "end": end}
    moved = 0
    if has_default:
        moved = int(
            conn.execute(
                text(
                    f"SELECT count(*) FROM {DEFAULT_PARTITION} "
                    "WHERE executed_at >= :start AND executed_at < :end"
                ),
                bounds,
            ).scalar_one()
        )
    if moved:
        # A new partition may not overlap rows of the default one: detach it, move the
        # month's rows (statements on partitions fire none of the parent's statement
        # triggers, so the statistics stay as they are), attach it again.
        conn.execute(text(f"ALTER TABLE prompt_executions DETACH PARTITION {DEFAULT_PARTITION}"))
    literal_bounds = conn.execute(
        text(
            "SELECT quote_literal(CAST(:start AS timestamptz)), "
            "quote_literal(CAST(:end AS timestamptz))"
        ),
        bounds,
    ).one()
    conn.execute(
        text(
            f"CREATE TABLE {name} PARTITION OF prompt_executions "
            f"FOR VALUES FROM ({literal_bounds[0]}) TO ({literal_bounds[1]})"
        )
    )
    if moved:
        conn.execute(
            text(
                f"WITH m AS (DELETE FROM {DEFAULT_PARTITION} "
                "WHERE executed_at >= :start AND executed_at < :end RETURNING *) "
                f"INSERT INTO {name} SELECT * FROM m"
            ),
            bounds,
        )
        conn.execute(
            text(f"ALTER TABLE prompt_executions ATTACH PARTITION {DEFAULT_PARTITION} DEFAULT")
        )
    return moved


def _convert(conn: Connection) -> tuple[int, dt.datetime | None]:
    """Replace the unpartitioned ``prompt_executions`` by a partitioned copy; (rows copied,
    the oldest ``executed_at``). The partitions are created by the caller afterwards."""
    conn.execute(text("LOCK TABLE prompt_executions IN ACCESS EXCLUSIVE MODE"))
    oldest, newest = conn.execute(
        text("SELECT min(executed_at), max(executed_at) FROM prompt_executions")
    ).one()
    conn.execute(
        text(
            "CREATE TABLE vividly_trace_partitioned (LIKE prompt_executions INCLUDING DEFAULTS "
            "INCLUDING COMMENTS) PARTITION BY RANGE (executed_at)"
        )
    )
    conn.execute(
        text(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF vividly_trace_partitioned DEFAULT")
    )
    if oldest is not None:
        for month in _months(_utc(oldest), _utc(newest)):
            conn.execute(
                text(
                    f"CREATE TABLE {_partition_name(month)} PARTITION OF "
                    "vividly_trace_partitioned FOR VALUES FROM "
                    f"('{month.isoformat()}') TO ('{_next_month(month).isoformat()}')"
                )
            )
    # No trigger exists on the new table yet, so copying counts nothing twice.
    copied = conn.execute(
        text("INSERT INTO vividly_trace_partitioned SELECT * FROM prompt_executions")
    ).rowcount
    conn.execute(text(f"ALTER TABLE prompt_requests DROP CONSTRAINT IF EXISTS {_REQUESTS_FK}"))
    conn.execute(text("DROP TABLE prompt_executions"))
    conn.execute(text("ALTER TABLE vividly_trace_partitioned RENAME TO prompt_executions"))
    conn.execute(
        text(
            "ALTER TABLE prompt_executions ADD CONSTRAINT pk_prompt_executions "
            "PRIMARY KEY (id, executed_at)"
        )
    )
    conn.execute(
        text(
            "ALTER TABLE prompt_executions ADD CONSTRAINT "
            "fk_prompt_executions_template_id_prompt_templates FOREIGN KEY (template_id) "
            "REFERENCES prompt_templates (id) ON DELETE CASCADE"
        )
    )
    for index in sorted(prompt_executions.indexes, key=lambda i: str(i.name)):
        conn.execute(CreateIndex(index))
    statements: Sequence[str] = (
        triggers.create_statements("postgresql")
        + triggers.create_update_statements("postgresql")
        + (_PG_REQUESTS_FUNCTION, _PG_REQUESTS_TRIGGER)
    )
    for statement in statements:
        conn.execute(text(statement))
    return int(copied), None if oldest is None else _utc(oldest)


def partition(
    engine: Engine, *, months_ahead: int = 3, now: dt.datetime | None = None
) -> PartitionResult:
    """Partition ``prompt_executions`` by month (PostgreSQL), and create the partitions of
    the current month and the ``months_ahead`` next ones that are missing.

    Idempotent: on a partitioned store it only adds missing months. Run it from cron (e.g.
    monthly) so the months exist before rows arrive; rows of a month without a partition go
    to the default partition and move into theirs when it is created.

    Raises:
        ValueError: not PostgreSQL, or ``months_ahead`` is negative.
        sqlalchemy.exc.SQLAlchemyError: the database failed (nothing is changed then).
    """
    if engine.dialect.name != "postgresql":
        raise ValueError("partitions need PostgreSQL (SQLite has no table partitioning)")
    if months_ahead < 0:
        raise ValueError("months_ahead must be 0 or more")
    current = _month_start(_utc(now))
    wanted = [current]
    for _ in range(months_ahead):
        wanted.append(_next_month(wanted[-1]))
    with engine.begin() as conn:
        converted, copied = False, 0
        created: list[str] = []
        if not is_partitioned(conn):
            before = set()
            copied, _ = _convert(conn)
            converted = True
        else:
            before = {p[0] for p in partitions(conn)}
        existing = {p[0] for p in partitions(conn)}
        if converted:
            created.extend(sorted(existing - before))
        moved = 0
        for month in wanted:
            name = _partition_name(month)
            if name not in existing:
                moved += _create_month(conn, month, DEFAULT_PARTITION in existing)
                created.append(name)
        if DEFAULT_PARTITION not in existing:
            conn.execute(
                text(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF prompt_executions DEFAULT")
            )
            created.append(DEFAULT_PARTITION)
    return PartitionResult(converted, copied, tuple(created), moved)
