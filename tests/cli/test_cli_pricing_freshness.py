"""Freshness of the price catalogue: its date and age in ``vividly-trace pricing``, the
warning past 60 days, ``pricing update``; and user tables that extend (or replace) the
packaged one."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

import vividly_trace
from tests.cli.cli_helpers import run_cli
from vividly_trace import PricingTable, Usage
from vividly_trace.sinks import MemorySink

TODAY = dt.datetime.now(dt.timezone.utc).date()


def _table(path: Path, date: dt.date, *, replace: bool = False) -> Path:
    path.write_text(
        f'version = "ours"\ndate = "{date.isoformat()}"\n'
        + ("replace = true\n" if replace else "")
        + '[models."tuned-x"]\ninput = "1"\noutput = "2"\n',
        encoding="utf-8",
    )
    return path


class TestFreshness:
    def test_date_shown_and_stale_warning(self, tmp_path: Path) -> None:
        """A table 61 days old is warned about on stderr; one 60 days old is not."""
        old = run_cli(
            "pricing", "--file", str(_table(tmp_path / "old.toml", TODAY - dt.timedelta(days=61)))
        )
        assert old.returncode == 0, old.stderr
        assert "the price catalogue is 61 days old" in old.stderr
        assert "vividly-trace pricing update" in old.stderr
        assert f"Catalogue of {TODAY - dt.timedelta(days=61)} (61 days old)." in old.stdout
        fresh = run_cli(
            "pricing", "--file", str(_table(tmp_path / "new.toml", TODAY - dt.timedelta(days=60)))
        )
        assert fresh.returncode == 0 and fresh.stderr == ""
        assert "(60 days old)" in fresh.stdout

    def test_packaged_table_is_dated(self) -> None:
        """The packaged catalogue names its date (and the command shows it)."""
        table = PricingTable.default()
        assert table.date == "2026-12-03"
        assert table.age_days(dt.date(2027, 2, 1)) == 60
        out = run_cli("pricing").stdout
        assert f"Catalogue of 2026-12-03 ({table.age_days()} days old)." in out

    def test_modalities_and_grounding_shown(self) -> None:
        """The table lists each model's own modality rates and grounding fee, with its unit."""
        out = run_cli("pricing").stdout
        assert "  gemini-2.5-flash-image: image out 30\n" in out
        assert "  gemini-2.5-flash: grounding 35 per 1,000 grounded prompts\n" in out
        assert "  gemini-3.5-flash: grounding 14 per 1,000 search queries\n" in out

    def test_update_writes_a_fresh_copy(self, tmp_path: Path) -> None:
        """``pricing update`` compiles the installed genai-prices into a local file dated
        today, with the packaged prices (same genai-prices, same curated overrides)."""
        pytest.importorskip("genai_prices")
        target = tmp_path / "prices.toml"
        result = run_cli("pricing", "update", "--output", str(target))
        assert result.returncode == 0, result.stderr
        assert f"wrote {target}" in result.stdout
        copy = PricingTable.from_file(target)
        assert copy.date == TODAY.isoformat()
        assert copy.version == f"genai-prices-0.2.3+curated-{TODAY.isoformat()}"
        packaged = PricingTable.default()
        assert set(copy.models) == set(packaged.models)
        for name, price in packaged.models.items():
            mine = copy.models[name]
            assert (mine.input, mine.output, mine.changes, mine.tiers) == (
                price.input,
                price.output,
                price.changes,
                price.tiers,
            )

    def test_update_unwritable(self, tmp_path: Path) -> None:
        """An output the OS refuses: one error line, exit 2."""
        pytest.importorskip("genai_prices")
        result = run_cli("pricing", "update", "--output", str(tmp_path / "no" / "dir.toml"))
        assert result.returncode == 2 and "cannot write" in result.stderr


class TestUserTables:
    def _cost(self, model: str, pricing: object) -> tuple[Decimal | None, str | None]:
        sink = MemorySink()
        vividly_trace.configure(sinks=[sink], sync=True, spool_dir=False, pricing=pricing)
        with vividly_trace.logged_prompt("t", model=model) as call:
            call.set_usage(input_tokens=1_000_000, output_tokens=1_000_000)
        [rec] = sink.records
        return rec.cost_usd, rec.pricing_version

    def test_a_file_extends_the_packaged_table(self, tmp_path: Path) -> None:
        """configure(pricing="file.toml"): its models added, the packaged ones kept."""
        path = _table(tmp_path / "t.toml", TODAY)
        version = f"{PricingTable.default().version}+ours"
        assert self._cost("tuned-x", str(path)) == (Decimal(3), version)
        assert self._cost("gemini-2.5-flash", str(path)) == (Decimal("2.80"), version)

    def test_replace_true_replaces(self, tmp_path: Path) -> None:
        """A file with ``replace = true`` is the whole table."""
        path = _table(tmp_path / "t.toml", TODAY, replace=True)
        assert self._cost("tuned-x", str(path)) == (Decimal(3), "ours")
        assert self._cost("gemini-2.5-flash", str(path)) == (None, None)

    def test_from_file_replaces(self, tmp_path: Path) -> None:
        """configure(pricing=PricingTable.from_file(path)) is the file alone."""
        table = PricingTable.from_file(_table(tmp_path / "t.toml", TODAY))
        assert self._cost("gemini-2.5-flash", table) == (None, None)
        assert table.cost("tuned-x", Usage(input_tokens=1, output_tokens=1)) == Decimal("0.000003")

    def test_bad_replace(self, tmp_path: Path) -> None:
        """``replace`` must be a boolean."""
        path = tmp_path / "t.toml"
        path.write_text('version = "x"\nreplace = "yes"\n[models."m"]\ninput = "1"\noutput = "1"\n')
        with pytest.raises(vividly_trace.ConfigurationError, match="'replace' must be true"):
            PricingTable.load(path)
