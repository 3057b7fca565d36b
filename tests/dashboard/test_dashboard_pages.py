"""``vividly-trace serve`` started for real (uvicorn on 127.0.0.1, a free port), driven by
headless Chromium: every page loads without console errors or outside requests, the numbers
shown equal SQL computed here, filters work, stored markup is shown as text and never runs,
the token is enforced, live refresh polls. Screenshots go to $VIVIDLY_TRACE_SCREENSHOTS
when set (scripts/screenshots.py), else to the test's temporary directory."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest

import vividly_trace
from tests.cli.cli_chromium import Chromium, find_chromium
from tests.dashboard.dashboard_data import HOSTILE_KEY, HOSTILE_META, PROMPT_TEXT, scalar
from tests.dashboard.serve_helpers import serving
from vividly_trace import log_prompt_execution
from vividly_trace.analytics import wilson_interval
from vividly_trace.sinks.sql import SQLSink

CHROMIUM = find_chromium()
TOKEN = "t0ken-for-the-test"

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium")


@pytest.fixture(name="served")
def _served(store: str, tmp_path: Path) -> Iterator[str]:
    """``vividly-trace serve`` on the store, as a child process; yields its base URL."""
    with serving(store, "--token", TOKEN, "--refresh", "1", log=tmp_path / "serve.log") as base:
        yield base


def shots_dir(tmp_path: Path) -> Path:
    where = os.environ.get("VIVIDLY_TRACE_SCREENSHOTS")
    return Path(where) if where else tmp_path / "shots"


def text(page: Chromium, selector: str) -> Any:
    return page.evaluate(
        f"(() => {{ const e = document.querySelector({selector!r}); "
        "return e === null ? null : e.textContent.trim(); })()"
    )


def visit(page: Chromium, base: str, path: str) -> None:
    page.events.clear()
    page.open(base + path)
    assert page.evaluate("document.readyState") == "complete"
    assert page.problems() == [], path
    outside = [u for u in page.requests() if not u.startswith(base)]
    assert outside == [], outside
    assert page.evaluate("window.__pwned === undefined")


def test_pages_in_chromium(served: str, store: str, tmp_path: Path) -> None:
    assert CHROMIUM is not None
    shots = shots_dir(tmp_path)
    kind = "postgresql" if store.startswith("postgresql") else "sqlite"
    hostile_id = scalar(
        store, "select id from prompt_executions where template_name = :k", k=HOSTILE_KEY
    )
    with Chromium(CHROMIUM, height=900) as page:
        # Without the token: refused. With it once: a cookie, and the links work.
        page.open(served + "/")
        assert "401" in page.evaluate("document.body.innerText")
        visit(page, served, f"/?token={TOKEN}")
        assert page.evaluate("location.search") == ""

        # Overview: numbers equal SQL.
        calls = scalar(store, "select count(*) from prompt_executions")
        assert text(page, "#total-calls") == f"{calls:,}"
        unpriced = scalar(store, "select count(*) from prompt_executions where cost_usd is null")
        assert text(page, "#total-unpriced") == str(unpriced)
        ok = scalar(store, "select count(*) from prompt_executions where success")
        assert text(page, "#total-success") == f"{ok / calls * 100:.1f}%"
        assert text(page, 'tr[data-template="legacy"] td.cost') == "unknown"
        assert text(page, 'tr[data-template="summarize"] td.calls') == "12"
        assert page.evaluate("document.querySelectorAll('svg.chart rect').length") >= 1
        # The hostile key is a table cell's text, not markup.
        assert page.evaluate(
            "[...document.querySelectorAll('#templates td a')].map(a => a.textContent)"
            f".includes({HOSTILE_KEY!r})"
        )
        assert page.evaluate("document.querySelectorAll('script').length") == 1
        assert page.evaluate("document.querySelectorAll('main b, main img').length") == 0
        # Live refresh: the script polls /api/overview and says so.
        deadline = time.monotonic() + 30
        while not str(text(page, "#live-stamp")).startswith("updated"):
            assert time.monotonic() < deadline, text(page, "#live-stamp")
            time.sleep(0.2)
        assert text(page, "#total-calls") == f"{calls:,}"
        page.screenshot(shots / f"overview-{kind}.png")
        # A call logged while the page is open shows up without a reload.
        vividly_trace.configure(sinks=[SQLSink(store)])
        assert log_prompt_execution("summarize", True, 5.0, 10, 2, model="mystery-model")
        assert vividly_trace.flush(timeout=30)
        vividly_trace.shutdown()
        calls += 1
        deadline = time.monotonic() + 30
        while text(page, "#total-calls") != f"{calls:,}":
            assert time.monotonic() < deadline, text(page, "#total-calls")
            time.sleep(0.2)
        assert calls == scalar(store, "select count(*) from prompt_executions")
        assert text(page, 'tr[data-template="summarize"] td.calls') == "13"
        assert text(page, 'tr[data-template="summarize"] td.unpriced') == "3"
        assert text(page, 'tr[data-template="summarize"] td.cost').endswith(" + 3 unknown")
        assert page.problems() == []

        # Template page: variants with intervals, latency, errors, the prompt text.
        visit(page, served, "/templates/summarize")
        assert text(page, 'tr[data-variant="v2/B"] td.calls') == "6"
        assert text(page, 'tr[data-variant="v2/B"] td.rate') == "66.7%"
        interval = wilson_interval(4, 6)
        assert interval is not None
        low, high = interval
        shown = text(page, 'tr[data-variant="v2/B"] td.interval')
        assert shown == f"{low * 100:.1f}% \u2013 {high * 100:.1f}%"
        assert text(page, "pre.prompt-text") == PROMPT_TEXT
        assert page.evaluate("document.querySelectorAll('main i').length") == 0
        assert page.evaluate("document.querySelectorAll('#errors tbody tr').length") >= 1
        page.screenshot(shots / f"template-{kind}.png")

        visit(page, served, "/templates/" + quote(HOSTILE_KEY, safe=""))
        assert text(page, "#template-name") == HOSTILE_KEY
        assert page.evaluate("document.title").startswith(HOSTILE_KEY)

        # Executions: the filters narrow the list to what SQL counts.
        visit(page, served, "/executions?per_page=5")
        assert page.evaluate("document.querySelectorAll('#executions tbody tr').length") == 5
        assert text(page, "#total") == f"{calls:,} matching"
        page.screenshot(shots / f"executions-{kind}.png")
        page.evaluate(
            "document.querySelector('input[name=template]').value = 'summarize';"
            "document.querySelector('select[name=outcome]').value = 'failed';"
            "document.querySelector('#apply').click(); true"
        )
        page.wait_event("Page.loadEventFired")
        time.sleep(0.5)
        failed = scalar(
            store,
            "select count(*) from prompt_executions where template_name = 'summarize' "
            "and not success",
        )
        assert page.evaluate("document.querySelectorAll('#executions tbody tr').length") == failed
        assert text(page, "#total") == f"{failed} matching"
        query = urlencode({"user": "u-1", "per_page": 4})
        visit(page, served, f"/executions?{query}")
        assert page.evaluate("document.querySelectorAll('#executions tbody tr').length") == 4
        visit(page, served, f"/executions?{query}&page=2")
        assert page.evaluate("document.querySelectorAll('#executions tbody tr').length") == 2

        # One execution: metadata holding markup is text; its Gemini request is listed.
        visit(page, served, f"/executions/{hostile_id}")
        assert text(page, "#metadata td") == HOSTILE_META
        assert page.evaluate("document.querySelectorAll('main img').length") == 0
        assert page.evaluate("document.querySelectorAll('#requests tbody tr').length") == 1
        assert text(page, "#scores tbody") == "No scores."
        page.screenshot(shots / f"execution-{kind}.png")

        # Users: cost by user and the sessions.
        visit(page, served, "/users")
        users = page.evaluate(
            "[...document.querySelectorAll('#users tbody tr')]"
            ".map(r => [r.cells[0].textContent.trim(), r.cells[1].textContent.trim()])"
        )
        assert ["u-1", "6"] in users and ["u-2", "6"] in users
        page.screenshot(shots / f"users-{kind}.png")
        assert page.problems() == []

        # Writes are refused from the browser too.
        status = page.evaluate("fetch('/api/overview', {method: 'POST'}).then(r => r.status)")
        assert status == 405
