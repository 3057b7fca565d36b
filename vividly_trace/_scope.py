"""Who called: the user, session and request the logged calls of this context belong to.

:func:`context` binds them (a ``with`` block, ``async with``, or a decorator); a contextvar
holds them, so they follow asyncio tasks and ``asyncio.to_thread`` (and thread pools through
:func:`vividly_trace.carry_context`). Every logged call started inside takes them onto its
record (``user_id``, ``session_id``, ``request_id`` and the bound metadata).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from contextvars import Token
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

import wrapt

from ._context import current_scope
from ._jsonsafe import valid_text
from ._safety import warn_limited

__all__ = ["Scope", "context", "current_scope"]

F = TypeVar("F")
_MAX_ID_CHARS = 256
_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Scope:
    """The user, session and request bound by :func:`context`, and its metadata."""

    user_id: str | None = None
    session_id: str | None = None
    request_id: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)


def _clean_id(name: str, value: Any) -> str | None:
    """An id as stored: a str (an int is written out), at most 256 characters; anything
    else is dropped with a warning (never an exception in the application's request)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(int(value))
    if isinstance(value, str):
        text = valid_text(str.__str__(value))[:_MAX_ID_CHARS]
        return text or None
    warn_limited(
        f"context.{name}",
        "vividly_trace.context(): %s must be a str or int; ignored (%s)",
        name,
        type(value).__name__,
    )
    return None


class context:
    """Bind ``user_id``, ``session_id``, ``request_id`` and metadata to the logged calls
    made inside: a ``with`` / ``async with`` block, or a decorator (sync or async functions
    and generators). Nested blocks add to the outer one (an inner value wins)::

        with vividly_trace.context(user_id=user.id, session_id=session.id, plan="pro"):
            extract_intent(text)  # its record carries user, session and {"plan": "pro"}

    A value that is not a str or int is ignored with a warning on the ``vividly_trace``
    logger. The metadata goes under each record's own (a call's metadata wins).

    .. versionadded:: 0.3.0
    """

    def __init__(
        self,
        user_id: str | int | None = None,
        session_id: str | int | None = None,
        request_id: str | int | None = None,
        **metadata: Any,
    ) -> None:
        self._user_id = _clean_id("user_id", user_id)
        self._session_id = _clean_id("session_id", session_id)
        self._request_id = _clean_id("request_id", request_id)
        self._metadata = dict(metadata)
        self._tokens: list[Token[Scope | None]] = []

    def _bound(self) -> Scope:
        """This context over the one active now."""
        outer = current_scope.get()
        if outer is None:
            return Scope(self._user_id, self._session_id, self._request_id, self._metadata)
        return Scope(
            self._user_id or outer.user_id,
            self._session_id or outer.session_id,
            self._request_id or outer.request_id,
            {**outer.metadata, **self._metadata} if self._metadata else outer.metadata,
        )

    def __enter__(self) -> Scope:
        scope = self._bound()
        self._tokens.append(current_scope.set(scope))
        return scope

    def __exit__(self, *exc: object) -> None:
        _reset(self._tokens.pop())

    async def __aenter__(self) -> Scope:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__()

    def __call__(self, function: F) -> F:
        """Decorate ``function``: each call runs inside this context."""
        fn: Any = function
        if inspect.isasyncgenfunction(fn):
            wrapper: Any = self._agen
        elif inspect.isgeneratorfunction(fn):
            wrapper = self._gen
        elif inspect.iscoroutinefunction(fn):
            wrapper = self._async
        elif callable(fn):
            wrapper = self._sync
        else:
            raise TypeError(f"vividly_trace.context() decorates a function, not {fn!r}")
        return wrapt.FunctionWrapper(fn, wrapper)  # type: ignore[return-value]

    def _sync(self, wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        token = current_scope.set(self._bound())
        try:
            return wrapped(*args, **kwargs)
        finally:
            _reset(token)

    async def _async(self, wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        token = current_scope.set(self._bound())
        try:
            return await wrapped(*args, **kwargs)
        finally:
            _reset(token)

    def _gen(self, wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Iterator[Any]:
        scope = self._bound()
        token = current_scope.set(scope)
        try:
            gen = wrapped(*args, **kwargs)
        finally:
            _reset(token)
        return _scoped_steps(gen, scope)

    def _agen(self, wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        scope = self._bound()
        token = current_scope.set(scope)
        try:
            agen = wrapped(*args, **kwargs)
        finally:
            _reset(token)
        return _ascoped_steps(agen, scope)


def _reset(token: Token[Scope | None]) -> None:
    try:
        current_scope.reset(token)
    except ValueError:  # exited in another context than it was entered in
        current_scope.set(None)


def _scoped_steps(gen: Any, scope: Scope) -> Iterator[Any]:
    """``gen``'s steps, each run inside ``scope`` (a contextvar set across a ``yield``
    would leak into the consumer)."""
    sent: Any = None
    while True:
        token = current_scope.set(scope)
        try:
            item = gen.send(sent)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        finally:
            _reset(token)
        try:
            sent = yield item
        except GeneratorExit:
            gen.close()
            raise


async def _ascoped_steps(agen: Any, scope: Scope) -> Any:
    """The async twin of :func:`_scoped_steps`."""
    sent: Any = None
    while True:
        token = current_scope.set(scope)
        try:
            item = await agen.asend(sent)
        except StopAsyncIteration:
            return
        finally:
            _reset(token)
        try:
            sent = yield item
        except GeneratorExit:
            await agen.aclose()
            raise
