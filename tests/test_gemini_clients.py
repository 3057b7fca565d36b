"""The real Google clients, talking to the fake Gemini server, through decorated functions.

Expected costs are computed by hand from the official price list (pricing-sources.md), USD per
1M tokens: gemini-2.5-flash input 0.30, audio input 1.00, output 2.50, cached 0.03;
gemini-2.5-pro input 1.25 / 2.50 above 200k prompt tokens, output 10.00 / 15.00.
"""

from __future__ import annotations

import asyncio
import warnings
from decimal import Decimal
from typing import Any

import pytest

from tests.factories import usd as per_million
from vividly_trace import PricingTable, logged_prompt
from vividly_trace.testing import CapturedRecords
from vividly_trace.testing.fake_gemini import Scenario

genai = pytest.importorskip("google.genai")
from google.genai import errors as genai_errors  # noqa: E402

PRICING_VERSION = PricingTable.default().version


class TestGenaiSync:
    """google-genai, sync client, decorated function."""

    def test_plain_call(self, gemini: Any, client: Any, records: CapturedRecords) -> None:
        """Tokens, model, cost and pricing version of a plain call are exact."""
        gemini.enqueue(Scenario(text="hello", prompt_tokens=10, candidates_tokens=5))

        @logged_prompt("nlu_extraction", version="v3", ab_group="B")
        def extract_intent(text: str) -> Any:
            return client.models.generate_content(model="gemini-2.5-flash", contents=text)

        response = extract_intent("book a table")
        assert response.text == "hello"
        rec = records.only()
        assert rec.template_key == "nlu_extraction"
        assert (rec.template_version, rec.ab_test_group) == ("v3", "B")
        assert rec.success is True
        assert rec.provider == "gemini"
        assert rec.response_model == "gemini-2.5-flash"
        assert rec.model == "gemini-2.5-flash"
        assert (rec.input_token_count, rec.output_token_count, rec.total_token_count) == (
            10,
            5,
            15,
        )
        assert rec.cost_usd == per_million((10, "0.30"), (5, "2.50"))
        assert rec.cost_usd == Decimal("0.0000155")
        assert rec.pricing_version == PRICING_VERSION
        assert rec.finish_reason == "STOP"
        assert rec.response_time_ms > 0
        assert rec.streamed is False

    def test_thinking(self, gemini: Any, client: Any, records: CapturedRecords) -> None:
        """Thinking tokens count as output and are billed at the output rate."""
        gemini.enqueue(Scenario(prompt_tokens=100, candidates_tokens=50, thoughts_tokens=200))

        @logged_prompt("script_generation", model="gemini-2.5-flash")
        def generate() -> Any:
            return client.models.generate_content(model="gemini-2.5-flash", contents="x")

        generate()
        rec = records.only()
        assert rec.thinking_token_count == 200
        assert (rec.input_token_count, rec.output_token_count, rec.total_token_count) == (
            100,
            250,
            350,
        )
        assert rec.cost_usd == per_million((100, "0.30"), (250, "2.50")) == Decimal("0.000655")

    def test_cached_content(self, gemini: Any, client: Any, records: CapturedRecords) -> None:
        """Cached input is billed at the cached rate and never charged twice."""
        gemini.enqueue(Scenario(prompt_tokens=1000, cached_tokens=600, candidates_tokens=100))

        @logged_prompt("clarification")
        def clarify() -> Any:
            return client.models.generate_content(model="gemini-2.5-flash", contents="x")

        clarify()
        rec = records.only()
        assert rec.cached_token_count == 600
        assert rec.input_token_count == 1000
        expected = per_million((400, "0.30"), (600, "0.03"), (100, "2.50"))
        assert rec.cost_usd == expected == Decimal("0.000388")

    def test_tool_use_tokens(self, gemini: Any, client: Any, records: CapturedRecords) -> None:
        """Tool-use prompt tokens are input, billed at the input rate."""
        gemini.enqueue(Scenario(prompt_tokens=100, tool_use_prompt_tokens=50, candidates_tokens=20))

        @logged_prompt("nlu_extraction")
        def call() -> Any:
            return client.models.generate_content(model="gemini-2.5-flash", contents="x")

        call()
        rec = records.only()
        assert rec.tool_use_token_count == 50
        assert (rec.input_token_count, rec.output_token_count, rec.total_token_count) == (
            150,
            20,
            170,
        )
        assert rec.cost_usd == per_million((150, "0.30"), (20, "2.50")) == Decimal("0.000095")

    def test_audio_input(self, gemini: Any, client: Any, records: CapturedRecords) -> None:
        """Audio input tokens are billed at the audio rate."""
        gemini.enqueue(Scenario(prompt_tokens=100, audio_prompt_tokens=20, candidates_tokens=10))

        @logged_prompt("nlu_extraction")
        def call() -> Any:
            return client.models.generate_content(model="gemini-2.5-flash", contents="x")

        call()
        rec = records.only()
        assert rec.audio_input_token_count == 20
        assert rec.cost_usd == per_million((80, "0.30"), (20, "1.00"), (10, "2.50"))
        assert rec.cost_usd == Decimal("0.000069")

    def test_cached_audio(self, gemini: Any, client: Any, records: CapturedRecords) -> None:
        """Cached audio (cacheTokensDetails, modality AUDIO) is recorded and billed at the
        cached-audio rate."""
        gemini.enqueue(
            Scenario(
                prompt_tokens=1000,
                cached_tokens=600,
                audio_prompt_tokens=300,
                cached_audio_tokens=200,
                candidates_tokens=10,
            )
        )

        @logged_prompt("voice_note")
        def call() -> Any:
            return client.models.generate_content(model="gemini-2.5-flash", contents="x")

        response = call()
        assert response.usage_metadata.cache_tokens_details[1].token_count == 200
        rec = records.only()
        assert (rec.cached_token_count, rec.audio_input_token_count) == (600, 300)
        assert rec.cached_audio_token_count == 200
        # 300 plain, 100 uncached audio, 400 cached text, 200 cached audio (0.10 per 1M).
        expected = per_million(
            (300, "0.30"), (100, "1.00"), (400, "0.03"), (200, "0.10"), (10, "2.50")
        )
        assert rec.cost_usd == expected == Decimal("0.000247")

    @pytest.mark.parametrize(
        ("prompt", "expected"),
        [
            # <= 200k: lower tier for the whole request.
            (200_000, per_million((200_000, "1.25"), (1000, "10.00"))),
            # > 200k: the whole request at the upper tier, not only the tokens above 200k.
            (250_000, per_million((250_000, "2.50"), (1000, "15.00"))),
        ],
    )
    def test_pro_tiers(
        self, gemini: Any, client: Any, records: CapturedRecords, prompt: int, expected: Decimal
    ) -> None:
        """gemini-2.5-pro is billed by the prompt-size tier, applied to the whole request."""
        gemini.enqueue(Scenario(prompt_tokens=prompt, candidates_tokens=1000))

        @logged_prompt("script_generation")
        def call() -> Any:
            return client.models.generate_content(model="gemini-2.5-pro", contents="x")

        call()
        rec = records.only()
        assert rec.cost_usd == expected
        assert rec.cost_usd in (Decimal("0.26"), Decimal("0.64"))

    @pytest.mark.parametrize(
        ("status", "exc_name"), [(400, "ClientError"), (429, "ClientError"), (500, "ServerError")]
    )
    def test_errors(
        self, gemini: Any, client: Any, records: CapturedRecords, status: int, exc_name: str
    ) -> None:
        """API errors propagate unchanged; the record is failed with the HTTP status."""
        gemini.enqueue(Scenario(error_status=status, error_message=f"boom {status}"))

        @logged_prompt("nlu_extraction")
        def call() -> Any:
            return client.models.generate_content(model="gemini-2.5-flash", contents="x")

        with pytest.raises(genai_errors.APIError) as info:
            call()
        assert type(info.value).__name__ == exc_name
        assert info.value.code == status
        rec = records.only()
        assert rec.success is False
        assert rec.http_status == status
        assert rec.error_type == exc_name
        assert f"boom {status}" in (rec.error_message or "")
        assert rec.cost_usd is None

    def test_blocked_prompt(self, gemini: Any, client: Any, records: CapturedRecords) -> None:
        """A blocked prompt returns normally but is recorded as not successful."""
        gemini.enqueue(Scenario(block_reason="SAFETY", prompt_tokens=12))

        @logged_prompt("clarification")
        def call() -> Any:
            return client.models.generate_content(model="gemini-2.5-flash", contents="x")

        response = call()
        assert response.candidates is None
        rec = records.only()
        assert rec.success is False
        assert rec.error_type == "BlockedPrompt"
        assert "SAFETY" in (rec.error_message or "")
        assert rec.input_token_count == 12
        assert rec.cost_usd == per_million((12, "0.30"))

    def test_safety_stop(self, gemini: Any, client: Any, records: CapturedRecords) -> None:
        """A response stopped for safety is recorded as not successful."""
        gemini.enqueue(Scenario(finish_reason="SAFETY"))

        @logged_prompt("clarification")
        def call() -> Any:
            return client.models.generate_content(model="gemini-2.5-flash", contents="x")

        call()
        rec = records.only()
        assert rec.success is False
        assert rec.finish_reason == "SAFETY"
        assert rec.error_type == "BlockedResponse"


class TestGenaiStreaming:
    """google-genai streams through decorated generators."""

    @pytest.mark.parametrize("every_chunk", [False, True])
    def test_sync_stream(
        self, gemini: Any, client: Any, records: CapturedRecords, every_chunk: bool
    ) -> None:
        """Usage comes from the last chunk that has it (never a sum); time to first chunk kept."""
        gemini.enqueue(
            Scenario(
                text="one two three four",
                prompt_tokens=40,
                candidates_tokens=30,
                thoughts_tokens=10,
                stream_chunks=4,
                usage_on_every_chunk=every_chunk,
            )
        )

        @logged_prompt("script_generation")
        def stream(prompt: str) -> Any:
            yield from client.models.generate_content_stream(
                model="gemini-2.5-flash", contents=prompt
            )

        chunks = list(stream("go"))
        assert len(chunks) == 4
        rec = records.only()
        assert rec.streamed is True
        assert rec.success is True
        assert (rec.input_token_count, rec.output_token_count) == (40, 40)
        assert rec.cost_usd == per_million((40, "0.30"), (40, "2.50"))
        assert rec.time_to_first_chunk_ms is not None
        assert 0 < rec.time_to_first_chunk_ms <= rec.response_time_ms
        assert rec.finish_reason == "STOP"

    async def test_async_stream(self, gemini: Any, client: Any, records: CapturedRecords) -> None:
        """An async generator over client.aio's stream is recorded when exhausted."""
        gemini.enqueue(Scenario(prompt_tokens=8, candidates_tokens=6, stream_chunks=3))

        @logged_prompt("script_generation")
        async def stream(prompt: str) -> Any:
            async for chunk in await client.aio.models.generate_content_stream(
                model="gemini-2.5-flash", contents=prompt
            ):
                yield chunk

        chunks = [c async for c in stream("go")]
        assert len(chunks) == 3
        rec = records.only()
        assert rec.streamed and rec.success
        assert (rec.input_token_count, rec.output_token_count) == (8, 6)
        assert rec.cost_usd == per_million((8, "0.30"), (6, "2.50"))

    def test_error_mid_stream(self, gemini: Any, client: Any, records: CapturedRecords) -> None:
        """An error in the middle of a stream propagates; the record fails with usage so far."""
        gemini.enqueue(
            Scenario(
                prompt_tokens=20,
                candidates_tokens=9,
                stream_chunks=3,
                usage_on_every_chunk=True,
                stream_error_after=2,
                error_status=500,
            )
        )

        @logged_prompt("script_generation")
        def stream() -> Any:
            yield from client.models.generate_content_stream(model="gemini-2.5-flash", contents="x")

        got = []
        with pytest.raises(genai_errors.ServerError):
            for chunk in stream():
                got.append(chunk)
        assert len(got) == 2
        rec = records.only()
        assert rec.success is False
        assert rec.http_status == 500
        assert rec.streamed is True
        assert rec.input_token_count == 20

    def test_closed_early(self, gemini: Any, client: Any, records: CapturedRecords) -> None:
        """A stream closed by the consumer ends the record, marked as closed early."""
        gemini.enqueue(Scenario(stream_chunks=5, usage_on_every_chunk=True, prompt_tokens=5))

        @logged_prompt("script_generation")
        def stream() -> Any:
            yield from client.models.generate_content_stream(model="gemini-2.5-flash", contents="x")

        gen = stream()
        next(gen)
        gen.close()
        rec = records.only()
        assert rec.stream_closed_early is True
        assert rec.success is True
        assert rec.input_token_count == 5


class TestGenaiAsync:
    """google-genai's client.aio through async functions and async with."""

    async def test_aio_call(self, gemini: Any, client: Any, records: CapturedRecords) -> None:
        """An async decorated function is recorded with exact usage."""
        gemini.enqueue(Scenario(prompt_tokens=30, candidates_tokens=10))

        @logged_prompt("clarification")
        async def clarify(q: str) -> Any:
            return await client.aio.models.generate_content(model="gemini-2.5-flash", contents=q)

        await clarify("which day?")
        rec = records.only()
        assert rec.cost_usd == per_million((30, "0.30"), (10, "2.50"))

    async def test_async_with_block(
        self, gemini: Any, client: Any, records: CapturedRecords
    ) -> None:
        """``async with`` records the response handed to the call handle, with metadata."""
        gemini.enqueue(Scenario(prompt_tokens=7, candidates_tokens=3))
        async with logged_prompt("clarification", version="v2") as call:
            resp = await client.aio.models.generate_content(model="gemini-2.5-flash", contents="q")
            call.record_response(resp)
            call.metadata["user_tier"] = "pro"
            entry_id = call.execution_id
        rec = records.only()
        assert rec.execution_id == entry_id
        assert rec.metadata == {"user_tier": "pro"}
        assert rec.template_version == "v2"
        assert rec.cost_usd == per_million((7, "0.30"), (3, "2.50"))

    async def test_aio_error(self, gemini: Any, client: Any, records: CapturedRecords) -> None:
        """An async API error propagates as the same object; the record has the status."""
        gemini.enqueue(Scenario(error_status=429))

        @logged_prompt("clarification")
        async def clarify() -> Any:
            return await client.aio.models.generate_content(model="gemini-2.5-flash", contents="q")

        with pytest.raises(genai_errors.ClientError):
            await clarify()
        rec = records.only()
        assert (rec.success, rec.http_status) == (False, 429)

    async def test_concurrent_tasks(
        self, gemini: Any, client: Any, records: CapturedRecords
    ) -> None:
        """Concurrent decorated async calls each get their own record."""

        @logged_prompt("clarification")
        async def clarify(i: int) -> Any:
            return await client.aio.models.generate_content(
                model="gemini-2.5-flash", contents=str(i)
            )

        await asyncio.gather(*(clarify(i) for i in range(20)))
        assert len(records) == 20
        assert len({r.execution_id for r in records}) == 20


class TestGenaiWithBlock:
    """The sync ``with`` block around ad-hoc calls."""

    def test_with_block(self, gemini: Any, client: Any, records: CapturedRecords) -> None:
        """The handle's response, model and usage end up in the record."""
        gemini.enqueue(Scenario(prompt_tokens=11, candidates_tokens=4))
        with logged_prompt("nlu_extraction", model="gemini-2.5-flash") as call:
            call.record_response(
                client.models.generate_content(model="gemini-2.5-flash", contents="x")
            )
        rec = records.only()
        assert rec.input_token_count == 11
        assert rec.cost_usd == per_million((11, "0.30"), (4, "2.50"))

    def test_with_block_error(self, gemini: Any, client: Any, records: CapturedRecords) -> None:
        """An exception leaving the block propagates and fails the record."""
        gemini.enqueue(Scenario(error_status=400))
        with (
            pytest.raises(genai_errors.ClientError),
            logged_prompt("nlu_extraction") as call,
        ):
            call.record_response(
                client.models.generate_content(model="gemini-2.5-flash", contents="x")
            )
        rec = records.only()
        assert (rec.success, rec.http_status, rec.error_type) == (False, 400, "ClientError")


@pytest.fixture(name="old_genai")
def _old_genai(gemini: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        old = pytest.importorskip("google.generativeai")
    gemini.configure_generativeai()
    return old


class TestGenerativeAI:
    """The deprecated google-generativeai client (REST transport)."""

    def test_sync_call(self, gemini: Any, old_genai: Any, records: CapturedRecords) -> None:
        """Usage of the old client's proto response is extracted exactly."""
        gemini.enqueue(Scenario(prompt_tokens=1000, cached_tokens=600, candidates_tokens=100))
        model = old_genai.GenerativeModel("gemini-2.5-flash")

        @logged_prompt("nlu_extraction", model="gemini-2.5-flash")
        def call() -> Any:
            return model.generate_content("x")

        call()
        rec = records.only()
        assert rec.input_token_count == 1000
        assert rec.cached_token_count == 600
        assert rec.cost_usd == per_million((400, "0.30"), (600, "0.03"), (100, "2.50"))
        assert rec.finish_reason == "STOP"

    def test_hidden_thinking(self, gemini: Any, old_genai: Any, records: CapturedRecords) -> None:
        """The old client drops the thinking count: total - prompt - candidates is thinking."""
        gemini.enqueue(Scenario(prompt_tokens=100, candidates_tokens=50, thoughts_tokens=200))
        model = old_genai.GenerativeModel("gemini-2.5-flash")

        @logged_prompt("script_generation", model="gemini-2.5-flash")
        def call() -> Any:
            return model.generate_content("x")

        call()
        rec = records.only()
        assert rec.thinking_token_count == 200
        assert (rec.input_token_count, rec.output_token_count, rec.total_token_count) == (
            100,
            250,
            350,
        )
        assert rec.cost_usd == per_million((100, "0.30"), (250, "2.50"))

    @pytest.mark.parametrize("every_chunk", [False, True])
    def test_stream(
        self, gemini: Any, old_genai: Any, records: CapturedRecords, every_chunk: bool
    ) -> None:
        """``stream=True`` through a decorated generator takes the last chunk's usage."""
        gemini.enqueue(
            Scenario(
                prompt_tokens=40,
                candidates_tokens=30,
                stream_chunks=3,
                usage_on_every_chunk=every_chunk,
            )
        )
        model = old_genai.GenerativeModel("gemini-2.5-flash")

        @logged_prompt("script_generation", model="gemini-2.5-flash")
        def stream() -> Any:
            yield from model.generate_content("x", stream=True)

        assert len(list(stream())) == 3
        rec = records.only()
        assert rec.streamed is True
        assert (rec.input_token_count, rec.output_token_count) == (40, 30)
        assert rec.cost_usd == per_million((40, "0.30"), (30, "2.50"))

    def test_stream_with_block(self, gemini: Any, old_genai: Any, records: CapturedRecords) -> None:
        """A ``with`` block around an iterated stream records the aggregated response."""
        gemini.enqueue(Scenario(prompt_tokens=9, candidates_tokens=6, stream_chunks=2))
        model = old_genai.GenerativeModel("gemini-2.5-flash")
        with logged_prompt("script_generation", model="gemini-2.5-flash") as call:
            response = model.generate_content("x", stream=True)
            for _ in response:
                pass
            call.record_response(response)
        rec = records.only()
        assert (rec.input_token_count, rec.output_token_count) == (9, 6)

    @pytest.mark.parametrize(
        ("status", "exc_name"),
        [(400, "BadRequest"), (429, "TooManyRequests"), (500, "InternalServerError")],
    )
    def test_errors(
        self, gemini: Any, old_genai: Any, records: CapturedRecords, status: int, exc_name: str
    ) -> None:
        """google.api_core errors propagate; the record has the HTTP status."""
        gemini.enqueue(Scenario(error_status=status))
        model = old_genai.GenerativeModel("gemini-2.5-flash")

        @logged_prompt("nlu_extraction")
        def call() -> Any:
            return model.generate_content("x")

        with pytest.raises(Exception) as info:
            call()
        assert type(info.value).__name__ == exc_name
        rec = records.only()
        assert (rec.success, rec.http_status, rec.error_type) == (False, status, exc_name)

    def test_blocked_prompt(self, gemini: Any, old_genai: Any, records: CapturedRecords) -> None:
        """A blocked prompt returns normally and is recorded as not successful."""
        gemini.enqueue(Scenario(block_reason="SAFETY", prompt_tokens=5))
        model = old_genai.GenerativeModel("gemini-2.5-flash")

        @logged_prompt("clarification", model="gemini-2.5-flash")
        def call() -> Any:
            return model.generate_content("x")

        call()
        rec = records.only()
        assert rec.success is False
        assert rec.error_type == "BlockedPrompt"
        assert "SAFETY" in (rec.error_message or "")

    def test_error_mid_stream(self, gemini: Any, old_genai: Any, records: CapturedRecords) -> None:
        """A connection lost mid-stream propagates; the record fails."""
        gemini.enqueue(Scenario(stream_chunks=3, stream_error_after=1, usage_on_every_chunk=True))
        model = old_genai.GenerativeModel("gemini-2.5-flash")

        @logged_prompt("script_generation", model="gemini-2.5-flash")
        def stream() -> Any:
            yield from model.generate_content("x", stream=True)

        with pytest.raises(Exception) as info:
            list(stream())
        rec = records.only()
        assert rec.success is False
        assert rec.error_type == type(info.value).__qualname__


class TestReturnedStreams:
    """Functions that return the client's stream instead of being generators."""

    def test_sync_function_returning_a_stream(
        self, gemini: Any, client: Any, records: CapturedRecords
    ) -> None:
        """The record ends with the returned stream and has its usage."""
        gemini.enqueue(Scenario(prompt_tokens=10, candidates_tokens=5, stream_chunks=3))

        @logged_prompt("script_generation")
        def stream() -> Any:
            return client.models.generate_content_stream(model="gemini-2.5-flash", contents="x")

        chunks = list(stream())
        assert len(chunks) == 3
        rec = records.only()
        assert rec.streamed is True
        assert (rec.input_token_count, rec.output_token_count) == (10, 5)
        assert rec.cost_usd == per_million((10, "0.30"), (5, "2.50"))
        assert rec.time_to_first_chunk_ms is not None

    async def test_async_function_returning_a_stream(
        self, gemini: Any, client: Any, records: CapturedRecords
    ) -> None:
        """The same for client.aio's stream returned from an async function."""
        gemini.enqueue(Scenario(prompt_tokens=8, candidates_tokens=6, stream_chunks=2))

        @logged_prompt("script_generation")
        async def stream() -> Any:
            return await client.aio.models.generate_content_stream(
                model="gemini-2.5-flash", contents="x"
            )

        chunks = [c async for c in await stream()]
        assert len(chunks) == 2
        rec = records.only()
        assert rec.streamed and (rec.input_token_count, rec.output_token_count) == (8, 6)
