"""The text readers of content capture (``vividly_trace._content``): every shape the
clients accept or answer, read without raising."""

from __future__ import annotations

import warnings

import pytest

from tests.hostile_objects import Bag, EvilList, EvilStr, Hostile, RaisingResponse
from vividly_trace._content import bound_text, prompt_text, response_text, stream_text

genai_types = pytest.importorskip("google.genai.types")


class TestPrompts:
    def test_plain_shapes(self) -> None:
        """None, a str, a list of str, one Content, a Part, bytes."""
        assert prompt_text(None) is None
        assert prompt_text("hi") == "hi"
        assert prompt_text(["a", "b"]) == "a\nb"
        content = genai_types.Content(role="user", parts=[genai_types.Part(text="one")])
        assert prompt_text(content) == "one"
        assert prompt_text(genai_types.Part(text="part")) == "part"
        assert prompt_text([b"\x00\x01"]) == "[2 bytes]"

    def test_placeholders(self) -> None:
        """Non-text parts: mime type, or the kind and name; an unknown object its type."""
        parts = [
            genai_types.Part.from_uri(file_uri="gs://b/doc.pdf", mime_type="application/pdf"),
            genai_types.Part(
                function_response=genai_types.FunctionResponse(name="lookup", response={})
            ),
            {"inline_data": {"mime_type": "audio/wav", "data": "AAAA"}},
            {"fileData": {"mimeType": "video/mp4", "fileUri": "gs://b/v.mp4"}},
            {"mime_type": "image/jpeg", "data": b"x"},  # an old-client blob dict
            Bag(uri="https://f/files/1", mime_type="text/csv"),  # an uploaded File
            object(),
        ]
        assert prompt_text(parts) == (
            "[application/pdf]\n[function_response lookup]\n[audio/wav]\n[video/mp4]\n"
            "[image/jpeg]\n[text/csv]\n[object]"
        )

    def test_loose_parts_gather_between_messages(self) -> None:
        """Loose parts around Contents become user messages, as the client gathers them."""
        contents = [
            "first",
            genai_types.Content(role="model", parts=[genai_types.Part(text="reply")]),
            "second",
            "third",
        ]
        assert prompt_text(contents) == "user: first\n\nmodel: reply\n\nuser: second\nthird"

    def test_system_instruction_shapes(self) -> None:
        """A system instruction as a str, a Content or a list of parts."""
        as_content = genai_types.Content(parts=[genai_types.Part(text="rules")])
        for system in ("rules", as_content, ["rules"]):
            assert prompt_text("q", system) == "system: rules\n\nuser: q"

    def test_old_client_protos(self) -> None:
        """google-generativeai's protos: unset fields read as empty values, not None."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            glm = pytest.importorskip("google.ai.generativelanguage")
        content = glm.Content(
            role="user",
            parts=[
                glm.Part(text="look"),
                glm.Part(inline_data=glm.Blob(mime_type="image/png", data=b"x")),
            ],
        )
        assert prompt_text([content]) == "look\n[image/png]"
        answer = glm.GenerateContentResponse(
            candidates=[
                glm.Candidate(
                    content=glm.Content(
                        role="model",
                        parts=[
                            glm.Part(text="I see "),
                            glm.Part(function_call=glm.FunctionCall(name="zoom")),
                            glm.Part(text="a cat"),
                        ],
                    )
                )
            ]
        )
        assert response_text(answer) == "I see [function_call zoom]a cat"

    def test_hostile_objects(self) -> None:
        """Objects that raise on every access become placeholders; their neighbours stay."""
        assert prompt_text(["before", Hostile(), "after"]) == "before\n[Hostile]\nafter"
        assert prompt_text(EvilStr("evil")) == "evil"
        assert prompt_text([EvilStr("evil"), EvilList([1])]) == "evil\n[EvilList]"
        assert prompt_text(EvilList([1])) == "[unreadable]"  # its iteration raised
        assert prompt_text(Bag(role=EvilStr("user"), parts=[EvilStr("x")])) == "x"


class TestResponses:
    def test_candidates(self) -> None:
        """The first candidate's text parts joined as response.text joins them, thoughts
        left out; no candidates or no content: None."""
        response = genai_types.GenerateContentResponse(
            candidates=[
                genai_types.Candidate(
                    content=genai_types.Content(
                        role="model",
                        parts=[
                            genai_types.Part(text="thinking...", thought=True),
                            genai_types.Part(text="Hello, "),
                            genai_types.Part(text="world"),
                        ],
                    )
                )
            ]
        )
        assert response.text == "Hello, world"
        assert response_text(response) == "Hello, world"
        assert response_text(genai_types.GenerateContentResponse()) is None
        assert response_text(genai_types.GenerateContentResponse(candidates=[])) is None
        assert response_text({"candidates": [{"finishReason": "SAFETY"}]}) is None

    def test_rest_json_and_other_shapes(self) -> None:
        """A REST JSON dict; a usage dict, a str or a hostile response: None, no raise."""
        rest = {"candidates": [{"content": {"parts": [{"text": "a"}, {"text": "b"}]}}]}
        assert response_text(rest) == "ab"
        assert response_text({"input_tokens": 3}) is None
        assert response_text("text") is None
        assert response_text(RaisingResponse()) is None

    def test_streams(self) -> None:
        """A stream's text is its chunks' joined; chunks without text add nothing."""
        chunks = [
            {"candidates": [{"content": {"parts": [{"text": "one "}]}}]},
            {"usageMetadata": {"promptTokenCount": 3}},
            {"candidates": [{"content": {"parts": [{"text": "two"}]}}]},
        ]
        assert stream_text(chunks) == "one two"
        assert stream_text([]) is None


class TestBounds:
    @pytest.mark.parametrize(
        ("text", "limit", "expected"),
        [
            ("short", 10, "short"),
            ("exactly10!", 10, "exactly10!"),
            ("0123456789abc", 10, "0123456789...[truncated 3 chars]"),
        ],
    )
    def test_cut(self, text: str, limit: int, expected: str) -> None:
        """Cut to the limit, then the marker with the number of characters cut."""
        assert bound_text(text, limit, mask=False) == expected

    def test_masking_before_the_cut(self) -> None:
        """A key is masked before the cut: never half kept (the 17 masked characters are
        cut to 8)."""
        key = "AIza" + "x" * 35
        assert bound_text(f"k {key} tail", 8, mask=True) == "k [REDAC...[truncated 9 chars]"
        assert bound_text(f"k {key} tail", 8, mask=False).startswith("k AIzaxx")

    def test_masking_that_shortens_below_the_limit(self) -> None:
        """When masking makes the window short enough, the rest past it is what is cut."""
        key = "AIza" + "y" * 300
        text = f"{key} " + "z" * 500
        # The window (limit + 256 characters) masks to 262 characters: all kept, and the
        # 249 characters past the window are the cut.
        assert bound_text(text, 300, mask=True) == (
            "[REDACTED] " + "z" * 251 + "...[truncated 249 chars]"
        )
