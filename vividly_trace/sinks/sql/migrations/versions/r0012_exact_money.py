"""Exact money on SQLite: costs as integer pico-dollars.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03

SQLite's ``NUMERIC`` keeps a fraction as a double, so ``total_cost_usd``, which the
triggers add up, drifted (``0.010840700000000002``). From this revision a money column on
SQLite holds ``round(usd * 10**12)`` as an integer: the triggers and every ``SUM`` add
integers, exactly. Each stored cost of ``prompt_executions`` and ``prompt_requests`` is read
through its shortest ``repr`` (what the store gave back before) and rounded half-even to
the pico-dollar; the templates' ``total_cost_usd`` are then recomputed from the executions
(the statistics equal their aggregates), which also drops the drift. The statistics UPDATE
trigger is dropped meanwhile (it would add the unit change to the totals) and created again.
Triggers then refuse a fraction in those columns (a dollar amount from an older writer).
PostgreSQL's ``NUMERIC`` is exact already: nothing changes there.

The downgrade turns the integers back into doubles (the nearest double to each exact value).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from alembic import op

from vividly_trace.sinks.sql import triggers

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here (migrations are history): the unit this revision introduces.
_PICO_PER_USD = 10**12
_FUNCTION = "vividly_trace_usd_to_pico"
_COST_TABLES = ("prompt_executions", "prompt_requests")


def _usd_to_pico(value: Any) -> Any:
    """A stored dollar amount (double, or integer where the double was whole) as pico-dollars;
    anything else (text that is no number) is left as it is."""
    if value is None or isinstance(value, bytes):
        return value
    try:
        usd = Decimal(repr(value) if isinstance(value, float) else str(value))
    except InvalidOperation:
        return value
    if not usd.is_finite():
        return value
    pico = int(usd.scaleb(12).to_integral_value(ROUND_HALF_EVEN))
    # Beyond 64-bit integers (a cost of millions of dollars) the double stays: it reads back
    # as dollars, as before.
    return pico if -(2**63) <= pico < 2**63 else value


def _update_trigger(create: bool) -> None:
    for statement in triggers.drop_update_statements("sqlite"):
        op.execute(statement)
    if create:
        for statement in triggers.create_update_statements("sqlite"):
            op.execute(statement)


def _has_table(name: str) -> bool:
    import sqlalchemy as sa

    return bool(sa.inspect(op.get_bind()).has_table(name))


def upgrade() -> None:
    """SQLite: convert the stored costs to pico-dollars and recompute the templates' totals."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    raw = bind.connection.driver_connection
    raw.create_function(_FUNCTION, 1, _usd_to_pico, deterministic=True)  # type: ignore[union-attr]
    _update_trigger(create=False)
    for table in _COST_TABLES:
        if _has_table(table):
            op.execute(
                f"UPDATE {table} SET cost_usd = {_FUNCTION}(cost_usd) WHERE cost_usd IS NOT NULL"
            )
    op.execute(
        "UPDATE prompt_templates SET total_cost_usd = (SELECT coalesce(sum(e.cost_usd), 0) "
        "FROM prompt_executions e WHERE e.template_id = prompt_templates.id)"
    )
    _update_trigger(create=True)
    for statement in triggers.create_money_statements("sqlite"):
        op.execute(statement)


def downgrade() -> None:
    """SQLite: turn the pico-dollars back into (floating-point) dollars."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    for statement in triggers.drop_money_statements("sqlite"):
        op.execute(statement)
    _update_trigger(create=False)
    pico = f"{_PICO_PER_USD}.0"
    for table in _COST_TABLES:
        if _has_table(table):
            op.execute(
                f"UPDATE {table} SET cost_usd = cost_usd / {pico} "
                "WHERE typeof(cost_usd) = 'integer'"
            )
    op.execute(
        f"UPDATE prompt_templates SET total_cost_usd = total_cost_usd / {pico} "
        "WHERE typeof(total_cost_usd) = 'integer'"
    )
    _update_trigger(create=True)
