"""The price in force on the day of the call, and the service tier that served it.

Every expected cost is computed by hand from the Gemini pricing page's figures (USD per 1M
tokens, pricing-sources.md and the dated changes the issue lists), never from genai-prices:
through real google-genai calls against the fake Gemini and through the table with a given
day (``reprice`` over stored rows of different dates: tests/sql/test_sql_reprice_by_day.py).
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from typing import Any

import pytest

from vividly_trace import PricingTable, Usage, logged_prompt
from vividly_trace.pricing import utc_day
from vividly_trace.testing import CapturedRecords, capture_records
from vividly_trace.testing.fake_gemini import Scenario

genai = pytest.importorskip("google.genai")
from google.genai import types  # noqa: E402

M = Decimal(1_000_000)
UTC = dt.timezone.utc
VERSION = PricingTable.default().version
TODAY = dt.datetime.now(UTC).date()


def usd(*parts: tuple[int, str]) -> Decimal:
    """Sum of tokens x price per 1M tokens (prices as written on the pricing page)."""
    return sum((n * Decimal(price) for n, price in parts), Decimal(0)) / M


def day(y: int, m: int, d: int) -> int:
    return utc_day(dt.date(y, m, d))


# gemini-3.7-flash: introductory 0.75 / 3.75 (cached 0.075) until 2026-12-31, then 1.50 /
# 7.50 (0.15); Batch and Flex half, Priority 1.8x. gemini-4-argon: introductory 2 / 10
# (cached 0.10) until 2026-11-30, then 4 / 20 (0.20).
FLASH37 = {
    ("standard", False): ("0.75", "3.75"),
    ("standard", True): ("1.50", "7.50"),
    ("flex", False): ("0.375", "1.875"),
    ("flex", True): ("0.75", "3.75"),
    ("batch", False): ("0.375", "1.875"),
    ("batch", True): ("0.75", "3.75"),
    ("priority", False): ("1.35", "6.75"),
    ("priority", True): ("2.70", "13.50"),
}
AFTER_2027 = dt.date(2027, 1, 1) <= TODAY


class TestTableByDay:
    """The table prices a request at the period in force on its UTC day."""

    @pytest.mark.parametrize(
        ("when", "inp", "out", "period"),
        [
            (dt.date(2026, 11, 30), "2", "10", "until-2026-12-01"),
            (dt.date(2026, 12, 1), "4", "20", "from-2026-12-01"),
            (dt.date(2027, 6, 1), "4", "20", "from-2026-12-01"),
        ],
    )
    def test_gemini_4_argon(self, when: dt.date, inp: str, out: str, period: str) -> None:
        """The introductory price ends on 2026-12-01 (UTC): the day before is 2 / 10."""
        usage = Usage(input_tokens=12_000, output_tokens=3_000)
        cost, version = PricingTable.default().quote("gemini-4-argon", usage, day=utc_day(when))
        assert cost == usd((12_000, inp), (3_000, out))
        assert version == f"{VERSION}/{period}"

    def test_one_table_interleaving_days_and_tiers(self) -> None:
        """A worker prices records of many days and tiers with one table (which remembers
        the period it found for each): each request still gets its own day's and tier's."""
        table = PricingTable.default()
        usage = Usage(input_tokens=10_000, output_tokens=2_000)
        before, after = utc_day(dt.date(2026, 12, 31)), utc_day(dt.date(2027, 1, 1))
        for day, tier, key in [
            (before, None, ("standard", False)),
            (after, None, ("standard", True)),
            (before, "flex", ("flex", False)),
            (before, None, ("standard", False)),
            (after, "priority", ("priority", True)),
            (after, None, ("standard", True)),
        ]:
            inp, out = FLASH37[key]
            cost, _ = table.quote("gemini-3.7-flash", usage, day=day, tier=tier)
            assert cost == usd((10_000, inp), (2_000, out)), (day, tier)

    @pytest.mark.parametrize(("tier", "after"), sorted(FLASH37))
    def test_gemini_3_7_flash(self, tier: str, after: bool) -> None:
        """Both sides of 2027-01-01, every tier (cached input at a tenth of input)."""
        inp, out = FLASH37[(tier, after)]
        cached_rate = str(Decimal(inp) / 10)
        usage = Usage(input_tokens=10_000, output_tokens=2_000, cached_tokens=4_000)
        when = day(2027, 1, 1) if after else day(2026, 12, 31)
        cost = PricingTable.default().cost("gemini-3.7-flash", usage, day=when, tier=tier)
        assert cost == usd((6_000, inp), (4_000, cached_rate), (2_000, out))

    def test_2_5_pro_tier_boundary(self) -> None:
        """200,000 prompt tokens is the lower tier; 200,001 bills the whole request above."""
        table = PricingTable.default()
        at = table.cost("gemini-2.5-pro", Usage(input_tokens=200_000, output_tokens=1000))
        above = table.cost("gemini-2.5-pro", Usage(input_tokens=200_001, output_tokens=1000))
        assert at == usd((200_000, "1.25"), (1000, "10.00"))
        assert above == usd((200_001, "2.50"), (1000, "15.00"))

    def test_no_price_for_a_tier(self, caplog: pytest.LogCaptureFixture) -> None:
        """A tier a model has no price for leaves the cost empty, warned once."""
        caplog.set_level(logging.WARNING, logger="vividly_trace")
        table = PricingTable.default().with_overrides({}, version="t")
        usage = Usage(input_tokens=10, output_tokens=10)
        assert table.cost("gemini-3.5-flash", usage, tier="flex") is None
        assert table.cost("gemini-3.5-flash", usage, tier="flex") is None
        assert table.cost("gemini-3.5-flash", usage, tier="provisioned") is None
        messages = [r.getMessage() for r in caplog.records]
        assert sum("no flex service tier price" in m for m in messages) == 1
        assert sum("provisioned throughput" in m for m in messages) == 1

    def test_configured_provisioned_rate(self) -> None:
        """A provisioned rate the user configures prices provisioned calls."""
        table = PricingTable.default().with_overrides(
            {"gemini-2.5-flash": {"tiers": {"provisioned": {"input": "0", "output": "0"}}}}
        )
        usage = Usage(input_tokens=10, output_tokens=10)
        assert table.cost("gemini-2.5-flash", usage, tier="provisioned") == Decimal(0)
        assert table.cost("gemini-2.5-flash", usage) == usd((10, "0.30"), (10, "2.50"))


def _call(client: Any, model: str, config: Any = None) -> Any:
    @logged_prompt("tiers")
    def ask() -> Any:
        return client.models.generate_content(model=model, contents="hi", config=config)

    return ask()


class TestThroughGoogleGenai:
    """Real google-genai calls against the fake Gemini: day and tier reach the record."""

    def test_2_5_flash_and_pro_around_200k(
        self, gemini: Any, client: Any, records: CapturedRecords
    ) -> None:
        """2.5 Flash has one price on both sides of 200k; 2.5 Pro bills the whole request
        at the upper tier above it."""
        for prompt in (200_000, 200_001):
            for model in ("gemini-2.5-flash", "gemini-2.5-pro"):
                gemini.enqueue(Scenario(prompt_tokens=prompt, candidates_tokens=800))
                _call(client, model)
        flash_at, pro_at, flash_above, pro_above = records
        assert flash_at.cost_usd == usd((200_000, "0.30"), (800, "2.50"))
        assert flash_above.cost_usd == usd((200_001, "0.30"), (800, "2.50"))
        assert pro_at.cost_usd == usd((200_000, "1.25"), (800, "10.00"))
        assert pro_above.cost_usd == usd((200_001, "2.50"), (800, "15.00"))
        assert {r.pricing_version for r in records} == {VERSION}
        assert {r.service_tier for r in records} == {None}

    def test_gemini_4_argon_today(self, gemini: Any, client: Any, records: CapturedRecords) -> None:
        """A call started today (after 2026-12-01) costs 4 / 20, and says which period."""
        assert dt.date(2026, 12, 1) <= TODAY
        gemini.enqueue(Scenario(prompt_tokens=5_000, candidates_tokens=1_000))
        _call(client, "gemini-4-argon")
        rec = records.only()
        assert rec.cost_usd == usd((5_000, "4"), (1_000, "20"))
        assert rec.pricing_version == f"{VERSION}/from-2026-12-01"
        assert rec.requests[0].cost_usd == rec.cost_usd

    @pytest.mark.parametrize("tier", ["flex", "priority"])
    def test_request_tier(
        self, tier: str, gemini: Any, client: Any, records: CapturedRecords
    ) -> None:
        """GenerateContentConfig(service_tier=...) is sent, served and priced."""
        gemini.enqueue(Scenario(prompt_tokens=10_000, candidates_tokens=2_000))
        _call(client, "gemini-3.7-flash", types.GenerateContentConfig(service_tier=tier))
        assert gemini.requests[-1]["service_tier"] == tier
        rec = records.only()
        inp, out = FLASH37[(tier, AFTER_2027)]
        assert rec.service_tier == tier
        assert rec.cost_usd == usd((10_000, inp), (2_000, out))
        period = "from-2027-01-01" if AFTER_2027 else "until-2027-01-01"
        assert rec.pricing_version == f"{VERSION}/{period}"

    def test_priority_downgraded(self, gemini: Any, client: Any, records: CapturedRecords) -> None:
        """A priority request the API served at standard (the response header says so) is
        billed at standard."""
        gemini.enqueue(
            Scenario(prompt_tokens=1_000, candidates_tokens=100, service_tier="standard")
        )
        _call(client, "gemini-3.7-flash", {"service_tier": "priority"})
        rec = records.only()
        inp, out = FLASH37[("standard", AFTER_2027)]
        assert rec.service_tier == "standard"
        assert rec.cost_usd == usd((1_000, inp), (100, out))

    def test_vertex_traffic_types(
        self, gemini: Any, client: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Vertex AI's usage_metadata.traffic_type: ON_DEMAND_FLEX bills flex; provisioned
        throughput has no per-token price (cost None, the reason warned once)."""
        caplog.set_level(logging.WARNING, logger="vividly_trace")
        # A table of its own: the packaged one warns once per process.
        fresh = PricingTable.default().with_overrides({}, version=VERSION)
        gemini.enqueue(
            Scenario(prompt_tokens=2_000, candidates_tokens=500, traffic_type="ON_DEMAND_FLEX")
        )
        for _ in range(2):
            gemini.enqueue(
                Scenario(
                    prompt_tokens=2_000,
                    candidates_tokens=500,
                    traffic_type="PROVISIONED_THROUGHPUT",
                )
            )
        with capture_records(pricing=fresh) as records:
            for _ in range(3):
                _call(client, "gemini-3.7-flash")
        flex, pt1, pt2 = records
        inp, out = FLASH37[("flex", AFTER_2027)]
        assert (flex.service_tier, flex.cost_usd) == ("flex", usd((2_000, inp), (500, out)))
        for rec in (pt1, pt2):
            assert rec.service_tier == "provisioned"
            assert rec.cost_usd is None and rec.pricing_version is None
            assert rec.input_token_count == 2_000  # the tokens are kept
        warned = [r for r in caplog.records if "provisioned throughput" in r.getMessage()]
        assert len(warned) == 1

    def test_batch_results(self, gemini: Any, client: Any, records: CapturedRecords) -> None:
        """A Batch API result handed to record_response, with set_service_tier("batch"), is
        billed at the Batch rate (2.5 Flash: half of 0.30 / 2.50; cached unchanged)."""
        assert dt.date(2026, 10, 14) <= TODAY
        result = types.GenerateContentResponse.model_validate(
            {
                "candidates": [{"content": {"parts": [{"text": "ok"}], "role": "model"}}],
                "usage_metadata": {
                    "prompt_token_count": 4_000,
                    "candidates_token_count": 1_000,
                    "cached_content_token_count": 1_000,
                    "total_token_count": 5_000,
                },
                "model_version": "gemini-2.5-flash",
            }
        )
        with logged_prompt("batch-results", model="gemini-2.5-flash") as call:
            call.record_response(result)
            call.set_service_tier("batch")
        rec = records.only()
        assert rec.service_tier == "batch"
        assert rec.cost_usd == usd((3_000, "0.15"), (1_000, "0.03"), (1_000, "1.25"))

    def test_bad_tier_ignored(self, records: CapturedRecords) -> None:
        """An unknown tier name is a warning, and the call is priced as it would be."""
        with logged_prompt("t", model="gemini-2.5-flash") as call:
            call.set_service_tier("gold")
            call.set_usage(input_tokens=10, output_tokens=10)
        rec = records.only()
        assert rec.service_tier is None
        assert rec.cost_usd == usd((10, "0.30"), (10, "2.50"))
