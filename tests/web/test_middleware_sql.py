"""Who called, end to end into the SQL store: a FastAPI app under real uvicorn with
``VividlyTraceMiddleware`` and an ``identify`` callback; concurrent requests of different
users each make real google-genai calls (sync in the thread pool, async with ``client.aio``)
to the fake Gemini, and every stored row carries its own request's user, session and id."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import fastapi
import httpx
import pytest
import sqlalchemy as sa

import vividly_trace
from tests.web.servers import UvicornServer
from vividly_trace import logged_prompt
from vividly_trace.analytics import cost_by_user, sessions
from vividly_trace.middleware import VividlyTraceMiddleware
from vividly_trace.sinks import SQLSink
from vividly_trace.testing.fake_gemini import Scenario

FLASH = "gemini-2.5-flash"
USERS = [f"user-{i}" for i in range(6)]
PER_USER = 4


def app_for(client: Any) -> fastapi.FastAPI:
    @logged_prompt("nlu_extraction")
    def extract(text: str) -> dict[str, Any]:
        response = client.models.generate_content(model=FLASH, contents=text)
        return dict(json.loads(response.text))

    @logged_prompt("nlu_extraction_async")
    async def extract_async(text: str) -> dict[str, Any]:
        response = await client.aio.models.generate_content(model=FLASH, contents=text)
        return dict(json.loads(response.text))

    app = fastapi.FastAPI()

    @app.get("/extract")
    def extract_endpoint(q: str) -> dict[str, Any]:
        return extract(q)

    @app.get("/aextract")
    async def extract_async_endpoint(q: str) -> dict[str, Any]:
        return await extract_async(q)

    def identify(scope: dict[str, Any]) -> dict[str, Any] | None:
        headers = dict(scope["headers"])
        user = headers.get(b"x-user")
        session = headers.get(b"x-session")
        if user is None:
            return None
        return {"user_id": user.decode(), "session_id": session.decode() if session else None}

    app.add_middleware(VividlyTraceMiddleware, identify=identify)
    return app


@pytest.fixture(
    name="db_url",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def _db_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A fresh database: a SQLite file, or a new database on the test PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("postgres_url"))


def test_concurrent_requests_store_their_own_caller(gemini: Any, client: Any, db_url: str) -> None:
    """24 overlapping requests of 6 users (2 sessions each, half of them async) and 2
    anonymous ones: each row has its request's user, session and request id."""
    gemini.set_default(
        Scenario(text='{"intent": "book"}', prompt_tokens=20, candidates_tokens=4, delay_s=0.05)
    )
    vividly_trace.configure(sinks=[SQLSink(db_url)], spool_dir=False)
    plan = [
        (user, f"{user}-s{j % 2}", "/extract" if j % 2 else "/aextract")
        for user in USERS
        for j in range(PER_USER)
    ] + [(None, None, "/extract"), (None, None, "/aextract")]

    with UvicornServer(app_for(client)) as base, httpx.Client(base_url=base, timeout=20) as http:

        def send(item: tuple[str | None, str | None, str]) -> tuple[str | None, str | None, str]:
            user, session, path = item
            headers = {"x-user": user, "x-session": session} if user and session else {}
            response = http.get(path, params={"q": f"for {user}"}, headers=headers)
            assert response.json() == {"intent": "book"}
            return user, session, response.headers["x-request-id"]

        with ThreadPoolExecutor(max_workers=12) as pool:
            sent = list(pool.map(send, plan))
    assert vividly_trace.flush(10)
    assert len({rid for _, _, rid in sent}) == len(plan)

    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT request_id, user_id, session_id, template_name, input_token_count "
                    "FROM prompt_executions"
                )
            ).all()
        stored = {r.request_id: (r.user_id, r.session_id) for r in rows}
        assert stored == {rid: (user, session) for user, session, rid in sent}
        assert {r.template_name for r in rows} == {"nlu_extraction", "nlu_extraction_async"}
        assert all(r.input_token_count == 20 for r in rows)  # the Gemini call was captured

        by_user = {u.user_id: u for u in cost_by_user(engine)}
        assert set(by_user) == {*USERS, None}
        assert all((by_user[u].calls, by_user[u].sessions) == (PER_USER, 2) for u in USERS)
        assert by_user[None].calls == 2
        mine = sessions(engine, user_id="user-3")
        assert sorted(s.session_id for s in mine) == ["user-3-s0", "user-3-s1"]
        assert all(s.calls == 2 and s.user_id == "user-3" for s in mine)
    finally:
        engine.dispose()
