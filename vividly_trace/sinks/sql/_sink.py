"""``SQLSink`` (batches, schema check, insert strategies, close) and ``register_template()``."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, Engine

from ..._active import state as _active_state
from ..._lifecycle import on_fork
from ..._record import PromptExecution
from ..._safety import logger, warn_limited
from ..._score import Score
from ...exceptions import ConfigurationError, VividlyTraceError
from . import migrate
from ._engine import DEFAULT_URL, create_engine, describe_error, parse_url, spool_key, sqlite_file
from ._rows import DIALECTS, POSTGRESQL, TemplateKey
from ._scores import upsert_scores
from ._templates import Templates
from .schema import REQUEST_COLUMNS

__all__ = ["SQLSink", "SQLSinkError", "register_template"]

_STAGE_TABLE = f"vividly_trace_stage_{migrate.SCHEMA_REVISION}"
_STAGE_FLAG = "vividly_trace_stage_ready"
_PG_COLUMN_LIST = ", ".join(POSTGRESQL.columns)
_PG_COPY = f"COPY {_STAGE_TABLE} ({_PG_COLUMN_LIST}) FROM STDIN"
_PG_COPY_DIRECT = f"COPY prompt_executions ({_PG_COLUMN_LIST}) FROM STDIN"
_PG_COPY_REQUESTS = f"COPY prompt_requests ({', '.join(REQUEST_COLUMNS)}) FROM STDIN"
_UNIQUE_VIOLATION = "23505"
# DISTINCT ON: a batch may carry the same record twice (a replay of a replay).
_PG_INSERT_FROM_STAGE = (
    f"INSERT INTO prompt_executions ({_PG_COLUMN_LIST}) "
    f"SELECT DISTINCT ON (id) {_PG_COLUMN_LIST} FROM {_STAGE_TABLE} "
    "ON CONFLICT DO NOTHING"
)


class SQLSinkError(VividlyTraceError):
    """A batch (or a template registration) could not be written.

    The message names the database with its password hidden and the driver's first line of
    explanation; the dispatcher retries the batch and then spools it.
    """


class SQLSink:
    """Write records to SQLite or PostgreSQL (tables ``prompt_templates``,
    ``prompt_executions`` and ``prompt_requests``; see :mod:`vividly_trace.sinks.sql.schema`).

    Constructing the sink never connects: the database may be down at ``configure()``
    time. The first batch creates or upgrades the schema (``auto_migrate``), registers
    unknown templates (unless ``strict_templates``) and writes; each batch is one
    transaction, idempotent on the execution id, so a replayed spool never duplicates a
    row. A record's Gemini requests (:attr:`~vividly_trace.PromptExecution.requests`) are
    written in the same transaction, one ``prompt_requests`` row each, idempotent on
    (execution id, position). Statistics on ``prompt_templates`` are kept by database
    triggers.

    Args:
        url: a SQLAlchemy URL, e.g. ``sqlite:///vividly_trace.db`` (the default, also read
            from ``$VIVIDLY_TRACE_DATABASE_URL``) or
            ``postgresql+psycopg://user:password@host/db`` (``postgresql://`` means psycopg
            3 here). A relative SQLite path is resolved against the current directory now.
        engine: an application's existing :class:`~sqlalchemy.engine.Engine` instead of
            ``url`` (the sink then adds no event listeners and never disposes it).
        name: the sink's name (spool directory and ``stats()`` key).
        strict_templates: only write records whose template (key, version, A/B group) was
            registered with :func:`register_template`; others are counted as dropped
            (``unknown_template``) with a warning naming the key.
        auto_migrate: create or upgrade the schema on first use; when ``False`` a missing
            schema fails the batch (run ``vividly-trace db upgrade URL``).
        max_batch_size: records per ``write_batch`` (default: ``configure(batch_size=)``).
        use_copy: PostgreSQL with psycopg (default): ``COPY`` each batch into the table; a
            batch holding an id already stored (a replay) is then written again through a
            temporary table, ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``. ``False``
            sends one multi-row ``INSERT ... ON CONFLICT DO NOTHING`` per batch instead.
        connect_timeout: seconds to wait for a PostgreSQL connection.
        busy_timeout: seconds a SQLite writer waits for another one's lock.
        engine_options: extra keyword arguments for :func:`sqlalchemy.create_engine`.

    Raises:
        ConfigurationError: a bad URL or argument (the password is never shown).
        MissingExtraError: a PostgreSQL URL without psycopg installed.

    .. versionadded:: 0.1.0
    """

    spool = True

    def __init__(
        self,
        url: str | URL | None = None,
        *,
        engine: Engine | None = None,
        name: str = "sql",
        strict_templates: bool = False,
        auto_migrate: bool = True,
        max_batch_size: int | None = None,
        use_copy: bool | None = None,
        connect_timeout: float = 10.0,
        busy_timeout: float = 30.0,
        engine_options: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError("SQLSink: name must be a non-empty string")
        if max_batch_size is not None and (
            isinstance(max_batch_size, bool)
            or not isinstance(max_batch_size, int)
            or max_batch_size < 1
        ):
            raise ConfigurationError("SQLSink: max_batch_size must be a positive int")
        self.name = name
        self.strict_templates = bool(strict_templates)
        self.auto_migrate = bool(auto_migrate)
        self.max_batch_size = max_batch_size
        if engine is not None:
            if url is not None:
                raise ConfigurationError("SQLSink: pass url or engine, not both")
            backend = engine.dialect.name
            if backend not in DIALECTS:
                raise ConfigurationError(
                    f"SQLSink supports sqlite and postgresql databases, not {backend!r}"
                )
            self._engine = engine
            self._owns_engine = False
            self._url = engine.url
        else:
            if url is None:
                url = os.environ.get("VIVIDLY_TRACE_DATABASE_URL") or DEFAULT_URL
            self._url = parse_url(url)
            self._engine = create_engine(
                self._url, connect_timeout, busy_timeout, engine_options or {}
            )
            self._owns_engine = True
        self.dialect: str = self._engine.dialect.name
        self._dialect = DIALECTS[self.dialect]
        can_copy = self._engine.dialect.driver == self._dialect.copy_driver
        if use_copy is None:
            use_copy = can_copy
        elif use_copy and not can_copy:
            raise ConfigurationError("SQLSink: use_copy needs PostgreSQL through psycopg 3")
        self.use_copy = bool(use_copy)
        self._masked_url = self._url.render_as_string(hide_password=True)
        self._templates = Templates(self._engine, self._dialect, name)
        self._schema_lock = threading.Lock()
        self._schema_ready = False
        on_fork(self._after_fork)

    # -- facts ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The database URL with its password hidden (``***``)."""
        return self._masked_url

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (created without connecting)."""
        return self._engine

    @property
    def spool_key(self) -> str:
        """Where this sink writes (password hidden; SQLite paths made absolute), so that the
        spool of one database is never replayed into another."""
        return spool_key(self._url)

    def __repr__(self) -> str:
        return f"SQLSink({self._masked_url!r}, name={self.name!r})"

    # -- the Sink protocol ---------------------------------------------------------------
    def write_batch(self, records: Sequence[PromptExecution]) -> Mapping[str, int] | None:
        """Write ``records`` in one transaction; raise :class:`SQLSinkError` on failure.

        Returns the records deliberately not written, by reason: ``unknown_template``
        (strict mode) and ``invalid_record`` (a value the database refuses, e.g. an integer
        out of range; written one by one, only those are left out).
        """
        if not records:
            return None
        unknown = invalid = 0
        key_of = self._dialect.template_key
        keyed: list[tuple[PromptExecution, TemplateKey]] = []
        for record in records:
            key = key_of(record)
            if key is None:
                invalid += 1
                self._warn_invalid(record, ValueError("the template key is not a string"))
            else:
                keyed.append((record, key))
        try:
            self._ensure_schema()
            ids = self._templates.resolve(keyed, self.strict_templates)
            row = self._dialect.row
            request_rows = self._dialect.request_rows
            rows: list[tuple[Any, ...]] = []
            # The request rows of each execution row, in the same order ([] for none).
            children: list[list[tuple[Any, ...]]] = []
            for record, key in keyed:
                template_id = ids.get(key)
                if template_id is None:
                    unknown += 1
                    continue
                try:
                    built = row(record, template_id)
                    mine = request_rows(record) if record.requests else []
                except Exception as exc:
                    invalid += 1
                    self._warn_invalid(record, exc)
                    continue
                rows.append(built)
                children.append(mine)
            if rows:
                try:
                    self._insert(rows, children)
                except Exception as exc:
                    if not self._is_record_error(exc):
                        raise
                    invalid += self._insert_each(rows, children)
        except Exception as exc:
            self._forget()
            raise SQLSinkError(self._describe(exc)) from None
        if not unknown and not invalid:
            return None
        skipped: dict[str, int] = {}
        if unknown:
            skipped["unknown_template"] = unknown
        if invalid:
            skipped["invalid_record"] = invalid
        return skipped

    def write_scores(self, scores: Sequence[Score]) -> None:
        """Upsert ``scores`` into ``prompt_scores`` in one transaction (the latest value per
        execution, name and source wins); raise :class:`SQLSinkError` on failure."""
        if not scores:
            return
        try:
            self._ensure_schema()
            with self._engine.connect() as conn, conn.begin():
                upsert_scores(conn, scores)
        except Exception as exc:
            self._forget()
            raise SQLSinkError(self._describe(exc)) from None

    def close(self) -> None:
        """Close the engine's pooled connections (an engine passed in is left alone)."""
        if self._owns_engine:
            self._engine.dispose()

    # -- templates -----------------------------------------------------------------------
    def register_template(
        self,
        key: str,
        version: str | None = None,
        ab_group: str | None = None,
        text: str | None = None,
        model: str | None = None,
    ) -> int:
        """Register (or update) the template ``key`` / ``version`` / ``ab_group``.

        Creates the row when missing; a given ``text`` or ``model`` replaces the stored
        one. Returns the template's id. Creates the schema first when needed.

        Raises:
            ConfigurationError: ``key`` is not a non-empty string.
            SQLSinkError: the database could not be reached or written.
        """
        tkey, text, model = self._templates.checked(key, version, ab_group, text, model)
        try:
            self._ensure_schema()
            return self._templates.register(tkey, text, model)
        except Exception as exc:
            self._forget()
            raise SQLSinkError(self._describe(exc)) from None

    def ensure_schema(self) -> None:
        """Create or upgrade the schema now, as the first batch would (``auto_migrate``).

        Raises:
            SQLSinkError: the database could not be reached or migrated, or the schema is
                not current and ``auto_migrate`` is off.

        .. versionadded:: 0.4.0
        """
        try:
            self._ensure_schema()
        except SQLSinkError:
            raise
        except Exception as exc:
            self._forget()
            raise SQLSinkError(self._describe(exc)) from None

    def _warn_invalid(self, record: Any, exc: BaseException) -> None:
        warn_limited(
            f"sql_invalid_record:{self.name}",
            "vividly_trace sink %r: record %r refused by the database, not written: %s",
            self.name,
            getattr(record, "execution_id", record),
            self._describe(exc),
        )

    # -- schema --------------------------------------------------------------------------
    def _ensure_schema(self) -> None:
        if self._schema_ready:
            return
        with self._schema_lock:
            if self._schema_ready:
                return
            if self._owns_engine:
                db_file = sqlite_file(self._url)
                if db_file is not None:
                    Path(db_file).parent.mkdir(parents=True, exist_ok=True)
            with self._engine.connect() as conn:
                revision = migrate.current_revision(conn)
            if revision is not None and revision not in migrate.KNOWN_REVISIONS:
                warn_limited(
                    f"sql_newer_schema:{self.name}",
                    "vividly_trace sink %r: the database schema is at revision %r, newer than "
                    "this version knows (%s); writing anyway",
                    self.name,
                    revision,
                    migrate.SCHEMA_REVISION,
                )
            elif revision != migrate.SCHEMA_REVISION:
                if not self.auto_migrate:
                    raise SQLSinkError(
                        f"{self._masked_url}: the vividly_trace tables are "
                        f"{'missing' if revision is None else 'at revision ' + revision}; run "
                        "`vividly-trace db upgrade URL` or use SQLSink(auto_migrate=True)"
                    )
                before, after = migrate.upgrade(self._engine)
                if before != after:
                    logger.info(
                        "vividly_trace sink %r: database schema upgraded from %s to %s (%s)",
                        self.name,
                        before or "nothing",
                        after,
                        self._masked_url,
                    )
            self._schema_ready = True

    # -- writing -------------------------------------------------------------------------
    def _insert(
        self, rows: Sequence[tuple[Any, ...]], children: Sequence[Sequence[tuple[Any, ...]]]
    ) -> None:
        """Write the execution rows and their request rows in one transaction."""
        requests = [r for mine in children for r in mine]
        with self._engine.connect() as conn:
            if self.use_copy:
                # Fast path: COPY straight into the tables. A batch holding an id that is
                # already stored (a replay) fails as a whole with a unique violation, and is
                # then written through the staging table, which skips those rows. When
                # every execution is new, so are its requests (they point to it).
                try:
                    with conn.begin():
                        self._copy(conn, _PG_COPY_DIRECT, rows)
                        if requests:
                            self._copy(conn, _PG_COPY_REQUESTS, requests)
                    return
                except Exception as exc:
                    if getattr(exc, "sqlstate", None) != _UNIQUE_VIOLATION:
                        raise
                self._ensure_stage(conn)
            with conn.begin():
                self._insert_rows(conn, rows, self.use_copy)
                # After their executions (the foreign key); idempotent on (execution, seq).
                self._dialect.insert_request_rows(conn, requests)

    @staticmethod
    def _copy(conn: Connection, statement: str, rows: Sequence[tuple[Any, ...]]) -> None:
        driver_conn = conn.connection.driver_connection
        assert driver_conn is not None
        with driver_conn.cursor() as cursor, cursor.copy(statement) as pipe:
            write = pipe.write_row
            for row in rows:
                write(row)

    def _insert_rows(self, conn: Connection, rows: Sequence[tuple[Any, ...]], copy: bool) -> None:
        if copy:
            self._copy(conn, _PG_COPY, rows)
            conn.exec_driver_sql(_PG_INSERT_FROM_STAGE)
        else:
            self._dialect.insert_rows(conn, rows)

    def _ensure_stage(self, conn: Connection) -> None:
        info = conn.connection.info
        if info.get(_STAGE_FLAG):
            return
        conn.exec_driver_sql(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGE_TABLE} "
            "(LIKE prompt_executions INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        conn.commit()
        info[_STAGE_FLAG] = True

    def _insert_each(
        self, rows: Sequence[tuple[Any, ...]], children: Sequence[Sequence[tuple[Any, ...]]]
    ) -> int:
        """Write rows (each with its requests) one transaction each; count (and skip) the
        ones refused."""
        refused = 0
        with self._engine.connect() as conn:
            for row, mine in zip(rows, children, strict=True):
                try:
                    with conn.begin():
                        self._insert_rows(conn, [row], copy=False)
                        self._dialect.insert_request_rows(conn, mine)
                except Exception as exc:
                    if not self._is_record_error(exc):
                        raise
                    refused += 1
                    self._warn_invalid(row[0], exc)
        return refused

    def _is_record_error(self, exc: BaseException) -> bool:
        """True for errors caused by a value in a record, not by the database or network."""
        if isinstance(exc, (sa_exc.DataError, OverflowError, UnicodeError)):
            return True
        if isinstance(getattr(exc, "orig", None), UnicodeError):
            return True
        dbapi = getattr(self._engine.dialect, "dbapi", None)
        data_error = getattr(dbapi, "DataError", None)
        if isinstance(data_error, type) and isinstance(exc, data_error):
            return True
        # The driver refusing a value of an unsupported type (a hand-built record): sqlite3
        # cannot bind it, psycopg cannot adapt it.
        text = str(exc)
        return "binding parameter" in text or "cannot adapt type" in text

    # -- failures ------------------------------------------------------------------------
    def _forget(self) -> None:
        """After a failure: look the schema and template ids up again next time (the
        database may have been recreated meanwhile)."""
        self._schema_ready = False
        self._templates.forget()

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, SQLSinkError):
            return str(exc)
        return describe_error(exc, self._url)

    def _after_fork(self) -> None:
        if self._owns_engine:
            # The child must not use the parent's sockets; close=False leaves them to it.
            self._engine.dispose(close=False)
        self._templates.renew_lock()
        self._schema_lock = threading.Lock()


def register_template(
    key: str,
    version: str | None = None,
    ab_group: str | None = None,
    text: str | None = None,
    model: str | None = None,
    *,
    url: str | None = None,
    sink: SQLSink | None = None,
    engine: Engine | None = None,
) -> int:
    """Register a template (key, version, A/B group) in the SQL store; return its id.

    Needed before logging in ``strict_templates`` mode; otherwise optional (unknown
    templates are registered on first use) but the way to store ``text`` and ``model``.
    A given ``text`` or ``model`` replaces the stored one.

    Where: ``sink=`` (a :class:`SQLSink`), else ``url=`` or ``engine=``, else every
    ``SQLSink`` of the active :func:`vividly_trace.configure` set-up (the id returned is the
    first one's).

    Raises:
        ConfigurationError: bad arguments, or nowhere to register.
        SQLSinkError: the database could not be reached or written.

    .. versionadded:: 0.1.0
    """
    if sink is not None:
        return sink.register_template(key, version, ab_group, text, model)
    if url is not None or engine is not None:
        temporary = SQLSink(url, engine=engine, name="register_template")
        try:
            return temporary.register_template(key, version, ab_group, text, model)
        finally:
            temporary.close()
    sinks = [s for s in _active_state.configured_sinks() if isinstance(s, SQLSink)]
    if not sinks:
        raise ConfigurationError(
            "register_template: pass url=, engine= or sink=, or configure() a SQLSink first"
        )
    ids = [s.register_template(key, version, ab_group, text, model) for s in sinks]
    return ids[0]
