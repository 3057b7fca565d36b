"""The web middleware under real servers: FastAPI under uvicorn (ASGI) and a WSGI app under
wsgiref, driven by httpx. Each request's logged calls (a Gemini call through the real
google-genai client, a streamed body) carry its request id and the user and session the
application's ``identify`` callback names; the request id comes back in the response."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import fastapi
import httpx
import pytest
from fastapi.responses import StreamingResponse

import vividly_trace
from tests.web.servers import UvicornServer, WSGIThreadServer
from vividly_trace import logged_prompt
from vividly_trace.middleware import VividlyTraceMiddleware, VividlyTraceWSGIMiddleware
from vividly_trace.sinks import MemorySink
from vividly_trace.testing.fake_gemini import Scenario

FLASH = "gemini-2.5-flash"


def services(client: Any) -> tuple[Any, Any]:
    @logged_prompt("nlu_extraction")
    def extract(text: str) -> dict[str, Any]:
        response = client.models.generate_content(model=FLASH, contents=text)
        return dict(json.loads(response.text))

    @logged_prompt("story")
    def story(topic: str) -> Iterator[str]:
        for chunk in client.models.generate_content_stream(model=FLASH, contents=topic):
            yield chunk.text or ""

    return extract, story


def asgi_app(client: Any) -> Any:
    extract, story = services(client)
    app = fastapi.FastAPI()

    @app.get("/extract")
    def extract_endpoint(q: str) -> dict[str, Any]:
        return extract(q)

    @app.get("/story")
    def story_endpoint(q: str) -> StreamingResponse:
        return StreamingResponse(story(q), media_type="text/plain")

    def identify(scope: dict[str, Any]) -> dict[str, Any] | None:
        headers = dict(scope["headers"])
        user = headers.get(b"x-user")
        if user == b"boom":
            raise RuntimeError("the session store is down")
        if user is None:
            return None
        return {"user_id": user.decode(), "session_id": "sess-" + user.decode(), "plan": "pro"}

    app.add_middleware(VividlyTraceMiddleware, identify=identify)
    return app


def wsgi_app(client: Any) -> Any:
    extract, story = services(client)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        query = environ.get("QUERY_STRING", "").removeprefix("q=")
        if environ["PATH_INFO"] == "/extract":
            body = json.dumps(extract(query)).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (piece.encode() for piece in story(query))  # iterated by the server, later

    def identify(environ: dict[str, Any]) -> dict[str, Any] | None:
        user = environ.get("HTTP_X_USER")
        return {"user_id": user, "session_id": "sess-" + user} if user else None

    return VividlyTraceWSGIMiddleware(app, identify=identify)


@pytest.fixture(name="answers")
def _answers(gemini: Any) -> Any:
    gemini.set_default(
        Scenario(text='{"intent": "book"}', prompt_tokens=20, candidates_tokens=4, stream_chunks=3)
    )
    return gemini


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_requests_are_attributed(answers: Any, client: Any, kind: str) -> None:
    sink = MemorySink()
    vividly_trace.configure(sinks=[sink], spool_dir=False)
    server = (
        UvicornServer(asgi_app(client)) if kind == "asgi" else WSGIThreadServer(wsgi_app(client))
    )
    with server as base, httpx.Client(base_url=base, timeout=10) as http:
        first = http.get("/extract", params={"q": "a table"}, headers={"x-user": "alice"})
        second = http.get("/story", params={"q": "rain"}, headers={"x-request-id": "req-42"})
        third = http.get("/extract", params={"q": "x"}, headers={"x-request-id": "<script>"})
    assert first.json() == {"intent": "book"}
    assert second.text == '{"intent": "book"}'
    assert vividly_trace.flush(5)
    by_rid = {r.request_id: r for r in sink.records}
    assert len(by_rid) == 3
    alice = by_rid[first.headers["x-request-id"]]
    assert (alice.template_key, alice.user_id, alice.session_id) == (
        "nlu_extraction",
        "alice",
        "sess-alice",
    )
    assert alice.input_token_count == 20  # the Gemini call made inside was captured
    if kind == "asgi":
        assert alice.metadata == {"plan": "pro"}
    streamed = by_rid["req-42"]  # the client's own id, kept; the streamed body attributed
    assert (streamed.template_key, streamed.user_id, streamed.streamed) == ("story", None, True)
    assert second.headers["x-request-id"] == "req-42"
    # An id that is not a sane one is replaced by a fresh one (32 hex digits).
    fresh = third.headers["x-request-id"]
    assert fresh != "<script>" and len(fresh) == 32 and fresh in by_rid
    assert len(first.headers["x-request-id"]) == 32


def test_a_failing_identify_does_not_fail_the_request(
    answers: Any, client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="vividly_trace")
    sink = MemorySink()
    vividly_trace.configure(sinks=[sink], spool_dir=False)
    with UvicornServer(asgi_app(client)) as base:
        response = httpx.get(f"{base}/extract", params={"q": "x"}, headers={"x-user": "boom"})
    assert response.json() == {"intent": "book"}
    assert vividly_trace.flush(5)
    rec = sink.records[0]
    assert (rec.user_id, rec.request_id) == (None, response.headers["x-request-id"])
    assert any("identify(...) failed" in r.getMessage() for r in caplog.records)


def test_configuration_errors() -> None:
    with pytest.raises(ValueError, match="header name"):
        VividlyTraceMiddleware(lambda *a: None, request_id_header="bad header")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="identify must be callable"):
        VividlyTraceWSGIMiddleware(lambda *a: [], identify="user")  # type: ignore[arg-type]
