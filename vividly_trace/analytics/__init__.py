"""Analytics over the SQL store: cost, latency percentiles, errors, A/B tests, reports.

::

    from vividly_trace.analytics import (
        ABDirection, compare_ab, cost_by_day, cost_by_model, latency_percentiles,
        scores, sessions, top_users,
    )

    url = "postgresql+psycopg://app@db/app"          # or an SQLAlchemy Engine
    for row in cost_by_day(url, since="30d"):
        print(row.day, row.template, row.cost_usd)
    for row in cost_by_model(url, since="30d"):     # from each Gemini request's own model
        print(row.day, row.model, row.calls, row.cost_usd)
    for user in top_users(url, 5, since="30d"):      # who called (vividly_trace.context)
        print(user.user_id, user.calls, user.known_cost_usd)  # None: unknown, never $0
    for s in sessions(url, user_id="u-42"):
        print(s.session_id, s.calls, s.duration, s.templates)
    for sc in scores(url, template="clarification"):   # vividly_trace.score() feedback
        print(sc.name, sc.count, sc.mean, sc.distribution)
    p95 = latency_percentiles(url, since="24h", by_version=True).to_dataframe()
    ab = compare_ab(url, "nlu_extraction", since="14d")
    print(ab.summary)                              # "nlu_extraction: v4/B better at 95% ..."
    for verdict in ab.verdicts:                    # structured: baseline, challenger, p_value...
        if verdict.direction is ABDirection.WORSE:
            print(f"{verdict.challenger} hurts the success rate, p={verdict.p_value:.3g}")

    # Sticky assignment for the experiment itself (no database involved):
    variant = choose_variant("nlu_extraction", user_id, {"A": 0.5, "B": 0.5})

Every query accepts a time window (``since`` inclusive, ``until`` exclusive: ``"7d"``,
``"24h"``, ISO 8601, ``datetime``...) and a ``template`` filter, and returns frozen
dataclasses in a :class:`ResultList`, which ``.to_dataframe()`` turns into a pandas
DataFrame. SQLite and PostgreSQL give equal answers on equal data.

Importing this package is cheap: SQLAlchemy and the queries load on first use, so
:func:`choose_variant` costs nothing to import in a request handler.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._assign import choose_variant
from .._lazy import lazy_names
from ._patterns import normalize_error_message
from ._stats import percentile_cont, two_proportion_z_test, wilson_interval

if TYPE_CHECKING:
    from ._ab import MIN_SAMPLES, ABComparison, ABDirection, ABVariant, ABVerdict, compare_ab
    from ._callers import cost_by_user, sessions, top_users
    from ._queries import (
        ab_templates,
        cost_by_day,
        cost_by_model,
        error_patterns,
        latency_percentiles,
        recent_executions,
        success_rates,
    )
    from ._report import Report, build_report, render_html, write_html_report
    from ._reprice import RepriceResult, RepriceTemplate, reprice
    from ._rows import (
        DailyCost,
        ErrorPattern,
        ExecutionRow,
        LatencyPercentiles,
        ModelCost,
        SessionRow,
        TemplateSummary,
        UserCost,
        variant_label,
    )
    from ._scores import ScoreSummary, scores, unmatched_scores
    from ._store import (
        ResultList,
        StoreError,
        StoreSchemaError,
        StoreUnavailableError,
        StoreURLError,
        default_url,
        hide_password,
        open_store,
        parse_time,
    )

__all__ = [
    "MIN_SAMPLES",
    "ABComparison",
    "ABDirection",
    "ABVariant",
    "ABVerdict",
    "DailyCost",
    "ErrorPattern",
    "ExecutionRow",
    "LatencyPercentiles",
    "ModelCost",
    "Report",
    "RepriceResult",
    "RepriceTemplate",
    "ResultList",
    "ScoreSummary",
    "SessionRow",
    "StoreError",
    "StoreSchemaError",
    "StoreURLError",
    "StoreUnavailableError",
    "TemplateSummary",
    "UserCost",
    "ab_templates",
    "build_report",
    "choose_variant",
    "compare_ab",
    "cost_by_day",
    "cost_by_model",
    "cost_by_user",
    "default_url",
    "error_patterns",
    "hide_password",
    "latency_percentiles",
    "normalize_error_message",
    "open_store",
    "parse_time",
    "percentile_cont",
    "recent_executions",
    "render_html",
    "reprice",
    "scores",
    "sessions",
    "success_rates",
    "top_users",
    "two_proportion_z_test",
    "unmatched_scores",
    "variant_label",
    "wilson_interval",
    "write_html_report",
]

_LAZY = {
    "MIN_SAMPLES": "._ab",
    "ABComparison": "._ab",
    "ABDirection": "._ab",
    "ABVariant": "._ab",
    "ABVerdict": "._ab",
    "compare_ab": "._ab",
    "DailyCost": "._rows",
    "ErrorPattern": "._rows",
    "ExecutionRow": "._rows",
    "LatencyPercentiles": "._rows",
    "ModelCost": "._rows",
    "TemplateSummary": "._rows",
    "SessionRow": "._rows",
    "UserCost": "._rows",
    "ScoreSummary": "._scores",
    "scores": "._scores",
    "unmatched_scores": "._scores",
    "cost_by_user": "._callers",
    "sessions": "._callers",
    "top_users": "._callers",
    "ab_templates": "._queries",
    "cost_by_day": "._queries",
    "cost_by_model": "._queries",
    "error_patterns": "._queries",
    "latency_percentiles": "._queries",
    "recent_executions": "._queries",
    "success_rates": "._queries",
    "variant_label": "._rows",
    "RepriceResult": "._reprice",
    "RepriceTemplate": "._reprice",
    "reprice": "._reprice",
    "Report": "._report",
    "build_report": "._report",
    "render_html": "._report",
    "write_html_report": "._report",
    "ResultList": "._store",
    "StoreError": "._store",
    "StoreSchemaError": "._store",
    "StoreURLError": "._store",
    "StoreUnavailableError": "._store",
    "default_url": "._store",
    "hide_password": "._store",
    "open_store": "._store",
    "parse_time": "._store",
}


__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
