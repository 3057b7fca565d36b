"""Queries the analytics layer does not have: the filtered executions list, one execution
with its requests and scores, a template's stored prompt text. Parameterised SQLAlchemy Core
only; each returns plain JSON-ready dictionaries."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..analytics._sql import as_time, executions_table, has_requests_table, window_conditions

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = ["ExecutionFilter", "execution_detail", "list_executions", "plain", "template_texts"]

MAX_PER_PAGE = 200


@dataclass(frozen=True)
class ExecutionFilter:
    """The executions page's filters (each None: no filter)."""

    template: str | None = None
    version: str | None = None
    model: str | None = None
    user: str | None = None
    outcome: str | None = None  # "ok" or "failed"
    since: str | None = None
    until: str | None = None
    page: int = 1
    per_page: int = 50

    @classmethod
    def from_query(cls, query: Any) -> ExecutionFilter:
        """From request query parameters (empty strings mean no filter)."""

        def text(name: str) -> str | None:
            value = str(query.get(name, "")).strip()
            return value or None

        def number(name: str, default: int, high: int) -> int:
            try:
                return max(1, min(high, int(query.get(name, default))))
            except (TypeError, ValueError):
                return default

        outcome = text("outcome")
        return cls(
            template=text("template"),
            version=text("version"),
            model=text("model"),
            user=text("user"),
            outcome=outcome if outcome in ("ok", "failed") else None,
            since=text("since"),
            until=text("until"),
            page=number("page", 1, 1_000_000),
            per_page=number("per_page", 50, MAX_PER_PAGE),
        )

    def params(self, **changes: Any) -> dict[str, str]:
        """The filters as query parameters (for links to other pages)."""
        values = {
            "template": self.template,
            "version": self.version,
            "model": self.model,
            "user": self.user,
            "outcome": self.outcome,
            "since": self.since,
            "until": self.until,
            "per_page": self.per_page if self.per_page != 50 else None,
            "page": self.page if self.page != 1 else None,
        }
        values.update(changes)
        return {k: str(v) for k, v in values.items() if v is not None}


def plain(value: Any) -> Any:
    """``value`` with datetimes, dates and Decimals as JSON-ready text (money stays exact)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, _dt.datetime):
        return value.isoformat()
    if isinstance(value, _dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


_LIST_COLUMNS = (
    "id",
    "executed_at",
    "template_name",
    "template_version",
    "template_ab_test_group",
    "model",
    "success",
    "response_time_ms",
    "input_token_count",
    "output_token_count",
    "cost_usd",
    "error_type",
    "http_status",
    "user_id",
    "session_id",
)


def list_executions(engine: Engine, filters: ExecutionFilter) -> dict[str, Any]:
    """One page of executions, newest first, and the number matching the filters."""
    from sqlalchemy import func, select

    e = executions_table().c
    conditions = window_conditions(engine, filters.since, filters.until, filters.template)
    if filters.version is not None:
        conditions.append(e.template_version == filters.version)
    if filters.model is not None:
        conditions.append(e.model == filters.model)
    if filters.user is not None:
        conditions.append(e.user_id == filters.user)
    if filters.outcome is not None:
        conditions.append(e.success.is_(filters.outcome == "ok"))
    query = (
        select(*(e[name] for name in _LIST_COLUMNS))
        .where(*conditions)
        .order_by(e.executed_at.desc(), e.id.desc())
        .limit(filters.per_page)
        .offset((filters.page - 1) * filters.per_page)
    )
    with engine.connect() as conn:
        count = select(func.count()).select_from(executions_table()).where(*conditions)
        total = int(conn.execute(count).scalar_one())
        rows = [_execution(dict(r._mapping)) for r in conn.execute(query)]
    return {"total": total, "page": filters.page, "per_page": filters.per_page, "rows": rows}


def _execution(row: dict[str, Any]) -> dict[str, Any]:
    row["executed_at"] = as_time(row["executed_at"])
    if "success" in row:
        row["success"] = bool(row["success"])
    return row


def execution_detail(engine: Engine, execution_id: str) -> dict[str, Any] | None:
    """One execution (all its columns), its Gemini requests, and its scores when the store
    has a ``prompt_scores`` table; None when there is no such execution."""
    from sqlalchemy import inspect, select

    table = executions_table()
    with engine.connect() as conn:
        found = conn.execute(select(table).where(table.c.id == execution_id)).first()
        if found is None:
            return None
        execution = _execution(dict(found._mapping))
        requests: list[dict[str, Any]] = []
        if has_requests_table(conn):
            from ..sinks.sql.schema import prompt_requests as r

            requests = [
                dict(x._mapping)
                for x in conn.execute(
                    select(r).where(r.c.execution_id == execution_id).order_by(r.c.seq)
                )
            ]
            for request in requests:
                request["started_at"] = as_time(request["started_at"])
        scores: list[dict[str, Any]] | None = None
        if inspect(conn).has_table("prompt_scores"):  # revision 0007 and later
            from ..sinks.sql.schema import prompt_scores as sc

            scores = []
            for x in conn.execute(
                select(sc).where(sc.c.execution_id == execution_id).order_by(sc.c.name, sc.c.source)
            ):
                kind = x.data_type
                value: Any = x.value_text if kind == "categorical" else x.value_number
                if kind == "boolean" and value is not None:
                    value = bool(value)
                scores.append(
                    {
                        "name": x.name,
                        "source": x.source,
                        "value": value,
                        "type": kind,
                        "comment": x.comment,
                        "updated_at": as_time(x.updated_at),
                    }
                )
    return {"execution": execution, "requests": requests, "scores": scores}


def template_texts(engine: Engine, template: str) -> list[dict[str, Any]]:
    """The stored prompt text of each version of ``template`` (``prompt_templates``)."""
    from sqlalchemy import select

    from ..sinks.sql.schema import prompt_templates as t

    query = (
        select(
            t.c.version,
            t.c.ab_test_group,
            t.c.model,
            t.c.template_text,
            t.c.total_executions,
            t.c.last_executed_at,
        )
        .where(t.c.name == template)
        .order_by(t.c.id)
    )
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]
