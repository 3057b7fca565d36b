"""OpenTelemetrySink with content capture: the GenAI conventions' opt-in message attributes,
only when capture_content is on (real google-genai client, fake Gemini, SDK exporter)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")
pytest.importorskip("google.genai")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import vividly_trace
from tests.factories import full_record
from vividly_trace import logged_prompt
from vividly_trace.sinks import OpenTelemetrySink
from vividly_trace.sinks.otel import content_attributes
from vividly_trace.testing.fake_gemini import Scenario

FLASH = "gemini-2.5-flash"
CONTENT_KEYS = {"gen_ai.input.messages", "gen_ai.output.messages"}


@pytest.fixture(name="exporter")
def _exporter() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def one_span_attributes(
    exporter: tuple[TracerProvider, InMemorySpanExporter], gemini: Any, client: Any, **options: Any
) -> dict[str, Any]:
    provider, memory = exporter
    vividly_trace.configure(sinks=[OpenTelemetrySink(provider)], sync=True, **options)
    gemini.enqueue(Scenario(text="Bonjour", finish_reason="MAX_TOKENS"))

    @logged_prompt("translate")
    def translate(text: str) -> str:
        return str(client.models.generate_content(model=FLASH, contents=text).text)

    assert translate("Hello in French?") == "Bonjour"
    assert vividly_trace.flush(5)
    (span,) = memory.get_finished_spans()
    return dict(span.attributes or {})


class TestContentAttributes:
    def test_off_by_default(self, exporter: Any, gemini: Any, client: Any) -> None:
        """Without content capture the span has no message attributes."""
        attrs = one_span_attributes(exporter, gemini, client)
        assert not CONTENT_KEYS & set(attrs)
        assert attrs["gen_ai.usage.input_tokens"] == 10

    def test_on(self, exporter: Any, gemini: Any, client: Any) -> None:
        """With it, gen_ai.input.messages / gen_ai.output.messages in the conventions' JSON
        shape, the finish reason mapped (MAX_TOKENS -> length)."""
        attrs = one_span_attributes(exporter, gemini, client, capture_content=True)
        assert json.loads(attrs["gen_ai.input.messages"]) == [
            {"role": "user", "parts": [{"type": "text", "content": "Hello in French?"}]}
        ]
        assert json.loads(attrs["gen_ai.output.messages"]) == [
            {
                "role": "assistant",
                "parts": [{"type": "text", "content": "Bonjour"}],
                "finish_reason": "length",
            }
        ]

    def test_a_redacted_text_is_left_out(self) -> None:
        """A text the redact hook removed (None) gives no attribute; an unknown finish
        reason is kept lowercased."""
        record = full_record(prompt_text=None, response_text="ok", finish_reason="OTHER")
        assert content_attributes(record) == {
            "gen_ai.output.messages": json.dumps(
                [
                    {
                        "role": "assistant",
                        "parts": [{"type": "text", "content": "ok"}],
                        "finish_reason": "other",
                    }
                ]
            )
        }
