"""Feedback as a web app collects it: a FastAPI app under real uvicorn answers with a
decorated function (a real google-genai call to the fake Gemini) and returns the execution
id; the user's thumbs up or down comes in a later request and is stored against it."""

from __future__ import annotations

from typing import Any

import fastapi
import httpx
import pydantic
import sqlalchemy as sa

import vividly_trace
from tests.sql.conftest import _db_url  # noqa: F401  # the db_url fixture (SQLite, PostgreSQL)
from tests.web.servers import UvicornServer
from vividly_trace import get_current_call, logged_prompt
from vividly_trace.sinks import SQLSink
from vividly_trace.testing.fake_gemini import Scenario

FLASH = "gemini-2.5-flash"


class Feedback(pydantic.BaseModel):
    execution_id: str
    helpful: bool
    comment: str | None = None


def app_for(client: Any) -> fastapi.FastAPI:
    @logged_prompt("clarification")
    def clarify(question: str) -> dict[str, str]:
        response = client.models.generate_content(model=FLASH, contents=question)
        call = get_current_call()
        assert call is not None
        return {"answer": str(response.text), "execution_id": call.execution_id}

    app = fastapi.FastAPI()

    @app.get("/clarify")
    def clarify_endpoint(q: str) -> dict[str, str]:
        return clarify(q)

    @app.post("/feedback")
    def feedback_endpoint(body: Feedback) -> dict[str, bool]:
        queued = vividly_trace.score(
            body.execution_id, "helpful", body.helpful, comment=body.comment
        )
        return {"queued": queued}

    return app


def test_feedback_from_a_later_request_is_stored_with_its_execution(
    gemini: Any, client: Any, db_url: str
) -> None:
    """Five answers, feedback on four (one changed later): each score row points to the
    execution that answered, and the changed one holds the last value."""
    gemini.set_default(Scenario(text="Which city?", prompt_tokens=12, candidates_tokens=3))
    vividly_trace.configure(sinks=[SQLSink(db_url)], spool_dir=False)
    with UvicornServer(app_for(client)) as base, httpx.Client(base_url=base) as http:
        answers = [http.get("/clarify", params={"q": f"book a trip {i}"}).json() for i in range(5)]
        ids = [a["execution_id"] for a in answers]
        assert all(a["answer"] == "Which city?" for a in answers)
        for i, eid in enumerate(ids[:4]):
            sent = http.post("/feedback", json={"execution_id": eid, "helpful": i % 2 == 0})
            assert sent.json() == {"queued": True}
        http.post(
            "/feedback", json={"execution_id": ids[1], "helpful": True, "comment": "it was fine"}
        )
    assert vividly_trace.flush(timeout=30)
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT s.execution_id, s.value_number, s.comment, e.template_name "
                    "FROM prompt_scores s JOIN prompt_executions e ON e.id = s.execution_id "
                    "WHERE s.name = 'helpful' AND s.source = 'user'"
                )
            ).all()
    finally:
        engine.dispose()
    got = {r[0]: (r[1], r[2], r[3]) for r in rows}
    assert got == {
        ids[0]: (1.0, None, "clarification"),
        ids[1]: (1.0, "it was fine", "clarification"),
        ids[2]: (1.0, None, "clarification"),
        ids[3]: (0.0, None, "clarification"),
    }
