"""The call in progress in this context (a contextvar, so it follows asyncio tasks)."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar, Token, copy_context
from typing import TYPE_CHECKING, Any, TypeVar

import wrapt

if TYPE_CHECKING:
    from ._call import CallHandle
    from ._scope import Scope

__all__ = ["carry_context", "current_call", "current_scope", "get_current_call", "reset_token"]

F = TypeVar("F", bound=Callable[..., Any])

current_call: ContextVar[CallHandle | None] = ContextVar("vividly_trace_call", default=None)
current_scope: ContextVar[Scope | None] = ContextVar("vividly_trace_scope", default=None)
"""Who called (:func:`vividly_trace.context`): here rather than in ``_scope``, so that a
logged call reads it without importing the scope machinery."""


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


def carry_context(function: F) -> F:
    """``function`` to run in another thread as part of the logged call running now.

    Context variables do not cross into a thread pool's threads (``asyncio.to_thread``
    carries them; ``ThreadPoolExecutor.submit`` and ``loop.run_in_executor`` do not), so a
    Gemini request made there would be recorded on its own instead of under the call that
    submitted it::

        @logged_prompt("fan_out")
        def fan_out(items):
            with ThreadPoolExecutor() as pool:
                return list(pool.map(carry_context(ask_gemini), items))

    The context is taken now; each call runs in a copy of it, so that the wrapped function
    may run in several threads at once.

    .. versionadded:: 0.2.0
    """
    context = copy_context()

    def in_context(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        return context.copy().run(wrapped, *args, **kwargs)

    return wrapt.FunctionWrapper(function, in_context)  # type: ignore[return-value]
