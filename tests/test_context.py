"""``vividly_trace.context()``: who called, on every record made inside, following tasks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import vividly_trace
from vividly_trace import context, log_prompt_execution, logged_prompt
from vividly_trace.testing import CapturedRecords


@logged_prompt("answer", metadata={"source": "decorator", "kind": "qa"})
def answer() -> str:
    return "ok"


def who(records: CapturedRecords) -> list[tuple[Any, ...]]:
    return [(r.template_key, r.user_id, r.session_id, r.request_id) for r in records]


def test_a_with_block_nested_and_left(records: CapturedRecords) -> None:
    with context(user_id="u1", session_id="s1", plan="pro"):
        answer()
        with context(user_id=42, request_id="r9", plan="team"):  # inner values win
            answer()
        answer()
    answer()  # outside: nothing bound
    assert who(records) == [
        ("answer", "u1", "s1", None),
        ("answer", "42", "s1", "r9"),
        ("answer", "u1", "s1", None),
        ("answer", None, None, None),
    ]
    assert [r.metadata for r in records] == [
        {"source": "decorator", "kind": "qa", "plan": "pro"},
        {"source": "decorator", "kind": "qa", "plan": "team"},
        {"source": "decorator", "kind": "qa", "plan": "pro"},
        {"source": "decorator", "kind": "qa"},
    ]


def test_the_calls_own_metadata_wins(records: CapturedRecords) -> None:
    with context(user_id="u1", source="context"):
        with logged_prompt("adhoc") as call:
            call.metadata["source"] = "call"
        log_prompt_execution("plain", True, 5.0, metadata={"n": 1})
        log_prompt_execution("plain_overrides", True, 5.0, metadata={"source": "mine"})
    by_key = {r.template_key: r for r in records}
    assert by_key["adhoc"].metadata == {"source": "call"}
    assert (by_key["plain"].user_id, by_key["plain"].metadata) == (
        "u1",
        {"source": "context", "n": 1},
    )
    assert by_key["plain_overrides"].metadata == {"source": "mine"}


def test_a_decorator_on_sync_async_and_generators(records: CapturedRecords) -> None:
    @context(user_id="sync")
    def handle() -> str:
        return answer()

    @context(user_id="async")
    async def ahandle() -> str:
        return answer()

    @logged_prompt("stream")
    def stream() -> Iterator[str]:
        yield "a"
        yield "b"

    @context(user_id="gen")
    def handle_stream() -> Iterator[str]:
        yield from stream()

    @logged_prompt("astream")
    async def astream() -> AsyncIterator[str]:
        yield "a"

    @context(user_id="agen")
    async def ahandle_stream() -> AsyncIterator[str]:
        async for piece in astream():
            yield piece

    async def consume() -> list[str]:
        return [p async for p in ahandle_stream()]

    assert handle() == "ok"
    assert asyncio.run(ahandle()) == "ok"
    gen = handle_stream()
    assert next(gen) == "a"
    answer()  # between the steps of a bound generator: its binding does not leak out here
    assert list(gen) == ["b"]
    assert asyncio.run(consume()) == ["a"]
    assert [(r.template_key, r.user_id) for r in records] == [
        ("answer", "sync"),
        ("answer", "async"),
        ("answer", None),
        ("stream", "gen"),
        ("astream", "agen"),
    ]


def test_it_follows_tasks_and_to_thread(records: CapturedRecords) -> None:
    async def serve(user: str) -> None:
        with context(user_id=user):
            await asyncio.sleep(0)
            await asyncio.gather(asyncio.to_thread(answer), asyncio.create_task(inner()))

    async def inner() -> None:
        await asyncio.sleep(0)
        answer()

    async def main() -> None:
        await asyncio.gather(serve("alice"), serve("bob"))

    asyncio.run(main())
    assert sorted(r.user_id or "" for r in records) == ["alice", "alice", "bob", "bob"]


def test_bad_values_are_ignored_with_a_warning(
    records: CapturedRecords, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="vividly_trace")
    with context(user_id=object(), session_id=3.5, request_id="r" * 1000):  # type: ignore[arg-type]
        answer()
    rec = records.only()
    assert (rec.user_id, rec.session_id) == (None, None)
    assert rec.request_id == "r" * 256
    warnings = [r.getMessage() for r in caplog.records]
    assert any("user_id must be a str or int" in m for m in warnings)
    assert any("session_id must be a str or int" in m for m in warnings)


def test_decorating_something_that_is_not_a_function_fails_at_once() -> None:
    with pytest.raises(TypeError, match="decorates a function"):
        context(user_id="x")(42)  # type: ignore[type-var]


def test_records_round_trip_and_the_package_exports() -> None:
    assert vividly_trace.context is context
    rec = vividly_trace.PromptExecution.from_dict(
        {
            "execution_id": "e",
            "template_key": "t",
            "success": True,
            "response_time_ms": 1.0,
            "started_at": "2026-12-02T00:00:00Z",
            "user_id": "u",
            "session_id": "s",
            "request_id": "r",
        }
    )
    assert rec.to_dict()["user_id"] == "u"
    assert vividly_trace.PromptExecution.from_dict(rec.to_exact_dict()) == rec
