"""The SQL store: prompt executions (and their Gemini requests) in SQLite or PostgreSQL,
statistics kept by triggers.

::

    from vividly_trace import configure
    from vividly_trace.sinks.sql import SQLSink, register_template

    sink = SQLSink("postgresql+psycopg://app:secret@db/app", strict_templates=True)
    register_template("nlu_extraction", version="v3", ab_group="B", model="gemini-2.5-flash")
    configure(sinks=[sink])

Modules: :mod:`.schema` (the tables, SQLAlchemy Core), :mod:`.triggers` (statistics),
:mod:`.migrate` (Alembic, run programmatically; revisions in ``migrations/``).
Importing this package loads SQLAlchemy; ``import vividly_trace`` does not.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from ._engine import DEFAULT_URL
from ._sink import SQLSink, SQLSinkError, register_template
from .migrate import SCHEMA_REVISION, upgrade
from .schema import metadata, prompt_executions, prompt_requests, prompt_templates

__all__ = [
    "DEFAULT_URL",
    "SCHEMA_REVISION",
    "SQLSink",
    "SQLSinkError",
    "metadata",
    "prompt_executions",
    "prompt_requests",
    "prompt_templates",
    "register_template",
    "upgrade",
]
