"""What both middlewares share: the request id and the application's identify callback."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from .._safety import warn_limited
from .._scope import context

__all__ = ["Identify", "bind", "check_header", "request_id_from"]

Identify = Callable[[Any], "Mapping[str, Any] | None"]
"""``(scope or environ) -> {"user_id": ..., "session_id": ..., **metadata}`` or None."""

# A request id taken from the client is kept only when it looks like one: printable, short.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")
_HEADER = re.compile(r"[A-Za-z0-9-]{1,64}")


def check_header(name: str) -> str:
    """The request-id header name, lower-cased; a bad one is a configuration error."""
    if not isinstance(name, str) or not _HEADER.fullmatch(name):
        raise ValueError(f"request_id_header must be an HTTP header name, got {name!r}")
    return name.lower()


def request_id_from(value: str | None) -> str:
    """The client's request id when it is a sane one, else a new one (32 hex digits)."""
    if value and _REQUEST_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


def bind(identify: Identify | None, request: Any, request_id: str) -> context:
    """The :func:`~vividly_trace.context` of one request. The application's callback may
    fail or answer nonsense: the request goes on, without user or session, and a warning
    says why."""
    found: Mapping[str, Any] | None = None
    if identify is not None:
        try:
            found = identify(request)
            if found is not None and not isinstance(found, Mapping):
                raise TypeError(f"identify returned {type(found).__name__}, not a mapping")
        except Exception as exc:  # the application's callback
            warn_limited(
                "middleware.identify",
                "vividly_trace middleware: identify(...) failed, request not attributed: %r",
                exc,
            )
            found = None
    values = dict(found or {})
    values.pop("request_id", None)
    user_id = values.pop("user_id", None)
    session_id = values.pop("session_id", None)
    return context(user_id=user_id, session_id=session_id, request_id=request_id, **values)
