"""The SQL store's tables, as SQLAlchemy Core metadata.

Four tables, the first two named so that the original design's analytics queries run
verbatim on PostgreSQL:

``prompt_templates``
    One row per template key, version and A/B group (``name``, ``version``,
    ``ab_test_group``; a missing version or group is ``NULL``, and the three are unique
    together, ``NULL`` counting as one value). The statistics columns (``total_executions``
    ... ``last_executed_at``) are maintained by database triggers, never by the sink.

``prompt_executions``
    One row per :class:`~vividly_trace.PromptExecution`: ``id`` is the execution id,
    ``template_id`` points to the template row, ``template_name`` repeats the key so reports
    need no join, ``executed_at`` is the record's ``started_at``; every other record field
    has a column of its own. No column but ``id`` has the same name in both tables, so the
    version and group repeated here are ``template_version`` and ``template_ab_test_group``.
    ``prompt_text`` and ``response_text`` (revision 0003) hold the content when content
    capture is on, else ``NULL``. ``user_id``, ``session_id`` and ``request_id``
    (revision 0005) are who called, as :func:`vividly_trace.context` or the middleware
    bound them (``NULL`` outside any context), with partial indexes for the queries by
    user and by session.

``prompt_requests`` (revision 0003)
    One row per Gemini request client capture saw during an execution (a
    :class:`~vividly_trace.RequestRecord`), failed requests included: ``execution_id``
    points to the execution (``ON DELETE CASCADE``; on SQLite, which enforces foreign keys
    only when asked, a trigger deletes them), ``seq`` is the request's position in it (the
    key is the pair), ``started_at`` the request's own start (the execution's
    ``executed_at`` plus the request's offset), then its operation, model, tokens, cost,
    latency and outcome. The execution's counts and cost are the sums of its requests', so
    summing ``prompt_executions`` never counts a request twice; reports by model read
    these rows. Executions without requests (a ``log_prompt_execution`` record, a store
    written before 0003) have none.

``prompt_scores`` (revision 0007)
    One row per score (:func:`vividly_trace.score`) of an execution, name and source (the
    key); no foreign key, so a score that arrives before its execution is kept. The value
    is ``value_number`` (numeric, and booleans as 1.0 / 0.0) or ``value_text``
    (categorical), as ``data_type`` says. Rewritten by a later score of the same key: the
    value given last (``updated_at``) wins, whatever the order of arrival.
``alert_state`` (revision 0009)
    One row per alert that fired: the rule's name, its subject (a template key, or ``*``
    for all templates) and the start of its window are the key, so an alert fires once per
    window whichever process checks. ``payload`` is what was sent; ``delivered_at`` stays
    ``NULL`` until the webhook answered 2xx, ``lease_until`` / ``lease_owner`` claim a
    delivery (and hold off the next attempt after a failure), ``attempts`` and
    ``last_error`` tell how delivery went. See :mod:`vividly_trace.alerts`.
``prompt_deployments`` (revision 0010)
    One row per prompt key served from the store (:mod:`vividly_trace.prompts`): its
    ``labels`` (label -> version, e.g. ``{"production": "v3"}``) and its rollout
    (``weights``: version -> weight, ``control``: the version the others are compared
    with; both ``NULL`` without a rollout). The versions themselves are the
    ``prompt_templates`` rows of the key with a ``template_text`` and no A/B group; their
    ``config`` (revision 0010) is the JSON object pushed with them.

Types per engine:

- money (``cost_usd``, ``total_cost_usd``) is ``NUMERIC``: exact and unbounded on PostgreSQL.
  On SQLite, whose ``NUMERIC`` keeps a double for a fraction, the column holds an integer
  number of pico-dollars (10**-12 USD, revision 0012): the statistics triggers and every
  ``SUM`` then add integers, exactly, up to about 9.2 million USD per sum (SQLite's 64-bit
  integers). A cost with more than 12 decimals is rounded half-even to the pico-dollar when
  stored on SQLite. :class:`Money` converts both ways, so Python code reads dollars as
  :class:`~decimal.Decimal` on both engines.
- timestamps are ``timestamptz`` on PostgreSQL; on SQLite they are naive UTC text
  (``YYYY-MM-DD HH:MM:SS.ffffff``), which sorts and works with ``DATE()``.
- ``metadata`` is ``JSONB`` on PostgreSQL and ``JSON`` (text) on SQLite.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    false,
    func,
    literal,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = [
    "CALLER_INDEXES",
    "EXECUTION_COLUMNS",
    "REQUEST_COLUMNS",
    "SQLITE_MONEY_SCALE",
    "Money",
    "alert_state",
    "from_sqlite_money",
    "metadata",
    "money_as_float",
    "prompt_executions",
    "prompt_requests",
    "prompt_scores",
    "prompt_templates",
    "to_sqlite_money",
]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)
"""The metadata holding the tables (what the migrations create)."""


SQLITE_MONEY_SCALE = 12
"""On SQLite a money column holds ``round(usd * 10**SQLITE_MONEY_SCALE)``: pico-dollars."""

_PICO_PER_USD = 10**SQLITE_MONEY_SCALE
_ONE = decimal.Decimal(1)
# A double this large in a pico-dollar column is a sum that left SQLite's 64-bit integers
# (SQLite then computes in floating point); a legacy dollar cost is never this large.
_OVERFLOWED = float(2**63)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def to_sqlite_money(value: decimal.Decimal | float | int) -> int | float:
    """The integer pico-dollars SQLite stores for ``value`` USD (half-even to the pico-dollar).

    Beyond SQLite's 64-bit integers (about 9.2 million USD) the pico-dollars as a double, as
    SQLite's own integer arithmetic does on overflow: approximate, read back as such.

    .. versionadded:: 0.5.0
    """
    if not isinstance(value, decimal.Decimal):
        value = decimal.Decimal(repr(value) if isinstance(value, float) else value)
    scaled = value.scaleb(SQLITE_MONEY_SCALE)
    pico = int(scaled)  # truncates: exact for the usual cost of at most 12 decimals
    if pico != scaled:
        pico = int(scaled.to_integral_value(decimal.ROUND_HALF_EVEN))
    return pico if _INT64_MIN <= pico <= _INT64_MAX else float(pico)


def from_sqlite_money(raw: int | float) -> decimal.Decimal:
    """The exact USD amount of ``raw`` pico-dollars (``30`` and not ``3E+1``); a double (a
    value beyond 64-bit integers) gives its approximate amount.

    .. versionadded:: 0.5.0
    """
    if isinstance(raw, float):
        return decimal.Decimal(raw).scaleb(-SQLITE_MONEY_SCALE).normalize()
    usd = decimal.Decimal(raw).scaleb(-SQLITE_MONEY_SCALE)
    return usd.quantize(_ONE) if raw % _PICO_PER_USD == 0 else usd.normalize()


class Money(TypeDecorator[decimal.Decimal]):
    """``NUMERIC`` that always gives back a :class:`~decimal.Decimal` of USD.

    PostgreSQL keeps the exact value. SQLite keeps integer pico-dollars
    (:data:`SQLITE_MONEY_SCALE`): binding converts dollars to them, reading converts back,
    exactly. A double read on SQLite is a dollar amount of a store not yet upgraded to
    revision 0012 (read through its shortest ``repr``), or a pico-dollar sum beyond 64-bit
    integers (approximate).
    """

    impl = Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Numeric(asdecimal=False))
        return dialect.type_descriptor(Numeric(asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return to_sqlite_money(value)
        return value if isinstance(value, decimal.Decimal) else decimal.Decimal(str(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> decimal.Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            if isinstance(value, int):
                return from_sqlite_money(value)
            if isinstance(value, float):
                if abs(value) >= _OVERFLOWED:
                    return from_sqlite_money(value)
                return decimal.Decimal(repr(value))
        if isinstance(value, decimal.Decimal):
            return value
        return decimal.Decimal(str(value))


class money_as_float(FunctionElement[float]):
    """A money column (or sum) as a floating-point number of USD on every engine, for
    statistics that need no exact value (means and variances of the A/B cost metric).

    .. versionadded:: 0.5.0
    """

    type = Double()
    inherit_cache = True


@compiles(money_as_float)
def _money_as_float(element: money_as_float, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(money_as_float, "sqlite")
def _money_as_float_sqlite(element: money_as_float, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(element.clauses, **kw)} / {_PICO_PER_USD}.0)"


JSONDocument = JSON().with_variant(JSONB(), "postgresql")

prompt_templates = Table(
    "prompt_templates",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False, comment="the template key"),
    Column("version", Text, nullable=True),
    Column("ab_test_group", Text, nullable=True),
    Column("model", Text, nullable=True),
    Column("template_text", Text, nullable=True),
    Column("is_active", Boolean, nullable=False, server_default=true()),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Statistics: written by the triggers in triggers.py, equal to the aggregates of
    # prompt_executions for this template.
    Column("total_executions", BigInteger, nullable=False, server_default=text("0")),
    Column("successful_executions", BigInteger, nullable=False, server_default=text("0")),
    Column("failed_executions", BigInteger, nullable=False, server_default=text("0")),
    Column("total_input_tokens", BigInteger, nullable=False, server_default=text("0")),
    Column("total_output_tokens", BigInteger, nullable=False, server_default=text("0")),
    Column("total_tokens", BigInteger, nullable=False, server_default=text("0")),
    Column("total_cost_usd", Money, nullable=False, server_default=text("0")),
    Column("total_response_time_ms", Double, nullable=False, server_default=text("0")),
    Column("avg_response_time_ms", Double, nullable=True),
    Column("first_executed_at", DateTime(timezone=True), nullable=True),
    Column("last_executed_at", DateTime(timezone=True), nullable=True),
    # Added by revision 0010 (last: ALTER TABLE ... ADD COLUMN appends): the JSON object
    # pushed with a prompt version (vividly_trace.prompts.push(config=...)).
    Column("config", JSONDocument, nullable=True),
)
"""Templates (key, version, A/B group) and their statistics."""

Index(
    "uq_prompt_templates_name_version_ab_test_group",
    prompt_templates.c.name,
    func.coalesce(prompt_templates.c.version, literal("", Text)),
    func.coalesce(prompt_templates.c.ab_test_group, literal("", Text)),
    unique=True,
)

prompt_executions = Table(
    "prompt_executions",
    metadata,
    Column("id", String(64), primary_key=True, comment="the execution id (UUIDv7 text)"),
    Column(
        "template_id",
        Integer,
        ForeignKey("prompt_templates.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("template_name", Text, nullable=False),
    Column("template_version", Text, nullable=True),
    Column("template_ab_test_group", Text, nullable=True),
    Column("executed_at", DateTime(timezone=True), nullable=False),
    Column("success", Boolean, nullable=False),
    Column("response_time_ms", Double, nullable=False),
    Column("provider", Text, nullable=True),
    Column("model", Text, nullable=True),
    Column("response_model", Text, nullable=True),
    Column("input_token_count", BigInteger, nullable=True),
    Column("output_token_count", BigInteger, nullable=True),
    Column("total_token_count", BigInteger, nullable=True),
    Column("cached_token_count", BigInteger, nullable=True),
    Column("thinking_token_count", BigInteger, nullable=True),
    Column("tool_use_token_count", BigInteger, nullable=True),
    Column("audio_input_token_count", BigInteger, nullable=True),
    Column("cost_usd", Money, nullable=True),
    Column("pricing_version", Text, nullable=True),
    Column("error_type", Text, nullable=True),
    Column("error_message", Text, nullable=True),
    Column("http_status", Integer, nullable=True),
    Column("finish_reason", Text, nullable=True),
    Column("streamed", Boolean, nullable=False, server_default=false()),
    Column("stream_closed_early", Boolean, nullable=False, server_default=false()),
    Column("time_to_first_chunk_ms", Double, nullable=True),
    Column("parent_execution_id", String(64), nullable=True),
    Column("metadata", JSONDocument, nullable=True),
    # Added by revision 0002. ALTER TABLE ... ADD COLUMN appends, so the column is last here
    # too: a store created from this metadata and an upgraded one have the same layout.
    Column("cached_audio_token_count", BigInteger, nullable=True),
    # Added by revision 0003 (last, for the same reason).
    Column("prompt_text", Text, nullable=True),
    Column("response_text", Text, nullable=True),
    # Added by revision 0005 (last, for the same reason): who called (``context()``).
    Column("user_id", Text, nullable=True),
    Column("session_id", Text, nullable=True),
    Column("request_id", Text, nullable=True),
    # Added by schema revision "service tier" (last, for the same reason): the tier that
    # priced the call (standard, flex, priority, batch, provisioned), NULL: not said.
    Column("service_tier", Text, nullable=True),
    # Added by schema revision "modalities" (last, for the same reason): modality token
    # counts and the units Grounding with Google Search bills.
    Column("image_input_token_count", BigInteger, nullable=True),
    Column("video_input_token_count", BigInteger, nullable=True),
    Column("image_output_token_count", BigInteger, nullable=True),
    Column("audio_output_token_count", BigInteger, nullable=True),
    Column("grounded_prompt_count", BigInteger, nullable=True),
    Column("search_query_count", BigInteger, nullable=True),
)
"""One row per prompt execution."""

Index(
    "ix_prompt_executions_template_id_executed_at",
    prompt_executions.c.template_id,
    prompt_executions.c.executed_at,
)
Index(
    "ix_prompt_executions_template_name_executed_at",
    prompt_executions.c.template_name,
    prompt_executions.c.executed_at,
)
Index("ix_prompt_executions_executed_at", prompt_executions.c.executed_at)
# Revision 0003: the roll-up of nested calls walks parent -> children. Partial: most
# executions have no parent.
_PARENT_INDEX_WHERE = "parent_execution_id IS NOT NULL"
Index(
    "ix_prompt_executions_parent_execution_id",
    prompt_executions.c.parent_execution_id,
    postgresql_where=text(_PARENT_INDEX_WHERE),
    sqlite_where=text(_PARENT_INDEX_WHERE),
)

# Revision 0005: cost per user and a user's sessions filter on the caller within a time
# window; partial, since calls made outside any context() carry none.
CALLER_INDEXES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("ix_prompt_executions_user_id_executed_at", ("user_id", "executed_at"), "user_id"),
    ("ix_prompt_executions_session_id_executed_at", ("session_id", "executed_at"), "session_id"),
    ("ix_prompt_executions_request_id", ("request_id",), "request_id"),
)
"""The caller indexes: (name, columns, the column that must be non-NULL)."""
for _name, _columns, _present in CALLER_INDEXES:
    Index(
        _name,
        *(prompt_executions.c[c] for c in _columns),
        postgresql_where=text(f"{_present} IS NOT NULL"),
        sqlite_where=text(f"{_present} IS NOT NULL"),
    )

prompt_requests = Table(
    "prompt_requests",
    metadata,
    Column(
        "execution_id",
        String(64),
        ForeignKey("prompt_executions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("operation", Text, nullable=False),
    Column("model", Text, nullable=True),
    Column("response_model", Text, nullable=True),
    Column("input_token_count", BigInteger, nullable=True),
    Column("output_token_count", BigInteger, nullable=True),
    Column("total_token_count", BigInteger, nullable=True),
    Column("cached_token_count", BigInteger, nullable=True),
    Column("thinking_token_count", BigInteger, nullable=True),
    Column("tool_use_token_count", BigInteger, nullable=True),
    Column("audio_input_token_count", BigInteger, nullable=True),
    Column("cached_audio_token_count", BigInteger, nullable=True),
    Column("cost_usd", Money, nullable=True),
    Column("response_time_ms", Double, nullable=False),
    Column("success", Boolean, nullable=False),
    Column("error_type", Text, nullable=True),
    Column("http_status", Integer, nullable=True),
    Column("finish_reason", Text, nullable=True),
    Column("streamed", Boolean, nullable=False, server_default=false()),
    # Added by schema revision "modalities", as on prompt_executions.
    Column("image_input_token_count", BigInteger, nullable=True),
    Column("video_input_token_count", BigInteger, nullable=True),
    Column("image_output_token_count", BigInteger, nullable=True),
    Column("audio_output_token_count", BigInteger, nullable=True),
    Column("grounded_prompt_count", BigInteger, nullable=True),
    Column("search_query_count", BigInteger, nullable=True),
)
"""One row per Gemini request of an execution (revision 0003)."""

Index(
    "ix_prompt_requests_started_at_model",
    prompt_requests.c.started_at,
    prompt_requests.c.model,
)

prompt_scores = Table(
    "prompt_scores",
    metadata,
    # No foreign key: a score may arrive before its execution's row (or outlive it).
    Column("execution_id", String(64), primary_key=True),
    Column("name", Text, primary_key=True),
    Column("source", Text, primary_key=True),
    Column("value_number", Double, nullable=True),
    Column("value_text", Text, nullable=True),
    Column("data_type", Text, nullable=False),
    Column("comment", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("data_type IN ('numeric', 'boolean', 'categorical')", name="data_type"),
)
"""One row per score of an execution, name and source (revision 0007): ``value_number``
for numeric scores and booleans (1.0 / 0.0), ``value_text`` for categories; ``created_at``
when the first value was given, ``updated_at`` when the stored (latest) one was."""

Index("ix_prompt_scores_name_updated_at", prompt_scores.c.name, prompt_scores.c.updated_at)
alert_state = Table(
    "alert_state",
    metadata,
    Column("rule", Text, primary_key=True),
    Column("subject", Text, primary_key=True),
    Column("window_start", DateTime(timezone=True), primary_key=True),
    Column("window_end", DateTime(timezone=True), nullable=False),
    Column("kind", Text, nullable=False),
    Column("fired_at", DateTime(timezone=True), nullable=False),
    Column("message", Text, nullable=False),
    Column("payload", JSONDocument, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("lease_until", DateTime(timezone=True), nullable=True),
    Column("lease_owner", Text, nullable=True),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    Column("last_error", Text, nullable=True),
)
"""One row per alert fired, per rule, subject and window (revision 0009)."""

prompt_deployments = Table(
    "prompt_deployments",
    metadata,
    Column("name", Text, primary_key=True),  # the prompt (template) key
    Column("labels", JSONDocument, nullable=False),
    Column("weights", JSONDocument, nullable=True),
    Column("control", Text, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
"""Per prompt key: its labels (label -> version) and its rollout (version -> weight, and
the control version), revision 0010."""

EXECUTION_COLUMNS: tuple[str, ...] = tuple(c.name for c in prompt_executions.columns)
"""Column names of ``prompt_executions`` in table order (the order of COPY and INSERT)."""
REQUEST_COLUMNS: tuple[str, ...] = tuple(c.name for c in prompt_requests.columns)
"""Column names of ``prompt_requests`` in table order (the order of COPY and INSERT)."""
