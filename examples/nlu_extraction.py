"""NLU extraction service: intent and slots from a user utterance, two template versions.

Version v3 (group A) and v4 (group B) of the prompt template run side by side. Each user is
assigned to one of them for good with :func:`vividly_trace.analytics.choose_variant`
(sticky and hash-based: no state, the same user always gets the same version), so the A/B
report can compare them. An answer that is not the JSON asked for raises
:class:`NLUParseError` inside the logged call, so it counts as a failure of that version
(and its tokens still count in its cost).

Run: ``python examples/nlu_extraction.py`` (offline unless GEMINI_API_KEY is set).
"""

from __future__ import annotations

import json
from typing import Any

from vividly_trace import logged_prompt
from vividly_trace.analytics import choose_variant

MODEL = "gemini-2.5-flash"
AB_WEIGHTS = {"A": 0.5, "B": 0.5}
"""Share of users on v3 (A) and v4 (B)."""

PROMPT_V3 = "Extract the intent and slots of this utterance as JSON: {text}"
PROMPT_V4 = (
    "You are an NLU engine. Return only a JSON object with keys intent (string) and slots "
    "(object) for the utterance below, no prose, no code fences. Utterance: {text}"
)


class NLUParseError(ValueError):
    """The model's answer is not a JSON object with an ``intent``."""


def parse_nlu(text: str | None) -> dict[str, Any]:
    """Parse the model's answer; raise :class:`NLUParseError` when it is not usable."""
    try:
        parsed = json.loads(text or "")
    except ValueError as exc:
        raise NLUParseError(f"model answer is not valid JSON: {exc}") from None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("intent"), str):
        raise NLUParseError("model answer has no 'intent' string")
    return parsed


class NLUExtractionService:
    """Calls Gemini to turn an utterance into ``{"intent": ..., "slots": {...}}``."""

    def __init__(self, client: Any, model: str = MODEL) -> None:
        self.client = client
        self.model = model

    def _ask(self, prompt: str) -> dict[str, Any]:
        response = self.client.models.generate_content(model=self.model, contents=prompt)
        return parse_nlu(response.text)  # the parsed dict: client capture saw the response

    @logged_prompt("nlu_extraction", version="v3", ab_group="A")
    def extract_v3(self, text: str) -> dict[str, Any]:
        """The current template."""
        return self._ask(PROMPT_V3.format(text=text))

    @logged_prompt("nlu_extraction", version="v4", ab_group="B")
    def extract_v4(self, text: str) -> dict[str, Any]:
        """The challenger template."""
        return self._ask(PROMPT_V4.format(text=text))

    @staticmethod
    def variant_for(user_id: str) -> str:
        """The user's A/B group, the same on every call."""
        return choose_variant("nlu_extraction", user_id, AB_WEIGHTS)

    def extract(self, text: str, user_id: str) -> dict[str, Any]:
        """Route the user to their template version and return the parsed answer.

        Raises:
            NLUParseError: the model's answer was not the JSON asked for.
        """
        if self.variant_for(user_id) == "B":
            return self.extract_v4(text)
        return self.extract_v3(text)


def main() -> None:
    """Run a few extractions and print what was logged."""
    from vividly_trace.examples._runtime import gemini_client

    import vividly_trace
    from vividly_trace.sinks import MemorySink

    sink = MemorySink()
    vividly_trace.configure(sinks=[sink], spool_dir=False)
    answer = '{"intent": "book_table", "slots": {"party_size": 2}}'
    with gemini_client(offline_answer=answer) as client:
        service = NLUExtractionService(client)
        for i, text in enumerate(["book a table for two", "play some jazz", "weather in Oslo"]):
            user = f"user-{i}"
            try:
                print(service.variant_for(user), service.extract(text, user_id=user))
            except NLUParseError as exc:
                print("failed:", exc)
    vividly_trace.flush()
    for rec in sink.records:
        print(
            rec.template_key,
            rec.template_version,
            rec.ab_test_group,
            "ok" if rec.success else f"failed ({rec.error_type})",
            f"{rec.response_time_ms:.1f} ms",
            rec.total_token_count,
            "tokens",
            f"${rec.cost_usd}",
        )


if __name__ == "__main__":
    main()
