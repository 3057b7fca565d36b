"""Records as rows: one :class:`Dialect` per database builds, cleans and inserts them."""

from __future__ import annotations

import abc
import datetime as _dt
import json
import operator
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from ..._jsonsafe import json_safe, replace_nul
from ..._record import PromptExecution
from .schema import EXECUTION_COLUMNS, REQUEST_COLUMNS, to_sqlite_money

__all__ = ["DIALECTS", "POSTGRESQL", "SQLITE", "Dialect", "TemplateKey"]

TemplateKey = tuple[str, "str | None", "str | None"]
"""A template's (key, version, A/B group); empty version and group are ``None``."""

_UTC = _dt.timezone.utc
_ZERO = _dt.timedelta(0)
_COLUMN_LIST = ", ".join(EXECUTION_COLUMNS)
_N_COLUMNS = len(EXECUTION_COLUMNS)
_PG_MAX_ROWS_PER_STATEMENT = 1000  # 35 columns x 1000 rows stays under the 65535 parameters
_PG_MAX_REQUESTS_PER_STATEMENT = 3000  # 21 columns x 3000 rows, the same
_REQUEST_COLUMN_LIST = ", ".join(REQUEST_COLUMNS)

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


def _json_text(metadata: Any) -> str:
    if not metadata:
        return "{}"
    try:
        if _c_encode is not None and type(metadata) is dict:
            return "".join(_c_encode(metadata, 0))
        return _dumps(metadata)
    except Exception:  # a record not built by vividly_trace (NaN, objects, cycles...)
        return _dumps(json_safe(metadata))


def _template_key(record: PromptExecution) -> TemplateKey | None:
    key, version, group = record.template_key, record.template_version, record.ab_test_group
    if (
        type(key) is not str
        or not key
        or (version is not None and type(version) is not str)
        or (group is not None and type(group) is not str)
    ):
        return None
    return (key, version or None, group or None)


class Dialect(abc.ABC):
    """How records become rows, and rows are inserted, for one database.

    A sink picks its instance (:data:`SQLITE` or :data:`POSTGRESQL`) once, from its
    engine's dialect name: the hot path then never asks which database it writes to.
    """

    name: str
    """SQLAlchemy's name of the dialect."""
    columns: tuple[str, ...]
    """The ``prompt_executions`` columns, in the order of :meth:`row`'s values."""
    copy_driver: str | None = None
    """The driver through which batches may be written with ``COPY``; ``None``: never."""

    @staticmethod
    def template_key(record: PromptExecution) -> TemplateKey | None:
        """The (key, version, group) selecting the record's template; ``None`` if unusable."""
        return _template_key(record)

    @staticmethod
    def clean_text(value: str) -> str:
        """``value`` as this database stores it."""
        return value

    @staticmethod
    @abc.abstractmethod
    def row(record: PromptExecution, template_id: int) -> tuple[Any, ...]:
        """The record's ``prompt_executions`` values, in the order of :attr:`columns`."""

    @staticmethod
    @abc.abstractmethod
    def request_rows(record: PromptExecution) -> list[tuple[Any, ...]]:
        """The record's ``prompt_requests`` values (one tuple per request, in the order of
        :data:`~.schema.REQUEST_COLUMNS`); empty for a record without requests."""

    @abc.abstractmethod
    def insert_rows(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert ``rows`` with plain ``INSERT`` statements, skipping ids already stored."""

    @abc.abstractmethod
    def insert_request_rows(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert request ``rows``, skipping (execution id, seq) pairs already stored."""

    @abc.abstractmethod
    def insert_or_ignore(self, table: sa.Table) -> Any:
        """An ``INSERT`` into ``table`` that skips rows conflicting with a unique index."""

    def __repr__(self) -> str:
        return f"<Dialect {self.name}>"


def _sqlite_time(value: _dt.datetime) -> str:
    """UTC as 'YYYY-MM-DD HH:MM:SS.ffffff' (SQLAlchemy's SQLite format; sorts as time)."""
    if value.tzinfo is not _UTC and value.tzinfo is not None:
        value = value.astimezone(_UTC)
    return value.isoformat(" ", "microseconds")[:26]


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
    ("prompt_text", "prompt_text"),
    ("response_text", "response_text"),
    ("user_id", "user_id"),
    ("session_id", "session_id"),
    ("request_id", "request_id"),
    ("service_tier", "service_tier"),
    ("image_input_token_count", "image_input_token_count"),
    ("video_input_token_count", "video_input_token_count"),
    ("image_output_token_count", "image_output_token_count"),
    ("audio_output_token_count", "audio_output_token_count"),
    ("grounded_prompt_count", "grounded_prompt_count"),
    ("search_query_count", "search_query_count"),
)
_SQLITE_COMPUTED = ("template_id", "executed_at", "cost_usd", "metadata")
_sqlite_plain = operator.attrgetter(*(attr for attr, _ in _SQLITE_PLAIN))

# Request rows: the RequestRecord attributes bound as they are, between the three computed
# leading values (execution id, seq, started_at) and the cost, in table order.
_REQUEST_HEAD = ("execution_id", "seq", "started_at")
_REQUEST_PLAIN = (
    "operation",
    "model",
    "response_model",
    "input_token_count",
    "output_token_count",
    "total_token_count",
    "cached_token_count",
    "thinking_token_count",
    "tool_use_token_count",
    "audio_input_token_count",
    "cached_audio_token_count",
)
_REQUEST_TAIL = (
    "response_time_ms",
    "success",
    "error_type",
    "http_status",
    "finish_reason",
    "streamed",
    "image_input_token_count",
    "video_input_token_count",
    "image_output_token_count",
    "audio_output_token_count",
    "grounded_prompt_count",
    "search_query_count",
)
assert (*_REQUEST_HEAD, *_REQUEST_PLAIN, "cost_usd", *_REQUEST_TAIL) == REQUEST_COLUMNS, (
    "schema.prompt_requests and the request rows differ"
)
_request_plain = operator.attrgetter(*_REQUEST_PLAIN)
_request_tail = operator.attrgetter(*_REQUEST_TAIL)


def _request_start(record: PromptExecution, offset_ms: Any) -> _dt.datetime:
    """When a request started: its execution's start plus its offset (UTC)."""
    started = _utc(record.started_at)
    if not offset_ms:
        return started
    return started + _dt.timedelta(milliseconds=float(offset_ms))


class _SQLite(Dialect):
    name = "sqlite"
    columns = tuple(column for _, column in _SQLITE_PLAIN) + _SQLITE_COMPUTED
    insert_sql = (
        f"INSERT OR IGNORE INTO prompt_executions ({', '.join(columns)}) "
        f"VALUES ({', '.join('?' * len(columns))})"
    )
    """The statement :meth:`insert_rows` runs for each row (sqlite3 placeholders)."""

    @staticmethod
    def row(record: PromptExecution, template_id: int) -> tuple[Any, ...]:
        cost = record.cost_usd
        return (
            *_sqlite_plain(record),
            template_id,
            _sqlite_time(record.started_at),
            None if cost is None else to_sqlite_money(cost),
            _json_text(record.metadata),
        )

    request_insert_sql = (
        f"INSERT OR IGNORE INTO prompt_requests ({_REQUEST_COLUMN_LIST}) "
        f"VALUES ({', '.join('?' * len(REQUEST_COLUMNS))})"
    )
    """The statement :meth:`insert_request_rows` runs for each row."""

    @staticmethod
    def request_rows(record: PromptExecution) -> list[tuple[Any, ...]]:
        execution_id = record.execution_id
        out = []
        for seq, request in enumerate(record.requests):
            cost = request.cost_usd
            out.append(
                (
                    execution_id,
                    seq,
                    _sqlite_time(_request_start(record, request.offset_ms)),
                    *_request_plain(request),
                    None if cost is None else to_sqlite_money(cost),
                    *_request_tail(request),
                )
            )
        return out

    def insert_rows(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        conn.exec_driver_sql(self.insert_sql, list(rows))

    def insert_request_rows(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        if rows:
            conn.exec_driver_sql(self.request_insert_sql, list(rows))

    def insert_or_ignore(self, table: sa.Table) -> Any:
        return sa.insert(table).prefix_with("OR IGNORE")


def _utc(value: _dt.datetime) -> _dt.datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=_UTC)
    if value.utcoffset() == _ZERO:
        return value
    return value.astimezone(_UTC)


def _no_nul(value: Any) -> Any:
    """Replace NUL characters, which PostgreSQL text and jsonb cannot hold."""
    if isinstance(value, str):
        return replace_nul(value)
    if isinstance(value, dict):
        return {_no_nul(k): _no_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_nul(v) for v in value]
    return value


def _pg_text(value: str | None) -> str | None:
    if value is None or "\x00" not in value:  # the common case, without a call
        return value
    return replace_nul(value)


# PostgreSQL rows are built positionally, in this order.
_PG_COLUMNS = (
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
    "prompt_text",
    "response_text",
    "user_id",
    "session_id",
    "request_id",
    "service_tier",
    "image_input_token_count",
    "video_input_token_count",
    "image_output_token_count",
    "audio_output_token_count",
    "grounded_prompt_count",
    "search_query_count",
)
assert _PG_COLUMNS == EXECUTION_COLUMNS, "schema.prompt_executions and _PG_COLUMNS differ"
_pg_values_cache: dict[int, str] = {}


def _pg_values_insert(n_rows: int) -> str:
    sql = _pg_values_cache.get(n_rows)
    if sql is None:
        one = "(" + ", ".join(["%s"] * _N_COLUMNS) + ")"
        sql = (
            f"INSERT INTO prompt_executions ({_COLUMN_LIST}) VALUES "
            + ", ".join([one] * n_rows)
            + " ON CONFLICT DO NOTHING"
        )
        if len(_pg_values_cache) < 64:
            _pg_values_cache[n_rows] = sql
    return sql


_pg_requests_cache: dict[int, str] = {}


def _pg_requests_insert(n_rows: int) -> str:
    sql = _pg_requests_cache.get(n_rows)
    if sql is None:
        one = "(" + ", ".join(["%s"] * len(REQUEST_COLUMNS)) + ")"
        sql = (
            f"INSERT INTO prompt_requests ({_REQUEST_COLUMN_LIST}) VALUES "
            + ", ".join([one] * n_rows)
            + " ON CONFLICT (execution_id, seq) DO NOTHING"
        )
        if len(_pg_requests_cache) < 64:
            _pg_requests_cache[n_rows] = sql
    return sql


class _PostgreSQL(Dialect):
    name = "postgresql"
    columns = _PG_COLUMNS
    copy_driver = "psycopg"

    @staticmethod
    def template_key(record: PromptExecution) -> TemplateKey | None:
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
        return (replace_nul(key), _pg_text(version), _pg_text(group))

    @staticmethod
    def clean_text(value: str) -> str:
        return replace_nul(value)

    @staticmethod
    def row(record: PromptExecution, template_id: int) -> tuple[Any, ...]:
        r = record
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
            t(r.prompt_text),
            t(r.response_text),
            t(r.user_id),
            t(r.session_id),
            t(r.request_id),
            t(r.service_tier),
            r.image_input_token_count,
            r.video_input_token_count,
            r.image_output_token_count,
            r.audio_output_token_count,
            r.grounded_prompt_count,
            r.search_query_count,
        )

    @staticmethod
    def request_rows(record: PromptExecution) -> list[tuple[Any, ...]]:
        execution_id = _pg_text(record.execution_id)
        t = _pg_text
        out = []
        for seq, q in enumerate(record.requests):
            cost = q.cost_usd
            if cost is not None and not isinstance(cost, Decimal):
                cost = Decimal(str(cost))
            out.append(
                (
                    execution_id,
                    seq,
                    _request_start(record, q.offset_ms),
                    t(q.operation),
                    t(q.model),
                    t(q.response_model),
                    q.input_token_count,
                    q.output_token_count,
                    q.total_token_count,
                    q.cached_token_count,
                    q.thinking_token_count,
                    q.tool_use_token_count,
                    q.audio_input_token_count,
                    q.cached_audio_token_count,
                    cost,
                    float(q.response_time_ms),
                    bool(q.success),
                    t(q.error_type),
                    q.http_status,
                    t(q.finish_reason),
                    bool(q.streamed),
                    q.image_input_token_count,
                    q.video_input_token_count,
                    q.image_output_token_count,
                    q.audio_output_token_count,
                    q.grounded_prompt_count,
                    q.search_query_count,
                )
            )
        return out

    def insert_rows(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        for start in range(0, len(rows), _PG_MAX_ROWS_PER_STATEMENT):
            chunk = rows[start : start + _PG_MAX_ROWS_PER_STATEMENT]
            params = tuple(value for row in chunk for value in row)
            conn.exec_driver_sql(_pg_values_insert(len(chunk)), params)

    def insert_request_rows(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        for start in range(0, len(rows), _PG_MAX_REQUESTS_PER_STATEMENT):
            chunk = rows[start : start + _PG_MAX_REQUESTS_PER_STATEMENT]
            params = tuple(value for row in chunk for value in row)
            conn.exec_driver_sql(_pg_requests_insert(len(chunk)), params)

    def insert_or_ignore(self, table: sa.Table) -> Any:
        return pg_insert(table).on_conflict_do_nothing()


SQLITE = _SQLite()
"""SQLite through sqlite3."""
POSTGRESQL = _PostgreSQL()
"""PostgreSQL (``COPY`` with psycopg 3)."""
DIALECTS: dict[str, Dialect] = {d.name: d for d in (SQLITE, POSTGRESQL)}
"""The supported databases by SQLAlchemy dialect name."""

assert sorted(SQLITE.columns) == sorted(EXECUTION_COLUMNS), "SQLite rows miss columns"
