"""Scores by template: count, mean and spread, distribution of categories (revision 0007).

Reads ``prompt_scores`` joined to the executions they score, so the template, the time
window (the execution's ``executed_at``) and the variant come from the execution; a score
whose execution is not (yet) stored is counted only in :func:`unmatched_scores`. A store
older than revision 0007 has no scores: :func:`scores` then raises
:class:`StoreSchemaError` naming the upgrade command.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..exceptions import ConfigurationError
from ._sql import executions_table, window_conditions
from ._store import ResultList, StoreSchemaError, StoreSource, TimeBound, hide_password, open_store

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement, Table
    from sqlalchemy.engine import Connection, Engine

__all__ = [
    "ScoreSummary",
    "describe_score",
    "has_scores_table",
    "scores",
    "scores_table",
    "unmatched_scores",
]


@dataclass(frozen=True, slots=True)
class ScoreSummary:
    """The scores of one name and source on one template's executions.

    ``mean`` and ``stdev`` (sample standard deviation; ``None`` under two scores) are of
    the numbers for a ``numeric`` score and of 1 / 0 for a ``boolean`` one (``mean`` is
    then the share of ``True``); both are ``None`` for a ``categorical`` score, whose
    ``distribution`` holds ``(category, count)`` pairs, most frequent first.

    .. versionadded:: 0.4.0
    """

    template: str
    name: str
    source: str
    data_type: str
    count: int
    mean: float | None
    stdev: float | None
    distribution: tuple[tuple[str, int], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The row as a flat dict (``distribution`` as a dict)."""
        return {
            "template": self.template,
            "name": self.name,
            "source": self.source,
            "data_type": self.data_type,
            "count": self.count,
            "mean": self.mean,
            "stdev": self.stdev,
            "distribution": dict(self.distribution),
        }


def scores_table() -> Table:
    """The ``prompt_scores`` table (schema revision 0007)."""
    from ..sinks.sql.schema import prompt_scores

    return prompt_scores


def has_scores_table(conn: Engine | Connection) -> bool:
    """Whether the store has ``prompt_scores`` (schema revision 0007)."""
    from sqlalchemy import inspect

    return bool(inspect(conn).has_table("prompt_scores"))


def _require_scores(engine: Engine) -> None:
    if not has_scores_table(engine):
        raise StoreSchemaError(
            f"{hide_password(engine.url)} has no prompt_scores table (a store older than "
            "schema revision 0007): upgrade it with: vividly-trace db upgrade --url URL"
        )


def _spread(n: int, total: float, squares: float) -> float | None:
    if n < 2:
        return None
    variance = max(0.0, (squares - total * total / n) / (n - 1))
    return math.sqrt(variance)


def scores(
    source: StoreSource,
    *,
    template: str | None = None,
    name: str | None = None,
    since: TimeBound = None,
    until: TimeBound = None,
) -> ResultList[ScoreSummary]:
    """Summaries of the scores given to a template's executions, per name and source.

    Args:
        source: database URL or SQLAlchemy Engine.
        template: only the executions of this template key.
        name: only the scores of this name.
        since, until: the executions' time window (``since`` inclusive, ``until``
            exclusive).

    Returns:
        Rows ordered by template, name, source.

    Raises:
        StoreError: the store cannot be used (StoreSchemaError: older than revision
        0007). ConfigurationError: bad arguments.

    .. versionadded:: 0.4.0
    """
    from sqlalchemy import func, select

    if name is not None and (not isinstance(name, str) or not name):
        raise ConfigurationError(f"name must be a non-empty string, got {name!r}")
    e = executions_table().c
    s = scores_table().c
    extra: list[ColumnElement[bool]] = [] if name is None else [s.name == name]
    with open_store(source) as engine:
        conditions = window_conditions(engine, since, until, template, extra)
        _require_scores(engine)
        joined = scores_table().join(executions_table(), e.id == s.execution_id)
        keys = (e.template_name, s.name, s.source, s.data_type)
        numbers = (
            select(
                *keys,
                func.count().label("n"),
                func.sum(s.value_number).label("total"),
                func.sum(s.value_number * s.value_number).label("squares"),
            )
            .select_from(joined)
            .where(*conditions)
            .group_by(*keys)
        )
        categories = (
            select(*keys, s.value_text, func.count().label("n"))
            .select_from(joined)
            .where(*conditions, s.data_type == "categorical")
            .group_by(*keys, s.value_text)
        )
        with engine.connect() as conn:
            spread: dict[tuple[str, str, str, str], list[tuple[str, int]]] = {}
            for r in conn.execute(categories):
                spread.setdefault(tuple(r[:4]), []).append((str(r.value_text), int(r.n)))
            rows = []
            for r in conn.execute(numbers):
                key = tuple(r[:4])
                n = int(r.n)
                counted = r.data_type != "categorical" and r.total is not None
                total = float(r.total) if counted else 0.0
                rows.append(
                    ScoreSummary(
                        template=r.template_name,
                        name=r.name,
                        source=r.source,
                        data_type=r.data_type,
                        count=n,
                        mean=total / n if counted else None,
                        stdev=_spread(n, total, float(r.squares)) if counted else None,
                        distribution=tuple(
                            sorted(spread.get(key, ()), key=lambda c: (-c[1], c[0]))
                        ),
                    )
                )
    rows.sort(key=lambda x: (x.template, x.name, x.source, x.data_type))
    return ResultList(rows)


def unmatched_scores(source: StoreSource) -> int:
    """How many stored scores have no execution row (yet): sent before it, or for an
    execution that was pruned, sampled out or never written.

    .. versionadded:: 0.4.0
    """
    from sqlalchemy import func, select

    e = executions_table().c
    s = scores_table().c
    with open_store(source) as engine:
        _require_scores(engine)
        query = (
            select(func.count())
            .select_from(scores_table().outerjoin(executions_table(), e.id == s.execution_id))
            .where(e.id.is_(None))
        )
        with engine.connect() as conn:
            return int(conn.execute(query).scalar_one())


def describe_score(row: ScoreSummary, categories: int = 3) -> str:
    """How reports show a summary's values: ``"4.17 ± 1.17"`` (numeric), ``"67% true"``
    (boolean), ``"friendly 4 · curt 2"`` (the most frequent categories)."""
    if row.data_type == "categorical":
        shown = [f"{c} {n:,}" for c, n in row.distribution[:categories]]
        more = len(row.distribution) - categories
        return " \u00b7 ".join(shown) + (f" \u00b7 +{more} more" if more > 0 else "")
    if row.mean is None:
        return ""
    if row.data_type == "boolean":
        return f"{row.mean:.0%} true"
    spread = f" \u00b1 {row.stdev:.3g}" if row.stdev is not None else ""
    return f"{row.mean:.3g}{spread}"
