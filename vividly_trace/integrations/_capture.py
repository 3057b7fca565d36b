"""The wrappers client capture puts around a request method: sync and async, one response
or a stream. They keep references and clock readings (no I/O; usage is extracted when the
record is built, but for a test per stream chunk of whether it carries usage)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Iterator
from time import perf_counter_ns
from typing import Any

from .._active import UNSET, state
from .._call import (
    CallHandle,
    ContentRequest,
    GeminiRequest,
    RequestEntry,
    TemplateSpec,
    open_call,
)
from .._context import current_call
from .._safety import internal_error

__all__ = [
    "Begun",
    "Skip",
    "achunks",
    "asend",
    "async_request",
    "async_stream",
    "begin",
    "chunks",
    "end",
    "raised",
    "send",
    "sync_request",
    "sync_stream",
]

ModelOf = Callable[[Any, tuple[Any, ...], dict[str, Any]], Any]
"""``(instance, args, kwargs) -> model name``: which model a request asks for."""

Skip = Callable[[dict[str, Any]], bool]
"""``(kwargs) -> bool``: this call is left to the decorator and ``record_response``."""

# Frames of these modules are not "the caller" of an unlogged request.
_NOT_CALLERS = ("google.", "vividly_trace.", "wrapt", "asyncio", "concurrent.", "threading")
_specs: dict[str, TemplateSpec] = {}
Begun = tuple[Any, CallHandle | None, GeminiRequest]
"""What :func:`begin` hands on: (pipeline, the call made for it when unlogged, the request)."""
_MAX_SPECS = 10_000


def _caller_key(depth: int) -> str:
    """``module:qualname`` of the first frame outside the clients and this SDK; for a
    coroutine run as a task of its own (``create_task``, ``gather``), that task's coroutine,
    not the frame that runs the event loop."""
    frame: Any = sys._getframe(depth)
    while frame is not None:
        module = frame.f_globals.get("__name__") or "?"
        if module.startswith("asyncio"):
            return _task_key() or "unlogged"
        if not module.startswith(_NOT_CALLERS):
            code = frame.f_code
            return f"{module}:{getattr(code, 'co_qualname', code.co_name)}"
        frame = frame.f_back
    return "unlogged"


def _task_key() -> str | None:
    aio = sys.modules.get("asyncio")
    try:
        task = aio.current_task() if aio is not None else None
    except RuntimeError:  # no running loop
        return None
    coro = task.get_coro() if task is not None else None
    frame = getattr(coro, "cr_frame", None)
    qualname = getattr(coro, "__qualname__", None)
    if frame is None or not isinstance(qualname, str):
        return None
    return f"{frame.f_globals.get('__name__') or '?'}:{qualname}"


def _spec(key: str) -> TemplateSpec:
    spec = _specs.get(key)
    if spec is None:
        spec = TemplateSpec(template_key=key)
        if len(_specs) < _MAX_SPECS:
            _specs[key] = spec
    return spec


def begin(
    model_of: ModelOf,
    instance: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    stream: bool,
    skip: Skip | None = None,
    operation: str = "generate_content",
) -> Begun | None:
    """(pipeline, the call made for it when unlogged, the request), or None: not recorded."""
    p = state.pipeline
    if p is None or p is UNSET or not p.capture_clients:
        return None
    if skip is not None and skip(kwargs):
        return None
    try:
        call = current_call.get()
        own = None
        if call is None or call._t1:
            # Outside any logged call, or after the one around it ended (a task it created,
            # a thread it carried its context into, that outlived it): a record of its own,
            # whose parent is that call.
            if call is None and not p.capture_unlogged:
                return None
            own = open_call(_spec(_caller_key(3)), call, p.trace_getter)
            if stream:
                own._streamed = True
                own._open_stream()
            call = own
        model = model_of(instance, args, kwargs)
        if p.capture_content:
            request: Any = call._request(model, operation, ContentRequest)
            request.keep(args, kwargs, stream)
        else:
            request = call._request(model, operation)
        request.streamed = stream
        request.config = kwargs.get("config")
        request.client = instance
        return p, own, request
    except Exception as exc:  # the user's request must go ahead whatever happens here
        internal_error("capture", exc, "vividly_trace could not capture a request: %r", exc)
        return None


def _end(p: Any, own: CallHandle | None, request: GeminiRequest) -> None:
    """A request made outside any logged call is a record of its own: queue it (a stream's
    once: ``shutdown()`` may have recorded it already)."""
    if own is None:
        return
    if not own._claim():  # shutdown() recorded this open stream already
        return
    if not own._t1:
        own._t1 = request.t1 or perf_counter_ns()
    try:
        p.submit(own)
    except Exception as exc:
        internal_error("capture", exc, "vividly_trace could not queue a request: %r", exc)


def _answered(p: Any, own: CallHandle | None, request: GeminiRequest, response: Any) -> Any:
    request.done(response)
    _end(p, own, request)
    return response


def raised(p: Any, own: CallHandle | None, request: GeminiRequest, exc: BaseException) -> None:
    request.failed(exc)
    _end(p, own, request)


def send(wrapped: Any, args: Any, kwargs: Any, begun: Begun) -> Any:
    """Send the request: its failure is recorded on ``begun``'s request, then raised on."""
    try:
        return wrapped(*args, **kwargs)
    except BaseException as exc:
        raised(*begun, exc)
        raise


async def asend(wrapped: Any, args: Any, kwargs: Any, begun: Begun) -> Any:
    """The async twin of :func:`send`."""
    try:
        return await wrapped(*args, **kwargs)
    except BaseException as exc:
        raised(*begun, exc)
        raise


def _model_getter(model_of: ModelOf | str) -> ModelOf:
    if isinstance(model_of, str):
        key = model_of
        return lambda instance, args, kwargs: kwargs.get(key)
    return model_of


def _request_failed(
    p: Any,
    call: CallHandle,
    own: CallHandle | None,
    model: Any,
    operation: str,
    client: Any,
    t0: int,
    exc: BaseException,
) -> None:
    """A request of the inlined path raised: kept as a request that failed."""
    try:
        request = GeminiRequest(model, operation)
        request.t0 = t0
        request.client = client
        request.failed(exc)
        requests = call._requests
        if requests is None:
            call._requests = [request]
        else:
            requests.append(request)
        _end(p, own, request)
    except Exception as inner:
        internal_error("capture", inner, "vividly_trace could not capture a request: %r", inner)


def _answered_late(p: Any, call: CallHandle, entry: RequestEntry) -> None:
    """The logged call ended while its request was in flight (a thread or task it started
    outlived it): the request is a record of its own, whose parent is that call."""
    own = open_call(_spec(_caller_key(3)), call, p.trace_getter)
    t0 = entry[3]
    own._wall_ns -= own._t0 - t0  # it started when the request did
    own._t0 = t0
    own._t1 = entry[4]
    own._requests = [entry]
    p.submit(own)


def _own_call(p: Any, parent: CallHandle | None) -> CallHandle | None:
    """The record of its own of a request made outside any open logged call (``parent``:
    the one that ended, if any); None when it cannot be made (logged)."""
    try:
        caller = _caller_key(3)
        return open_call(_specs.get(caller) or _spec(caller), parent, p.trace_getter)
    except Exception as exc:
        internal_error("capture", exc, "vividly_trace could not capture a request: %r", exc)
        return None


def _keep(p: Any, call: CallHandle, own: CallHandle | None, entry: RequestEntry) -> None:
    """A request of the inlined path answered: its entry goes to its call (queued at once
    when the request is a record of its own, or on its own when its call ended meanwhile)."""
    try:
        if own is not None:
            own._t1 = entry[4]
            own._requests = [entry]
            p.submit(own)
        elif call._t1:
            _answered_late(p, call, entry)
        elif call._requests is None:
            call._requests = [entry]
        else:
            call._requests.append(entry)
    except Exception as exc:  # the user's response must come back whatever happens here
        internal_error("capture", exc, "vividly_trace could not capture a request: %r", exc)


# The request wrappers below are the hot path of every captured request: they inline what
# begin() / send() / _answered() / _end() do when no content is kept and no skip test is
# given (a Python call costs more than most of the work itself), and keep the request as
# one tuple built once it answered (see RequestEntry); the other cases take the general
# path through begin().
def sync_request(
    model_of: ModelOf | str, skip: Skip | None = None, operation: str = "generate_content"
) -> Callable[..., Any]:
    """The wrapper of a method that sends one request and returns its response
    (``model_of`` a string: the keyword argument that names the model)."""
    key = model_of if isinstance(model_of, str) else None
    get_model = _model_getter(model_of)

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        p = state.pipeline
        if p is None or p is UNSET or not p.capture_clients:
            return wrapped(*args, **kwargs)
        if p.capture_content or skip is not None:
            begun = begin(get_model, instance, args, kwargs, False, skip, operation)
            if begun is None:
                return wrapped(*args, **kwargs)
            return _answered(*begun, send(wrapped, args, kwargs, begun))
        call = current_call.get()
        own = None
        if call is None or call._t1:  # unlogged, or the logged call ended: see begin()
            if call is None and not p.capture_unlogged:
                return wrapped(*args, **kwargs)
            own = _own_call(p, call)
            if own is None:
                return wrapped(*args, **kwargs)
            call = own
        t0 = perf_counter_ns()
        try:
            response = wrapped(*args, **kwargs)
        except BaseException as exc:
            model = kwargs.get(key) if key is not None else get_model(instance, args, kwargs)
            _request_failed(p, call, own, model, operation, instance, t0, exc)
            raise
        t1 = perf_counter_ns()
        try:
            entry = (
                kwargs.get(key) if key is not None else get_model(instance, args, kwargs),
                operation,
                instance,  # the client: its provider (Vertex AI or not) is read when built
                t0,
                t1,
                response,
            )
        except Exception as exc:  # the user's response must come back whatever happens here
            internal_error("capture", exc, "vividly_trace could not capture a request: %r", exc)
        else:
            _keep(p, call, own, entry)
        return response

    return wrapper


def async_request(
    model_of: ModelOf | str, skip: Skip | None = None, operation: str = "generate_content"
) -> Callable[..., Any]:
    """The async twin of :func:`sync_request`."""
    key = model_of if isinstance(model_of, str) else None
    get_model = _model_getter(model_of)

    async def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        p = state.pipeline
        if p is None or p is UNSET or not p.capture_clients:
            return await wrapped(*args, **kwargs)
        if p.capture_content or skip is not None:
            begun = begin(get_model, instance, args, kwargs, False, skip, operation)
            if begun is None:
                return await wrapped(*args, **kwargs)
            return _answered(*begun, await asend(wrapped, args, kwargs, begun))
        call = current_call.get()
        own = None
        if call is None or call._t1:  # unlogged, or the logged call ended: see begin()
            if call is None and not p.capture_unlogged:
                return await wrapped(*args, **kwargs)
            own = _own_call(p, call)
            if own is None:
                return await wrapped(*args, **kwargs)
            call = own
        t0 = perf_counter_ns()
        try:
            response = await wrapped(*args, **kwargs)
        except BaseException as exc:
            model = kwargs.get(key) if key is not None else get_model(instance, args, kwargs)
            _request_failed(p, call, own, model, operation, instance, t0, exc)
            raise
        t1 = perf_counter_ns()
        try:
            entry = (
                kwargs.get(key) if key is not None else get_model(instance, args, kwargs),
                operation,
                instance,  # the client: its provider (Vertex AI or not) is read when built
                t0,
                t1,
                response,
            )
        except Exception as exc:  # the user's response must come back whatever happens here
            internal_error("capture", exc, "vividly_trace could not capture a request: %r", exc)
        else:
            _keep(p, call, own, entry)
        return response

    return wrapper


def sync_stream(model_of: ModelOf | str, operation: str = "generate_content") -> Callable[..., Any]:
    """The wrapper of a method returning a stream of chunks (the request ends with it)."""
    model_of = _model_getter(model_of)

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        begun = begin(model_of, instance, args, kwargs, True, None, operation)
        if begun is None:
            return wrapped(*args, **kwargs)
        return chunks(send(wrapped, args, kwargs, begun), *begun)

    return wrapper


def chunks(stream: Any, p: Any, own: CallHandle | None, request: GeminiRequest) -> Iterator[Any]:
    try:
        for chunk in stream:
            _seen(request, own, chunk)
            yield chunk
    except GeneratorExit:
        close = getattr(stream, "close", None)
        if own is not None:
            own._close_early()
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


def async_stream(
    model_of: ModelOf | str, operation: str = "generate_content"
) -> Callable[..., Any]:
    """The wrapper of an async method whose result is an async stream of chunks."""
    model_of = _model_getter(model_of)

    async def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        begun = begin(model_of, instance, args, kwargs, True, None, operation)
        if begun is None:
            return await wrapped(*args, **kwargs)
        return achunks(await asend(wrapped, args, kwargs, begun), *begun)

    return wrapper


async def achunks(
    stream: Any, p: Any, own: CallHandle | None, request: GeminiRequest
) -> AsyncIterator[Any]:
    try:
        async for chunk in stream:
            _seen(request, own, chunk)
            yield chunk
    except GeneratorExit:
        close = getattr(stream, "aclose", None)
        if own is not None:
            own._close_early()
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
    if own is not None:
        now = own._t_chunk = perf_counter_ns()
        if not own._ttfc_ns:
            own._ttfc_ns = now


end = _end
"""A request's end, for integrations with wrappers of their own (the Interactions API)."""
