"""Streams whose consumer goes away: closed early, not failed, with the latency up to the last
chunk delivered; never lost at shutdown. (The server's side of it, as Starlette does: a sync
generator it stops iterating and drops, an async generator whose task it cancels.)"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Iterator

import pytest

import vividly_trace
from vividly_trace import logged_prompt
from vividly_trace.sinks import MemorySink
from vividly_trace.testing import capture_records

PAUSE_S = 0.25  # the consumer's silence after the last chunk it took


@logged_prompt("sync_stream")
def sync_chunks(n: int) -> Iterator[str]:
    for i in range(n):
        yield f"chunk {i}"


@logged_prompt("async_stream")
async def async_chunks(n: int) -> AsyncIterator[str]:
    for i in range(n):
        await asyncio.sleep(0.001)
        yield f"chunk {i}"
    await asyncio.sleep(3600)  # a model that keeps thinking: the client gives up first
    yield "never"


class TestAbandoned:
    def test_a_sync_stream_dropped_mid_way(self) -> None:
        """Two chunks taken, then silence, then the generator dropped (never closed by the
        server): closed early, a success, its latency up to the second chunk."""
        with capture_records() as records:
            stream = sync_chunks(10)
            assert [next(stream), next(stream)] == ["chunk 0", "chunk 1"]
            time.sleep(PAUSE_S)
            del stream
            gc.collect()
        rec = records.only()
        assert (rec.template_key, rec.success, rec.stream_closed_early) == (
            "sync_stream",
            True,
            True,
        )
        assert rec.error_type is None
        assert rec.response_time_ms < PAUSE_S * 1000 / 2

    def test_an_async_stream_whose_task_is_cancelled(self) -> None:
        """The server cancels the task iterating the stream (a client disconnect):
        closed early, not a failure (CancelledError is not an error of the call)."""

        async def serve() -> list[str]:
            got: list[str] = []

            async def consume() -> None:
                async for piece in async_chunks(3):
                    got.append(piece)

            task = asyncio.create_task(consume())
            await asyncio.sleep(0.1)
            await asyncio.sleep(PAUSE_S)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return got

        with capture_records() as records:
            assert asyncio.run(serve()) == ["chunk 0", "chunk 1", "chunk 2"]
        rec = records.only()
        assert (rec.success, rec.stream_closed_early, rec.error_type) == (True, True, None)
        assert rec.response_time_ms < PAUSE_S * 1000

    def test_shutdown_records_a_stream_still_open(self) -> None:
        """A stream left open (held, not iterated) at shutdown() is recorded, closed early;
        its later end adds no second record."""
        sink = MemorySink()
        vividly_trace.configure(sinks=[sink], spool_dir=False)
        stream = sync_chunks(5)
        assert next(stream) == "chunk 0"
        assert vividly_trace.shutdown(timeout=5)
        assert [(r.template_key, r.stream_closed_early) for r in sink.records] == [
            ("sync_stream", True)
        ]
        vividly_trace.configure(sinks=[sink], spool_dir=False, sync=True)  # a set-up again
        assert list(stream) == ["chunk 1", "chunk 2", "chunk 3", "chunk 4"]
        assert vividly_trace.flush(5)
        assert len(sink.records) == 1  # its end did not record it a second time
        assert vividly_trace.stats()["dropped"] == {}


def test_flush_records_a_stream_abandoned_in_a_reference_cycle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A server that drops a stream it stopped iterating, inside a reference cycle (as
    Starlette's request state does): flush() records it (the collector clears the weak
    reference to its call before it finalises the generator: it must be recorded anyway)."""
    import vividly_trace._pipeline as pipeline_module

    monkeypatch.setattr(pipeline_module, "_last_collect", float("-inf"))
    sink = MemorySink()
    vividly_trace.configure(sinks=[sink], spool_dir=False)
    gc.disable()  # only flush() may collect it
    try:
        stream = sync_chunks(10)
        assert [next(stream), next(stream)] == ["chunk 0", "chunk 1"]
        state: dict[str, object] = {"body": stream}
        state["self"] = state
        del stream, state
        assert sink.records == []
        assert vividly_trace.flush(5)
    finally:
        gc.enable()
    assert [(r.template_key, r.stream_closed_early, r.success) for r in sink.records] == [
        ("sync_stream", True, True)
    ]


def test_a_with_block_handed_several_chunks_is_recorded() -> None:
    """A with-block handed several chunks (a stream the decorator did not open) is recorded:
    the open-stream claim applies only to the streams it opened."""
    with capture_records() as records, logged_prompt("chunks_by_hand") as call:
        for n in (1, 2):
            call.record_response({"input_tokens": 5, "output_tokens": n})
    rec = records.only()
    assert (rec.streamed, rec.output_token_count) == (True, 2)
