"""Alerts against a real webhook receiver on 127.0.0.1, on SQLite and PostgreSQL: once per
window, again in a new window, not lost while the receiver is down."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.factories import make_record
from tests.sql.sql_helpers import write_records
from vividly_trace.alerts import CostRule, ErrorRateRule
from vividly_trace.alerts._evaluator import check_once

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 3, 30, 10, 0, tzinfo=UTC)


class Receiver:
    """A webhook receiver: records each POST's JSON; answers 503 while ``down``."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.refused = 0
        self.down = False
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.down:
                    receiver.refused += 1
                    self.send_response(503)
                else:
                    receiver.posts.append(json.loads(body))
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T0/B0/secret"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(name="receiver")
def _receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _spend(url: str, at: dt.datetime, costs: list[str], template: str = "nlu") -> None:
    write_records(
        url,
        [
            make_record(template, started_at=at + dt.timedelta(seconds=i), cost_usd=Decimal(c))
            for i, c in enumerate(costs)
        ],
    )


def test_fires_once_per_window_and_again_in_the_next(
    db_url: str, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """Two checks in one window send one POST; spend in the next hour fires again."""
    rules = [CostRule("hourly spend", "1.00", window="hour")]
    _spend(db_url, T0 + dt.timedelta(minutes=5), ["0.40", "0.70"])
    _spend(db_url, T0 + dt.timedelta(minutes=6), ["5"], template="other")
    first = check_once(db_url, rules, T0 + dt.timedelta(minutes=10), webhook=receiver.url)
    second = check_once(db_url, rules, T0 + dt.timedelta(minutes=20), webhook=receiver.url)
    assert [(f.subject, f.value, f.new, f.delivered) for f in first] == [
        ("*", Decimal("6.10"), True, True)
    ]
    assert [(f.new, f.delivered) for f in second] == [(False, False)]
    assert len(receiver.posts) == 1
    post = receiver.posts[0]
    assert post["alert"]["rule"] == "hourly spend" and Decimal(post["alert"]["value"]) == Decimal(
        "6.1"
    )
    assert "reached the budget of $1.00" in post["text"] and "[hourly spend] *" in post["text"]
    assert "secret" not in caplog.text

    _spend(db_url, T0 + dt.timedelta(hours=1, minutes=1), ["2"])
    third = check_once(db_url, rules, T0 + dt.timedelta(hours=1, minutes=30), webhook=receiver.url)
    new = [f for f in third if f.new]
    assert [(f.window_start, f.value) for f in new] == [(T0 + dt.timedelta(hours=1), Decimal(2))]
    assert len(receiver.posts) == 2


def test_survives_the_receiver_being_down(
    db_url: str, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """While the receiver answers 503 the alert stays undelivered (and is retried, with the
    URL masked in the log); once it is back a later check delivers it exactly once."""
    rules = [ErrorRateRule("errors", 0.5, window="day", min_calls=4)]
    write_records(
        db_url,
        [
            make_record("nlu", started_at=T0 + dt.timedelta(minutes=i), success=i % 4 != 0)
            for i in range(8)
        ]
        + [
            make_record("nlu", started_at=T0 + dt.timedelta(minutes=10 + i), success=False)
            for i in range(4)
        ],
    )
    receiver.down = True
    options: dict[str, Any] = {"webhook": receiver.url, "tries": 2, "backoff_s": 0.01}
    at = T0 + dt.timedelta(hours=1)
    first = check_once(db_url, rules, at, retry_after_s=60, **options)
    assert [(f.subject, f.new, f.delivered) for f in first] == [("nlu", True, False)]
    assert first[0].value == pytest.approx(6 / 12)
    assert receiver.refused == 2 and receiver.posts == []
    assert "not delivered" in caplog.text and "http://127.0.0.1:" in caplog.text
    assert "secret" not in caplog.text
    # within the backoff: not even tried
    check_once(db_url, rules, at + dt.timedelta(seconds=30), retry_after_s=60, **options)
    assert receiver.refused == 2
    check_once(db_url, rules, at + dt.timedelta(minutes=2), retry_after_s=60, **options)
    assert receiver.refused == 4 and receiver.posts == []

    receiver.down = False
    later = check_once(db_url, rules, at + dt.timedelta(minutes=30), retry_after_s=60, **options)
    assert [(f.new, f.delivered) for f in later] == [(False, True)]
    check_once(db_url, rules, at + dt.timedelta(minutes=40), retry_after_s=60, **options)
    assert len(receiver.posts) == 1
    assert receiver.posts[0]["alert"]["subject"] == "nlu"


def _cli(*args: str) -> Any:
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "vividly_trace.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "VIVIDLY_TRACE_ALERTS_WEBHOOK": ""},
    )


def test_alerts_check_exit_codes(db_url: str, receiver: Receiver, tmp_path: Any) -> None:
    """0 when nothing fires, 1 when an alert fires (once: the next run is 0 again), 2 on a
    bad rules file or store; --json lists the firings."""
    now = dt.datetime.now(UTC)
    rules = tmp_path / "alerts.toml"
    rules.write_text(
        '[[rule]]\nname = "daily"\nkind = "cost"\nthreshold = "1"\nwindow = "day"\n',
        encoding="utf-8",
    )
    _spend(db_url, now - dt.timedelta(seconds=5), ["0.5"])
    quiet = _cli("alerts", "check", "--url", db_url, "--rules", str(rules))
    assert quiet.returncode == 0, quiet.stderr
    assert "nothing over threshold" in quiet.stdout

    _spend(db_url, now - dt.timedelta(seconds=3), ["0.75"])
    fired = _cli(
        "alerts",
        "check",
        "--url",
        db_url,
        "--rules",
        str(rules),
        "--webhook",
        receiver.url,
        "--json",
    )
    assert fired.returncode == 1, fired.stderr
    (row,) = json.loads(fired.stdout)
    assert (row["rule"], Decimal(row["value"]), row["new"]) == ("daily", Decimal("1.25"), True)
    assert len(receiver.posts) == 1
    again = _cli("alerts", "check", "--url", db_url, "--rules", str(rules))
    assert again.returncode == 0 and "already notified" in again.stdout

    rules.write_text('[[rule]]\nname = "daily"\nkind = "cost"\n', encoding="utf-8")
    bad = _cli("alerts", "check", "--url", db_url, "--rules", str(rules))
    assert bad.returncode == 2
    assert "rule 'daily': threshold: missing" in bad.stderr
    missing = _cli("alerts", "check", "--url", "sqlite:////nonexistent/x.db", "--rules", "x")
    assert missing.returncode == 2 and "cannot read the rules file" in missing.stderr


def test_latency_missing_usage_and_unknown_costs(db_url: str) -> None:
    """p95 per template over min_calls, calls without usage, and a per-template budget
    whose unknown costs are reported, not taken as $0; no webhook: the log has them."""
    from vividly_trace.alerts import LatencyRule, MissingUsageRule

    slow = [
        make_record("slow", started_at=T0 + dt.timedelta(seconds=i), response_time_ms=100.0 * i)
        for i in range(1, 21)
    ]
    fast = [make_record("fast", started_at=T0, response_time_ms=5.0) for _ in range(20)]
    bare = [make_record("bare", started_at=T0, cost_usd=None) for _ in range(3)]
    priced = [make_record("bare", started_at=T0, cost_usd=Decimal("2"))]
    write_records(db_url, slow + fast + bare + priced)
    rules = [
        LatencyRule("p95", 1500, window="day", min_calls=20),
        MissingUsageRule("no usage", threshold=3, window="day"),
        CostRule("per template", "1", window="day", per_template=True),
    ]
    firings = check_once(db_url, rules, T0 + dt.timedelta(hours=2))
    got = {(f.rule, f.subject): f for f in firings}
    assert set(got) == {("p95", "slow"), ("no usage", "*"), ("per template", "bare")}
    assert got[("p95", "slow")].value == pytest.approx(1905.0)  # PERCENTILE_CONT of 100..2000
    assert got[("no usage", "*")].value == 4 + 40  # make_record sets no token counts
    budget = got[("per template", "bare")]
    assert (budget.value, budget.unpriced_calls) == (Decimal(2), 3)
    assert "3 calls without a known cost, not counted" in budget.message
    assert all(f.new and f.delivered for f in firings)


def test_concurrent_checks_fire_once_and_run_loops(db_url: str, receiver: Receiver) -> None:
    """Four checks at once (as four cron runs would) fire the alert once and POST it
    once; run() keeps checking until stopped."""
    from vividly_trace.alerts import run

    rules = [CostRule("hourly spend", "1", window="hour")]
    _spend(db_url, T0 + dt.timedelta(minutes=1), ["3"])
    at = T0 + dt.timedelta(minutes=30)
    results: list[Any] = []
    barrier = threading.Barrier(4)

    def check() -> None:
        barrier.wait()
        results.append(check_once(db_url, rules, at, webhook=receiver.url))

    threads = [threading.Thread(target=check) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 4
    assert sum(f.new for firings in results for f in firings) == 1
    assert len(receiver.posts) == 1

    stop = threading.Event()
    calls: list[int] = []

    class Counting(list):  # type: ignore[type-arg]
        def __iter__(self) -> Any:
            calls.append(1)
            if len(calls) >= 6:
                stop.set()
            return super().__iter__()

    run(db_url, Counting(rules), interval_s=0.01, stop=stop, now=at, webhook=receiver.url)
    assert stop.is_set() and len(receiver.posts) == 1
