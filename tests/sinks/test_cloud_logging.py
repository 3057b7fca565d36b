"""CloudLoggingSink: the real google-cloud-logging client (REST) against a fake endpoint."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("google.cloud.logging")

import google.auth
import google.cloud.logging
import requests
from google.api_core import exceptions as api_exceptions
from google.auth.credentials import AnonymousCredentials as _Anonymous
from google.auth.exceptions import DefaultCredentialsError

import vividly_trace
from tests.factories import full_record, make_record
from vividly_trace import ConfigurationError, MissingExtraError
from vividly_trace.sinks import CloudLoggingSink
from vividly_trace.testing.fake_logging import FakeLoggingServer

#: google.auth is untyped; a typed alias keeps mypy --strict quiet.
AnonymousCredentials: Callable[[], Any] = _Anonymous

PROJECT = "vividly-test"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SPAN_ID = "b7ad6b7169203331"


def log(*args: Any, **kwargs: Any) -> str:
    """log_prompt_execution, asserting that it returned an execution id."""
    execution_id = vividly_trace.log_prompt_execution(*args, **kwargs)
    assert execution_id is not None
    return execution_id


def api_sink(fake: FakeLoggingServer, **kwargs: Any) -> CloudLoggingSink:
    """A sink in API mode with anonymous credentials, pointed at ``fake``."""
    kwargs.setdefault("project", PROJECT)
    return CloudLoggingSink(
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": fake.url},
        **kwargs,
    )


class TestConstruction:
    """Arguments are checked when the sink is built, never at write time."""

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"mode": "grpc"},
            {"log_name": ""},
            {"log_name": "bad name"},
            {"timeout": 0},
            {"timeout": float("nan")},
            {"timeout": True},
            {"max_batch_size": 0},
            {"max_batch_size": 1001},
            {"labels": {"env": 1}},
            {"labels": {"bad key!": "x"}},
            {"name": ""},
            {"resource": {"labels": {}}},
            {"resource": {"type": "global", "labels": {"n": 1}}},
            {"project": "has space"},
        ],
    )
    def test_bad_arguments(self, fake_logging: FakeLoggingServer, kwargs: dict[str, Any]) -> None:
        """Each bad argument raises ConfigurationError (a ValueError)."""
        with pytest.raises(ConfigurationError):
            api_sink(fake_logging, **kwargs)

    def test_stdout_mode_refuses_api_arguments(self) -> None:
        """credentials=/client=/resource= make no sense on stdout."""
        with pytest.raises(ConfigurationError, match="credentials"):
            CloudLoggingSink(mode="stdout", credentials=AnonymousCredentials())

    def test_api_mode_refuses_a_stream(self, fake_logging: FakeLoggingServer) -> None:
        """stream= only applies to stdout mode."""
        with pytest.raises(ConfigurationError, match="stream"):
            api_sink(fake_logging, stream=sys.stdout)

    def test_client_and_credentials_are_exclusive(self, fake_logging: FakeLoggingServer) -> None:
        """A given client already carries its credentials."""
        with pytest.raises(ConfigurationError, match="either client"):
            CloudLoggingSink(
                project=PROJECT, client=fake_logging.client(), credentials=AnonymousCredentials()
            )

    def test_grpc_client_is_refused(self) -> None:
        """The sink bounds requests with a timeout, which needs the REST transport."""
        client = google.cloud.logging.Client(  # type: ignore[no-untyped-call]
            project=PROJECT, credentials=AnonymousCredentials(), _use_grpc=True
        )
        with pytest.raises(ConfigurationError, match="REST"):
            CloudLoggingSink(client=client)

    def test_missing_extra(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without google-cloud-logging, API mode names the extra to install."""
        monkeypatch.setitem(sys.modules, "google.cloud.logging", None)
        with pytest.raises(MissingExtraError, match=r"pip install 'vividly-trace\[gcp\]'") as info:
            CloudLoggingSink(project=PROJECT, credentials=AnonymousCredentials())
        assert isinstance(info.value, ImportError)
        assert "google-cloud-logging" in str(info.value)

    def test_credentials_resolved_once_in_the_constructor(
        self, fake_logging: FakeLoggingServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without credentials=, google.auth.default() runs at construction, never per write."""
        calls: list[int] = []

        def fake_default(*args: Any, **kwargs: Any) -> tuple[Any, str]:
            calls.append(1)
            return AnonymousCredentials(), "project-from-adc"

        monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
        monkeypatch.setattr(google.auth, "default", fake_default)
        sink = CloudLoggingSink(client_options={"api_endpoint": fake_logging.url})
        assert calls == [1]
        assert sink.project == "project-from-adc"
        sink.write_batch([make_record()])
        sink.write_batch([make_record()])
        assert calls == [1]
        entry = fake_logging.entries()[0]
        assert entry["logName"] == "projects/project-from-adc/logs/vividly_trace"
        assert entry["resource"] == {"type": "global", "labels": {"project_id": "project-from-adc"}}

    def test_no_credentials_is_a_configuration_error(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Missing Application Default Credentials fail at construction with a hint."""

        def no_default(*args: Any, **kwargs: Any) -> Any:
            raise DefaultCredentialsError("none here")  # type: ignore[no-untyped-call]

        monkeypatch.setattr(google.auth, "default", no_default)
        with pytest.raises(ConfigurationError, match="credentials="):
            CloudLoggingSink(project=PROJECT)

    def test_no_project_is_a_configuration_error(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A project must come from project=, $GOOGLE_CLOUD_PROJECT or the credentials."""
        monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
        monkeypatch.setattr(google.auth, "default", lambda *a, **k: (AnonymousCredentials(), None))
        with pytest.raises(ConfigurationError, match="project"):
            CloudLoggingSink()

    def test_project_from_environment(
        self, fake_logging: FakeLoggingServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """$GOOGLE_CLOUD_PROJECT is the project when project= is not given."""
        monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "env-project")
        sink = CloudLoggingSink(
            credentials=AnonymousCredentials(), client_options={"api_endpoint": fake_logging.url}
        )
        assert sink.project == "env-project"

    def test_lazy_name_and_spec(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """``vividly_trace.sinks.CloudLoggingSink`` and the ``cloud_logging:P`` spec resolve."""
        from vividly_trace.sinks import sink_from_spec

        monkeypatch.setattr(google.auth, "default", lambda *a, **k: (AnonymousCredentials(), None))
        sink = sink_from_spec("cloud_logging:spec-project")
        assert isinstance(sink, CloudLoggingSink)
        assert sink.project == "spec-project"
        assert sink.name == "cloud_logging"


class TestEntries:
    """What one write_batch sends: the entries:write body, field by field."""

    def test_success_entry(self, fake_logging: FakeLoggingServer) -> None:
        """A successful call: INFO, labels, insertId, timestamp and every record field."""
        record = full_record()
        api_sink(fake_logging).write_batch([record])
        (request,) = fake_logging.requests
        assert request.method == "POST"
        assert request.path == "/v2/entries:write"
        assert request.status == 200
        assert request.body["partialSuccess"] is True
        (entry,) = request.body["entries"]
        assert entry["logName"] == f"projects/{PROJECT}/logs/vividly_trace"
        assert entry["resource"] == {"type": "global", "labels": {"project_id": PROJECT}}
        assert entry["severity"] == "INFO"
        assert entry["timestamp"] == "2026-03-30T12:00:00.123456Z"
        assert entry["insertId"] == record.execution_id
        assert entry["labels"] == {
            "template_key": "nlu_extraction",
            "template_version": "v3",
            "ab_test_group": "B",
        }
        assert "trace" not in entry
        assert "spanId" not in entry
        assert "traceSampled" not in entry
        payload = entry["jsonPayload"]
        assert payload == {"message": "nlu_extraction ok 123.4 ms", **record.to_dict()}
        expected = {
            "execution_id": record.execution_id,
            "template_key": "nlu_extraction",
            "template_version": "v3",
            "ab_test_group": "B",
            "success": True,
            "response_time_ms": 123.4,
            "started_at": "2026-03-30T12:00:00.123456Z",
            "provider": "gemini",
            "model": "gemini-2.5-flash",
            "response_model": "gemini-2.5-flash-001",
            "input_token_count": 14,
            "output_token_count": 25,
            "total_token_count": 39,
            "cached_token_count": 4,
            "thinking_token_count": 12,
            "tool_use_token_count": 5,
            "audio_input_token_count": 2,
            "cached_audio_token_count": 1,
            "cost_usd": 0.0000661,
            "pricing_version": "2026-03-30",
            "error_type": None,
            "error_message": None,
            "http_status": None,
            "finish_reason": "STOP",
            "streamed": True,
            "stream_closed_early": False,
            "time_to_first_chunk_ms": 45.5,
            "parent_execution_id": "0195f3a0-0000-7000-8000-999999999999",
            "metadata": {"user_tier": "pro", "attempt": 2, "tags": ["a", "b"]},
            "requests": [],
            "prompt_text": None,
            "response_text": None,
            "user_id": None,
            "session_id": None,
            "request_id": None,
            "service_tier": None,
            "image_input_token_count": None,
            "video_input_token_count": None,
            "image_output_token_count": None,
            "audio_output_token_count": None,
            "grounded_prompt_count": None,
            "search_query_count": None,
        }
        for key, value in expected.items():
            assert payload[key] == value, key
        assert set(payload) == {"message", *expected}

    def test_failure_entry(self, fake_logging: FakeLoggingServer) -> None:
        """A failed call: ERROR, the error in the message, empty labels left out."""
        record = full_record(
            success=False,
            response_time_ms=88.0,
            template_version=None,
            ab_test_group="",
            error_type="ServerError",
            error_message="503 UNAVAILABLE",
            http_status=503,
            output_token_count=None,
        )
        api_sink(fake_logging).write_batch([record])
        (entry,) = fake_logging.entries()
        assert entry["severity"] == "ERROR"
        assert entry["labels"] == {"template_key": "nlu_extraction"}
        payload = entry["jsonPayload"]
        assert payload["message"] == "nlu_extraction error 88.0 ms: ServerError: 503 UNAVAILABLE"
        assert payload["success"] is False
        assert payload["error_type"] == "ServerError"
        assert payload["error_message"] == "503 UNAVAILABLE"
        assert payload["http_status"] == 503
        assert payload["output_token_count"] is None
        assert payload["template_version"] is None

    def test_trace_from_traceparent(self, fake_logging: FakeLoggingServer) -> None:
        """A W3C traceparent in the metadata gives trace, spanId and traceSampled."""
        record = full_record(metadata={"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01"})
        api_sink(fake_logging).write_batch([record])
        (entry,) = fake_logging.entries()
        assert entry["trace"] == f"projects/{PROJECT}/traces/{TRACE_ID}"
        assert entry["spanId"] == SPAN_ID
        assert entry["traceSampled"] is True

    def test_trace_from_ids(self, fake_logging: FakeLoggingServer) -> None:
        """trace_id / span_id / trace_sampled metadata keys work too (upper case accepted)."""
        records = [
            full_record(
                metadata={"trace_id": TRACE_ID.upper(), "span_id": SPAN_ID, "trace_sampled": False}
            ),
            full_record(metadata={"trace_id": TRACE_ID}),
            full_record(metadata={"trace_id": "0" * 32, "span_id": SPAN_ID}),
            full_record(metadata={"trace_id": "not-hex"}),
        ]
        api_sink(fake_logging).write_batch(records)
        first, second, zero, bad = fake_logging.entries()
        assert first["trace"] == f"projects/{PROJECT}/traces/{TRACE_ID}"
        assert first["spanId"] == SPAN_ID
        assert first["traceSampled"] is False
        assert second["trace"] == f"projects/{PROJECT}/traces/{TRACE_ID}"
        assert "spanId" not in second
        assert "traceSampled" not in second
        for entry in (zero, bad):
            assert "trace" not in entry
            assert "spanId" not in entry

    def test_resource_labels_and_log_name(self, fake_logging: FakeLoggingServer) -> None:
        """A given Resource, extra labels and a log name with '/' (URL-encoded)."""
        resource = google.cloud.logging.Resource(
            type="cloud_run_revision",
            labels={"project_id": PROJECT, "service_name": "api", "location": "europe-west1"},
        )
        sink = api_sink(
            fake_logging,
            log_name="apps/vividly",
            resource=resource,
            labels={"env": "prod", "template_key": "overridden"},
        )
        sink.write_batch([full_record()])
        (entry,) = fake_logging.entries()
        assert entry["logName"] == f"projects/{PROJECT}/logs/apps%2Fvividly"
        assert entry["resource"] == {
            "type": "cloud_run_revision",
            "labels": {"project_id": PROJECT, "service_name": "api", "location": "europe-west1"},
        }
        assert entry["labels"] == {
            "env": "prod",
            "template_key": "nlu_extraction",
            "template_version": "v3",
            "ab_test_group": "B",
        }

    def test_one_request_per_batch(self, fake_logging: FakeLoggingServer) -> None:
        """A batch of 25 records is one request with 25 entries, in order."""
        records = [full_record() for _ in range(25)]
        api_sink(fake_logging).write_batch(records)
        (request,) = fake_logging.requests
        assert [e["insertId"] for e in request.entries] == [r.execution_id for r in records]

    def test_oversized_metadata_is_cut(self, fake_logging: FakeLoggingServer) -> None:
        """An entry over the 256 KB limit has its long metadata string cut (with the marker)
        instead of failing the batch; the other entry is sent as it is."""
        big = full_record(metadata={"blob": "x" * 300_000, "user": "u1"})
        small = full_record()
        api_sink(fake_logging).write_batch([big, small])
        big_entry, small_entry = fake_logging.entries(accepted=True)
        blob = big_entry["jsonPayload"]["metadata"]["blob"]
        kept = len(blob) - len(blob.lstrip("x"))
        assert blob == "x" * kept + f"...[truncated {300_000 - kept} chars]"
        assert big_entry["jsonPayload"]["metadata"]["user"] == "u1"
        assert big_entry["jsonPayload"]["template_key"] == "nlu_extraction"
        assert small_entry["jsonPayload"]["metadata"] == small.to_dict()["metadata"]

    def test_given_client_is_used_and_left_open(self, fake_logging: FakeLoggingServer) -> None:
        """client= is used as is (its project too) and not closed by close()."""
        client = fake_logging.client("client-project")
        sink = CloudLoggingSink(client=client)
        sink.write_batch([full_record()])
        sink.close()
        assert fake_logging.entries()[0]["logName"] == "projects/client-project/logs/vividly_trace"
        client.logging_api.write_entries(
            [
                {
                    "logName": "projects/client-project/logs/x",
                    "resource": {"type": "global"},
                    "textPayload": "still open",
                }
            ]
        )
        assert fake_logging.entries()[-1]["textPayload"] == "still open"

    def test_error_status_raises(self, fake_logging: FakeLoggingServer) -> None:
        """A 503 raises ServiceUnavailable (the dispatcher retries); a 403 raises Forbidden."""
        sink = api_sink(fake_logging)
        fake_logging.fail_next(1, status=503)
        with pytest.raises(api_exceptions.ServiceUnavailable):
            sink.write_batch([full_record()])
        fake_logging.fail_next(1, status=403, message="no permission")
        with pytest.raises(api_exceptions.Forbidden, match="no permission"):
            sink.write_batch([full_record()])
        sink.write_batch([full_record()])
        assert [r.status for r in fake_logging.requests] == [503, 403, 200]

    def test_timeout_bounds_a_hanging_request(self, fake_logging: FakeLoggingServer) -> None:
        """A hanging endpoint fails the write after ``timeout``, not after the hang."""
        sink = api_sink(fake_logging, timeout=0.5)
        hang = fake_logging.hang_next(1, seconds=20)
        started = time.monotonic()
        with pytest.raises(requests.exceptions.Timeout):
            sink.write_batch([full_record()])
        assert time.monotonic() - started < 10
        assert hang.held == 1
        hang.release()

    def test_no_diagnostic_entry(self, fake_logging: FakeLoggingServer) -> None:
        """Only our entries are sent (the library's instrumentation entry is not added)."""
        sink = api_sink(fake_logging)
        for _ in range(3):
            sink.write_batch([full_record()])
        assert len(fake_logging.entries()) == 3
        assert all(
            "jsonPayload" in e and "message" in e["jsonPayload"] for e in fake_logging.entries()
        )


class TestWithDispatcher:
    """Through configure(): batching, retries and the spool, with the real client."""

    def test_batching(self, fake_logging: FakeLoggingServer) -> None:
        """N records queued together make ceil(N / max_batch_size) requests."""
        n, size = 25, 10
        sink = api_sink(fake_logging, max_batch_size=size)
        # Hold the first request until every record is queued, so that no partial batch
        # is taken while the test is still logging.
        hold = fake_logging.hang_next(1, seconds=30)
        vividly_trace.configure(sinks=[sink], flush_interval=3600, spool_dir=False)
        ids = [log("batching", True, 10.0 + i) for i in range(n)]
        assert hold.wait_held(10)
        hold.release()
        assert vividly_trace.flush(timeout=20)
        requests_ = fake_logging.write_requests()
        assert len(requests_) == math.ceil(n / size)
        assert [len(r.entries) for r in requests_] == [10, 10, 5]
        assert fake_logging.insert_ids() == ids
        assert vividly_trace.stats()["sinks"]["cloud_logging"]["written"] == n

    def test_retry_after_503_without_duplicates(self, fake_logging: FakeLoggingServer) -> None:
        """Two 503 answers: the dispatcher retries the batch; every insertId lands once."""
        sink = api_sink(fake_logging)
        fake_logging.fail_next(2, status=503)
        vividly_trace.configure(
            sinks=[sink], max_retries=3, retry_backoff=0.01, flush_interval=3600, spool_dir=False
        )
        ids = [log("retry", True, 5.0) for _ in range(5)]
        assert vividly_trace.flush(timeout=20)
        statuses = [r.status for r in fake_logging.write_requests()]
        assert statuses == [503, 503, 200]
        for request in fake_logging.write_requests():
            assert [e["insertId"] for e in request.entries] == ids
        accepted = fake_logging.insert_ids(accepted=True)
        assert sorted(accepted) == sorted(ids)
        assert len(set(fake_logging.insert_ids())) == len(ids)
        counters = vividly_trace.stats()["sinks"]["cloud_logging"]
        assert counters["failed_batches"] == 2
        assert counters["retries"] == 2
        assert counters["written"] == 5
        assert counters["dropped"] == {}

    def test_invalid_batch_is_rejected_not_retried(self, fake_logging: FakeLoggingServer) -> None:
        """A 400 is permanent: no retry, no spool, the records are counted as rejected."""
        sink = api_sink(fake_logging)
        fake_logging.fail_next(1, status=400, message="invalid argument")
        vividly_trace.configure(
            sinks=[sink], max_retries=3, retry_backoff=0.01, flush_interval=3600
        )
        for _ in range(4):
            log("poison", True, 5.0)
        assert vividly_trace.flush(timeout=20)
        counters = vividly_trace.stats()["sinks"]["cloud_logging"]
        assert counters["retries"] == 0
        assert counters["spooled"] == 0
        assert counters["dropped"] == {"rejected_by_cloud_logging": 4}
        assert len(fake_logging.requests) == 1
        ok = log("after", True, 5.0)
        assert vividly_trace.flush(timeout=20)
        assert fake_logging.insert_ids(accepted=True) == [ok]

    def test_spooled_batch_is_replayed(self, fake_logging: FakeLoggingServer) -> None:
        """A batch that outlives its retries is spooled and replayed with the same insertIds."""
        sink = api_sink(fake_logging)
        fake_logging.fail_next(2, status=503)
        vividly_trace.configure(
            sinks=[sink], max_retries=1, retry_backoff=0.01, flush_interval=3600
        )
        first = [log("spool", False, 5.0, error_message="boom") for _ in range(3)]
        assert vividly_trace.flush(timeout=20)
        counters = vividly_trace.stats()["sinks"]["cloud_logging"]
        assert counters["spooled"] == 3
        assert counters["written"] == 0
        assert fake_logging.insert_ids(accepted=True) == []
        later = log("spool", True, 5.0)
        assert vividly_trace.flush(timeout=20)
        accepted = fake_logging.insert_ids(accepted=True)
        assert sorted(accepted) == sorted([*first, later])
        counters = vividly_trace.stats()["sinks"]["cloud_logging"]
        assert counters["replayed"] == 3
        assert counters["spool_pending"] is False
        entries = {e["insertId"]: e for e in fake_logging.entries(accepted=True)}
        assert entries[first[0]]["severity"] == "ERROR"
        assert entries[first[0]]["jsonPayload"]["error_message"] == "boom"
