"""Database triggers that keep the statistics of ``prompt_templates`` up to date.

The sink never writes statistics itself: the database does, in the same transaction as the
executions, so they stay equal to the aggregates of ``prompt_executions`` whoever writes
(several processes, a spool replay, a hand-written ``INSERT``, ``UPDATE`` or ``DELETE``,
:func:`~vividly_trace.analytics.reprice`).

PostgreSQL
    A statement-level ``AFTER INSERT`` trigger with a transition table (``REFERENCING NEW
    TABLE``): one batch costs one ``UPDATE`` per template, whatever its size. Rows skipped by
    ``ON CONFLICT DO NOTHING`` are not in the transition table, so replays count nothing
    twice. The template rows are locked in ``id`` order first (``FOR NO KEY UPDATE``, the
    lock the ``UPDATE`` takes anyway, which does not conflict with the ``KEY SHARE`` locks of
    the foreign-key checks), so two batches touching the same templates in a different order
    wait for each other instead of deadlocking. A
    statement-level ``AFTER DELETE`` trigger recomputes the affected templates (retention
    jobs keep the statistics right). A statement-level ``AFTER UPDATE`` trigger (``REFERENCING
    OLD TABLE ... NEW TABLE``, revision 0002) pairs the old and new rows by id, keeps the
    rows whose counted columns changed, and applies their differences new - old to their
    templates (a row moved to another template leaves its old one and joins the new one),
    locking those templates in ``id`` order first, like the insert trigger. ``first_`` and
    ``last_executed_at`` are looked up again (``min``/``max`` on the ``(template_id,
    executed_at)`` index) only for templates whose rows changed ``executed_at`` or
    ``template_id``.

SQLite
    Row-level ``AFTER INSERT``, ``AFTER DELETE`` and ``AFTER UPDATE`` triggers (SQLite has no
    statement-level triggers); an ``INSERT OR IGNORE`` that skips a row fires nothing. The
    update trigger fires only when a counted column changed (its ``WHEN`` clause): a row
    that stays in its template adds new - old to it; a row that moves leaves its old
    template as a delete does and joins its new one as an insert does. ``first_`` and
    ``last_executed_at`` are looked up again (``min``/``max`` on the index) only for a
    template that lost a row or whose row changed ``executed_at``.

The statistics: ``total_executions``, ``successful_executions``, ``failed_executions``,
``total_input_tokens``, ``total_output_tokens``, ``total_tokens`` (sums of the non-null
counts), ``total_cost_usd``, ``total_response_time_ms``, ``avg_response_time_ms``
(``total_response_time_ms / total_executions``), ``first_executed_at``,
``last_executed_at``. The counted columns of ``prompt_executions``: ``template_id``,
``success``, ``input_token_count``, ``output_token_count``, ``total_token_count``,
``cost_usd``, ``response_time_ms``, ``executed_at``. Money adds exactly on both engines:
``NUMERIC`` on PostgreSQL, integer pico-dollars on SQLite (revision 0012, see
:mod:`~vividly_trace.sinks.sql.schema`); the trigger SQL is the same for both units. On
SQLite, ``BEFORE INSERT`` and ``BEFORE UPDATE OF cost_usd`` triggers on the executions and
requests (:func:`create_money_statements`) refuse a fraction, a dollar amount from a writer
older than 0012 or a hand-written statement, which would mix units in the sums.

The Gemini requests of an execution (``prompt_requests``, revision 0003) go with it: on
PostgreSQL through the foreign key's ``ON DELETE CASCADE``; on SQLite, which enforces
foreign keys only on connections that ask for it (``PRAGMA foreign_keys``), a row-level
``AFTER DELETE`` trigger deletes them, whoever deletes the execution. Requests carry no
statistics: the template statistics are per execution, as before.

Migrations are history, so each revision's triggers have their own functions here:
:func:`create_statements` / :func:`drop_statements` are the INSERT and DELETE triggers of
revision 0001, :func:`create_update_statements` / :func:`drop_update_statements` the UPDATE
trigger of revision 0002, :func:`create_request_statements` /
:func:`drop_request_statements` the SQLite trigger deleting requests (revision 0003), and
:func:`head_create_statements` all of them (what ``db upgrade`` leaves in a store). Where
the statistics may be wrong (triggers disabled during a bulk load, a store adopted from
elsewhere), :data:`RECOMPUTE_STATISTICS_SQL` recomputes them all; migrations 0001 and 0002
run it.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

__all__ = [
    "RECOMPUTE_STATISTICS_SQL",
    "create_money_statements",
    "create_request_statements",
    "create_statements",
    "create_update_statements",
    "drop_money_statements",
    "drop_request_statements",
    "drop_statements",
    "drop_update_statements",
    "head_create_statements",
]

_Statements = tuple[str, ...]

RECOMPUTE_STATISTICS_SQL = """
UPDATE prompt_templates SET
    total_executions = (SELECT count(*) FROM prompt_executions e
                        WHERE e.template_id = prompt_templates.id),
    successful_executions = (SELECT count(*) FROM prompt_executions e
                             WHERE e.template_id = prompt_templates.id AND e.success),
    failed_executions = (SELECT count(*) FROM prompt_executions e
                         WHERE e.template_id = prompt_templates.id AND NOT e.success),
    total_input_tokens = (SELECT coalesce(sum(e.input_token_count), 0) FROM prompt_executions e
                          WHERE e.template_id = prompt_templates.id),
    total_output_tokens = (SELECT coalesce(sum(e.output_token_count), 0)
                           FROM prompt_executions e WHERE e.template_id = prompt_templates.id),
    total_tokens = (SELECT coalesce(sum(e.total_token_count), 0) FROM prompt_executions e
                    WHERE e.template_id = prompt_templates.id),
    total_cost_usd = (SELECT coalesce(sum(e.cost_usd), 0) FROM prompt_executions e
                      WHERE e.template_id = prompt_templates.id),
    total_response_time_ms = (SELECT coalesce(sum(e.response_time_ms), 0)
                              FROM prompt_executions e WHERE e.template_id = prompt_templates.id),
    avg_response_time_ms = (SELECT avg(e.response_time_ms) FROM prompt_executions e
                            WHERE e.template_id = prompt_templates.id),
    first_executed_at = (SELECT min(e.executed_at) FROM prompt_executions e
                         WHERE e.template_id = prompt_templates.id),
    last_executed_at = (SELECT max(e.executed_at) FROM prompt_executions e
                        WHERE e.template_id = prompt_templates.id)
"""

_PG_INSERT_FUNCTION = """
CREATE OR REPLACE FUNCTION vividly_trace_stats_after_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM prompt_templates
     WHERE id IN (SELECT DISTINCT template_id FROM vividly_trace_new_executions)
     ORDER BY id
       FOR NO KEY UPDATE;
    UPDATE prompt_templates AS t SET
        total_executions = t.total_executions + s.n,
        successful_executions = t.successful_executions + s.ok,
        failed_executions = t.failed_executions + (s.n - s.ok),
        total_input_tokens = t.total_input_tokens + s.input_tokens,
        total_output_tokens = t.total_output_tokens + s.output_tokens,
        total_tokens = t.total_tokens + s.tokens,
        total_cost_usd = t.total_cost_usd + s.cost,
        total_response_time_ms = t.total_response_time_ms + s.response_time,
        avg_response_time_ms = (t.total_response_time_ms + s.response_time)
                               / (t.total_executions + s.n),
        first_executed_at = LEAST(t.first_executed_at, s.first_at),
        last_executed_at = GREATEST(t.last_executed_at, s.last_at)
    FROM (
        SELECT template_id,
               count(*) AS n,
               count(*) FILTER (WHERE success) AS ok,
               coalesce(sum(input_token_count), 0) AS input_tokens,
               coalesce(sum(output_token_count), 0) AS output_tokens,
               coalesce(sum(total_token_count), 0) AS tokens,
               coalesce(sum(cost_usd), 0) AS cost,
               sum(response_time_ms) AS response_time,
               min(executed_at) AS first_at,
               max(executed_at) AS last_at
          FROM vividly_trace_new_executions
         GROUP BY template_id
    ) AS s
    WHERE t.id = s.template_id;
    RETURN NULL;
END;
$$
"""

_PG_DELETE_FUNCTION = """
CREATE OR REPLACE FUNCTION vividly_trace_stats_after_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM prompt_templates
     WHERE id IN (SELECT DISTINCT template_id FROM vividly_trace_old_executions)
     ORDER BY id
       FOR NO KEY UPDATE;
    UPDATE prompt_templates AS t SET
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
        SELECT k.template_id,
               count(e.id) AS n,
               count(e.id) FILTER (WHERE e.success) AS ok,
               coalesce(sum(e.input_token_count), 0) AS input_tokens,
               coalesce(sum(e.output_token_count), 0) AS output_tokens,
               coalesce(sum(e.total_token_count), 0) AS tokens,
               coalesce(sum(e.cost_usd), 0) AS cost,
               coalesce(sum(e.response_time_ms), 0) AS response_time,
               min(e.executed_at) AS first_at,
               max(e.executed_at) AS last_at
          FROM (SELECT DISTINCT template_id FROM vividly_trace_old_executions) AS k
          LEFT JOIN prompt_executions AS e ON e.template_id = k.template_id
         GROUP BY k.template_id
    ) AS s
    WHERE t.id = s.template_id;
    RETURN NULL;
END;
$$
"""

# The UPDATE trigger pairs each row before (o) with itself after (n) by id (a row whose id
# changed pairs with nothing) and keeps the pairs whose counted columns differ. A pair that
# stays in its template adds n - o to it (exactly 0 for an unchanged value: an unchanged
# response time adds nothing to the floating-point sum); any other takes o out of its old
# template and adds n to its new one.
_PG_CHANGED_PAIRS = """
          FROM vividly_trace_old_executions AS o
          FULL JOIN vividly_trace_new_executions AS n ON n.id = o.id"""
_PG_CHANGED = """
         WHERE (o.template_id, o.success, o.input_token_count, o.output_token_count,
                o.total_token_count, o.cost_usd, o.response_time_ms, o.executed_at)
               IS DISTINCT FROM
               (n.template_id, n.success, n.input_token_count, n.output_token_count,
                n.total_token_count, n.cost_usd, n.response_time_ms, n.executed_at)"""

_PG_UPDATE_FUNCTION = f"""
CREATE OR REPLACE FUNCTION vividly_trace_stats_after_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM prompt_templates
     WHERE id IN (
        SELECT unnest(ARRAY[o.template_id, n.template_id]){_PG_CHANGED_PAIRS}{_PG_CHANGED})
     ORDER BY id
       FOR NO KEY UPDATE;
    UPDATE prompt_templates AS t SET
        total_executions = t.total_executions + d.n,
        successful_executions = t.successful_executions + d.ok,
        failed_executions = t.failed_executions + (d.n - d.ok),
        total_input_tokens = t.total_input_tokens + d.input_tokens,
        total_output_tokens = t.total_output_tokens + d.output_tokens,
        total_tokens = t.total_tokens + d.tokens,
        total_cost_usd = t.total_cost_usd + d.cost,
        total_response_time_ms = t.total_response_time_ms + d.response_time,
        avg_response_time_ms = CASE WHEN t.total_executions + d.n > 0
            THEN (t.total_response_time_ms + d.response_time) / (t.total_executions + d.n) END,
        first_executed_at = CASE WHEN d.moved
            THEN (SELECT min(e.executed_at) FROM prompt_executions AS e
                   WHERE e.template_id = t.id)
            ELSE t.first_executed_at END,
        last_executed_at = CASE WHEN d.moved
            THEN (SELECT max(e.executed_at) FROM prompt_executions AS e
                   WHERE e.template_id = t.id)
            ELSE t.last_executed_at END
    FROM (
        SELECT c.template_id,
               sum(c.n) AS n,
               sum(c.ok) AS ok,
               sum(c.input_tokens) AS input_tokens,
               sum(c.output_tokens) AS output_tokens,
               sum(c.tokens) AS tokens,
               sum(c.cost) AS cost,
               sum(c.response_time) AS response_time,
               bool_or(c.moved) AS moved{_PG_CHANGED_PAIRS}
         CROSS JOIN LATERAL (
            SELECT n.template_id, 0, n.success::int - o.success::int,
                   coalesce(n.input_token_count, 0) - coalesce(o.input_token_count, 0),
                   coalesce(n.output_token_count, 0) - coalesce(o.output_token_count, 0),
                   coalesce(n.total_token_count, 0) - coalesce(o.total_token_count, 0),
                   coalesce(n.cost_usd, 0) - coalesce(o.cost_usd, 0),
                   n.response_time_ms - o.response_time_ms,
                   n.executed_at <> o.executed_at
             WHERE n.template_id = o.template_id
            UNION ALL
            SELECT o.template_id, -1, -o.success::int, -coalesce(o.input_token_count, 0),
                   -coalesce(o.output_token_count, 0), -coalesce(o.total_token_count, 0),
                   -coalesce(o.cost_usd, 0), -o.response_time_ms, TRUE
             WHERE o.id IS NOT NULL AND n.template_id IS DISTINCT FROM o.template_id
            UNION ALL
            SELECT n.template_id, 1, n.success::int, coalesce(n.input_token_count, 0),
                   coalesce(n.output_token_count, 0), coalesce(n.total_token_count, 0),
                   coalesce(n.cost_usd, 0), n.response_time_ms, TRUE
             WHERE n.id IS NOT NULL AND n.template_id IS DISTINCT FROM o.template_id
         ) AS c (template_id, n, ok, input_tokens, output_tokens, tokens, cost, response_time,
                 moved){_PG_CHANGED}
         GROUP BY c.template_id
    ) AS d
    WHERE t.id = d.template_id;
    RETURN NULL;
END;
$$
"""

_PG_CREATE = (
    _PG_INSERT_FUNCTION,
    _PG_DELETE_FUNCTION,
    """
CREATE TRIGGER trg_prompt_executions_stats_insert
AFTER INSERT ON prompt_executions
REFERENCING NEW TABLE AS vividly_trace_new_executions
FOR EACH STATEMENT EXECUTE FUNCTION vividly_trace_stats_after_insert()
""",
    """
CREATE TRIGGER trg_prompt_executions_stats_delete
AFTER DELETE ON prompt_executions
REFERENCING OLD TABLE AS vividly_trace_old_executions
FOR EACH STATEMENT EXECUTE FUNCTION vividly_trace_stats_after_delete()
""",
)

_PG_DROP = (
    "DROP TRIGGER IF EXISTS trg_prompt_executions_stats_delete ON prompt_executions",
    "DROP TRIGGER IF EXISTS trg_prompt_executions_stats_insert ON prompt_executions",
    "DROP FUNCTION IF EXISTS vividly_trace_stats_after_delete()",
    "DROP FUNCTION IF EXISTS vividly_trace_stats_after_insert()",
)

_PG_CREATE_UPDATE = (
    _PG_UPDATE_FUNCTION,
    """
CREATE TRIGGER trg_prompt_executions_stats_update
AFTER UPDATE ON prompt_executions
REFERENCING OLD TABLE AS vividly_trace_old_executions NEW TABLE AS vividly_trace_new_executions
FOR EACH STATEMENT EXECUTE FUNCTION vividly_trace_stats_after_update()
""",
)

_PG_DROP_UPDATE = (
    "DROP TRIGGER IF EXISTS trg_prompt_executions_stats_update ON prompt_executions",
    "DROP FUNCTION IF EXISTS vividly_trace_stats_after_update()",
)

# SQLite compares the timestamps as text: they are all written as
# 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC), which sorts chronologically.
_SQLITE_CREATE = (
    """
CREATE TRIGGER trg_prompt_executions_stats_insert
AFTER INSERT ON prompt_executions
FOR EACH ROW BEGIN
    UPDATE prompt_templates SET
        total_executions = total_executions + 1,
        successful_executions = successful_executions + (CASE WHEN NEW.success THEN 1 ELSE 0 END),
        failed_executions = failed_executions + (CASE WHEN NEW.success THEN 0 ELSE 1 END),
        total_input_tokens = total_input_tokens + coalesce(NEW.input_token_count, 0),
        total_output_tokens = total_output_tokens + coalesce(NEW.output_token_count, 0),
        total_tokens = total_tokens + coalesce(NEW.total_token_count, 0),
        total_cost_usd = total_cost_usd + coalesce(NEW.cost_usd, 0),
        total_response_time_ms = total_response_time_ms + NEW.response_time_ms,
        avg_response_time_ms = (total_response_time_ms + NEW.response_time_ms)
                               / (total_executions + 1),
        first_executed_at = CASE
            WHEN first_executed_at IS NULL OR NEW.executed_at < first_executed_at
            THEN NEW.executed_at ELSE first_executed_at END,
        last_executed_at = CASE
            WHEN last_executed_at IS NULL OR NEW.executed_at > last_executed_at
            THEN NEW.executed_at ELSE last_executed_at END
    WHERE id = NEW.template_id;
END
""",
    """
CREATE TRIGGER trg_prompt_executions_stats_delete
AFTER DELETE ON prompt_executions
FOR EACH ROW BEGIN
    UPDATE prompt_templates SET
        total_executions = total_executions - 1,
        successful_executions = successful_executions - (CASE WHEN OLD.success THEN 1 ELSE 0 END),
        failed_executions = failed_executions - (CASE WHEN OLD.success THEN 0 ELSE 1 END),
        total_input_tokens = total_input_tokens - coalesce(OLD.input_token_count, 0),
        total_output_tokens = total_output_tokens - coalesce(OLD.output_token_count, 0),
        total_tokens = total_tokens - coalesce(OLD.total_token_count, 0),
        total_cost_usd = total_cost_usd - coalesce(OLD.cost_usd, 0),
        total_response_time_ms = total_response_time_ms - OLD.response_time_ms,
        avg_response_time_ms = CASE WHEN total_executions > 1
            THEN (total_response_time_ms - OLD.response_time_ms) / (total_executions - 1) END,
        first_executed_at = (SELECT min(e.executed_at) FROM prompt_executions e
                             WHERE e.template_id = OLD.template_id),
        last_executed_at = (SELECT max(e.executed_at) FROM prompt_executions e
                            WHERE e.template_id = OLD.template_id)
    WHERE id = OLD.template_id;
END
""",
)

_SQLITE_DROP = (
    "DROP TRIGGER IF EXISTS trg_prompt_executions_stats_delete",
    "DROP TRIGGER IF EXISTS trg_prompt_executions_stats_insert",
)

# Three UPDATEs of one row each, of which one or two apply: a row that stays in its template
# adds NEW - OLD to it; a row that moves leaves its old template (as a DELETE does) and joins
# its new one (as an INSERT does). The WHEN clause skips updates that change no counted
# column (IS NOT: the null-safe "differs").
_SQLITE_CREATE_UPDATE = (
    """
CREATE TRIGGER trg_prompt_executions_stats_update
AFTER UPDATE ON prompt_executions
FOR EACH ROW WHEN NEW.template_id IS NOT OLD.template_id
    OR NEW.success IS NOT OLD.success
    OR NEW.input_token_count IS NOT OLD.input_token_count
    OR NEW.output_token_count IS NOT OLD.output_token_count
    OR NEW.total_token_count IS NOT OLD.total_token_count
    OR NEW.cost_usd IS NOT OLD.cost_usd
    OR NEW.response_time_ms IS NOT OLD.response_time_ms
    OR NEW.executed_at IS NOT OLD.executed_at
BEGIN
    UPDATE prompt_templates SET
        successful_executions = successful_executions
            + (CASE WHEN NEW.success THEN 1 ELSE 0 END) - (CASE WHEN OLD.success THEN 1 ELSE 0 END),
        failed_executions = failed_executions
            + (CASE WHEN NEW.success THEN 0 ELSE 1 END) - (CASE WHEN OLD.success THEN 0 ELSE 1 END),
        total_input_tokens = total_input_tokens
            + coalesce(NEW.input_token_count, 0) - coalesce(OLD.input_token_count, 0),
        total_output_tokens = total_output_tokens
            + coalesce(NEW.output_token_count, 0) - coalesce(OLD.output_token_count, 0),
        total_tokens = total_tokens
            + coalesce(NEW.total_token_count, 0) - coalesce(OLD.total_token_count, 0),
        total_cost_usd = total_cost_usd
            + (coalesce(NEW.cost_usd, 0) - coalesce(OLD.cost_usd, 0)),
        total_response_time_ms = total_response_time_ms
            + (NEW.response_time_ms - OLD.response_time_ms),
        avg_response_time_ms = (total_response_time_ms
            + (NEW.response_time_ms - OLD.response_time_ms)) / total_executions,
        first_executed_at = CASE WHEN NEW.executed_at IS OLD.executed_at THEN first_executed_at
            ELSE (SELECT min(e.executed_at) FROM prompt_executions e
                   WHERE e.template_id = NEW.template_id) END,
        last_executed_at = CASE WHEN NEW.executed_at IS OLD.executed_at THEN last_executed_at
            ELSE (SELECT max(e.executed_at) FROM prompt_executions e
                   WHERE e.template_id = NEW.template_id) END
    WHERE id = NEW.template_id AND NEW.template_id IS OLD.template_id;
    UPDATE prompt_templates SET
        total_executions = total_executions - 1,
        successful_executions = successful_executions - (CASE WHEN OLD.success THEN 1 ELSE 0 END),
        failed_executions = failed_executions - (CASE WHEN OLD.success THEN 0 ELSE 1 END),
        total_input_tokens = total_input_tokens - coalesce(OLD.input_token_count, 0),
        total_output_tokens = total_output_tokens - coalesce(OLD.output_token_count, 0),
        total_tokens = total_tokens - coalesce(OLD.total_token_count, 0),
        total_cost_usd = total_cost_usd - coalesce(OLD.cost_usd, 0),
        total_response_time_ms = total_response_time_ms - OLD.response_time_ms,
        avg_response_time_ms = CASE WHEN total_executions > 1
            THEN (total_response_time_ms - OLD.response_time_ms) / (total_executions - 1) END,
        first_executed_at = (SELECT min(e.executed_at) FROM prompt_executions e
                             WHERE e.template_id = OLD.template_id),
        last_executed_at = (SELECT max(e.executed_at) FROM prompt_executions e
                            WHERE e.template_id = OLD.template_id)
    WHERE id = OLD.template_id AND NEW.template_id IS NOT OLD.template_id;
    UPDATE prompt_templates SET
        total_executions = total_executions + 1,
        successful_executions = successful_executions + (CASE WHEN NEW.success THEN 1 ELSE 0 END),
        failed_executions = failed_executions + (CASE WHEN NEW.success THEN 0 ELSE 1 END),
        total_input_tokens = total_input_tokens + coalesce(NEW.input_token_count, 0),
        total_output_tokens = total_output_tokens + coalesce(NEW.output_token_count, 0),
        total_tokens = total_tokens + coalesce(NEW.total_token_count, 0),
        total_cost_usd = total_cost_usd + coalesce(NEW.cost_usd, 0),
        total_response_time_ms = total_response_time_ms + NEW.response_time_ms,
        avg_response_time_ms = (total_response_time_ms + NEW.response_time_ms)
                               / (total_executions + 1),
        first_executed_at = CASE
            WHEN first_executed_at IS NULL OR NEW.executed_at < first_executed_at
            THEN NEW.executed_at ELSE first_executed_at END,
        last_executed_at = CASE
            WHEN last_executed_at IS NULL OR NEW.executed_at > last_executed_at
            THEN NEW.executed_at ELSE last_executed_at END
    WHERE id = NEW.template_id AND NEW.template_id IS NOT OLD.template_id;
END
""",
)

_SQLITE_DROP_UPDATE = ("DROP TRIGGER IF EXISTS trg_prompt_executions_stats_update",)

_SQLITE_CREATE_REQUESTS = (
    """
CREATE TRIGGER trg_prompt_executions_delete_requests
AFTER DELETE ON prompt_executions
FOR EACH ROW BEGIN
    DELETE FROM prompt_requests WHERE execution_id = OLD.id;
END
""",
)
_SQLITE_DROP_REQUESTS = ("DROP TRIGGER IF EXISTS trg_prompt_executions_delete_requests",)


# Revision 0012 (SQLite only): money columns hold integer pico-dollars. A fraction there can
# only be a dollar amount (a writer older than 0012, a hand-written statement): refused, so
# the sums never mix units. A double of 2**63 or more is a pico-dollar amount beyond 64-bit
# integers (schema.to_sqlite_money), allowed.
_MONEY_TABLES = ("prompt_executions", "prompt_requests")
_MONEY_EVENTS = ("insert", "update")
_MONEY_REFUSAL = (
    "vividly_trace: cost_usd on SQLite is an integer number of pico-dollars (USD x 10^12) "
    "since schema revision 0012"
)


def _money_guard(table: str, event: str) -> str:
    of = " OF cost_usd" if event == "update" else ""
    return f"""
CREATE TRIGGER trg_{table}_money_{event}
BEFORE {event.upper()}{of} ON {table}
FOR EACH ROW WHEN typeof(NEW.cost_usd) NOT IN ('integer', 'null')
    AND NOT (typeof(NEW.cost_usd) = 'real' AND abs(NEW.cost_usd) >= 9223372036854775808.0)
BEGIN
    SELECT RAISE(ABORT, '{_MONEY_REFUSAL}');
END
"""


_SQLITE_CREATE_MONEY = tuple(_money_guard(t, e) for t in _MONEY_TABLES for e in _MONEY_EVENTS)
_SQLITE_DROP_MONEY = tuple(
    f"DROP TRIGGER IF EXISTS trg_{t}_money_{e}" for t in _MONEY_TABLES for e in _MONEY_EVENTS
)


def _pick(dialect_name: str, postgresql: _Statements, sqlite: _Statements) -> _Statements:
    if dialect_name == "postgresql":
        return postgresql
    if dialect_name == "sqlite":
        return sqlite
    raise ValueError(f"no statistics triggers for the {dialect_name!r} dialect")


def create_statements(dialect_name: str) -> tuple[str, ...]:
    """The DDL creating the INSERT and DELETE statistics triggers (revision 0001) on
    ``dialect_name`` (``postgresql``/``sqlite``); :func:`head_create_statements` for all."""
    return _pick(dialect_name, _PG_CREATE, _SQLITE_CREATE)


def drop_statements(dialect_name: str) -> tuple[str, ...]:
    """The DDL dropping what :func:`create_statements` creates."""
    return _pick(dialect_name, _PG_DROP, _SQLITE_DROP)


def create_update_statements(dialect_name: str) -> tuple[str, ...]:
    """The DDL creating the UPDATE statistics trigger (revision 0002) on ``dialect_name``."""
    return _pick(dialect_name, _PG_CREATE_UPDATE, _SQLITE_CREATE_UPDATE)


def drop_update_statements(dialect_name: str) -> tuple[str, ...]:
    """The DDL dropping what :func:`create_update_statements` creates."""
    return _pick(dialect_name, _PG_DROP_UPDATE, _SQLITE_DROP_UPDATE)


def create_request_statements(dialect_name: str) -> tuple[str, ...]:
    """The DDL creating the trigger that deletes an execution's requests with it (revision
    0003; SQLite only: PostgreSQL's foreign key cascades)."""
    return _pick(dialect_name, (), _SQLITE_CREATE_REQUESTS)


def drop_request_statements(dialect_name: str) -> tuple[str, ...]:
    """The DDL dropping what :func:`create_request_statements` creates."""
    return _pick(dialect_name, (), _SQLITE_DROP_REQUESTS)


def create_money_statements(dialect_name: str) -> tuple[str, ...]:
    """The DDL creating the triggers that refuse a dollar amount (a fraction) in a money
    column (revision 0012; SQLite only: PostgreSQL keeps ``NUMERIC`` dollars)."""
    return _pick(dialect_name, (), _SQLITE_CREATE_MONEY)


def drop_money_statements(dialect_name: str) -> tuple[str, ...]:
    """The DDL dropping what :func:`create_money_statements` creates."""
    return _pick(dialect_name, (), _SQLITE_DROP_MONEY)


def head_create_statements(dialect_name: str) -> tuple[str, ...]:
    """The DDL creating every trigger of the newest revision (what ``db upgrade`` leaves
    in a store) on ``dialect_name``."""
    return (
        create_statements(dialect_name)
        + create_update_statements(dialect_name)
        + create_request_statements(dialect_name)
        + create_money_statements(dialect_name)
    )
