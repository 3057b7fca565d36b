"""The test servers themselves: the fake Logging endpoint and the OTLP collector stub."""

from __future__ import annotations

import http.client
import json
import threading
import time
from typing import Any

import pytest

from tests.factories import full_record
from vividly_trace.testing.fake_logging import FakeLoggingServer


def post(
    url: str, path: str, body: bytes, ctype: str = "application/json", timeout: float = 10
) -> tuple[int, bytes]:
    """One POST with http.client; returns (status, body)."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": ctype})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class TestFakeLoggingServer:
    """Routing, programmable answers, holds and stop()."""

    def test_unknown_path_and_bad_body(self, fake_logging: FakeLoggingServer) -> None:
        """Other paths get 404; a body without an entries list gets 400; both are recorded."""
        status, body = post(fake_logging.url, "/v2/other", b"{}")
        assert status == 404
        assert json.loads(body)["error"]["status"] == "NOT_FOUND"
        status, body = post(fake_logging.url, "/v2/entries:write", b'{"nope": 1}')
        assert status == 400
        assert json.loads(body)["error"]["code"] == 400
        assert [r.status for r in fake_logging.requests] == [404, 400]
        assert fake_logging.entries() == []

    def test_queued_answers_in_order(self, fake_logging: FakeLoggingServer) -> None:
        """fail_next answers the next requests with the error, then 200 again."""
        fake_logging.fail_next(2, status=429, message="slow down")
        body = json.dumps({"entries": [{"insertId": "a"}]}).encode()
        results = [post(fake_logging.url, "/v2/entries:write", body) for _ in range(3)]
        assert [s for s, _ in results] == [429, 429, 200]
        assert json.loads(results[0][1])["error"] == {
            "code": 429,
            "message": "slow down",
            "status": "RESOURCE_EXHAUSTED",
        }
        assert fake_logging.insert_ids() == ["a", "a", "a"]
        assert fake_logging.insert_ids(accepted=True) == ["a"]

    def test_stop_drops_held_requests_unanswered(self) -> None:
        """stop() ends a hold without answering: the client sees the connection close."""
        fake = FakeLoggingServer().start()
        hang = fake.hang_next(1, seconds=60)
        outcome: list[Any] = []

        def call() -> None:
            try:
                outcome.append(post(fake.url, "/v2/entries:write", b'{"entries": []}'))
            except (OSError, http.client.HTTPException) as exc:
                outcome.append(exc)

        thread = threading.Thread(target=call)
        thread.start()
        assert hang.wait_held(10)
        started = time.monotonic()
        fake.stop()
        thread.join(10)
        assert not thread.is_alive()
        assert time.monotonic() - started < 10
        assert len(outcome) == 1
        assert isinstance(outcome[0], (OSError, http.client.HTTPException))
        (request,) = fake.requests
        assert request.status is None

    def test_reset(self, fake_logging: FakeLoggingServer) -> None:
        """reset() forgets requests and queued answers."""
        fake_logging.fail_next(5)
        post(fake_logging.url, "/v2/entries:write", b'{"entries": []}')
        fake_logging.reset()
        assert fake_logging.requests == []
        status, _ = post(fake_logging.url, "/v2/entries:write", b'{"entries": []}')
        assert status == 200


class TestOTLPCollector:
    """Decoding OTLP/HTTP protobuf, compressed or not; refusing what it cannot read."""

    def test_gzip_export_is_decoded(self, collector: Any) -> None:
        """A gzip-compressed export from the real exporter decodes to the same spans."""
        from opentelemetry.exporter.otlp.proto.http import Compression
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        from vividly_trace.sinks import OpenTelemetrySink

        exporter = OTLPSpanExporter(
            endpoint=collector.url + "/v1/traces", compression=Compression.Gzip
        )
        record = full_record()
        OpenTelemetrySink(exporter=exporter).write_batch([record])
        (request,) = collector.requests
        assert request.headers["content-encoding"] == "gzip"
        (span,) = collector.spans()
        assert span.attributes["vividly_trace.execution_id"] == record.execution_id

    def test_json_and_other_paths_are_refused(self, collector: Any) -> None:
        """OTLP/JSON gets 400, another path 404, and neither counts as spans."""
        status, _ = post(collector.url, "/v1/traces", b"{}", ctype="application/json")
        assert status == 400
        status, _ = post(collector.url, "/v1/logs", b"", ctype="application/x-protobuf")
        assert status == 404
        assert collector.spans(accepted=False) == []

    def test_wait_for_spans_times_out(self, collector: Any) -> None:
        """wait_for_spans returns False when nothing arrives."""
        assert collector.wait_for_spans(1, timeout=0.2) is False


@pytest.mark.parametrize("status", [500, 503])
def test_error_status_names(fake_logging: FakeLoggingServer, status: int) -> None:
    """Server errors carry the canonical Google status names."""
    fake_logging.fail_next(1, status=status)
    code, body = post(fake_logging.url, "/v2/entries:write", b'{"entries": []}')
    assert code == status
    assert json.loads(body)["error"]["status"] == {500: "INTERNAL", 503: "UNAVAILABLE"}[status]
