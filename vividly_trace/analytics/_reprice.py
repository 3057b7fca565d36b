"""Recompute stored costs from stored token counts with a (new) price table.

Prices change, and a price table can be wrong: ``reprice`` rewrites ``cost_usd`` and
``pricing_version`` of the stored executions from their token counts, in batches. The
``total_cost_usd`` statistic of the templates follows by itself: the statistics ``UPDATE``
trigger (schema revision 0002) applies each cost change in the same transaction, so
``reprice`` needs a store at revision 0002 or newer (``vividly-trace db upgrade``).

Rows are left as they are when they have no token counts, no model name, or a model the
table has no price for (they are counted as ``unpriced``, and the unknown models listed).

An execution with Gemini request rows (``prompt_requests``, schema revision 0003: what
client capture saw) is repriced request by request, each at its own model (the requested
one, or the one the answer named when the requested name has no price of its own, as the
record builder does: :meth:`PricingTable.priced_model`) and by its operation's billing
rule (:meth:`PricingTable.request_cost`); the execution's cost becomes the sum of its
requests' (a request left as it was keeps its cost; the sum is unknown when a request with
tokens has none). The execution counts as ``unpriced`` when one of its requests could not
be priced, and is left as it was when none could. An execution without request rows is
priced from its own counts and model, as before.
Each execution is priced as the record builder priced it: at the prices in force on the UTC
day it started (``executed_at``; a model whose prices change on a date, such as the end of
an introductory price, gets the period's price, and ``pricing_version`` names the table and
the period, ``VERSION/from-DATE``) and at its stored ``service_tier`` (schema revision with
that column; ``NULL`` or an older store: standard), which applies to its request rows too.
A cost rewritten by ``reprice`` is what :class:`~vividly_trace.PricingTable` gives for the
stored counts: input (cached part at the cached rate, cached audio at the cached-audio
rate, other audio at the audio rate), output (thinking included) at the output rate, tier
by prompt size. Rows stored before revision 0002 have no cached audio count: their cached
input is priced as cached text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..exceptions import ConfigurationError
from ..pricing import PricingTable, utc_day
from ..usage import Usage
from ._sql import (
    executions_table,
    has_requests_table,
    requests_table,
    sort_key,
    window_conditions,
)
from ._store import (
    ResultList,
    StoreSchemaError,
    StoreSource,
    TimeBound,
    hide_password,
    open_store,
    rows_to_dataframe,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

__all__ = ["RepriceResult", "RepriceTemplate", "reprice"]

_ZERO = Decimal(0)
ProgressCallback = Callable[[int, int], None]
# Revisions without the cached audio column and the statistics UPDATE trigger (None: a store
# not made by the migrations). Unknown revisions are newer ones, as for the sink.
_TOO_OLD = frozenset({None, "0001"})
# One statement per batch: the statement-level trigger then runs once per batch.
_PG_UPDATE = """
UPDATE prompt_executions AS e SET cost_usd = v.cost, pricing_version = v.version
  FROM unnest(CAST(:ids AS text[]), CAST(:costs AS numeric[]), CAST(:versions AS text[]))
       AS v (id, cost, version)
 WHERE e.id = v.id
"""
_PG_UPDATE_REQUESTS = """
UPDATE prompt_requests AS r SET cost_usd = v.cost
  FROM unnest(CAST(:ids AS text[]), CAST(:seqs AS integer[]), CAST(:costs AS numeric[]))
       AS v (id, seq, cost)
 WHERE r.execution_id = v.id AND r.seq = v.seq
"""


@dataclass(frozen=True, slots=True)
class RepriceTemplate:
    """What repricing does (or would do) to one template.

    ``executions``: rows looked at; ``updated``: rows written (new cost or new pricing
    version); ``cost_changed``: rows whose cost differs; ``no_tokens``: rows without token
    counts (failed calls, mostly: nothing to price, left as they were); ``unpriced``: rows
    with token counts left as they were (no model name, or no price for the model in the
    table, or a prompt beyond the priced range). ``old_cost_usd`` and
    ``new_cost_usd`` sum the costs of the rows looked at, before and after.

    .. versionadded:: 0.1.0
    """

    template: str
    executions: int
    updated: int
    cost_changed: int
    no_tokens: int
    unpriced: int
    old_cost_usd: Decimal
    new_cost_usd: Decimal

    @property
    def delta_usd(self) -> Decimal:
        """``new_cost_usd - old_cost_usd``."""
        return self.new_cost_usd - self.old_cost_usd

    def to_dict(self) -> dict[str, Any]:
        """The row as a flat dict (with the delta)."""
        return {
            "template": self.template,
            "executions": self.executions,
            "updated": self.updated,
            "cost_changed": self.cost_changed,
            "no_tokens": self.no_tokens,
            "unpriced": self.unpriced,
            "old_cost_usd": self.old_cost_usd,
            "new_cost_usd": self.new_cost_usd,
            "delta_usd": self.delta_usd,
        }


@dataclass(frozen=True, slots=True)
class RepriceResult:
    """The outcome of :func:`reprice`, per template and in total.

    .. versionadded:: 0.1.0
    """

    pricing_version: str
    dry_run: bool
    templates: ResultList[RepriceTemplate] = field(default_factory=ResultList)
    unknown_models: tuple[str, ...] = ()

    @property
    def executions(self) -> int:
        """Rows looked at."""
        return sum(t.executions for t in self.templates)

    @property
    def updated(self) -> int:
        """Rows written (or that would be, in a dry run)."""
        return sum(t.updated for t in self.templates)

    @property
    def cost_changed(self) -> int:
        """Rows whose cost changes."""
        return sum(t.cost_changed for t in self.templates)

    @property
    def no_tokens(self) -> int:
        """Rows without token counts (left as they were)."""
        return sum(t.no_tokens for t in self.templates)

    @property
    def unpriced(self) -> int:
        """Rows with token counts left as they were (no price for their model)."""
        return sum(t.unpriced for t in self.templates)

    @property
    def old_cost_usd(self) -> Decimal:
        """Total cost before."""
        return sum((t.old_cost_usd for t in self.templates), _ZERO)

    @property
    def new_cost_usd(self) -> Decimal:
        """Total cost after."""
        return sum((t.new_cost_usd for t in self.templates), _ZERO)

    def to_dataframe(self) -> Any:
        """The per-template rows as a pandas DataFrame."""
        return rows_to_dataframe(self.templates)


def _stored(engine: Engine, value: Decimal) -> Decimal:
    """The value as the store gives it back (SQLite keeps whole pico-dollars)."""
    if engine.dialect.name == "sqlite":
        from ..sinks.sql.schema import from_sqlite_money, to_sqlite_money

        return from_sqlite_money(to_sqlite_money(value))
    return value


def _require_revision(engine: Engine) -> None:
    """Refuse a store older than revision 0002 (no cached audio column, no UPDATE trigger)."""
    from ..sinks.sql import migrate

    with engine.connect() as conn:
        revision = migrate.current_revision(conn)
    if revision in _TOO_OLD:
        raise StoreSchemaError(
            f"{hide_password(engine.url)} is at schema revision {revision or '(none)'}; "
            "reprice needs 0002 or newer (cached audio counts, the statistics UPDATE "
            "trigger): upgrade it with: vividly-trace db upgrade --url URL"
        )


def _write(conn: Connection, statement: Any, changes: list[dict[str, Any]]) -> None:
    """Set the new costs and the pricing versions of the changed rows."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy import text

        conn.execute(
            text(_PG_UPDATE),
            {
                "ids": [c["b_id"] for c in changes],
                "costs": [c["b_cost"] for c in changes],
                "versions": [c["b_version"] for c in changes],
            },
        )
    else:
        conn.execute(statement, changes)


def _write_requests(conn: Connection, changes: list[dict[str, Any]]) -> None:
    """Set the new costs of the changed request rows."""
    from sqlalchemy import bindparam, text, update

    if conn.dialect.name == "postgresql":
        conn.execute(
            text(_PG_UPDATE_REQUESTS),
            {
                "ids": [c["b_id"] for c in changes],
                "seqs": [c["b_seq"] for c in changes],
                "costs": [c["b_cost"] for c in changes],
            },
        )
        return
    r = requests_table()
    statement = (
        update(r)
        .where(r.c.execution_id == bindparam("b_id"), r.c.seq == bindparam("b_seq"))
        .values(cost_usd=bindparam("b_cost", type_=r.c.cost_usd.type))
    )
    conn.execute(statement, changes)


#: The modality and grounding count columns (schema revision 0013), read where present.
_MODAL_COLUMNS = (
    "image_input_token_count",
    "video_input_token_count",
    "image_output_token_count",
    "audio_output_token_count",
    "grounded_prompt_count",
    "search_query_count",
)


def _requests_of(conn: Connection, ids: list[str], modal: bool) -> dict[str, list[Any]]:
    """Execution id -> its request rows (in ``seq`` order), for the executions in ``ids``
    that have some (``modal``: with the modality and grounding counts)."""
    from sqlalchemy import select

    r = requests_table().c
    out: dict[str, list[Any]] = {}
    query = (
        select(
            r.execution_id,
            r.seq,
            r.operation,
            r.model,
            r.response_model,
            r.input_token_count,
            r.output_token_count,
            r.cached_token_count,
            r.thinking_token_count,
            r.tool_use_token_count,
            r.audio_input_token_count,
            r.cached_audio_token_count,
            r.cost_usd,
            *(r[name] for name in _MODAL_COLUMNS if modal),
        )
        .where(r.execution_id.in_(ids))
        .order_by(r.execution_id, r.seq)
    )
    for row in conn.execute(query):
        out.setdefault(row.execution_id, []).append(row)
    return out


def _begin(conn: Connection) -> Any:
    transaction = conn.begin()
    if conn.dialect.name == "sqlite":
        dbapi = conn.connection.dbapi_connection
        if dbapi is not None and not getattr(dbapi, "in_transaction", True):
            # Take the write lock up front: a deferred transaction that reads and then
            # writes can fail with "database is locked" while a sink is writing.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
    return transaction


def reprice(
    source: StoreSource,
    *,
    pricing: PricingTable | str | None = None,
    dry_run: bool = False,
    template: str | None = None,
    since: TimeBound = None,
    until: TimeBound = None,
    batch_size: int = 1000,
    progress: ProgressCallback | None = None,
) -> RepriceResult:
    """Recompute ``cost_usd`` and ``pricing_version`` of stored executions.

    Each batch of ``batch_size`` rows is one transaction that updates the changed rows. The
    statistics ``UPDATE`` trigger moves ``prompt_templates.total_cost_usd`` of their
    templates by the same amounts in that transaction, so the statistic stays equal to the
    sum of the executions' costs: exactly on PostgreSQL, as a floating-point sum on SQLite
    (as for inserts; see :mod:`vividly_trace.sinks.sql.schema`). ``reprice`` itself writes
    no statistics. Running it twice changes nothing the second time.

    Args:
        source: database URL or SQLAlchemy Engine.
        pricing: a :class:`PricingTable` or the path of a TOML/JSON table; default: the
            packaged table.
        dry_run: compute the differences, write nothing.
        template: only this template key.
        since, until: only executions in this window.
        batch_size: rows per transaction.
        progress: called as ``progress(done, total)`` after each batch.

    Returns:
        A :class:`RepriceResult` with one row per template (sorted by name).

    Raises:
        StoreError: the store cannot be used (:class:`StoreSchemaError` when it is older
        than schema revision 0002: run ``vividly-trace db upgrade``). ConfigurationError: a
        bad price table or argument.

    .. versionadded:: 0.1.0
    """
    from sqlalchemy import bindparam, func, select, update

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigurationError(f"batch_size must be a positive int, got {batch_size!r}")
    if pricing is None:
        table = PricingTable.default()
    elif isinstance(pricing, PricingTable):
        table = pricing
    else:
        table = PricingTable.from_file(pricing)
    e = executions_table()
    c = e.c
    # template -> [n, updated, changed, no_tokens, unpriced, old, new]
    stats: dict[str, list[Any]] = {}
    unknown: set[str] = set()
    with open_store(source) as engine:
        _require_revision(engine)
        conditions = window_conditions(engine, since, until, template)
        with engine.connect() as conn:
            with_requests = has_requests_table(conn)
            with_tier = _has_column(conn, "service_tier")
            with_modal = _has_column(conn, "search_query_count")
            total = int(
                conn.execute(select(func.count()).select_from(e).where(*conditions)).scalar_one()
            )
        if progress is not None:
            progress(0, total)
        statement = (
            update(e)
            .where(c.id == bindparam("b_id"))
            .values(
                cost_usd=bindparam("b_cost", type_=c.cost_usd.type),
                pricing_version=bindparam("b_version"),
            )
        )
        done = 0
        last_id: str | None = None
        extra = [c.executed_at, c.service_tier] if with_tier else [c.executed_at]
        if with_modal:
            extra += [c[name] for name in _MODAL_COLUMNS]
        while True:
            query = select(
                *extra,
                c.id,
                c.template_name,
                c.provider,
                c.model,
                c.response_model,
                c.input_token_count,
                c.output_token_count,
                c.cached_token_count,
                c.thinking_token_count,
                c.tool_use_token_count,
                c.audio_input_token_count,
                c.cached_audio_token_count,
                c.cost_usd,
                c.pricing_version,
            ).where(*conditions)
            if last_id is not None:
                query = query.where(c.id > last_id)
            query = query.order_by(c.id).limit(batch_size)
            with engine.connect() as conn:
                transaction = None if dry_run else _begin(conn)
                rows = conn.execute(query).all()
                if not rows:
                    if transaction is not None:
                        transaction.rollback()
                    break
                changes: list[dict[str, Any]] = []
                request_changes: list[dict[str, Any]] = []
                children = (
                    _requests_of(conn, [r.id for r in rows], with_modal) if with_requests else {}
                )
                for r in rows:
                    entry = stats.setdefault(r.template_name, [0, 0, 0, 0, 0, _ZERO, _ZERO])
                    entry[0] += 1
                    old = r.cost_usd
                    mine = children.get(r.id)
                    day = utc_day(r.executed_at)
                    tier = r.service_tier if with_tier else None
                    if mine is not None:
                        if all(_no_tokens(q) for q in mine):
                            entry[3] += 1  # only failed requests: nothing to price
                            entry[5] += old or _ZERO
                            entry[6] += old or _ZERO
                            continue
                        new, version, repriced, partly_unpriced = _requests_cost(
                            engine,
                            table,
                            r.id,
                            mine,
                            unknown,
                            request_changes,
                            day,
                            tier,
                            r.provider,
                        )
                        entry[4] += 1 if partly_unpriced else 0
                        if not repriced:  # no request could be priced: left as it was
                            entry[5] += old or _ZERO
                            entry[6] += old or _ZERO
                            continue
                        if new is None:
                            # A request with tokens has no cost: so has the execution.
                            entry[5] += old or _ZERO
                            if old is not None:
                                entry[1] += 1
                                entry[2] += 1
                                changes.append(
                                    {"b_id": r.id, "b_cost": None, "b_version": table.version}
                                )
                            continue
                    else:
                        new, version = _new_cost(table, r, unknown, day, tier)
                    if new is None:
                        no_tokens = r.input_token_count is None and r.output_token_count is None
                        entry[3 if no_tokens else 4] += 1
                        entry[5] += old or _ZERO
                        entry[6] += old or _ZERO
                        continue
                    new = _stored(engine, new)
                    entry[5] += old or _ZERO
                    entry[6] += new
                    cost_changed = old is None or old != new
                    if cost_changed or r.pricing_version != version:
                        entry[1] += 1
                        entry[2] += 1 if cost_changed else 0
                        changes.append({"b_id": r.id, "b_cost": new, "b_version": version})
                if transaction is not None:
                    if request_changes:
                        _write_requests(conn, request_changes)
                    if changes:
                        _write(conn, statement, changes)
                    transaction.commit()
            last_id = rows[-1].id
            done += len(rows)
            if progress is not None:
                progress(done, max(total, done))
    templates = ResultList(
        RepriceTemplate(
            template=name,
            executions=v[0],
            updated=v[1],
            cost_changed=v[2],
            no_tokens=v[3],
            unpriced=v[4],
            old_cost_usd=v[5],
            new_cost_usd=v[6],
        )
        for name, v in sorted(stats.items(), key=lambda item: sort_key(item[0]))
    )
    return RepriceResult(
        pricing_version=table.version,
        dry_run=dry_run,
        templates=templates,
        unknown_models=tuple(sorted(unknown)),
    )


def _has_column(conn: Connection, name: str) -> bool:
    from sqlalchemy import inspect

    return any(col["name"] == name for col in inspect(conn).get_columns("prompt_executions"))


def _no_tokens(row: Any) -> bool:
    return row.input_token_count is None and row.output_token_count is None


def _usage(row: Any) -> Usage:
    return Usage(
        input_tokens=row.input_token_count,
        output_tokens=row.output_token_count,
        total_tokens=(row.input_token_count or 0) + (row.output_token_count or 0),
        cached_tokens=row.cached_token_count,
        thinking_tokens=row.thinking_token_count,
        tool_use_tokens=row.tool_use_token_count,
        audio_input_tokens=row.audio_input_token_count,
        cached_audio_tokens=row.cached_audio_token_count,
        image_input_tokens=getattr(row, "image_input_token_count", None),
        video_input_tokens=getattr(row, "video_input_token_count", None),
        image_output_tokens=getattr(row, "image_output_token_count", None),
        audio_output_tokens=getattr(row, "audio_output_token_count", None),
        grounded_prompts=getattr(row, "grounded_prompt_count", None),
        search_queries=getattr(row, "search_query_count", None),
    )


def _requests_cost(
    engine: Engine,
    table: PricingTable,
    execution_id: str,
    requests: list[Any],
    unknown: set[str],
    changes: list[dict[str, Any]],
    day: int,
    tier: str | None,
    provider: str | None = None,
) -> tuple[Decimal | None, str, bool, bool]:
    """Reprice an execution's request rows, each at its own model, on the execution's
    day, in its service tier and at its provider's prices.

    Appends the requests whose cost changes to ``changes``. Returns the execution's new
    cost (the exact sum over its requests with tokens; ``None`` when one of them has no
    cost), its pricing version (the table and the price period), whether any request was
    priced by ``table``, and whether a request with tokens could not be (its cost left as
    it was).
    """
    total: Decimal | None = _ZERO
    version: str | None = None
    repriced = False
    partly_unpriced = False
    for q in requests:
        if _no_tokens(q):
            continue  # a failed request: nothing billed, nothing to price
        model = table.priced_model(q.model, q.response_model)
        new: Decimal | None = None
        priced_by: str | None = None
        if model and table.resolve(model) is None:
            unknown.add(model)
        elif model:
            new, priced_by = table.quote(
                model, _usage(q), day=day, tier=tier, operation=q.operation, provider=provider
            )
        if priced_by is not None and priced_by != version:
            version = priced_by if version is None else f"{table.version}/mixed"
        if new is None:
            partly_unpriced = True
            cost = q.cost_usd  # left as it was
        else:
            repriced = True
            cost = new
            stored = _stored(engine, new)
            if q.cost_usd is None or q.cost_usd != stored:
                changes.append({"b_id": execution_id, "b_seq": q.seq, "b_cost": stored})
        total = None if total is None or cost is None else total + cost
    return total, version or table.version, repriced, partly_unpriced


def _new_cost(
    table: PricingTable, row: Any, unknown: set[str], day: int, tier: str | None
) -> tuple[Decimal | None, str]:
    """(cost, pricing version) of an execution without request rows."""
    if row.input_token_count is None and row.output_token_count is None:
        return None, table.version
    model = row.model or row.response_model
    if not model:
        return None, table.version
    if table.resolve(model) is None:
        unknown.add(model)
        return None, table.version
    cost, version = table.quote(model, _usage(row), day=day, tier=tier, provider=row.provider)
    return cost, version or table.version
