"""The caller columns (revision 0005) through every write path: plain INSERT, COPY, and
COPY falling back to the staging table on a replayed batch; NUL characters on PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.factories import make_record
from vividly_trace.sinks import SQLSink


def callers(engine: sa.Engine) -> dict[str, tuple[str | None, str | None, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT id, user_id, session_id, request_id FROM prompt_executions")
        ).all()
    return {r.id: (r.user_id, r.session_id, r.request_id) for r in rows}


@pytest.mark.parametrize("use_copy", [True, False])
def test_callers_are_stored_on_every_path(db_url: str, use_copy: bool) -> None:
    """Each row keeps its record's user, session and request id; a replayed batch (COPY's
    unique violation, then the staging table) stores the new rows' callers too."""
    if use_copy and not db_url.startswith("postgresql"):
        pytest.skip("COPY is PostgreSQL's")
    sink = SQLSink(db_url, use_copy=use_copy)
    first = make_record("t", user_id="alice", session_id="s-1", request_id="r-1")
    assert sink.write_batch([first]) is None
    anonymous = make_record("t")
    bob = make_record("t", user_id="bob", session_id=None, request_id="r-2")
    assert sink.write_batch([first, anonymous, bob]) is None
    assert callers(sink.engine) == {
        first.execution_id: ("alice", "s-1", "r-1"),
        anonymous.execution_id: (None, None, None),
        bob.execution_id: ("bob", None, "r-2"),
    }
    sink.close()


@pytest.mark.postgres
def test_nul_in_a_caller_is_replaced_on_postgresql(postgres_url: str) -> None:
    """PostgreSQL text cannot hold NUL: the character is replaced, the row is written."""
    sink = SQLSink(postgres_url)
    record = make_record("t", user_id="a\x00b", session_id="s\x00", request_id="r")
    assert sink.write_batch([record]) is None
    ((user, session, request),) = callers(sink.engine).values()
    assert "\x00" not in user + session and request == "r"
    assert user.startswith("a") and user.endswith("b")
    sink.close()
