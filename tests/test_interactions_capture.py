"""Client capture of google-genai's Interactions API (``client.interactions``), with the real
client against the fake Gemini, through functions that return parsed dicts or yield text.

Expected costs are computed by hand from the official price list (pricing-sources.md), USD
per 1M tokens, gemini-2.5-flash: input 0.30 (audio 1.00), output 2.50 (thinking included),
cached input 0.03 (cached audio 0.10); gemini-2.5-pro: input 1.25, output 10.00.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.factories import usd
from vividly_trace import logged_prompt
from vividly_trace.testing import CapturedRecords
from vividly_trace.testing._fake_interactions import interactions, interactions_client
from vividly_trace.testing.fake_gemini import Scenario
from vividly_trace.usage import extract

genai = pytest.importorskip("google.genai")

FLASH = "gemini-2.5-flash"
PRO = "gemini-2.5-pro"
AGENT = "deep-research-pro-preview-12-2025"


@pytest.fixture(name="ic")
def _ic(gemini: Any) -> Iterator[Any]:
    """A client whose interactions are not retried; background interactions complete on
    their second poll."""
    interactions(gemini).polls_until_done = 2
    yield interactions_client(gemini)
    interactions(gemini).polls_until_done = 2


class TestWhateverTheFunctionReturns:
    def test_parsed_dict(self, gemini: Any, ic: Any, records: CapturedRecords) -> None:
        """Every total_* field lands in the record's semantics: input includes the cached
        part and the tool-use prompt, output includes thinking."""
        gemini.enqueue(
            Scenario(
                text='{"intent": "book"}',
                prompt_tokens=1200,
                cached_tokens=200,
                candidates_tokens=300,
                thoughts_tokens=40,
                tool_use_prompt_tokens=60,
            )
        )

        @logged_prompt("nlu_extraction", version="v5")
        def extract_intent(text: str) -> dict[str, Any]:
            it = ic.interactions.create(model=FLASH, input=text)
            return dict(json.loads(it.output_text))

        assert extract_intent("a table for two") == {"intent": "book"}
        rec = records.only()
        assert (rec.template_key, rec.success, rec.model, rec.response_model) == (
            "nlu_extraction",
            True,
            FLASH,
            FLASH,
        )
        assert (rec.input_token_count, rec.output_token_count, rec.total_token_count) == (
            1260,
            340,
            1600,
        )
        assert (rec.cached_token_count, rec.thinking_token_count, rec.tool_use_token_count) == (
            200,
            40,
            60,
        )
        # (1200 - 200 + 60) plain input, 200 cached, 300 + 40 output.
        assert rec.cost_usd == usd((1060, "0.30"), (200, "0.03"), (340, "2.50"))
        assert rec.finish_reason == "completed"
        (request,) = rec.requests
        assert (request.operation, request.model, request.success) == (
            "interactions.create",
            FLASH,
            True,
        )
        assert request.cost_usd == rec.cost_usd

    def test_audio_input_and_cached_audio(
        self, gemini: Any, ic: Any, records: CapturedRecords
    ) -> None:
        """input_tokens_by_modality / cached_tokens_by_modality give the audio rates."""
        gemini.enqueue(
            Scenario(
                prompt_tokens=1000,
                audio_prompt_tokens=400,
                cached_tokens=300,
                cached_audio_tokens=100,
                candidates_tokens=50,
            )
        )

        @logged_prompt("transcribe")
        def transcribe() -> str:
            return str(ic.interactions.create(model=FLASH, input="audio").output_text)

        transcribe()
        rec = records.only()
        assert (rec.audio_input_token_count, rec.cached_audio_token_count) == (400, 100)
        # 1000 input: 300 cached (100 of it audio), 400 audio (100 of it cached) ->
        # plain text 1000 - 300 - 300 = 400, audio not cached 300, cached text 200, cached
        # audio 100.
        assert rec.cost_usd == usd(
            (400, "0.30"), (300, "1.00"), (200, "0.03"), (100, "0.10"), (50, "2.50")
        )

    def test_async_parsed_result(self, gemini: Any, ic: Any, records: CapturedRecords) -> None:
        """client.aio.interactions.create in an async function returning a dict."""
        gemini.enqueue(Scenario(text="fine", prompt_tokens=80, candidates_tokens=12))

        @logged_prompt("clarification")
        async def clarify(q: str) -> dict[str, str]:
            it = await ic.aio.interactions.create(model=PRO, input=q)
            return {"answer": str(it.output_text)}

        assert asyncio.run(clarify("which day?")) == {"answer": "fine"}
        rec = records.only()
        assert (rec.input_token_count, rec.output_token_count, rec.model) == (80, 12, PRO)
        assert rec.cost_usd == usd((80, "1.25"), (12, "10.00"))

    def test_a_generator_yielding_streamed_text(
        self, gemini: Any, ic: Any, records: CapturedRecords
    ) -> None:
        """A stream counts once: the usage of its interaction.completed event."""
        gemini.enqueue(Scenario(text="one two three", prompt_tokens=30, candidates_tokens=12))

        @logged_prompt("script_generation")
        def write(topic: str) -> Iterator[str]:
            for event in ic.interactions.create(model=FLASH, input=topic, stream=True):
                if event.event_type == "step.delta":
                    yield event.delta.text

        assert "".join(write("rain")) == "one two three"
        rec = records.only()
        assert rec.streamed is True
        assert (rec.input_token_count, rec.output_token_count) == (30, 12)
        assert rec.cost_usd == usd((30, "0.30"), (12, "2.50"))
        (request,) = rec.requests
        assert (request.operation, request.streamed, request.finish_reason) == (
            "interactions.create",
            True,
            "completed",
        )

    def test_an_async_generator_yielding_streamed_text(
        self, gemini: Any, ic: Any, records: CapturedRecords
    ) -> None:
        """The aio stream, yielded as text by an async generator."""
        gemini.enqueue(Scenario(text="abc", prompt_tokens=21, candidates_tokens=3))

        @logged_prompt("script_generation")
        async def write() -> AsyncIterator[str]:
            stream = await ic.aio.interactions.create(model=FLASH, input="x", stream=True)
            async for event in stream:
                if event.event_type == "step.delta":
                    yield event.delta.text

        async def consume() -> str:
            return "".join([piece async for piece in write()])

        assert asyncio.run(consume()) == "abc"
        rec = records.only()
        assert (rec.input_token_count, rec.output_token_count) == (21, 3)
        assert rec.cost_usd == usd((21, "0.30"), (3, "2.50"))

    def test_an_interaction_and_a_generate_content_are_summed(
        self, gemini: Any, ic: Any, records: CapturedRecords
    ) -> None:
        """Two APIs in one function: tokens summed, each request priced at its model."""
        gemini.enqueue(
            Scenario(text="draft", prompt_tokens=1000, candidates_tokens=300),
            Scenario(text="final", prompt_tokens=400, candidates_tokens=50),
        )

        @logged_prompt("two_step")
        def two_step() -> str:
            draft = ic.interactions.create(model=FLASH, input="topic").output_text
            return str(ic.models.generate_content(model=PRO, contents=draft).text)

        assert two_step() == "final"
        rec = records.only()
        assert (rec.input_token_count, rec.output_token_count) == (1400, 350)
        assert rec.cost_usd == usd((1000, "0.30"), (300, "2.50"), (400, "1.25"), (50, "10.00"))
        assert [r.operation for r in rec.requests] == ["interactions.create", "generate_content"]


class TestBackground:
    def test_polled_inside_the_call_counts_once(
        self, gemini: Any, ic: Any, records: CapturedRecords
    ) -> None:
        """create(background=True) then polls in the same function: one request, its usage
        once (four polls, two of them after completion, multiply nothing)."""
        interactions(gemini).polls_until_done = 3
        gemini.enqueue(Scenario(text="the report", prompt_tokens=500, candidates_tokens=200))

        @logged_prompt("deep_research")
        def research(q: str) -> dict[str, Any]:
            it = ic.interactions.create(model=FLASH, input=q, background=True)
            polls = 0
            while it.status == "in_progress":
                it = ic.interactions.get(it.id)
                polls += 1
            it = ic.interactions.get(it.id)  # read again once done
            return {"text": it.output_text, "polls": polls}

        assert research("rain") == {"text": "the report", "polls": 3}
        rec = records.only()
        assert (rec.input_token_count, rec.output_token_count) == (500, 200)
        assert rec.cost_usd == usd((500, "0.30"), (200, "2.50"))
        # The create (completed by the third poll), then the read after it: 0 tokens, $0.
        create, read = rec.requests
        assert (create.operation, create.input_token_count, create.finish_reason) == (
            "interactions.create",
            500,
            "completed",
        )
        assert (read.operation, read.input_token_count, read.cost_usd) == (
            "interactions.get",
            0,
            0,
        )
        assert create.offset_ms + create.response_time_ms <= read.offset_ms

    def test_polled_after_the_call_returned(
        self, gemini: Any, ic: Any, records: CapturedRecords
    ) -> None:
        """Started in one logged call, polled from another: the usage is recorded once,
        under the starting call's template, as its child; the poller counts nothing."""
        gemini.enqueue(Scenario(prompt_tokens=700, candidates_tokens=90))

        @logged_prompt("start_research", version="v2", metadata={"team": "a"})
        def start(q: str) -> str:
            return str(ic.interactions.create(model=FLASH, input=q, background=True).id)

        @logged_prompt("poll_research")
        def poll(interaction_id: str) -> str:
            return str(ic.interactions.get(interaction_id).status)

        interaction_id = start("rain")
        assert [poll(interaction_id) for _ in range(3)] == [
            "in_progress",
            "completed",
            "completed",
        ]
        started, poll1, completed, poll2, poll3 = records
        assert (started.template_key, started.input_token_count, started.cost_usd) == (
            "start_research",
            None,
            None,
        )
        assert [(r.operation, r.finish_reason) for r in started.requests] == [
            ("interactions.create", "in_progress")
        ]
        assert (completed.template_key, completed.template_version) == ("start_research", "v2")
        assert completed.metadata == {"team": "a"}
        assert completed.parent_execution_id == started.execution_id
        assert (completed.input_token_count, completed.output_token_count) == (700, 90)
        assert completed.cost_usd == usd((700, "0.30"), (90, "2.50"))
        assert completed.started_at >= started.started_at
        # The poll in progress and the completing poll add no request; the later read is
        # a request of 0 tokens: the tokens are counted once over all records.
        assert [p.template_key for p in (poll1, poll2, poll3)] == ["poll_research"] * 3
        assert (poll1.requests, poll2.requests) == ((), ())
        assert [(r.operation, r.input_token_count) for r in poll3.requests] == [
            ("interactions.get", 0)
        ]
        assert sum(r.input_token_count or 0 for r in records) == 700

    def test_async_background(self, gemini: Any, ic: Any, records: CapturedRecords) -> None:
        """The aio client: a background interaction polled inside the async call; its
        request's latency runs from the create to the poll that saw it completed."""
        gemini.enqueue(Scenario(prompt_tokens=55, candidates_tokens=5))
        interactions(gemini).done_after_s = 0.15

        @logged_prompt("deep_research")
        async def research() -> str:
            aio = ic.aio.interactions
            it = await aio.create(model=FLASH, input="x", background=True)
            while it.status == "in_progress":
                await asyncio.sleep(0.02)
                it = await aio.get(it.id)
            return str(it.output_text)

        try:
            asyncio.run(research())
        finally:
            interactions(gemini).done_after_s = None
        rec = records.only()
        assert (rec.input_token_count, rec.output_token_count) == (55, 5)
        assert rec.cost_usd == usd((55, "0.30"), (5, "2.50"))
        (request,) = rec.requests
        assert 150 <= request.response_time_ms <= rec.response_time_ms

    def test_completed_by_a_streamed_get(
        self, gemini: Any, ic: Any, records: CapturedRecords
    ) -> None:
        """A streamed get of a pending interaction completes it with its last event."""
        gemini.enqueue(Scenario(text="xyz", prompt_tokens=33, candidates_tokens=3))

        @logged_prompt("deep_research")
        def research() -> str:
            it = ic.interactions.create(model=FLASH, input="x", background=True)
            events = ic.interactions.get(it.id, stream=True)
            return "".join(e.delta.text for e in events if e.event_type == "step.delta")

        assert research() == "xyz"
        rec = records.only()
        assert (rec.input_token_count, rec.output_token_count) == (33, 3)
        assert [r.operation for r in rec.requests] == ["interactions.create"]

    def test_cancelled_is_a_failure(self, gemini: Any, ic: Any, records: CapturedRecords) -> None:
        """A cancel completes the pending request: cancelled, a failure."""

        @logged_prompt("deep_research")
        def research() -> str:
            it = ic.interactions.create(model=FLASH, input="x", background=True)
            return str(ic.interactions.cancel(it.id).status)

        assert research() == "cancelled"
        rec = records.only()
        assert (rec.success, rec.error_type, rec.finish_reason) == (
            False,
            "InteractionCancelled",
            "cancelled",
        )


class TestOwnershipAndFailures:
    def test_unlogged_interaction_under_its_callers_name(
        self, gemini: Any, ic: Any, records: CapturedRecords
    ) -> None:
        """An interaction outside any logged call is a record named ``module:qualname``."""
        gemini.enqueue(Scenario(prompt_tokens=7, candidates_tokens=1))

        def helper_without_decorator() -> str:
            return str(ic.interactions.create(model=FLASH, input="x").output_text)

        helper_without_decorator()
        rec = records.only()
        assert rec.template_key == (
            f"{__name__}:TestOwnershipAndFailures.test_unlogged_interaction_under_its_callers"
            "_name.<locals>.helper_without_decorator"
        )
        assert (rec.input_token_count, rec.output_token_count, rec.model) == (7, 1, FLASH)
        assert rec.cost_usd == usd((7, "0.30"), (1, "2.50"))

    def test_429_on_create_is_a_failure(
        self, gemini: Any, ic: Any, records: CapturedRecords
    ) -> None:
        """A 429 on create: a failed request with its status, also when the function
        swallows the error and returns a fallback."""
        gemini.enqueue(Scenario(error_status=429), Scenario(error_status=429))

        @logged_prompt("raises")
        def raises() -> str:
            return str(ic.interactions.create(model=FLASH, input="x").output_text)

        @logged_prompt("fallback")
        def fallback() -> str:
            try:
                return str(ic.interactions.create(model=FLASH, input="x").output_text)
            except Exception:
                return "sorry"

        with pytest.raises(Exception, match="429"):
            raises()
        assert fallback() == "sorry"
        for rec in records:
            assert (rec.success, rec.http_status) == (False, 429), rec.template_key
            (request,) = rec.requests
            assert (request.success, request.http_status, request.input_token_count) == (
                False,
                429,
                None,
            )
            assert request.error_type == "RateLimitError"
        assert [r.template_key for r in records] == ["raises", "fallback"]

    def test_failed_interaction_and_stream_error(
        self, gemini: Any, ic: Any, records: CapturedRecords
    ) -> None:
        """A failed status, and an error event in a stream, make the request a failure."""
        gemini.enqueue(
            Scenario(finish_reason="failed", prompt_tokens=10, candidates_tokens=0),
            Scenario(text="abcdef", stream_error_after=1),
        )

        @logged_prompt("unary")
        def unary() -> str:
            return str(ic.interactions.create(model=FLASH, input="x").status)

        @logged_prompt("streamed")
        def streamed() -> list[str]:
            return [
                e.event_type for e in ic.interactions.create(model=FLASH, input="x", stream=True)
            ]

        assert unary() == "failed"
        assert streamed()[-1] == "error"
        failed, cut = records
        assert (failed.success, failed.error_type) == (False, "InteractionFailed")
        assert failed.input_token_count == 10  # what it reported is still counted
        assert (cut.success, cut.error_type, cut.input_token_count) == (
            False,
            "InteractionStreamError",
            None,
        )

    def test_requires_action_is_a_finish_reason(
        self, gemini: Any, ic: Any, records: CapturedRecords
    ) -> None:
        """requires_action (a function call to answer) is a success with that reason."""
        gemini.enqueue(Scenario(finish_reason="requires_action", prompt_tokens=9))

        @logged_prompt("tools")
        def tools() -> str:
            return str(ic.interactions.create(model=FLASH, input="x").status)

        tools()
        rec = records.only()
        assert (rec.success, rec.finish_reason, rec.input_token_count) == (
            True,
            "requires_action",
            9,
        )

    def test_an_agent_without_a_model_has_an_unknown_cost(
        self, gemini: Any, ic: Any, records: CapturedRecords
    ) -> None:
        """An agent interaction is priced at the model its answer names; without one its
        cost is unknown (None), never $0."""
        gemini.enqueue(
            Scenario(prompt_tokens=1000, candidates_tokens=100),
            Scenario(prompt_tokens=1000, candidates_tokens=100, model_version=PRO),
        )

        @logged_prompt("agent")
        def agent() -> str:
            return str(ic.interactions.create(agent=AGENT, input="x").output_text)

        agent()
        agent()
        unnamed, named = records
        assert (unnamed.input_token_count, unnamed.cost_usd, unnamed.model) == (1000, None, None)
        assert named.response_model == PRO
        assert named.cost_usd == usd((1000, "1.25"), (100, "10.00"))


def test_extract_from_a_dict_and_events() -> None:
    """The extractor reads model_dump() dicts and the status_update / step.stop events."""
    info = extract(
        {
            "id": "i1",
            "status": "completed",
            "model": FLASH,
            "usage": {
                "total_input_tokens": 10,
                "total_output_tokens": 4,
                "total_thought_tokens": 2,
                "total_cached_tokens": 3,
            },
        }
    )
    assert (info.usage.input_tokens, info.usage.output_tokens, info.usage.cached_tokens) == (
        10,
        6,
        3,
    )
    assert (info.response_model, info.finish_reason, info.block_reason) == (
        FLASH,
        "completed",
        None,
    )
    update = extract(
        {
            "event_type": "interaction.status_update",
            "interaction_id": "i1",
            "status": "budget_exceeded",
            "usage": {"total_input_tokens": 5, "total_output_tokens": 1},
        }
    )
    assert (update.usage.input_tokens, update.block_reason) == (5, "budget_exceeded")
    stop = extract({"event_type": "step.stop", "index": 0, "usage": {"total_input_tokens": 8}})
    assert (stop.usage.input_tokens, stop.usage.output_tokens) == (8, 0)
    assert extract({"event_type": "step.delta", "index": 0}).usage.is_empty
    # An in-progress interaction reports no usage: unknown, not 0.
    assert extract({"id": "i2", "status": "in_progress", "steps": []}).usage.is_empty
    # Not an interaction: left to the other extractors.
    assert extract({"status": "completed", "usage": {"input_tokens": 3}}).usage.input_tokens == 3


def test_reset_removes_the_interactions_wrappers(gemini: Any) -> None:
    """configure() wraps the generated create/get/cancel once; reset() puts them back."""
    import wrapt
    from google.genai._gaos import interactions as generated

    import vividly_trace

    originals = {
        (cls, name): cls.__dict__[name]
        for cls in (generated.Interactions, generated.AsyncInteractions)
        for name in ("create", "get", "cancel")
    }
    vividly_trace.configure(sinks=[], sync=True, spool_dir=False)
    vividly_trace.configure(sinks=[], sync=True, spool_dir=False)  # idempotent
    for (cls, name), original in originals.items():
        wrapper = cls.__dict__[name]
        assert isinstance(wrapper, wrapt.FunctionWrapper), (cls, name)
        assert wrapper.__wrapped__ is original  # wrapped once, not twice
    vividly_trace.reset()
    for (cls, name), original in originals.items():
        assert cls.__dict__[name] is original
