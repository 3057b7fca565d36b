"""The Gemini requests of each execution, and the content columns.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

Adds the child table ``prompt_requests`` (one row per Gemini request client capture saw,
failed ones included; key ``(execution_id, seq)``, deleted with its execution) with its
index for by-model and by-day queries, the partial index on
``prompt_executions.parent_execution_id`` the roll-up of nested calls walks, and the
nullable columns ``prompt_executions.prompt_text`` and ``response_text``. Like 0001 and
0002 it keeps what is there already (a store created from ``schema.metadata``). Existing
executions get no request rows: reports count them under their own ``model``. The
statistics triggers are untouched (requests carry no template statistics).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from vividly_trace.sinks.sql import triggers

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TEXT_COLUMNS = ("prompt_text", "response_text")
_PARENT_INDEX = "ix_prompt_executions_parent_execution_id"
_PARENT_WHERE = "parent_execution_id IS NOT NULL"
_REQUESTS_INDEX = "ix_prompt_requests_started_at_model"


def _columns() -> set[str]:
    return {c["name"] for c in sa.inspect(op.get_bind()).get_columns("prompt_executions")}


def _indexes(table: str) -> set[str]:
    return {str(i["name"]) for i in sa.inspect(op.get_bind()).get_indexes(table)}


def _create_requests() -> None:
    op.create_table(
        "prompt_requests",
        sa.Column("execution_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("operation", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=True),
        sa.Column("response_model", sa.Text(), nullable=True),
        sa.Column("input_token_count", sa.BigInteger(), nullable=True),
        sa.Column("output_token_count", sa.BigInteger(), nullable=True),
        sa.Column("total_token_count", sa.BigInteger(), nullable=True),
        sa.Column("cached_token_count", sa.BigInteger(), nullable=True),
        sa.Column("thinking_token_count", sa.BigInteger(), nullable=True),
        sa.Column("tool_use_token_count", sa.BigInteger(), nullable=True),
        sa.Column("audio_input_token_count", sa.BigInteger(), nullable=True),
        sa.Column("cached_audio_token_count", sa.BigInteger(), nullable=True),
        sa.Column("cost_usd", sa.Numeric(), nullable=True),
        sa.Column("response_time_ms", sa.Double(), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("error_type", sa.Text(), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("finish_reason", sa.Text(), nullable=True),
        sa.Column("streamed", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["prompt_executions.id"],
            ondelete="CASCADE",
            name="fk_prompt_requests_execution_id_prompt_executions",
        ),
        sa.PrimaryKeyConstraint("execution_id", "seq", name="pk_prompt_requests"),
    )


def upgrade() -> None:
    """Add the table, its index, the parent index and the content columns (where missing),
    and (SQLite) the trigger deleting an execution's requests with it."""
    bind = op.get_bind()
    columns = _columns()
    for name in _TEXT_COLUMNS:
        if name not in columns:
            op.add_column("prompt_executions", sa.Column(name, sa.Text(), nullable=True))
    if _PARENT_INDEX not in _indexes("prompt_executions"):
        op.create_index(
            _PARENT_INDEX,
            "prompt_executions",
            ["parent_execution_id"],
            postgresql_where=sa.text(_PARENT_WHERE),
            sqlite_where=sa.text(_PARENT_WHERE),
        )
    if not sa.inspect(bind).has_table("prompt_requests"):
        _create_requests()
    if _REQUESTS_INDEX not in _indexes("prompt_requests"):
        op.create_index(_REQUESTS_INDEX, "prompt_requests", ["started_at", "model"])
    dialect = bind.dialect.name
    for statement in triggers.drop_request_statements(dialect):
        op.execute(statement)
    for statement in triggers.create_request_statements(dialect):
        op.execute(statement)


def downgrade() -> None:
    """Drop the table (its rows are lost), the trigger, the parent index and the content
    columns (their values are lost)."""
    for statement in triggers.drop_request_statements(op.get_bind().dialect.name):
        op.execute(statement)
    op.drop_table("prompt_requests")
    if _PARENT_INDEX in _indexes("prompt_executions"):
        op.drop_index(_PARENT_INDEX, table_name="prompt_executions")
    columns = _columns()
    for name in reversed(_TEXT_COLUMNS):
        if name in columns:
            op.drop_column("prompt_executions", name)
