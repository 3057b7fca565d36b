"""Reports by model from the per-request rows, the roll-up of nested calls, and repricing
request by request; on SQLite and PostgreSQL, with the calls made by decorated functions
through the real google-genai client against the fake Gemini.

Expected numbers are computed by hand, USD per 1M tokens: gemini-2.5-flash input 0.30,
output 2.50; gemini-2.5-pro input 1.25, output 10.00 (pricing-sources.md).
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import vividly_trace
from tests.analytics.conftest import far_timezone, new_pg_database
from tests.cli.cli_helpers import cli_env, run_cli
from tests.sql.sql_helpers import statistics_mismatches
from vividly_trace import PricingTable, log_prompt_execution, logged_prompt
from vividly_trace.analytics import build_report, cost_by_day, cost_by_model, reprice
from vividly_trace.analytics._report import format_cost, format_usd
from vividly_trace.sinks import MemorySink
from vividly_trace.sinks.sql import SQLSink
from vividly_trace.sinks.sql.schema import prompt_executions, prompt_requests
from vividly_trace.testing.fake_gemini import Scenario

genai = pytest.importorskip("google.genai")
from google.genai import errors as genai_errors  # noqa: E402

FLASH = "gemini-2.5-flash"
PRO = "gemini-2.5-pro"

# The calls below, by hand (micro-USD = tokens x USD per 1M):
# script_generation: flash 1000/300 = 300 + 750 = 1050; pro 400/50 = 500 + 500 = 1000.
# outer: flash 100/10 = 30 + 25 = 55, calling middle: pro 200/20 = 250 + 200 = 450,
#   calling inner: flash 50/5 = 15 + 12.5 = 27.5.
# fallback: flash 1000/300 = 1050, then pro answers 429 (no tokens, nothing billed).
# legacy (log_prompt_execution, no requests): pro 2000/100 = 2500 + 1000 = 3500.
OWN_COST = {
    "script_generation": Decimal("0.00205"),
    "outer": Decimal("0.000055"),
    "middle": Decimal("0.00045"),
    "inner": Decimal("0.0000275"),
    "fallback": Decimal("0.00105"),
    "legacy": Decimal("0.0035"),
}
BILL = Decimal("0.0071325")  # the sum of the above


@pytest.fixture(
    name="store", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def _store(request: pytest.FixtureRequest, tmp_path: Path, gemini: Any, client: Any) -> str:
    """A fresh store holding the calls above, written through configure(sinks=[SQLSink])."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = new_pg_database(request.getfixturevalue("postgres_server"))
        far_timezone(url)  # UTC days must not move with the session's time zone
    make_calls(url, gemini, client)
    return url


def make_calls(url: str, gemini: Any, client: Any) -> None:
    """Make the calls above through decorated functions, flush and shut down."""
    gemini.enqueue(
        Scenario(text="draft", prompt_tokens=1000, candidates_tokens=300),
        Scenario(text="final", prompt_tokens=400, candidates_tokens=50),
        Scenario(text="o", prompt_tokens=100, candidates_tokens=10),
        Scenario(text="m", prompt_tokens=200, candidates_tokens=20),
        Scenario(text="i", prompt_tokens=50, candidates_tokens=5),
        Scenario(text="draft", prompt_tokens=1000, candidates_tokens=300),
        Scenario(error_status=429),
    )
    memory = MemorySink()
    vividly_trace.configure(sinks=[SQLSink(url), memory])

    @logged_prompt("script_generation")
    def write_script(topic: str) -> str:
        draft = client.models.generate_content(model=FLASH, contents=topic).text
        return str(client.models.generate_content(model=PRO, contents=draft).text)

    @logged_prompt("inner")
    def inner() -> str:
        return str(client.models.generate_content(model=FLASH, contents="i").text)

    @logged_prompt("middle")
    def middle() -> str:
        text = str(client.models.generate_content(model=PRO, contents="m").text)
        return text + inner()

    @logged_prompt("outer")
    def outer() -> dict[str, str]:
        text = str(client.models.generate_content(model=FLASH, contents="o").text)
        return {"answer": text + middle()}

    @logged_prompt("fallback")
    def with_fallback() -> str:
        draft = str(client.models.generate_content(model=FLASH, contents="x").text)
        try:
            return str(client.models.generate_content(model=PRO, contents=draft).text)
        except genai_errors.APIError:
            return draft

    assert write_script("rain") == "final"
    assert outer() == {"answer": "omi"}
    assert with_fallback() == "draft"
    assert log_prompt_execution("legacy", True, 12.0, 2000, 100, model=PRO) is not None
    assert vividly_trace.flush(timeout=30)
    # The records are what the numbers above assume.
    costs = {r.template_key: r.cost_usd for r in memory.records}
    assert costs == OWN_COST
    vividly_trace.shutdown()


def request_costs(url: str) -> list[tuple[str, int, Decimal | None]]:
    """(template, seq, cost) of every request row."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    prompt_executions.c.template_name,
                    prompt_requests.c.seq,
                    prompt_requests.c.cost_usd,
                )
                .select_from(
                    prompt_requests.join(
                        prompt_executions, prompt_executions.c.id == prompt_requests.c.execution_id
                    )
                )
                .order_by(prompt_executions.c.template_name, prompt_requests.c.seq)
            ).all()
        return [tuple(r) for r in rows]  # type: ignore[misc]
    finally:
        engine.dispose()


def execution_costs(url: str) -> dict[str, tuple[Decimal | None, str | None]]:
    """template -> (cost, pricing version) of its one execution."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    prompt_executions.c.template_name,
                    prompt_executions.c.cost_usd,
                    prompt_executions.c.pricing_version,
                )
            ).all()
        return {r[0]: (r[1], r[2]) for r in rows}
    finally:
        engine.dispose()


class TestByModel:
    def test_cost_by_model_equals_the_hand_computed_numbers(self, store: str) -> None:
        """Each request counts under its own model; the execution without requests under
        its model; the failed request is a call with no cost; the total is the bill."""
        rows = cost_by_model(store)
        assert len({r.day for r in rows}) == 1
        by_model = {
            r.model: (
                r.calls,
                r.priced_calls,
                r.failed_calls,
                r.input_tokens,
                r.output_tokens,
                r.cost_usd,
            )
            for r in rows
        }
        assert by_model == {
            # script_generation, outer, inner, fallback: 1050 + 55 + 27.5 + 1050 micro-USD
            FLASH: (4, 4, 0, 2150, 615, Decimal("0.0021825")),
            # script_generation, middle, the 429 of fallback, legacy: 1000 + 450 + 3500
            PRO: (4, 3, 1, 2600, 170, Decimal("0.00495")),
        }
        assert [r.model for r in rows] == [PRO, FLASH]  # highest cost first
        assert sum(r.cost_usd for r in rows) == BILL
        assert sum(r.cost_usd for r in cost_by_day(store)) == BILL

    def test_by_template_and_the_template_filter(self, store: str) -> None:
        """by_template splits a model's calls by template; template= keeps one template's."""
        split = {
            (r.model, r.template): (r.calls, r.cost_usd)
            for r in cost_by_model(store, by_template=True)
        }
        assert split[(FLASH, "script_generation")] == (1, Decimal("0.00105"))
        assert split[(PRO, "script_generation")] == (1, Decimal("0.001"))
        assert split[(PRO, "fallback")] == (1, Decimal(0))
        assert split[(PRO, "legacy")] == (1, Decimal("0.0035"))
        assert len(split) == 8
        only = cost_by_model(store, template="script_generation")
        assert {(r.model, r.template, r.calls, r.cost_usd) for r in only} == {
            (FLASH, None, 1, Decimal("0.00105")),
            (PRO, None, 1, Decimal("0.001")),
        }
        daily = cost_by_day(store, by_model=True, template="script_generation")
        assert {(r.model, r.executions, r.cost_usd) for r in daily} == {
            (FLASH, 1, Decimal("0.00105")),
            (PRO, 1, Decimal("0.001")),
        }

    def test_the_window_applies_to_each_request_start(self, store: str) -> None:
        """A window after every call holds nothing; one ending before them too."""
        assert cost_by_model(store, since="0s") == []
        assert cost_by_model(store, until="1h", since="2h") == []
        assert len(cost_by_model(store, since="1h")) == 2


class TestRollup:
    def test_a_nested_call_rolls_up_into_every_ancestor(self, store: str) -> None:
        """outer -> middle -> inner: each row's rolled-up cost is its own plus its nested
        calls' (any depth); the plain costs still add up to the bill."""
        rows = {r.template: r for r in cost_by_day(store, rollup=True)}
        assert {t: r.cost_usd for t, r in rows.items()} == OWN_COST
        assert sum(r.cost_usd for r in rows.values()) == BILL
        rolled = {t: (r.rolled_up_cost_usd, r.rolled_up_executions) for t, r in rows.items()}
        assert rolled == {
            "outer": (Decimal("0.0005325"), 3),  # 55 + 450 + 27.5
            "middle": (Decimal("0.0004775"), 2),  # 450 + 27.5
            "inner": (Decimal("0.0000275"), 1),
            "script_generation": (Decimal("0.00205"), 1),
            "fallback": (Decimal("0.00105"), 1),
            "legacy": (Decimal("0.0035"), 1),
        }
        assert all(r.rolled_up_unpriced == 0 for r in rows.values())
        assert all(r.rolled_up_cost_usd is None for r in cost_by_day(store))

    def test_the_report_shows_it(self, store: str) -> None:
        """build_report rolls up per template and says there are nested calls."""
        report = build_report(store)
        assert report.has_nested_calls
        outer = report.rolled_up("outer")
        assert outer is not None and (outer.cost_usd, outer.executions) == (Decimal("0.0005325"), 3)
        assert report.cost_usd == BILL
        assert [(t.model, t.calls, t.cost_usd) for t in report.model_totals] == [
            (PRO, 4, Decimal("0.00495")),
            (FLASH, 4, Decimal("0.0021825")),
        ]

    def test_rollup_and_by_model_are_refused_together(self, store: str) -> None:
        """A nested call may use other models: the two options are refused together."""
        from vividly_trace import ConfigurationError

        with pytest.raises(ConfigurationError, match="by_model and rollup"):
            cost_by_day(store, by_model=True, rollup=True)


class TestCommandLine:
    def test_report_by_model_and_rolled_up(self, store: str, tmp_path: Path) -> None:
        """`vividly-trace report` prints the by-model table and the rolled-up column with
        the numbers above; the HTML page has the by-model section."""
        page = tmp_path / "report.html"
        result = run_cli(
            "report",
            "--url",
            store,
            "--since",
            "all",
            "--html",
            str(page),
            env=cli_env(COLUMNS="160"),
        )
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith("Cost by model"))
        table = {line.split()[0]: line.split()[1:] for line in lines[start + 3 : start + 6]}
        assert table[PRO][:4] == ["4", "1", "2,600", "170"]
        assert " ".join(table[PRO][4:]) == format_cost(Decimal("0.00495"), 4, 1)
        assert table[FLASH] == ["4", "0", "2,150", "615", format_usd(Decimal("0.0021825"))]
        assert table["total"][:4] == ["8", "1", "4,750", "785"]
        assert " ".join(table["total"][4:]) == format_cost(BILL, 8, 1)
        assert "with nested" in result.stdout
        outer = next(line for line in lines if line.startswith("outer "))
        assert format_usd(Decimal("0.0005325")) in outer.split()
        html = page.read_text(encoding="utf-8")
        section = html[html.index("<section id='by-model'>") :]
        section = section[: section.index("</section>")]
        assert "chart-model-cost" in section
        assert f"<td>{PRO}</td><td class='n'>4</td><td class='n'>1</td>" in section
        assert f"{format_usd(Decimal('0.0021825'))}</td>" in section
        assert "with nested calls" in html


class TestReprice:
    def test_reprice_updates_requests_and_their_execution(self, store: str) -> None:
        """Doubled flash prices: each flash request is repriced, each execution's cost
        becomes its requests' sum, the statistics follow; a second run changes nothing."""
        doubled = PricingTable.default().with_overrides(
            {FLASH: {"input": "0.60", "output": "5.00"}}, version="doubled-flash"
        )
        dry = reprice(store, pricing=doubled, dry_run=True)
        assert dry.cost_changed == 4
        assert execution_costs(store)["outer"][0] == OWN_COST["outer"]  # nothing written

        result = reprice(store, pricing=doubled)
        # flash 1000/300 at 0.60/5.00 = 600 + 1500 = 2100; 100/10 = 60 + 50 = 110;
        # 50/5 = 30 + 25 = 55 micro-USD. pro unchanged; the 429 has no tokens.
        assert request_costs(store) == [
            ("fallback", 0, Decimal("0.0021")),
            ("fallback", 1, None),
            ("inner", 0, Decimal("0.000055")),
            ("middle", 0, Decimal("0.00045")),
            ("outer", 0, Decimal("0.00011")),
            ("script_generation", 0, Decimal("0.0021")),
            ("script_generation", 1, Decimal("0.001")),
        ]
        assert execution_costs(store) == {
            "fallback": (Decimal("0.0021"), "doubled-flash"),
            "inner": (Decimal("0.000055"), "doubled-flash"),
            "middle": (Decimal("0.00045"), "doubled-flash"),
            "outer": (Decimal("0.00011"), "doubled-flash"),
            "script_generation": (Decimal("0.0031"), "doubled-flash"),  # 2100 + 1000
            "legacy": (Decimal("0.0035"), "doubled-flash"),  # no requests: from its counts
        }
        assert (result.cost_changed, result.updated, result.unpriced) == (4, 6, 0)
        # 2100 + 55 + 450 + 110 + 3100 + 3500 micro-USD
        assert result.new_cost_usd == Decimal("0.009315")
        engine = sa.create_engine(store)
        assert statistics_mismatches(engine) == []
        engine.dispose()
        again = reprice(store, pricing=doubled)
        assert (again.updated, again.cost_changed) == (0, 0)

    def test_a_request_without_a_price_keeps_its_cost(self, store: str) -> None:
        """A table without gemini-2.5-pro reprices the flash requests and keeps the pro
        ones' costs; those executions count as unpriced and the model is named."""
        flash_only = PricingTable({FLASH: {"input": "0.60", "output": "5.00"}}, "flash-only")
        before = execution_costs(store)
        result = reprice(store, pricing=flash_only)
        assert result.unknown_models == (PRO,)
        assert request_costs(store) == [
            ("fallback", 0, Decimal("0.0021")),
            ("fallback", 1, None),
            ("inner", 0, Decimal("0.000055")),
            ("middle", 0, Decimal("0.00045")),  # kept
            ("outer", 0, Decimal("0.00011")),
            ("script_generation", 0, Decimal("0.0021")),
            ("script_generation", 1, Decimal("0.001")),  # kept
        ]
        after = execution_costs(store)
        assert after["script_generation"] == (Decimal("0.0031"), "flash-only")  # 2100 + 1000
        # Only pro requests, or no requests and a pro model: left as they were.
        assert after["middle"] == before["middle"] == (OWN_COST["middle"], before["middle"][1])
        assert after["legacy"] == before["legacy"]
        assert after["fallback"] == (Decimal("0.0021"), "flash-only")
        # script_generation (its pro request), middle and legacy could not be priced.
        assert result.unpriced == 3
        engine = sa.create_engine(store)
        assert statistics_mismatches(engine) == []
        engine.dispose()

    def test_a_request_no_table_prices_leaves_its_execution_unknown(self, store: str) -> None:
        """An execution whose second request is of a model no table prices (cost unknown
        when it was recorded) stays unknown: its flash request is repriced, the sum is not
        made up from a part."""
        from tests.factories import record_with_requests
        from vividly_trace import RequestRecord

        base = record_with_requests("in_house", 1)
        unknown = RequestRecord(
            "generate_content",
            True,
            5.0,
            model="in-house-model",
            input_token_count=10,
            output_token_count=2,
            total_token_count=12,
        )
        record = dataclasses.replace(base, requests=(*base.requests, unknown), cost_usd=None)
        sink = SQLSink(store)
        assert sink.write_batch([record]) is None
        sink.close()
        doubled = PricingTable.default().with_overrides(
            {FLASH: {"input": "0.60", "output": "5.00"}}, version="doubled-flash"
        )
        result = reprice(store, pricing=doubled, template="in_house")
        assert result.unknown_models == ("in-house-model",)
        assert (result.unpriced, result.cost_changed) == (1, 0)
        # The flash request: 1 input token at 0.60 per 1M.
        assert [r for r in request_costs(store) if r[0] == "in_house"] == [
            ("in_house", 0, Decimal("0.0000006")),
            ("in_house", 1, None),
        ]
        assert execution_costs(store)["in_house"][0] is None
