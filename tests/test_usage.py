"""Usage extraction from dicts and the extractor registry."""

from __future__ import annotations

from typing import Any

import pytest

import vividly_trace
from vividly_trace import ResponseInfo, Usage, register_extractor
from vividly_trace.testing import capture_records
from vividly_trace.usage import extract, unregister_extractor


class TestDicts:
    """Plain dict shapes."""

    def test_flat(self) -> None:
        """input/output dict: total = input + output."""
        u = extract({"input_tokens": 10, "output_tokens": 20}).usage
        assert (u.input_tokens, u.output_tokens, u.total_tokens) == (10, 20, 30)

    def test_thinking_added_to_output(self) -> None:
        """thinking_tokens are added to the output (Gemini semantics)."""
        u = extract({"input_tokens": 10, "output_tokens": 20, "thinking_tokens": 5}).usage
        assert (u.output_tokens, u.thinking_tokens, u.total_tokens) == (25, 5, 35)

    def test_openai_style(self) -> None:
        """prompt/completion tokens are understood."""
        u = extract({"usage": {"prompt_tokens": 3, "completion_tokens": 4}}).usage
        assert u.total_tokens == 7

    def test_gemini_rest_body(self) -> None:
        """A raw REST body with usageMetadata and modelVersion."""
        info = extract(
            {
                "candidates": [{"finishReason": "STOP"}],
                "usageMetadata": {
                    "promptTokenCount": 10,
                    "candidatesTokenCount": 13,
                    "totalTokenCount": 35,
                    "thoughtsTokenCount": 12,
                    "cachedContentTokenCount": 4,
                },
                "modelVersion": "gemini-2.5-flash",
            }
        )
        assert info.response_model == "gemini-2.5-flash"
        assert info.finish_reason == "STOP"
        assert (info.usage.input_tokens, info.usage.output_tokens) == (10, 25)
        assert info.usage.cached_tokens == 4

    def test_gemini_rest_body_audio_details(self) -> None:
        """The REST body's AUDIO entries of promptTokensDetails and cacheTokensDetails are
        the audio input and the cached audio."""
        info = extract(
            {
                "candidates": [{"finishReason": "STOP"}],
                "usageMetadata": {
                    "promptTokenCount": 1000,
                    "candidatesTokenCount": 10,
                    "cachedContentTokenCount": 600,
                    "promptTokensDetails": [
                        {"modality": "TEXT", "tokenCount": 700},
                        {"modality": "AUDIO", "tokenCount": 300},
                    ],
                    "cacheTokensDetails": [
                        {"modality": "TEXT", "tokenCount": 400},
                        {"modality": "AUDIO", "tokenCount": 200},
                    ],
                },
            }
        )
        u = info.usage
        assert (u.cached_tokens, u.audio_input_tokens, u.cached_audio_tokens) == (600, 300, 200)

    @pytest.mark.parametrize(
        "response", [None, {}, {"foo": 1}, "text", 42, object(), {"input_tokens": "many"}]
    )
    def test_no_usage(self, response: Any) -> None:
        """Anything without usage gives empty counts, never an error."""
        assert extract(response).usage.is_empty


class TestRegistry:
    """Other providers plug in."""

    def test_register(self) -> None:
        """A registered extractor is tried first and shapes the record."""

        class OtherResponse:
            tokens_in = 7
            tokens_out = 3

        def other(resp: Any) -> ResponseInfo | None:
            if not isinstance(resp, OtherResponse):
                return None
            return ResponseInfo(
                usage=Usage(
                    input_tokens=resp.tokens_in, output_tokens=resp.tokens_out, total_tokens=10
                ),
                provider="other",
            )

        register_extractor(other)
        try:
            with capture_records() as records:
                vividly_trace.logged_prompt("k")(OtherResponse)()
            rec = records.only()
            assert (rec.provider, rec.input_token_count, rec.total_token_count) == ("other", 7, 10)
        finally:
            unregister_extractor(other)

    def test_failing_extractor_is_skipped(self) -> None:
        """An extractor that raises is skipped."""

        def broken(resp: Any) -> ResponseInfo | None:
            raise RuntimeError("bad")

        register_extractor(broken)
        try:
            assert extract({"input_tokens": 1, "output_tokens": 1}).usage.total_tokens == 2
        finally:
            unregister_extractor(broken)

    def test_register_requires_callable(self) -> None:
        """A non-callable is refused."""
        with pytest.raises(TypeError):
            register_extractor(42)  # type: ignore[arg-type]


class TestGeminiTexts:
    """The texts the Gemini extractor reads come out as valid, plain ``str``."""

    def test_lone_surrogates_and_str_subclasses_are_made_valid(self) -> None:
        """A model name with a lone surrogate, a finish reason given as a ``str`` subclass
        and a block reason whose enum-like ``_name_`` is not ASCII: each is plain, valid
        text (a sink would refuse the whole batch over one lone surrogate)."""
        from types import SimpleNamespace

        class Text(str):
            pass

        response = SimpleNamespace(
            model_version="gemini-\ud800flash",
            candidates=[SimpleNamespace(finish_reason=Text("STOP"), grounding_metadata=None)],
            prompt_feedback=SimpleNamespace(block_reason=SimpleNamespace(_name_="BLOCK\udfffÉ")),
            usage_metadata=SimpleNamespace(prompt_token_count=3, candidates_token_count=2),
        )
        info = extract(response)
        texts = (info.response_model, info.finish_reason, info.block_reason)
        assert [type(t) for t in texts] == [str, str, str]
        for text in texts:
            text.encode("utf-8")  # raises on a lone surrogate
        assert info.finish_reason == "STOP"
        assert "\ud800" not in info.response_model and info.response_model.startswith("gemini-")
        assert info.block_reason.startswith("BLOCK") and info.block_reason.endswith("É")
        assert (info.usage.input_tokens, info.usage.output_tokens) == (3, 2)

    def test_an_empty_model_name_is_none(self) -> None:
        """An empty ``model_version`` is no model name."""
        from types import SimpleNamespace

        response = SimpleNamespace(
            model_version="",
            candidates=[],
            usage_metadata=SimpleNamespace(prompt_token_count=1, candidates_token_count=1),
        )
        assert extract(response).response_model is None
