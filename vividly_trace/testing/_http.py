"""The plumbing shared by the local fake HTTP servers of :mod:`vividly_trace.testing`.

:class:`BaseLocalServer` runs a standard library ``ThreadingHTTPServer`` in a daemon
thread (HTTP/1.1 keep-alive, Nagle disabled, silent about clients that go away) and hands
every request to its :meth:`~BaseLocalServer._serve`, with a :class:`LocalRequestHandler`
that reads request bodies and writes answers. :class:`~.fake_logging.LocalHTTPServer`
(Cloud Logging, OTLP) and :class:`~.fake_gemini.FakeGeminiServer` build on it.
"""

from __future__ import annotations

import abc
import contextlib
import gzip
import socket
import sys
import threading
import zlib
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TypeVar, cast

__all__ = ["BaseLocalServer", "LocalRequestHandler"]

_MAX_BODY = 64 * 1024 * 1024
_S = TypeVar("_S", bound="BaseLocalServer")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, owner: BaseLocalServer) -> None:
        self.owner = owner
        self.block_on_close = owner._join_handlers
        super().__init__((owner.host, owner._requested_port), owner._handler_class)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that go away (timeouts, abandoned streams) are normal here: stay silent.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class LocalRequestHandler(BaseHTTPRequestHandler):
    """Passes GET, POST, PUT and DELETE requests to the server's ``_serve``.

    Subclass it (``server_version``, more ``do_*`` methods) and name the subclass in
    :attr:`BaseLocalServer._handler_class`.
    """

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "FakeGoogle/1.0"
    sys_version = ""

    @property
    def owner(self) -> BaseLocalServer:
        """The fake server this request belongs to."""
        return cast(_HTTPServer, self.server).owner

    def log_message(self, format: str, *args: Any) -> None:
        """Never log requests to stderr."""

    def setup(self) -> None:
        """Set up the connection and register it, so that ``stop()`` can close it."""
        super().setup()
        self.owner._track(self.connection)

    def finish(self) -> None:
        """Finish the connection and forget it."""
        try:
            super().finish()
        finally:
            self.owner._untrack(self.connection)

    def do_GET(self) -> None:
        """Serve a GET request."""
        self.owner._serve(self)

    def do_POST(self) -> None:
        """Serve a POST request."""
        self.owner._serve(self)

    def do_PUT(self) -> None:
        """Serve a PUT request."""
        self.owner._serve(self)

    def do_DELETE(self) -> None:
        """Serve a DELETE request."""
        self.owner._serve(self)

    def read_body(self) -> bytes:
        """The request body: chunked or ``Content-Length``, gzip or deflate decoded.

        Raises ``ValueError`` (bad framing, too large), ``OSError``, ``EOFError`` or
        ``zlib.error`` for a body that cannot be read.
        """
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = self._read_chunked()
        else:
            length = int(self.headers.get("Content-Length") or 0)
            if length > _MAX_BODY:
                raise ValueError("request body too large")
            data = self.rfile.read(length) if length > 0 else b""
        encoding = self.headers.get("Content-Encoding", "").lower()
        if encoding == "gzip":
            data = gzip.decompress(data)
        elif encoding == "deflate":
            data = zlib.decompress(data)
        return data

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size_line = self.rfile.readline(65537)
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            total += size
            if total > _MAX_BODY:
                raise ValueError("request body too large")
            parts.append(self.rfile.read(size))
            self.rfile.readline(65537)

    def head(self, status: int, headers: list[tuple[str, str]]) -> bytes:
        """The status line and headers of an answer (with ``Server``, ``Date`` and
        ``Connection: close`` when the connection is to be closed)."""
        reason = self.responses.get(status, ("",))[0]
        lines = [
            f"HTTP/1.1 {status} {reason}",
            f"Server: {self.server_version}",
            f"Date: {formatdate(usegmt=True)}",
            *(f"{name}: {value}" for name, value in headers),
        ]
        if self.close_connection:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def answer(
        self,
        status: int,
        content_type: str,
        body: bytes,
        headers: list[tuple[str, str]] | None = None,
    ) -> bool:
        """Write a whole answer in one write (with more ``headers`` if given); False (and the
        connection is to be closed) if writing failed."""
        head = self.head(
            status,
            [
                ("Content-Type", content_type),
                ("Content-Length", str(len(body))),
                *(headers or ()),
            ],
        )
        try:
            self.wfile.write(head + body)
            self.wfile.flush()
        except OSError:
            self.close_connection = True
            return False
        return True

    def write_chunk(self, data: bytes, last: bool = False) -> None:
        """Write one chunk of a ``Transfer-Encoding: chunked`` body (``last``: then end it)."""
        out = b"%x\r\n%s\r\n" % (len(data), data) if data else b""
        if last:
            out += b"0\r\n\r\n"
        self.wfile.write(out)


class BaseLocalServer(abc.ABC):
    """Base of the local fake servers: lifecycle (start, stop, context manager), address
    and connection tracking. Subclasses implement :meth:`_serve`.

    .. versionadded:: 0.1.0
    """

    _thread_name = "fake-http"
    _handler_class: type[LocalRequestHandler] = LocalRequestHandler
    #: Whether :meth:`stop` waits for the handler threads (``block_on_close``).
    _join_handlers = False

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Prepare a server for ``host``:``port`` (port 0: pick a free port on start)."""
        self.host = host
        self._requested_port = port
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------
    def start(self: _S) -> _S:
        """Bind the port and serve in a daemon thread; returns ``self``."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = _HTTPServer(self)
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self._thread_name}:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: end pending holds and waits without answering them, close
        kept-alive connections and free the port."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()
        self._release()
        httpd.shutdown()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self: _S) -> _S:
        """Start the server."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (or the requested one before :meth:`start`)."""
        if self._httpd is not None:
            return int(self._httpd.server_address[1])
        if self._requested_port:
            return self._requested_port
        raise RuntimeError(f"{type(self).__name__} is not started (port 0 is chosen on start)")

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:8123``."""
        return f"http://{self.host}:{self.port}"

    # -- request handling (handler threads) ---------------------------------------------
    @abc.abstractmethod
    def _serve(self, handler: LocalRequestHandler) -> None:
        """Answer one request (or close the connection); runs in a handler thread."""

    def _release(self) -> None:  # noqa: B027 - an optional hook
        """Called by :meth:`stop` once ``_stopping`` is set: wake requests that wait."""

    def _track(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.add(conn)

    def _untrack(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.discard(conn)
