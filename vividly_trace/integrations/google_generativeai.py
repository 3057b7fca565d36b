"""Capture for the older ``google-generativeai`` client: ``GenerativeModel.generate_content``
and ``generate_content_async`` (``ChatSession`` turns go through them, once each).

A stream (``stream=True``) is one response object that fills in as it is iterated, yielding
new objects as chunks: the application gets that object back behind a transparent proxy
whose iteration (``for chunk in response``, ``async for``, ``resolve()``) passes each chunk
to capture; the request ends with the iteration. The module is never imported here: the
patch runs when the application imports it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import wrapt

from ._capture import Begun, achunks, asend, async_request, begin, chunks, send, sync_request

__all__ = ["patch"]


def _model(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    name = getattr(instance, "model_name", None)
    if isinstance(name, str) and name.startswith("models/"):
        return name[len("models/") :]
    return name


def _streamed(kwargs: dict[str, Any]) -> bool:
    return bool(kwargs.get("stream"))  # keyword-only in GenerativeModel


class _Stream(wrapt.ObjectProxy[Any]):
    """A streamed response whose iteration capture sees (everything else passes through)."""

    def __init__(self, response: Any, begun: Begun) -> None:
        super().__init__(response)
        self._self_begun = begun

    def __iter__(self) -> Iterator[Any]:
        return chunks(iter(self.__wrapped__), *self._self_begun)

    def resolve(self) -> Any:
        """Iterate to the end (through capture), as the client's own ``resolve()`` does."""
        for _ in self:
            pass
        return self.__wrapped__.resolve()


class _AsyncStream(wrapt.ObjectProxy[Any]):
    """The async twin of :class:`_Stream`."""

    def __init__(self, response: Any, begun: Begun) -> None:
        super().__init__(response)
        self._self_begun = begun

    def __aiter__(self) -> AsyncIterator[Any]:
        return achunks(self.__wrapped__.__aiter__(), *self._self_begun)

    async def resolve(self) -> Any:
        """Iterate to the end (through capture), as the client's own ``resolve()`` does."""
        async for _ in self:
            pass
        return await self.__wrapped__.resolve()


def _sync(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    if not _streamed(kwargs):
        return _one(wrapped, instance, args, kwargs)
    begun = begin(_model, instance, args, kwargs, True)
    if begun is None:
        return wrapped(*args, **kwargs)
    return _Stream(send(wrapped, args, kwargs, begun), begun)


async def _async(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    if not _streamed(kwargs):
        return await _aone(wrapped, instance, args, kwargs)
    begun = begin(_model, instance, args, kwargs, True)
    if begun is None:
        return await wrapped(*args, **kwargs)
    return _AsyncStream(await asend(wrapped, args, kwargs, begun), begun)


_one = sync_request(_model)
_aone = async_request(_model)


def patch(module: Any, wrap: Callable[[Any, str, Any], None]) -> None:
    """Wrap ``GenerativeModel``'s request methods in ``google.generativeai.generative_models``."""
    cls = getattr(module, "GenerativeModel", None)
    if cls is None:
        return
    wrap(cls, "generate_content", _sync)
    wrap(cls, "generate_content_async", _async)
