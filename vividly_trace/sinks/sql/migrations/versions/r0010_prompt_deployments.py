"""Prompts served from the store: a version's config, a key's labels and rollout.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03

Adds the nullable column ``prompt_templates.config`` (the JSON object pushed with a prompt
version) and the table ``prompt_deployments`` (key ``name``: a prompt key's ``labels``,
label -> version, and its rollout, ``weights`` and ``control``), which
:mod:`vividly_trace.prompts` writes and reads. Like the earlier revisions it keeps what is
there already (a store created from ``schema.metadata``). Existing templates keep
``NULL``: no config.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    """Add the column and create the table (where missing)."""
    inspector = sa.inspect(op.get_bind())
    if "config" not in {c["name"] for c in inspector.get_columns("prompt_templates")}:
        op.add_column("prompt_templates", sa.Column("config", _json(), nullable=True))
    if inspector.has_table("prompt_deployments"):
        return
    op.create_table(
        "prompt_deployments",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("labels", _json(), nullable=False),
        sa.Column("weights", _json(), nullable=True),
        sa.Column("control", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_prompt_deployments"),
    )


def downgrade() -> None:
    """Drop the table and the column (labels, rollouts and configs are lost)."""
    op.drop_table("prompt_deployments")
    op.drop_column("prompt_templates", "config")
