"""``SQLSink``: prompt executions into SQLite or PostgreSQL through SQLAlchemy Core."""

from __future__ import annotations

import datetime as _dt
import importlib.util
import json
import operator
import os
import re
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.pool import StaticPool

from ..._jsonsafe import json_safe
from ..._record import PromptExecution
from ..._safety import logger, warn_limited
from ...exceptions import ConfigurationError, MissingExtraError, VividlyTraceError
from . import migrate
from .schema import EXECUTION_COLUMNS, prompt_templates

__all__ = ["DEFAULT_URL", "SQLSink", "SQLSinkError", "register_template"]

DEFAULT_URL = "sqlite:///vividly_trace.db"
"""Where ``SQLSink()`` and ``configure()`` write when no URL is given."""

TemplateKey = tuple[str, "str | None", "str | None"]

_UTC = _dt.timezone.utc
_ZERO = _dt.timedelta(0)
_SECRET_IN_URL = re.compile(r"(?<=://)([^/\s:@]*):[^/\s@]*@")
_STAGE_TABLE = f"vividly_trace_stage_{migrate.SCHEMA_REVISION}"
_STAGE_FLAG = "vividly_trace_stage_ready"
_COLUMN_LIST = ", ".join(EXECUTION_COLUMNS)
_N_COLUMNS = len(EXECUTION_COLUMNS)
_PG_MAX_ROWS_PER_STATEMENT = 1000  # 30 columns x 1000 rows stays under the 65535 parameters

# The row tuples below are built positionally: this is the order they follow.
_ROW_ORDER = (
    "id",
    "template_id",
    "template_name",
    "template_version",
    "template_ab_test_group",
    "executed_at",
    "success",
    "response_time_ms",
    "provider",
    "model",
    "response_model",
    "input_token_count",
    "output_token_count",
    "total_token_count",
    "cached_token_count",
    "thinking_token_count",
    "tool_use_token_count",
    "audio_input_token_count",
    "cost_usd",
    "pricing_version",
    "error_type",
    "error_message",
    "http_status",
    "finish_reason",
    "streamed",
    "stream_closed_early",
    "time_to_first_chunk_ms",
    "parent_execution_id",
    "metadata",
    "cached_audio_token_count",
)
assert _ROW_ORDER == EXECUTION_COLUMNS, "schema.prompt_executions and _ROW_ORDER differ"

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def _refuse(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _fast_dumps() -> Any:
    """The C encoder built once (``json.dumps`` builds one per call: half its cost here).

    Without circular-reference markers: sanitised metadata has no cycles, and anything
    else that fails goes through :func:`json_safe` first. ``None`` where unavailable.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    quote = getattr(json.encoder, "c_encode_basestring", None)
    if make is None or quote is None:
        return None
    try:
        encode = make(None, _refuse, quote, None, ":", ",", False, False, False)
        if "".join(encode({"a": [1, 2.5, None, True, "é"]}, 0)) != '{"a":[1,2.5,null,true,"é"]}':
            return None
    except Exception:
        return None
    return encode


_c_encode = _fast_dumps()
_live_sinks: weakref.WeakSet[SQLSink] = weakref.WeakSet()


class SQLSinkError(VividlyTraceError):
    """A batch (or a template registration) could not be written.

    The message names the database with its password hidden and the driver's first line of
    explanation; the dispatcher retries the batch and then spools it.
    """


def mask_url_text(text: str) -> str:
    """Hide ``user:password@`` in any URL inside ``text``."""
    return _SECRET_IN_URL.sub(r"\1:***@", text)


def _template_key(record: PromptExecution) -> TemplateKey | None:
    """The (key, version, group) selecting the record's template; ``None`` if unusable."""
    key, version, group = record.template_key, record.template_version, record.ab_test_group
    if (
        type(key) is not str
        or not key
        or (version is not None and type(version) is not str)
        or (group is not None and type(group) is not str)
    ):
        return None
    return (key, version or None, group or None)


def _pg_template_key(record: PromptExecution) -> TemplateKey | None:
    """:func:`_template_key` with NUL characters replaced, as the rows store them."""
    plain = _template_key(record)
    if plain is None:
        return None
    key, version, group = plain
    if (
        "\x00" not in key
        and (version is None or "\x00" not in version)
        and (group is None or "\x00" not in group)
    ):
        return plain
    return (key.replace("\x00", "\ufffd"), _pg_text(version), _pg_text(group))


def _key_text(key: TemplateKey) -> str:
    name, version, group = key
    return f"{name!r} (version={version!r}, ab_group={group!r})"


def _utc(value: _dt.datetime) -> _dt.datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=_UTC)
    if value.utcoffset() == _ZERO:
        return value
    return value.astimezone(_UTC)


def _json_text(metadata: Any) -> str:
    if not metadata:
        return "{}"
    try:
        if _c_encode is not None and type(metadata) is dict:
            return "".join(_c_encode(metadata, 0))
        return _dumps(metadata)
    except Exception:  # a record not built by vividly_trace (NaN, objects, cycles...)
        return _dumps(json_safe(metadata))


def _sqlite_time(value: _dt.datetime) -> str:
    """UTC as 'YYYY-MM-DD HH:MM:SS.ffffff' (SQLAlchemy's SQLite format; sorts as time)."""
    if value.tzinfo is not _UTC and value.tzinfo is not None:
        value = value.astimezone(_UTC)
    return value.isoformat(" ", "microseconds")[:26]


def _no_nul(value: Any) -> Any:
    """Replace NUL characters, which PostgreSQL text and jsonb cannot hold."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_no_nul(k): _no_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_nul(v) for v in value]
    return value


def _pg_text(value: str | None) -> str | None:
    if value is None or "\x00" not in value:
        return value
    return value.replace("\x00", "\ufffd")


# SQLite rows: the record attributes sqlite3 binds as they are (it stores bools as 0/1),
# read by one C-level attrgetter, then the four values that need converting.
_SQLITE_PLAIN = (
    ("execution_id", "id"),
    ("template_key", "template_name"),
    ("template_version", "template_version"),
    ("ab_test_group", "template_ab_test_group"),
    ("success", "success"),
    ("response_time_ms", "response_time_ms"),
    ("provider", "provider"),
    ("model", "model"),
    ("response_model", "response_model"),
    ("input_token_count", "input_token_count"),
    ("output_token_count", "output_token_count"),
    ("total_token_count", "total_token_count"),
    ("cached_token_count", "cached_token_count"),
    ("thinking_token_count", "thinking_token_count"),
    ("tool_use_token_count", "tool_use_token_count"),
    ("audio_input_token_count", "audio_input_token_count"),
    ("cached_audio_token_count", "cached_audio_token_count"),
    ("pricing_version", "pricing_version"),
    ("error_type", "error_type"),
    ("error_message", "error_message"),
    ("http_status", "http_status"),
    ("finish_reason", "finish_reason"),
    ("streamed", "streamed"),
    ("stream_closed_early", "stream_closed_early"),
    ("time_to_first_chunk_ms", "time_to_first_chunk_ms"),
    ("parent_execution_id", "parent_execution_id"),
)
_SQLITE_COMPUTED = ("template_id", "executed_at", "cost_usd", "metadata")
_sqlite_plain = operator.attrgetter(*(attr for attr, _ in _SQLITE_PLAIN))
assert sorted([c for _, c in _SQLITE_PLAIN] + list(_SQLITE_COMPUTED)) == sorted(
    EXECUTION_COLUMNS
), "schema.prompt_executions and _SQLITE_PLAIN differ"


def _sqlite_row(r: PromptExecution, template_id: int) -> tuple[Any, ...]:
    cost = r.cost_usd
    return (
        *_sqlite_plain(r),
        template_id,
        _sqlite_time(r.started_at),
        None if cost is None else float(cost),
        _json_text(r.metadata),
    )


def _pg_row(r: PromptExecution, template_id: int) -> tuple[Any, ...]:
    meta = _json_text(r.metadata)
    if "\\u0000" in meta:
        meta = _json_text(_no_nul(r.metadata))
    cost = r.cost_usd
    if cost is not None and not isinstance(cost, Decimal):
        cost = Decimal(str(cost))
    t = _pg_text
    return (
        t(r.execution_id),
        template_id,
        t(r.template_key),
        t(r.template_version),
        t(r.ab_test_group),
        _utc(r.started_at),
        bool(r.success),
        float(r.response_time_ms),
        t(r.provider),
        t(r.model),
        t(r.response_model),
        r.input_token_count,
        r.output_token_count,
        r.total_token_count,
        r.cached_token_count,
        r.thinking_token_count,
        r.tool_use_token_count,
        r.audio_input_token_count,
        cost,
        t(r.pricing_version),
        t(r.error_type),
        t(r.error_message),
        r.http_status,
        t(r.finish_reason),
        bool(r.streamed),
        bool(r.stream_closed_early),
        r.time_to_first_chunk_ms,
        t(r.parent_execution_id),
        meta,
        r.cached_audio_token_count,
    )


def _parse_url(raw: str | URL) -> URL:
    if isinstance(raw, URL):
        url = raw
    else:
        if not isinstance(raw, str) or not raw.strip():
            raise ConfigurationError("SQLSink: the database URL must be a non-empty string")
        try:
            url = make_url(raw.strip())
        except (sa_exc.ArgumentError, ValueError, TypeError):
            raise ConfigurationError(
                f"SQLSink: cannot parse the database URL {mask_url_text(raw.strip())!r}; "
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


class SQLSink:
    """Write records to SQLite or PostgreSQL (tables ``prompt_templates`` and
    ``prompt_executions``; see :mod:`vividly_trace.sinks.sql.schema`).

    Constructing the sink never connects: the database may be down at ``configure()``
    time. The first batch creates or upgrades the schema (``auto_migrate``), registers
    unknown templates (unless ``strict_templates``) and writes; each batch is one
    transaction, idempotent on the execution id, so a replayed spool never duplicates a
    row. Statistics on ``prompt_templates`` are kept by database triggers.

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
            if backend not in ("sqlite", "postgresql"):
                raise ConfigurationError(
                    f"SQLSink supports sqlite and postgresql databases, not {backend!r}"
                )
            self._engine = engine
            self._owns_engine = False
            self._url = engine.url
        else:
            if url is None:
                url = os.environ.get("VIVIDLY_TRACE_DATABASE_URL") or DEFAULT_URL
            self._url = _parse_url(url)
            self._engine = self._create_engine(
                self._url, connect_timeout, busy_timeout, engine_options or {}
            )
            self._owns_engine = True
        self.dialect: str = self._engine.dialect.name
        driver = self._engine.dialect.driver
        if use_copy is None:
            use_copy = self.dialect == "postgresql" and driver == "psycopg"
        elif use_copy and (self.dialect != "postgresql" or driver != "psycopg"):
            raise ConfigurationError("SQLSink: use_copy needs PostgreSQL through psycopg 3")
        self.use_copy = bool(use_copy)
        password = self._url.password
        self._password = str(password) if password else None
        self._masked_url = self._url.render_as_string(hide_password=True)
        self._templates: dict[TemplateKey, int] = {}
        self._templates_lock = threading.Lock()
        self._schema_lock = threading.Lock()
        self._schema_ready = False
        self._warned_keys: set[TemplateKey] = set()
        pg = self.dialect == "postgresql"
        self._row = _pg_row if pg else _sqlite_row
        self._key = _pg_template_key if pg else _template_key
        _live_sinks.add(self)

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
        url = self._url
        database = url.database or ""
        if url.get_backend_name() == "sqlite" and database and not _sqlite_in_memory(url):
            if not database.startswith("file:"):
                database = os.path.abspath(database)
            return f"sqlite:{database}"
        return self._masked_url

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
        key_of = self._key
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
            ids = self._resolve_templates(keyed)
            row = self._row
            rows: list[tuple[Any, ...]] = []
            for record, key in keyed:
                template_id = ids.get(key)
                if template_id is None:
                    unknown += 1
                    continue
                try:
                    rows.append(row(record, template_id))
                except Exception as exc:
                    invalid += 1
                    self._warn_invalid(record, exc)
            if rows:
                try:
                    self._insert(rows)
                except Exception as exc:
                    if not self._is_record_error(exc):
                        raise
                    invalid += self._insert_each(rows)
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
        if not isinstance(key, str) or not key.strip():
            raise ConfigurationError("register_template: key must be a non-empty string")
        for label, value in (
            ("version", version),
            ("ab_group", ab_group),
            ("text", text),
            ("model", model),
        ):
            if value is not None and not isinstance(value, str):
                raise ConfigurationError(f"register_template: {label} must be a string")
        if self.dialect == "postgresql":
            key = key.replace("\x00", "\ufffd")
            version, ab_group, text, model = (_pg_text(v) for v in (version, ab_group, text, model))
        tkey: TemplateKey = (key, version or None, ab_group or None)
        t = prompt_templates
        try:
            self._ensure_schema()
            with self._engine.begin() as conn:
                self._insert_templates(conn, {tkey: model}, text=text)
                if text is not None or model is not None:
                    conn.execute(
                        sa.update(t)
                        .where(self._key_clause([tkey]))
                        .values(
                            template_text=sa.func.coalesce(
                                sa.bindparam("t_text", text, sa.Text), t.c.template_text
                            ),
                            model=sa.func.coalesce(
                                sa.bindparam("t_model", model, sa.Text), t.c.model
                            ),
                            is_active=True,
                        )
                    )
                found = self._select_templates(conn, [tkey])
        except Exception as exc:
            self._forget()
            raise SQLSinkError(self._describe(exc)) from None
        template_id = found[tkey]
        with self._templates_lock:
            self._templates[tkey] = template_id
        return template_id

    def _resolve_templates(
        self, keyed: Iterable[tuple[PromptExecution, TemplateKey]]
    ) -> dict[TemplateKey, int]:
        cache = self._templates
        missing: dict[TemplateKey, str | None] = {}
        for record, key in keyed:
            if key not in cache and key not in missing:
                missing[key] = record.model
        if not missing:
            return cache
        # Own short transaction, committed before the batch: other writers wait on a new
        # template's unique-index entry only for this long.
        with self._engine.begin() as conn:
            found = self._select_templates(conn, list(missing))
            if not self.strict_templates:
                new = {k: m for k, m in missing.items() if k not in found}
                if new:
                    self._insert_templates(conn, new)
                    found.update(self._select_templates(conn, list(new)))
        with self._templates_lock:
            cache.update(found)
            resolved = dict(cache)
        for key in missing:
            if key not in found:
                self._warn_unknown(key)
        return resolved

    @staticmethod
    def _key_clause(keys: Sequence[TemplateKey]) -> sa.ColumnElement[bool]:
        t = prompt_templates
        # The literal '' (not a bound parameter) makes these match the unique index's
        # expressions, so the lookup uses that index.
        empty: sa.ColumnElement[str] = sa.literal_column("''", sa.Text)
        return sa.tuple_(
            t.c.name,
            sa.func.coalesce(t.c.version, empty),
            sa.func.coalesce(t.c.ab_test_group, empty),
        ).in_([(name, version or "", group or "") for name, version, group in keys])

    def _select_templates(
        self, conn: Connection, keys: Sequence[TemplateKey]
    ) -> dict[TemplateKey, int]:
        t = prompt_templates
        found: dict[TemplateKey, int] = {}
        for start in range(0, len(keys), 200):
            chunk = keys[start : start + 200]
            result = conn.execute(
                sa.select(t.c.id, t.c.name, t.c.version, t.c.ab_test_group).where(
                    self._key_clause(chunk)
                )
            )
            for tid, name, version, group in result:
                found[(name, version or None, group or None)] = int(tid)
        return found

    def _insert_templates(
        self, conn: Connection, keys: Mapping[TemplateKey, str | None], text: str | None = None
    ) -> None:
        # Sorted, so that concurrent writers take the unique-index locks in one order.
        ordered = sorted(keys, key=lambda k: (k[0], k[1] or "", k[2] or ""))
        rows = [
            {
                "name": k[0],
                "version": k[1],
                "ab_test_group": k[2],
                "model": keys[k],
                "template_text": text,
            }
            for k in ordered
        ]
        if self.dialect == "postgresql":
            stmt: Any = pg_insert(prompt_templates).on_conflict_do_nothing()
        else:
            stmt = sa.insert(prompt_templates).prefix_with("OR IGNORE")
        conn.execute(stmt, rows)

    def _warn_unknown(self, key: TemplateKey) -> None:
        if len(self._warned_keys) < 1000:
            self._warned_keys.add(key)
            limit_key = f"sql_unknown_template:{self.name}:{key!r}"[:300]
        else:
            limit_key = f"sql_unknown_template:{self.name}"
        warn_limited(
            limit_key,
            "vividly_trace sink %r: template %s is not registered and strict_templates is on; "
            "its records are not written (register it with register_template())",
            self.name,
            _key_text(key),
        )

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
            if self.dialect == "sqlite" and self._owns_engine:
                db = self._url.database or ""
                if db and not _sqlite_in_memory(self._url) and not db.startswith("file:"):
                    Path(db).parent.mkdir(parents=True, exist_ok=True)
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
    def _insert(self, rows: Sequence[tuple[Any, ...]]) -> None:
        with self._engine.connect() as conn:
            if self.use_copy:
                # Fast path: COPY straight into the table. A batch holding an id that is
                # already stored (a replay) fails as a whole with a unique violation, and is
                # then written through the staging table, which skips those rows.
                try:
                    with conn.begin():
                        self._copy(conn, _PG_COPY_DIRECT, rows)
                    return
                except Exception as exc:
                    if getattr(exc, "sqlstate", None) != _UNIQUE_VIOLATION:
                        raise
                self._ensure_stage(conn)
            with conn.begin():
                self._insert_rows(conn, rows, self.use_copy)

    @staticmethod
    def _copy(conn: Connection, statement: str, rows: Sequence[tuple[Any, ...]]) -> None:
        driver_conn = conn.connection.driver_connection
        assert driver_conn is not None
        with driver_conn.cursor() as cursor, cursor.copy(statement) as pipe:
            write = pipe.write_row
            for row in rows:
                write(row)

    def _insert_rows(self, conn: Connection, rows: Sequence[tuple[Any, ...]], copy: bool) -> None:
        if self.dialect == "sqlite":
            conn.exec_driver_sql(_SQLITE_INSERT, list(rows))
        elif copy:
            self._copy(conn, _PG_COPY, rows)
            conn.exec_driver_sql(_PG_INSERT_FROM_STAGE)
        else:
            for start in range(0, len(rows), _PG_MAX_ROWS_PER_STATEMENT):
                chunk = rows[start : start + _PG_MAX_ROWS_PER_STATEMENT]
                params = tuple(value for row in chunk for value in row)
                conn.exec_driver_sql(_pg_values_insert(len(chunk)), params)

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

    def _insert_each(self, rows: Sequence[tuple[Any, ...]]) -> int:
        """Write rows one transaction each; count (and skip) the ones refused."""
        refused = 0
        with self._engine.connect() as conn:
            for row in rows:
                try:
                    with conn.begin():
                        self._insert_rows(conn, [row], copy=False)
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
        with self._templates_lock:
            self._templates.clear()

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, SQLSinkError):
            return str(exc)
        orig = getattr(exc, "orig", None) if isinstance(exc, sa_exc.DBAPIError) else None
        cause = orig if isinstance(orig, BaseException) else exc
        text = " ".join(" ".join(str(cause).split("\n", 2)[:2]).split()) or "(no message)"
        if self._password and len(self._password) >= 3:
            text = text.replace(self._password, "***")
        text = mask_url_text(text)[:400]
        return f"{self._masked_url}: {type(cause).__name__}: {text}"

    # -- engine --------------------------------------------------------------------------
    @staticmethod
    def _create_engine(
        url: URL, connect_timeout: float, busy_timeout: float, options: Mapping[str, Any]
    ) -> Engine:
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
                f"{mask_url_text(str(exc))}"
            ) from None
        return engine

    def _after_fork(self) -> None:
        if self._owns_engine:
            # The child must not use the parent's sockets; close=False leaves them to it.
            self._engine.dispose(close=False)
        self._templates_lock = threading.Lock()
        self._schema_lock = threading.Lock()


_SQLITE_INSERT = (
    "INSERT OR IGNORE INTO prompt_executions "
    f"({', '.join([c for _, c in _SQLITE_PLAIN] + list(_SQLITE_COMPUTED))}) "
    f"VALUES ({', '.join('?' * _N_COLUMNS)})"
)
_PG_COPY = f"COPY {_STAGE_TABLE} ({_COLUMN_LIST}) FROM STDIN"
_PG_COPY_DIRECT = f"COPY prompt_executions ({_COLUMN_LIST}) FROM STDIN"
_UNIQUE_VIOLATION = "23505"
# DISTINCT ON: a batch may carry the same record twice (a replay of a replay).
_PG_INSERT_FROM_STAGE = (
    f"INSERT INTO prompt_executions ({_COLUMN_LIST}) "
    f"SELECT DISTINCT ON (id) {_COLUMN_LIST} FROM {_STAGE_TABLE} "
    "ON CONFLICT (id) DO NOTHING"
)
_pg_values_cache: dict[int, str] = {}


def _pg_values_insert(n_rows: int) -> str:
    sql = _pg_values_cache.get(n_rows)
    if sql is None:
        one = "(" + ", ".join(["%s"] * _N_COLUMNS) + ")"
        sql = (
            f"INSERT INTO prompt_executions ({_COLUMN_LIST}) VALUES "
            + ", ".join([one] * n_rows)
            + " ON CONFLICT (id) DO NOTHING"
        )
        if len(_pg_values_cache) < 64:
            _pg_values_cache[n_rows] = sql
    return sql


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
    from ..._config import get_pipeline

    pipeline = get_pipeline()
    sinks = [w.sink for w in getattr(pipeline, "workers", ()) if isinstance(w.sink, SQLSink)]
    if not sinks:
        raise ConfigurationError(
            "register_template: pass url=, engine= or sink=, or configure() a SQLSink first"
        )
    ids = [s.register_template(key, version, ab_group, text, model) for s in sinks]
    return ids[0]


def _after_fork_in_child() -> None:
    for sink in list(_live_sinks):
        try:
            sink._after_fork()
        except Exception as exc:  # never break the child's start
            logger.warning("vividly_trace: SQLSink after fork: %r", exc)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
