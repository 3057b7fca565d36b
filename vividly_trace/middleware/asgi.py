"""ASGI middleware: each HTTP or WebSocket request's logged calls carry its request id and,
through ``identify``, its user and session."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ._common import Identify, bind, check_header, request_id_from

__all__ = ["VividlyTraceMiddleware"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class VividlyTraceMiddleware:
    """Bind each request's id, user and session to the logged calls it makes::

        app = FastAPI()
        app.add_middleware(
            VividlyTraceMiddleware,
            identify=lambda scope: {"user_id": scope["state"].get("user")},
        )

    ``identify(scope)`` is given the ASGI scope (with ``scope["headers"]``, and
    ``scope["state"]`` or ``scope["user"]`` where the framework's own middleware set them)
    and returns ``{"user_id": ..., "session_id": ..., **metadata}`` or None; it is called
    once per request, before the application. The request id is the incoming
    ``request_id_header`` when it holds a sane id, else a new one; it is sent back in the
    response under the same header (``echo_request_id=False`` turns that off). The binding
    covers the whole request, a streamed response's body included.

    .. versionadded:: 0.3.0
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        identify: Identify | None = None,
        request_id_header: str = "x-request-id",
        echo_request_id: bool = True,
    ) -> None:
        if identify is not None and not callable(identify):
            raise TypeError(f"identify must be callable, got {identify!r}")
        self.app = app
        self.identify = identify
        self.header = check_header(request_id_header)
        self._header_bytes = self.header.encode("latin-1")
        self.echo_request_id = bool(echo_request_id)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope.get("headers") or ():
            if name == self._header_bytes:
                incoming = value.decode("latin-1")
                break
        request_id = request_id_from(incoming)
        if self.echo_request_id and scope["type"] == "http":
            send = self._echoing(send, request_id)
        with bind(self.identify, scope, request_id):
            await self.app(scope, receive, send)

    def _echoing(self, send: Send, request_id: str) -> Send:
        header = (self._header_bytes, request_id.encode("latin-1"))

        async def send_with_id(message: MutableMapping[str, Any]) -> None:
            if message.get("type") == "http.response.start":
                headers = [h for h in message.get("headers") or () if h[0] != header[0]]
                message = {**message, "headers": [*headers, header]}
            await send(message)

        return send_with_id
