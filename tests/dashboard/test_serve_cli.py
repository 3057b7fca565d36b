"""``vividly-trace serve`` options: the token from the environment, the safe default bind,
one clear line and exit status 2 for a store it cannot open."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.cli.cli_helpers import run_cli
from tests.dashboard.serve_helpers import serving


def test_token_from_the_environment(store: str, tmp_path: Path) -> None:
    env = {"VIVIDLY_TRACE_DASHBOARD_TOKEN": "from-env"}
    with serving(store, log=tmp_path / "serve.log", **env) as base:
        assert httpx.get(base + "/api/overview").status_code == 401
        good = {"authorization": "Bearer from-env"}
        assert httpx.get(base + "/api/overview", headers=good).status_code == 200
    assert "(token required)" in (tmp_path / "serve.log").read_text()


def test_open_without_a_token_on_loopback(store: str, tmp_path: Path) -> None:
    with serving(store, log=tmp_path / "serve.log") as base:
        assert base.startswith("http://127.0.0.1:")
        assert httpx.get(base + "/api/overview").json()["totals"]["calls"] == 14


def test_other_hosts_need_a_token(tmp_path: Path) -> None:
    done = run_cli("serve", "--url", f"sqlite:///{tmp_path / 'x.db'}", "--host", "0.0.0.0")
    assert done.returncode == 2
    assert "set --token" in done.stderr and done.stdout == ""


def test_missing_store_is_one_line(tmp_path: Path) -> None:
    done = run_cli("serve", "--url", f"sqlite:///{tmp_path / 'none.db'}")
    assert done.returncode == 2
    assert done.stderr.startswith("vividly-trace: error: no SQLite database at")
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "none.db").exists()
    done = run_cli("serve", "--url", "mysql://u:hunter2@h/db")
    assert done.returncode == 2 and "hunter2" not in done.stderr


def test_without_the_extra(tmp_path: Path) -> None:
    """Without starlette (or uvicorn): the import names the extra, serve says so in one line."""
    from tests.test_import_isolation import run

    for blocked in ("starlette", "jinja2", "uvicorn"):
        found = run(
            """
            import json, sys
            import vividly_trace.dashboard as d
            from vividly_trace.cli import main
            try:
                d.create_app("sqlite:///none.db")
                error = None
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
            try:
                main(["serve", "--url", "sqlite:///none.db"])
            except SystemExit as exc:
                code = exc.code
            print(json.dumps({"error": error, "code": code}))
            """,
            blocked=(blocked,),
            tmp=tmp_path,
        )
        assert found["code"] == 2
        if blocked != "uvicorn":
            assert found["error"].startswith("MissingExtraError: ")
            assert "pip install 'vividly-trace[dashboard]'" in found["error"]


def test_serve_checks_alert_rules(tmp_path: Path) -> None:
    """``serve --rules``: the rules are checked while the dashboard runs; the alert reaches
    the webhook once per window although the check runs every second."""
    import datetime as dt
    import time
    from decimal import Decimal

    from tests.factories import make_record
    from tests.sql.sql_helpers import write_records
    from tests.sql.test_sql_alerts import Receiver

    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    now = dt.datetime.now(dt.timezone.utc)
    write_records(url, [make_record("nlu", started_at=now, cost_usd=Decimal("1.5"))])
    rules = tmp_path / "alerts.toml"
    rules.write_text(
        '[[rule]]\nname = "daily"\nkind = "cost"\nthreshold = "1"\nwindow = "day"\n',
        encoding="utf-8",
    )
    receiver = Receiver()
    log = tmp_path / "serve.log"
    try:
        args = ("--rules", str(rules), "--webhook", receiver.url, "--alerts-every", "1")
        with serving(url, *args, log=log) as base:
            deadline = time.monotonic() + 30
            while not receiver.posts and time.monotonic() < deadline:
                time.sleep(0.1)
            assert len(receiver.posts) == 1, log.read_text()
            time.sleep(2.5)  # two more checks: still one notification in this window
            assert len(receiver.posts) == 1
            assert httpx.get(base + "/api/overview").status_code == 200
        assert "daily" in json.dumps(receiver.posts[0])
    finally:
        receiver.close()
    assert "alerts: 1 rules checked every 1 s" in log.read_text()


def test_serve_rejects_bad_rules(tmp_path: Path) -> None:
    rules = tmp_path / "alerts.toml"
    rules.write_text('[[rule]]\nname = "daily"\nkind = "cost"\n', encoding="utf-8")
    done = run_cli("serve", "--url", f"sqlite:///{tmp_path / 'x.db'}", "--rules", str(rules))
    assert done.returncode == 2
    assert "rule 'daily': threshold: missing" in done.stderr
