"""A FastAPI app under real uvicorn, streaming Gemini text into a ``StreamingResponse``, its
client (httpx) walking away mid-stream: the call is recorded once, closed early, a success,
with its latency up to the last chunk the app produced, promptly, and also when the app shuts
down right after.

The services are written the way the README's Quickstart writes them: a decorated generator
that calls google-genai's ``generate_content_stream`` and yields text; no ``record_response``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import fastapi
import httpx
import pytest
from fastapi.responses import StreamingResponse

import vividly_trace
from tests.factories import usd
from tests.web.servers import UvicornServer as Server
from vividly_trace import logged_prompt
from vividly_trace.sinks import MemorySink
from vividly_trace.testing.fake_gemini import Scenario

FLASH = "gemini-2.5-flash"
CHUNKS = 200  # the whole stream would take 10 s: far beyond the slack below
PACE_S = 0.05  # the service's own pace between chunks (rendering, post-processing)
TAKEN = 3  # chunks the client reads before it disconnects
# How long the app may go on producing before the server notices the client left (the chunk
# in flight, what the socket buffers took; more on a loaded machine): far less than the
# stream has left, and nothing like the time until a garbage collection.
SLACK_S = 3.0


def make_app(client: Any) -> Any:
    """The application under test: one sync and one async streaming endpoint."""

    @logged_prompt("script_stream_sync")
    def write_script(topic: str) -> Iterator[str]:
        for chunk in client.models.generate_content_stream(model=FLASH, contents=topic):
            time.sleep(PACE_S)
            yield chunk.text or ""

    @logged_prompt("script_stream_async")
    async def awrite_script(topic: str) -> AsyncIterator[str]:
        stream = await client.aio.models.generate_content_stream(model=FLASH, contents=topic)
        async for chunk in stream:
            await asyncio.sleep(PACE_S)
            yield chunk.text or ""

    app = fastapi.FastAPI()

    @app.get("/sync")
    def sync_endpoint(topic: str) -> StreamingResponse:
        return StreamingResponse(write_script(topic), media_type="text/plain")

    @app.get("/async")
    async def async_endpoint(topic: str) -> StreamingResponse:
        return StreamingResponse(awrite_script(topic), media_type="text/plain")

    return app


def read_then_leave(url: str) -> tuple[list[str], float]:
    """Read TAKEN chunks of the stream, then close the connection; (chunks, seconds until
    the client left, from the request's start)."""
    got: list[str] = []
    start = time.monotonic()
    with httpx.Client(timeout=10) as http, http.stream("GET", url) as response:
        assert response.status_code == 200
        for piece in response.iter_raw():
            got.append(piece.decode())
            if len(got) == TAKEN:
                break
    return got, time.monotonic() - start


def flush_until(sink: MemorySink, n: int, timeout: float) -> list[Any]:
    """``flush()`` until the sink holds ``n`` records: the app drops a stream one chunk after
    its client left (the chunk it was producing then), and a flush records it after that."""
    deadline = time.monotonic() + timeout
    while True:
        assert vividly_trace.flush(5)
        if len(sink.records) >= n or time.monotonic() > deadline:
            return sink.records
        time.sleep(0.1)


@pytest.fixture(name="streaming_gemini")
def _streaming_gemini(gemini: Any) -> Any:
    gemini.set_default(
        Scenario(
            text="".join(f"line {i}. " for i in range(CHUNKS)),
            prompt_tokens=12,
            candidates_tokens=CHUNKS * 2,
            stream_chunks=CHUNKS,
            usage_on_every_chunk=True,  # the usage so far arrives with every chunk
        )
    )
    return gemini


@pytest.mark.parametrize("path", ["/sync", "/async"])
def test_a_stream_the_client_abandons(streaming_gemini: Any, client: Any, path: str) -> None:
    """Closed early, not failed; latency up to the last chunk the app produced (well under
    the whole stream's); recorded promptly (a flush, no garbage collection waited for)."""
    sink = MemorySink()
    vividly_trace.configure(sinks=[sink], spool_dir=False)
    with Server(make_app(client)) as base:
        got, left_after_s = read_then_leave(f"{base}{path}?topic=rain")
        assert len(got) == TAKEN
        records = flush_until(sink, 1, timeout=5)
    assert [r.template_key for r in records] == [f"script_stream_{path[1:]}"]
    (rec,) = records
    assert (rec.success, rec.stream_closed_early, rec.streamed) == (True, True, True)
    assert rec.error_type is None
    whole_stream_ms = CHUNKS * PACE_S * 1000
    # Up to the last chunk the app produced: the server may run a few chunks ahead of the
    # client, never the rest of the stream (and never the time until garbage collection).
    assert rec.response_time_ms >= TAKEN * PACE_S * 1000 * 0.9
    assert rec.response_time_ms <= (left_after_s + SLACK_S) * 1000 < whole_stream_ms / 2
    # The tokens of the chunks the Gemini stream delivered until then, priced.
    assert rec.input_token_count == 12
    assert rec.output_token_count is not None and 0 < rec.output_token_count < CHUNKS * 2
    assert rec.cost_usd == usd((12, "0.30"), (rec.output_token_count, "2.50"))
    (request,) = rec.requests
    assert request.streamed and request.model == FLASH
    assert vividly_trace.stats()["dropped"] == {}


@pytest.mark.parametrize("path", ["/sync", "/async"])
def test_the_app_shuts_down_right_after(streaming_gemini: Any, client: Any, path: str) -> None:
    """The client leaves and the server stops at once: the call is recorded exactly once,
    closed early, before shutdown() returns."""
    sink = MemorySink()
    vividly_trace.configure(sinks=[sink], spool_dir=False)
    server = Server(make_app(client))
    with server as base:
        got, left_after_s = read_then_leave(f"{base}{path}?topic=rain")
        assert len(got) == TAKEN
        server.stop()
    assert vividly_trace.shutdown(timeout=5)
    records = sink.records
    assert [(r.template_key, r.stream_closed_early, r.success) for r in records] == [
        (f"script_stream_{path[1:]}", True, True)
    ]
    assert records[0].response_time_ms <= (left_after_s + SLACK_S) * 1000
