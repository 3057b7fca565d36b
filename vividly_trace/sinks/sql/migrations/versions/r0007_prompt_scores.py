"""Scores: the ``prompt_scores`` table.

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-03

One row per score of an execution, name and source (:func:`vividly_trace.score`), with no
foreign key to ``prompt_executions`` (a score may arrive before its execution's row), and
an index on ``(name, updated_at)`` for the reports. Like the earlier revisions it keeps
what is there already (a store created from ``schema.metadata``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from vividly_trace.sinks.sql.schema import prompt_scores

revision: str = "0007"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the table and its index (where missing)."""
    bind = op.get_bind()
    prompt_scores.create(bind, checkfirst=True)
    for index in prompt_scores.indexes:
        index.create(bind, checkfirst=True)


def downgrade() -> None:
    """Drop the table (its scores are lost)."""
    if sa.inspect(op.get_bind()).has_table("prompt_scores"):
        op.drop_table("prompt_scores")
