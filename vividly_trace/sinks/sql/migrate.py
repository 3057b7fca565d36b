"""Run the SQL store's Alembic migrations programmatically (no ``alembic.ini`` needed).

The revisions live in ``migrations/versions`` inside the package. The version is kept in
its own table, ``vividly_trace_alembic_version``, so an application that uses Alembic for
its own tables in the same database is not disturbed.

Concurrent upgrades (several workers starting at once on an empty database) are safe: the
whole upgrade runs in one transaction that first takes a lock (a PostgreSQL advisory lock;
on SQLite the ``BEGIN IMMEDIATE`` write lock of the sink's engines), so the first process
migrates and the others then find the schema current.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

__all__ = [
    "SCHEMA_REVISION",
    "VERSION_TABLE",
    "current_revision",
    "downgrade",
    "upgrade",
]

SCHEMA_REVISION = "0013"
"""The newest revision this version of the package ships (the Alembic head).

``0001``: the tables and the INSERT and DELETE statistics triggers. ``0002``: the
``prompt_executions.cached_audio_token_count`` column and the UPDATE statistics trigger.
``0003``: the ``prompt_requests`` table (one row per Gemini request of an execution), the
``prompt_executions.prompt_text`` and ``response_text`` columns, the parent index.
``0005``: the caller columns ``prompt_executions.user_id``, ``session_id``,
``request_id`` and their indexes. ``0007``: the ``prompt_scores`` table. ``0009``: the
``alert_state`` table (alerts fired, per rule, subject and window, with their delivery
state). ``0010``: the ``prompt_templates.config`` column and the ``prompt_deployments``
table (a prompt key's labels and rollout). ``0011``: the ``prompt_executions.service_tier``
column. ``0012``: exact money on SQLite (costs and ``total_cost_usd`` as integer
pico-dollars; nothing changes on PostgreSQL). ``0013``: the modality and grounding counts
on ``prompt_executions`` and ``prompt_requests``. Ids are not consecutive: each revision's
``down_revision`` is the one before it.
"""

KNOWN_REVISIONS = frozenset(
    {"0001", "0002", "0003", "0005", "0007", "0009", "0010", "0011", "0012", "0013"}
)
VERSION_TABLE = "vividly_trace_alembic_version"
MIGRATIONS_DIR = Path(__file__).with_name("migrations")

# Arbitrary but fixed: the advisory lock key of vividly_trace migrations ("vividly" in hex).
_PG_LOCK_KEY = 0x76697669646C79


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at, ``None`` when the store was never created."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    row = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).first()
    return None if row is None else str(row[0])


def _alembic_config(connection: Connection) -> object:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("version_table", VERSION_TABLE)
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Bring the database behind ``engine`` to ``revision`` (default: the newest).

    Idempotent: at the target already, nothing but the version check runs.

    Returns:
        ``(before, after)``: the revision before and after (``None`` = no store).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database could not be reached or migrated.
    """
    target = SCHEMA_REVISION if revision == "head" else revision
    return _migrate(engine, revision, target, "upgrade")


def downgrade(engine: Engine, revision: str) -> tuple[str | None, str | None]:
    """Take the database behind ``engine`` back to ``revision`` (``"base"``: drop the store).

    The inverse of :func:`upgrade`, in one transaction under the same lock. Downgrading
    drops what the later revisions added (columns included, with their data).

    Returns:
        ``(before, after)``: the revision before and after (``None`` = no store).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database could not be reached or migrated.
    """
    return _migrate(engine, revision, None if revision == "base" else revision, "downgrade")


def _migrate(
    engine: Engine, revision: str, target: str | None, direction: str
) -> tuple[str | None, str | None]:
    """Run Alembic's ``upgrade``/``downgrade`` to ``revision`` in one transaction, under the
    migration lock (PostgreSQL: an advisory lock), unless the store is at ``target``."""
    with engine.connect() as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        before = current_revision(conn)
        if before == target:
            return before, before
        from alembic import command

        getattr(command, direction)(_alembic_config(conn), revision)
        after = current_revision(conn)
    return before, after
