"""Text that is not valid UTF-8 (unpaired surrogates) never costs a batch."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

import vividly_trace
from vividly_trace.sinks.sql import SQLSink


def test_half_an_emoji_does_not_lose_the_batch(tmp_path: Path) -> None:
    """One value with an unpaired surrogate among 100 good records: all 102 rows written."""
    url = f"sqlite:///{tmp_path / 't.db'}"
    vividly_trace.configure(sinks=[SQLSink(url)], spool_dir=False)
    for _ in range(100):
        vividly_trace.log_prompt_execution("k", True, 1.0, metadata={"t": "ok"})
    assert vividly_trace.log_prompt_execution(
        "k\ud83d", True, 1.0, metadata={"t": "half \ud83d", "\udc00k": 1}, error_message="e\ud83d"
    )
    with vividly_trace.logged_prompt("k") as call:
        call.metadata["x"] = "\ud83d"
        call.set_model("m\ud83d")
    assert vividly_trace.flush(20)
    stats = vividly_trace.stats()["sinks"]["sql"]
    assert (stats["written"], stats["dropped"]) == (102, {})
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        names = {r[0] for r in conn.execute(sa.text("select template_name from prompt_executions"))}
    engine.dispose()
    assert names == {"k", "k\\ud83d"}
