"""WSGI middleware: each request's logged calls carry its request id and, through
``identify``, its user and session."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .._scope import Scope, current_scope
from ._common import Identify, bind, check_header, request_id_from

__all__ = ["VividlyTraceWSGIMiddleware"]

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class VividlyTraceWSGIMiddleware:
    """Bind each request's id, user and session to the logged calls it makes::

        app.wsgi_app = VividlyTraceWSGIMiddleware(app.wsgi_app, identify=...)   # Flask
        application = VividlyTraceWSGIMiddleware(get_wsgi_application())      # Django

    ``identify(environ)`` returns ``{"user_id": ..., "session_id": ..., **metadata}`` or
    None (Flask's session, Django's ``request.user`` are set later, inside the application:
    read the cookie or header that identifies the user, or bind the user inside a view
    with :func:`vividly_trace.context`). The request id is the incoming
    ``request_id_header`` when it holds a sane id, else a new one, and is sent back in the
    response (``echo_request_id=False`` turns that off). The binding covers the response
    body too, however the server iterates it.

    .. versionadded:: 0.3.0
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        identify: Identify | None = None,
        request_id_header: str = "x-request-id",
        echo_request_id: bool = True,
    ) -> None:
        if identify is not None and not callable(identify):
            raise TypeError(f"identify must be callable, got {identify!r}")
        self.app = app
        self.identify = identify
        header = check_header(request_id_header)
        self._environ_key = "HTTP_" + header.upper().replace("-", "_")
        self._header = "-".join(part.capitalize() for part in header.split("-"))
        self.echo_request_id = bool(echo_request_id)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request_id = request_id_from(environ.get(self._environ_key))
        if self.echo_request_id:
            start_response = self._echoing(start_response, request_id)
        binding = bind(self.identify, environ, request_id)
        with binding as scope:
            body = self.app(environ, start_response)
        return _ScopedBody(body, scope)

    def _echoing(self, start_response: Callable[..., Any], request_id: str) -> Callable[..., Any]:
        name = self._header

        def start_with_id(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            kept = [h for h in headers if h[0].lower() != name.lower()]
            return start_response(status, [*kept, (name, request_id)], *exc_info)

        return start_with_id


class _ScopedBody:
    """The application's response body, each chunk produced inside the request's binding
    (a generator body runs while the server iterates it, after the application returned)."""

    def __init__(self, body: Iterable[bytes], scope: Scope) -> None:
        self._body = body
        self._scope = scope

    def __iter__(self) -> Iterator[bytes]:
        iterator = iter(self._body)
        while True:
            token = current_scope.set(self._scope)
            try:
                chunk = next(iterator)
            except StopIteration:
                return
            finally:
                current_scope.reset(token)
            yield chunk

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if callable(close):
            token = current_scope.set(self._scope)
            try:
                close()
            finally:
                current_scope.reset(token)
