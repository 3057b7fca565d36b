"""Client capture: every Gemini request a service makes is recorded, whatever the service's
function returns or yields, with the real google-genai client against the fake Gemini.

Expected costs are computed by hand from the official price list (pricing-sources.md), USD
per 1M tokens: gemini-2.5-flash input 0.30, output 2.50; gemini-2.5-pro input 1.25, output
10.00 (prompts up to 200k tokens).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import pytest
import wrapt

import vividly_trace
from tests.factories import usd
from vividly_trace import carry_context, get_current_call, logged_prompt
from vividly_trace.testing import CapturedRecords, capture_records
from vividly_trace.testing.fake_gemini import Scenario

genai = pytest.importorskip("google.genai")
from google.genai import errors as genai_errors  # noqa: E402
from google.genai import types as genai_types  # noqa: E402

FLASH = "gemini-2.5-flash"
PRO = "gemini-2.5-pro"


class TestWhateverTheFunctionReturns:
    def test_parsed_dict(self, gemini: Any, client: Any, records: CapturedRecords) -> None:
        """A service that parses the answer into a dict is recorded with tokens and cost."""
        gemini.enqueue(Scenario(text='{"intent": "book"}', prompt_tokens=120, candidates_tokens=8))

        @logged_prompt("nlu_extraction", version="v4")
        def extract_intent(text: str) -> dict[str, Any]:
            response = client.models.generate_content(model=FLASH, contents=text)
            return dict(json.loads(response.text))

        assert extract_intent("a table for two") == {"intent": "book"}
        rec = records.only()
        assert (rec.template_key, rec.template_version, rec.success) == (
            "nlu_extraction",
            "v4",
            True,
        )
        assert (rec.input_token_count, rec.output_token_count, rec.total_token_count) == (
            120,
            8,
            128,
        )
        assert rec.model == FLASH
        assert rec.cost_usd == usd((120, "0.30"), (8, "2.50"))

    def test_two_models_in_one_function(
        self, gemini: Any, client: Any, records: CapturedRecords
    ) -> None:
        """Two requests to two models: tokens summed, each priced at its own model."""
        gemini.enqueue(
            Scenario(text="draft", prompt_tokens=1000, candidates_tokens=300),
            Scenario(text="final", prompt_tokens=400, candidates_tokens=50),
        )

        @logged_prompt("script_generation")
        def write_script(topic: str) -> str:
            draft = client.models.generate_content(model=FLASH, contents=topic).text
            return str(client.models.generate_content(model=PRO, contents=draft).text)

        assert write_script("rain") == "final"
        rec = records.only()
        assert (rec.input_token_count, rec.output_token_count) == (1400, 350)
        assert rec.cost_usd == usd((1000, "0.30"), (300, "2.50"), (400, "1.25"), (50, "10.00"))
        assert rec.model == FLASH  # the first request's model names the record
        assert [r["model"] for r in gemini.requests] == [FLASH, PRO]
        # The breakdown: one RequestRecord per request, each with its own tokens and cost.
        flash, pro = rec.requests
        assert (flash.operation, flash.model, flash.success) == ("generate_content", FLASH, True)
        assert (flash.input_token_count, flash.output_token_count) == (1000, 300)
        assert flash.cost_usd == usd((1000, "0.30"), (300, "2.50"))
        assert (pro.model, pro.input_token_count, pro.output_token_count) == (PRO, 400, 50)
        assert pro.cost_usd == usd((400, "1.25"), (50, "10.00"))
        assert 0 <= flash.offset_ms < pro.offset_ms < rec.response_time_ms
        assert flash.response_time_ms > 0 and not flash.streamed
        # And it survives the JSON round trip the spool and the JSONL sink use.
        again = type(rec).from_dict(json.loads(json.dumps(rec.to_exact_dict())))
        assert again == rec

    def test_a_generator_yielding_text(
        self, gemini: Any, client: Any, records: CapturedRecords
    ) -> None:
        """A decorated generator that streams text (not chunks) gets the stream's usage."""
        gemini.enqueue(Scenario(text="one two three", prompt_tokens=30, candidates_tokens=12))

        @logged_prompt("clarification")
        def clarify(question: str) -> Iterator[str]:
            for chunk in client.models.generate_content_stream(model=FLASH, contents=question):
                yield chunk.text or ""

        assert "".join(clarify("which day?")) == "one two three"
        rec = records.only()
        assert rec.streamed is True
        assert (rec.input_token_count, rec.output_token_count) == (30, 12)
        assert rec.cost_usd == usd((30, "0.30"), (12, "2.50"))

    def test_a_with_block_consuming_a_stream(
        self, gemini: Any, client: Any, records: CapturedRecords
    ) -> None:
        """A with-block that iterates a Gemini stream itself is a streamed call, its time to
        first chunk that of Gemini's first chunk."""
        gemini.enqueue(Scenario(text="a b c d", prompt_tokens=9, candidates_tokens=4, delay_s=0.05))
        with logged_prompt("adhoc_stream"):
            text = "".join(
                c.text or ""
                for c in client.models.generate_content_stream(model=FLASH, contents="x")
            )
        assert text == "a b c d"
        rec = records.only()
        assert (rec.streamed, rec.input_token_count, rec.output_token_count) == (True, 9, 4)
        assert rec.time_to_first_chunk_ms is not None
        assert 50 <= rec.time_to_first_chunk_ms <= rec.response_time_ms

    def test_a_chat(self, gemini: Any, client: Any, records: CapturedRecords) -> None:
        """Each chat turn is one request; two turns in one logged call are summed."""
        gemini.enqueue(
            Scenario(text="hi", prompt_tokens=10, candidates_tokens=2),
            Scenario(text="sure", prompt_tokens=25, candidates_tokens=4),
        )

        @logged_prompt("support_chat")
        def converse() -> list[str]:
            chat = client.chats.create(model=FLASH)
            return [str(chat.send_message(m).text) for m in ("hello", "help me")]

        assert converse() == ["hi", "sure"]
        rec = records.only()
        assert (rec.input_token_count, rec.output_token_count) == (35, 6)
        assert rec.cost_usd == usd((35, "0.30"), (6, "2.50"))
        assert len(gemini.requests) == 2

    def test_an_async_chat_turn_per_logged_call(
        self, gemini: Any, client: Any, records: CapturedRecords
    ) -> None:
        """``client.aio.chats``: each turn (one plain, one streamed into text) is one logged
        call counted once, the chat's history resent as the next turn's input."""
        gemini.enqueue(
            Scenario(text="Paris", prompt_tokens=11, candidates_tokens=1),
            Scenario(text="about 2 million", prompt_tokens=19, candidates_tokens=3),
        )

        @logged_prompt("assistant_turn")
        async def answer(chat: Any, message: str) -> str:
            return str((await chat.send_message(message)).text)

        @logged_prompt("assistant_turn_stream")
        async def answer_stream(chat: Any, message: str) -> AsyncIterator[str]:
            async for chunk in await chat.send_message_stream(message):
                yield chunk.text or ""

        async def conversation() -> list[str]:
            chat = client.aio.chats.create(model=FLASH)
            first = await answer(chat, "Capital of France?")
            second = "".join([piece async for piece in answer_stream(chat, "Population?")])
            return [first, second]

        assert asyncio.run(conversation()) == ["Paris", "about 2 million"]
        first, second = records
        assert (first.template_key, first.input_token_count, first.output_token_count) == (
            "assistant_turn",
            11,
            1,
        )
        assert (second.template_key, second.input_token_count, second.streamed) == (
            "assistant_turn_stream",
            19,
            True,
        )
        assert second.cost_usd == usd((19, "0.30"), (3, "2.50"))
        assert len(gemini.requests[1]["body"]["contents"]) == 3  # the history was resent

    def test_automatic_function_calling_counts_every_request(
        self, gemini: Any, client: Any, records: CapturedRecords
    ) -> None:
        """The requests automatic function calling makes inside one generate_content are
        all counted (the returned response carries only the last one's usage)."""
        gemini.enqueue(
            Scenario(
                function_call=("get_weather", {"city": "Paris"}),
                prompt_tokens=64,
                candidates_tokens=6,
            ),
            Scenario(text="Sunny in Paris", prompt_tokens=89, candidates_tokens=23),
        )
        calls: list[str] = []

        def get_weather(city: str) -> str:
            """The weather in a city."""
            calls.append(city)
            return "sunny"

        @logged_prompt("weather_answer")
        def answer(question: str) -> str:
            config = genai_types.GenerateContentConfig(tools=[get_weather])
            response = client.models.generate_content(model=FLASH, contents=question, config=config)
            return str(response.text)

        assert answer("weather in Paris?") == "Sunny in Paris"
        assert calls == ["Paris"]
        rec = records.only()
        assert (rec.input_token_count, rec.output_token_count) == (153, 29)
        assert rec.cost_usd == usd((153, "0.30"), (29, "2.50"))

    def test_async_text_and_async_stream(self, gemini: Any, client: Any) -> None:
        """aio: a coroutine returning text, an async generator yielding text."""
        gemini.enqueue(
            Scenario(text="short", prompt_tokens=11, candidates_tokens=3),
            Scenario(text="a b c", prompt_tokens=21, candidates_tokens=9),
        )

        @logged_prompt("summary")
        async def summarise(text: str) -> str:
            response = await client.aio.models.generate_content(model=FLASH, contents=text)
            return str(response.text)

        @logged_prompt("stream_summary")
        async def stream(text: str) -> AsyncIterator[str]:
            chunks = await client.aio.models.generate_content_stream(model=FLASH, contents=text)
            async for chunk in chunks:
                yield chunk.text or ""

        async def main() -> tuple[str, str]:
            first = await summarise("x")
            second = "".join([piece async for piece in stream("y")])
            return first, second

        with capture_records() as records:
            assert asyncio.run(main()) == ("short", "a b c")
        by_key = {r.template_key: r for r in records}
        assert set(by_key) == {"summary", "stream_summary"}
        assert (by_key["summary"].input_token_count, by_key["summary"].output_token_count) == (
            11,
            3,
        )
        assert by_key["stream_summary"].cost_usd == usd((21, "0.30"), (9, "2.50"))


class TestOwnership:
    def test_nested_calls_keep_their_own_requests(
        self, gemini: Any, client: Any, records: CapturedRecords
    ) -> None:
        """A request belongs to the innermost logged call: no cost is counted twice."""
        gemini.enqueue(
            Scenario(prompt_tokens=100, candidates_tokens=10),
            Scenario(prompt_tokens=200, candidates_tokens=20),
        )

        @logged_prompt("inner")
        def inner() -> None:
            client.models.generate_content(model=FLASH, contents="inner")

        @logged_prompt("outer")
        def outer() -> None:
            client.models.generate_content(model=FLASH, contents="outer")
            inner()

        outer()
        by_key = {r.template_key: r for r in records}
        assert (by_key["outer"].input_token_count, by_key["outer"].output_token_count) == (100, 10)
        assert (by_key["inner"].input_token_count, by_key["inner"].output_token_count) == (200, 20)
        assert by_key["inner"].parent_execution_id == by_key["outer"].execution_id
        total = sum(r.cost_usd for r in records if r.cost_usd is not None)
        assert total == usd((300, "0.30"), (30, "2.50"))

    def test_a_sampled_out_call_s_response_is_not_counted_by_its_caller(
        self, gemini: Any, client: Any
    ) -> None:
        """The inner call is sampled out; the outer one fails (failures are always kept)
        after handing the inner call's response to record_response: the outer record does
        not take the inner request's tokens as its own."""
        gemini.enqueue(Scenario(prompt_tokens=70, candidates_tokens=7))

        @logged_prompt("inner_sampled")
        def inner() -> Any:
            return client.models.generate_content(model=FLASH, contents="inner")

        @logged_prompt("outer_failed")
        def outer() -> None:
            get_current_call().record_response(inner())
            raise RuntimeError("parsing failed")

        with capture_records(sample_rate=0.0) as records, pytest.raises(RuntimeError):
            outer()
        rec = records.only()
        assert (rec.template_key, rec.success) == ("outer_failed", False)
        assert (rec.input_token_count, rec.output_token_count, rec.cost_usd) == (None, None, None)

    def test_record_response_does_not_count_twice(
        self, gemini: Any, client: Any, records: CapturedRecords
    ) -> None:
        """A captured response also handed to record_response (the old way) counts once."""
        gemini.enqueue(Scenario(prompt_tokens=40, candidates_tokens=4))

        async def clarify() -> Any:
            async with logged_prompt("clarification") as call:
                response = await client.aio.models.generate_content(model=FLASH, contents="q")
                call.record_response(response)
            return response

        asyncio.run(clarify())
        rec = records.only()
        assert (rec.input_token_count, rec.output_token_count) == (40, 4)
        assert rec.cost_usd == usd((40, "0.30"), (4, "2.50"))

    def test_a_returned_response_does_not_count_twice(
        self, gemini: Any, client: Any, records: CapturedRecords
    ) -> None:
        """A function returning the raw response (the README's first example) counts once."""
        gemini.enqueue(Scenario(prompt_tokens=40, candidates_tokens=4))

        @logged_prompt("raw")
        def raw() -> Any:
            return client.models.generate_content(model=FLASH, contents="q")

        raw()
        rec = records.only()
        assert (rec.input_token_count, rec.output_token_count) == (40, 4)

    def test_unlogged_call_under_its_callers_name(
        self, gemini: Any, client: Any, records: CapturedRecords
    ) -> None:
        """A request outside any logged call is a record named ``module:qualname``."""
        gemini.enqueue(Scenario(prompt_tokens=7, candidates_tokens=1))

        def helper_without_decorator() -> str:
            return str(client.models.generate_content(model=FLASH, contents="x").text)

        helper_without_decorator()
        rec = records.only()
        assert rec.template_key == (
            f"{__name__}:TestOwnership.test_unlogged_call_under_its_callers_name"
            ".<locals>.helper_without_decorator"
        )
        assert (rec.input_token_count, rec.output_token_count, rec.model) == (7, 1, FLASH)
        assert rec.cost_usd == usd((7, "0.30"), (1, "2.50"))
        assert rec.parent_execution_id is None

    def test_a_failed_unlogged_request_is_a_failure_under_its_callers_name(
        self, gemini: Any, client: Any, records: CapturedRecords
    ) -> None:
        """An unlogged request that raises (sync and aio) is recorded as failed, with its
        status, and the caller gets the client's own exception."""
        gemini.enqueue(Scenario(error_status=429), Scenario(error_status=500))

        def failing_sync() -> None:
            client.models.generate_content(model=FLASH, contents="x")

        async def failing_async() -> None:
            await client.aio.models.generate_content(model=FLASH, contents="x")

        with pytest.raises(genai_errors.APIError):
            failing_sync()
        with pytest.raises(genai_errors.APIError):
            asyncio.run(failing_async())
        vividly_trace.flush()
        got = sorted((r.template_key.rsplit(".", 1)[-1], r.success, r.http_status) for r in records)
        assert got == [("failing_async", False, 500), ("failing_sync", False, 429)]

    def test_unlogged_capture_can_be_turned_off(self, gemini: Any, client: Any) -> None:
        """``capture_unlogged=False``: requests outside logged calls are not recorded."""
        gemini.enqueue(Scenario(), Scenario())

        @logged_prompt("kept")
        def kept() -> None:
            client.models.generate_content(model=FLASH, contents="x")

        with capture_records(capture_unlogged=False) as records:
            client.models.generate_content(model=FLASH, contents="x")
            kept()
        assert [r.template_key for r in records] == ["kept"]
        assert records[0].input_token_count == 10

    def test_capture_off_is_the_old_behaviour(self, gemini: Any, client: Any) -> None:
        """``capture_clients=False``: only what the function returns is seen."""
        gemini.enqueue(Scenario(text='{"a": 1}'))

        @logged_prompt("parsed")
        def parsed() -> Any:
            return json.loads(client.models.generate_content(model=FLASH, contents="x").text)

        vividly_trace.configure(sinks=[], sync=True, spool_dir=False)  # capture installed
        assert isinstance(genai.models.Models.__dict__["_generate_content"], wrapt.FunctionWrapper)
        with capture_records(capture_clients=False) as records:
            assert not isinstance(
                genai.models.Models.__dict__["_generate_content"], wrapt.FunctionWrapper
            )
            parsed()
            client.models.generate_content(model=FLASH, contents="unlogged")
        rec = records.only()
        assert rec.input_token_count is None and rec.cost_usd is None
        # the set-up from before the block is back, and with it capture
        assert isinstance(genai.models.Models.__dict__["_generate_content"], wrapt.FunctionWrapper)

    def test_worker_threads_carry_the_call(
        self, gemini: Any, client: Any, records: CapturedRecords
    ) -> None:
        """Through ``carry_context`` a thread pool's requests belong to the logged call that
        submitted them (asyncio.to_thread carries it by itself)."""
        from concurrent.futures import ThreadPoolExecutor

        gemini.enqueue(*[Scenario(prompt_tokens=10, candidates_tokens=1) for _ in range(4)])

        def ask(i: int) -> str:
            return str(client.models.generate_content(model=FLASH, contents=str(i)).text)

        @logged_prompt("fan_out")
        def fan_out() -> list[str]:
            with ThreadPoolExecutor(2) as pool:
                return list(pool.map(carry_context(ask), range(3)))

        @logged_prompt("to_thread")
        async def in_thread() -> str:
            return await asyncio.to_thread(ask, 3)

        fan_out()
        asyncio.run(in_thread())
        by_key = {r.template_key: r for r in records}
        assert set(by_key) == {"fan_out", "to_thread"}
        assert by_key["fan_out"].input_token_count == 30
        assert by_key["to_thread"].input_token_count == 10


class TestOutcome:
    def test_blocked_prompt_in_a_parsed_result_function_fails(
        self, gemini: Any, client: Any, records: CapturedRecords
    ) -> None:
        """A blocked prompt is a failure even when the function returns something else."""
        gemini.enqueue(Scenario(block_reason="SAFETY", prompt_tokens=9))

        @logged_prompt("nlu_extraction")
        def extract() -> dict[str, Any]:
            response = client.models.generate_content(model=FLASH, contents="bad")
            return {"text": response.text}

        assert extract() == {"text": None}
        rec = records.only()
        assert rec.success is False
        assert rec.error_type == "BlockedPrompt"
        assert rec.input_token_count == 9

    def test_an_http_error_the_function_swallows_is_a_failure(
        self, gemini: Any, client: Any, records: CapturedRecords
    ) -> None:
        """The last request answered 429 and the function returned a fallback: failed, with
        the status; a retry that succeeds afterwards makes the call a success."""
        gemini.enqueue(
            Scenario(error_status=429),
            Scenario(error_status=429),
            Scenario(text="ok", prompt_tokens=5, candidates_tokens=1),
        )

        @logged_prompt("fallback")
        def with_fallback() -> str:
            try:
                return str(client.models.generate_content(model=FLASH, contents="x").text)
            except genai_errors.APIError:
                return "sorry"

        @logged_prompt("retrying")
        def with_retry() -> str:
            for _ in range(3):
                try:
                    return str(client.models.generate_content(model=FLASH, contents="x").text)
                except genai_errors.APIError:
                    continue
            return "gave up"

        assert with_fallback() == "sorry"
        assert with_retry() == "ok"
        by_key = {r.template_key: r for r in records}
        assert (by_key["fallback"].success, by_key["fallback"].http_status) == (False, 429)
        assert by_key["retrying"].success is True
        assert by_key["retrying"].input_token_count == 5
        # Failed requests are kept in the breakdown, with their status and no tokens.
        assert [
            (r.success, r.http_status, r.input_token_count) for r in by_key["retrying"].requests
        ] == [
            (False, 429, None),
            (True, None, 5),
        ]
        assert by_key["retrying"].requests[0].error_type == "ClientError"


class TestInstallation:
    def test_reset_removes_the_wrappers(self, gemini: Any) -> None:
        """configure() wraps the request methods once; reset() puts the originals back."""
        models = genai.models.Models
        original = models.__dict__["_generate_content"]
        vividly_trace.configure(sinks=[], sync=True, spool_dir=False)
        vividly_trace.configure(sinks=[], sync=True, spool_dir=False)
        wrapped = models.__dict__["_generate_content"]
        assert isinstance(wrapped, wrapt.FunctionWrapper)
        assert wrapped.__wrapped__ is original  # wrapped once, not twice
        vividly_trace.reset()
        assert models.__dict__["_generate_content"] is original
        vividly_trace.configure(sinks=[], sync=True, spool_dir=False)  # and again
        assert models.__dict__["_generate_content"].__wrapped__ is original
        vividly_trace.reset()
        assert models.__dict__["_generate_content"] is original

    def test_import_order_does_not_matter(self, gemini: Any, tmp_path: Any) -> None:
        """configure() first, ``import google.genai`` afterwards: still captured."""
        script = textwrap.dedent(
            f"""
            import sys
            import vividly_trace
            from vividly_trace.testing import capture_records
            assert "google.genai" not in sys.modules
            with capture_records() as records:
                from google import genai
                from google.genai import types
                client = genai.Client(api_key="k", http_options=types.HttpOptions(
                    base_url={gemini.url!r}, api_version="v1beta"))
                client.models.generate_content(model="gemini-2.5-flash", contents="x")
            (rec,) = records
            print(rec.template_key, rec.input_token_count, rec.output_token_count)
            """
        )
        gemini.enqueue(Scenario(prompt_tokens=13, candidates_tokens=2))
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["__main__:<module>", "13", "2"]


def test_get_current_call_still_works(gemini: Any, client: Any, records: CapturedRecords) -> None:
    """The handle is there inside a captured call (metadata set through it is kept)."""
    gemini.enqueue(Scenario())

    @logged_prompt("with_meta")
    def f() -> None:
        handle = get_current_call()
        assert handle is not None
        handle.metadata["tier"] = "pro"
        client.models.generate_content(model=FLASH, contents="x")

    f()
    assert records.only().metadata == {"tier": "pro"}


class TestMissingDataIsLoud:
    def test_an_unreported_prompt_count_stays_unknown(
        self, gemini: Any, client: Any, records: CapturedRecords
    ) -> None:
        """An answer without ``promptTokenCount`` (file-URI inputs): input and total are
        unknown, and so is the cost; never 0 and an output-only price that looks complete."""
        gemini.enqueue(Scenario(omit_prompt_tokens=True, candidates_tokens=40, thoughts_tokens=7))

        @logged_prompt("describe_file")
        def describe() -> str:
            return str(client.models.generate_content(model=FLASH, contents="file").text)

        describe()
        rec = records.only()
        assert rec.input_token_count is None
        assert (rec.output_token_count, rec.thinking_token_count) == (47, 7)
        assert rec.total_token_count is None
        assert rec.cost_usd is None and rec.pricing_version is None

    def test_a_call_without_usage_warns_once_per_template(
        self, records: CapturedRecords, internal_errors: pytest.LogCaptureFixture
    ) -> None:
        """A successful call with no usage at all: one warning per template, naming the fix."""

        @logged_prompt("no_gemini_here")
        def plain() -> int:
            return 1

        @logged_prompt("other_template")
        def other() -> int:
            return 2

        plain()
        plain()
        other()
        warned = [
            r.getMessage()
            for r in internal_errors.records
            if "succeeded without token usage" in r.getMessage()
        ]
        assert len(warned) == 2
        assert "'no_gemini_here'" in warned[0] and "record_response" in warned[0]
        assert "'other_template'" in warned[1]
        assert len(records) == 3


@pytest.fixture(name="old_genai")
def _old_genai(gemini: Any) -> Any:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        old = pytest.importorskip("google.generativeai")
    gemini.configure_generativeai()
    return old


class TestGenerativeAI:
    """The older google-generativeai client, captured at ``GenerativeModel``."""

    def test_parsed_result_and_chat(
        self, gemini: Any, old_genai: Any, records: CapturedRecords
    ) -> None:
        """A parsed result, and a chat's two turns in one logged call, summed."""
        gemini.enqueue(
            Scenario(text='{"n": 1}', prompt_tokens=50, candidates_tokens=5),
            Scenario(text="hi", prompt_tokens=12, candidates_tokens=2),
            Scenario(text="bye", prompt_tokens=20, candidates_tokens=3),
        )
        model = old_genai.GenerativeModel(FLASH)

        @logged_prompt("old_parse")
        def parse() -> dict[str, Any]:
            return dict(json.loads(model.generate_content("x").text))

        @logged_prompt("old_chat")
        def chat() -> list[str]:
            session = model.start_chat()
            return [session.send_message("hello").text, session.send_message("bye").text]

        assert parse() == {"n": 1}
        assert chat() == ["hi", "bye"]
        by_key = {r.template_key: r for r in records}
        assert (by_key["old_parse"].input_token_count, by_key["old_parse"].model) == (50, FLASH)
        assert by_key["old_parse"].cost_usd == usd((50, "0.30"), (5, "2.50"))
        assert (by_key["old_chat"].input_token_count, by_key["old_chat"].output_token_count) == (
            32,
            5,
        )

    def test_unlogged(self, gemini: Any, old_genai: Any, records: CapturedRecords) -> None:
        """A call outside any logged call is recorded under its caller's name. (The async
        method is wrapped too, but the REST transport the fake serves has no async client.)"""
        gemini.enqueue(Scenario(prompt_tokens=8, candidates_tokens=1))
        model = old_genai.GenerativeModel(FLASH)
        model.generate_content("unlogged")
        rec = records.only()
        assert rec.template_key == f"{__name__}:TestGenerativeAI.test_unlogged"
        assert (rec.input_token_count, rec.model) == (8, FLASH)
        assert rec.cost_usd == usd((8, "0.30"), (1, "2.50"))

    def test_streams(self, gemini: Any, old_genai: Any, records: CapturedRecords) -> None:
        """``stream=True``: a generator yielding text, a chat turn streamed and then
        resolved, and an unlogged stream, each counted once with its usage."""
        gemini.enqueue(
            Scenario(text="one two three", prompt_tokens=30, candidates_tokens=6),
            Scenario(text="hello there", prompt_tokens=14, candidates_tokens=4),
            Scenario(text="free", prompt_tokens=7, candidates_tokens=2),
        )
        model = old_genai.GenerativeModel(FLASH)

        @logged_prompt("old_stream")
        def tell(topic: str) -> Iterator[str]:
            for chunk in model.generate_content(topic, stream=True):
                yield chunk.text

        @logged_prompt("old_chat_stream")
        def chat_turn() -> str:
            response = model.start_chat().send_message("hi", stream=True)
            response.resolve()
            return str(response.text)

        assert "".join(tell("rain")) == "one two three"
        assert chat_turn() == "hello there"
        stream = model.generate_content("unlogged", stream=True)
        assert "".join(chunk.text for chunk in stream) == "free"
        by_key = {r.template_key: r for r in records}
        assert set(by_key) == {
            "old_stream",
            "old_chat_stream",
            f"{__name__}:TestGenerativeAI.test_streams",
        }
        told = by_key["old_stream"]
        assert (told.input_token_count, told.output_token_count, told.streamed) == (30, 6, True)
        assert told.cost_usd == usd((30, "0.30"), (6, "2.50"))
        assert [r.streamed for r in told.requests] == [True]
        turn = by_key["old_chat_stream"]
        assert (turn.input_token_count, turn.output_token_count) == (14, 4)
        assert turn.cost_usd == usd((14, "0.30"), (4, "2.50"))
        free = by_key[f"{__name__}:TestGenerativeAI.test_streams"]
        assert (free.input_token_count, free.output_token_count, free.streamed) == (7, 2, True)
        assert free.time_to_first_chunk_ms is not None


class TestNeverTwiceNeverLost:
    def test_a_generator_yielding_the_captured_chunks(
        self, gemini: Any, client: Any, records: CapturedRecords
    ) -> None:
        """A decorated generator that yields the client's chunks themselves: counted once."""
        gemini.enqueue(Scenario(prompt_tokens=60, candidates_tokens=9, usage_on_every_chunk=True))

        @logged_prompt("chunks")
        def chunks() -> Iterator[Any]:
            yield from client.models.generate_content_stream(model=FLASH, contents="x")

        assert len(list(chunks())) == 3
        rec = records.only()
        assert (rec.input_token_count, rec.output_token_count) == (60, 9)

    def test_a_thread_pool_without_carry_context(
        self, gemini: Any, client: Any, records: CapturedRecords
    ) -> None:
        """Without ``carry_context`` the request is recorded on its own (named after the
        function the pool ran); the logged call that returned its response does not count it
        again, so the bill is counted once."""
        from concurrent.futures import ThreadPoolExecutor

        gemini.enqueue(Scenario(prompt_tokens=100, candidates_tokens=10))

        def ask() -> Any:
            return client.models.generate_content(model=FLASH, contents="x")

        @logged_prompt("pooled")
        def pooled() -> Any:
            with ThreadPoolExecutor(1) as pool:
                return pool.submit(ask).result()

        pooled()
        by_key = {r.template_key: r for r in records}
        assert by_key["pooled"].input_token_count is None
        orphan = by_key[
            f"{__name__}:TestNeverTwiceNeverLost.test_a_thread_pool_without_carry_context.<locals>.ask"
        ]
        assert orphan.input_token_count == 100
        assert sum(r.cost_usd for r in records if r.cost_usd is not None) == usd(
            (100, "0.30"), (10, "2.50")
        )

    def test_a_request_after_the_call_returned(
        self, gemini: Any, client: Any, records: CapturedRecords
    ) -> None:
        """A task the logged call created makes its request after the call ended: a record
        of its own whose parent is that call (not lost on the call already queued)."""
        gemini.enqueue(Scenario(prompt_tokens=33, candidates_tokens=3))
        started: list[asyncio.Task[Any]] = []

        async def later() -> None:
            await asyncio.sleep(0.05)
            await client.aio.models.generate_content(model=FLASH, contents="x")

        @logged_prompt("fire_and_forget")
        async def fire() -> None:
            started.append(asyncio.create_task(later()))

        async def main() -> None:
            await fire()
            await started[0]

        asyncio.run(main())
        by_key = {r.template_key: r for r in records}
        assert by_key["fire_and_forget"].input_token_count is None
        child = by_key[
            f"{__name__}:TestNeverTwiceNeverLost.test_a_request_after_the_call_returned.<locals>.later"
        ]
        assert child.input_token_count == 33
        assert child.parent_execution_id == by_key["fire_and_forget"].execution_id

    def test_a_request_in_flight_when_the_call_returned(
        self, gemini: Any, client: Any, records: CapturedRecords
    ) -> None:
        """A thread the logged call started (its context carried) is still waiting for the
        answer when the call returns: the answer is a record of its own whose parent is that
        call, timed from when the request was sent (not added to the call already queued)."""
        import threading

        gemini.enqueue(Scenario(prompt_tokens=44, candidates_tokens=4, delay_s=0.2))
        threads: list[threading.Thread] = []

        def ask() -> None:
            client.models.generate_content(model=FLASH, contents="slow")

        @logged_prompt("left_running")
        def start() -> None:
            thread = threading.Thread(target=carry_context(ask))
            thread.start()
            threads.append(thread)
            deadline = time.monotonic() + 10
            while not gemini.requests and time.monotonic() < deadline:
                time.sleep(0.005)  # until it is sent: in flight when this call returns

        start()
        threads[0].join()
        vividly_trace.flush()
        by_key = {r.template_key: r for r in records}
        assert by_key["left_running"].input_token_count is None
        (late,) = [r for r in records if r.template_key != "left_running"]
        assert late.template_key.endswith(
            "test_a_request_in_flight_when_the_call_returned.<locals>.ask"
        )
        assert (late.input_token_count, late.output_token_count) == (44, 4)
        assert late.parent_execution_id == by_key["left_running"].execution_id
        assert late.response_time_ms >= 150  # from the send, not from the answer
        call = by_key["left_running"]
        assert late.started_at <= call.started_at + timedelta(milliseconds=call.response_time_ms)
        assert late.cost_usd == usd((44, "0.30"), (4, "2.50"))

    def test_an_unknown_input_in_one_request_leaves_the_sum_unknown(
        self, gemini: Any, client: Any, records: CapturedRecords
    ) -> None:
        """One request without a prompt count: the call's input, total and cost are unknown."""
        gemini.enqueue(
            Scenario(omit_prompt_tokens=True, candidates_tokens=40),
            Scenario(prompt_tokens=100, candidates_tokens=10),
        )

        @logged_prompt("mixed")
        def mixed() -> None:
            client.models.generate_content(model=FLASH, contents="file")
            client.models.generate_content(model=FLASH, contents="text")

        mixed()
        rec = records.only()
        assert (rec.input_token_count, rec.output_token_count, rec.total_token_count) == (
            None,
            50,
            None,
        )
        assert rec.cost_usd is None

    def test_an_alias_is_priced_at_the_model_that_answered(
        self, gemini: Any, client: Any, records: CapturedRecords
    ) -> None:
        """A requested alias without a price: priced at the model the answer names."""
        gemini.enqueue(Scenario(prompt_tokens=10, candidates_tokens=5, model_version=FLASH))

        @logged_prompt("alias")
        def alias() -> None:
            client.models.generate_content(model="gemini-flash-latest", contents="x")

        alias()
        rec = records.only()
        assert rec.cost_usd == usd((10, "0.30"), (5, "2.50"))
