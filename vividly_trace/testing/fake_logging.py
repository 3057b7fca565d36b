"""A fake Google Cloud Logging endpoint that the real ``google-cloud-logging`` client can use.

The server listens on 127.0.0.1 (standard library only: ``ThreadingHTTPServer`` in a
daemon thread, HTTP/1.1 keep-alive, Nagle disabled), answers ``POST /v2/entries:write``
and records every request body, including those it answers with an error or holds::

    from vividly_trace.sinks import CloudLoggingSink
    from vividly_trace.testing.fake_logging import FakeLoggingServer

    with FakeLoggingServer() as fake:
        sink = CloudLoggingSink(project="p", client=fake.client("p"))
        fake.fail_next(2, status=503)          # the next two requests get 503
        ...
        assert fake.insert_ids() == [...]      # every entry received, in order

Answers are programmable:

* :meth:`~FakeLoggingServer.fail_next` - the next ``n`` requests get an error status
  (``{"error": {"code", "message", "status"}}`` as Google APIs answer);
* :meth:`~FakeLoggingServer.hang_next` - the next ``n`` requests are held ``seconds``
  (or until :meth:`Hang.release`) and then answered (200 by default);
* :meth:`~FakeLoggingServer.hang_for` - an outage window: every request that arrives
  in the next ``seconds`` is held until the window ends, then answered;
* :meth:`~FakeLoggingServer.enqueue` - any list of :class:`Reply` objects.

Requests beyond the queue get 200 ``{}``. A held request is recorded when it arrives,
so a body the client gave up on (timeout) is still in :attr:`~FakeLoggingServer.requests`.
:meth:`stop` releases holds and closes connections without answering them.

The module also provides :class:`LocalHTTPServer`, the base it shares with
:mod:`vividly_trace.testing.otlp_collector`.
"""

from __future__ import annotations

import abc
import json
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ._http import BaseLocalServer, LocalRequestHandler

__all__ = [
    "MAX_ENTRY_BYTES",
    "FakeLoggingServer",
    "Hang",
    "LocalHTTPServer",
    "ReceivedRequest",
    "Reply",
    "error_body",
]

#: The largest entry accepted (Cloud Logging's limit); a request with a larger one gets 400.
MAX_ENTRY_BYTES = 256 * 1024

_CANONICAL = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def error_body(status: int, message: str | None = None) -> dict[str, Any]:
    """A Google API error body: ``{"error": {"code", "message", "status"}}``."""
    canonical = _CANONICAL.get(status, "UNKNOWN")
    return {
        "error": {
            "code": status,
            "message": message or f"fake error {status} {canonical}",
            "status": canonical,
        }
    }


class Hang:
    """A hold on requests: held requests wait until ``seconds`` passed or :meth:`release`.

    .. versionadded:: 0.1.0
    """

    def __init__(self, seconds: float) -> None:
        """Start the clock now: the hold ends ``seconds`` from now at the latest."""
        self.seconds = float(seconds)
        self.deadline = time.monotonic() + self.seconds
        self.held = 0
        self._released = threading.Event()
        self._some_held = threading.Event()
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        """Whether the hold still holds (not released, deadline not reached)."""
        return not self._released.is_set() and time.monotonic() < self.deadline

    def release(self) -> None:
        """End the hold now: held requests are answered."""
        self._released.set()

    def wait_held(self, timeout: float) -> bool:
        """Wait until at least one request is being held; False after ``timeout`` seconds."""
        return self._some_held.wait(timeout)

    def _hold(self, until: float | None = None) -> None:
        with self._lock:
            self.held += 1
        self._some_held.set()
        end = self.deadline if until is None else until
        self._released.wait(max(0.0, end - time.monotonic()))


@dataclass
class Reply:
    """How to answer one request: ``status`` (after ``hang``, if any), ``message`` on error.

    .. versionadded:: 0.1.0
    """

    status: int = 200
    message: str | None = None
    hang: Hang | None = None
    per_request_seconds: float | None = None


@dataclass
class ReceivedRequest:
    """One request as the server saw it.

    ``body`` is the parsed JSON (``None`` if not JSON), ``raw`` the decoded bytes,
    ``status`` the status answered (``None`` while held or when the connection was closed
    without an answer; set just before the answer is written), ``delivered`` whether
    writing the answer succeeded (a client that timed out may have closed the connection;
    the kernel may also accept bytes nobody reads), ``held`` how long (seconds) the request
    was held.

    .. versionadded:: 0.1.0
    """

    method: str
    path: str
    headers: dict[str, str]
    raw: bytes
    body: Any
    received_at: float
    status: int | None = None
    delivered: bool = False
    held: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def entries(self) -> list[dict[str, Any]]:
        """The ``entries`` of an ``entries:write`` body (empty for anything else)."""
        if isinstance(self.body, dict) and isinstance(self.body.get("entries"), list):
            return [e for e in self.body["entries"] if isinstance(e, dict)]
        return []


class LocalHTTPServer(BaseLocalServer):
    """Base of the local fake Google endpoints: request log, queued replies and holds.

    Subclasses implement :meth:`_route` (``None`` for an unknown path, else a callable
    producing the success answer) and :meth:`_error` (the body of an error status).
    Lifecycle and connections come from :class:`~vividly_trace.testing._http.BaseLocalServer`.

    .. versionadded:: 0.1.0
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Prepare a server for ``host``:``port`` (port 0: pick a free port on start)."""
        super().__init__(host, port)
        self._requests: list[ReceivedRequest] = []
        self._replies: deque[Reply] = deque()
        self._window: Hang | None = None
        self._hangs: list[Hang] = []
        self._changed = threading.Condition(self._lock)

    # -- programming answers ------------------------------------------------------------
    def enqueue(self, *replies: Reply) -> None:
        """Queue answers; each request consumes one, first in first out."""
        with self._lock:
            self._replies.extend(replies)
            self._hangs.extend(r.hang for r in replies if r.hang is not None)

    def fail_next(self, n: int = 1, status: int = 503, message: str | None = None) -> None:
        """Answer the next ``n`` requests with ``status`` and a Google API error body."""
        self.enqueue(*(Reply(status=status, message=message) for _ in range(n)))

    def hang_next(self, n: int = 1, seconds: float = 30.0, status: int = 200) -> Hang:
        """Hold each of the next ``n`` requests ``seconds`` (from its arrival), then answer
        ``status``; :meth:`Hang.release` on the returned object ends the holds early."""
        hang = Hang(seconds)
        self.enqueue(
            *(Reply(status=status, hang=hang, per_request_seconds=seconds) for _ in range(n))
        )
        return hang

    def hang_for(self, seconds: float) -> Hang:
        """Start an outage window: requests arriving in the next ``seconds`` are held until
        the window ends (or :meth:`Hang.release`), then answered as usual."""
        hang = Hang(seconds)
        with self._lock:
            self._window = hang
        return hang

    def reset(self) -> None:
        """Forget received requests, queued answers and the outage window."""
        with self._lock:
            self._requests.clear()
            self._replies.clear()
            hangs = self._holds()
            self._hangs.clear()
            self._window = None
        for hang in hangs:
            hang.release()

    def _holds(self) -> list[Hang]:
        """Every hold that can keep a request waiting (call with the lock held)."""
        return [*self._hangs, *([self._window] if self._window else [])]

    def _release(self) -> None:
        with self._lock:
            hangs = self._holds()
        for hang in hangs:
            hang.release()

    # -- reading what arrived -----------------------------------------------------------
    @property
    def requests(self) -> list[ReceivedRequest]:
        """A snapshot of the requests received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``predicate()`` is true (checked on every request and answer)."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with self._changed:
                self._changed.wait(min(left, 0.05))

    # -- request handling (handler threads) ---------------------------------------------
    @abc.abstractmethod
    def _route(
        self, method: str, path: str, request: ReceivedRequest
    ) -> Callable[[], tuple[str, bytes]] | None:
        """The handler of a request (``None``: 404); each server defines its endpoints."""

    def _parse(self, headers: dict[str, str], raw: bytes) -> Any:
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return None

    def _error(self, status: int, message: str | None) -> tuple[str, bytes]:
        return "application/json; charset=UTF-8", json.dumps(error_body(status, message)).encode()

    def _serve(self, handler: LocalRequestHandler) -> None:
        path = urlsplit(handler.path).path
        headers = {k.lower(): v for k, v in handler.headers.items()}
        try:
            raw = handler.read_body()
        except (ValueError, OSError, EOFError, zlib.error):
            handler.close_connection = True
            handler.answer(400, *self._error(400, "unreadable request body"))
            return
        request = ReceivedRequest(
            method=handler.command,
            path=path,
            headers=headers,
            raw=raw,
            body=None,
            received_at=time.monotonic(),
        )
        try:
            request.body = self._parse(headers, raw)
        except Exception as exc:  # a body the route cannot decode
            request.extra["parse_error"] = repr(exc)
        with self._changed:
            self._requests.append(request)
            self._changed.notify_all()
        produce = self._route(handler.command, path, request)
        if produce is None:
            self._finish(handler, request, 404, *self._error(404, f"{path} is not found"))
            return
        if "parse_error" in request.extra:
            self._finish(handler, request, 400, *self._error(400, request.extra["parse_error"]))
            return
        start = time.monotonic()
        with self._lock:
            window = self._window if self._window is not None and self._window.active else None
        if window is not None:
            window._hold()
        with self._lock:
            reply = self._replies.popleft() if self._replies else Reply()
        if reply.hang is not None:
            until = None
            if reply.per_request_seconds is not None:
                until = time.monotonic() + reply.per_request_seconds
            reply.hang._hold(until)
        request.held = time.monotonic() - start
        if self._stopping.is_set():
            handler.close_connection = True
            return
        if reply.status >= 400:
            self._finish(handler, request, reply.status, *self._error(reply.status, reply.message))
        else:
            self._finish(handler, request, reply.status, *produce())

    def _finish(
        self,
        handler: LocalRequestHandler,
        request: ReceivedRequest,
        status: int,
        ctype: str,
        body: bytes,
    ) -> None:
        with self._changed:
            request.status = status  # set first: the client may act on the answer at once
            self._changed.notify_all()
        delivered = handler.answer(status, ctype, body)
        with self._changed:
            request.delivered = delivered
            self._changed.notify_all()


class FakeLoggingServer(LocalHTTPServer):
    """A fake Cloud Logging API (``POST /v2/entries:write``) on a local port.

    Every request is recorded (:attr:`requests`, a list of :class:`ReceivedRequest`);
    :meth:`entries` and :meth:`insert_ids` flatten the entries of all ``entries:write``
    bodies. A body that is not JSON with an ``entries`` list gets 400, and so does one with
    an entry over 256 KiB (:data:`MAX_ENTRY_BYTES`, as compact UTF-8 JSON), as Cloud
    Logging refuses it; other paths 404.

    .. versionadded:: 0.1.0
    """

    _thread_name = "fake-logging"

    def _route(
        self, method: str, path: str, request: ReceivedRequest
    ) -> Callable[[], tuple[str, bytes]] | None:
        if method != "POST" or path != "/v2/entries:write":
            return None
        if not isinstance(request.body, dict) or not isinstance(request.body.get("entries"), list):
            request.extra["parse_error"] = "the body must be a JSON object with an entries list"
        else:
            for entry in request.body["entries"]:
                size = len(json.dumps(entry, ensure_ascii=False, separators=(",", ":")).encode())
                if size > MAX_ENTRY_BYTES:  # Cloud Logging refuses the whole request
                    request.extra["parse_error"] = (
                        f"Log entry with size {size} bytes exceeds maximum size of 256 KiB"
                    )
                    break
        return lambda: ("application/json; charset=UTF-8", b"{}")

    def entries(self, *, accepted: bool = False) -> list[dict[str, Any]]:
        """All entries received, in order; ``accepted=True`` keeps only those of requests
        answered 2xx (a client that timed out may still have missed that answer)."""
        out: list[dict[str, Any]] = []
        for request in self.requests:
            if accepted and not (request.status is not None and request.status < 300):
                continue
            out.extend(request.entries)
        return out

    def insert_ids(self, *, accepted: bool = False) -> list[str]:
        """The ``insertId`` of every entry received (see :meth:`entries`), in order."""
        return [str(e.get("insertId")) for e in self.entries(accepted=accepted)]

    def write_requests(self) -> list[ReceivedRequest]:
        """The ``entries:write`` requests received."""
        return [r for r in self.requests if r.path == "/v2/entries:write"]

    def client(self, project: str = "vividly-test") -> Any:
        """A real ``google.cloud.logging.Client`` for this server (REST, anonymous)."""
        import google.cloud.logging
        from google.auth.credentials import AnonymousCredentials

        return google.cloud.logging.Client(
            project=project,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            _use_grpc=False,
            client_options={"api_endpoint": self.url},
        )
