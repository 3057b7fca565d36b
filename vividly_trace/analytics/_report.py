"""The report: everything ``vividly-trace report`` shows, gathered once, rendered twice
(terminal tables in :mod:`._terminal`, one self-contained HTML page here).

The HTML page inlines plotly.js (no CDN: it opens offline, from a file or an e-mail
attachment) and holds: summary figures, the daily cost stacked by template, the cost by
model (from each Gemini request's own model) stacked by day, the latency distribution of
each template, the A/B panel of every template with two or more variants, success rates
(with each template's cost rolled up with the logged calls nested in it, when there are
such calls), the users with the highest cost, and the top error patterns.
"""

from __future__ import annotations

import datetime as _dt
import html
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

from ..exceptions import MissingExtraError
from ._ab import MIN_SAMPLES, ABComparison, ABDirection, ABVerdict, compare_ab
from ._callers import cost_by_user, has_caller_columns
from ._queries import (
    cost_by_day,
    cost_by_model,
    error_patterns,
    latency_percentiles,
    success_rates,
)
from ._rows import (
    DailyCost,
    ErrorPattern,
    LatencyPercentiles,
    ModelCost,
    TemplateSummary,
    UserCost,
    variant_label,
)
from ._scores import ScoreSummary, describe_score, has_scores_table, scores
from ._store import ResultList, StoreSource, TimeBound, hide_password, open_store, parse_time

__all__ = [
    "REPORT_PERCENTILES",
    "UNKNOWN",
    "USERS_SHOWN",
    "ModelTotal",
    "Report",
    "RolledUpCost",
    "build_report",
    "format_cost",
    "format_cost_per_call",
    "format_ms",
    "format_pct",
    "format_usd",
    "render_html",
    "write_html_report",
]

REPORT_PERCENTILES: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
"""Latency fractions a report computes: min, quartiles, p95, p99, max."""

UNKNOWN = "unknown"
"""How a report shows a cost that was not recorded (never ``$0``)."""

_PALETTE = (
    "#4C78A8",
    "#F58518",
    "#54A24B",
    "#E45756",
    "#72B7B2",
    "#B279A2",
    "#EECA3B",
    "#9D755D",
    "#FF9DA6",
    "#BAB0AC",
)
ProgressCallback = Callable[[str], None]


def format_usd(value: Decimal | float | None) -> str:
    """Money for people: ``$12.34``, ``$0.0123``, ``$0.000123``; ``unknown`` for None.

    .. versionadded:: 0.1.0
    """
    if value is None:
        return UNKNOWN
    v = Decimal(str(value)) if not isinstance(value, Decimal) else value
    if v == 0:
        return "$0"
    magnitude = abs(v)
    if magnitude >= 100:
        return f"${v:,.0f}"
    if magnitude >= 1:
        return f"${v:,.2f}"
    if magnitude >= Decimal("0.01"):
        return f"${v:.4f}"
    return f"${v:.6f}"


def format_cost(cost: Decimal, executions: int, unpriced: int) -> str:
    """The cost of a set of calls, saying what is missing: ``$1.23`` when every call has a
    cost, ``$1.23 + 4 unpriced`` when 4 have none (``cost`` sums the others), ``unknown``
    when none has one (never ``$0``).

    .. versionadded:: 0.1.0
    """
    if executions > 0 and unpriced >= executions:
        return UNKNOWN
    text = format_usd(cost)
    return f"{text} + {unpriced:,} unpriced" if unpriced > 0 else text


def format_cost_per_call(cost: Decimal, executions: int, unpriced: int) -> str:
    """The mean cost of the calls that have one; ``unknown`` when none has.

    .. versionadded:: 0.1.0
    """
    priced = executions - unpriced
    return format_usd(cost / priced) if priced > 0 else UNKNOWN


def format_ms(value: float | None) -> str:
    """Milliseconds for people: ``12.3``, ``456``, ``1,234``; ``n/a`` for None.

    .. versionadded:: 0.1.0
    """
    if value is None:
        return "n/a"
    if value < 100:
        return f"{value:.1f}"
    return f"{value:,.0f}"


def format_pct(value: float | None) -> str:
    """A fraction as a percentage with one decimal: ``93.2%``.

    .. versionadded:: 0.1.0
    """
    return "n/a" if value is None else f"{value * 100:.1f}%"


class ModelTotal(NamedTuple):
    """One model's calls, tokens and cost over a report's window (:attr:`Report.model_totals`).

    .. versionadded:: 0.3.0
    """

    model: str | None
    calls: int
    priced_calls: int
    failed_calls: int
    cost_usd: Decimal
    input_tokens: int
    output_tokens: int

    @property
    def cost_text(self) -> str:
        """The cost as :func:`format_cost` shows it."""
        return format_cost(self.cost_usd, self.calls, self.calls - self.priced_calls)


class RolledUpCost(NamedTuple):
    """A template's cost together with the logged calls nested in its executions
    (:meth:`Report.rolled_up`).

    .. versionadded:: 0.3.0
    """

    cost_usd: Decimal
    executions: int
    unpriced: int

    @property
    def cost_text(self) -> str:
        """The cost as :func:`format_cost` shows it."""
        return format_cost(self.cost_usd, self.executions, self.unpriced)


@dataclass(frozen=True)
class Report:
    """What a report shows: one snapshot of the store for a time window.

    ``latency`` rows carry :data:`REPORT_PERCENTILES`; ``ab`` has one comparison per
    template with two or more variants in the window. ``daily`` rows carry the rolled-up
    costs (``rollup=True``); ``models`` is :func:`cost_by_model` over the window;
    ``users`` is :func:`cost_by_user` over it (empty, with ``has_callers`` false, for a
    store older than schema revision 0005); ``scores`` is :func:`scores` over it (empty,
    with ``has_scores`` false, for a store older than schema revision 0007).

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.3.0 ``models``, :attr:`model_totals`, :meth:`rolled_up`,
       ``users``, ``has_callers``.
    .. versionchanged:: 0.4.0 ``scores``, ``has_scores``.
    """

    source: str
    generated_at: _dt.datetime
    since: _dt.datetime | None
    until: _dt.datetime | None
    template: str | None
    summaries: ResultList[TemplateSummary] = field(default_factory=ResultList)
    daily: ResultList[DailyCost] = field(default_factory=ResultList)
    latency: ResultList[LatencyPercentiles] = field(default_factory=ResultList)
    errors: ResultList[ErrorPattern] = field(default_factory=ResultList)
    ab: list[ABComparison] = field(default_factory=list)
    models: ResultList[ModelCost] = field(default_factory=ResultList)
    users: ResultList[UserCost] = field(default_factory=ResultList)
    has_callers: bool = False
    scores: ResultList[ScoreSummary] = field(default_factory=ResultList)
    has_scores: bool = False

    @property
    def known_users(self) -> list[UserCost]:
        """The :attr:`users` rows of real users (without the calls made outside any
        context), highest cost first."""
        return [u for u in self.users if u.user_id is not None]

    @property
    def anonymous(self) -> UserCost | None:
        """The calls made outside any :func:`vividly_trace.context` (no user), if any."""
        return next((u for u in self.users if u.user_id is None), None)

    @property
    def model_totals(self) -> list[ModelTotal]:
        """Calls, tokens and cost per model over the window, highest cost first."""
        acc: dict[str | None, list[Any]] = {}
        for row in self.models:
            entry = acc.setdefault(row.model, [0, 0, 0, Decimal(0), 0, 0])
            entry[0] += row.calls
            entry[1] += row.priced_calls
            entry[2] += row.failed_calls
            entry[3] += row.cost_usd
            entry[4] += row.input_tokens
            entry[5] += row.output_tokens
        totals = [ModelTotal(model, *values) for model, values in acc.items()]
        totals.sort(key=lambda t: (-t.cost_usd, t.model is not None, t.model or ""))
        return totals

    def rolled_up(self, template: str) -> RolledUpCost | None:
        """``template``'s cost with the logged calls nested in its executions (any depth);
        ``None`` when the report has no roll-up for it."""
        rows = [r for r in self.daily if r.template == template]
        if not rows or any(r.rolled_up_cost_usd is None for r in rows):
            return None
        return RolledUpCost(
            sum((r.rolled_up_cost_usd or Decimal(0) for r in rows), Decimal(0)),
            sum(r.rolled_up_executions or 0 for r in rows),
            sum(r.rolled_up_unpriced or 0 for r in rows),
        )

    @property
    def has_nested_calls(self) -> bool:
        """Whether some execution in the window has logged calls nested in it (then the
        reports show each template's cost rolled up with them too)."""
        return any(
            r.rolled_up_executions is not None and r.rolled_up_executions > r.executions
            for r in self.daily
        )

    @property
    def executions(self) -> int:
        """Executions in the window."""
        return sum(s.executions for s in self.summaries)

    @property
    def successes(self) -> int:
        """Successful executions in the window."""
        return sum(s.successes for s in self.summaries)

    @property
    def cost_usd(self) -> Decimal:
        """Total cost in the window of the executions that have one (see
        :attr:`unpriced_executions`)."""
        return sum((s.cost_usd for s in self.summaries), Decimal(0))

    @property
    def unpriced_executions(self) -> int:
        """Executions in the window without a cost."""
        return sum(s.unpriced_executions for s in self.summaries)

    @property
    def no_usage_executions(self) -> int:
        """Executions in the window without token usage."""
        return sum(s.no_usage_executions for s in self.summaries)

    @property
    def cost_text(self) -> str:
        """The total cost as :func:`format_cost` shows it."""
        return format_cost(self.cost_usd, self.executions, self.unpriced_executions)

    @property
    def templates(self) -> list[str]:
        """Template keys in the window, sorted."""
        return [s.template for s in self.summaries]

    @property
    def window_text(self) -> str:
        """``2026-10-25 10:00 UTC -> now`` style description of the window."""
        start = _when(self.since) if self.since else "the beginning"
        end = _when(self.until) if self.until else "now"
        return f"{start} \u2192 {end}"


def _when(value: _dt.datetime) -> str:
    if value.hour == value.minute == value.second == 0 and not value.microsecond:
        return value.strftime("%Y-%m-%d")
    return value.strftime("%Y-%m-%d %H:%M UTC")


def build_report(
    source: StoreSource,
    *,
    since: TimeBound = None,
    until: TimeBound = None,
    template: str | None = None,
    top_errors: int = 10,
    baseline: str | None = None,
    min_samples: int = MIN_SAMPLES,
    progress: ProgressCallback | None = None,
    include_infra_errors: bool = False,
) -> Report:
    """Run every report query once (one engine, one window) and gather the results.

    Args:
        source: database URL or SQLAlchemy Engine.
        since, until: the time window (``since`` inclusive, ``until`` exclusive).
        template: only this template key.
        top_errors: how many error patterns to keep.
        baseline: the A/B baseline variant (label, version or group) for the templates
            that have it; the others use their control (the rollout's control, else the first
            registered version, else the lowest).
        min_samples: executions per variant before an A/B verdict.
        include_infra_errors: count infrastructure failures (429, 5xx, timeouts,
            cancellations) in the A/B success rates (default: left out).
        progress: called with the name of each step before it runs.

    Raises:
        StoreError: the store cannot be used. ConfigurationError: bad arguments.

    .. versionadded:: 0.1.0
    """
    now = _dt.datetime.now(_dt.timezone.utc)
    start = parse_time(since, now=now)
    end = parse_time(until, now=now)

    def step(name: str) -> None:
        if progress is not None:
            progress(name)

    with open_store(source) as engine:
        window: dict[str, Any] = {"since": start, "until": end, "template": template}
        step("success rates")
        summaries = success_rates(engine, **window)
        step("daily cost")
        daily = cost_by_day(engine, **window, rollup=True)
        step("cost by model")
        models = cost_by_model(engine, **window)
        step("latency percentiles")
        latency = latency_percentiles(engine, **window, percentiles=REPORT_PERCENTILES)
        step("error patterns")
        errors = error_patterns(engine, **window, top=top_errors)
        step("cost by user")
        has_callers = has_caller_columns(engine)
        users = cost_by_user(engine, **window) if has_callers else ResultList[UserCost]()
        step("scores")
        has_scores = has_scores_table(engine)
        scored = scores(engine, **window) if has_scores else ResultList[ScoreSummary]()
        step("A/B comparisons")
        variants = success_rates(engine, **window, by_version=True)
        comparisons = []
        for name in sorted({v.template for v in variants}):
            mine = [v for v in variants if v.template == name]
            if len(mine) < 2:
                continue
            names = {
                n
                for v in mine
                for n in (variant_label(v.version, v.ab_group), v.version, v.ab_group)
            }
            use = baseline if baseline in names else None
            comparisons.append(
                compare_ab(
                    engine,
                    name,
                    since=start,
                    until=end,
                    control=use,
                    min_samples=min_samples,
                    include_infra_errors=include_infra_errors,
                )
            )
    return Report(
        source=hide_password(source),
        generated_at=now,
        since=start,
        until=end,
        template=template,
        summaries=summaries,
        daily=daily,
        latency=latency,
        errors=errors,
        ab=comparisons,
        models=models,
        users=users,
        has_callers=has_callers,
        scores=scored,
        has_scores=has_scores,
    )


# -- HTML -------------------------------------------------------------------------------------

_CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f6f7f9; color: #1d2330;
  font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 24px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 0 0 12px; }
h3 { font-size: 16px; margin: 16px 0 8px; }
.sub { color: #5b6475; margin: 0 0 20px; }
section { background: #fff; border: 1px solid #e3e6eb; border-radius: 8px;
  padding: 18px 20px; margin: 0 0 20px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 0 0 20px; }
.card { flex: 1 1 160px; background: #fff; border: 1px solid #e3e6eb; border-radius: 8px;
  padding: 12px 16px; }
.card .v { font-size: 24px; font-weight: 600; }
.card .k { color: #5b6475; font-size: 13px; text-transform: uppercase; letter-spacing: .04em; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid #eceef2;
  vertical-align: top; }
th { color: #5b6475; font-weight: 600; white-space: nowrap; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.pattern { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 13px; word-break: break-word; }
.verdict { display: inline-block; padding: 2px 8px; border-radius: 4px; font-weight: 600;
  background: #eef1f5; }
.verdict.better { background: #dff3e4; color: #17632e; }
.verdict.worse { background: #fbe3e3; color: #8a1c1c; }
.verdict.nodata { background: #fdf3d8; color: #6b5200; }
.caption { color: #5b6475; margin: 0 0 4px; }
.note { color: #5b6475; font-size: 13px; margin: 8px 0 0; }
.chart { width: 100%; min-height: 360px; }
.empty { color: #5b6475; font-style: italic; }
footer { color: #5b6475; font-size: 13px; }
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _colors(templates: Sequence[str]) -> dict[str, str]:
    return {t: _PALETTE[i % len(_PALETTE)] for i, t in enumerate(sorted(templates))}


def _figure_html(figure: Any, div_id: str, height: int) -> str:
    figure.update_layout(
        template="plotly_white",
        height=height,
        margin={"l": 64, "r": 24, "t": 36, "b": 48},
        font={"size": 13},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
    )
    return str(
        figure.to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=div_id,
            default_width="100%",
            default_height=f"{height}px",
            config={"displaylogo": False, "responsive": True},
        )
    )


def _daily_totals(report: Report) -> dict[_dt.date, tuple[int, int, Decimal]]:
    """UTC day -> (calls, unpriced calls, known cost)."""
    out: dict[_dt.date, tuple[int, int, Decimal]] = {}
    for row in report.daily:
        calls, unpriced, cost = out.get(row.day, (0, 0, Decimal(0)))
        out[row.day] = (
            calls + row.executions,
            unpriced + row.executions - row.priced_executions,
            cost + row.cost_usd,
        )
    return out


def _cost_chart(report: Report, colors: dict[str, str]) -> str:
    import plotly.graph_objects as go

    days = sorted({row.day for row in report.daily})
    figure = go.Figure()
    for name in sorted({row.template for row in report.daily}):
        by_day = {row.day: row for row in report.daily if row.template == name}
        y: list[float | None] = []
        custom: list[list[Any]] = []
        for d in days:
            row = by_day.get(d)
            if row is None:
                y.append(0.0)
                custom.append([0, ""])
                continue
            unpriced = row.executions - row.priced_executions
            # No bar (not a $0 one) where none of the calls has a cost.
            y.append(float(row.cost_usd) if row.priced_executions else None)
            custom.append(
                [row.executions, f" ({unpriced:,} unpriced: cost unknown)" if unpriced else ""]
            )
        figure.add_trace(
            go.Bar(
                name=name,
                x=[d.isoformat() for d in days],
                y=y,
                customdata=custom,
                marker_color=colors.get(name),
                hovertemplate=f"{html.escape(name)}<br>%{{x}}: $%{{y:.6f}}"
                "<br>%{customdata[0]} calls%{customdata[1]}<extra></extra>",
            )
        )
    for day, (calls, unpriced, cost) in _daily_totals(report).items():
        if not unpriced:
            continue
        figure.add_annotation(
            x=day.isoformat(),
            y=float(cost),
            text=UNKNOWN if unpriced >= calls else f"+ {unpriced:,} unpriced",
            showarrow=False,
            yanchor="bottom",
            font={"color": "#8a1c1c"},
        )
    figure.update_layout(
        barmode="stack",
        xaxis={"type": "category", "title": None},
        yaxis={"title": "USD", "tickformat": "$.4~f", "rangemode": "tozero"},
    )
    return _figure_html(figure, "chart-daily-cost", 420)


def _unpriced_days_note(report: Report) -> str:
    days = [
        f"{day.isoformat()}: {format_cost(cost, calls, unpriced)}"
        + (f" ({calls:,} calls)" if unpriced >= calls else f" ({unpriced:,} of {calls:,} calls)")
        for day, (calls, unpriced, cost) in sorted(_daily_totals(report).items())
        if unpriced
    ]
    if not days:
        return ""
    return (
        "<p class='note unpriced'>Days with unpriced calls (no cost recorded; the bars sum the "
        f"priced calls, never a $0 for the others): {_e('; '.join(days))}.</p>"
    )


def _log_ticks(low: float, high: float) -> list[float]:
    """1-2-5 tick values covering [low, high] for a log axis (one label per step)."""
    ticks: list[float] = []
    decade = 10.0 ** math.floor(math.log10(max(low, 1e-3)))
    while decade <= high * 10:
        for m in (1, 2, 5):
            value = m * decade
            if low / 2 <= value <= high * 2:
                ticks.append(value)
        decade *= 10
    return ticks


def _latency_chart(report: Report, colors: dict[str, str]) -> str:
    import plotly.graph_objects as go

    figure = go.Figure()
    names = [row.template for row in report.latency]
    for row in report.latency:
        p = row.percentiles
        figure.add_trace(
            go.Box(
                name=row.template,
                x=[row.template],
                q1=[p[0.25]],
                median=[p[0.5]],
                q3=[p[0.75]],
                lowerfence=[p[0.0]],
                upperfence=[p[1.0]],
                mean=[row.mean_ms],
                marker_color=colors.get(row.template),
                boxpoints=False,
                showlegend=False,
            )
        )
    for fraction, symbol in ((0.95, "diamond"), (0.99, "x")):
        label = f"p{fraction * 100:g}"
        figure.add_trace(
            go.Scatter(
                name=label,
                x=names,
                y=[row.percentiles[fraction] for row in report.latency],
                mode="markers",
                marker={"symbol": symbol, "size": 10, "color": "#1d2330"},
                hovertemplate=f"%{{x}}<br>{label}: %{{y:.1f}} ms<extra></extra>",
            )
        )
    low = min(row.percentiles[0.0] for row in report.latency)
    high = max(row.percentiles[1.0] for row in report.latency)
    ticks = _log_ticks(max(low, 0.01), max(high, 0.01))
    figure.update_layout(
        yaxis={
            "type": "log",
            "title": "ms (log scale)",
            "tickvals": ticks,
            "ticktext": [f"{t:g}" for t in ticks],
        },
        xaxis={"title": None, "type": "category"},
    )
    return _figure_html(figure, "chart-latency", 440)


def _ab_chart(comparison: ABComparison, index: int) -> str:
    import plotly.graph_objects as go

    variants = comparison.variants
    figure = go.Figure(
        go.Bar(
            x=[v.label for v in variants],
            y=[v.success_rate * 100 for v in variants],
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [((v.ci_high or v.success_rate) - v.success_rate) * 100 for v in variants],
                "arrayminus": [
                    (v.success_rate - (v.ci_low or v.success_rate)) * 100 for v in variants
                ],
                "thickness": 1.5,
                "color": "#1d2330",
            },
            marker_color=["#9aa5b8" if v.is_baseline else "#4C78A8" for v in variants],
            text=[format_pct(v.success_rate) for v in variants],
            textposition="inside",
            insidetextanchor="middle",
            customdata=[[v.executions, v.verdict] for v in variants],
            hovertemplate="%{x}: %{y:.1f}% of %{customdata[0]} calls<br>%{customdata[1]}"
            "<extra></extra>",
        )
    )
    figure.update_layout(
        # A bar starts at zero: a cut axis would make small differences look large.
        yaxis={"title": "success %", "range": [0, 105]},
        xaxis={"title": None, "type": "category"},
        showlegend=False,
    )
    return _figure_html(figure, f"chart-ab-{index}", 360)


_VERDICT_CLASSES = {
    ABDirection.BETTER: "better",
    ABDirection.WORSE: "worse",
    ABDirection.INSUFFICIENT_DATA: "nodata",
}


def _verdict_class(outcome: ABVerdict | None) -> str:
    return "" if outcome is None else _VERDICT_CLASSES.get(outcome.direction, "")


def _sequential_cells(outcome: ABVerdict | None) -> str:
    """The sequential p-value and verdict cells of a variant (empty for the control)."""
    if outcome is None:
        return "<td class='n'></td><td></td>"
    p_value = "" if outcome.sequential_p_value is None else f"{outcome.sequential_p_value:.3g}"
    css = _VERDICT_CLASSES.get(outcome.sequential_direction, "")
    return (
        f"<td class='n'>{p_value}</td>"
        f"<td><span class='verdict {css}'>{_e(outcome.sequential_text)}</span></td>"
    )


def _ab_section(comparison: ABComparison, index: int) -> str:
    rows = []
    for v in comparison.variants:
        ci = (
            f"{format_pct(v.ci_low)} \u2013 {format_pct(v.ci_high)}"
            if v.ci_low is not None
            else "n/a"
        )
        p_value = "" if v.p_value is None else f"{v.p_value:.3g}"
        rows.append(
            "<tr>"
            f"<td>{_e(v.label)}{' (control)' if v.is_baseline else ''}</td>"
            f"<td class='n'>{v.executions:,}</td>"
            f"<td class='n'>{format_pct(v.success_rate)}</td>"
            f"<td class='n'>{ci}</td>"
            f"<td class='n'>{format_ms(v.mean_latency_ms)}</td>"
            f"<td class='n'>{format_ms(v.p95_latency_ms)}</td>"
            f"<td class='n'>{format_usd(v.mean_cost_usd)}</td>"
            f"<td class='n'>{format_usd(v.cost_per_success_usd)}</td>"
            f"<td class='n'>{p_value}</td>"
            f"<td><span class='verdict {_verdict_class(v.outcome)}'>{_e(v.verdict)}</span></td>"
            f"{_sequential_cells(v.outcome)}</tr>"
        )
    ci_label = f"{comparison.confidence * 100:g}% CI"
    return (
        f"<h3>{_e(comparison.template)} <span class='caption'>vs control "
        f"{_e(comparison.baseline)} ({_e(comparison.control_source)})</span></h3>"
        f"<p>{'<br>'.join(_e(line) for line in comparison.summary.splitlines())}</p>"
        f"<p class='caption'>Success rate per variant, with its {ci_label.replace('CI', '')}"
        "confidence interval (Wilson)</p>"
        + _ab_chart(comparison, index)
        + "<table><thead><tr><th>variant</th><th class='n'>calls</th>"
        f"<th class='n'>success</th><th class='n'>{ci_label}</th><th class='n'>mean ms</th>"
        "<th class='n'>p95 ms</th><th class='n'>mean cost</th><th class='n'>cost / success</th>"
        "<th class='n'>p</th><th>fixed horizon</th>"
        "<th class='n'>seq. p</th><th>sequential</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def _summary_table(report: Report) -> str:
    latency = {row.template: row for row in report.latency}
    nested = report.has_nested_calls
    rows = []
    for s in report.summaries:
        lat = latency.get(s.template)
        rolled = report.rolled_up(s.template) if nested else None
        rolled_cell = (
            f"<td class='n rolled'>{rolled.cost_text if rolled else ''}</td>" if nested else ""
        )
        rows.append(
            "<tr>"
            f"<td>{_e(s.template)}</td>"
            f"<td class='n'>{s.executions:,}</td>"
            f"<td class='n'>{format_pct(s.success_rate)}</td>"
            f"<td class='n'>{s.failures:,}</td>"
            f"<td class='n'>{s.no_usage_executions:,}</td>"
            f"<td class='n'>{s.unpriced_executions:,}</td>"
            f"<td class='n'>{format_cost(s.cost_usd, s.executions, s.unpriced_executions)}</td>"
            f"{rolled_cell}"
            "<td class='n'>"
            f"{format_cost_per_call(s.cost_usd, s.executions, s.unpriced_executions)}</td>"
            f"<td class='n'>{format_ms(lat.p50_ms if lat else None)}</td>"
            f"<td class='n'>{format_ms(lat.p95_ms if lat else None)}</td>"
            f"<td class='n'>{format_ms(lat.p99_ms if lat else None)}</td>"
            "</tr>"
        )
    total = (
        "<tfoot><tr class='total'><th>total</th>"
        f"<th class='n'>{report.executions:,}</th>"
        f"<th class='n'>{format_pct(report.successes / report.executions)}</th>"
        f"<th class='n'>{report.executions - report.successes:,}</th>"
        f"<th class='n'>{report.no_usage_executions:,}</th>"
        f"<th class='n'>{report.unpriced_executions:,}</th>"
        f"<th class='n'>{report.cost_text}</th>"
        + ("<th></th>" if nested else "")
        + "<th class='n'>"
        f"{format_cost_per_call(report.cost_usd, report.executions, report.unpriced_executions)}"
        "</th><th></th><th></th><th></th></tr></tfoot>"
    )
    nested_note = (
        " With nested calls: a template's cost together with that of the logged calls made "
        "inside its executions (any depth); a nested call counts in its own row as well, so "
        "this column does not add up to the total (the cost column does)."
        if nested
        else ""
    )
    return (
        "<table><thead><tr><th>template</th><th class='n'>calls</th><th class='n'>success</th>"
        "<th class='n'>errors</th><th class='n'>no usage</th><th class='n'>no cost</th>"
        "<th class='n'>cost</th>"
        + ("<th class='n'>with nested calls</th>" if nested else "")
        + "<th class='n'>cost / call</th>"
        "<th class='n'>p50 ms</th><th class='n'>p95 ms</th><th class='n'>p99 ms</th></tr>"
        "</thead><tbody>" + "".join(rows) + "</tbody>" + total + "</table>"
        "<p class='note'>No usage: calls with neither an input nor an output token count. "
        "No cost: calls without a recorded cost (unpriced: an unknown model, no usage); cost "
        f"sums the priced calls and cost / call is their mean.{nested_note}</p>"
    )


def _model_chart(report: Report) -> str:
    import plotly.graph_objects as go

    days = sorted({row.day for row in report.models})
    figure = go.Figure()
    for i, total in enumerate(report.model_totals):
        name = total.model or "(no model)"
        by_day = {row.day: row for row in report.models if row.model == total.model}
        y: list[float | None] = []
        calls: list[int] = []
        for d in days:
            row = by_day.get(d)
            calls.append(row.calls if row else 0)
            # No bar (not a $0 one) where none of the calls has a cost.
            y.append(float(row.cost_usd) if row and row.priced_calls else None)
        figure.add_trace(
            go.Bar(
                name=name,
                x=[d.isoformat() for d in days],
                y=y,
                customdata=calls,
                marker_color=_PALETTE[i % len(_PALETTE)],
                hovertemplate=f"{html.escape(name)}<br>%{{x}}: $%{{y:.6f}}"
                "<br>%{customdata} calls<extra></extra>",
            )
        )
    figure.update_layout(
        barmode="stack",
        xaxis={"type": "category", "title": None},
        yaxis={"title": "USD", "tickformat": "$.4~f", "rangemode": "tozero"},
    )
    return _figure_html(figure, "chart-model-cost", 380)


def _model_table(report: Report) -> str:
    totals = report.model_totals
    if not totals:
        return "<p class='empty'>No Gemini calls in this window.</p>"
    rows = [
        "<tr>"
        f"<td>{_e(t.model or '(no model)')}</td>"
        f"<td class='n'>{t.calls:,}</td>"
        f"<td class='n'>{t.failed_calls:,}</td>"
        f"<td class='n'>{t.input_tokens:,}</td>"
        f"<td class='n'>{t.output_tokens:,}</td>"
        f"<td class='n'>{_e(t.cost_text)}</td>"
        "</tr>"
        for t in totals
    ]
    return (
        "<table id='models'><thead><tr><th>model</th><th class='n'>calls</th>"
        "<th class='n'>failed</th><th class='n'>input tokens</th>"
        "<th class='n'>output tokens</th><th class='n'>cost</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
        "<p class='note'>A call is one Gemini request, priced at its own model (a function "
        "that calls two models counts under both); a call recorded without its requests "
        "(log_prompt_execution, older records) counts under the execution's model.</p>"
    )


USERS_SHOWN = 20
"""How many users the report tables list (highest cost first)."""


def _users_table(report: Report) -> str:
    if not report.has_callers:
        return (
            "<p class='empty'>This store predates the caller columns (schema revision 0005): "
            "run <code>vividly-trace db upgrade</code> to record users and sessions.</p>"
        )
    known = report.known_users
    if not known:
        return (
            "<p class='empty'>No call in this window carries a user: bind one with "
            "<code>vividly_trace.context(user_id=...)</code> or the ASGI / WSGI middleware.</p>"
        )
    shown = known[:USERS_SHOWN]
    rest = report.anonymous

    def row(u: UserCost, name: str) -> str:
        return (
            "<tr>"
            f"<td>{_e(name)}</td>"
            f"<td class='n'>{u.calls:,}</td>"
            f"<td class='n'>{u.sessions:,}</td>"
            f"<td class='n'>{u.failed_calls:,}</td>"
            f"<td class='n'>{_e(format_cost(u.cost_usd, u.calls, u.unpriced_calls))}</td>"
            f"<td class='n'>{_e(format_cost_per_call(u.cost_usd, u.calls, u.unpriced_calls))}"
            "</td>"
            f"<td class='n'>{u.last_seen.strftime('%Y-%m-%d %H:%M')}</td>"
            "</tr>"
        )

    rows = [row(u, u.user_id or "") for u in shown]
    if rest is not None:
        rows.append(row(rest, "(no user)"))
    more = len(known) - len(shown)
    return (
        "<table id='users-table'><thead><tr><th>user</th><th class='n'>calls</th>"
        "<th class='n'>sessions</th><th class='n'>failed</th><th class='n'>cost</th>"
        "<th class='n'>cost / call</th><th class='n'>last call</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
        + (f"<p class='note'>{more:,} more users not shown.</p>" if more > 0 else "")
        + "<p class='note'>Users as vividly_trace.context() or the middleware bound them; "
        "(no user): the calls made outside any context. Cost sums the priced calls; "
        "'unknown' where none has a cost.</p>"
    )


def _scores_table(report: Report) -> str:
    if not report.has_scores:
        return (
            "<p class='empty'>This store predates the scores table (schema revision 0007): "
            "run <code>vividly-trace db upgrade</code> to record scores.</p>"
        )
    if not report.scores:
        return (
            "<p class='empty'>No execution in this window has a score: send one with "
            "<code>vividly_trace.score(execution_id, name, value)</code> or "
            "<code>call.score(name, value)</code>.</p>"
        )
    rows = [
        "<tr>"
        f"<td>{_e(r.template)}</td><td>{_e(r.name)}</td><td>{_e(r.source)}</td>"
        f"<td>{_e(r.data_type)}</td><td class='n'>{r.count:,}</td>"
        f"<td>{_e(describe_score(r))}</td>"
        "</tr>"
        for r in report.scores
    ]
    return (
        "<table id='scores-table'><thead><tr><th>template</th><th>score</th><th>source</th>"
        "<th>type</th><th class='n'>scored calls</th><th>values</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table><p class='note'>Numeric: mean \u00b1 sample standard deviation; "
        "boolean: the share of true; categorical: the most frequent values. One value per "
        "execution, name and source (the latest given).</p>"
    )


def _errors_table(report: Report) -> str:
    if not report.errors:
        return "<p class='empty'>No failed calls in this window.</p>"
    rows = []
    for p in report.errors:
        rows.append(
            "<tr>"
            f"<td class='n'>{p.count:,}</td>"
            f"<td class='n'>{format_pct(p.share)}</td>"
            f"<td>{_e(p.template)}</td>"
            f"<td>{_e(p.error_type or '')}</td>"
            f"<td class='n'>{_e(p.http_status or '')}</td>"
            f"<td class='pattern' title='{_e(p.example)}'>{_e(p.pattern)}</td>"
            f"<td class='n'>{p.last_seen.strftime('%Y-%m-%d %H:%M')}</td>"
            "</tr>"
        )
    return (
        "<table><thead><tr><th class='n'>count</th><th class='n'>share</th><th>template</th>"
        "<th>error type</th><th class='n'>HTTP</th><th>pattern</th><th class='n'>last seen</th>"
        "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
        "<p class='note'>Share: of the template's failed calls. Numbers, ids, UUIDs, hex and "
        "quoted values in messages are replaced by placeholders so that one kind of error is "
        "one row; hover a pattern to see a real message.</p>"
    )


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page (plotly.js inlined, no network needed).

    Raises:
        MissingExtraError: plotly is not installed (``pip install 'vividly-trace[report]'``).

    .. versionadded:: 0.1.0
    """
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:
        raise MissingExtraError("The HTML report", "report", "plotly") from None
    title = "vividly-trace report" + (f": {report.template}" if report.template else "")
    header = (
        f"<h1>{_e(title)}</h1><p class='sub'>{_e(report.source)} \u00b7 "
        f"{_e(report.window_text)} \u00b7 generated "
        f"{report.generated_at.strftime('%Y-%m-%d %H:%M UTC')}</p>"
    )
    if not report.executions:
        body = "<section><p class='empty'>No executions in this window.</p></section>"
    else:
        colors = _colors(report.templates)
        success = report.successes / report.executions
        cards = "".join(
            f"<div class='card'><div class='k'>{_e(k)}</div><div class='v'>{_e(v)}</div></div>"
            for k, v in (
                ("calls", f"{report.executions:,}"),
                ("success rate", format_pct(success)),
                ("cost", report.cost_text),
                ("calls without usage", f"{report.no_usage_executions:,}"),
                ("calls without cost", f"{report.unpriced_executions:,}"),
                ("templates", str(len(report.summaries))),
            )
        )
        ab = (
            "".join(_ab_section(c, i) for i, c in enumerate(report.ab))
            if report.ab
            else "<p class='empty'>No template has two or more variants (version / A/B group) "
            "in this window.</p>"
        )
        counted = bool(report.ab) and report.ab[0].include_infra_errors
        infra = "counted in" if counted else "left out of"
        body = (
            f"<div class='cards'>{cards}</div>"
            "<section id='cost'><h2>Cost</h2><p class='caption'>Daily cost by template "
            f"(USD, UTC days)</p>{_cost_chart(report, colors)}{_unpriced_days_note(report)}"
            "</section>"
            "<section id='by-model'><h2>Cost by model</h2><p class='caption'>Daily cost by "
            f"model (USD, UTC days)</p>{_model_chart(report) if report.models else ''}"
            f"{_model_table(report)}</section>"
            "<section id='latency'><h2>Latency</h2><p class='caption'>Latency per template: "
            "box from the first to the third quartile with the median (dashed: mean), "
            "whiskers at the minimum and maximum; p95 and p99 marked</p>"
            f"{_latency_chart(report, colors)}</section>"
            f"<section id='ab'><h2>A/B experiments</h2>{ab}"
            "<p class='note'>Each variant is tested against the control (the declared one, "
            "else the rollout's control, else the first version registered or pushed). "
            "Fixed-horizon verdict: a two-sided "
            "two-proportion z-test of the success rates, valid if read once at a horizon "
            "fixed in advance. Sequential verdict: a mixture SPRT, valid however often it is "
            "read, so checking every day does not inflate false positives. Infrastructure "
            f"errors (HTTP 408/429/5xx, timeouts) are {infra} the success rates. "
            "'Not enough data' under "
            f"{report.ab[0].min_samples if report.ab else MIN_SAMPLES}"
            " calls per variant. Cost per success counts the cost of failed calls too.</p>"
            "</section>"
            f"<section id='templates'><h2>Templates</h2>{_summary_table(report)}</section>"
            f"<section id='users'><h2>Users</h2>{_users_table(report)}</section>"
            f"<section id='scores'><h2>Scores</h2>{_scores_table(report)}</section>"
            f"<section id='errors'><h2>Top error patterns</h2>{_errors_table(report)}</section>"
        )
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_e(title)}</title><style>{_CSS}</style>"
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head>"
        f"<body><main>{header}{body}"
        "<footer>Made by vividly-trace. This page is self-contained and works offline."
        "</footer></main></body></html>\n"
    )


def write_html_report(report: Report, path: str | os.PathLike[str]) -> Path:
    """Write :func:`render_html` to ``path`` atomically (a partial file is never left).

    Returns:
        The absolute path written.

    Raises:
        OSError: the file cannot be written (its ``filename`` is ``path``).

    .. versionadded:: 0.1.0
    """
    target = Path(path).expanduser().resolve()
    page = render_html(report)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write the report: {exc.strerror}", str(target)) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(page)
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; a report is meant to be shared
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
