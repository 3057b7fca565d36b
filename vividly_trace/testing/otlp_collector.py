"""A local OTLP/HTTP trace collector stub, for tests of OpenTelemetry exports.

It listens on 127.0.0.1 (standard library HTTP server in a daemon thread, Nagle off),
accepts ``POST /v1/traces`` with an ``ExportTraceServiceRequest`` in protobuf
(``application/x-protobuf``, what ``OTLPSpanExporter`` sends), gzip or deflate compressed
or not, and decodes it with ``opentelemetry-proto`` so tests can assert on plain values
(OTLP/JSON is not supported: it is answered 400)::

    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from vividly_trace.testing.otlp_collector import OTLPCollector

    with OTLPCollector() as collector:
        exporter = OTLPSpanExporter(endpoint=collector.url + "/v1/traces")
        ...
        span = collector.spans()[0]
        assert span.attributes["gen_ai.request.model"] == "gemini-2.5-flash"

Answers are programmable as in :mod:`vividly_trace.testing.fake_logging`
(``fail_next``, ``hang_next``, ``hang_for``, ``enqueue``). A success is answered 200
with an empty ``ExportTraceServiceResponse``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import MissingExtraError
from .fake_logging import LocalHTTPServer, ReceivedRequest

__all__ = ["CollectedSpan", "OTLPCollector"]


def _proto() -> tuple[Any, Any]:
    try:
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    except ImportError:
        raise MissingExtraError("OTLPCollector", "otel", "opentelemetry-proto") from None
    return (
        trace_service_pb2.ExportTraceServiceRequest,
        trace_service_pb2.ExportTraceServiceResponse,
    )


def _any_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def _attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: _any_value(kv.value) for kv in pairs}


@dataclass
class CollectedSpan:
    """One span received by :class:`OTLPCollector`, with plain Python values.

    Ids are lower-case hex (``parent_span_id`` is ``None`` for a root span); ``kind`` and
    ``status_code`` are the protobuf enum names (``"SPAN_KIND_CLIENT"``,
    ``"STATUS_CODE_ERROR"``); ``links`` are ``(trace_id, span_id, attributes)`` tuples.

    .. versionadded:: 0.1.0
    """

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    kind: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    attributes: dict[str, Any]
    status_code: str
    status_message: str
    links: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    resource: dict[str, Any] = field(default_factory=dict)
    scope_name: str = ""
    scope_version: str = ""


class OTLPCollector(LocalHTTPServer):
    """An OTLP/HTTP collector stub for traces (``POST /v1/traces``) on a local port.

    Every request is in :attr:`requests` (:class:`ReceivedRequest`, whose ``body`` is the
    decoded ``ExportTraceServiceRequest`` message); :meth:`spans` flattens the spans of
    the requests that were answered 2xx.

    Raises:
        MissingExtraError: ``opentelemetry-proto`` is not installed.

    .. versionadded:: 0.1.0
    """

    _thread_name = "otlp-collector"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Prepare a collector for ``host``:``port`` (port 0: pick a free port on start)."""
        self._request_cls, self._response_cls = _proto()
        super().__init__(host, port)

    def _parse(self, headers: dict[str, str], raw: bytes) -> Any:
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/x-protobuf":
            raise ValueError(f"unsupported content type {ctype!r} (only application/x-protobuf)")
        message = self._request_cls()
        message.ParseFromString(raw)
        return message

    def _error(self, status: int, message: str | None) -> tuple[str, bytes]:
        text = message or f"collector error {status}"
        try:  # OTLP/HTTP answers errors with a protobuf google.rpc.Status
            from google.rpc import status_pb2
        except ImportError:
            return "application/json", json.dumps({"code": status, "message": text}).encode()
        return "application/x-protobuf", status_pb2.Status(
            code=status, message=text
        ).SerializeToString()

    def _route(
        self, method: str, path: str, request: ReceivedRequest
    ) -> Callable[[], tuple[str, bytes]] | None:
        if method != "POST" or path != "/v1/traces":
            return None
        return lambda: ("application/x-protobuf", self._response_cls().SerializeToString())

    def spans(self, *, accepted: bool = True) -> list[CollectedSpan]:
        """Every span received, in order (``accepted=False``: also of refused requests)."""
        out: list[CollectedSpan] = []
        for request in self.requests:
            if request.path != "/v1/traces" or request.body is None:
                continue
            if accepted and not (request.status is not None and request.status < 300):
                continue
            for resource_spans in request.body.resource_spans:
                resource = _attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        out.append(
                            CollectedSpan(
                                name=span.name,
                                trace_id=span.trace_id.hex(),
                                span_id=span.span_id.hex(),
                                parent_span_id=span.parent_span_id.hex() or None,
                                kind=type(span).SpanKind.Name(span.kind),
                                start_time_unix_nano=span.start_time_unix_nano,
                                end_time_unix_nano=span.end_time_unix_nano,
                                attributes=_attributes(span.attributes),
                                status_code=type(span.status).StatusCode.Name(span.status.code),
                                status_message=span.status.message,
                                links=[
                                    (
                                        link.trace_id.hex(),
                                        link.span_id.hex(),
                                        _attributes(link.attributes),
                                    )
                                    for link in span.links
                                ],
                                resource=resource,
                                scope_name=scope_spans.scope.name,
                                scope_version=scope_spans.scope.version,
                            )
                        )
        return out

    def wait_for_spans(self, n: int, timeout: float) -> bool:
        """Wait until at least ``n`` spans were accepted; False after ``timeout`` seconds."""
        return self.wait_for(lambda: len(self.spans()) >= n, timeout)
