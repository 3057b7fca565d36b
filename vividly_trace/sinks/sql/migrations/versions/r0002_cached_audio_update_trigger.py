"""Cached audio tokens, and the UPDATE trigger of the template statistics.

Revision ID: 0002
Revises: 0001
Create Date: 2026-08-10

Adds the nullable column ``prompt_executions.cached_audio_token_count`` (kept if it is
there already, as in tables created from ``schema.metadata``) and the ``AFTER UPDATE``
statistics trigger, then recomputes the statistics, which an ``UPDATE`` made before this
revision may have left behind the executions.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from vividly_trace.sinks.sql import triggers

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMN = "cached_audio_token_count"


def _has_column() -> bool:
    columns = sa.inspect(op.get_bind()).get_columns("prompt_executions")
    return any(c["name"] == _COLUMN for c in columns)


def upgrade() -> None:
    """Add the column (where missing) and the UPDATE trigger; fill the statistics."""
    if not _has_column():
        op.add_column("prompt_executions", sa.Column(_COLUMN, sa.BigInteger(), nullable=True))
    dialect = op.get_bind().dialect.name
    for statement in triggers.drop_update_statements(dialect):
        op.execute(statement)
    for statement in triggers.create_update_statements(dialect):
        op.execute(statement)
    op.execute(triggers.RECOMPUTE_STATISTICS_SQL)


def downgrade() -> None:
    """Drop the UPDATE trigger and the column (its values are lost)."""
    for statement in triggers.drop_update_statements(op.get_bind().dialect.name):
        op.execute(statement)
    if _has_column():
        op.drop_column("prompt_executions", _COLUMN)
