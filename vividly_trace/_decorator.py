"""``logged_prompt``: a wrapt decorator and a (sync and async) context manager.

The hot path (every wrapper below) reads the active pipeline, takes two clock readings, keeps
a reference to the response and hands the call to the dispatcher. It does no I/O, takes no
lock, and lets the caller's exceptions and return values through unchanged, with one
exception: a function that *returns* a generator or async generator (e.g. the stream of
``generate_content_stream``) gets back a generator that yields the very same chunks, so that
the record can end with the stream.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from time import perf_counter_ns
from types import AsyncGeneratorType, GeneratorType, TracebackType
from typing import Any, TypeVar

import wrapt

from ._active import UNSET, state
from ._call import CallHandle, TemplateSpec, carries_usage, open_call
from ._config import get_pipeline
from ._context import current_call, reset_token
from ._jsonsafe import valid_text
from ._pipeline import Pipeline
from ._safety import internal_error, warn_limited
from .exceptions import ConfigurationError

__all__ = ["logged_prompt"]

F = TypeVar("F", bound=Callable[..., Any])
_STREAM_TYPES = frozenset({GeneratorType, AsyncGeneratorType})
_UNBOUND: Any = object()  # the instance of a plain function's wrapper: see _wrap


def _wrap(wrapped: Any, wrapper: Callable[..., Any]) -> Any:
    """``wrapt.FunctionWrapper(wrapped, wrapper)``; for a plain function, one whose direct
    calls skip wrapt's ``__self__`` lookup.

    Called unbound (``instance`` None), wrapt looks for ``wrapped.__self__`` on every call in
    case it wraps a bound method; on a plain function that lookup fails, and the
    ``AttributeError`` it makes and clears costs more than the rest of wrapt's call. A
    wrapper made with any other instance skips it; binding (a method reached through an
    instance or its class) never reads the unbound wrapper's instance, and the wrappers of
    this module ignore ``instance``. Re-initialising through the base class is wrapt's own
    constructor (``wrapped, instance, wrapper, enabled, binding, parent``, in wrapt 1.x
    and 2.x alike); a wrapt whose base refuses it keeps the plain wrapper.
    """
    proxy = wrapt.FunctionWrapper(wrapped, wrapper)
    if proxy._self_binding == "function" and proxy._self_instance is None:
        try:
            base: Any = type(proxy).__mro__[1]  # wrapt's _FunctionWrapperBase
            base.__init__(proxy, wrapped, _UNBOUND, wrapper, None, "function")
        except Exception:  # another wrapt: the plain wrapper, its lookup included
            proxy = wrapt.FunctionWrapper(wrapped, wrapper)
    return proxy


def _active() -> Pipeline | None:
    p = state.pipeline
    if p is UNSET:
        return get_pipeline()
    return p  # type: ignore[no-any-return]


def _cancelled(exc: BaseException) -> bool:
    aio = sys.modules.get("asyncio")  # not imported: nothing can have been cancelled by it
    return aio is not None and isinstance(exc, aio.CancelledError)


def _submit(p: Pipeline, call: CallHandle) -> None:
    if not call._claim():  # shutdown() recorded this open stream already
        return
    try:
        p.submit(call)
    except Exception as exc:  # submit is already guarded; belt and braces for the caller
        internal_error("submit", exc, "vividly_trace could not queue a record: %r", exc)


def _fail(call: CallHandle, exc: BaseException) -> None:
    try:
        call._finish()
        call._fail(exc)
    except Exception as inner:
        internal_error("fail", inner, "vividly_trace could not record an error: %r", inner)


def _check_str(name: str, value: Any, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if type(value) in (int, float) and not required:
        if type(value) is int and value.bit_length() > 512:  # str() refuses huge ints
            raise ConfigurationError(f"logged_prompt(): {name} is not a usable name")
        return str(value)
    if not isinstance(value, str) or (required and not str.strip(value)):
        need = "a non-empty string" if required else "a string or None"
        raise ConfigurationError(f"logged_prompt(): {name} must be {need}, got {_describe(value)}")
    text = valid_text(str.__str__(value))
    if len(text) > 512:
        raise ConfigurationError(f"logged_prompt(): {name} is longer than 512 characters")
    return text


def _describe(value: Any) -> str:
    try:
        return repr(value)[:100]
    except Exception:
        return f"a {type(value).__name__}"


class logged_prompt:
    """Log every call of the decorated function as one execution of ``template_key``.

    Works on sync and async functions, methods, classmethods, staticmethods, and sync and
    async generators (streaming: the record ends when the stream ends, is closed early or
    fails; usage comes from the last chunk that carries it). The same object is a ``with`` /
    ``async with`` block yielding a :class:`CallHandle`::

        @logged_prompt("nlu_extraction", version="v3", ab_group="B")
        def extract_intent(text): return client.models.generate_content(...)

        async with logged_prompt("clarification") as call:
            call.record_response(await client.aio.models.generate_content(...))

    Args:
        template_key: the prompt template's name (required, non-empty).
        version: template version, for A/B comparison.
        ab_group: A/B test group.
        model: the model requested (otherwise the model the response names).
        metadata: metadata added to every record (JSON-safe, secrets masked).

    Raises:
        ConfigurationError: bad arguments, at decoration time.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_spec",)

    def __init__(
        self,
        template_key: str,
        *,
        version: str | None = None,
        ab_group: str | None = None,
        model: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        key = _check_str("template_key", template_key, required=True)
        if metadata is not None and not isinstance(metadata, Mapping):
            raise ConfigurationError(
                f"logged_prompt(): metadata must be a mapping, got {type(metadata).__name__}"
            )
        try:
            meta = dict(metadata) if metadata else None
        except Exception:  # a mapping whose access raises
            raise ConfigurationError(
                f"logged_prompt(): metadata {_describe(metadata)} cannot be read"
            ) from None
        self._spec = TemplateSpec(
            template_key=key,  # type: ignore[arg-type]
            version=_check_str("version", version),
            ab_group=_check_str("ab_group", ab_group),
            model=_check_str("model", model),
            metadata=meta,
        )

    @property
    def template_key(self) -> str:
        """The template key this object logs under."""
        return self._spec.template_key

    # -- decorator -----------------------------------------------------------------------
    def __call__(self, wrapped: F) -> F:
        if not callable(wrapped) and not isinstance(wrapped, (classmethod, staticmethod)):
            raise ConfigurationError(
                f"logged_prompt({self._spec.template_key!r}) decorates functions, "
                f"got {_describe(wrapped)}"
            )
        target = getattr(wrapped, "__func__", wrapped)
        spec = self._spec
        if inspect.isasyncgenfunction(target):
            wrapper = _gen_wrapper(spec, _astream)
        elif inspect.isgeneratorfunction(target):
            wrapper = _gen_wrapper(spec)
        elif inspect.iscoroutinefunction(target):
            wrapper = _async_wrapper(spec)
        else:
            wrapper = _sync_wrapper(spec)
        return _wrap(wrapped, wrapper)  # type: ignore[no-any-return]

    # -- context manager -----------------------------------------------------------------
    def __enter__(self) -> CallHandle:
        p = state.pipeline
        getter = p.trace_getter if isinstance(p, Pipeline) else None
        call = open_call(self._spec, current_call.get(), getter)
        call._token = current_call.set(call)
        return call

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        call = current_call.get()
        if call is None or call._spec is not self._spec:
            warn_limited("exit", "logged_prompt: __exit__ without a matching __enter__")
            return
        try:
            reset_token(call._token)
            if exc is not None:
                _fail(call, exc)
            else:
                call._finish()
        except Exception as inner:
            internal_error("exit", inner, "vividly_trace could not finish a call: %r", inner)
        p = _active()
        if p is not None:
            _submit(p, call)

    async def __aenter__(self) -> CallHandle:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __repr__(self) -> str:
        return f"logged_prompt({self._spec.template_key!r})"


def _sync_wrapper(spec: TemplateSpec) -> Callable[..., Any]:
    get, set_, reset = current_call.get, current_call.set, current_call.reset

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        p = state.pipeline
        if p is None:
            return wrapped(*args, **kwargs)
        if p is UNSET:
            p = get_pipeline()
            if p is None:
                return wrapped(*args, **kwargs)
        call = open_call(spec, get(), p.trace_getter)
        token = set_(call)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            reset_token(token)
            _fail(call, exc)
            p.submit(call)
            raise
        call._t1 = perf_counter_ns()
        try:
            reset(token)
        except ValueError:  # pragma: no cover - token from another context
            current_call.set(None)
        if type(result) in _STREAM_TYPES:
            return _returned_stream(p, call, result)
        if call._metadata:
            call._finish()  # snapshot the metadata set through get_current_call()
        call._result = result
        p.submit(call)
        return result

    return wrapper


def _async_wrapper(spec: TemplateSpec) -> Callable[..., Any]:
    get, set_, reset = current_call.get, current_call.set, current_call.reset

    async def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        p = state.pipeline
        if p is None:
            return await wrapped(*args, **kwargs)
        if p is UNSET:
            p = get_pipeline()
            if p is None:
                return await wrapped(*args, **kwargs)
        call = open_call(spec, get(), p.trace_getter)
        token = set_(call)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            reset_token(token)
            _fail(call, exc)
            p.submit(call)
            raise
        call._t1 = perf_counter_ns()
        try:
            reset(token)
        except ValueError:  # pragma: no cover - token from another context
            current_call.set(None)
        if type(result) in _STREAM_TYPES:
            return _returned_stream(p, call, result)
        if call._metadata:
            call._finish()  # snapshot the metadata set through get_current_call()
        call._result = result
        p.submit(call)
        return result

    return wrapper


def _gen_wrapper(
    spec: TemplateSpec, run_stream: Callable[..., Any] | None = None
) -> Callable[..., Any]:
    """The wrapper of a generator function (``run_stream=_astream``: an async one)."""
    stream = run_stream or _stream

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        p = _active()
        if p is None:
            return wrapped(*args, **kwargs)
        return stream(p, spec, None, lambda: wrapped(*args, **kwargs))

    return wrapper


def _start_stream(
    p: Pipeline, spec: TemplateSpec, call: CallHandle | None, make: Callable[[], Any]
) -> tuple[CallHandle, Any]:
    """The call and the stream: a decorated generator function's call starts with its first
    chunk request; a returned stream's call started when the function was called."""
    if call is not None:
        stream = make()
    else:
        call = open_call(spec, current_call.get(), p.trace_getter)
        token = current_call.set(call)
        try:
            stream = make()
        except BaseException as exc:
            reset_token(token)
            _fail(call, exc)
            _submit(p, call)
            raise
        reset_token(token)
    call._streamed = True
    call._t1 = 0
    call._open_stream()
    return call, stream


def _stream(
    p: Pipeline, spec: TemplateSpec, call: CallHandle | None, make: Callable[[], Any]
) -> Generator[Any, Any, Any]:
    """Pass a stream through chunk by chunk (send/throw/close too); the record ends with it."""
    call, gen = _start_stream(p, spec, call, make)
    to_send: Any = None
    to_throw: BaseException | None = None
    try:
        while True:
            token = current_call.set(call)
            try:
                if to_throw is not None:
                    thrown, to_throw = to_throw, None
                    chunk = gen.throw(thrown)
                else:
                    chunk = gen.send(to_send)
            finally:
                reset_token(token)
            call._chunk(chunk, carries_usage(chunk))
            try:
                to_send = yield chunk
            except GeneratorExit:
                call._close_early()
                gen.close()
                raise
            except BaseException as exc:  # thrown in by the consumer: pass it on
                to_throw = exc
    except StopIteration as stop:
        call._finish()
        _submit(p, call)
        return stop.value
    except GeneratorExit:
        call._finish()
        _submit(p, call)
        raise
    except BaseException as exc:
        _fail(call, exc)
        _submit(p, call)
        raise


async def _astream(
    p: Pipeline, spec: TemplateSpec, call: CallHandle | None, make: Callable[[], Any]
) -> AsyncGenerator[Any, Any]:
    """The async twin of :func:`_stream` (asend/athrow/aclose passed on)."""
    call, agen = _start_stream(p, spec, call, make)
    to_send: Any = None
    to_throw: BaseException | None = None
    try:
        while True:
            token = current_call.set(call)
            try:
                if to_throw is not None:
                    thrown, to_throw = to_throw, None
                    chunk = await agen.athrow(thrown)
                else:
                    chunk = await agen.asend(to_send)
            finally:
                reset_token(token)
            call._chunk(chunk, carries_usage(chunk))
            try:
                to_send = yield chunk
            except GeneratorExit:
                call._close_early()
                await agen.aclose()
                raise
            except BaseException as exc:
                to_throw = exc
    except StopAsyncIteration:
        call._finish()
        _submit(p, call)
    except GeneratorExit:
        call._finish()
        _submit(p, call)
        raise
    except BaseException as exc:
        if _cancelled(exc):  # the server dropped the consumer (a client disconnect)
            call._close_early()
        else:
            _fail(call, exc)
        _submit(p, call)
        raise


def _returned_stream(p: Pipeline, call: CallHandle, result: Any) -> Any:
    """A function returned a (sync or async) generator: the record ends with that stream."""
    if type(result) is GeneratorType:
        return _stream(p, call._spec, call, lambda: result)
    return _astream(p, call._spec, call, lambda: result)
