"""The packaged price table, cost rules, name normalisation and overrides."""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from pathlib import Path

import pytest

import vividly_trace
from vividly_trace import ConfigurationError, PricingTable, Usage, calculate_gemini_cost
from vividly_trace.pricing import normalize_model_name

M = Decimal(1_000_000)

# The official figures (pricing-sources.md), USD per 1M tokens: (input, output, cached).
OFFICIAL = {
    "gemini-2.5-pro": ("1.25", "10.00", "0.125"),
    "gemini-2.5-flash": ("0.30", "2.50", "0.03"),
    "gemini-2.5-flash-lite": ("0.10", "0.40", "0.01"),
    "gemini-2.0-flash": ("0.10", "0.40", "0.025"),
    "gemini-2.0-flash-lite": ("0.075", "0.30", None),
    "gemini-3.1-pro-preview": ("2.00", "12.00", "0.20"),
    "gemini-3-flash-preview": ("0.50", "3.00", "0.05"),
    "gemini-3.1-flash-lite-preview": ("0.25", "1.50", "0.025"),
}


class TestTable:
    """The packaged table holds the sourced figures."""

    @pytest.mark.parametrize("model", sorted(OFFICIAL))
    def test_official_prices(self, model: str) -> None:
        """Each model's standard prices (compiled from genai-prices) match the official
        figures copied by hand from the pricing page (pricing-sources.md)."""
        price = PricingTable.default().resolve(model)
        assert price is not None
        inp, out, cached = OFFICIAL[model]
        assert price.input == Decimal(inp)
        assert price.output == Decimal(out)
        assert price.cached_input == (Decimal(cached) if cached else None)
        assert price.as_of == PricingTable.default().date
        assert price.source == "genai-prices 0.2.3, provider google"

    def test_not_the_old_wrong_price(self) -> None:
        """2.5 Flash is not priced at the old 1.5 Flash figures of the original design."""
        cost = calculate_gemini_cost({"input_tokens": 1_000_000, "output_tokens": 1_000_000})
        assert cost == pytest.approx(0.30 + 2.50)

    def test_version(self) -> None:
        """The table names its version."""
        table = PricingTable.default()
        assert table.version == "genai-prices-0.2.3+curated-2026-12-03"
        assert table.date == "2026-12-03"


class TestCost:
    """Cost rules."""

    def test_calculate_gemini_cost(self) -> None:
        """The original helper's signature, with cached and thinking tokens."""
        usage = {
            "input_tokens": 1000,
            "output_tokens": 100,
            "cached_tokens": 400,
            "thinking_tokens": 50,
        }
        expected = (600 * Decimal("0.30") + 400 * Decimal("0.03") + 150 * Decimal("2.50")) / M
        assert calculate_gemini_cost(usage) == float(expected)
        assert isinstance(calculate_gemini_cost(usage), float)
        pro = calculate_gemini_cost(
            {"input_tokens": 300_000, "output_tokens": 10}, model="gemini-2.5-pro"
        )
        assert pro == float((300_000 * Decimal("2.50") + 10 * Decimal("15.00")) / M)

    def test_calculate_unknown_model(self) -> None:
        """An unknown model is an error for the explicit helper, never a guess."""
        with pytest.raises(ValueError, match="no price"):
            calculate_gemini_cost({"input_tokens": 1}, model="gpt-9")
        with pytest.raises(ValueError):
            calculate_gemini_cost({"foo": 1})

    def test_unknown_model_warns_once(self, caplog: pytest.LogCaptureFixture) -> None:
        """An unknown model gives cost None and exactly one warning."""
        caplog.set_level(logging.WARNING, logger="vividly_trace")
        table = PricingTable.default().with_overrides({}, version="t")
        usage = Usage(input_tokens=10, output_tokens=10, total_tokens=20)
        assert table.cost("mystery-model", usage) is None
        assert table.cost("mystery-model", usage) is None
        assert sum("mystery-model" in r.getMessage() for r in caplog.records) == 1

    def test_cached_never_charged_twice(self) -> None:
        """All-cached input is charged only at the cached rate."""
        table = PricingTable.default()
        usage = Usage(input_tokens=1000, output_tokens=0, total_tokens=1000, cached_tokens=1000)
        assert table.cost("gemini-2.5-flash", usage) == 1000 * Decimal("0.03") / M

    def test_tier_cached(self) -> None:
        """Above the tier, cached input uses the upper cached rate."""
        usage = Usage(
            input_tokens=300_000, output_tokens=0, total_tokens=300_000, cached_tokens=100_000
        )
        cost = PricingTable.default().cost("gemini-2.5-pro", usage)
        assert cost == (200_000 * Decimal("2.50") + 100_000 * Decimal("0.25")) / M

    def test_retired_model_tiers(self) -> None:
        """A retired model (secondary sources) bills the whole request at its 128k tier."""
        table = PricingTable.default()
        small = Usage(input_tokens=1000, output_tokens=10, total_tokens=1010)
        big = Usage(input_tokens=200_000, output_tokens=10, total_tokens=200_010)
        assert (
            table.cost("gemini-1.5-flash", small)
            == (1000 * Decimal("0.075") + 10 * Decimal("0.30")) / M
        )
        assert (
            table.cost("gemini-1.5-flash", big)
            == (200_000 * Decimal("0.15") + 10 * Decimal("0.60")) / M
        )
        assert table.models["gemini-1.5-flash"].secondary_source

    def test_beyond_range(self) -> None:
        """A price with max_prompt_tokens gives None above it."""
        table = PricingTable({"m": {"input": "1", "output": "2", "max_prompt_tokens": 100}}, "t")
        assert table.cost("m", Usage(input_tokens=101, output_tokens=1)) is None
        assert table.cost("m", Usage(input_tokens=100, output_tokens=1)) == Decimal("0.000102")

    def test_money_is_decimal(self) -> None:
        """Costs are exact Decimals."""
        cost = PricingTable.default().cost(
            "gemini-2.5-flash", Usage(input_tokens=1, output_tokens=1, total_tokens=2)
        )
        assert cost == Decimal("0.0000028")


class TestNames:
    """Model name normalisation."""

    @pytest.mark.parametrize(
        ("name", "canonical"),
        [
            ("models/gemini-2.5-flash", "gemini-2.5-flash"),
            ("gemini-2.5-flash-001", "gemini-2.5-flash"),
            ("gemini-2.5-flash-latest", "gemini-2.5-flash"),
            # genai-prices keeps the 2.5 Flash preview's own (lower) price.
            ("gemini-2.5-flash-preview-05-20", "gemini-2.5-flash-preview"),
            ("gemini-2.5-flash-lite-preview-06-17", "gemini-2.5-flash-lite"),
            ("gemini-3-flash-preview", "gemini-3-flash-preview"),
            ("models/gemini-3.1-pro-preview", "gemini-3.1-pro-preview"),
            ("publishers/google/models/gemini-2.0-flash-001", "gemini-2.0-flash"),
            ("GEMINI-2.5-PRO", "gemini-2.5-pro"),
        ],
    )
    def test_normalised(self, name: str, canonical: str) -> None:
        """Variants resolve to the canonical entry."""
        table = PricingTable.default()
        assert table.resolve(name) is table.models[canonical]
        assert canonical in normalize_model_name(name)


class TestOverrides:
    """Users extend or override the table."""

    def test_in_code(self) -> None:
        """with_overrides adds models and updates single fields; the version changes."""
        base = PricingTable.default()
        table = base.with_overrides(
            {"my-model": {"input": "1", "output": "2"}, "gemini-2.5-flash": {"output": "3.00"}},
            version="ours-1",
        )
        assert table.version == "ours-1"
        assert table.models["my-model"].input == Decimal(1)
        assert table.models["gemini-2.5-flash"].output == Decimal("3.00")
        assert table.models["gemini-2.5-flash"].input == Decimal("0.30")
        assert base.models["gemini-2.5-flash"].output == Decimal("2.50")

    def test_configure_with_mapping(self) -> None:
        """configure(pricing=mapping) prices records and names the version."""
        from vividly_trace.sinks import MemorySink

        sink = MemorySink()
        vividly_trace.configure(
            sinks=[sink],
            sync=True,
            spool_dir=False,
            pricing={"tuned-x": {"input": "1.00", "output": "1.00"}},
        )
        with vividly_trace.logged_prompt("k", model="tuned-x") as call:
            call.set_usage(input_tokens=500_000, output_tokens=500_000)
        [rec] = sink.records
        assert rec.cost_usd == Decimal("1.00")
        assert rec.pricing_version == PricingTable.default().version + "+custom"

    def test_from_file(self, tmp_path: Path) -> None:
        """A TOML or JSON file loads; a bad one is a ConfigurationError."""
        toml = tmp_path / "p.toml"
        toml.write_text('version = "f1"\n[models."m"]\ninput = "0.5"\noutput = "1.5"\n')
        assert PricingTable.from_file(toml).models["m"].output == Decimal("1.5")
        js = tmp_path / "p.json"
        js.write_text(json.dumps({"version": "f2", "models": {"m": {"input": 1, "output": 2}}}))
        assert PricingTable.from_file(js).version == "f2"
        bad = tmp_path / "bad.toml"
        bad.write_text('version = "x"\n[models."m"]\ninput = "-1"\noutput = "1"\n')
        with pytest.raises(ConfigurationError, match="must be between 0 and"):
            PricingTable.from_file(bad)
        with pytest.raises(ConfigurationError, match="cannot read"):
            PricingTable.from_file(tmp_path / "missing.toml")
        with pytest.raises(ConfigurationError, match="unknown fields"):
            PricingTable({"m": {"input": "1", "output": "1", "inptu": "2"}}, version="v")
        with pytest.raises(ConfigurationError, match="tier_threshold"):
            PricingTable({"m": {"input": "1", "output": "1", "tier_threshold": 10}}, version="v")
