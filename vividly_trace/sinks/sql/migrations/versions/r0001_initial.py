"""The initial SQL store: prompt_templates, prompt_executions, statistics triggers.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Tables that already exist (created by ``metadata.create_all`` or by hand with the same
layout) are kept; the statistics triggers are always (re)created and the statistics
recomputed, so adopting such a database leaves it consistent.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from vividly_trace.sinks.sql import triggers

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _create_templates() -> None:
    op.create_table(
        "prompt_templates",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.Text(), nullable=False, comment="the template key"),
        sa.Column("version", sa.Text(), nullable=True),
        sa.Column("ab_test_group", sa.Text(), nullable=True),
        sa.Column("model", sa.Text(), nullable=True),
        sa.Column("template_text", sa.Text(), nullable=True),
        sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("total_executions", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "successful_executions", sa.BigInteger(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column(
            "failed_executions", sa.BigInteger(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column(
            "total_input_tokens", sa.BigInteger(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column(
            "total_output_tokens", sa.BigInteger(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("total_tokens", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("total_cost_usd", sa.Numeric(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "total_response_time_ms", sa.Double(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("avg_response_time_ms", sa.Double(), nullable=True),
        sa.Column("first_executed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_executed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_prompt_templates"),
    )
    op.create_index(
        "uq_prompt_templates_name_version_ab_test_group",
        "prompt_templates",
        ["name", sa.text("coalesce(version, '')"), sa.text("coalesce(ab_test_group, '')")],
        unique=True,
    )


def _create_executions() -> None:
    op.create_table(
        "prompt_executions",
        sa.Column("id", sa.String(64), nullable=False, comment="the execution id (UUIDv7 text)"),
        sa.Column("template_id", sa.Integer(), nullable=False),
        sa.Column("template_name", sa.Text(), nullable=False),
        sa.Column("template_version", sa.Text(), nullable=True),
        sa.Column("template_ab_test_group", sa.Text(), nullable=True),
        sa.Column("executed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("response_time_ms", sa.Double(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=True),
        sa.Column("model", sa.Text(), nullable=True),
        sa.Column("response_model", sa.Text(), nullable=True),
        sa.Column("input_token_count", sa.BigInteger(), nullable=True),
        sa.Column("output_token_count", sa.BigInteger(), nullable=True),
        sa.Column("total_token_count", sa.BigInteger(), nullable=True),
        sa.Column("cached_token_count", sa.BigInteger(), nullable=True),
        sa.Column("thinking_token_count", sa.BigInteger(), nullable=True),
        sa.Column("tool_use_token_count", sa.BigInteger(), nullable=True),
        sa.Column("audio_input_token_count", sa.BigInteger(), nullable=True),
        sa.Column("cost_usd", sa.Numeric(), nullable=True),
        sa.Column("pricing_version", sa.Text(), nullable=True),
        sa.Column("error_type", sa.Text(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("finish_reason", sa.Text(), nullable=True),
        sa.Column("streamed", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("stream_closed_early", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("time_to_first_chunk_ms", sa.Double(), nullable=True),
        sa.Column("parent_execution_id", sa.String(64), nullable=True),
        sa.Column("metadata", _JSON, nullable=True),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["prompt_templates.id"],
            ondelete="CASCADE",
            name="fk_prompt_executions_template_id_prompt_templates",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_prompt_executions"),
    )
    op.create_index(
        "ix_prompt_executions_template_id_executed_at",
        "prompt_executions",
        ["template_id", "executed_at"],
    )
    op.create_index(
        "ix_prompt_executions_template_name_executed_at",
        "prompt_executions",
        ["template_name", "executed_at"],
    )
    op.create_index("ix_prompt_executions_executed_at", "prompt_executions", ["executed_at"])


def upgrade() -> None:
    """Create the tables (where missing), the statistics triggers, and fill the statistics."""
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    if not inspector.has_table("prompt_templates"):
        _create_templates()
    if not inspector.has_table("prompt_executions"):
        _create_executions()
    dialect = bind.dialect.name
    for statement in triggers.drop_statements(dialect):
        op.execute(statement)
    for statement in triggers.create_statements(dialect):
        op.execute(statement)
    op.execute(triggers.RECOMPUTE_STATISTICS_SQL)


def downgrade() -> None:
    """Drop the triggers and both tables."""
    for statement in triggers.drop_statements(op.get_bind().dialect.name):
        op.execute(statement)
    op.drop_table("prompt_executions")
    op.drop_table("prompt_templates")
