"""Missing data is loud: a cost that was not recorded reads "unknown", never "$0", and the
reports count the calls without usage and without cost (terminal and HTML)."""

from __future__ import annotations

import datetime as dt
import io
import re
from decimal import Decimal
from pathlib import Path

import pytest

from tests.factories import make_record
from tests.sql.sql_helpers import write_records
from vividly_trace.analytics import Report, build_report
from vividly_trace.analytics._report import (
    format_cost,
    format_cost_per_call,
    format_usd,
    render_html,
)

UTC = dt.timezone.utc
DAY = dt.datetime(2026, 3, 2, 12, tzinfo=UTC)


def _records() -> list:  # type: ignore[type-arg]
    """priced: all priced (day 1); partly: one of three unpriced, one without usage (day 2);
    dark: no usage, no cost at all (day 3)."""
    usage = {"input_token_count": 100, "output_token_count": 10}
    return [
        make_record("priced", n=1, started_at=DAY, cost_usd=Decimal("1.00"), **usage),
        make_record("priced", n=2, started_at=DAY, cost_usd=Decimal("0.50"), **usage),
        make_record("partly", n=3, started_at=DAY + dt.timedelta(days=1), **usage),
        make_record(
            "partly", n=4, started_at=DAY + dt.timedelta(days=1), cost_usd=Decimal("0.25"), **usage
        ),
        make_record("partly", n=5, started_at=DAY + dt.timedelta(days=1), cost_usd=Decimal("0.75")),
        make_record("dark", n=6, started_at=DAY + dt.timedelta(days=2), model="in-house"),
        make_record("dark", n=7, started_at=DAY + dt.timedelta(days=2), model="in-house"),
    ]


@pytest.fixture(name="report", scope="module")
def _report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    url = f"sqlite:///{tmp_path_factory.mktemp('unknown') / 'store.db'}"
    write_records(url, _records())
    return build_report(url, since=None)


def _terminal(report: Report) -> str:
    from rich.console import Console

    from vividly_trace.analytics._terminal import print_report

    out = io.StringIO()
    print_report(report, Console(file=out, width=120, color_system=None))
    return out.getvalue()


def _line(text: str, start: str) -> str:
    lines = [line for line in text.splitlines() if line.startswith(start)]
    assert lines, f"no line starts with {start!r} in:\n{text}"
    return lines[0]


class TestFormatting:
    def test_one_wording_for_a_missing_cost(self) -> None:
        assert format_usd(None) == "unknown"
        assert format_cost(Decimal(0), 3, 3) == "unknown"
        assert format_cost(Decimal("1.23"), 7, 4) == "$1.23 + 4 unpriced"
        assert format_cost(Decimal("1.23"), 7, 0) == "$1.23"
        assert format_cost(Decimal(0), 2, 0) == "$0"  # a cost of 0 is known
        assert format_cost_per_call(Decimal("1.00"), 4, 2) == "$0.5000"
        assert format_cost_per_call(Decimal(0), 4, 4) == "unknown"


class TestTerminal:
    def test_unpriced_templates_read_unknown(self, report: Report) -> None:
        text = _terminal(report)
        dark = _line(text, "dark ")
        assert "unknown" in dark
        assert "$0" not in dark
        assert "$1.00 + 1 unpriced" in _line(text, "partly ")
        assert "$2.50 + 3 unpriced" in _line(text, "total ")
        assert "7 calls \u00b7 100.0% success \u00b7 $2.50 + 3 unpriced" in text

    def test_counts_calls_without_usage_and_cost(self, report: Report) -> None:
        text = _terminal(report)
        assert "Calls without usage: 3 \u00b7 without cost: 3" in text
        missing = text.split("Calls without usage or cost", 1)[1]
        assert re.search(r"^dark\s+2\s+2\s+2\s*$", missing, re.M)
        assert re.search(r"^partly\s+3\s+1\s+1\s*$", missing, re.M)
        assert re.search(r"^priced\s+2\s+0\s+0\s*$", missing, re.M)
        assert re.search(r"^total\s+7\s+3\s+3\s*$", missing, re.M)

    def test_unpriced_days_are_labelled_not_zero(self, report: Report) -> None:
        text = _terminal(report).split("Daily cost (UTC)", 1)[1]
        assert "$1.50" in _line(text, "2026-03-02")
        assert "$1.00 + 1 unpriced" in _line(text, "2026-03-03")
        last = _line(text, "2026-03-04")
        assert "unknown" in last
        assert "$0" not in last
        assert "\u2588" not in last  # no bar for an unknown cost

    def test_everything_known_prints_no_missing_table(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'store.db'}"
        write_records(url, _records()[:2])
        text = _terminal(build_report(url, since=None))
        assert "Calls without usage: 0 \u00b7 without cost: 0" in text
        assert "Calls without usage or cost" not in text
        assert "unpriced" not in text


def _row(page: str, first_cell: str) -> list[str]:
    """The cells of the table row whose first cell is ``first_cell``."""
    match = re.search(rf"<tr[^>]*><t[dh]>{re.escape(first_cell)}</t[dh]>(.*?)</tr>", page)
    assert match, first_cell
    return re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", match.group(1))


class TestHTML:
    def test_cards_and_template_table(self, report: Report) -> None:
        page = render_html(report)
        assert "<div class='k'>cost</div><div class='v'>$2.50 + 3 unpriced</div>" in page
        assert "<div class='k'>calls without usage</div><div class='v'>3</div>" in page
        assert "<div class='k'>calls without cost</div><div class='v'>3</div>" in page
        # calls, success, errors, no usage, no cost, cost, cost / call
        assert _row(page, "dark")[:7] == ["2", "100.0%", "0", "2", "2", "unknown", "unknown"]
        assert _row(page, "partly")[:7] == [
            "3",
            "100.0%",
            "0",
            "1",
            "1",
            "$1.00 + 1 unpriced",
            "$0.5000",
        ]
        assert _row(page, "priced")[3:6] == ["0", "0", "$1.50"]
        assert _row(page, "total")[:7] == [
            "7",
            "100.0%",
            "0",
            "3",
            "3",
            "$2.50 + 3 unpriced",
            "$0.6250",
        ]

    def test_unpriced_days_are_labelled_in_the_chart(self, report: Report) -> None:
        page = render_html(report)
        note = re.search(r"<p class='note unpriced'>(.*?)</p>", page)
        assert note is not None
        assert "2026-03-03: $1.00 + 1 unpriced (1 of 3 calls)" in note.group(1)
        assert "2026-03-04: unknown (2 calls)" in note.group(1)
        assert "2026-03-02" not in note.group(1)
        # The chart: no $0 bar for the unknown day, a label on it instead.
        figure = page.split("chart-daily-cost", 1)[1]
        assert '"text":"unknown"' in figure
        assert '"text":"+ 1 unpriced"' in figure
        assert re.search(r'"name":"dark".*?"y":\[0\.0,0\.0,null\]', figure)
