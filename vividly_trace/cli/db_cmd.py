"""``vividly-trace db`` (schema migrations) and ``vividly-trace spool`` (manual replay).

Exit codes: 0 done (including "nothing to do"), 2 a bad URL, an unreachable database, a
missing extra or an unreadable spool, always with one line on stderr. Passwords in URLs are
printed as ``***``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import click

__all__ = ["register"]

_URL_HELP = (
    "SQLAlchemy URL, e.g. postgresql+psycopg://user:pass@host/db (default: "
    "$VIVIDLY_TRACE_DATABASE_URL, else sqlite:///vividly_trace.db)"
)


def _fail(message: str) -> NoReturn:
    click.echo(f"vividly-trace: error: {message}", err=True)
    raise SystemExit(2)


def _default_url(url: str | None) -> str:
    if url:
        return url
    from ..sinks.sql import DEFAULT_URL

    return os.environ.get("VIVIDLY_TRACE_DATABASE_URL") or DEFAULT_URL


def _sink(url: str | None, name: str = "sql") -> Any:
    from ..exceptions import ConfigurationError, MissingExtraError

    try:
        from ..sinks.sql import SQLSink

        return SQLSink(_default_url(url), name=name, connect_timeout=5.0)
    except (ConfigurationError, MissingExtraError) as exc:
        _fail(str(exc))


def _db_error(sink: Any, exc: BaseException) -> NoReturn:
    _fail(f"cannot use the database: {sink._describe(exc)}")


@click.group("db")
def db() -> None:
    """Create or upgrade the SQL store's tables (Alembic migrations shipped in the package)."""


def _one_url(positional: str | None, option: str | None) -> str | None:
    if positional and option and positional != option:
        _fail("give the database URL once (as an argument or with --url)")
    return positional or option


@db.command("upgrade")
@click.argument("url", required=False)
@click.option("--url", "url_option", default=None, help="The same as the URL argument.")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def db_upgrade(url: str | None, url_option: str | None, revision: str) -> None:
    """Bring the database at URL to the newest schema; a second run does nothing.

    URL defaults to $VIVIDLY_TRACE_DATABASE_URL, else sqlite:///vividly_trace.db.
    """
    from ..sinks.sql import migrate

    sink = _sink(_one_url(url, url_option))
    try:
        before, after = migrate.upgrade(sink.engine, revision)
    except Exception as exc:
        _db_error(sink, exc)
    finally:
        sink.close()
    if before == after:
        click.echo(f"{sink.url}: already at revision {after}; nothing to do")
    else:
        click.echo(f"{sink.url}: upgraded from {before or 'an empty database'} to {after}")


@db.command("current")
@click.argument("url", required=False)
@click.option("--url", "url_option", default=None, help="The same as the URL argument.")
def db_current(url: str | None, url_option: str | None) -> None:
    """Print the schema revision of the database at URL (``none`` when never created)."""
    from ..sinks.sql import migrate

    sink = _sink(_one_url(url, url_option))
    try:
        with sink.engine.connect() as conn:
            revision = migrate.current_revision(conn)
    except Exception as exc:
        _db_error(sink, exc)
    finally:
        sink.close()
    newest = migrate.SCHEMA_REVISION
    state = "up to date" if revision == newest else f"newest is {newest}"
    click.echo(f"{sink.url}: revision {revision or 'none'} ({state})")


def _age(ctx: click.Context, param: click.Parameter, value: str) -> Any:
    from ..sinks.sql.retention import parse_age

    try:
        return parse_age(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@db.command("prune")
@click.option(
    "--older-than",
    "older_than",
    required=True,
    callback=_age,
    help="Delete executions that started longer ago than this (e.g. 90d, 12h, 6w).",
)
@click.option("--url", default=None, help=_URL_HELP)
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; change nothing.")
@click.option(
    "--batch-size",
    default=10_000,
    show_default=True,
    type=click.IntRange(1, 1_000_000),
    help="Executions per DELETE transaction.",
)
def db_prune(older_than: Any, url: str | None, dry_run: bool, batch_size: int) -> None:
    """Delete old executions with their Gemini requests, in batches; the template
    statistics are recomputed from the rows that remain. On a partitioned PostgreSQL store,
    months entirely older than the cutoff are dropped as whole partitions."""
    from ..sinks.sql import retention

    sink = _sink(url)
    try:
        result = retention.prune(sink.engine, older_than, batch_size=batch_size, dry_run=dry_run)
    except Exception as exc:
        _db_error(sink, exc)
    finally:
        sink.close()
    verb = "would delete" if result.dry_run else "deleted"
    parts = ""
    if result.dropped_partitions:
        what = "would drop" if result.dry_run else "dropped"
        parts = f"; {what} partitions {', '.join(result.dropped_partitions)}"
    click.echo(
        f"{sink.url}: {verb} {result.executions} executions and {result.requests} requests "
        f"started before {result.cutoff.isoformat()}{parts}"
    )


@db.command("partitions")
@click.option("--url", default=None, help=_URL_HELP)
@click.option(
    "--months-ahead",
    default=3,
    show_default=True,
    type=click.IntRange(0, 120),
    help="Create the partitions of this many months after the current one.",
)
def db_partitions(url: str | None, months_ahead: int) -> None:
    """PostgreSQL: partition prompt_executions by month (converting the table the first
    time, which copies every row under a lock) and create the coming months' partitions.
    Safe to run again (e.g. monthly from cron)."""
    from ..sinks.sql import retention

    sink = _sink(url)
    if sink.engine.dialect.name != "postgresql":
        sink.close()
        _fail("partitions need PostgreSQL (SQLite has no table partitioning)")
    try:
        result = retention.partition(sink.engine, months_ahead=months_ahead)
    except Exception as exc:
        _db_error(sink, exc)
    finally:
        sink.close()
    if result.converted:
        click.echo(f"{sink.url}: partitioned prompt_executions ({result.rows_copied} rows copied)")
    created = ", ".join(result.created) if result.created else "none (all present)"
    moved = (
        f"; {result.moved_from_default} rows moved from the default partition"
        if (result.moved_from_default)
        else ""
    )
    click.echo(f"{sink.url}: partitions created: {created}{moved}")


@click.group("spool")
def spool() -> None:
    """Inspect and replay the local spool of records a sink could not write."""


@spool.command("replay")
@click.option("--url", default=None, help=_URL_HELP)
@click.option(
    "--spool-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Spool directory (default: $VIVIDLY_TRACE_SPOOL_DIR or ~/.cache/vividly_trace/spool).",
)
@click.option("--sink-name", default="sql", show_default=True, help="The SQL sink's name.")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 100_000))
def spool_replay(url: str | None, spool_dir: Path | None, sink_name: str, batch_size: int) -> None:
    """Send a SQL sink's spooled records (and scores) to the database now (idempotent:
    rows already written are skipped; of two values of a score the later one stays), and
    remove what was sent from the spool."""
    from .._dispatch import ScoreChannel
    from .._score import Score
    from .._spool import Spool, default_spool_dir, destination_key

    directory = spool_dir if spool_dir is not None else default_spool_dir()
    sink = _sink(url, sink_name)
    channel = ScoreChannel(sink)
    records = Spool(directory, sink_name, max_bytes=1 << 62, key=destination_key(sink))
    scores = Spool(
        directory, channel.name, 1 << 62, key=destination_key(channel), decode=Score.from_dict
    )
    if not records.directory.is_dir() and not scores.directory.is_dir():
        click.echo(f"nothing to replay: no spool for sink {sink_name!r} in {directory}")
        sink.close()
        return
    skipped: dict[str, int] = {}

    def write(batch: Sequence[Any]) -> None:
        for reason, n in (sink.write_batch(batch) or {}).items():
            skipped[reason] = skipped.get(reason, 0) + n

    try:
        replayed, corrupt = _replay(records, write, batch_size)
        scored, corrupt_scores = _replay(scores, sink.write_scores, batch_size)
    except Exception as exc:
        _db_error(sink, exc)
    finally:
        sink.close()
    details = [f"{n} {reason}" for reason, n in sorted(skipped.items())]
    if corrupt + corrupt_scores:
        details.append(f"{corrupt + corrupt_scores} unreadable lines skipped")
    extra = f" ({', '.join(details)})" if details else ""
    click.echo(f"replayed {replayed} records to {sink.url}{extra}")
    if scores.directory.is_dir():
        click.echo(f"replayed {scored} scores to {sink.url}")


def _replay(store: Any, write: Any, batch_size: int) -> tuple[int, int]:
    """``store.replay``, or (0, 0) when it has no directory; exits on an unreadable spool."""
    if not store.directory.is_dir():
        return 0, 0
    try:
        replayed, corrupt = store.replay(write, batch_size)
    except OSError as exc:
        _fail(f"cannot read the spool in {store.directory}: {exc}")
    return int(replayed), int(corrupt)


def register(cli: Any) -> None:
    """Add the ``db`` and ``spool`` groups to the command line."""
    cli.add_command(db)
    cli.add_command(spool)
