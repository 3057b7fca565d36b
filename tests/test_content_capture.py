"""Content capture (``configure(capture_content=True)``): prompt and response text on the
record, off by default, truncated, masked, redactable; with the real google-genai client
against the fake Gemini."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import pytest

import vividly_trace
from vividly_trace import ConfigurationError, PromptExecution, logged_prompt
from vividly_trace.testing import capture_records
from vividly_trace.testing.fake_gemini import Scenario

genai = pytest.importorskip("google.genai")
from google.genai import errors as genai_errors  # noqa: E402
from google.genai import types as genai_types  # noqa: E402

FLASH = "gemini-2.5-flash"
KEY = "AIzaSyD4-fake-key-0123456789abcdefghij"  # shaped like a Google API key


@pytest.fixture(name="content")
def _content() -> Iterator[list[PromptExecution]]:
    """Records captured with content capture on."""
    with capture_records(capture_content=True) as records:
        yield records


def ask(client: Any, contents: Any, **config: Any) -> str:
    """One logged generate_content call returning the answer's text (a parsed result)."""

    @logged_prompt("ask")
    def run() -> str:
        kwargs: dict[str, Any] = {"model": FLASH, "contents": contents}
        if config:
            kwargs["config"] = genai_types.GenerateContentConfig(**config)
        return str(client.models.generate_content(**kwargs).text)

    return run()


class TestOffByDefault:
    def test_no_text_anywhere(self, gemini: Any, client: Any) -> None:
        """Without capture_content, neither text reaches the record (nor its JSON), for a
        call and for a stream."""
        gemini.enqueue(
            Scenario(text="the-answer-1", prompt_tokens=5, candidates_tokens=2),
            Scenario(text="the-answer-2", prompt_tokens=5, candidates_tokens=2),
        )

        @logged_prompt("streamed")
        def streamed() -> Iterator[str]:
            for chunk in client.models.generate_content_stream(model=FLASH, contents="q-two"):
                yield chunk.text or ""

        with capture_records() as records:
            assert ask(client, "the-question-1") == "the-answer-1"
            assert "".join(streamed()) == "the-answer-2"
        assert len(records) == 2
        for record in records:
            assert (record.prompt_text, record.response_text) == (None, None)
            text = json.dumps(record.to_dict())
            assert "the-question" not in text and "q-two" not in text
            assert "the-answer" not in text

    def test_the_environment_turns_it_on(
        self, gemini: Any, client: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """VIVIDLY_TRACE_CAPTURE_CONTENT=true turns it on; an explicit False still wins."""
        monkeypatch.setenv("VIVIDLY_TRACE_CAPTURE_CONTENT", "true")
        monkeypatch.setenv("VIVIDLY_TRACE_CONTENT_MAX_CHARS", "4")
        gemini.enqueue(Scenario(text="answer"), Scenario(text="answer"))
        with capture_records() as records:
            ask(client, "question")
        assert (records.only().prompt_text, records.only().response_text) == (
            "ques...[truncated 4 chars]",
            "answ...[truncated 2 chars]",
        )
        with capture_records(capture_content=False) as records:
            ask(client, "question")
        assert records.only().prompt_text is None


class TestTexts:
    def test_generate_content(self, gemini: Any, client: Any, content: Any) -> None:
        """A str prompt and the answer's text, exactly."""
        gemini.enqueue(Scenario(text='{"intent": "book"}', prompt_tokens=12, candidates_tokens=6))
        assert ask(client, "Book a table for two") == '{"intent": "book"}'
        rec = content.only()
        assert rec.prompt_text == "Book a table for two"
        assert rec.response_text == '{"intent": "book"}'
        assert (rec.input_token_count, rec.output_token_count) == (12, 6)

    def test_system_instruction_and_parts(self, gemini: Any, client: Any, content: Any) -> None:
        """A system instruction comes first as a ``system:`` block; a list of str and an
        image part is one user message, the image a placeholder (never its bytes)."""
        gemini.enqueue(Scenario(text="a cat"))
        image = genai_types.Part.from_bytes(data=b"\x89PNG-fake", mime_type="image/png")
        ask(client, ["What is this?", image, "One word."], system_instruction="Be brief.")
        assert content.only().prompt_text == (
            "system: Be brief.\n\nuser: What is this?\n[image/png]\nOne word."
        )

    def test_dict_contents(self, gemini: Any, client: Any, content: Any) -> None:
        """Contents given as dicts (role and parts) read the same."""
        gemini.enqueue(Scenario(text="fine"))
        ask(
            client,
            [
                {"role": "user", "parts": [{"text": "hello"}]},
                {"role": "model", "parts": [{"text": "hi"}]},
                {"role": "user", "parts": [{"text": "how are you?"}]},
            ],
        )
        assert content.only().prompt_text == "user: hello\n\nmodel: hi\n\nuser: how are you?"

    def test_a_stream(self, gemini: Any, client: Any, content: Any) -> None:
        """A stream's response text is its chunks' text joined (here three chunks)."""
        gemini.enqueue(Scenario(text="one two three four", stream_chunks=3))

        @logged_prompt("clarify")
        def clarify() -> Iterator[str]:
            for chunk in client.models.generate_content_stream(model=FLASH, contents="Which?"):
                yield chunk.text or ""

        pieces = list(clarify())
        assert len(pieces) == 3 and "".join(pieces) == "one two three four"
        rec = content.only()
        assert (rec.prompt_text, rec.response_text, rec.streamed) == (
            "Which?",
            "one two three four",
            True,
        )

    def test_a_chat_turn(self, gemini: Any, client: Any, content: Any) -> None:
        """Each chat turn's prompt is the contents as sent: the history and the new
        message; its response the turn's answer."""
        gemini.enqueue(Scenario(text="Paris"), Scenario(text="About 2 million"))

        @logged_prompt("turn")
        def turn(chat: Any, message: str) -> str:
            return str(chat.send_message(message).text)

        chat = client.chats.create(model=FLASH)
        assert turn(chat, "Capital of France?") == "Paris"
        assert turn(chat, "Population?") == "About 2 million"
        first, second = content
        assert (first.prompt_text, first.response_text) == ("Capital of France?", "Paris")
        assert second.prompt_text == (
            "user: Capital of France?\n\nmodel: Paris\n\nuser: Population?"
        )
        assert second.response_text == "About 2 million"

    def test_async_call_and_stream(self, gemini: Any, client: Any, content: Any) -> None:
        """client.aio: the same texts for a call and a stream."""
        gemini.enqueue(Scenario(text="async answer"), Scenario(text="streamed answer"))

        @logged_prompt("aio")
        async def one() -> str:
            return str((await client.aio.models.generate_content(model=FLASH, contents="A?")).text)

        @logged_prompt("aio_stream")
        async def two() -> str:
            stream = await client.aio.models.generate_content_stream(model=FLASH, contents="B?")
            return "".join([chunk.text or "" async for chunk in stream])

        async def both() -> list[str]:
            return [await one(), await two()]

        assert asyncio.run(both()) == ["async answer", "streamed answer"]
        assert [(r.prompt_text, r.response_text) for r in content] == [
            ("A?", "async answer"),
            ("B?", "streamed answer"),
        ]

    def test_automatic_function_calling(self, gemini: Any, client: Any, content: Any) -> None:
        """Several requests in one call: the first request's prompt (the question asked)
        and the last request's response (the final answer)."""
        gemini.enqueue(
            Scenario(function_call=("get_weather", {"city": "Paris"})),
            Scenario(text="Sunny in Paris"),
        )

        def get_weather(city: str) -> str:
            """The weather in a city."""
            return "sunny"

        assert ask(client, "Weather in Paris?", tools=[get_weather]) == "Sunny in Paris"
        rec = content.only()
        assert len(rec.requests) == 2
        assert (rec.prompt_text, rec.response_text) == ("Weather in Paris?", "Sunny in Paris")

    def test_a_function_call_answer(self, gemini: Any, client: Any, content: Any) -> None:
        """An answer that is a function call (not run automatically) reads as a
        placeholder, and reading it raises nothing."""
        gemini.enqueue(Scenario(function_call=("lookup", {"id": 7})))

        @logged_prompt("tools")
        def tools() -> Any:
            return client.models.generate_content(model=FLASH, contents="Look up 7")

        tools()
        assert content.only().response_text == "[function_call lookup]"

    def test_a_blocked_prompt_and_a_failed_request(
        self, gemini: Any, client: Any, content: Any
    ) -> None:
        """A blocked prompt and an HTTP error keep the prompt; there is no response text."""
        gemini.enqueue(
            Scenario(block_reason="SAFETY", prompt_tokens=7, candidates_tokens=0),
            Scenario(error_status=500),
        )

        @logged_prompt("guarded")
        def guarded(text: str) -> Any:
            return client.models.generate_content(model=FLASH, contents=text)

        guarded("something unsafe")
        with pytest.raises(genai_errors.ServerError):
            guarded("a server error")
        blocked, failed = content
        assert (blocked.success, blocked.prompt_text, blocked.response_text) == (
            False,
            "something unsafe",
            None,
        )
        assert (failed.success, failed.prompt_text, failed.response_text) == (
            False,
            "a server error",
            None,
        )

    def test_a_history_changed_after_the_call(self, gemini: Any, client: Any, content: Any) -> None:
        """A history list the caller appends to after the request still reads as sent."""
        gemini.enqueue(Scenario(text="hi"))
        history: list[Any] = [{"role": "user", "parts": [{"text": "hello"}]}]

        @logged_prompt("manual_chat")
        def manual_chat() -> None:
            response = client.models.generate_content(model=FLASH, contents=history)
            history.append(response.candidates[0].content)
            history.append({"role": "user", "parts": [{"text": "later"}]})

        manual_chat()
        assert len(history) == 3
        assert content.only().prompt_text == "hello"

    def test_a_raw_response_without_client_capture(self, gemini: Any, client: Any) -> None:
        """With client capture off, a function returning the raw response still gets its
        response text (the prompt is unknown then)."""
        gemini.enqueue(Scenario(text="raw answer"))

        @logged_prompt("raw")
        def raw() -> Any:
            return client.models.generate_content(model=FLASH, contents="Q")

        with capture_records(capture_content=True, capture_clients=False) as records:
            raw()
        rec = records.only()
        assert (rec.prompt_text, rec.response_text) == (None, "raw answer")
        assert (rec.input_token_count, rec.output_token_count) == (10, 5)


class TestMaskingAndTruncation:
    def test_secrets_in_a_prompt_are_masked(self, gemini: Any, client: Any, content: Any) -> None:
        """An API key, a bearer token and a URL password in a prompt (and a key echoed in
        the answer) are masked by the metadata's masker."""
        gemini.enqueue(Scenario(text=f"your key is {KEY}"))
        ask(
            client,
            f"key={KEY}; Authorization: Bearer abc.def-123; db postgresql://app:s3cret@db/x",
        )
        rec = content.only()
        assert rec.prompt_text == (
            "key=[REDACTED]; Authorization: [REDACTED]; db postgresql://app:***@db/x"
        )
        assert rec.response_text == "your key is [REDACTED]"

    def test_mask_secrets_off_keeps_them(self, gemini: Any, client: Any) -> None:
        """configure(mask_secrets=False) applies to content too."""
        gemini.enqueue(Scenario(text="ok"))
        with capture_records(capture_content=True, mask_secrets=False) as records:
            ask(client, f"my key {KEY}")
        assert records.only().prompt_text == f"my key {KEY}"

    def test_truncation_marker(self, gemini: Any, client: Any) -> None:
        """Each text is cut to content_max_chars and ends with the visible marker."""
        gemini.enqueue(Scenario(text="0123456789" * 3))
        with capture_records(capture_content=True, content_max_chars=12) as records:
            ask(client, "abcdefghijklmnopqrstuvwxyz")
        rec = records.only()
        assert rec.prompt_text == "abcdefghijkl...[truncated 14 chars]"
        assert rec.response_text == "012345678901...[truncated 18 chars]"

    def test_a_key_across_the_cut_is_masked_whole(self, gemini: Any, client: Any) -> None:
        """A key the cut would halve is masked, not half kept."""
        gemini.enqueue(Scenario(text="ok"))
        with capture_records(capture_content=True, content_max_chars=20) as records:
            ask(client, f"the key is {KEY} and more text after it")
        masked = "the key is [REDACTED] and more text after it"  # 44 characters
        assert records.only().prompt_text == masked[:20] + "...[truncated 24 chars]"
        assert masked[:20] == "the key is [REDACTED"


class TestRedactHook:
    def test_the_hook_sees_and_blanks_the_texts(self, gemini: Any, client: Any) -> None:
        """redact sees the full record, texts included, and can blank them."""
        gemini.enqueue(Scenario(text="private answer"))
        seen: list[tuple[str | None, str | None]] = []

        def redact(record: PromptExecution) -> PromptExecution:
            seen.append((record.prompt_text, record.response_text))
            return dataclasses.replace(record, prompt_text=None, response_text="")

        with capture_records(capture_content=True, redact=redact) as records:
            ask(client, "private question")
        assert seen == [("private question", "private answer")]
        rec = records.only()
        assert (rec.prompt_text, rec.response_text) == (None, "")
        assert rec.input_token_count == 10  # the rest of the record stays


class TestConfiguration:
    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"capture_content": "yes"}, "capture_content must be a bool"),
            ({"capture_content": 1}, "capture_content must be a bool"),
            ({"content_max_chars": 0}, "content_max_chars must be an int"),
            ({"content_max_chars": 10_000_001}, "content_max_chars must be an int"),
            ({"content_max_chars": 1.5}, "content_max_chars must be an int"),
            ({"content_max_chars": True}, "content_max_chars must be an int"),
        ],
    )
    def test_bad_arguments(self, kwargs: dict[str, Any], message: str) -> None:
        """Bad values fail at configure time with a clear error."""
        with pytest.raises(ConfigurationError, match=message):
            vividly_trace.configure(sinks=[], **kwargs)

    @pytest.mark.parametrize(
        ("name", "value", "message"),
        [
            ("VIVIDLY_TRACE_CAPTURE_CONTENT", "maybe", "VIVIDLY_TRACE_CAPTURE_CONTENT must be"),
            ("VIVIDLY_TRACE_CONTENT_MAX_CHARS", "lots", "VIVIDLY_TRACE_CONTENT_MAX_CHARS must"),
            ("VIVIDLY_TRACE_CONTENT_MAX_CHARS", "0", "VIVIDLY_TRACE_CONTENT_MAX_CHARS must"),
        ],
    )
    def test_bad_environment(
        self, monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
    ) -> None:
        """A malformed variable is a configuration error naming it."""
        monkeypatch.setenv(name, value)
        with pytest.raises(ConfigurationError, match=message):
            vividly_trace.configure(sinks=[])

    def test_the_pipeline_settings(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Off by default; on with its default bound; an argument wins over a variable."""
        from vividly_trace._config import configured_pipeline

        off = configured_pipeline(sinks=[])
        assert (off.capture_content, off.content_max_chars) == (False, None)
        on = configured_pipeline(sinks=[], capture_content=True)
        assert (on.capture_content, on.content_max_chars) == (True, 8192)
        monkeypatch.setenv("VIVIDLY_TRACE_CONTENT_MAX_CHARS", "100")
        assert configured_pipeline(sinks=[], capture_content=True).content_max_chars == 100
        given = configured_pipeline(sinks=[], capture_content=True, content_max_chars=7)
        assert given.content_max_chars == 7
        for pipeline in (off, on, given):
            pipeline.shutdown(1.0)


class TestInteractions:
    @pytest.fixture(name="ic")
    def _ic(self, gemini: Any) -> Any:
        from vividly_trace.testing._fake_interactions import interactions, interactions_client

        interactions(gemini).polls_until_done = 2
        return interactions_client(gemini)

    def test_create_and_stream(self, gemini: Any, ic: Any, content: Any) -> None:
        """client.interactions: the input (and system instruction) and output_text; a
        stream's text deltas joined."""
        gemini.enqueue(Scenario(text="Bonjour"), Scenario(text="one two three"))

        @logged_prompt("translate")
        def translate() -> str:
            it = ic.interactions.create(
                model=FLASH, input="Hello in French?", system_instruction="One word."
            )
            return str(it.output_text)

        @logged_prompt("write")
        def write() -> Iterator[str]:
            for event in ic.interactions.create(model=FLASH, input="Count to 3", stream=True):
                if event.event_type == "step.delta":
                    yield event.delta.text

        assert translate() == "Bonjour"
        assert "".join(write()) == "one two three"
        one, two = content
        assert (one.prompt_text, one.response_text) == (
            "system: One word.\n\nuser: Hello in French?",
            "Bonjour",
        )
        assert (two.prompt_text, two.response_text) == ("Count to 3", "one two three")

    def test_background_polled_in_the_call(self, gemini: Any, ic: Any, content: Any) -> None:
        """A background interaction polled inside the call: the prompt of the create, the
        text of the last poll (the polls' ids are no prompt)."""
        gemini.enqueue(Scenario(text="the report"))

        @logged_prompt("research")
        def research() -> str:
            it = ic.interactions.create(model=FLASH, input="Research rain", background=True)
            while it.status == "in_progress":
                it = ic.interactions.get(it.id)
            return str(it.output_text)

        assert research() == "the report"
        rec = content.only()
        assert (rec.prompt_text, rec.response_text) == ("Research rain", "the report")


class TestGenerativeAI:
    def test_the_older_client(self, gemini: Any, content: Any) -> None:
        """google-generativeai: its positional contents and its proto answer."""
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            old = pytest.importorskip("google.generativeai")
        gemini.configure_generativeai()
        gemini.enqueue(Scenario(text="old answer"))
        model = old.GenerativeModel(FLASH)

        @logged_prompt("old_client")
        def call() -> str:
            return str(model.generate_content(["old", "question"]).text)

        assert call() == "old answer"
        rec = content.only()
        assert (rec.prompt_text, rec.response_text) == ("old\nquestion", "old answer")
