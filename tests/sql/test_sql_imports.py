"""SQLAlchemy stays out of ``import vividly_trace`` until a SQL sink is built."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
import vividly_trace
from vividly_trace.sinks import MemorySink
import vividly_trace.testing.postgres
assert "sqlalchemy" not in sys.modules, "import vividly_trace loaded sqlalchemy"
assert "psycopg" not in sys.modules
from vividly_trace.sinks import SQLSink
assert "sqlalchemy" in sys.modules
assert "alembic" not in sys.modules, "alembic is only needed to migrate"
SQLSink("sqlite:///" + sys.argv[1])
assert "psycopg" not in sys.modules
print("ok")
"""


def test_sqlalchemy_is_imported_lazily(tmp_path: object) -> None:
    """import vividly_trace (and the sinks package) loads neither SQLAlchemy nor psycopg."""
    result = subprocess.run(
        [sys.executable, "-c", CHECK, f"{tmp_path}/x.db"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
