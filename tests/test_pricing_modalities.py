"""Modalities and non-token charges, through real google-genai calls against the fake Gemini.

Expected costs by hand from the Gemini pricing page (USD per 1M tokens unless said):
gemini-2.5-flash-image: input 0.30, text output 2.50, image output 30 (1,290 tokens = one
1024px image, $0.039); Grounding with Google Search: $35 per 1,000 grounded prompts on the
2.5 models, $14 per 1,000 search queries on the Gemini 3 family (list prices: the free
allowances are per account and per day / month, so a record carries the list price).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from vividly_trace import logged_prompt
from vividly_trace.testing import CapturedRecords
from vividly_trace.testing.fake_gemini import Scenario

pytest.importorskip("google.genai")

M = Decimal(1_000_000)


def usd(*parts: tuple[int, str]) -> Decimal:
    return sum((n * Decimal(price) for n, price in parts), Decimal(0)) / M


def _ask(client: Any, model: str, *, stream: bool = False) -> Any:
    @logged_prompt("modalities")
    def ask() -> Any:
        if stream:
            return "".join(
                c.text or ""
                for c in client.models.generate_content_stream(model=model, contents="q")
            )
        return client.models.generate_content(model=model, contents="q")

    return ask()


def test_image_output(gemini: Any, client: Any, records: CapturedRecords) -> None:
    """Image output tokens (candidatesTokensDetails IMAGE) at the image rate, the text rest
    at the output rate."""
    gemini.enqueue(Scenario(prompt_tokens=100, candidates_tokens=1_300, image_output_tokens=1_290))
    _ask(client, "gemini-2.5-flash-image")
    rec = records.only()
    assert rec.cost_usd == usd((100, "0.30"), (10, "2.50"), (1_290, "30"))
    assert rec.cost_usd == Decimal("0.038755")
    assert rec.requests[0].cost_usd == rec.cost_usd


def test_grounded_2_5_per_prompt(gemini: Any, client: Any, records: CapturedRecords) -> None:
    """2.5 Flash: one grounded prompt ($35 / 1,000) whatever the number of queries; an
    answer without searches pays no fee."""
    gemini.enqueue(
        Scenario(prompt_tokens=1_000, candidates_tokens=200, search_queries=("a", "b", "c"))
    )
    gemini.enqueue(Scenario(prompt_tokens=1_000, candidates_tokens=200, search_queries=()))
    _ask(client, "gemini-2.5-flash")
    _ask(client, "gemini-2.5-flash")
    grounded, plain = records
    tokens = usd((1_000, "0.30"), (200, "2.50"))
    assert grounded.cost_usd == tokens + Decimal(35) / 1_000
    assert plain.cost_usd == tokens


@pytest.mark.parametrize("stream", [False, True])
def test_grounded_3_per_query(
    stream: bool, gemini: Any, client: Any, records: CapturedRecords
) -> None:
    """The Gemini 3 family bills each search query ($14 / 1,000): 3 Flash (0.50 / 3.00)
    with three queries, also when the grounding comes on a stream's last chunk."""
    gemini.enqueue(
        Scenario(prompt_tokens=1_000, candidates_tokens=200, search_queries=("a", "b", "c"))
    )
    _ask(client, "gemini-3-flash-preview", stream=stream)
    rec = records.only()
    assert rec.cost_usd == usd((1_000, "0.50"), (200, "3.00")) + 3 * Decimal(14) / 1_000
    assert rec.cost_usd == Decimal("0.0431")


def test_counts_on_the_record(gemini: Any, client: Any, records: CapturedRecords) -> None:
    """The modality and grounding counts reach the record and its request."""
    gemini.enqueue(
        Scenario(
            prompt_tokens=1_000,
            image_prompt_tokens=258,
            video_prompt_tokens=300,
            candidates_tokens=1_300,
            image_output_tokens=1_290,
            search_queries=("a", "b"),
        )
    )
    _ask(client, "gemini-2.5-flash-image")
    rec = records.only()
    got = (
        rec.image_input_token_count,
        rec.video_input_token_count,
        rec.image_output_token_count,
        rec.audio_output_token_count,
        rec.grounded_prompt_count,
        rec.search_query_count,
    )
    assert got == (258, 300, 1_290, None, 1, 2)
    q = rec.requests[0]
    assert (q.image_output_token_count, q.search_query_count) == (1_290, 2)
