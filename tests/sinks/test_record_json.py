"""The record as JSON (JSON lines, spool lines): every field, and lines of an older version."""

from __future__ import annotations

import json
from pathlib import Path

from tests.factories import full_record
from vividly_trace import PromptExecution
from vividly_trace._spool import encode_lines
from vividly_trace.sinks import JSONLinesSink


def test_json_lines_carry_cached_audio_tokens(tmp_path: Path) -> None:
    """A JSON line holds cached_audio_token_count and loads back into the same record."""
    record = full_record(cached_audio_token_count=3)
    sink = JSONLinesSink(tmp_path / "records.jsonl")
    sink.write_batch([record])
    sink.close()
    (line,) = (tmp_path / "records.jsonl").read_text(encoding="utf-8").splitlines()
    data = json.loads(line)
    assert data["cached_audio_token_count"] == 3
    assert PromptExecution.from_dict(data) == record


def test_spool_lines_round_trip_and_older_lines_load() -> None:
    """A spool line (exact JSON) round-trips cached_audio_token_count; a line written before
    the field existed loads with None."""
    record = full_record(cached_audio_token_count=5)
    (line,) = encode_lines([record]).decode("utf-8").splitlines()
    assert PromptExecution.from_dict(json.loads(line)) == record
    older = json.loads(line)
    del older["cached_audio_token_count"]
    loaded = PromptExecution.from_dict(older)
    assert loaded.cached_audio_token_count is None
    assert loaded.audio_input_token_count == record.audio_input_token_count
    assert loaded.cost_usd == record.cost_usd
