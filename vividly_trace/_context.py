"""The call in progress in this context (a contextvar, so it follows asyncio tasks)."""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._call import CallHandle

__all__ = ["current_call", "get_current_call", "reset_token"]

current_call: ContextVar[CallHandle | None] = ContextVar("vividly_trace_call", default=None)


def get_current_call() -> CallHandle | None:
    """The call in progress in this context (inside a decorated function or with-block).

    Inside a decorated generator that yields text rather than chunks, hand the chunks over
    with ``get_current_call().record_response(chunk)`` so that their usage is recorded.

    .. versionadded:: 0.1.0
    """
    return current_call.get()


def reset_token(token: Token[CallHandle | None]) -> None:
    """Reset the current-call context variable; ignore a token from another context."""
    try:
        current_call.reset(token)
    except ValueError:
        current_call.set(None)
