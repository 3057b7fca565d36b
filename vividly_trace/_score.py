"""Scores and feedback on an execution: the :class:`Score` record and :func:`score`.

A score is checked on the caller's side (a bad one is a warning and a counted drop, never an
exception), then handed to the active pipeline, which queues it for every sink that stores
scores (a sink with ``write_scores``), through the same bounded queues, batches, retries
and spool as the records. Sinks without ``write_scores`` never see a score.
"""

from __future__ import annotations

import datetime as _dt
import math
import numbers
from dataclasses import dataclass
from typing import Any

from ._active import UNSET, state
from ._jsonsafe import valid_text
from ._safety import internal_error, warn_limited

__all__ = ["DATA_TYPES", "Score", "score", "send_score"]

DATA_TYPES = ("numeric", "boolean", "categorical")
"""What a score's value is: a number, a bool, or a category (a string)."""

MAX_ID_CHARS = 64
MAX_NAME_CHARS = 200
MAX_CATEGORY_CHARS = 200
MAX_COMMENT_CHARS = 1000
_UTC = _dt.timezone.utc


@dataclass(frozen=True, slots=True)
class Score:
    """One score of one execution, as the sinks that store scores receive it.

    ``value`` is a ``float`` (``numeric``), a ``bool`` (``boolean``) or a ``str``
    (``categorical``), as ``data_type`` says. ``scored_at`` is when :func:`score` was
    called (UTC): of two values for the same execution, name and source, the later one wins,
    in whatever order they reach the store.

    .. versionadded:: 0.2.0
    """

    execution_id: str
    name: str
    value: float | bool | str
    data_type: str
    source: str = "user"
    comment: str | None = None
    scored_at: _dt.datetime = _dt.datetime(1970, 1, 1, tzinfo=_UTC)

    @property
    def key(self) -> tuple[str, str, str]:
        """``(execution_id, name, source)``: one stored value per key."""
        return (self.execution_id, self.name, self.source)

    def to_exact_dict(self) -> dict[str, Any]:
        """The score as a JSON-ready dict (``kind: "score"``; the spool's line format)."""
        return {
            "kind": "score",
            "execution_id": self.execution_id,
            "name": self.name,
            "value": self.value,
            "data_type": self.data_type,
            "source": self.source,
            "comment": self.comment,
            "scored_at": self.scored_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Score:
        """Rebuild a score from :meth:`to_exact_dict` output."""
        if data.get("kind") != "score":
            raise ValueError("not a score")
        data_type = str(data["data_type"])
        raw = data["value"]
        value: float | bool | str
        if data_type == "boolean":
            value = bool(raw)
        elif data_type == "numeric":
            value = float(raw)
        else:
            value = str(raw)
        scored = _dt.datetime.fromisoformat(str(data["scored_at"]))
        return cls(
            execution_id=str(data["execution_id"]),
            name=str(data["name"]),
            value=value,
            data_type=data_type,
            source=str(data.get("source") or "user"),
            comment=None if data.get("comment") is None else str(data["comment"]),
            scored_at=scored if scored.tzinfo else scored.replace(tzinfo=_UTC),
        )


def _label(what: str, value: Any, limit: int) -> str | None:
    """A non-empty string of at most ``limit`` characters, else None (and a warning)."""
    if isinstance(value, str):
        text = value.strip()
        if text and len(text) <= limit and "\x00" not in text:
            return valid_text(str.__str__(text))
    warn_limited(
        f"score:{what}",
        "vividly_trace.score(): %s=%s is not a non-empty string of at most %d characters;"
        " score dropped",
        what,
        _show(value),
        limit,
    )
    return None


def _show(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # a hostile __repr__
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 80 else text[:77] + "..."


def _typed(value: Any) -> tuple[float | bool | str, str] | None:
    if isinstance(value, bool):
        return value, "boolean"
    if isinstance(value, numbers.Real):
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            return None
        return (number, "numeric") if math.isfinite(number) else None
    if isinstance(value, str):
        text = value.strip()
        if text and len(text) <= MAX_CATEGORY_CHARS and "\x00" not in text:
            return valid_text(str.__str__(text)), "categorical"
    return None


def make_score(execution_id: Any, name: Any, value: Any, comment: Any, source: Any) -> Score | None:
    """The checked :class:`Score`, or None after a warning naming what is wrong."""
    eid = _label("execution_id", execution_id, MAX_ID_CHARS)
    if eid is None:
        return None
    label = _label("name", name, MAX_NAME_CHARS)
    if label is None:
        return None
    origin = _label("source", source, MAX_NAME_CHARS)
    if origin is None:
        return None
    typed = _typed(value)
    if typed is None:
        warn_limited(
            "score:value",
            "vividly_trace.score(): value=%s for %r is not a finite number, a bool or a "
            "category (a non-empty string of at most %d characters); score dropped",
            _show(value),
            label,
            MAX_CATEGORY_CHARS,
        )
        return None
    note: str | None = None
    if comment is not None:
        if not isinstance(comment, str) or "\x00" in comment:
            warn_limited(
                "score:comment",
                "vividly_trace.score(): comment=%s is not a string; score dropped",
                _show(comment),
            )
            return None
        note = valid_text(str.__str__(comment))[:MAX_COMMENT_CHARS]
    return Score(
        execution_id=eid,
        name=label,
        value=typed[0],
        data_type=typed[1],
        source=origin,
        comment=note,
        scored_at=_dt.datetime.now(_UTC),
    )


def send_score(
    execution_id: Any, name: Any, value: Any, comment: Any = None, source: Any = "user"
) -> bool:
    """Check a score and queue it; see :func:`score`. Never raises."""
    try:
        pipeline = state.pipeline
        if pipeline is UNSET and state.load_environment is not None:
            state.load_environment()
            pipeline = state.pipeline
        made = make_score(execution_id, name, value, comment, source)
        if pipeline is None or pipeline is UNSET:
            return False
        if made is None:
            pipeline.count_invalid_score()
            return False
        return bool(pipeline.submit_score(made))
    except Exception as exc:
        internal_error("score", exc, "vividly_trace could not queue a score: %r", exc)
        return False


def score(
    execution_id: str,
    name: str,
    value: float | bool | str,
    *,
    comment: str | None = None,
    source: str = "user",
) -> bool:
    """Score an execution: a number, a bool (thumbs up / down) or a category (a string).

    Non-blocking: the score is queued like a record (batched, retried, spooled while the
    store is down) for every configured sink that stores scores (the SQL sink, table
    ``prompt_scores``; the others ignore scores). Idempotent per ``(execution_id, name,
    source)``: scoring again replaces the value, and the latest call wins even when an
    earlier one reaches the store later (replayed from the spool). A score may arrive
    before its execution's row; it is kept.

    Returns:
        ``True`` when the score was queued for at least one sink that stores scores;
        ``False`` when it was dropped: a bad argument (a warning in the ``vividly_trace``
        logger, counted in ``stats()["dropped"]["score_invalid"]``), nothing configured,
        or no sink that stores scores. Never raises.

    .. versionadded:: 0.2.0
    """
    return send_score(execution_id, name, value, comment, source)
