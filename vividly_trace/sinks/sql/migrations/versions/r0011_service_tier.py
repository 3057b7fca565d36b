"""Service tier: the tier that priced each execution.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03

Adds the nullable column ``prompt_executions.service_tier`` (``standard``, ``flex``,
``priority``, ``batch``, ``provisioned``: what the request asked for or the answer said
served it; see :class:`vividly_trace.PromptExecution`), which ``reprice`` reads to price a
stored call at its tier. Like the earlier revisions it keeps what is there already (a store
created from ``schema.metadata``). Existing executions keep ``NULL``: priced as standard.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _columns() -> set[str]:
    return {c["name"] for c in sa.inspect(op.get_bind()).get_columns("prompt_executions")}


def upgrade() -> None:
    """Add the column (where missing)."""
    if "service_tier" not in _columns():
        op.add_column("prompt_executions", sa.Column("service_tier", sa.Text(), nullable=True))


def downgrade() -> None:
    """Drop the column (its values are lost)."""
    if "service_tier" in _columns():
        op.drop_column("prompt_executions", "service_tier")
