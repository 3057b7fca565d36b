"""``report``, ``tail``, ``reprice`` and ``pricing`` through the real ``vividly-trace`` entry
point (a subprocess, no terminal: 80 columns), including the error paths."""

from __future__ import annotations

import datetime as dt
import json
import socket
import subprocess
import time
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.cli.cli_helpers import UTC, cli_env, entry_point, make_records, run_cli
from tests.factories import make_record
from tests.sql.sql_helpers import write_records
from vividly_trace import PricingTable


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def assert_one_error_line(result: subprocess.CompletedProcess[str], *absent: str) -> str:
    """Exit 2, nothing on stdout, exactly one line on stderr, no traceback, no secrets."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("vividly-trace: error: ")
    assert "Traceback" not in result.stderr
    for secret in absent:
        assert secret not in result.stderr
    return lines[0]


def external_references(page: str) -> list[str]:
    """src= / href= attributes of the page's tags that point outside it."""
    from html.parser import HTMLParser

    found: list[str] = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            for name, value in attrs:
                if name in ("src", "href") and value and not value.startswith("#"):
                    found.append(f"<{tag} {name}={value}>")

    Parser().feed(page)
    return found


def assert_fits_80_columns(text: str) -> None:
    for line in text.splitlines():
        assert len(line) <= 80, line


class TestReport:
    def test_terminal_tables(self, store_url: str) -> None:
        """Every section is printed, within 80 columns, nothing on stderr."""
        result = run_cli("report", "--url", store_url, "--include-infra-errors")
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        out = result.stdout
        for heading in (
            "Cost and success by template",
            "Daily cost (UTC)",
            "Latency (ms)",
            "Top error patterns",
            "A/B: nlu",
        ):
            assert heading in out
        assert "500 INTERNAL: request <n> failed" in out
        assert "v2/B better at 95%" in out
        assert "400 calls" in out
        assert_fits_80_columns(out)

    def test_default_url_from_the_environment(self, store_url: str, tmp_path: Path) -> None:
        """Without --url: $VIVIDLY_TRACE_DATABASE_URL."""
        result = run_cli("report", env=cli_env(VIVIDLY_TRACE_DATABASE_URL=store_url), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "400 calls" in result.stdout

    def test_default_url_is_the_embedded_store(self, store_url: str, tmp_path: Path) -> None:
        """Without --url or the variable: ./vividly_trace.db."""
        Path(store_url.removeprefix("sqlite:///")).rename(tmp_path / "vividly_trace.db")
        result = run_cli("report", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "sqlite:///vividly_trace.db" in result.stdout

    def test_filters_and_baseline(self, store_url: str) -> None:
        """--template, --baseline and a window with nothing in it."""
        result = run_cli(
            "report", "--url", store_url, "-t", "nlu", "--control", "v2/B", "--include-infra-errors"
        )
        assert result.returncode == 0, result.stderr
        assert "clarify" not in result.stdout
        assert "v1/A worse at 95%" in result.stdout
        empty = run_cli("report", "--url", store_url, "--until", "2020-01-01", "--since", "all")
        assert empty.returncode == 0
        assert "No executions in this window." in empty.stdout

    def test_html(self, store_url: str, tmp_path: Path) -> None:
        """--html writes one self-contained page: plotly inlined, nothing fetched."""
        target = tmp_path / "out" / "report.html"
        result = run_cli("report", "--url", store_url, "--html", str(target))
        assert result.returncode == 0, result.stderr
        assert f"HTML report written to {target}" in result.stdout.replace("\n", "")
        page = target.read_text(encoding="utf-8")
        assert page.startswith("<!DOCTYPE html>")
        assert external_references(page) == []
        # cost, cost by model, latency, one A/B
        assert page.count('class="plotly-graph-div"') == 4
        assert len(page) > 1_000_000  # plotly.js itself is inside
        assert target.stat().st_mode & 0o644 == 0o644

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("not a url", "not a database URL"),
            ("foo://u:s3cr3t-pw@x/y", "SQLite or PostgreSQL"),
            ("sqlite:///does/not/exist.db", "no SQLite database"),
        ],
    )
    def test_bad_urls(self, url: str, message: str) -> None:
        """One line on stderr, exit 2."""
        line = assert_one_error_line(run_cli("report", "--url", url), "s3cr3t-pw")
        assert message in line

    def test_unreachable_database(self) -> None:
        """A refused PostgreSQL connection: one line, password hidden."""
        url = f"postgresql+psycopg://bob:s3cr3t-pw@127.0.0.1:{closed_port()}/app"
        line = assert_one_error_line(run_cli("report", "--url", url), "s3cr3t-pw")
        assert "cannot connect to postgresql+psycopg://bob:***@127.0.0.1" in line

    def test_missing_tables(self, tmp_path: Path) -> None:
        """A database without the tables: one line that says what to run."""
        (tmp_path / "empty.db").touch()
        for command in ("report", "tail", "reprice"):
            line = assert_one_error_line(
                run_cli(command, "--url", f"sqlite:///{tmp_path / 'empty.db'}")
            )
            assert "vividly-trace db upgrade" in line

    @pytest.mark.postgres
    def test_postgres_missing_tables(self, postgres_url: str) -> None:
        """The same on PostgreSQL."""
        line = assert_one_error_line(run_cli("report", "--url", postgres_url))
        assert "no 'prompt_templates'" in line

    def test_unwritable_html(self, store_url: str, tmp_path: Path) -> None:
        """An --html path that cannot be written: one line naming it, exit 2."""
        blocker = tmp_path / "file.txt"
        blocker.write_text("x", encoding="utf-8")
        target = blocker / "report.html"
        line = assert_one_error_line(run_cli("report", "--url", store_url, "--html", str(target)))
        assert "cannot write the report" in line and str(target) in line

    def test_bad_time(self, store_url: str) -> None:
        """A --since that is not a time."""
        line = assert_one_error_line(run_cli("report", "--url", store_url, "--since", "soonish"))
        assert "not a time: 'soonish'" in line


class TestTail:
    def test_once(self, store_url: str) -> None:
        """--once prints the newest --last executions, oldest first, and exits."""
        result = run_cli("tail", "--url", store_url, "--once", "--last", "3")
        assert result.returncode == 0, result.stderr
        *lines, closing = result.stdout.splitlines()
        assert len(lines) == 3
        assert closing == "3 calls shown: 0 without usage, 0 without cost"
        stamps = [line[:19] for line in lines]
        assert stamps == sorted(stamps)
        engine = sa.create_engine(store_url)
        with engine.connect() as conn:
            newest = conn.execute(
                sa.text(
                    "SELECT template_name FROM prompt_executions ORDER BY executed_at DESC, id "
                    "DESC LIMIT 1"
                )
            ).scalar_one()
        engine.dispose()
        assert newest in lines[-1]

    def test_follows_new_executions(self, store_url: str) -> None:
        """New executions written while tail runs are printed; --limit ends it."""
        proc = subprocess.Popen(
            [
                str(entry_point()),
                "tail",
                "--url",
                store_url,
                "--last",
                "0",
                "--interval",
                "0.1",
                "--limit",
                "5",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(),
        )
        try:
            time.sleep(1.0)
            assert proc.poll() is None  # waiting for new executions
            fresh = make_records(5, dt.datetime.now(UTC), seed=99, prefix="0192", span_s=1)
            write_records(store_url, fresh[:2])
            time.sleep(0.5)
            write_records(store_url, fresh[2:])
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 0, err
        *lines, closing = out.splitlines()
        assert len(lines) == 5
        assert closing.startswith("5 calls shown: ")
        failed = [r for r in fresh if not r.success]
        assert sum("FAIL" in line for line in lines) == len(failed)
        assert "Waiting for new executions" in err


class TestTailMissingData:
    """tail says when a call has no usage or no cost, and counts them (click's CliRunner)."""

    def _tail(self, url: str, *args: str) -> list[str]:
        from click.testing import CliRunner

        from vividly_trace.cli import _build

        result = CliRunner().invoke(_build(), ["tail", "--url", url, "--once", *args])
        assert result.exit_code == 0, result.output
        return result.output.splitlines()

    def test_unknown_cost_and_no_usage(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'store.db'}"
        when = dt.datetime(2026, 3, 2, 12, tzinfo=UTC)
        write_records(
            url,
            [
                make_record(
                    "priced",
                    n=1,
                    started_at=when,
                    input_token_count=10,
                    output_token_count=5,
                    cost_usd=Decimal("0.0125"),
                ),
                make_record(
                    "unpriced",
                    n=2,
                    started_at=when + dt.timedelta(seconds=1),
                    model="in-house",
                    input_token_count=10,
                    output_token_count=5,
                ),
                make_record("dark", n=3, started_at=when + dt.timedelta(seconds=2)),
            ],
        )
        priced, unpriced, dark, closing = self._tail(url)
        assert "15 tok" in priced and "$0.0125" in priced
        assert "unknown" not in priced and "no usage" not in priced
        assert "15 tok" in unpriced and "cost unknown" in unpriced
        assert "$0" not in unpriced
        assert "no usage" in dark and "cost unknown" in dark
        assert closing == "3 calls shown: 1 without usage, 2 without cost"
        *_, one, closing = self._tail(url, "--last", "1")
        assert "dark" in one
        assert closing == "1 call shown: 1 without usage, 1 without cost"
        assert self._tail(url, "-t", "other") == []  # nothing shown, nothing counted


class TestReprice:
    def test_dry_run_then_reprice(self, store_url: str, tmp_path: Path) -> None:
        """The dry run shows the change per template; the real run writes it."""
        dry = run_cli("reprice", "--url", store_url, "--dry-run")
        assert dry.returncode == 0, dry.stderr
        words = " ".join(dry.stdout.split())
        assert "Dry run with prices" in words and "nothing written" in words
        assert "nlu" in dry.stdout and "clarify" in dry.stdout and "total" in dry.stdout
        assert_fits_80_columns(dry.stdout)

        done = run_cli("reprice", "--url", store_url, "--batch-size", "50")
        assert done.returncode == 0, done.stderr
        assert "400 calls updated" in done.stdout
        engine = sa.create_engine(store_url)
        with engine.connect() as conn:
            versions = set(
                conn.execute(
                    sa.text("SELECT DISTINCT pricing_version FROM prompt_executions")
                ).scalars()
            )
            totals = conn.execute(
                sa.text(
                    "SELECT t.total_cost_usd, (SELECT sum(cost_usd) FROM prompt_executions e "
                    "WHERE e.template_id = t.id) FROM prompt_templates t"
                )
            ).all()
        engine.dispose()
        assert versions == {PricingTable.default().version}
        assert len(totals) == 3  # the data set's templates: nlu v1/A, nlu v2/B, clarify
        for total, aggregate in totals:
            assert total == aggregate  # exact on both engines (SQLite: integer pico-dollars)

        again = run_cli("reprice", "--url", store_url)
        assert "0 calls updated" in again.stdout

    def test_bad_price_table(self, store_url: str, tmp_path: Path) -> None:
        """A missing or broken --pricing file: one line, exit 2."""
        assert "cannot read price table" in assert_one_error_line(
            run_cli("reprice", "--url", store_url, "--pricing", str(tmp_path / "nope.toml"))
        )
        broken = tmp_path / "broken.toml"
        broken.write_text("version = \n", encoding="utf-8")
        assert "is not valid" in assert_one_error_line(
            run_cli("reprice", "--url", store_url, "--pricing", str(broken))
        )


class TestPricing:
    def test_readable_in_80_columns(self) -> None:
        """One row per model, tiers on their own rows, sources as footnotes, no truncation."""
        result = run_cli("pricing")
        assert result.returncode == 0, result.stderr
        out = result.stdout
        assert_fits_80_columns(out)
        assert "\u2026" not in out  # nothing cut with an ellipsis
        table = PricingTable.default()
        assert f"Price table {table.version}" in out
        rows = out.split("\n\n")[0].splitlines()  # the table, before the notes
        for name, price in table.models.items():
            (row,) = [line for line in rows if line.split()[0] == name]
            cells = row.split()
            assert cells[-1].startswith("[")
            assert Decimal(cells[1]) == price.input and Decimal(cells[2]) == price.output
        assert "prompt > 200k tokens" in out
        # gemini-4-argon: its introductory price, the one from 2026-12-01, its Batch rows.
        argon = rows[[r.split()[0] for r in rows].index("gemini-4-argon") :][:5]
        assert [r.split() for r in argon[:2]] == [
            ["gemini-4-argon", "2", "10", "0.10", "-", argon[0].split()[-1]],
            ["from", "2026-12-01", "4", "20", "0.20", "-"],
        ]
        assert argon[2].split()[0] == "batch"
        assert "Sources:" in out
        assert "[1] genai-prices 0.2.3, provider google, as of 2026-12-03" in out
        assert "Curated:" in out and "gemini-3.7-flash:" in out

    def test_json(self) -> None:
        """--json is the whole table, exact prices as strings."""
        result = run_cli("pricing", "--json")
        doc = json.loads(result.stdout)
        assert doc["version"] == PricingTable.default().version
        assert Decimal(doc["models"]["gemini-2.5-flash"]["input"]) == Decimal("0.30")
        argon = doc["models"]["gemini-4-argon"]
        assert argon["changes"][0]["from"] == "2026-12-01" and argon["changes"][0]["input"] == "4"
        assert "batch" in argon["tiers"]

    def test_bad_file(self, tmp_path: Path) -> None:
        """A missing --file: one line, exit 2."""
        assert_one_error_line(run_cli("pricing", "--file", str(tmp_path / "nope.toml")))


@pytest.mark.parametrize("command", ["report", "tail", "reprice", "pricing", "demo", "serve"])
def test_help(command: str) -> None:
    """Every command has help."""
    result = run_cli(command, "--help")
    assert result.returncode == 0
    assert "Usage: vividly-trace " + command in result.stdout
