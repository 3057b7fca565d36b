"""The fake Gemini's Interactions API, through the real google-genai client (sync and aio):
what the client parses from each endpoint is what the scenario asked for."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from vividly_trace.testing.fake_gemini import Scenario

genai = pytest.importorskip("google.genai")

FLASH = "gemini-2.5-flash"
AGENT = "deep-research-pro-preview-12-2025"


@pytest.fixture(name="ic")
def _ic(gemini: Any) -> Any:
    """A client whose interactions are not retried (the fake answers errors at once)."""
    return gemini.interactions_client()


class TestCreate:
    def test_usage_text_and_model(self, gemini: Any, ic: Any) -> None:
        """Every usage field comes from the scenario, with the Interactions API's names."""
        gemini.enqueue(
            Scenario(
                text="hello world",
                prompt_tokens=120,
                candidates_tokens=30,
                thoughts_tokens=7,
                cached_tokens=20,
                tool_use_prompt_tokens=4,
                audio_prompt_tokens=50,
                cached_audio_tokens=5,
            )
        )
        it = ic.interactions.create(model=FLASH, input="hi")
        assert (it.status, it.model, it.output_text) == ("completed", FLASH, "hello world")
        u = it.usage
        assert (u.total_input_tokens, u.total_output_tokens, u.total_thought_tokens) == (120, 30, 7)
        assert (u.total_cached_tokens, u.total_tool_use_tokens, u.total_tokens) == (20, 4, 161)
        assert [(m.modality, m.tokens) for m in u.input_tokens_by_modality] == [
            ("text", 70),
            ("audio", 50),
        ]
        assert [(m.modality, m.tokens) for m in u.cached_tokens_by_modality] == [
            ("text", 15),
            ("audio", 5),
        ]
        request = gemini.requests[-1]
        assert (request["method"], request["path"], request["model"]) == (
            "POST",
            "/v1beta/interactions",
            FLASH,
        )
        assert request["body"]["input"] == "hi"

    def test_status_from_the_finish_reason(self, gemini: Any, ic: Any) -> None:
        """An interaction status as finish reason is the status; MAX_TOKENS is incomplete;
        a block reason makes it failed."""
        gemini.enqueue(
            Scenario(finish_reason="requires_action"),
            Scenario(finish_reason="MAX_TOKENS"),
            Scenario(block_reason="SAFETY"),
        )
        statuses = [ic.interactions.create(model=FLASH, input="x").status for _ in range(3)]
        assert statuses == ["requires_action", "incomplete", "failed"]

    def test_an_agent_names_a_model_only_when_told(self, gemini: Any, ic: Any) -> None:
        """An agent interaction has no model unless the scenario's model_version gives one."""
        gemini.enqueue(Scenario(), Scenario(model_version="gemini-3-pro-preview"))
        plain = ic.interactions.create(agent=AGENT, input="x")
        named = ic.interactions.create(agent=AGENT, input="x")
        assert (plain.agent, plain.model) == (AGENT, None)
        assert named.model == "gemini-3-pro-preview"

    def test_error_status(self, gemini: Any, ic: Any) -> None:
        """error_status answers that HTTP status (the client raises at once: no retries)."""
        gemini.enqueue(Scenario(error_status=429, error_message="slow down"))
        with pytest.raises(Exception) as caught:
            ic.interactions.create(model=FLASH, input="x")
        assert getattr(caught.value, "status_code", None) == 429
        assert "slow down" in str(caught.value)
        assert len(gemini.requests) == 1

    def test_streamed(self, gemini: Any, ic: Any) -> None:
        """A stream: created, the text in stream_chunks deltas, completed with the usage."""
        gemini.enqueue(Scenario(text="one two three", stream_chunks=3, prompt_tokens=9))
        events = list(ic.interactions.create(model=FLASH, input="x", stream=True))
        kinds = [e.event_type for e in events]
        assert kinds == [
            "interaction.created",
            "step.start",
            "step.delta",
            "step.delta",
            "step.delta",
            "step.stop",
            "interaction.completed",
        ]
        assert "".join(e.delta.text for e in events if e.event_type == "step.delta") == (
            "one two three"
        )
        done = events[-1].interaction
        assert (done.status, done.model, done.usage.total_input_tokens) == ("completed", FLASH, 9)
        assert gemini.requests[-1]["stream"] is True

    def test_mid_stream_error(self, gemini: Any, ic: Any) -> None:
        """stream_error_after: an error event after that many deltas (the client yields it)."""
        gemini.enqueue(Scenario(text="abcdef", stream_error_after=1, error_message="boom"))
        events = list(ic.interactions.create(model=FLASH, input="x", stream=True))
        assert [e.event_type for e in events] == [
            "interaction.created",
            "step.start",
            "step.delta",
            "error",
        ]
        assert events[-1].error.message == "boom"


class TestBackground:
    def test_completes_after_polls(self, gemini: Any, ic: Any) -> None:
        """in_progress (no usage) on create and on the polls before polls_until_done."""
        gemini.interactions.polls_until_done = 3
        gemini.enqueue(Scenario(text="report", prompt_tokens=40, candidates_tokens=9))
        started = ic.interactions.create(model=FLASH, input="x", background=True)
        assert (started.status, started.usage) == ("in_progress", None)
        polls = [ic.interactions.get(started.id) for _ in range(3)]
        assert [p.status for p in polls] == ["in_progress", "in_progress", "completed"]
        assert polls[-1].usage.total_input_tokens == 40
        assert polls[-1].output_text == "report"
        assert ic.interactions.get(started.id).status == "completed"  # stays completed
        assert [r["method"] for r in gemini.requests] == ["POST"] + ["GET"] * 4
        assert gemini.interactions.get(started.id).polls == 3  # type: ignore[union-attr]
        gemini.interactions.polls_until_done = 2

    def test_completes_after_a_delay(self, gemini: Any, ic: Any) -> None:
        """done_after_s: in progress until that long after the create."""
        state = gemini.interactions
        state.done_after_s = 0.2
        try:
            started = ic.interactions.create(model=FLASH, input="x", background=True)
            assert ic.interactions.get(started.id).status == "in_progress"
            asyncio.run(asyncio.sleep(0.25))
            assert ic.interactions.get(started.id).status == "completed"
        finally:
            state.done_after_s = None

    def test_streamed_get_and_cancel(self, gemini: Any, ic: Any) -> None:
        """A streamed get sends the events to completion; cancel of a running one cancels."""
        gemini.enqueue(Scenario(text="abc", prompt_tokens=3), Scenario())
        first = ic.interactions.create(model=FLASH, input="x", background=True)
        events = list(ic.interactions.get(first.id, stream=True))
        assert events[-1].interaction.status == "completed"
        assert events[-1].interaction.usage.total_input_tokens == 3
        assert gemini.requests[-1]["query"] == {"stream": "true"}
        second = ic.interactions.create(model=FLASH, input="x", background=True)
        assert ic.interactions.cancel(second.id).status == "cancelled"
        assert ic.interactions.get(second.id).status == "cancelled"

    def test_unknown_id_and_delete(self, gemini: Any, ic: Any) -> None:
        """A get of an unknown or deleted interaction is answered 404."""
        started = ic.interactions.create(model=FLASH, input="x")
        ic.interactions.delete(started.id)
        for interaction_id in (started.id, "no-such-interaction"):
            with pytest.raises(Exception) as caught:
                ic.interactions.get(interaction_id)
            assert getattr(caught.value, "status_code", None) == 404


def test_the_async_client(gemini: Any, ic: Any) -> None:
    """client.aio.interactions: unary, streamed and background the same way."""
    gemini.enqueue(
        Scenario(text="a", prompt_tokens=11),
        Scenario(text="bc", prompt_tokens=12),
        Scenario(text="d", prompt_tokens=13),
    )

    async def main() -> list[Any]:
        aio = ic.aio.interactions
        unary = await aio.create(model=FLASH, input="x")
        stream = await aio.create(model=FLASH, input="x", stream=True)
        events = [e async for e in stream]
        started = await aio.create(model=FLASH, input="x", background=True)
        polled = [await aio.get(started.id) for _ in range(2)]
        return [unary, events, started, polled]

    unary, events, started, polled = asyncio.run(main())
    assert (unary.output_text, unary.usage.total_input_tokens) == ("a", 11)
    assert events[-1].interaction.usage.total_input_tokens == 12
    assert started.status == "in_progress"
    assert [p.status for p in polled] == ["in_progress", "completed"]
    assert polled[-1].usage.total_input_tokens == 13
