"""``vividly-trace demo``: the example services against local fake Gemini servers, logged
into a SQLite file, then the report in the terminal and as an HTML page.

No network and no key needed; with ``GEMINI_API_KEY`` set, the examples call the real API
instead (fewer calls). Exit codes: 0 done; 2 a --db file that is not a demo database, a
missing extra, or records that did not reach the database.
"""

from __future__ import annotations

from typing import Any

import click

__all__ = ["register"]


@click.command("demo")
@click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False),
    default="vividly_demo.db",
    show_default=True,
    help="SQLite file to (re)create with the demo's calls.",
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False),
    default="vividly_report.html",
    show_default=True,
    help="Where to write the HTML report.",
)
@click.option(
    "--calls",
    default=400,
    show_default=True,
    type=click.IntRange(5, 100_000),
    help="How many calls to make (offline; at most 16 against the real API).",
)
@click.option(
    "--seed",
    default=7,
    show_default=True,
    type=int,
    help="Seed of the fake answers and their start times.",
)
@click.option(
    "--offline",
    is_flag=True,
    help="Use the local fake Gemini servers even when GEMINI_API_KEY is set.",
)
def demo(db_path: str, html_path: str, calls: int, seed: int, offline: bool) -> None:
    """Run the example services through the real google-genai client against local fake
    Gemini servers (no network, no key), log every call into a SQLite file, print the
    report and write the HTML report.

    Two versions of the NLU prompt run as an A/B test; there are async and streaming calls,
    429/500 answers, a blocked prompt, thinking and cached tokens. Start times are spread
    over the last 14 days so the daily charts have something to show. With GEMINI_API_KEY
    set, the services call the real Gemini API instead (unless --offline).
    """
    from rich.console import Console

    from ..analytics._terminal import print_report
    from ..exceptions import ConfigurationError, MissingExtraError
    from .demo_app import DemoError, run_demo

    console = Console(highlight=False)
    err = Console(stderr=True, highlight=False)
    try:
        result = run_demo(
            db_path, html_path, calls=calls, seed=seed, console=err, offline=offline or None
        )
    except (DemoError, ConfigurationError, MissingExtraError) as exc:
        click.echo(f"vividly-trace: error: {' '.join(str(exc).split())}", err=True)
        raise SystemExit(2) from None
    except OSError as exc:  # an unwritable --db or --html location
        where = f": {exc.filename}" if exc.filename else ""
        click.echo(f"vividly-trace: error: {exc.strerror or exc}{where}", err=True)
        raise SystemExit(2) from None
    except ImportError as exc:
        click.echo(
            f"vividly-trace: error: the demo needs the google-genai client ({exc}): "
            "pip install 'vividly-trace[genai,report]'",
            err=True,
        )
        raise SystemExit(2) from None
    where = "local fake Gemini servers" if result.offline else "the Gemini API"
    planned = ", as planned" if result.offline else ""
    console.print(
        f"{result.recorded} calls to {where} logged into {result.db_path} "
        f"in {result.seconds:.1f} s ({result.failures_seen} failed{planned}).",
    )
    if result.unexpected:
        for message, count in sorted(result.unexpected.items()):
            err.print(f"unexpected error ({count}x): {message}", style="yellow")
    console.print()
    print_report(result.report, console)
    console.print()
    if result.html_path is not None:
        console.print(
            f"HTML report: {result.html_path}  (self-contained, opens offline)", soft_wrap=True
        )
    console.print(f"Explore: vividly-trace report --since all --url {result.url}", soft_wrap=True)


def register(cli: Any) -> None:
    """Add ``demo`` to the command line."""
    cli.add_command(demo)
