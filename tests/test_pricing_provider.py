"""Gemini API (AI Studio) and Vertex AI told apart, and priced per provider.

Real google-genai clients against the fake Gemini: one with ``vertexai=False`` (requests to
``/v1beta/models/M``), one with ``vertexai=True`` (``/v1/projects/P/locations/L/publishers/
google/models/M``). Costs by hand from the pricing page (2.5 Flash: 0.30 / 2.50 per 1M).
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import pytest

from vividly_trace import PricingTable, logged_prompt
from vividly_trace.testing import CapturedRecords, capture_records
from vividly_trace.testing.fake_gemini import Scenario

pytest.importorskip("google.genai")

M = Decimal(1_000_000)


def usd(*parts: tuple[int, str]) -> Decimal:
    return sum((n * Decimal(price) for n, price in parts), Decimal(0)) / M


def _ask(client: Any, model: str = "gemini-2.5-flash") -> Any:
    @logged_prompt("provider")
    def ask() -> Any:
        return client.models.generate_content(model=model, contents="hi")

    return ask()


def test_gemini_api_and_vertex_ai(gemini: Any, client: Any, records: CapturedRecords) -> None:
    """The client's vertexai flag names the record's provider; both bill 2.5 Flash at its
    list price (the packaged table has no Vertex-only price for it)."""
    gemini.enqueue(Scenario(prompt_tokens=1_000, candidates_tokens=200))
    gemini.enqueue(Scenario(prompt_tokens=1_000, candidates_tokens=200))
    _ask(client)
    _ask(gemini.vertex_client())
    studio, vertex = records
    assert gemini.requests[0]["path"] == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert gemini.requests[1]["path"].startswith("/v1/projects/fake-project/locations/")
    assert (studio.provider, vertex.provider) == ("gemini", "vertex_ai")
    assert studio.cost_usd == vertex.cost_usd == usd((1_000, "0.30"), (200, "2.50"))


def test_vertex_price_of_its_own(gemini: Any, client: Any) -> None:
    """A ``vertex_ai/MODEL`` entry prices MODEL on Vertex AI only."""
    table = PricingTable.default().with_overrides(
        {"vertex_ai/gemini-2.5-flash": {"input": "1", "output": "4"}}, version="t"
    )
    gemini.enqueue(Scenario(prompt_tokens=1_000, candidates_tokens=200))
    gemini.enqueue(Scenario(prompt_tokens=1_000, candidates_tokens=200))
    with capture_records(pricing=table) as records:
        _ask(client)
        _ask(gemini.vertex_client())
    studio, vertex = records
    assert studio.cost_usd == usd((1_000, "0.30"), (200, "2.50"))
    assert vertex.cost_usd == usd((1_000, "1"), (200, "4"))
    assert vertex.requests[0].cost_usd == vertex.cost_usd


def test_vertex_provisioned_throughput(gemini: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A real vertexai=True client whose answer says PROVISIONED_THROUGHPUT: no per-token
    price (cost None, warned), tokens kept; ON_DEMAND is standard."""
    caplog.set_level(logging.WARNING, logger="vividly_trace")
    fresh = PricingTable.default().with_overrides({}, version="fresh")
    gemini.enqueue(
        Scenario(prompt_tokens=3_000, candidates_tokens=100, traffic_type="PROVISIONED_THROUGHPUT")
    )
    gemini.enqueue(Scenario(prompt_tokens=3_000, candidates_tokens=100, traffic_type="ON_DEMAND"))
    with capture_records(pricing=fresh) as records:
        _ask(gemini.vertex_client())
        _ask(gemini.vertex_client())
    pt, on_demand = records
    assert (pt.provider, pt.service_tier, pt.cost_usd) == ("vertex_ai", "provisioned", None)
    assert pt.input_token_count == 3_000
    assert on_demand.service_tier == "standard"
    assert on_demand.cost_usd == usd((3_000, "0.30"), (100, "2.50"))
    assert any("provisioned throughput" in r.getMessage() for r in caplog.records)
