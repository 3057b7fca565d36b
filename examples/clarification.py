"""Clarification service: asks the user a follow-up question, with ``async with``.

Shows the context-manager form around an ad-hoc async call, per-call metadata, and the
execution id known on entry (handy to correlate with your own logs).

Run: ``python examples/clarification.py`` (offline unless GEMINI_API_KEY is set).
"""

from __future__ import annotations

import asyncio
from typing import Any

from vividly_trace import logged_prompt

MODEL = "gemini-2.5-flash"


class ClarificationService:
    """Generates one clarifying question for an ambiguous request."""

    def __init__(self, client: Any, model: str = MODEL) -> None:
        self.client = client
        self.model = model

    async def clarify(self, request: str, user_tier: str = "free") -> str:
        """Ask Gemini for a clarifying question; log it as template ``clarification``."""
        async with logged_prompt("clarification", version="v1", model=self.model) as call:
            call.metadata["user_tier"] = user_tier
            call.metadata["request_chars"] = len(request)
            response = await self.client.aio.models.generate_content(
                model=self.model,
                contents=f"Ask one short question to clarify this request: {request}",
            )
        return str(response.text or "")


async def _demo() -> None:
    from vividly_trace.examples._runtime import gemini_client

    import vividly_trace
    from vividly_trace.sinks import MemorySink

    sink = MemorySink()
    vividly_trace.configure(sinks=[sink], spool_dir=False)
    with gemini_client() as client:
        service = ClarificationService(client)
        answers = await asyncio.gather(
            service.clarify("book something for Friday", user_tier="pro"),
            service.clarify("play that song"),
        )
    print(answers)
    vividly_trace.flush()
    for rec in sink.records:
        print(rec.template_key, rec.metadata, f"${rec.cost_usd}")


def main() -> None:
    """Run two clarifications concurrently and print what was logged."""
    asyncio.run(_demo())


if __name__ == "__main__":
    main()
