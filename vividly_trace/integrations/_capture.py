"""The wrappers client capture puts around a request method: sync and async, one response
or a stream. They only keep references and clock readings (no I/O, no extraction)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Iterator
from time import perf_counter_ns
from typing import Any

from .._active import UNSET, state
from .._call import CallHandle, GeminiRequest, TemplateSpec
from .._context import current_call
from .._safety import internal_error

__all__ = ["Skip", "async_request", "async_stream", "sync_request", "sync_stream"]

ModelOf = Callable[[Any, tuple[Any, ...], dict[str, Any]], Any]
"""``(instance, args, kwargs) -> model name``: which model a request asks for."""

# Frames of these modules are not "the caller" of an unlogged request.
_NOT_CALLERS = ("google.", "vividly_trace.", "wrapt", "asyncio", "concurrent.", "threading")
_specs: dict[str, TemplateSpec] = {}
_MAX_SPECS = 10_000


def _caller_key(depth: int) -> str:
    """``module:qualname`` of the first frame outside the clients and this SDK."""
    frame: Any = sys._getframe(depth)
    while frame is not None:
        module = frame.f_globals.get("__name__") or "?"
        if not module.startswith(_NOT_CALLERS):
            code = frame.f_code
            return f"{module}:{getattr(code, 'co_qualname', code.co_name)}"
        frame = frame.f_back
    return "unlogged"


def _spec(key: str) -> TemplateSpec:
    spec = _specs.get(key)
    if spec is None:
        spec = TemplateSpec(template_key=key)
        if len(_specs) < _MAX_SPECS:
            _specs[key] = spec
    return spec


def _begin(
    model_of: ModelOf, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], stream: bool
) -> tuple[Any, GeminiRequest, CallHandle | None] | None:
    """(pipeline, the request, the call made for it when unlogged), or None: not recorded."""
    p = state.pipeline
    if p is None or p is UNSET or not p.capture_clients:
        return None
    try:
        call = current_call.get()
        own = None
        if call is None:
            if not p.capture_unlogged:
                return None
            own = call = CallHandle(_spec(_caller_key(3)), None, p.trace_getter)
            own._streamed = stream
        return p, call._request(model_of(instance, args, kwargs), stream), own
    except Exception as exc:  # the user's request must go ahead whatever happens here
        internal_error("capture", exc, "vividly_trace could not capture a request: %r", exc)
        return None


def _end(p: Any, own: CallHandle | None, request: GeminiRequest) -> None:
    """A request made outside any logged call is a record of its own: queue it."""
    if own is None:
        return
    own._t1 = request.t1 or perf_counter_ns()
    try:
        p.submit(own)
    except Exception as exc:
        internal_error("capture", exc, "vividly_trace could not queue a request: %r", exc)


Skip = Callable[[dict[str, Any]], bool]
"""``(kwargs) -> bool``: this call is left to the decorator and ``record_response``."""


def sync_request(model_of: ModelOf, skip: Skip | None = None) -> Callable[..., Any]:
    """The wrapper of a method that sends one request and returns its response."""

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        if skip is not None and skip(kwargs):
            return wrapped(*args, **kwargs)
        begun = _begin(model_of, instance, args, kwargs, False)
        if begun is None:
            return wrapped(*args, **kwargs)
        p, request, own = begun
        try:
            response = wrapped(*args, **kwargs)
        except BaseException as exc:
            request.failed(exc)
            _end(p, own, request)
            raise
        request.done(response)
        _end(p, own, request)
        return response

    return wrapper


def async_request(model_of: ModelOf, skip: Skip | None = None) -> Callable[..., Any]:
    """The async twin of :func:`sync_request`."""

    async def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        if skip is not None and skip(kwargs):
            return await wrapped(*args, **kwargs)
        begun = _begin(model_of, instance, args, kwargs, False)
        if begun is None:
            return await wrapped(*args, **kwargs)
        p, request, own = begun
        try:
            response = await wrapped(*args, **kwargs)
        except BaseException as exc:
            request.failed(exc)
            _end(p, own, request)
            raise
        request.done(response)
        _end(p, own, request)
        return response

    return wrapper


def sync_stream(model_of: ModelOf) -> Callable[..., Any]:
    """The wrapper of a method returning a stream of chunks (the request ends with it)."""

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        begun = _begin(model_of, instance, args, kwargs, True)
        if begun is None:
            return wrapped(*args, **kwargs)
        p, request, own = begun
        try:
            stream = wrapped(*args, **kwargs)
        except BaseException as exc:
            request.failed(exc)
            _end(p, own, request)
            raise
        return _chunks(stream, p, request, own)

    return wrapper


def _chunks(stream: Any, p: Any, request: GeminiRequest, own: CallHandle | None) -> Iterator[Any]:
    try:
        for chunk in stream:
            _seen(request, own, chunk)
            yield chunk
    except GeneratorExit:
        close = getattr(stream, "close", None)
        if own is not None:
            own._closed_early = True
        if callable(close):
            close()
        raise
    except BaseException as exc:
        request.failed(exc)
        raise
    finally:
        if not request.t1:
            request.t1 = perf_counter_ns()
        _end(p, own, request)


def async_stream(model_of: ModelOf) -> Callable[..., Any]:
    """The wrapper of an async method whose result is an async stream of chunks."""

    async def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        begun = _begin(model_of, instance, args, kwargs, True)
        if begun is None:
            return await wrapped(*args, **kwargs)
        p, request, own = begun
        try:
            stream = await wrapped(*args, **kwargs)
        except BaseException as exc:
            request.failed(exc)
            _end(p, own, request)
            raise
        return _achunks(stream, p, request, own)

    return wrapper


async def _achunks(
    stream: Any, p: Any, request: GeminiRequest, own: CallHandle | None
) -> AsyncIterator[Any]:
    try:
        async for chunk in stream:
            _seen(request, own, chunk)
            yield chunk
    except GeneratorExit:
        close = getattr(stream, "aclose", None)
        if own is not None:
            own._closed_early = True
        if callable(close):
            await close()
        raise
    except BaseException as exc:
        request.failed(exc)
        raise
    finally:
        if not request.t1:
            request.t1 = perf_counter_ns()
        _end(p, own, request)


def _seen(request: GeminiRequest, own: CallHandle | None, chunk: Any) -> None:
    request.chunk(chunk)
    if own is not None and not own._ttfc_ns:
        own._ttfc_ns = perf_counter_ns()
