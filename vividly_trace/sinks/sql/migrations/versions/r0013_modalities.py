"""Modalities and grounding: the token counts and units that price them.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03

Adds the nullable BigInteger columns ``image_input_token_count``,
``video_input_token_count``, ``image_output_token_count``, ``audio_output_token_count``,
``grounded_prompt_count`` and ``search_query_count`` to ``prompt_executions`` and
``prompt_requests`` (see :class:`vividly_trace.PromptExecution`), which ``reprice`` reads to
price image / video input, image / audio output and Grounding with Google Search again.
Like the earlier revisions it keeps what is there already. Existing rows keep ``NULL``:
priced at the text rates, without a grounding fee, as they were.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    "image_input_token_count",
    "video_input_token_count",
    "image_output_token_count",
    "audio_output_token_count",
    "grounded_prompt_count",
    "search_query_count",
)
_TABLES = ("prompt_executions", "prompt_requests")


def _columns(table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}


def upgrade() -> None:
    """Add the columns (where missing), in order, at the end of both tables."""
    for table in _TABLES:
        present = _columns(table)
        for name in COLUMNS:
            if name not in present:
                op.add_column(table, sa.Column(name, sa.BigInteger(), nullable=True))


def downgrade() -> None:
    """Drop the columns (their values are lost)."""
    for table in _TABLES:
        present = _columns(table)
        for name in reversed(COLUMNS):
            if name in present:
                op.drop_column(table, name)
