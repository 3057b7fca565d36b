"""Shared fixtures: a clean vividly_trace per test, a loopback-only network, internal-error
surfacing, servers."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import vividly_trace
from vividly_trace._safety import add_internal_error_hook, remove_internal_error_hook, reset_limits

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


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


@pytest.fixture(autouse=True)
def _internal_errors_fail_the_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """An exception the SDK swallowed as its own failure fails the test that caused it.

    "Logging never raises into the caller" must not hide bugs: every internal ``except``
    reports through ``vividly_trace._safety.internal_error``, and this fixture re-raises
    what was reported at teardown (as sentry-python's tests do). A test that provokes one on
    purpose says so with ``@pytest.mark.internal_errors`` and asserts on it itself.
    """
    seen: list[BaseException] = []
    add_internal_error_hook(seen.append)
    try:
        yield
    finally:
        remove_internal_error_hook(seen.append)
    if seen and request.node.get_closest_marker("internal_errors") is None:
        raise AssertionError(
            f"vividly_trace swallowed {len(seen)} internal error(s); the first: {seen[0]!r}"
        ) from seen[0]


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Refuse (and remember) any connection or name lookup beyond 127.0.0.1 in this process.

    No test may use the network except 127.0.0.1 (the fake servers). A metadata-server
    probe or a real Google endpoint would show up here; the test then fails at teardown
    even if the library swallowed the refusal. Unix sockets are allowed. The fixture's value
    is the list of refused attempts.
    """
    attempts: list[str] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def allowed(address: Any) -> bool:
        if isinstance(address, (str, bytes)):  # AF_UNIX
            return True
        return isinstance(address, tuple) and str(address[0]) in _LOOPBACK

    def connect(self: socket.socket, address: Any) -> None:
        if not allowed(address):
            attempts.append(f"connect {address!r}")
            raise OSError(f"network disabled in tests: connect to {address!r}")
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if not allowed(address):
            attempts.append(f"connect_ex {address!r}")
            raise OSError(f"network disabled in tests: connect to {address!r}")
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and str(host) not in _LOOPBACK:
            attempts.append(f"getaddrinfo {host!r}")
            raise socket.gaierror(f"network disabled in tests: lookup of {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield attempts
    assert attempts == [], f"a test tried to reach the network: {attempts}"


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


@pytest.fixture(name="records")
def _records() -> Iterator[Any]:
    """The records of the calls the test makes (``capture_records()``); a test module may
    define its own."""
    from vividly_trace.testing import capture_records

    with capture_records() as records:
        yield records


@pytest.fixture(name="client")
def _client(gemini: Any) -> Any:
    """A real ``google.genai.Client`` pointed at the session's fake Gemini."""
    return gemini.genai_client()
