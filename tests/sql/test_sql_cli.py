"""``vividly-trace db upgrade`` and ``vividly-trace spool replay``, run as real commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.factories import make_record
from tests.sql.sql_helpers import closed_port, count_rows, statistics_mismatches
from vividly_trace._spool import Spool, destination_key
from vividly_trace.sinks.sql import SQLSink, migrate

SCRIPT = Path(sys.executable).with_name("vividly-trace")


def _cli(*args: str, module: bool = False) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "vividly_trace.cli", *args] if module else [str(SCRIPT), *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIVIDLY_TRACE_DATABASE")}
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, check=False)


def test_db_upgrade_twice(db_url: str) -> None:
    """The first run creates the store, the second one is a no-op; both exit 0."""
    first = _cli("db", "upgrade", db_url)
    assert first.returncode == 0, first.stderr
    assert f"upgraded from an empty database to {migrate.SCHEMA_REVISION}" in first.stdout
    second = _cli("db", "upgrade", db_url)
    assert second.returncode == 0, second.stderr
    assert f"already at revision {migrate.SCHEMA_REVISION}; nothing to do" in second.stdout
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
        version = conn.execute(sa.text("SELECT version_num FROM vividly_trace_alembic_version"))
        assert [r[0] for r in version] == [migrate.SCHEMA_REVISION]
    assert {"prompt_templates", "prompt_executions", "vividly_trace_alembic_version"} <= tables
    engine.dispose()
    third = _cli("db", "upgrade", "--url", db_url)
    assert third.returncode == 0 and "nothing to do" in third.stdout
    current = _cli("db", "current", db_url, module=True)
    assert (
        current.returncode == 0
        and f"revision {migrate.SCHEMA_REVISION} (up to date)" in current.stdout
    )


def test_db_upgrade_errors_are_one_line_with_exit_2() -> None:
    """A bad URL or an unreachable database: exit 2, one line, no password, no traceback."""
    secret = "CliS3cret!pw"
    for url in (
        "nonsense-url",
        f"mysql://u:{secret}@h/x",
        f"postgresql+psycopg://u:{secret}@127.0.0.1:{closed_port()}/db",
    ):
        result = _cli("db", "upgrade", url)
        assert result.returncode == 2, (url, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("vividly-trace: error:"), result.stderr
        assert secret not in result.stderr + result.stdout
    assert "Connection refused" in lines[0] and "***" in lines[0]


def test_spool_replay_by_hand(db_url: str, tmp_path: Path) -> None:
    """`spool replay` sends a SQL sink's spool to the database once; a rerun adds nothing."""
    spool_dir = tmp_path / "spool"
    records = [
        make_record(f"k{i % 3}", input_token_count=i, output_token_count=1) for i in range(30)
    ]
    spool = Spool(spool_dir, "sql", 1 << 30, key=destination_key(SQLSink(db_url)))
    assert spool.append(records[:20]) and spool.append(records[20:])
    other = Spool(spool_dir, "sql", 1 << 30, key="another-database")
    assert other.append([make_record("not-ours")])
    SQLSink(db_url).write_batch(records[:5])  # some already made it before the outage
    result = _cli("spool", "replay", "--url", db_url, "--spool-dir", str(spool_dir))
    assert result.returncode == 0, result.stderr
    assert f"replayed 30 records to {db_url}" in result.stdout
    engine = sa.create_engine(db_url)
    assert count_rows(engine) == 30
    assert not spool.pending()
    assert other.pending()  # another database's spool is never replayed here
    again = _cli("spool", "replay", "--url", db_url, "--spool-dir", str(spool_dir))
    assert again.returncode == 0 and "replayed 0 records" in again.stdout
    assert count_rows(engine) == 30
    assert statistics_mismatches(engine) == []
    engine.dispose()


def test_spool_replay_of_lines_with_and_without_cached_audio(db_url: str, tmp_path: Path) -> None:
    """A spooled record keeps its cached audio count through `spool replay`; a line spooled
    by a version without the field is replayed too, with NULL."""
    spool_dir = tmp_path / "spool"
    spool = Spool(spool_dir, "sql", 1 << 30, key=destination_key(SQLSink(db_url)))
    new = make_record(
        "spooled", input_token_count=10, output_token_count=1, cached_audio_token_count=7
    )
    assert spool.append([new])
    old = make_record("spooled", input_token_count=20, output_token_count=2).to_exact_dict()
    del old["cached_audio_token_count"]
    (spool.directory / "1.jsonl").write_text(json.dumps(old) + "\n", encoding="utf-8")
    result = _cli("spool", "replay", "--url", db_url, "--spool-dir", str(spool_dir))
    assert result.returncode == 0, result.stderr
    assert "replayed 2 records" in result.stdout
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        rows = dict(
            conn.execute(
                sa.text("SELECT id, cached_audio_token_count FROM prompt_executions")
            ).all()
        )
    assert rows == {new.execution_id: 7, old["execution_id"]: None}
    assert statistics_mismatches(engine) == []
    engine.dispose()


def test_spool_replay_keeps_the_spool_when_the_database_is_down(tmp_path: Path) -> None:
    """Unreachable database: exit 2 and the spool is left intact for later."""
    spool_dir = tmp_path / "spool"
    url = f"postgresql+psycopg://u:pw123456@127.0.0.1:{closed_port()}/db"
    spool = Spool(spool_dir, "sql", 1 << 30, key=destination_key(SQLSink(url)))
    spool.append([make_record() for _ in range(3)])
    result = _cli("spool", "replay", "--url", url, "--spool-dir", str(spool_dir))
    assert result.returncode == 2
    assert "pw123456" not in result.stderr
    assert spool.pending()


@pytest.mark.parametrize("args", [["db", "--help"], ["spool", "replay", "--help"]])
def test_help(args: list[str]) -> None:
    """The commands are registered on the console script."""
    result = _cli(*args)
    assert result.returncode == 0 and "Usage: vividly-trace" in result.stdout
