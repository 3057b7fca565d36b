"""Script generation service: a streamed answer through a decorated generator.

The record ends when the stream is exhausted (or closed early, or fails); its usage comes
from the last chunk that carries usage, and the time to the first chunk is recorded.

Run: ``python examples/script_generation.py`` (offline unless GEMINI_API_KEY is set).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from vividly_trace import logged_prompt

MODEL = "gemini-2.5-pro"


class ScriptGenerationService:
    """Streams a short video script for a topic."""

    def __init__(self, client: Any, model: str = MODEL) -> None:
        self.client = client
        self.model = model

    @logged_prompt("script_generation", version="v2", metadata={"service": "scripts"})
    def stream_script(self, topic: str) -> Iterator[str]:
        """Yield the script text chunk by chunk."""
        for chunk in self.client.models.generate_content_stream(
            model=self.model, contents=f"Write a 30-second video script about {topic}."
        ):
            yield chunk.text or ""  # text, not chunks: client capture saw the chunks

    def script(self, topic: str) -> str:
        """The whole script."""
        return "".join(self.stream_script(topic))


def main() -> None:
    """Generate two scripts and print what was logged."""
    from vividly_trace.examples._runtime import gemini_client

    import vividly_trace
    from vividly_trace.sinks import MemorySink

    sink = MemorySink()
    vividly_trace.configure(sinks=[sink], spool_dir=False)
    with gemini_client() as client:
        service = ScriptGenerationService(client)
        for topic in ("tide pools", "sourdough"):
            print(service.script(topic)[:60], "...")
    vividly_trace.flush()
    for rec in sink.records:
        print(
            rec.template_key,
            "streamed" if rec.streamed else "",
            f"first chunk {rec.time_to_first_chunk_ms:.1f} ms",
            f"total {rec.response_time_ms:.1f} ms",
            f"${rec.cost_usd}",
        )


if __name__ == "__main__":
    main()
