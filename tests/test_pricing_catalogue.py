"""The packaged price table against the installed genai-prices, and its regeneration.

Every Gemini model genai-prices and the packaged table share is priced by both, on each side
of every date its prices change and in every service tier, for usages that exercise each
rate; a difference fails unless curated.toml names that model and tier (with its reason).
``pricing compile --check`` proves the packaged file is what compiling gives.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.cli.cli_helpers import run_cli
from vividly_trace import PricingTable, Usage
from vividly_trace.pricing import utc_day
from vividly_trace.pricing._compile import (
    CONTEXTS,
    PROVIDER,
    compile_table,
    curated_overrides,
    google_models,
    packaged_path,
)

genai_prices = pytest.importorskip("genai_prices")
from genai_prices import data as genai_data  # noqa: E402

# (ours, genai-prices') usage of one request: plain text; cached and audio input; a prompt
# above the 200k tier with cached tokens; other modalities and grounding.
USAGES = [
    (
        Usage(input_tokens=1000, output_tokens=500),
        {"input_tokens": 1000, "output_tokens": 500},
    ),
    (
        Usage(
            input_tokens=1000,
            output_tokens=500,
            cached_tokens=400,
            audio_input_tokens=300,
            cached_audio_tokens=100,
        ),
        {
            "input_tokens": 1000,
            "output_tokens": 500,
            "cache_read_tokens": 400,
            "input_audio_tokens": 300,
            "cache_audio_read_tokens": 100,
        },
    ),
    (
        Usage(input_tokens=250_000, output_tokens=1000, cached_tokens=50_000),
        {"input_tokens": 250_000, "output_tokens": 1000, "cache_read_tokens": 50_000},
    ),
    # Modalities and grounding: image and video input, image and audio output, two billed
    # grounding units (grounded prompts on 2.x, search queries on 3.x: genai-prices'
    # web_searches count either).
    (
        Usage(
            input_tokens=1000,
            output_tokens=900,
            image_input_tokens=300,
            video_input_tokens=200,
            image_output_tokens=400,
            audio_output_tokens=100,
            grounded_prompts=2,
            search_queries=2,
        ),
        {
            "input_tokens": 1000,
            "output_tokens": 900,
            "input_image_tokens": 300,
            "input_video_tokens": 200,
            "output_image_tokens": 400,
            "output_audio_tokens": 100,
            "web_searches": 2,
        },
    ),
]


def _days(model: Any) -> list[dt.date]:
    """A day in each price period of the model: before and on every start date."""
    starts = set()
    for item in [
        *(model.prices if isinstance(model.prices, list) else []),
        *(model.price_variants or ()),
    ]:
        if item.constraint is not None:
            starts.add(item.constraint.start_date)
    days = {dt.date(2026, 6, 1)}
    for start in starts:
        days |= {start - dt.timedelta(days=1), start}
    return sorted(days)


def _provider() -> Any:
    return next(p for p in genai_data.providers if p.id == PROVIDER)


def _curated_tiers() -> set[tuple[str, str]]:
    """(model, tier) pairs curated.toml sets: the explained differences."""
    out = set()
    for name, entry in curated_overrides().get("models", {}).items():
        out |= {(name, tier) for tier in entry.get("tiers", {})}
        if any(k in entry for k in ("input", "output", "cached_input", "changes")):
            out.add((name, "standard"))
    return out


def test_shared_models_cost_what_genai_prices_says() -> None:
    """Same cost to the last digit, or a curated (explained) difference."""
    table = PricingTable.default()
    provider = _provider()
    explained = _curated_tiers()
    compared = 0
    for model in google_models():
        ours = table.models.get(model.id)
        assert ours is not None, f"{model.id} is in genai-prices but not in the packaged table"
        for day in _days(model):
            when = dt.datetime.combine(day, dt.time(12), dt.timezone.utc)
            for tier in ("standard", *CONTEXTS):
                if (model.id, tier) in explained:
                    continue
                context = CONTEXTS.get(tier)
                has_variant = tier == "standard" or any(
                    v.when == context for v in model.price_variants or ()
                )
                for usage, theirs in USAGES:
                    mine = table.cost(model.id, usage, day=utc_day(day), tier=tier)
                    if not has_variant:
                        # genai-prices bills a tier it has no variant for at Standard; the
                        # table leaves it unpriced (never a Flex discount or a Priority
                        # surcharge guessed).
                        assert mine is None, (model.id, tier)
                        continue
                    expected = model.calc_price(
                        genai_prices.Usage(**theirs),
                        provider,
                        genai_request_timestamp=when,
                        price_context=context,
                    ).total_price
                    assert mine == expected, (model.id, day, tier, usage)
                    compared += 1
    assert compared > 300


def test_curated_overrides_differ_and_say_why() -> None:
    """Each curated tier is a real difference from genai-prices, with source and reason."""
    table = PricingTable.default()
    provider = _provider()
    models = {m.id: m for m in google_models()}
    usage, theirs = USAGES[0]
    for name, tier in sorted(_curated_tiers()):
        entry = table.models[name]
        assert entry.note and entry.source and entry.as_of
        if name not in models:
            continue
        when = dt.datetime(2026, 12, 3, 12, tzinfo=dt.timezone.utc)
        expected = (
            models[name]
            .calc_price(
                genai_prices.Usage(**theirs),
                provider,
                genai_request_timestamp=when,
                price_context=CONTEXTS.get(tier),
            )
            .total_price
        )
        assert table.cost(name, usage, day=utc_day(when), tier=tier) != expected


def test_packaged_table_is_what_compiling_gives() -> None:
    """The packaged file equals a fresh compile (the same check as ``--check``)."""
    assert packaged_path().read_text("utf-8") == compile_table()


def test_compile_check_command(tmp_path: Path) -> None:
    """``pricing compile --check`` passes on the packaged file and fails on a changed copy;
    ``pricing compile --output`` writes what it checks."""
    ok = run_cli("pricing", "compile", "--check")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "is up to date (genai-prices 0.2.3)" in ok.stdout
    copy = tmp_path / "gemini.toml"
    shutil.copy(packaged_path(), copy)
    copy.write_text(copy.read_text("utf-8").replace('input = "0.3"', 'input = "0.31"', 1))
    bad = run_cli("pricing", "compile", "--check", "--output", str(copy))
    assert bad.returncode == 1
    assert '-input = "0.31"' in bad.stdout and "is not what compiling gives" in bad.stdout
    written = run_cli("pricing", "compile", "--output", str(copy))
    assert written.returncode == 0, written.stderr
    assert copy.read_text("utf-8") == packaged_path().read_text("utf-8")
    assert PricingTable.from_file(copy).version == PricingTable.default().version


def test_runtime_does_not_import_genai_prices() -> None:
    """Pricing a record never needs genai-prices (it is a maintainer's dependency)."""
    code = (
        "import sys, vividly_trace\n"
        "from vividly_trace import PricingTable, Usage\n"
        "PricingTable.default().cost('gemini-4-argon', Usage(input_tokens=1, output_tokens=1))\n"
        "assert 'genai_prices' not in sys.modules, 'imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_decimal_prices() -> None:
    """Compiled prices load as exact Decimals."""
    argon = PricingTable.default().models["gemini-4-argon"]
    assert argon.input == Decimal("2") and argon.changes[0][1].input == Decimal("4")
