"""NLU extraction service: intent and slots from a user utterance, two template versions.

Version v3 (group A) and v4 (group B) of the prompt template run side by side; each user is
assigned to one of them for good (sticky, hash-based), so the A/B report can compare them.

Run: ``python examples/nlu_extraction.py`` (offline unless GEMINI_API_KEY is set).
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from vividly_trace import logged_prompt

MODEL = "gemini-2.5-flash"

PROMPT_V3 = "Extract the intent and slots of this utterance as JSON: {text}"
PROMPT_V4 = (
    "You are an NLU engine. Return JSON with keys intent (string) and slots (object) "
    "for the utterance below. Utterance: {text}"
)


class NLUExtractionService:
    """Calls Gemini to turn an utterance into ``{"intent": ..., "slots": {...}}``."""

    def __init__(self, client: Any, model: str = MODEL) -> None:
        self.client = client
        self.model = model

    @logged_prompt("nlu_extraction", version="v3", ab_group="A")
    def extract_v3(self, text: str) -> Any:
        """The current template."""
        return self.client.models.generate_content(
            model=self.model, contents=PROMPT_V3.format(text=text)
        )

    @logged_prompt("nlu_extraction", version="v4", ab_group="B")
    def extract_v4(self, text: str) -> Any:
        """The challenger template."""
        return self.client.models.generate_content(
            model=self.model, contents=PROMPT_V4.format(text=text)
        )

    def extract(self, text: str, user_id: str) -> dict[str, Any]:
        """Route the user to their template version and parse the answer."""
        variant = "B" if zlib.crc32(user_id.encode()) % 2 else "A"
        response = self.extract_v4(text) if variant == "B" else self.extract_v3(text)
        try:
            parsed = json.loads(response.text or "{}")
        except ValueError:
            parsed = {"intent": "unknown", "raw": response.text}
        return parsed if isinstance(parsed, dict) else {"intent": "unknown", "raw": parsed}


def main() -> None:
    """Run a few extractions and print what was logged."""
    from vividly_trace.examples._runtime import gemini_client

    import vividly_trace
    from vividly_trace.sinks import MemorySink

    sink = MemorySink()
    vividly_trace.configure(sinks=[sink], spool_dir=False)
    with gemini_client() as client:
        service = NLUExtractionService(client)
        for i, text in enumerate(["book a table for two", "play some jazz", "weather in Oslo"]):
            print(service.extract(text, user_id=f"user-{i}"))
    vividly_trace.flush()
    for rec in sink.records:
        print(
            rec.template_key,
            rec.template_version,
            rec.ab_test_group,
            f"{rec.response_time_ms:.1f} ms",
            rec.total_token_count,
            "tokens",
            f"${rec.cost_usd}",
        )


if __name__ == "__main__":
    main()
