"""Repricing stored executions: costs by hand, template totals equal to the aggregates."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.factories import make_record
from tests.sql.sql_helpers import write_records
from vividly_trace import ConfigurationError, PricingTable, PromptExecution
from vividly_trace.analytics import StoreUnavailableError, reprice
from vividly_trace.sinks.sql.schema import prompt_executions

UTC = dt.timezone.utc
M = Decimal(1_000_000)
# The original design's wrong gemini-2.5-flash prices (the old 1.5 Flash ones).
OLD_IN, OLD_OUT = Decimal("0.075") / M, Decimal("0.30") / M


def flash_cost(inp: int, out: int, cached: int = 0) -> Decimal:
    """gemini-2.5-flash by hand: input 0.30, cached input 0.03, output 2.50 per 1M tokens."""
    return ((inp - cached) * Decimal("0.30") + cached * Decimal("0.03") + out * Decimal("2.50")) / M


def pro_cost(inp: int, out: int, cached: int = 0) -> Decimal:
    """gemini-2.5-pro under 200k prompt tokens: 1.25, cached 0.125, output 10.00."""
    return ((inp - cached) * Decimal("1.25") + cached * Decimal("0.125") + out * Decimal("10")) / M


def minute(i: int) -> dt.datetime:
    """When record ``i`` of the data set started: ``i`` minutes into 2026-05-01 (UTC)."""
    return dt.datetime(2026, 5, 1, tzinfo=UTC) + dt.timedelta(minutes=i)


def make_records() -> tuple[list[PromptExecution], dict[str, Decimal | None]]:
    """Records priced with the old, wrong table; and each one's right cost (None: untouched)."""
    records: list[PromptExecution] = []
    right: dict[str, Decimal | None] = {}
    i = 0
    for n in range(25):
        i += 1
        inp, out = 100 + 37 * n, 20 + 11 * n
        cached = 64 if n % 3 == 0 else None
        r = make_record(
            "nlu",
            n=i,
            started_at=minute(i),
            model="gemini-2.5-flash",
            input_token_count=inp,
            output_token_count=out,
            total_token_count=inp + out,
            cached_token_count=cached,
            thinking_token_count=5 if n % 2 else None,
            cost_usd=inp * OLD_IN + out * OLD_OUT,
            pricing_version="original-design",
        )
        records.append(r)
        right[r.execution_id] = flash_cost(inp, out, cached or 0)
    for n in range(9):
        i += 1
        inp, out = 2000 + 100 * n, 400 + 9 * n
        r = make_record(
            "scripts",
            n=i,
            started_at=minute(i),
            model="models/gemini-2.5-pro-001",  # normalised to gemini-2.5-pro
            input_token_count=inp,
            output_token_count=out,
            total_token_count=inp + out,
            cached_token_count=1024,
            cost_usd=None,  # priced by nobody yet
        )
        records.append(r)
        right[r.execution_id] = pro_cost(inp, out, 1024)
    # Left as they are: a failure with no tokens, an unknown model, a manual cost with no model.
    i += 1
    r = make_record(
        "nlu",
        n=i,
        started_at=minute(i),
        success=False,
        model="gemini-2.5-flash",
        error_type="ClientError",
    )
    records.append(r)
    right[r.execution_id] = None
    i += 1
    r = make_record(
        "nlu",
        n=i,
        started_at=minute(i),
        model="in-house-model",
        input_token_count=10,
        output_token_count=10,
        total_token_count=20,
        cost_usd=Decimal("0.5"),
    )
    records.append(r)
    right[r.execution_id] = None
    i += 1
    r = make_record(
        "scripts",
        n=i,
        started_at=minute(i),
        input_token_count=10,
        output_token_count=10,
        cost_usd=Decimal("0.25"),
    )
    records.append(r)
    right[r.execution_id] = None
    return records, right


def stored(url: str) -> dict[str, tuple[Decimal | None, str | None]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            e = prompt_executions.c
            rows = conn.execute(sa.select(e.id, e.cost_usd, e.pricing_version)).all()
    finally:
        engine.dispose()
    return {r[0]: (r[1], r[2]) for r in rows}


def totals_match_aggregates(url: str) -> dict[str, tuple[Any, Any]]:
    """template name -> (total_cost_usd, SUM(cost_usd)), plus the other statistics checked."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT t.name, t.total_cost_usd, t.total_executions, "
                    "(SELECT coalesce(sum(e.cost_usd), 0) FROM prompt_executions e "
                    " WHERE e.template_id = t.id), "
                    "(SELECT count(*) FROM prompt_executions e WHERE e.template_id = t.id) "
                    "FROM prompt_templates t"
                )
            ).all()
    finally:
        engine.dispose()
    out = {}
    for name, total, executions, aggregate, count in rows:
        assert executions == count
        out[name] = (Decimal(str(total)), Decimal(str(aggregate)))
    return out


def assert_totals_equal(url: str, sqlite: bool, templates: set[str]) -> None:
    """Each of ``templates`` (exactly those are stored) has totals equal to its aggregates."""
    totals = totals_match_aggregates(url)
    assert set(totals) == templates
    for name, (total, aggregate) in totals.items():
        # Exact on both (SQLite: integer pico-dollars, see schema.py).
        assert type(total) is type(aggregate) and total == aggregate, name


class TestReprice:
    def test_dry_run_then_reprice_then_idempotent(self, fresh_url: str) -> None:
        """Dry run writes nothing; reprice sets the right costs and keeps totals equal."""
        records, right = make_records()
        write_records(fresh_url, records)
        before = stored(fresh_url)
        sqlite = fresh_url.startswith("sqlite")
        table = PricingTable.default()

        dry = reprice(fresh_url, dry_run=True, batch_size=7)
        assert dry.dry_run and dry.pricing_version == table.version
        assert stored(fresh_url) == before
        by_template = {t.template: t for t in dry.templates}
        nlu = [r for r in records if r.template_key == "nlu"]
        assert by_template["nlu"].executions == len(nlu)
        assert by_template["nlu"].updated == 25
        assert by_template["nlu"].no_tokens == 1
        assert by_template["nlu"].unpriced == 1
        assert by_template["scripts"].updated == 9
        assert by_template["scripts"].unpriced == 1
        assert dry.unknown_models == ("in-house-model",)
        expected_new_nlu = sum((right[r.execution_id] or r.cost_usd or Decimal(0)) for r in nlu)
        assert by_template["nlu"].old_cost_usd == pytest.approx(
            sum((r.cost_usd or Decimal(0)) for r in nlu), rel=Decimal("1e-12")
        )
        assert by_template["nlu"].new_cost_usd == pytest.approx(
            expected_new_nlu, rel=Decimal("1e-12")
        )

        seen: list[tuple[int, int]] = []
        done = reprice(fresh_url, batch_size=7, progress=lambda d, t: seen.append((d, t)))
        assert done.updated == 34 and done.cost_changed == 34
        assert seen[0] == (0, len(records)) and seen[-1] == (len(records), len(records))
        after = stored(fresh_url)
        for r in records:
            cost, version = after[r.execution_id]
            if right[r.execution_id] is None:
                assert (cost, version) == before[r.execution_id]
            else:
                assert cost == right[r.execution_id]
                assert version == table.version
        assert_totals_equal(fresh_url, sqlite, {"nlu", "scripts"})

        again = reprice(fresh_url)
        assert (again.updated, again.cost_changed) == (0, 0)
        assert stored(fresh_url) == after

        # The insert trigger keeps adding to the repriced totals.
        write_records(
            fresh_url,
            [
                make_record(
                    "nlu",
                    n=999,
                    started_at=minute(999),
                    model="gemini-2.5-flash",
                    input_token_count=10,
                    output_token_count=1,
                    cost_usd=flash_cost(10, 1),
                )
            ],
        )
        assert_totals_equal(fresh_url, sqlite, {"nlu", "scripts"})

    def test_custom_price_table_and_window(self, fresh_url: str, tmp_path: Path) -> None:
        """A given table reprices with its prices and records its version; filters apply."""
        records, _ = make_records()
        write_records(fresh_url, records)
        prices = tmp_path / "prices.toml"
        prices.write_text(
            'version = "ours-2026-05"\n'
            '[models."gemini-2.5-flash"]\ninput = "0.60"\noutput = "5.00"\n'
            '[models."in-house-model"]\ninput = "1"\noutput = "1"\n',
            encoding="utf-8",
        )
        result = reprice(fresh_url, pricing=str(prices), template="nlu")
        assert result.pricing_version == "ours-2026-05"
        assert [t.template for t in result.templates] == ["nlu"]
        after = stored(fresh_url)
        for r in records:
            if r.template_key == "nlu" and r.input_token_count is not None:
                # No cached price in this table: cached tokens bill at the input price.
                rate_in, rate_out = (
                    (Decimal("0.60"), Decimal("5.00"))
                    if r.model == "gemini-2.5-flash"
                    else (Decimal(1), Decimal(1))
                )
                expected = (
                    r.input_token_count * rate_in + (r.output_token_count or 0) * rate_out
                ) / M
                assert after[r.execution_id] == (expected, "ours-2026-05")
            elif r.template_key == "scripts":
                assert after[r.execution_id][1] != "ours-2026-05"
        assert result.unknown_models == ()
        assert_totals_equal(fresh_url, fresh_url.startswith("sqlite"), {"nlu", "scripts"})

        window = reprice(
            fresh_url,
            since=dt.datetime(2026, 5, 1, 0, 5, tzinfo=UTC),
            until=dt.datetime(2026, 5, 1, 0, 10, tzinfo=UTC),
            dry_run=True,
        )
        assert window.executions == 5

    def test_bad_arguments(self, tmp_path: Path) -> None:
        """A missing table file, a bad batch size, a missing database."""
        url = f"sqlite:///{tmp_path / 'missing.db'}"
        with pytest.raises(StoreUnavailableError):
            reprice(url)
        assert not (tmp_path / "missing.db").exists()
        records, _ = make_records()
        good = f"sqlite:///{tmp_path / 'store.db'}"
        write_records(good, records)
        with pytest.raises(ConfigurationError, match="cannot read price table"):
            reprice(good, pricing=str(tmp_path / "nope.toml"))
        with pytest.raises(ConfigurationError, match="batch_size"):
            reprice(good, batch_size=0)
        assert reprice(good, dry_run=True).to_dataframe().shape[0] == 2


class TestCachedAudio:
    def test_cached_audio_is_billed_at_the_cached_audio_rate(self, fresh_url: str) -> None:
        """The stored cached audio count prices its tokens at the cached-audio rate (not
        the cached text one); the template totals follow through the UPDATE trigger."""

        # 1000 prompt tokens: 600 cached, of which 200 audio; 300 audio in all; 10 output.
        # So 300 plain, 100 uncached audio, 400 cached text, 200 cached audio. Prices per 1M
        # (gemini.toml), input / audio / cached / cached audio / output:
        # gemini-2.5-flash 0.30 / 1.00 / 0.03 / 0.10 / 2.50,
        # gemini-2.0-flash 0.10 / 0.70 / 0.025 / 0.175 / 0.40.
        def by_hand(inp: str, audio: str, cached: str, cached_audio: str, out: str) -> Decimal:
            return (
                300 * Decimal(inp)
                + 100 * Decimal(audio)
                + 400 * Decimal(cached)
                + 200 * Decimal(cached_audio)
                + 10 * Decimal(out)
            ) / M

        expected = {
            "gemini-2.5-flash": by_hand("0.30", "1.00", "0.03", "0.10", "2.50"),
            "gemini-2.0-flash": by_hand("0.10", "0.70", "0.025", "0.175", "0.40"),
        }
        assert expected == {
            "gemini-2.5-flash": Decimal("0.000247"),
            "gemini-2.0-flash": Decimal("0.000149"),
        }
        # Without the cached audio count (a row stored before revision 0002): the 600 cached
        # tokens at the cached text rate, the 300 audio ones at the audio rate, 100 plain.
        as_text = (
            100 * Decimal("0.30")
            + 300 * Decimal("1.00")
            + 600 * Decimal("0.03")
            + 10 * Decimal("2.50")
        ) / M
        tokens: dict[str, Any] = {
            "input_token_count": 1000,
            "output_token_count": 10,
            "total_token_count": 1010,
            "cached_token_count": 600,
            "audio_input_token_count": 300,
            "cost_usd": Decimal("0.5"),
        }
        records = [
            make_record(
                "voice", n=1, model="gemini-2.5-flash", cached_audio_token_count=200, **tokens
            ),
            make_record(
                "voice", n=2, model="gemini-2.0-flash", cached_audio_token_count=200, **tokens
            ),
            make_record("voice", n=3, model="gemini-2.5-flash", **tokens),
        ]
        write_records(fresh_url, records)
        result = reprice(fresh_url)
        assert (result.updated, result.cost_changed) == (3, 3)
        after = stored(fresh_url)
        version = PricingTable.default().version
        assert after[records[0].execution_id] == (expected["gemini-2.5-flash"], version)
        assert after[records[1].execution_id] == (expected["gemini-2.0-flash"], version)
        assert after[records[2].execution_id] == (as_text, version)
        assert as_text == Decimal("0.000373")
        assert result.new_cost_usd == Decimal("0.000769")
        assert_totals_equal(fresh_url, fresh_url.startswith("sqlite"), {"voice"})

    def test_a_store_before_revision_0002_is_refused(self, fresh_url: str) -> None:
        """A store at revision 0001 (no cached audio column, no UPDATE trigger): reprice,
        dry run included, says to upgrade it and changes nothing."""
        from vividly_trace.analytics import StoreSchemaError
        from vividly_trace.sinks.sql import migrate

        engine = sa.create_engine(fresh_url)
        try:
            assert migrate.upgrade(engine, "0001") == (None, "0001")
        finally:
            engine.dispose()
        for dry_run in (True, False):
            with pytest.raises(StoreSchemaError, match=r"revision 0001.*db upgrade"):
                reprice(fresh_url, dry_run=dry_run)
