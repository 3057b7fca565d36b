"""Scores into ``prompt_scores``: one upsert per batch, the latest value winning.

Each key (execution id, name, source) keeps the value given last (``updated_at``, the
time :func:`vividly_trace.score` was called), whatever order the scores arrive in: a score
replayed from the spool after a newer one was written leaves the newer one in place.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Connection

from ..._score import Score
from .schema import prompt_scores

__all__ = ["latest_per_key", "score_row", "upsert_scores"]

_UTC = _dt.timezone.utc


def latest_per_key(scores: Sequence[Score]) -> list[Score]:
    """One score per key, the latest (the later in the batch on a tie): one statement may
    not change a row twice (PostgreSQL's ``ON CONFLICT DO UPDATE``)."""
    best: dict[tuple[str, str, str], Score] = {}
    for s in scores:
        seen = best.get(s.key)
        if seen is None or s.scored_at >= seen.scored_at:
            best[s.key] = s
    return list(best.values())


def _when(value: _dt.datetime, dialect: str) -> _dt.datetime:
    value = value.astimezone(_UTC) if value.tzinfo else value.replace(tzinfo=_UTC)
    # SQLite keeps naive UTC text, which compares (and sorts) as time.
    return value.replace(tzinfo=None) if dialect == "sqlite" else value


def score_row(s: Score, dialect: str) -> dict[str, Any]:
    """The ``prompt_scores`` row of a score."""
    if s.data_type == "categorical":
        number, text = None, str(s.value)
    else:
        number, text = float(s.value), None
    when = _when(s.scored_at, dialect)
    return {
        "execution_id": s.execution_id,
        "name": s.name,
        "source": s.source,
        "value_number": number,
        "value_text": text,
        "data_type": s.data_type,
        "comment": s.comment,
        "created_at": when,
        "updated_at": when,
    }


def upsert_scores(conn: Connection, scores: Sequence[Score]) -> None:
    """Insert or update the scores' rows (in the caller's transaction)."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = conn.dialect.name
    rows = [score_row(s, dialect) for s in latest_per_key(scores)]
    if not rows:
        return
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(prompt_scores)
    stmt = stmt.values(rows)
    new = stmt.excluded
    key = prompt_scores.c
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[key.execution_id, key.name, key.source],
            set_={
                "value_number": new.value_number,
                "value_text": new.value_text,
                "data_type": new.data_type,
                "comment": new.comment,
                "updated_at": new.updated_at,
            },
            where=key.updated_at <= new.updated_at,
        )
    )
