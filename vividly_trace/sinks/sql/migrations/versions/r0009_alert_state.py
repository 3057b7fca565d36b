"""Alert state: one row per alert fired, per rule, subject and window.

Revision ID: 0009
Revises: 0005
Create Date: 2026-12-03

Adds the table ``alert_state`` (key ``(rule, subject, window_start)``), which
:mod:`vividly_trace.alerts` writes: firing is an insert that does nothing when the row
is there already, so an alert fires once per window across processes and cron runs, and
the row keeps its delivery state until the webhook answered. Like the earlier revisions
it keeps what is there already (a store created from ``schema.metadata``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0009"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the table (where missing)."""
    if sa.inspect(op.get_bind()).has_table("alert_state"):
        return
    op.create_table(
        "alert_state",
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("payload", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("rule", "subject", "window_start", name="pk_alert_state"),
    )


def downgrade() -> None:
    """Drop the table (the alert history is lost: alerts may fire again)."""
    op.drop_table("alert_state")
