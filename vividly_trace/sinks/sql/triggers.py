"""Database triggers that keep the statistics of ``prompt_templates`` up to date.

The sink never writes statistics itself: the database does, in the same transaction as the
executions, so they stay equal to the aggregates of ``prompt_executions`` whoever writes
(several processes, a spool replay, a hand-written ``INSERT``).

PostgreSQL
    A statement-level ``AFTER INSERT`` trigger with a transition table (``REFERENCING NEW
    TABLE``): one batch costs one ``UPDATE`` per template, whatever its size. Rows skipped by
    ``ON CONFLICT DO NOTHING`` are not in the transition table, so replays count nothing
    twice. The template rows are locked in ``id`` order first (``FOR NO KEY UPDATE``, the
    lock the ``UPDATE`` takes anyway, which does not conflict with the ``KEY SHARE`` locks of
    the foreign-key checks), so two batches touching the same templates in a different order
    wait for each other instead of deadlocking. A
    statement-level ``AFTER DELETE`` trigger recomputes the affected templates (retention
    jobs keep the statistics right).

SQLite
    Row-level ``AFTER INSERT`` and ``AFTER DELETE`` triggers (SQLite has no statement-level
    triggers); an ``INSERT OR IGNORE`` that skips a row fires nothing.

The statistics: ``total_executions``, ``successful_executions``, ``failed_executions``,
``total_input_tokens``, ``total_output_tokens``, ``total_tokens`` (sums of the non-null
counts), ``total_cost_usd``, ``total_response_time_ms``, ``avg_response_time_ms``
(``total_response_time_ms / total_executions``), ``first_executed_at``,
``last_executed_at``.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

__all__ = [
    "RECOMPUTE_STATISTICS_SQL",
    "create_statements",
    "drop_statements",
]

# Recompute every template's statistics from prompt_executions (repair, and tests).
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


def create_statements(dialect_name: str) -> tuple[str, ...]:
    """The DDL creating the statistics triggers on ``dialect_name`` (``postgresql``/``sqlite``)."""
    if dialect_name == "postgresql":
        return _PG_CREATE
    if dialect_name == "sqlite":
        return _SQLITE_CREATE
    raise ValueError(f"no statistics triggers for the {dialect_name!r} dialect")


def drop_statements(dialect_name: str) -> tuple[str, ...]:
    """The DDL dropping what :func:`create_statements` creates."""
    if dialect_name == "postgresql":
        return _PG_DROP
    if dialect_name == "sqlite":
        return _SQLITE_DROP
    raise ValueError(f"no statistics triggers for the {dialect_name!r} dialect")
