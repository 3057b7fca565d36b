"""StructuredStdoutSink and CloudLoggingSink(mode="stdout"): lines parsed back field by field."""

from __future__ import annotations

import io
import json
import sys
from typing import Any

import pytest

import vividly_trace
from tests.factories import full_record
from vividly_trace import ConfigurationError
from vividly_trace.sinks import CloudLoggingSink, JSONLinesSink, StructuredStdoutSink
from vividly_trace.sinks.structured_stdout import TraceContext, format_message, trace_context

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
SPECIAL = {
    "severity",
    "message",
    "time",
    "logging.googleapis.com/insertId",
    "logging.googleapis.com/labels",
    "logging.googleapis.com/trace",
    "logging.googleapis.com/spanId",
    "logging.googleapis.com/trace_sampled",
}


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """Parse every line of ``stream`` as one JSON object."""
    text = stream.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


class TestThroughConfigure:
    """Records logged with configure(sync=True) and read back from a StringIO."""

    def test_success_line(self) -> None:
        """Every special key and every record field, for a successful call."""
        stream = io.StringIO()
        vividly_trace.configure(
            sinks=[StructuredStdoutSink(stream=stream, project="proj-1")], sync=True
        )
        execution_id = vividly_trace.log_prompt_execution(
            "nlu_extraction",
            True,
            123.44,
            input_token_count=10,
            output_token_count=20,
            cost_usd=0.00125,
            metadata={"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01", "user_tier": "pro"},
            template_version="v3",
            ab_test_group="B",
            model="gemini-2.5-flash",
        )
        assert execution_id is not None
        (line,) = lines(stream)
        assert line["severity"] == "INFO"
        assert line["message"] == "nlu_extraction ok 123.4 ms"
        assert line["logging.googleapis.com/insertId"] == execution_id
        assert line["logging.googleapis.com/labels"] == {
            "template_key": "nlu_extraction",
            "template_version": "v3",
            "ab_test_group": "B",
        }
        assert line["logging.googleapis.com/trace"] == f"projects/proj-1/traces/{TRACE_ID}"
        assert line["logging.googleapis.com/spanId"] == SPAN_ID
        assert line["logging.googleapis.com/trace_sampled"] is True
        assert line["time"] == line["started_at"]
        assert line["time"].endswith("Z")
        assert line["execution_id"] == execution_id
        assert line["template_key"] == "nlu_extraction"
        assert line["template_version"] == "v3"
        assert line["ab_test_group"] == "B"
        assert line["success"] is True
        assert line["response_time_ms"] == 123.44
        assert line["input_token_count"] == 10
        assert line["output_token_count"] == 20
        assert line["total_token_count"] == 30
        assert line["cost_usd"] == 0.00125
        assert line["model"] == "gemini-2.5-flash"
        assert line["metadata"] == {
            "traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01",
            "user_tier": "pro",
        }
        assert line["error_message"] is None

    def test_failure_line(self) -> None:
        """A failure is ERROR with the error in the message; empty labels are left out."""
        stream = io.StringIO()
        vividly_trace.configure(sinks=[StructuredStdoutSink(stream=stream)], sync=True)
        vividly_trace.log_prompt_execution(
            "clarification",
            False,
            88.0,
            error_message="429 RESOURCE_EXHAUSTED",
            error_type="ClientError",
            http_status=429,
        )
        (line,) = lines(stream)
        assert line["severity"] == "ERROR"
        assert line["message"] == "clarification error 88.0 ms: ClientError: 429 RESOURCE_EXHAUSTED"
        assert line["logging.googleapis.com/labels"] == {"template_key": "clarification"}
        assert line["success"] is False
        assert line["error_type"] == "ClientError"
        assert line["error_message"] == "429 RESOURCE_EXHAUSTED"
        assert line["http_status"] == 429

    def test_one_line_per_record(self) -> None:
        """N records give N lines, each a complete JSON object with its own insertId."""
        stream = io.StringIO()
        vividly_trace.configure(sinks=[StructuredStdoutSink(stream=stream)], sync=True)
        ids = [vividly_trace.log_prompt_execution("k", True, float(i)) for i in range(7)]
        parsed = lines(stream)
        assert [p["logging.googleapis.com/insertId"] for p in parsed] == ids
        assert [p["message"] for p in parsed] == [f"k ok {i:.1f} ms" for i in range(7)]


class TestFormat:
    """The line format itself, from records built directly."""

    def test_payload_is_the_record(self) -> None:
        """Without the special keys, a line is exactly what JSONLinesSink("-") prints."""
        record = full_record()
        stream = io.StringIO()
        StructuredStdoutSink(stream=stream).write_batch([record])
        (line,) = lines(stream)
        plain = {k: v for k, v in line.items() if k not in SPECIAL}
        assert plain == record.to_dict()
        assert set(line) - set(plain) == {
            "severity",
            "message",
            "time",
            "logging.googleapis.com/insertId",
            "logging.googleapis.com/labels",
        }

    def test_not_the_plain_jsonl_sink(self, capsys: pytest.CaptureFixture[str]) -> None:
        """JSONLinesSink("-") prints the bare record: no severity, no agent keys."""
        record = full_record()
        JSONLinesSink("-").write_batch([record])
        plain = json.loads(capsys.readouterr().out)
        assert "severity" not in plain
        assert plain == record.to_dict()

    def test_trace_needs_a_project(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without a project the trace keys are left out; $GOOGLE_CLOUD_PROJECT supplies one."""
        record = full_record(metadata={"trace_id": TRACE_ID, "span_id": SPAN_ID})
        monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
        stream = io.StringIO()
        StructuredStdoutSink(stream=stream).write_batch([record])
        (line,) = lines(stream)
        assert not any(k.startswith("logging.googleapis.com/trace") for k in line)
        assert "logging.googleapis.com/spanId" not in line
        monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "env-proj")
        stream = io.StringIO()
        StructuredStdoutSink(stream=stream).write_batch([record])
        (line,) = lines(stream)
        assert line["logging.googleapis.com/trace"] == f"projects/env-proj/traces/{TRACE_ID}"
        assert line["logging.googleapis.com/spanId"] == SPAN_ID
        assert "logging.googleapis.com/trace_sampled" not in line

    def test_extra_labels(self) -> None:
        """labels= are added to every line; the record's own labels win."""
        stream = io.StringIO()
        sink = StructuredStdoutSink(stream=stream, labels={"env": "prod", "ab_test_group": "Z"})
        sink.write_batch([full_record()])
        (line,) = lines(stream)
        assert line["logging.googleapis.com/labels"] == {
            "env": "prod",
            "template_key": "nlu_extraction",
            "template_version": "v3",
            "ab_test_group": "B",
        }

    def test_default_stream_is_stdout_at_write_time(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """stream=None writes to whatever sys.stdout is when the batch is written."""
        record = full_record()
        StructuredStdoutSink().write_batch([record])
        out = capsys.readouterr().out
        assert json.loads(out)["logging.googleapis.com/insertId"] == record.execution_id

    def test_failing_stream_raises(self) -> None:
        """A stream that fails makes write_batch raise (so the dispatcher retries)."""

        class Broken(io.StringIO):
            def write(self, s: str) -> int:
                raise OSError("pipe closed")

        with pytest.raises(OSError, match="pipe closed"):
            StructuredStdoutSink(stream=Broken()).write_batch([full_record()])

    def test_bad_arguments(self) -> None:
        """Bad name, stream, labels or project raise ConfigurationError."""
        with pytest.raises(ConfigurationError):
            StructuredStdoutSink(name="")
        with pytest.raises(ConfigurationError):
            StructuredStdoutSink(stream=object())  # type: ignore[arg-type,unused-ignore]
        with pytest.raises(ConfigurationError):
            StructuredStdoutSink(labels={"k": 1})  # type: ignore[dict-item,unused-ignore]
        with pytest.raises(ConfigurationError):
            StructuredStdoutSink(project="a/b")

    def test_spec_stdout(self) -> None:
        """The ``stdout`` spec of VIVIDLY_TRACE_SINKS builds this sink."""
        from vividly_trace.sinks import sink_from_spec

        assert isinstance(sink_from_spec("stdout"), StructuredStdoutSink)


class TestCloudLoggingStdoutMode:
    """CloudLoggingSink(mode="stdout") writes the same lines, with no Google package."""

    def test_same_lines_without_google_cloud_logging(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Works with google.cloud.logging unimportable; lines equal StructuredStdoutSink's."""
        monkeypatch.setitem(sys.modules, "google.cloud.logging", None)
        monkeypatch.setitem(sys.modules, "google.cloud.logging_v2", None)
        records = [
            full_record(metadata={"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-00"}),
            full_record(success=False, error_type="X", error_message="y"),
        ]
        ours, reference = io.StringIO(), io.StringIO()
        sink = CloudLoggingSink(mode="stdout", stream=ours, project="p2", labels={"env": "t"})
        sink.write_batch(records)
        sink.close()
        StructuredStdoutSink(stream=reference, project="p2", labels={"env": "t"}).write_batch(
            records
        )
        assert ours.getvalue() == reference.getvalue()
        first, second = lines(ours)
        assert first["logging.googleapis.com/trace"] == f"projects/p2/traces/{TRACE_ID}"
        assert first["logging.googleapis.com/trace_sampled"] is False
        assert first["logging.googleapis.com/labels"]["env"] == "t"
        assert second["severity"] == "ERROR"
        assert second["message"] == "nlu_extraction error 123.4 ms: X: y"
        assert sink.name == "cloud_logging"

    def test_through_configure(self) -> None:
        """With configure(sync=True) the line is written before log_prompt_execution returns."""
        stream = io.StringIO()
        vividly_trace.configure(sinks=[CloudLoggingSink(mode="stdout", stream=stream)], sync=True)
        execution_id = vividly_trace.log_prompt_execution("k", True, 1.0)
        (line,) = lines(stream)
        assert line["logging.googleapis.com/insertId"] == execution_id
        assert vividly_trace.stats()["sinks"]["cloud_logging"]["written"] == 1


class TestTraceContextRule:
    """trace_context(): which metadata gives which trace context."""

    @pytest.mark.parametrize(
        ("metadata", "expected"),
        [
            ({"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01"}, TraceContext(TRACE_ID, SPAN_ID, True)),
            (
                {"traceparent": f"00-{TRACE_ID.upper()}-{SPAN_ID}-00"},
                TraceContext(TRACE_ID, SPAN_ID, False),
            ),
            ({"traceparent": f"ff-{TRACE_ID}-{SPAN_ID}-01"}, None),
            ({"traceparent": f"00-{'0' * 32}-{SPAN_ID}-01"}, None),
            ({"traceparent": f"00-{TRACE_ID}-{'0' * 16}-01"}, None),
            ({"traceparent": "garbage"}, None),
            ({"traceparent": "garbage", "trace_id": TRACE_ID}, TraceContext(TRACE_ID, None, None)),
            (
                {"trace_id": TRACE_ID, "span_id": SPAN_ID, "trace_sampled": True},
                TraceContext(TRACE_ID, SPAN_ID, True),
            ),
            ({"trace_id": TRACE_ID, "span_id": "xyz"}, TraceContext(TRACE_ID, None, None)),
            ({"trace_id": TRACE_ID, "trace_sampled": "yes"}, TraceContext(TRACE_ID, None, None)),
            ({"trace_id": 123}, None),
            ({"span_id": SPAN_ID}, None),
            ({}, None),
        ],
    )
    def test_rule(
        self,
        metadata: dict[str, Any],
        expected: TraceContext | None,
    ) -> None:
        """traceparent first, then trace_id/span_id/trace_sampled; bad values are ignored."""
        assert trace_context(full_record(metadata=metadata)) == expected

    def test_message_without_error_details(self) -> None:
        """A failure without type or message still gets a readable summary."""
        record = full_record(success=False, error_type=None, error_message=None, response_time_ms=5)
        assert format_message(record) == "nlu_extraction error 5.0 ms"
