"""A store for the dashboard tests, filled through the real pipeline: decorated functions
calling the real google-genai client against the fake Gemini, written by the SQL sink."""

from __future__ import annotations

from contextlib import suppress
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from google.genai import errors as genai_errors

import vividly_trace
from vividly_trace import log_prompt_execution, logged_prompt
from vividly_trace.sinks.sql import SQLSink
from vividly_trace.testing.fake_gemini import Scenario

FLASH = "gemini-2.5-flash"
HOSTILE_KEY = '<script>window.__pwned = 1</script>"><b>'
HOSTILE_META = '<img src=x onerror="window.__pwned = 2">'
PROMPT_TEXT = "Summarize in one line: {text} <i>never markup</i>"


def fill_store(url: str, gemini: Any, client: Any) -> None:
    """summarize v1/A (6 ok, user u-1) and v2/B (4 ok + 2 HTTP 400, user u-2), one call of
    a template whose key and metadata hold markup, and one call without a cost."""
    gemini.enqueue(
        *[Scenario(text="s", prompt_tokens=100, candidates_tokens=20) for _ in range(6)],
        *[Scenario(text="s", prompt_tokens=120, candidates_tokens=10) for _ in range(4)],
        *[Scenario(error_status=400) for _ in range(2)],
        Scenario(text="x", prompt_tokens=10, candidates_tokens=5),
    )
    sink = SQLSink(url)
    vividly_trace.configure(sinks=[sink])

    def summarize(version: str, group: str) -> Any:
        @logged_prompt("summarize", version=version, ab_group=group)
        def call(text: str) -> str:
            return str(client.models.generate_content(model=FLASH, contents=text).text)

        return call

    v1, v2 = summarize("v1", "A"), summarize("v2", "B")
    with vividly_trace.context(user_id="u-1", session_id="s-1"):
        for i in range(6):
            v1(f"text {i}")
    with vividly_trace.context(user_id="u-2", session_id="s-2"):
        for i in range(6):
            with suppress(genai_errors.APIError):  # two HTTP 400s, recorded as failures
                v2(f"text {i}")

    @logged_prompt(HOSTILE_KEY, metadata={"note": HOSTILE_META})
    def hostile() -> str:
        return str(client.models.generate_content(model=FLASH, contents="x").text)

    hostile()
    assert log_prompt_execution("legacy", True, 12.0, 100, 10, model="mystery-model")
    assert vividly_trace.flush(timeout=30)
    sink.register_template("summarize", "v1", "A", text=PROMPT_TEXT)
    vividly_trace.shutdown()


def scalar(url: str, sql: str, **params: Any) -> Any:
    """One value computed by SQL in the test (a writable engine of its own)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()
    finally:
        engine.dispose()


def stored_costs(url: str) -> list[Decimal | None]:
    """Every execution's ``cost_usd``, in dollars (the column's type converts SQLite's
    pico-dollars)."""
    from vividly_trace.sinks.sql.schema import prompt_executions

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.select(prompt_executions.c.cost_usd)).scalars())
    finally:
        engine.dispose()


def values(url: str, sql: str, **params: Any) -> list[Any]:
    """The first column of every row of ``sql``."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [row[0] for row in conn.execute(sa.text(sql), params)]
    finally:
        engine.dispose()
