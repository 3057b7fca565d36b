"""JSONLinesSink: one JSON object per record, fsync'd once per batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

import vividly_trace
from tests.factories import make_record
from vividly_trace import ConfigurationError, PromptExecution, log_prompt_execution, logged_prompt
from vividly_trace.sinks import JSONLinesSink


def read_back(path: Path) -> list[PromptExecution]:
    return [
        PromptExecution.from_dict(json.loads(line)) for line in path.read_text("utf-8").splitlines()
    ]


class TestJSONLinesSink:
    def test_lines_parse_back_into_equal_records(self, tmp_path: Path) -> None:
        """Each line is one record that from_dict() turns back into the same record."""
        out = tmp_path / "r.jsonl"
        records = [
            make_record(n=0),
            make_record(
                n=1,
                success=False,
                template_version="v2",
                ab_test_group="B",
                model="gemini-2.5-flash",
                input_token_count=10,
                output_token_count=20,
                total_token_count=30,
                cached_token_count=4,
                thinking_token_count=5,
                cost_usd=Decimal("0.000053"),
                pricing_version="p1",
                error_type="ServerError",
                error_message="boom ✓",
                http_status=500,
                streamed=True,
                time_to_first_chunk_ms=3.25,
                parent_execution_id="00000000-0000-7000-8000-000000000000",
                metadata={"nested": {"a": [1, 2.5, None, "é"]}},
            ),
        ]
        sink = JSONLinesSink(out)
        sink.write_batch(records)
        back = read_back(out)
        assert back == records
        assert out.read_text("utf-8").count("\n") == 2

    def test_appends_to_an_existing_file(self, tmp_path: Path) -> None:
        """Existing lines are kept; new batches are appended after them."""
        out = tmp_path / "r.jsonl"
        out.write_text(
            '{"execution_id":"old","template_key":"t","success":true,'
            '"response_time_ms":1,"started_at":"2025-01-01T00:00:00Z"}\n'
        )
        sink = JSONLinesSink(out)
        sink.write_batch([make_record(n=1)])
        sink.write_batch([make_record(n=2)])
        assert [r.execution_id for r in read_back(out)] == [
            "old",
            make_record(n=1).execution_id,
            make_record(n=2).execution_id,
        ]

    def test_one_fsync_per_batch(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Three batches of 100 records cost three fsyncs, not 300."""
        calls: list[int] = []
        real_fsync = os.fsync

        def counting_fsync(fd: int) -> None:
            calls.append(fd)
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", counting_fsync)
        sink = JSONLinesSink(tmp_path / "r.jsonl")
        for b in range(3):
            sink.write_batch([make_record(n=b * 100 + i) for i in range(100)])
        assert len(calls) == 3
        assert len(read_back(tmp_path / "r.jsonl")) == 300

    def test_fsync_false_skips_fsync(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """fsync=False writes without fsync."""
        calls: list[int] = []
        monkeypatch.setattr(os, "fsync", calls.append)
        JSONLinesSink(tmp_path / "r.jsonl", fsync=False).write_batch([make_record(n=1)])
        assert calls == []

    def test_through_the_pipeline_one_fsync_per_written_batch(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Via configure(), fsyncs follow batches (about 1000/100), not records."""
        calls: list[int] = []
        real_fsync = os.fsync

        def counting_fsync(fd: int) -> None:
            calls.append(fd)
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", counting_fsync)
        out = tmp_path / "r.jsonl"
        vividly_trace.configure(sinks=[JSONLinesSink(out)], batch_size=100, flush_interval=60)
        for i in range(1000):
            log_prompt_execution("t", True, float(i))
        assert vividly_trace.flush(10)
        assert len(read_back(out)) == 1000
        assert vividly_trace.stats()["sinks"]["jsonl"]["written"] == 1000
        assert 10 <= len(calls) <= 20

    def test_missing_directory_is_a_configuration_error(self, tmp_path: Path) -> None:
        """A path in a directory that does not exist is refused when the sink is built."""
        with pytest.raises(ConfigurationError):
            JSONLinesSink(tmp_path / "no" / "such" / "dir" / "r.jsonl")

    def test_empty_path_is_a_configuration_error(self) -> None:
        """An empty path is refused."""
        with pytest.raises(ConfigurationError):
            JSONLinesSink("")

    def test_dash_writes_to_stdout(self, capsys: pytest.CaptureFixture[str]) -> None:
        """path='-' writes the lines to standard output."""
        JSONLinesSink("-").write_batch([make_record(n=1), make_record(n=2)])
        lines = capsys.readouterr().out.splitlines()
        assert [json.loads(line)["execution_id"] for line in lines] == [
            make_record(n=1).execution_id,
            make_record(n=2).execution_id,
        ]

    def test_unwritable_file_raises_so_the_dispatcher_can_retry(self, tmp_path: Path) -> None:
        """A write failure raises OSError (the dispatcher retries and spools)."""
        target = tmp_path / "adir.jsonl"
        target.mkdir()  # a directory where the file should be
        with pytest.raises(OSError):
            JSONLinesSink(target).write_batch([make_record(n=1)])

    def test_every_line_is_strict_json(self, tmp_path: Path) -> None:
        """Metadata with NaN, bytes and objects still gives strict JSON lines."""
        out = tmp_path / "r.jsonl"
        vividly_trace.configure(sinks=[JSONLinesSink(out)], sync=True)
        with logged_prompt("t") as call:
            call.metadata.update({"nan": float("nan"), "b": b"\x00\x01", "o": object()})
        [line] = out.read_text("utf-8").splitlines()
        json.loads(line, parse_constant=lambda c: pytest.fail(f"non-strict constant {c}"))

    def test_two_processes_appending_never_interleave_lines(self, tmp_path: Path) -> None:
        """Two processes appending large batches to one file leave only whole lines."""
        out = tmp_path / "shared.jsonl"
        code = textwrap.dedent(
            f"""
            import datetime, sys
            from vividly_trace import PromptExecution
            from vividly_trace.sinks import JSONLinesSink
            sink = JSONLinesSink({str(out)!r}, fsync=False)
            tag = sys.argv[1]
            now = datetime.datetime.now(datetime.timezone.utc)
            for b in range(30):
                sink.write_batch([
                    PromptExecution(f"{{tag}}-{{b}}-{{i}}", "t", True, 1.0, now,
                                    metadata={{"pad": tag * 500}})
                    for i in range(100)
                ])
            """
        )
        procs = [subprocess.Popen([sys.executable, "-c", code, tag]) for tag in ("a", "b")]
        for p in procs:
            assert p.wait(60) == 0
        ids = [r.execution_id for r in read_back(out)]
        assert len(ids) == 6000
        assert len(set(ids)) == 6000
