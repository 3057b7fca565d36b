"""Capture for google-genai's Interactions API: ``client.interactions`` and
``client.aio.interactions`` (``create``, ``get``, ``cancel``; unary and streamed).

The generated ``google.genai._gaos.interactions.Interactions`` / ``AsyncInteractions``
methods are wrapped: the public resource calls them once per HTTP request, so each hop of
an automatic continuation is a request of its own (the SDK sums their usage into the one
``Interaction`` it returns; the record sums the hops, each priced at its model). A stream
is handed back as the same ``Stream`` object, its event generator wrapped, so the SDK's
error translation and continuation keep working.

How an interaction is counted (each one once, however often it is read):

* ``create`` is the request (operation ``interactions.create``) that carries the
  interaction's usage: the returned ``Interaction``'s, or a stream's last event with usage
  (``interaction.completed``). It belongs to the innermost logged call, or is a record of
  its own under the caller's ``module:qualname``, like any captured request.
* ``create(background=True)`` answers ``in_progress`` without usage: the request stays
  *pending* (remembered by interaction id, in this process). The first ``get`` or
  ``cancel`` (unary or streamed, from anywhere in the process) that sees the interaction
  in a final status (``completed``, ``failed``, ``cancelled``, ``incomplete``,
  ``requires_action``, ``budget_exceeded``) completes that same request: its usage,
  status and latency (from the create to that answer) become the request's, and that get
  adds no request. While the call that started it is still running (polling inside the
  same function), the usage is in that call's record. When it has ended, the completed
  request is recorded on its own, under that call's template (version, group, metadata),
  its ``parent_execution_id`` naming that call; the call's own record keeps the create as
  an ``in_progress`` request without usage.
* A poll that sees it still in progress counts nothing and adds no request; so does a poll
  that fails (the request stays pending).
* Any other ``get`` / ``cancel`` (an interaction finished earlier, or created by another
  process) is a request (operation ``interactions.get`` / ``interactions.cancel``) of 0
  tokens, priced at the interaction's model ($0; an agent's without a model: unknown):
  reading an interaction is not billed, and counting the usage it shows would count the
  interaction again. A background interaction started in another process is therefore
  counted by neither (its create's record there stays without usage: cost unknown, never
  $0).
* A streamed background create whose stream ends before the interaction does is not
  followed further (its request keeps what the stream showed).

Pending requests are bounded (the oldest is forgotten past 10,000) and are not carried
into a forked child.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from time import perf_counter_ns, time_ns
from typing import Any

from .._active import UNSET, state
from .._call import CallHandle, GeminiRequest
from .._context import current_call
from .._lifecycle import on_fork
from .._safety import internal_error
from ._capture import Begun, achunks, asend, begin, chunks, end, send

__all__ = ["FINAL_STATUSES", "patch"]

#: Statuses after which a background interaction no longer changes (its usage is final).
FINAL_STATUSES = frozenset(
    {
        "completed",
        "failed",
        "cancelled",
        "incomplete",
        "requires_action",
        "budget_exceeded",
        "requires_continuation",
    }
)
_RUNNING = frozenset({"in_progress", "queued", "idle"})
_MAX_PENDING = 10_000


class _Pending:
    """A background create's request, waiting for the answer that completes it."""

    __slots__ = ("call", "pipeline", "request")

    def __init__(self, pipeline: Any, call: CallHandle, request: GeminiRequest) -> None:
        self.pipeline = pipeline
        self.call = call
        self.request = request


_pending: dict[str, _Pending] = {}
_lock = threading.Lock()


def _forget_all() -> None:
    global _lock
    _lock = threading.Lock()  # a parent thread may have held it at the fork
    _pending.clear()  # the parent's interactions are the parent's to complete


on_fork(_forget_all)


def _body_value(kwargs: dict[str, Any], name: str) -> Any:
    """``name`` from the keyword arguments, or from ``request=`` (a model or a dict)."""
    value = kwargs.get(name)
    if value is not None:
        return value
    request = kwargs.get("request")
    if request is None:
        return None
    body = request.get("body") if isinstance(request, Mapping) else getattr(request, "body", None)
    if isinstance(body, Mapping):
        return body.get(name)
    return getattr(body, name, None)


def _model(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return _body_value(kwargs, "model")  # an agent interaction names none


def _no_model(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return None


def _interaction_id(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return kwargs.get("id", args[0] if args else None)


def _status(response: Any) -> Any:
    """The status an interaction or a lifecycle / status event reports (None: another)."""
    status = getattr(response, "status", None)
    if status is None:
        interaction = getattr(response, "interaction", None)
        if interaction is not None:
            status = getattr(interaction, "status", None)
        elif getattr(response, "event_type", None) == "error":
            return "failed"
    return status


def _capturing() -> Any:
    p = state.pipeline
    if p is None or p is UNSET or not p.capture_clients:
        return None
    return p


def _remember(p: Any, own: CallHandle | None, request: GeminiRequest, response: Any) -> None:
    """A background create answered ``in_progress``: keep its request for the answer that
    completes it."""
    try:
        interaction_id = getattr(response, "id", None)
        call = own if own is not None else current_call.get()
        if not isinstance(interaction_id, str) or not interaction_id or call is None:
            return
        with _lock:
            if len(_pending) >= _MAX_PENDING:
                del _pending[next(iter(_pending))]
            _pending[interaction_id] = _Pending(p, call, request)
    except Exception as exc:
        internal_error("capture", exc, "vividly_trace could not follow an interaction: %r", exc)


def _complete(interaction_id: str, pending: _Pending, response: Any) -> None:
    """``response`` shows the pending interaction in a final status: complete its request,
    once (two threads polling the same interaction complete it once)."""
    try:
        with _lock:
            if _pending.get(interaction_id) is not pending:
                return
            del _pending[interaction_id]
        call, request = pending.call, pending.request
        if not call._t1:
            # The call that started it is still running: its record will hold the usage.
            # (Should it end in another thread at this very moment, its record may be built
            # without it: the window is a few bytecodes, and nothing is counted twice.)
            request.done(response)
            return
        # That call's record is queued or written: this request is a record of its own,
        # under that call's template, as its child. A fresh request object, so the create
        # in the parent's record stays as it was seen (in progress, no usage).
        late = CallHandle(call._spec, call, pending.pipeline.trace_getter)
        if call._metadata:
            late._metadata = dict(call._metadata)
        done = late._request(request.model, request.operation)
        done.t0 = late._t0 = request.t0
        late._wall_ns = time_ns() - (perf_counter_ns() - request.t0)
        done.done(response)
        late._t1 = done.t1
        pending.pipeline.submit(late)
    except Exception as exc:
        internal_error("capture", exc, "vividly_trace could not record an interaction: %r", exc)


def _watch(interaction_id: str, pending: _Pending, response: Any) -> None:
    if _status(response) in FINAL_STATUSES:
        _complete(interaction_id, pending, response)


# -- create ----------------------------------------------------------------------------


def _create_begun(instance: Any, args: Any, kwargs: Any) -> tuple[Begun | None, bool]:
    stream = _body_value(kwargs, "stream") is True
    return begin(_model, instance, args, kwargs, stream, None, "interactions.create"), stream


def _created(
    begun: Begun,
    kwargs: dict[str, Any],
    response: Any,
    stream: bool,
) -> Any:
    p, own, request = begun
    generator = getattr(response, "generator", None) if stream else None
    if generator is not None:
        response.generator = (
            achunks(generator, p, own, request)
            if hasattr(generator, "__anext__")
            else chunks(generator, p, own, request)
        )
        return response
    request.done(response)
    if _body_value(kwargs, "background") is True and _status(response) in _RUNNING:
        _remember(p, own, request, response)
    end(p, own, request)
    return response


def _sync_create(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    begun, stream = _create_begun(instance, args, kwargs)
    if begun is None:
        return wrapped(*args, **kwargs)
    return _created(begun, kwargs, send(wrapped, args, kwargs, begun), stream)


async def _async_create(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    begun, stream = _create_begun(instance, args, kwargs)
    if begun is None:
        return await wrapped(*args, **kwargs)
    return _created(begun, kwargs, await asend(wrapped, args, kwargs, begun), stream)


# -- get / cancel ----------------------------------------------------------------------


def _watched(interaction_id: str, pending: _Pending, response: Any) -> Any:
    """The answer of a get / cancel of a pending interaction: complete it when final."""
    generator = getattr(response, "generator", None)
    if generator is None:
        _watch(interaction_id, pending, response)
    elif hasattr(generator, "__anext__"):
        response.generator = _awatch_events(generator, interaction_id, pending)
    else:
        response.generator = _watch_events(generator, interaction_id, pending)
    return response


def _watch_events(events: Any, interaction_id: str, pending: _Pending) -> Iterator[Any]:
    for event in events:
        _watch(interaction_id, pending, event)
        yield event


async def _awatch_events(events: Any, interaction_id: str, pending: _Pending) -> AsyncIterator[Any]:
    async for event in events:
        _watch(interaction_id, pending, event)
        yield event


#: What a read is billed: nothing (its usage is the interaction's, counted at its create).
_NOT_BILLED: Mapping[str, int] = {"input_tokens": 0, "output_tokens": 0}


def _read_model(request: GeminiRequest, response: Any) -> None:
    """A read prices its zero tokens at the interaction's model (an agent's: unknown)."""
    if request.model is None:
        model = getattr(response, "model", None)
        if model is None:
            model = getattr(getattr(response, "interaction", None), "model", None)
        if type(model) is str:
            request.model = model


def _read(begun: Begun, response: Any, stream: bool) -> Any:
    """A get / cancel that completes nothing: timed, not billed (see the module)."""
    p, own, request = begun
    generator = getattr(response, "generator", None) if stream else None
    if generator is None:
        request.done(_NOT_BILLED)
        _read_model(request, response)
        end(p, own, request)
        return response
    request.response = _NOT_BILLED
    if hasattr(generator, "__anext__"):
        response.generator = _aread_events(generator, p, own, request)
    else:
        response.generator = _read_events(generator, p, own, request)
    return response


def _read_events(
    events: Any, p: Any, own: CallHandle | None, request: GeminiRequest
) -> Iterator[Any]:
    try:
        for event in events:
            _read_model(request, event)
            yield event
    except BaseException as exc:
        if not isinstance(exc, GeneratorExit):
            request.failed(exc)
        elif own is not None:
            own._close_early()
        raise
    finally:
        if not request.t1:
            request.t1 = perf_counter_ns()
        end(p, own, request)


async def _aread_events(
    events: Any, p: Any, own: CallHandle | None, request: GeminiRequest
) -> AsyncIterator[Any]:
    try:
        async for event in events:
            _read_model(request, event)
            yield event
    except BaseException as exc:
        if not isinstance(exc, GeneratorExit):
            request.failed(exc)
        elif own is not None:
            own._close_early()
        raise
    finally:
        if not request.t1:
            request.t1 = perf_counter_ns()
        end(p, own, request)


def _reader(operation: str, is_async: bool) -> Callable[..., Any]:
    """The wrapper of ``get`` (``stream=`` allowed) or ``cancel``."""

    def prepare(
        args: Any, kwargs: Any, instance: Any
    ) -> tuple[str | None, _Pending | None, Begun | None, bool]:
        interaction_id = _interaction_id(args, kwargs)
        stream = kwargs.get("stream") is True
        pending = _pending.get(interaction_id) if isinstance(interaction_id, str) else None
        if pending is not None:
            return interaction_id, pending, None, stream
        begun = begin(_no_model, instance, args, kwargs, stream, None, operation)
        return interaction_id, None, begun, stream

    def sync_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        if _capturing() is None:
            return wrapped(*args, **kwargs)
        interaction_id, pending, begun, stream = prepare(args, kwargs, instance)
        if pending is not None and interaction_id is not None:
            return _watched(interaction_id, pending, wrapped(*args, **kwargs))
        if begun is None:
            return wrapped(*args, **kwargs)
        return _read(begun, send(wrapped, args, kwargs, begun), stream)

    async def async_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        if _capturing() is None:
            return await wrapped(*args, **kwargs)
        interaction_id, pending, begun, stream = prepare(args, kwargs, instance)
        if pending is not None and interaction_id is not None:
            return _watched(interaction_id, pending, await wrapped(*args, **kwargs))
        if begun is None:
            return await wrapped(*args, **kwargs)
        return _read(begun, await asend(wrapped, args, kwargs, begun), stream)

    return async_wrapper if is_async else sync_wrapper


def patch(module: Any, wrap: Callable[[Any, str, Any], None]) -> None:
    """Wrap the request methods of ``google.genai._gaos.interactions``."""
    for name, create, is_async in (
        ("Interactions", _sync_create, False),
        ("AsyncInteractions", _async_create, True),
    ):
        cls = getattr(module, name, None)
        if cls is None:
            continue
        wrap(cls, "create", create)
        wrap(cls, "get", _reader("interactions.get", is_async))
        wrap(cls, "cancel", _reader("interactions.cancel", is_async))
