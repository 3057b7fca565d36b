"""Opening the SQL store for reading: URLs, engines, errors, time windows, result lists.

Every failure to use the store becomes a :class:`StoreError` with a one-line message that
never shows a password, so that the command line can print it and exit with status 2.
"""

from __future__ import annotations

import datetime as _dt
import importlib.util
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar

from .._jsonsafe import mask_url_password
from ..exceptions import ConfigurationError, MissingExtraError, VividlyTraceError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Engine

__all__ = [
    "DEFAULT_URL",
    "ResultList",
    "StoreError",
    "StoreSchemaError",
    "StoreSource",
    "StoreURLError",
    "StoreUnavailableError",
    "TimeBound",
    "default_url",
    "hide_password",
    "normalise_url",
    "open_store",
    "parse_time",
    "rows_to_dataframe",
    "store_errors",
    "to_utc",
]

DEFAULT_URL = "sqlite:///vividly_trace.db"
"""The embedded default store (a SQLite file in the working directory)."""

StoreSource: TypeAlias = "str | URL | Engine"
"""A database URL (``str`` or SQLAlchemy ``URL``) or an SQLAlchemy ``Engine``."""

TimeBound: TypeAlias = "str | _dt.datetime | _dt.date | _dt.timedelta | None"
"""A bound of a time window, as :func:`parse_time` reads it."""

_TABLES = ("prompt_templates", "prompt_executions")
_USERINFO = re.compile(r"(?P<head>://[^/@:]*:)(?P<password>[^@/]*)@")
_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr|d|day|days|w|wk|weeks?)\s*$")
_UNITS = {
    "s": 1,
    "sec": 1,
    "m": 60,
    "min": 60,
    "h": 3600,
    "hr": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
    "w": 604800,
    "wk": 604800,
    "week": 604800,
    "weeks": 604800,
}

T = TypeVar("T")


class StoreError(VividlyTraceError):
    """The SQL store cannot be used; the message is one line with no password in it.

    ::

        StoreError
        ├── StoreURLError          the URL is malformed, or names an unknown database/driver
        ├── StoreUnavailableError  the database cannot be reached (or the file is missing)
        └── StoreSchemaError       the tables are missing: run ``vividly-trace db upgrade``

    .. versionadded:: 0.1.0
    """


class StoreURLError(StoreError):
    """The database URL is malformed or names an unknown database or missing driver."""


class StoreUnavailableError(StoreError):
    """The database cannot be reached, or the SQLite file does not exist."""


class StoreSchemaError(StoreError):
    """The database has no ``prompt_templates`` / ``prompt_executions`` tables."""


class ResultList(list[T], Generic[T]):
    """A list of result rows (dataclasses) that can also become a pandas DataFrame.

    .. versionadded:: 0.1.0
    """

    def to_dataframe(self) -> Any:
        """Return the rows as a ``pandas.DataFrame``, one column per field.

        Money columns (``Decimal``) become ``float`` here; the rows themselves keep the
        exact values.

        Raises:
            MissingExtraError: pandas is not installed.
        """
        return rows_to_dataframe(self)


def rows_to_dataframe(rows: Iterable[Any]) -> Any:
    """Build a DataFrame from objects with a ``to_dict()`` method (Decimals as float)."""
    try:
        import pandas
    except ImportError:
        raise MissingExtraError("DataFrame output", "dataframe", "pandas") from None
    records = []
    for row in rows:
        flat = row.to_dict()
        records.append({k: float(v) if isinstance(v, Decimal) else v for k, v in flat.items()})
    return pandas.DataFrame.from_records(records)


def hide_password(url: Any) -> str:
    """Render a database URL (or anything that looks like one) with ``***`` as password."""
    if url is None:
        return "(no URL)"
    render = getattr(url, "render_as_string", None)
    if callable(render):
        return str(render(hide_password=True))
    engine_url = getattr(url, "url", None)
    if engine_url is not None and callable(getattr(engine_url, "render_as_string", None)):
        return str(engine_url.render_as_string(hide_password=True))
    text = str(url)
    try:
        from sqlalchemy.engine import make_url

        return str(make_url(text).render_as_string(hide_password=True))
    except Exception:
        return mask_url_password(text)


def _scrub(message: str, secrets: Iterable[str | None]) -> str:
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***")
    return _USERINFO.sub(lambda m: f"{m.group('head')}***@", message)


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line
    return type(exc).__name__


def default_url() -> str:
    """``$VIVIDLY_TRACE_DATABASE_URL`` or ``sqlite:///vividly_trace.db``.

    .. versionadded:: 0.1.0
    """
    return os.environ.get("VIVIDLY_TRACE_DATABASE_URL", "").strip() or DEFAULT_URL


def normalise_url(url: URL) -> URL:
    """``postgres://`` and driverless ``postgresql://`` use psycopg 3 when it is the one there."""
    name = url.drivername
    if name in ("postgres", "postgresql"):
        if importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg"):
            return url.set(drivername="postgresql+psycopg")
        return url.set(drivername="postgresql")
    if name.startswith("postgres+"):
        return url.set(drivername="postgresql+" + name.split("+", 1)[1])
    return url


def _make_engine(source: str | URL) -> Engine:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    shown = hide_password(source)
    try:
        url = normalise_url(make_url(source))
    except ArgumentError:
        raise StoreURLError(f"not a database URL: {shown!r}") from None
    password = url.password if isinstance(url.password, str) else None
    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise StoreURLError(
            f"the store is SQLite or PostgreSQL, not {backend!r} ({shown}); use "
            "sqlite:///FILE or postgresql+psycopg://USER@HOST/DB"
        )
    if backend == "sqlite":
        database = url.database or ""
        if database not in ("", ":memory:") and not database.startswith("file:"):
            path = Path(database)
            if not path.is_file():
                raise StoreUnavailableError(f"no SQLite database at {path} (from {shown})")
    kwargs: dict[str, Any] = {}
    if backend == "postgresql" and "connect_timeout" not in url.query:
        kwargs["connect_args"] = {"connect_timeout": 10}
    elif backend == "sqlite":
        # Wait for a writing sink's lock rather than failing at once with "locked".
        kwargs["connect_args"] = {"timeout": 30.0}
    try:
        return create_engine(url, **kwargs)
    except NoSuchModuleError:
        raise StoreURLError(
            f"unknown database driver {url.drivername!r} in {shown} "
            "(use sqlite:///FILE or postgresql+psycopg://USER@HOST/DB)"
        ) from None
    except ImportError as exc:
        hint = " (pip install 'vividly-trace[postgres]')" if backend == "postgresql" else ""
        raise StoreURLError(
            _scrub(f"the driver for {shown} is not installed: {exc}{hint}", [password])
        ) from None


@contextmanager
def store_errors(engine: Engine) -> Iterator[None]:
    """Turn SQLAlchemy errors raised inside the block into :class:`StoreError`."""
    from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError, SQLAlchemyError

    shown = hide_password(engine.url)
    password = engine.url.password if isinstance(engine.url.password, str) else None
    try:
        yield
    except StoreError:
        raise
    except (OperationalError, ProgrammingError) as exc:
        line = _scrub(_first_line(exc), [password])
        if "no such table" in line or ("does not exist" in line and "relation" in line):
            raise StoreSchemaError(
                f"{shown}: {line} (create the tables: vividly-trace db upgrade --url URL)"
            ) from None
        if isinstance(exc, OperationalError) and getattr(exc, "connection_invalidated", False):
            raise StoreUnavailableError(f"lost the connection to {shown}: {line}") from None
        raise StoreError(f"{shown}: {line}") from None
    except (DBAPIError, SQLAlchemyError) as exc:
        raise StoreError(f"{shown}: {_scrub(_first_line(exc), [password])}") from None


@contextmanager
def open_store(source: StoreSource) -> Iterator[Engine]:
    """Yield an engine on the store after checking that it is reachable and has the tables.

    A URL gets its own engine, disposed of on exit; an ``Engine`` is used as is (and left
    open). PostgreSQL connections time out after 10 s unless the URL says otherwise.

    Raises:
        StoreURLError: malformed URL, unknown database kind, missing driver.
        StoreUnavailableError: cannot connect; SQLite file missing (it is never created).
        StoreSchemaError: the tables are missing.

    .. versionadded:: 0.1.0
    """
    from sqlalchemy import inspect
    from sqlalchemy.engine import Engine
    from sqlalchemy.exc import SQLAlchemyError

    own = not isinstance(source, Engine)
    engine = _make_engine(source) if not isinstance(source, Engine) else source
    try:
        shown = hide_password(engine.url)
        password = engine.url.password if isinstance(engine.url.password, str) else None
        try:
            with engine.connect() as conn:
                inspector = inspect(conn)
                missing = [t for t in _TABLES if not inspector.has_table(t)]
        except SQLAlchemyError as exc:
            line = _scrub(_first_line(exc), [password])
            raise StoreUnavailableError(f"cannot connect to {shown}: {line}") from None
        if missing:
            raise StoreSchemaError(
                f"{shown} has no {' and no '.join(repr(t) for t in missing)} table: create the "
                "tables with: vividly-trace db upgrade --url URL"
            )
        with store_errors(engine):
            yield engine
    finally:
        if own:
            engine.dispose()


def to_utc(value: _dt.datetime) -> _dt.datetime:
    """An aware UTC datetime (a naive one is taken to be UTC already)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=_dt.timezone.utc)
    return value.astimezone(_dt.timezone.utc)


def parse_time(
    value: TimeBound,
    *,
    now: _dt.datetime | None = None,
) -> _dt.datetime | None:
    """Turn a time-window bound into an aware UTC datetime.

    Accepted: ``None``; a ``datetime`` (naive means UTC); a ``date`` (its midnight UTC); a
    ``timedelta`` (that long before now); or a string: ``"7d"``, ``"24h"``, ``"90m"``,
    ``"2w"``, ``"30s"`` (before now), ``"now"``, ``"today"`` (midnight UTC), or ISO 8601
    (``"2026-11-01"``, ``"2026-11-01T12:00"``, ``"2026-11-01T12:00:00+01:00"``, ``...Z``).

    Raises:
        ConfigurationError: the string is none of those.

    .. versionadded:: 0.1.0
    """
    current = to_utc(now) if now is not None else _dt.datetime.now(_dt.timezone.utc)
    if value is None:
        return None
    if isinstance(value, _dt.datetime):
        return to_utc(value)
    if isinstance(value, _dt.date):
        return _dt.datetime(value.year, value.month, value.day, tzinfo=_dt.timezone.utc)
    if isinstance(value, _dt.timedelta):
        return current - value
    if not isinstance(value, str):
        raise ConfigurationError(f"not a time: {value!r}")
    text = value.strip().lower()
    if text == "now":
        return current
    if text == "today":
        return current.replace(hour=0, minute=0, second=0, microsecond=0)
    match = _RELATIVE.match(text)
    if match:
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
        return current - _dt.timedelta(seconds=seconds)
    iso = value.strip()
    if iso.endswith(("Z", "z")):
        iso = iso[:-1] + "+00:00"
    try:
        parsed = _dt.datetime.fromisoformat(iso)
    except ValueError:
        raise ConfigurationError(
            f"not a time: {value!r} (use e.g. 7d, 24h, 30m, 2w, today, 2026-11-01 or "
            "2026-11-01T12:00:00Z)"
        ) from None
    return to_utc(parsed)
