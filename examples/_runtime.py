"""Shared set-up of the examples: a Gemini client, real or against the local fake server.

With ``GEMINI_API_KEY`` set, the examples call the real Gemini API. Without it they start the
fake Gemini server of :mod:`vividly_trace.testing.fake_gemini` on 127.0.0.1, so they run
offline and with no key, through the very same ``google-genai`` client code.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["gemini_client"]


@contextmanager
def gemini_client(
    base_url: str | None = None, *, offline_answer: str | None = None
) -> Iterator[Any]:
    """Yield a ``google.genai.Client``: real with ``GEMINI_API_KEY``, else a local fake.

    Args:
        base_url: talk to this Gemini-compatible endpoint instead (no key needed).
        offline_answer: what the local fake server answers to every request (default "ok").
    """
    from google import genai
    from google.genai import types

    key = os.environ.get("GEMINI_API_KEY")
    if key and base_url is None:
        yield genai.Client(api_key=key)
        return
    if base_url is not None:
        yield genai.Client(
            api_key="offline-demo",
            http_options=types.HttpOptions(base_url=base_url, api_version="v1beta"),
        )
        return
    from vividly_trace.testing.fake_gemini import FakeGeminiServer, Scenario

    with FakeGeminiServer() as fake:
        if offline_answer is not None:
            fake.set_default(Scenario(text=offline_answer, prompt_tokens=60, candidates_tokens=24))
        yield fake.genai_client()
