"""Shared fixtures: a clean vividly_trace per test, internal-error surfacing, servers."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import vividly_trace
from vividly_trace._safety import reset_limits


@pytest.fixture(autouse=True)
def _reset_vividly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts unconfigured, with its own spool directory and no env settings."""
    for var in ("VIVIDLY_TRACE_DATABASE_URL", "VIVIDLY_TRACE_SINKS", "VIVIDLY_TRACE_DISABLED"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("VIVIDLY_TRACE_SPOOL_DIR", str(tmp_path / "spool"))
    reset_limits()
    vividly_trace.reset()
    yield
    vividly_trace.reset()


@pytest.fixture(name="internal_errors")
def _internal_errors(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Capture the vividly_trace logger; the test asserts on what it says."""
    caplog.set_level(logging.DEBUG, logger="vividly_trace")
    yield caplog


@pytest.fixture(name="fake_gemini", scope="session")
def _fake_gemini() -> Iterator[object]:
    """A fake Gemini HTTP server on 127.0.0.1 for the real Google clients."""
    from vividly_trace.testing.fake_gemini import FakeGeminiServer

    with FakeGeminiServer() as server:
        yield server


@pytest.fixture(name="gemini")
def _gemini(fake_gemini: object) -> Iterator[object]:
    """The session's fake Gemini server, with an empty scenario queue and request log."""
    fake_gemini.reset()  # type: ignore[attr-defined]
    yield fake_gemini


@pytest.fixture(name="postgres_server", scope="session")
def _postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A throwaway PostgreSQL server on 127.0.0.1 (Debian's postgresql package).

    Set ``VIVIDLY_TRACE_TEST_PG_URL`` to use an already running server instead.
    """
    url = os.environ.get("VIVIDLY_TRACE_TEST_PG_URL")
    if url:
        yield url
        return
    from vividly_trace.testing.postgres import PostgresServer

    server = PostgresServer(tmp_path_factory.mktemp("pg"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(name="postgres_url")
def _postgres_url(postgres_server: object) -> Iterator[str]:
    """A fresh, empty database on the session's PostgreSQL server, as a SQLAlchemy URL."""
    if isinstance(postgres_server, str):
        yield postgres_server
        return
    url = postgres_server.create_database()  # type: ignore[attr-defined]
    yield url
