"""The report as terminal tables (rich), laid out to stay readable at 80 columns."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from ._ab import ABComparison, ABDirection, ABVariant, ABVerdict
from ._report import (
    UNKNOWN,
    USERS_SHOWN,
    Report,
    format_cost,
    format_cost_per_call,
    format_ms,
    format_pct,
    format_usd,
)
from ._scores import describe_score

__all__ = ["ab_footnote", "print_ab", "print_report", "print_scores", "print_users"]

_BAR = "\u2588"
_PARTS = " \u258f\u258e\u258d\u258c\u258b\u258a\u2589"


def _bar(value: Decimal, top: Decimal, width: int = 12) -> str:
    if top <= 0 or value <= 0:
        return ""
    eighths = round(float(value / top) * width * 8)
    full, part = divmod(max(eighths, 1), 8)
    return _BAR * full + (_PARTS[part] if part else "")


def _table(title: str, *columns: tuple[str, str]) -> Any:
    from rich import box
    from rich.table import Table

    table = Table(
        title=title,
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        show_edge=False,
    )
    for name, justify in columns:
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    return table


_VERDICT_STYLES = {
    ABDirection.BETTER: "bold green",
    ABDirection.WORSE: "bold red",
    ABDirection.INSUFFICIENT_DATA: "yellow",
}


def _verdict_style(outcome: ABVerdict | None) -> str:
    return "" if outcome is None else _VERDICT_STYLES.get(outcome.direction, "")


def _sequential_style(outcome: ABVerdict) -> str:
    return _VERDICT_STYLES.get(outcome.sequential_direction, "")


_METRIC_COLUMNS = {"success": "success", "cost": "mean cost", "latency": "mean ms"}


def _metric_cell(comparison: ABComparison, v: ABVariant) -> str:
    """The variant's metric with its interval: ``93.2% (90.1\u201395.4)``, ``$0.000412
    ($0.000398\u2013$0.000426)``, ``412 (398\u2013426)``."""
    if v.metric_value is None:
        return UNKNOWN
    interval = ""
    if comparison.metric == "success":
        shown = format_pct(v.metric_value)
        if v.metric_ci_low is not None and v.metric_ci_high is not None:
            interval = f" ({v.metric_ci_low * 100:.1f}\u2013{v.metric_ci_high * 100:.1f})"
        return shown + interval
    show = format_usd if comparison.metric == "cost" else format_ms
    if v.metric_ci_low is not None and v.metric_ci_high is not None:
        interval = f" ({show(v.metric_ci_low)}\u2013{show(v.metric_ci_high)})"
    return show(v.metric_value) + interval


def _ab_table(comparison: ABComparison) -> Any:
    """The variants of one comparison, then per challenger its fixed-horizon and its
    sequential verdict against the control."""
    from rich.text import Text

    ci = f"{comparison.confidence * 100:g}% CI"
    metric = _METRIC_COLUMNS.get(comparison.metric, comparison.metric)
    table = _table(
        f"A/B: {comparison.template} on {comparison.metric}, vs control {comparison.baseline} "
        f"({comparison.control_source})",
        ("variant", "left"),
        ("calls", "right"),
        (f"{metric} ({ci})", "right"),
        ("p95 ms", "right"),
        ("mean cost", "right"),
        ("$/success", "right"),
    )
    for v in comparison.variants:
        table.add_row(
            v.label + (" *" if v.is_baseline else ""),
            f"{v.executions:,}",
            _metric_cell(comparison, v),
            format_ms(v.p95_latency_ms),
            format_usd(v.mean_cost_usd),
            format_usd(v.cost_per_success_usd),
        )
    lines = []
    for v in comparison.variants[1:]:
        outcome = v.outcome
        assert outcome is not None
        text = Text(f"  {v.label} vs control {comparison.baseline}:\n    fixed horizon: ")
        text.append(v.verdict, style=_verdict_style(outcome))
        if v.p_value is not None:
            text.append(f" (p={v.p_value:.3g})")
        text.append("\n    sequential:    ")
        text.append(outcome.sequential_text, style=_sequential_style(outcome))
        if outcome.sequential_p_value is not None:
            text.append(f" (p={outcome.sequential_p_value:.3g})")
        lines.append(text)
    infra = sum(v.infra_errors for v in comparison.variants)
    if comparison.metric == "success" and infra:
        how = "counted in" if comparison.include_infra_errors else "left out of"
        lines.append(Text(f"  {infra:,} infrastructure errors {how} the success rates"))
    return table, lines


def ab_footnote(comparison: ABComparison) -> str:
    """What the verdicts of a comparison mean, in one sentence."""
    fixed = "two-proportion z-test" if comparison.metric == "success" else "Welch t-test"
    return (
        f"* control. Fixed horizon: {fixed} at {comparison.confidence * 100:g}%, valid if read "
        "once at a horizon fixed in advance. Sequential: mixture SPRT, valid however often it "
        f"is read. 'not enough data' under {comparison.min_samples} calls per variant."
    )


def print_ab(comparison: ABComparison, console: Any) -> None:
    """Print one A/B comparison: its table, the verdicts and what they mean."""
    if len(comparison.variants) < 2:
        console.print(comparison.summary)
        return
    table, lines = _ab_table(comparison)
    console.print(table)
    for line in lines:
        console.print(line)
    console.print(ab_footnote(comparison), style="dim", highlight=False)


def print_users(report: Report, console: Any) -> None:
    """Print the users with the highest cost (and the calls without a user) of ``report``.

    .. versionadded:: 0.3.0
    """
    if not report.has_callers:
        console.print(
            "Users: this store predates the caller columns (schema revision 0005); run "
            "'vividly-trace db upgrade' to record users and sessions."
        )
        return
    known = report.known_users
    if not known:
        console.print(
            "Users: no call in this window carries a user (bind one with "
            "vividly_trace.context(user_id=...) or the middleware)."
        )
        return
    table = _table(
        "Cost by user",
        ("user", "left"),
        ("calls", "right"),
        ("sessions", "right"),
        ("failed", "right"),
        ("cost", "right"),
        ("cost/call", "right"),
    )
    rows = [(u.user_id or "", u) for u in known[:USERS_SHOWN]]
    anonymous = report.anonymous
    if anonymous is not None:
        rows.append(("(no user)", anonymous))
    for name, u in rows:
        table.add_row(
            name,
            f"{u.calls:,}",
            f"{u.sessions:,}",
            f"{u.failed_calls:,}",
            format_cost(u.cost_usd, u.calls, u.unpriced_calls),
            format_cost_per_call(u.cost_usd, u.calls, u.unpriced_calls),
        )
    console.print(table)
    more = len(known) - USERS_SHOWN
    if more > 0:
        console.print(f"{more:,} more users not shown.", style="dim")
    console.print()


def print_scores(report: Report, console: Any) -> None:
    """Print the scores of ``report``: per template, name and source, their count and
    values (mean and spread, share of true, most frequent categories).

    .. versionadded:: 0.4.0
    """
    if not report.has_scores:
        console.print(
            "Scores: this store predates the scores table (schema revision 0007); run "
            "'vividly-trace db upgrade' to record scores."
        )
        return
    if not report.scores:
        console.print(
            "Scores: no execution in this window has a score (send one with "
            "vividly_trace.score(execution_id, name, value) or call.score(name, value))."
        )
        return
    table = _table(
        "Scores",
        ("template", "left"),
        ("score", "left"),
        ("source", "left"),
        ("scored", "right"),
        ("values", "left"),
    )
    for r in report.scores:
        table.add_row(r.template, r.name, r.source, f"{r.count:,}", describe_score(r))
    console.print(table)
    console.print()


def print_report(
    report: Report, console: Any, *, users: bool = False, scores: bool = False
) -> None:
    """Print ``report`` on a rich ``Console`` as a few narrow tables (with ``users``, also
    the cost by user; with ``scores``, the scores).

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.3.0 ``users``.
    .. versionchanged:: 0.4.0 ``scores``.
    """
    from rich.text import Text

    console.print(Text("vividly-trace report", style="bold"), Text(f"  {report.source}"))
    console.print(f"Window: {report.window_text}")
    if not report.executions:
        console.print("No executions in this window.")
        return
    success = report.successes / report.executions
    console.print(
        f"{report.executions:,} calls \u00b7 {format_pct(success)} success \u00b7 "
        f"{report.cost_text} \u00b7 {len(report.summaries)} templates"
    )
    console.print(
        f"Calls without usage: {report.no_usage_executions:,} \u00b7 "
        f"without cost: {report.unpriced_executions:,}"
    )
    console.print()

    nested = report.has_nested_calls
    columns = [
        ("template", "left"),
        ("calls", "right"),
        ("success", "right"),
        ("errors", "right"),
        ("cost", "right"),
    ]
    if nested:
        columns.append(("with nested", "right"))
    table = _table("Cost and success by template", *columns, ("cost/call", "right"))
    summaries = sorted(report.summaries, key=lambda s: (-s.cost_usd, s.template))
    for s in summaries:
        cells = [
            s.template,
            f"{s.executions:,}",
            format_pct(s.success_rate),
            f"{s.failures:,}",
            format_cost(s.cost_usd, s.executions, s.unpriced_executions),
        ]
        if nested:
            rolled = report.rolled_up(s.template)
            cells.append(rolled.cost_text if rolled else "")
        cells.append(format_cost_per_call(s.cost_usd, s.executions, s.unpriced_executions))
        table.add_row(*cells)
    if len(summaries) > 1:
        cells = [
            "total",
            f"{report.executions:,}",
            format_pct(success),
            f"{report.executions - report.successes:,}",
            report.cost_text,
        ]
        if nested:
            cells.append("")  # a nested call counts in each ancestor: no meaningful total
        cells.append(
            format_cost_per_call(report.cost_usd, report.executions, report.unpriced_executions)
        )
        table.add_row(*cells, style="bold")
    console.print(table)
    if report.unpriced_executions:
        console.print(
            "Unpriced: no cost recorded. cost sums the priced calls; cost/call is their mean.",
            style="dim",
        )
    if nested:
        console.print(
            "with nested: the cost with the logged calls made inside the template's calls "
            "(any depth); those count in their own rows too, so only cost adds up to the total.",
            style="dim",
        )
    console.print()

    totals = report.model_totals
    if totals:
        table = _table(
            "Cost by model (each Gemini request at its own model)",
            ("model", "left"),
            ("calls", "right"),
            ("failed", "right"),
            ("input tok", "right"),
            ("output tok", "right"),
            ("cost", "right"),
        )
        for t in totals:
            table.add_row(
                t.model or "(no model)",
                f"{t.calls:,}",
                f"{t.failed_calls:,}",
                f"{t.input_tokens:,}",
                f"{t.output_tokens:,}",
                t.cost_text,
            )
        if len(totals) > 1:
            calls = sum(t.calls for t in totals)
            priced = sum(t.priced_calls for t in totals)
            cost = sum((t.cost_usd for t in totals), Decimal(0))
            table.add_row(
                "total",
                f"{calls:,}",
                f"{sum(t.failed_calls for t in totals):,}",
                f"{sum(t.input_tokens for t in totals):,}",
                f"{sum(t.output_tokens for t in totals):,}",
                format_cost(cost, calls, calls - priced),
                style="bold",
            )
        console.print(table)
        console.print()

    if users:
        print_users(report, console)
    if scores:
        print_scores(report, console)

    if report.no_usage_executions or report.unpriced_executions:
        table = _table(
            "Calls without usage or cost",
            ("template", "left"),
            ("calls", "right"),
            ("no usage", "right"),
            ("no cost", "right"),
        )
        for s in summaries:
            table.add_row(
                s.template,
                f"{s.executions:,}",
                f"{s.no_usage_executions:,}",
                f"{s.unpriced_executions:,}",
            )
        table.add_row(
            "total",
            f"{report.executions:,}",
            f"{report.no_usage_executions:,}",
            f"{report.unpriced_executions:,}",
            style="bold",
        )
        console.print(table)
        console.print()

    # day -> [calls, unpriced calls, known cost, {template: (known cost, calls)}]
    per_day: dict[Any, list[Any]] = defaultdict(lambda: [0, 0, Decimal(0), {}])
    for row in report.daily:
        entry = per_day[row.day]
        entry[0] += row.executions
        entry[1] += row.executions - row.priced_executions
        entry[2] += row.cost_usd
        cost, calls = entry[3].get(row.template, (Decimal(0), 0))
        entry[3][row.template] = (cost + row.cost_usd, calls + row.executions)
    top = max((v[2] for v in per_day.values()), default=Decimal(0))
    table = _table(
        "Daily cost (UTC)",
        ("day", "left"),
        ("calls", "right"),
        ("cost", "right"),
        ("", "left"),
        ("top template", "left"),
    )
    for day in sorted(per_day):
        calls, unpriced, cost, by_template = per_day[day]
        leader = max(by_template.items(), key=lambda item: (item[1], item[0]))[0]
        cost_text = format_cost(cost, calls, unpriced)
        bar = "" if cost_text == UNKNOWN else _bar(cost, top)
        table.add_row(day.isoformat(), f"{calls:,}", cost_text, bar, leader)
    console.print(table)
    console.print()

    table = _table(
        "Latency (ms)",
        ("template", "left"),
        ("calls", "right"),
        ("p50", "right"),
        ("p95", "right"),
        ("p99", "right"),
        ("mean", "right"),
    )
    for lat in report.latency:
        table.add_row(
            lat.template,
            f"{lat.executions:,}",
            format_ms(lat.p50_ms),
            format_ms(lat.p95_ms),
            format_ms(lat.p99_ms),
            format_ms(lat.mean_ms),
        )
    console.print(table)
    console.print()

    if report.errors:
        table = _table(
            "Top error patterns",
            ("count", "right"),
            ("template", "left"),
            ("HTTP", "right"),
            ("error", "left"),
        )
        for p in report.errors:
            kind = f"[{p.error_type}] " if p.error_type else ""
            table.add_row(
                f"{p.count:,}",
                p.template,
                str(p.http_status or ""),
                Text(kind + p.pattern),
            )
        console.print(table)
    else:
        console.print("No failed calls in this window.")
    console.print()

    if not report.ab:
        console.print("A/B: no template has two or more variants in this window.")
        return
    for comparison in report.ab:
        table, lines = _ab_table(comparison)
        console.print(table)
        for line in lines:
            console.print(line)
        console.print()
    console.print(ab_footnote(report.ab[0]), style="dim", highlight=False)
