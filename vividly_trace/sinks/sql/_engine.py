"""The SQL sink's database connection: URL checks, engine and connection settings, error text."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.pool import StaticPool

from ..._jsonsafe import mask_url_password
from ...exceptions import ConfigurationError, MissingExtraError

__all__ = [
    "DEFAULT_URL",
    "create_engine",
    "describe_error",
    "parse_url",
    "spool_key",
    "sqlite_file",
]

DEFAULT_URL = "sqlite:///vividly_trace.db"
"""Where ``SQLSink()`` and ``configure()`` write when no URL is given."""


def parse_url(raw: str | URL) -> URL:
    """``raw`` checked and completed: psycopg 3 for PostgreSQL, SQLite paths made absolute.

    Raises:
        ConfigurationError: not a URL, another database, or no database named.
        MissingExtraError: a PostgreSQL URL without psycopg installed.
    """
    if isinstance(raw, URL):
        url = raw
    else:
        if not isinstance(raw, str) or not raw.strip():
            raise ConfigurationError("SQLSink: the database URL must be a non-empty string")
        try:
            url = make_url(raw.strip())
        except (sa_exc.ArgumentError, ValueError, TypeError):
            raise ConfigurationError(
                f"SQLSink: cannot parse the database URL {mask_url_password(raw.strip())!r}; "
                "expected e.g. sqlite:///vividly_trace.db or "
                "postgresql+psycopg://user:password@host:5432/dbname"
            ) from None
    masked = url.render_as_string(hide_password=True)
    backend = url.get_backend_name()
    if backend == "postgres":  # the Heroku-style scheme
        url = url.set(drivername="postgresql+psycopg")
        backend = "postgresql"
    if backend not in ("sqlite", "postgresql"):
        raise ConfigurationError(
            f"SQLSink supports sqlite and postgresql databases, not {backend!r} ({masked})"
        )
    if backend == "postgresql":
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        if url.drivername == "postgresql+psycopg" and importlib.util.find_spec("psycopg") is None:
            raise MissingExtraError("SQLSink for PostgreSQL", "postgres", "psycopg")
        if not url.database:
            raise ConfigurationError(f"SQLSink: the URL names no database ({masked})")
    elif url.database and not _sqlite_in_memory(url) and not url.database.startswith("file:"):
        # Resolve now: the worker may connect after the application changed directory.
        url = url.set(database=os.path.abspath(os.path.expanduser(url.database)))
    return url


def _sqlite_in_memory(url: URL) -> bool:
    db = url.database or ""
    return db in ("", ":memory:") or "mode=memory" in db


def sqlite_file(url: URL) -> str | None:
    """The file of a SQLite database given by path; ``None`` for anything else."""
    db = url.database or ""
    if url.get_backend_name() != "sqlite" or not db or _sqlite_in_memory(url):
        return None
    return None if db.startswith("file:") else db


def spool_key(url: URL) -> str:
    """Where ``url`` writes (password hidden; SQLite paths made absolute)."""
    database = url.database or ""
    if url.get_backend_name() == "sqlite" and database and not _sqlite_in_memory(url):
        if not database.startswith("file:"):
            database = os.path.abspath(database)
        return f"sqlite:{database}"
    return url.render_as_string(hide_password=True)


def describe_error(exc: BaseException, url: URL) -> str:
    """One line naming the database and the driver's explanation, the password hidden."""
    orig = getattr(exc, "orig", None) if isinstance(exc, sa_exc.DBAPIError) else None
    cause = orig if isinstance(orig, BaseException) else exc
    text = " ".join(" ".join(str(cause).split("\n", 2)[:2]).split()) or "(no message)"
    password = str(url.password) if url.password else None
    if password and len(password) >= 3:
        text = text.replace(password, "***")
    text = mask_url_password(text)[:400]
    return f"{url.render_as_string(hide_password=True)}: {type(cause).__name__}: {text}"


def create_engine(
    url: URL, connect_timeout: float, busy_timeout: float, options: Mapping[str, Any]
) -> Engine:
    """An engine for ``url`` (not connected yet), with the sink's connection settings.

    Raises:
        ConfigurationError: ``options`` SQLAlchemy refuses (the password is never shown).
        MissingExtraError: the PostgreSQL driver is not installed.
    """
    opts: dict[str, Any] = dict(options)
    connect_args: dict[str, Any] = dict(opts.pop("connect_args", {}) or {})
    try:
        if url.get_backend_name() == "sqlite":
            memory = _sqlite_in_memory(url)
            connect_args.setdefault("timeout", float(busy_timeout))
            connect_args.setdefault("check_same_thread", False)
            if memory:
                opts.setdefault("poolclass", StaticPool)
            engine = sa.create_engine(url, connect_args=connect_args, **opts)
            _sqlite_listeners(engine, int(busy_timeout * 1000), memory)
        else:
            connect_args.setdefault("connect_timeout", max(1, int(connect_timeout)))
            # A server restart leaves dead connections in the pool; the ping finds them
            # on checkout (one round trip per batch) and the pool is renewed.
            opts.setdefault("pool_pre_ping", True)
            engine = sa.create_engine(url, connect_args=connect_args, **opts)
    except ImportError as exc:
        if url.get_backend_name() == "postgresql":
            raise MissingExtraError(
                "SQLSink for PostgreSQL", "postgres", exc.name or "psycopg"
            ) from None
        raise
    except (sa_exc.ArgumentError, TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"SQLSink: cannot use {url.render_as_string(hide_password=True)}: "
            f"{mask_url_password(str(exc))}"
        ) from None
    return engine


def _sqlite_listeners(engine: Engine, busy_timeout_ms: int, memory: bool) -> None:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # We issue BEGIN ourselves (below): pysqlite's implicit transactions would start
        # deferred and could fail with SQLITE_BUSY when a reader turns into a writer.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
            if not memory:
                cursor.execute("PRAGMA journal_mode = WAL")
                # WAL + NORMAL: committed data survives an application crash; only an OS
                # crash or power loss may roll back the last transactions.
                cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    def on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", on_begin)
