"""The dashboard's JSON endpoints over real uvicorn and httpx: numbers equal SQL computed
here, filters and paging, the access token, refused writes, the read-only engine."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import sqlalchemy as sa

from tests.dashboard.dashboard_data import (
    HOSTILE_KEY,
    HOSTILE_META,
    PROMPT_TEXT,
    scalar,
    stored_costs,
    values,
)
from tests.web.servers import UvicornServer
from vividly_trace.analytics import StoreUnavailableError
from vividly_trace.dashboard import create_app, read_only_engine


def get(base: str, path: str, **kwargs: Any) -> Any:
    response = httpx.get(base + path, timeout=30, **kwargs)
    assert response.status_code == 200, response.text
    return response.json()


def test_overview_equals_sql(store: str) -> None:
    with UvicornServer(create_app(store)) as base:
        data = get(base, "/api/overview")
    totals = data["totals"]
    assert totals["calls"] == scalar(store, "select count(*) from prompt_executions") == 14
    assert totals["successes"] == scalar(
        store, "select count(*) from prompt_executions where success"
    )
    assert totals["unpriced"] == scalar(
        store, "select count(*) from prompt_executions where cost_usd is null"
    )
    known = sum(
        (v for v in stored_costs(store) if v),
        Decimal(0),
    )
    assert Decimal(totals["cost_usd"]) == known
    assert totals["cost"].endswith(" + 3 unknown")
    rows = {row["template"]: row for row in data["templates"]}
    assert rows["summarize"]["calls"] == 12
    assert rows["summarize"]["failures"] == 2
    assert rows["legacy"]["cost"] == "unknown"  # no price for the model: never "$0"
    assert rows["legacy"]["cost_usd"] is None
    assert rows[HOSTILE_KEY]["calls"] == 1
    assert sum(row["calls"] for row in data["days"]) == 14


def test_template_page_data(store: str) -> None:
    with UvicornServer(create_app(store)) as base:
        data = get(base, "/api/templates/summarize")
        hostile = get(base, "/api/templates/" + quote(HOSTILE_KEY, safe=""))
    variants = {v["label"]: v for v in data["variants"]}
    assert set(variants) == {"v1/A", "v2/B"}
    assert variants["v1/A"]["calls"] == 6 and variants["v1/A"]["success_rate"] == 1.0
    assert variants["v2/B"]["successes"] == 4
    low, high = variants["v2/B"]["ci_low"], variants["v2/B"]["ci_high"]
    assert 0 < low < 4 / 6 < high < 1
    assert {row["label"] for row in data["latency"]} == {"v1/A", "v2/B"}
    assert sum(p["count"] for p in data["errors"]) == 2
    assert [t["template_text"] for t in data["texts"] if t["version"] == "v1"] == [PROMPT_TEXT]
    assert hostile["template"] == HOSTILE_KEY


def test_executions_filters_and_paging(store: str) -> None:
    with UvicornServer(create_app(store)) as base:
        failed = get(base, "/api/executions?template=summarize&version=v2&outcome=failed")
        assert failed["total"] == 2
        assert {(r["template_version"], r["success"]) for r in failed["rows"]} == {("v2", False)}
        by_user = get(base, "/api/executions?user=u-1")
        assert by_user["total"] == scalar(
            store, "select count(*) from prompt_executions where user_id = 'u-1'"
        )
        by_model = get(base, "/api/executions?model=mystery-model")
        assert [r["template_name"] for r in by_model["rows"]] == ["legacy"]
        assert get(base, "/api/executions?since=2000-01-01&until=2000-01-02")["total"] == 0
        first = get(base, "/api/executions?per_page=5")
        second = get(base, "/api/executions?per_page=5&page=2")
        third = get(base, "/api/executions?per_page=5&page=3")
        ids = [r["id"] for page in (first, second, third) for r in page["rows"]]
        assert first["total"] == 14 and len(ids) == 14 == len(set(ids))
        expected = values(
            store, "select id from prompt_executions order by executed_at desc, id desc"
        )
        assert ids == expected
        assert httpx.get(base + "/api/executions?since=tomorrow-ish").status_code == 400


def test_execution_detail(store: str) -> None:
    hostile_id = scalar(
        store, "select id from prompt_executions where template_name = :k", k=HOSTILE_KEY
    )
    with UvicornServer(create_app(store)) as base:
        data = get(base, f"/api/executions/{hostile_id}")
        assert httpx.get(base + "/api/executions/nope").status_code == 404
    assert data["execution"]["template_name"] == HOSTILE_KEY
    assert data["execution"]["metadata"] == {"note": HOSTILE_META}
    assert len(data["requests"]) == scalar(
        store, "select count(*) from prompt_requests where execution_id = :i", i=hostile_id
    )
    assert data["requests"][0]["model"] == "gemini-2.5-flash"
    assert data["scores"] == []  # none was given


def test_scores_of_an_execution(store: str) -> None:
    """Scores given through ``vividly_trace.score()`` are listed with their execution."""
    import vividly_trace
    from vividly_trace.sinks import SQLSink

    some_id = scalar(store, "select min(id) from prompt_executions")
    vividly_trace.configure(sinks=[SQLSink(store)])
    assert vividly_trace.score(some_id, "helpful", 0.75, comment="<b>ok</b>")
    assert vividly_trace.score(some_id, "resolved", True, source="agent")
    assert vividly_trace.score(some_id, "tone", "friendly")
    assert vividly_trace.flush(timeout=30)
    vividly_trace.shutdown()
    with UvicornServer(create_app(store)) as base:
        data = get(base, f"/api/executions/{some_id}")
    got = [(s["name"], s["source"], s["value"], s["type"], s["comment"]) for s in data["scores"]]
    assert got == [
        ("helpful", "user", 0.75, "numeric", "<b>ok</b>"),
        ("resolved", "agent", True, "boolean", None),
        ("tone", "user", "friendly", "categorical", None),
    ]


def test_users(store: str) -> None:
    with UvicornServer(create_app(store)) as base:
        data = get(base, "/api/users")
        only = get(base, "/api/users?user=u-2")
    users = {u["user_id"]: u for u in data["users"]}
    assert users["u-1"]["calls"] == 6 and users["u-2"]["failed_calls"] == 2
    assert [s["session_id"] for s in only["sessions"]] == ["s-2"]


def test_token_is_enforced(store: str) -> None:
    with UvicornServer(create_app(store, token="s3cret-token")) as base:
        assert httpx.get(base + "/api/overview").status_code == 401
        assert httpx.get(base + "/").status_code == 401
        wrong = {"authorization": "Bearer s3cret-tokeN"}
        assert httpx.get(base + "/api/overview", headers=wrong).status_code == 401
        good = {"authorization": "Bearer s3cret-token"}
        assert httpx.get(base + "/api/overview", headers=good).status_code == 200
        assert httpx.get(base + "/api/overview?token=s3cret-token").status_code == 200
        page = httpx.get(base + "/executions?token=s3cret-token&outcome=ok")
        assert page.status_code == 303
        assert page.headers["location"] == "/executions?outcome=ok"
        cookie = page.cookies["vividly_trace_token"]
        assert (
            httpx.get(base + "/executions", cookies={"vividly_trace_token": cookie}).status_code
            == 200
        )


def test_other_host_names_are_refused(store: str) -> None:
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 gets nothing."""
    with UvicornServer(create_app(store)) as base:
        assert (
            httpx.get(base + "/api/overview", headers={"host": "evil.example"}).status_code == 400
        )
        port = base.rsplit(":", 1)[1]
        named = httpx.get(f"http://localhost:{port}/api/overview")
        assert named.status_code == 200
    with UvicornServer(create_app(store, allowed_hosts=["*"])) as base:
        assert (
            httpx.get(base + "/api/overview", headers={"host": "evil.example"}).status_code == 200
        )


def test_writes_are_refused(store: str) -> None:
    with UvicornServer(create_app(store)) as base:
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            for path in ("/", "/api/overview", "/api/executions"):
                assert httpx.request(method, base + path).status_code == 405
        answer = httpx.get(base + "/")
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    assert answer.headers["x-content-type-options"] == "nosniff"
    engine = read_only_engine(store)
    try:
        with engine.connect() as conn, pytest.raises(sa.exc.DBAPIError, match=r"read.?only"):
            conn.execute(sa.text("delete from prompt_executions"))
    finally:
        engine.dispose()
    assert scalar(store, "select count(*) from prompt_executions") == 14


def test_missing_sqlite_file_is_refused(tmp_path: Any) -> None:
    with pytest.raises(StoreUnavailableError):
        read_only_engine(f"sqlite:///{tmp_path / 'none.db'}")
    assert not (tmp_path / "none.db").exists()
