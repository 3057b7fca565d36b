"""What each page shows, as JSON-ready dictionaries built from the analytics queries."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..analytics import (
    compare_ab,
    cost_by_day,
    cost_by_user,
    error_patterns,
    latency_percentiles,
    sessions,
    success_rates,
    variant_label,
)
from ..analytics._report import format_usd

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = ["cost_text", "overview", "template_page", "users_page"]

PERCENTILES = (0.5, 0.9, 0.95, 0.99)


def cost_text(cost: Decimal, priced: int, calls: int) -> str:
    """Money for a set of calls: "unknown" when none has a cost (never "$0"), and the count
    of calls without one when only some have."""
    if calls and not priced:
        return format_usd(None)
    if priced < calls:
        return f"{format_usd(cost)} + {calls - priced:,} unknown"
    return format_usd(cost)


def _rate(successes: int, calls: int) -> float | None:
    return successes / calls if calls else None


def overview(engine: Engine, since: str | None) -> dict[str, Any]:
    """Totals, one row per template (calls, success rate, p95, cost, calls without cost)
    and the cost per day per template."""
    summaries = success_rates(engine, since=since)
    p95 = {row.template: row.p95_ms for row in latency_percentiles(engine, since=since)}
    templates = [
        {
            "template": s.template,
            "calls": s.executions,
            "successes": s.successes,
            "failures": s.failures,
            "success_rate": _rate(s.successes, s.executions),
            "p95_ms": p95.get(s.template),
            "cost_usd": s.cost_usd if s.executions > s.unpriced_executions else None,
            "cost": cost_text(s.cost_usd, s.executions - s.unpriced_executions, s.executions),
            "unpriced": s.unpriced_executions,
            "no_usage": s.no_usage_executions,
            "last_seen": s.last_seen,
        }
        for s in summaries
    ]
    calls = sum(s.executions for s in summaries)
    successes = sum(s.successes for s in summaries)
    unpriced = sum(s.unpriced_executions for s in summaries)
    known = sum((s.cost_usd for s in summaries), Decimal(0))
    days = [
        {
            "day": row.day,
            "template": row.template,
            "calls": row.executions,
            "priced_calls": row.priced_executions,
            "cost_usd": row.cost_usd if row.priced_executions else None,
        }
        for row in cost_by_day(engine, since=since)
    ]
    return {
        "since": since,
        "totals": {
            "calls": calls,
            "successes": successes,
            "success_rate": _rate(successes, calls),
            "unpriced": unpriced,
            "cost_usd": known if calls > unpriced else None,
            "cost": cost_text(known, calls - unpriced, calls),
        },
        "templates": templates,
        "days": days,
    }


def template_page(engine: Engine, template: str, since: str | None) -> dict[str, Any]:
    """A template's variants with their A/B verdicts and intervals, its latency
    percentiles per version, its error patterns and its stored prompt texts."""
    from ._data import template_texts

    ab = compare_ab(engine, template, since=since)
    variants = [
        {
            "label": v.label,
            "version": v.version,
            "ab_group": v.ab_group,
            "calls": v.executions,
            "successes": v.successes,
            "success_rate": v.success_rate,
            "ci_low": v.ci_low,
            "ci_high": v.ci_high,
            "mean_latency_ms": v.mean_latency_ms,
            "p95_ms": v.p95_latency_ms,
            "cost_usd": v.total_cost_usd if v.priced_executions else None,
            "cost": cost_text(v.total_cost_usd, v.priced_executions, v.executions),
            "mean_cost_usd": v.mean_cost_usd,
            "is_baseline": v.is_baseline,
            "p_value": v.p_value,
            "verdict": v.verdict,
        }
        for v in ab.variants
    ]
    latency = [
        {
            "label": variant_label(row.version, row.ab_group),
            "calls": row.executions,
            "mean_ms": row.mean_ms,
            "percentiles": {f"p{round(f * 100)}": row.percentile(f) for f in PERCENTILES},
        }
        for row in latency_percentiles(
            engine, since=since, template=template, by_version=True, percentiles=PERCENTILES
        )
    ]
    errors = [
        {
            "error_type": p.error_type,
            "http_status": p.http_status,
            "pattern": p.pattern,
            "count": p.count,
            "share": p.share,
            "last_seen": p.last_seen,
            "example": p.example,
        }
        for p in error_patterns(engine, since=since, template=template, top=20)
    ]
    return {
        "template": template,
        "since": since,
        "summary": ab.summary,
        "baseline": ab.baseline,
        "confidence": ab.confidence,
        "variants": variants,
        "latency": latency,
        "errors": errors,
        "texts": template_texts(engine, template),
    }


def users_page(engine: Engine, since: str | None, user: str | None) -> dict[str, Any]:
    """Cost by user (highest first) and the sessions (of ``user``, when given)."""
    users = [
        {
            "user_id": u.user_id,
            "calls": u.calls,
            "failed_calls": u.failed_calls,
            "cost_usd": u.cost_usd if u.priced_calls else None,
            "cost": cost_text(u.cost_usd, u.priced_calls, u.calls),
            "sessions": u.sessions,
            "last_seen": u.last_seen,
        }
        for u in cost_by_user(engine, since=since)
    ]
    rows = [
        {
            "session_id": s.session_id,
            "user_id": s.user_id,
            "calls": s.calls,
            "failed_calls": s.failed_calls,
            "cost": cost_text(s.cost_usd, s.priced_calls, s.calls),
            "cost_usd": s.cost_usd if s.priced_calls else None,
            "first_seen": s.first_seen,
            "last_seen": s.last_seen,
            "templates": list(s.templates),
        }
        for s in sessions(engine, user_id=user, since=since)
    ]
    return {"since": since, "user": user, "users": users, "sessions": rows}
