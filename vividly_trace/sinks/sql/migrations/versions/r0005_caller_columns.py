"""Who called: the caller columns of ``prompt_executions``.

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-02

Adds the nullable columns ``prompt_executions.user_id``, ``session_id`` and ``request_id``
(what :func:`vividly_trace.context` and the ASGI / WSGI middleware bind) and their partial
indexes (``WHERE ... IS NOT NULL``): ``(user_id, executed_at)`` for cost per user and a
user's sessions, ``(session_id, executed_at)`` for the sessions, ``(request_id)`` to find a
request's calls. Like the earlier revisions it keeps what is there already (a store created
from ``schema.metadata``). Existing executions keep ``NULL``: no caller known.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from vividly_trace.sinks.sql.schema import CALLER_INDEXES

revision: str = "0005"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CALLER_COLUMNS = ("user_id", "session_id", "request_id")


def _columns() -> set[str]:
    return {c["name"] for c in sa.inspect(op.get_bind()).get_columns("prompt_executions")}


def _indexes() -> set[str]:
    return {str(i["name"]) for i in sa.inspect(op.get_bind()).get_indexes("prompt_executions")}


def upgrade() -> None:
    """Add the three columns and their indexes (where missing)."""
    columns = _columns()
    for name in _CALLER_COLUMNS:
        if name not in columns:
            op.add_column("prompt_executions", sa.Column(name, sa.Text(), nullable=True))
    indexes = _indexes()
    for name, indexed, present in CALLER_INDEXES:
        if name not in indexes:
            where = sa.text(f"{present} IS NOT NULL")
            op.create_index(
                name,
                "prompt_executions",
                list(indexed),
                postgresql_where=where,
                sqlite_where=where,
            )


def downgrade() -> None:
    """Drop the indexes and the columns (their values are lost)."""
    indexes = _indexes()
    for name, _, _ in CALLER_INDEXES:
        if name in indexes:
            op.drop_index(name, table_name="prompt_executions")
    columns = _columns()
    for name in reversed(_CALLER_COLUMNS):
        if name in columns:
            op.drop_column("prompt_executions", name)
