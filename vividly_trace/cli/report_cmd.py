"""``vividly-trace report``, ``tail`` and ``reprice``: read (and reprice) the SQL store.

Exit codes: 0 done; 2 a bad URL, an unreachable database, missing tables, a bad option
value or a missing extra, always as one line on stderr (``vividly-trace: error: ...``) with
the password of the URL hidden. Progress bars go to stderr; results to stdout.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from decimal import Decimal
from typing import Any, NoReturn, TypeVar

import click

__all__ = ["register"]

T = TypeVar("T")

_URL_HELP = (
    "Database URL, e.g. postgresql+psycopg://user:pass@host/db or sqlite:///file.db "
    "(default: $VIVIDLY_TRACE_DATABASE_URL, else sqlite:///vividly_trace.db)."
)
_TIME_HELP = "e.g. 7d, 24h, 30m, 2w, today, 2026-11-01, 2026-11-01T12:00:00Z"


def _fail(message: str) -> NoReturn:
    click.echo(f"vividly-trace: error: {' '.join(str(message).split())}", err=True)
    raise SystemExit(2)


def _guarded(action: Callable[[], T]) -> T:
    """Run ``action``; known failures become one line on stderr and exit status 2."""
    from ..analytics import StoreError
    from ..exceptions import ConfigurationError, MissingExtraError

    try:
        return action()
    except (StoreError, ConfigurationError, MissingExtraError) as exc:
        _fail(str(exc))
    except OSError as exc:  # e.g. the --html file cannot be written
        where = f": {exc.filename}" if exc.filename else ""
        _fail(f"{exc.strerror or exc}{where}")


def _url(url: str | None) -> str:
    from ..analytics import default_url

    return url or default_url()


def _stdout() -> Any:
    from rich.console import Console

    return Console(highlight=False)


def _stderr() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


@contextmanager
def _steps(total: int, description: str) -> Iterator[Callable[[str], None]]:
    """A progress bar on stderr advanced once per named step."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = _stderr()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task(description, total=total)
        started = [False]

        def step(name: str) -> None:
            if started[0]:
                progress.advance(task)
            started[0] = True
            progress.update(task, description=f"{description}: {name}")

        yield step
        progress.update(task, completed=total)


# -- report -----------------------------------------------------------------------------------


@click.command("report")
@click.option("--url", default=None, help=_URL_HELP)
@click.option("--template", "-t", default=None, help="Only this template key.")
@click.option(
    "--since",
    default="30d",
    show_default=True,
    help=f"Start of the window ({_TIME_HELP}). Use 'all' for no limit.",
)
@click.option("--until", default=None, help="End of the window, exclusive (default: now).")
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Also write a self-contained HTML report (charts; opens offline) to this file.",
)
@click.option(
    "--top",
    default=10,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Error patterns to show.",
)
@click.option(
    "--control",
    "--baseline",
    "baseline",
    default=None,
    help="A/B control variant (e.g. v3/A, v3 or A); default: the rollout's control, else the "
    "first version registered or pushed, else the lowest version.",
)
@click.option(
    "--include-infra-errors",
    is_flag=True,
    help="Count infrastructure failures (HTTP 408/429/5xx, timeouts, cancellations) in the "
    "A/B success rates (default: left out, so an outage does not decide an experiment).",
)
@click.option(
    "--min-samples",
    default=30,
    show_default=True,
    type=click.IntRange(1),
    help="Calls per variant before an A/B verdict.",
)
@click.option(
    "--users",
    is_flag=True,
    help="Also show the cost by user (the users that vividly_trace.context or the "
    "middleware bound), highest first.",
)
@click.option(
    "--scores",
    is_flag=True,
    help="Also show the scores (vividly_trace.score) per template: count, mean, categories.",
)
def report(
    url: str | None,
    template: str | None,
    since: str,
    until: str | None,
    html_path: str | None,
    top: int,
    baseline: str | None,
    min_samples: int,
    users: bool,
    scores: bool,
    include_infra_errors: bool,
) -> None:
    """Cost by day and template, cost by model, latency p50/p95/p99, error patterns and A/B
    verdicts (with --users, the cost by user too; with --scores, the scores).

    Cost by model counts each Gemini request at its own model (a function calling two
    models counts under both). When logged calls are nested in others, the template table
    also shows each template's cost with its nested calls. Prints terminal tables; with
    --html, also writes one HTML page with the charts.
    """
    from ..analytics import build_report
    from ..analytics._terminal import print_report

    def run() -> Any:
        with _steps(9 if html_path else 8, "Building the report") as step:
            result = build_report(
                _url(url),
                since=None if since.strip().lower() == "all" else since,
                until=until,
                template=template,
                top_errors=top,
                baseline=baseline,
                min_samples=min_samples,
                progress=step,
                include_infra_errors=include_infra_errors,
            )
            written = None
            if html_path:
                from ..analytics import write_html_report

                step("HTML page")
                written = write_html_report(result, html_path)
        return result, written

    result, written = _guarded(run)
    console = _stdout()
    print_report(result, console, users=users, scores=scores)
    if written is not None:
        console.print(f"HTML report written to {written}")


# -- tail ---------------------------------------------------------------------------------------


def _tail_summary(shown: int, no_usage: int, no_cost: int) -> str:
    """The closing line of ``tail``: how many of the calls shown lack usage or cost."""
    calls = "call" if shown == 1 else "calls"
    return f"{shown:,} {calls} shown: {no_usage:,} without usage, {no_cost:,} without cost"


def _tail_line(row: Any) -> Any:
    from rich.text import Text

    from ..analytics import variant_label
    from ..analytics._report import format_ms, format_usd

    when = row.executed_at.strftime("%Y-%m-%d %H:%M:%S")
    name = row.template
    if row.version or row.ab_group:
        name += " " + variant_label(row.version, row.ab_group)
    text = Text(f"{when}  ")
    text.append(f"{name:<28}", style="bold")
    text.append(" ok  " if row.success else " FAIL", style="green" if row.success else "red")
    text.append(f" {format_ms(row.response_time_ms):>7} ms")
    if row.input_tokens is not None or row.output_tokens is not None:
        tokens = (row.input_tokens or 0) + (row.output_tokens or 0)
        text.append(f" {tokens:>6} tok")
    else:
        text.append("   no usage", style="yellow")
    if row.cost_usd is not None:
        text.append(f"  {format_usd(row.cost_usd)}")
    else:
        text.append(f"  cost {format_usd(None)}", style="yellow")
    if row.model:
        text.append(f"  {row.model}", style="dim")
    if not row.success:
        status = f"{row.http_status} " if row.http_status else ""
        message = " ".join((row.error_message or "").split())[:160]
        text.append(f"  {status}{row.error_type or 'error'}: {message}", style="red")
    return text


@click.command("tail")
@click.option("--url", default=None, help=_URL_HELP)
@click.option("--template", "-t", default=None, help="Only this template key.")
@click.option(
    "--interval",
    default=2.0,
    show_default=True,
    type=click.FloatRange(0.05, 3600),
    help="Seconds between polls.",
)
@click.option(
    "--last",
    default=10,
    show_default=True,
    type=click.IntRange(0, 10_000),
    help="Show this many recent executions first.",
)
@click.option("--once", is_flag=True, help="Show the recent executions and exit.")
@click.option(
    "--limit", default=None, type=click.IntRange(1), help="Exit after showing this many executions."
)
@click.option(
    "--lookback",
    default=300.0,
    show_default=True,
    type=click.FloatRange(1),
    help="Seconds of late arrivals to look for: records are written after the call "
    "ends and in batches, so they can arrive after newer ones.",
)
def tail(
    url: str | None,
    template: str | None,
    interval: float,
    last: int,
    once: bool,
    limit: int | None,
    lookback: float,
) -> None:
    """Follow new executions as they are written (Ctrl-C to stop).

    Polls the store every --interval seconds for executions it has not shown yet, by start
    time and id. Records that reach the database more than --lookback seconds after newer
    ones (a spool replayed much later) are not shown. A call without token counts says
    "no usage", one without a cost "cost unknown"; a closing line counts them.
    """
    from ..analytics import StoreError, open_store, recent_executions

    console = _stdout()
    err = _stderr()
    seen: dict[str, _dt.datetime] = {}
    shown = no_usage = no_cost = 0
    window = _dt.timedelta(seconds=lookback)

    def show(rows: list[Any]) -> bool:
        nonlocal shown, no_usage, no_cost
        for row in rows:
            if row.id in seen:
                continue
            seen[row.id] = row.executed_at
            console.print(_tail_line(row), soft_wrap=True)
            shown += 1
            no_usage += row.input_tokens is None and row.output_tokens is None
            no_cost += row.cost_usd is None
            if limit is not None and shown >= limit:
                return True
        return False

    def follow() -> None:
        with open_store(_url(url)) as engine:
            rows = recent_executions(engine, template=template, limit=last) if last else []
            if show(list(rows)) or once:
                return
            mark = max((r.executed_at for r in rows), default=_dt.datetime.now(_dt.timezone.utc))
            if not rows:
                err.print("Waiting for new executions (Ctrl-C to stop)...", style="dim")
            failing = False
            while True:
                time.sleep(interval)
                try:
                    rows = recent_executions(
                        engine, since=mark - window, template=template, limit=None
                    )
                except StoreError as exc:
                    if not failing:
                        err.print(f"vividly-trace: {exc}; retrying", style="yellow")
                    failing = True
                    continue
                if failing:
                    err.print("vividly-trace: the database answers again", style="dim")
                    failing = False
                if show(list(rows)):
                    return
                if rows:
                    mark = max(mark, max(r.executed_at for r in rows))
                cutoff = mark - window
                for key in [k for k, at in seen.items() if at < cutoff]:
                    del seen[key]

    with suppress(KeyboardInterrupt):
        _guarded(follow)
    if shown:
        console.print(_tail_summary(shown, no_usage, no_cost), style="dim", soft_wrap=True)


# -- reprice ----------------------------------------------------------------------------------


def _change(old: Decimal, new: Decimal) -> str:
    from ..analytics._report import format_usd

    delta = new - old
    if delta == 0:
        return "="
    sign = "+" if delta > 0 else "-"
    pct = f" ({delta / old * 100:+.1f}%)" if old else ""
    return f"{sign}{format_usd(abs(delta))}{pct}"


@click.command("reprice")
@click.option("--url", default=None, help=_URL_HELP)
@click.option(
    "--pricing",
    "pricing_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="A TOML/JSON price table (default: the packaged one; see 'vividly-trace pricing').",
)
@click.option("--dry-run", is_flag=True, help="Show what would change per template; write nothing.")
@click.option("--template", "-t", default=None, help="Only this template key.")
@click.option("--since", default=None, help=f"Only executions from this time ({_TIME_HELP}).")
@click.option("--until", default=None, help="Only executions before this time.")
@click.option(
    "--batch-size",
    default=1000,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Rows per transaction.",
)
def reprice_command(
    url: str | None,
    pricing_path: str | None,
    dry_run: bool,
    template: str | None,
    since: str | None,
    until: str | None,
    batch_size: int,
) -> None:
    """Recompute stored costs from stored token counts with the current (or a given) price
    table, and record its version.

    A call with Gemini request rows is repriced request by request, each at its own model;
    its cost becomes their sum.

    Each batch is one transaction; the database's triggers move the templates' total_cost_usd
    statistic with it (the store must be at the current schema: 'vividly-trace db upgrade').
    Running it twice changes nothing the second time.
    """
    from rich import box
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.table import Table

    from ..analytics import reprice
    from ..analytics._report import format_usd

    def run() -> Any:
        err = _stderr()
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
            disable=not err.is_terminal,
        ) as progress:
            task = progress.add_task("Repricing" if not dry_run else "Pricing (dry run)")

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            return reprice(
                _url(url),
                pricing=pricing_path,
                dry_run=dry_run,
                template=template,
                since=since,
                until=until,
                batch_size=batch_size,
                progress=advance,
            )

    result = _guarded(run)
    console = _stdout()
    title = (
        f"Dry run with prices {result.pricing_version}: nothing written"
        if dry_run
        else f"Repriced with prices {result.pricing_version}"
    )
    table = Table(
        title=title,
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
    )
    for name, justify in (
        ("template", "left"),
        ("calls", "right"),
        ("to update" if dry_run else "updated", "right"),
        ("old cost", "right"),
        ("new cost", "right"),
        ("change", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in result.templates:
        table.add_row(
            row.template,
            f"{row.executions:,}",
            f"{row.updated:,}",
            format_usd(row.old_cost_usd),
            format_usd(row.new_cost_usd),
            _change(row.old_cost_usd, row.new_cost_usd),
        )
    if len(result.templates) > 1:
        table.add_row(
            "total",
            f"{result.executions:,}",
            f"{result.updated:,}",
            format_usd(result.old_cost_usd),
            format_usd(result.new_cost_usd),
            _change(result.old_cost_usd, result.new_cost_usd),
            style="bold",
        )
    if not result.templates:
        console.print("No executions to reprice.")
        return
    console.print(table)
    if result.unpriced:
        models = ", ".join(result.unknown_models) or "(no model name recorded)"
        console.print(
            f"{result.unpriced:,} calls with tokens left as they were, no price for: {models}. "
            "Add the models with --pricing FILE."
        )
    if result.no_tokens:
        console.print(f"{result.no_tokens:,} calls have no token counts (nothing to price).")
    if not dry_run:
        console.print(
            f"{result.updated:,} calls updated; template cost totals match their executions."
        )


def register(cli: Any) -> None:
    """Add ``report``, ``tail`` and ``reprice`` to the command line."""
    cli.add_command(report)
    cli.add_command(tail)
    cli.add_command(reprice_command, name="reprice")
