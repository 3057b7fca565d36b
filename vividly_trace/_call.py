"""The call handle: what the hot path fills in while a logged call runs.

The decorator only takes clocks, keeps a reference to the response and hands the handle to
the dispatcher; :mod:`vividly_trace._build` turns it into a record off the hot path.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Mapping
from contextvars import Token
from dataclasses import dataclass
from time import perf_counter_ns, time_ns
from typing import TYPE_CHECKING, Any

from ._context import current_scope
from ._errors import error_facts
from ._ids import format_uuid7, next_sequence
from ._jsonsafe import valid_text
from ._lifecycle import on_fork
from ._record import PromptExecution
from ._safety import warn_limited
from .usage import Usage, extract, has_usage, service_tier_name, usage_from_mapping

if TYPE_CHECKING:
    from ._scope import Scope

__all__ = [
    "CAPTURED_REFS",
    "MAX_CAPTURED",
    "NOTHING",
    "OPEN_STREAMS",
    "CallHandle",
    "ContentRequest",
    "GeminiRequest",
    "ReadyRecord",
    "RequestEntry",
    "TemplateSpec",
    "call_failed",
    "carries_usage",
    "mark_captured",
    "open_call",
    "requests_of",
    "was_captured",
]

NOTHING: Any = object()  # "not set", where None is a legitimate value
OPEN_STREAMS: weakref.WeakSet[CallHandle] = weakref.WeakSet()
"""Streamed calls still open: ``shutdown()`` records them (closed early) so none is lost."""
on_fork(OPEN_STREAMS.clear)  # the parent's streams are the parent's to record
_claim_lock = threading.Lock()


def _renew_claim_lock() -> None:
    global _claim_lock
    _claim_lock = threading.Lock()  # a parent thread may have held it at the fork


on_fork(_renew_claim_lock)
# id -> weak reference, checked against the object itself (an id may be reused once its
# object is gone). A plain dict of callback-free references costs a tenth of a
# WeakValueDictionary per request; it is emptied when full, which only forgets old marks.
CAPTURED_REFS: dict[int, weakref.ref[Any]] = {}
MAX_CAPTURED = 10_000


def mark_captured(response: Any) -> None:
    """Mark ``response`` (a response or stream chunk) as one a captured request answered
    (see :func:`was_captured`)."""
    try:
        ref = weakref.ref(response)
    except TypeError:  # not weakly referenceable: simply not marked
        return
    if len(CAPTURED_REFS) >= MAX_CAPTURED:
        CAPTURED_REFS.clear()
    CAPTURED_REFS[id(response)] = ref


def was_captured(response: Any) -> bool:
    """True when client capture recorded ``response`` (or this chunk) as a request: the
    builder never counts it again when a function returns it or hands it over elsewhere."""
    ref = CAPTURED_REFS.get(id(response))
    return ref is not None and ref() is response


@dataclass(frozen=True, slots=True)
class TemplateSpec:
    """What ``logged_prompt(...)`` was given (validated at decoration time)."""

    template_key: str
    version: str | None = None
    ab_group: str | None = None
    model: str | None = None
    metadata: Mapping[str, Any] | None = None


class GeminiRequest:
    """One request to Gemini made during a logged call, as client capture saw it.

    The hot path only keeps references and clock readings; usage, cost and outcome are read
    from ``response`` (the response, or the last stream chunk that carried usage) and
    ``last`` (the last chunk) when the record is built.
    """

    # No __slots__: what most requests never set falls back to these class-level defaults,
    # so that the constructor, on the path of every captured request, sets three.
    config: Any = None  # the request's config (its service_tier, read when built)
    client: Any = None  # the client object that sent it (its provider, read when built)
    response: Any = None
    last: Any = None
    error: tuple[str, str, int | None] | None = None
    streamed: bool = False
    t1: int = 0
    t_first: int = 0  # when a stream's first chunk arrived

    def __init__(self, model: Any, operation: str = "generate_content") -> None:
        self.model: str | None = model if type(model) is str else None
        self.operation = operation
        self.t0 = perf_counter_ns()

    def done(self, response: Any) -> None:
        """The request answered ``response``."""
        self.t1 = perf_counter_ns()
        self.response = response
        mark_captured(response)

    def chunk(self, chunk: Any) -> None:
        """A stream chunk arrived (the stream's usage is that of its last chunk with any)."""
        if self.response is None:
            self.response = chunk
            self.t_first = perf_counter_ns()
        elif carries_usage(chunk):
            self.response = chunk
        self.last = chunk
        mark_captured(chunk)

    def failed(self, exc: BaseException) -> None:
        """The request raised ``exc`` (an HTTP error, a timeout...)."""
        self.t1 = perf_counter_ns()
        self.error = error_facts(exc)


RequestEntry = tuple[Any, str, Any, int, int, Any]
"""A request that answered, as the hot path of client capture keeps it: ``(model,
operation, client, t0, t1, response)``, one tuple built after the response came (cheaper than
an object built before it); :func:`requests_of` turns it into a :class:`GeminiRequest`."""


def _entry_request(entry: RequestEntry) -> GeminiRequest:
    model, operation, client, t0, t1, response = entry
    request = GeminiRequest.__new__(GeminiRequest)
    request.model = model if type(model) is str else None
    request.operation = operation
    request.client = client
    request.t0 = t0
    request.t1 = t1
    request.response = response
    # The capture mark, set here rather than on the hot path: the call that owns a request
    # is queued (and so built) before any call that returns its response or is handed it
    # (an enclosing call ends later), and a call sampled out is marked when it is dropped.
    mark_captured(response)
    return request


def requests_of(call: CallHandle) -> list[GeminiRequest]:
    """The Gemini requests client capture saw during ``call``, in order, as objects (those
    the hot path kept as :data:`RequestEntry` tuples made into requests, their responses
    marked captured: see :func:`was_captured`)."""
    requests = call._requests
    if not requests:
        return []
    return [_entry_request(r) if isinstance(r, tuple) else r for r in requests]


class ContentRequest(GeminiRequest):
    """A request whose content is kept too (``configure(capture_content=True)``): what it
    sent and, for a stream, every chunk; their text is read when the record is built."""

    chunks: list[Any] | None
    contents: Any
    kwargs: dict[str, Any]

    def keep(self, args: tuple[Any, ...], kwargs: dict[str, Any], stream: bool) -> None:
        """Keep references to what the request sends (``contents``, else the Interactions
        API's ``input``, else the first positional argument of the older client)."""
        contents = kwargs.get("contents", NOTHING)
        if contents is NOTHING:
            contents = kwargs.get("input", args[0] if args else None)
        # One shallow copy, no text work: a list the caller appends to after the request (a
        # chat history kept by hand) must still show what was sent.
        self.contents = contents[:] if type(contents) is list else contents
        self.kwargs = kwargs  # the config (system instruction), read when the record is built
        self.chunks = [] if stream else None

    def chunk(self, chunk: Any) -> None:
        """A stream chunk arrived: kept for the response text."""
        GeminiRequest.chunk(self, chunk)
        chunks = self.chunks
        if chunks is not None:
            chunks.append(chunk)


def carries_usage(chunk: Any) -> bool:
    """True when a response or stream chunk reports token usage."""
    try:
        if hasattr(chunk, "usage_metadata"):
            return has_usage(chunk)
        return not extract(chunk).usage.is_empty
    except Exception:  # a hostile chunk must still pass through the stream
        return False


def call_failed(call: CallHandle) -> bool:
    """True when a finished call failed: it raised, or its response was blocked."""
    if call._error is not None:
        return True
    requests = requests_of(call)  # a call sampled out is marked here (see _entry_request)
    if requests:
        last = requests[-1]
        if last.error is not None:
            return True
        response = last.last if last.last is not None else last.response
    else:
        response = call._response if call._response is not NOTHING else call._result
    if response is None:
        return False
    try:
        return bool(extract(response).block_reason)
    except Exception:
        return False


class CallHandle:
    """One call in progress: yielded by ``with logged_prompt(...) as call``.

    Use :meth:`record_response` to hand over the Gemini response, :meth:`set_usage` for
    counts from elsewhere, :meth:`set_model` for the model name, and :attr:`metadata` for
    per-call metadata. :attr:`execution_id` is known on entry.

    .. versionadded:: 0.1.0
    """

    # No __slots__: optional facts fall back to these class-level defaults, so neither the
    # hot path nor the worker pays for a missing-attribute lookup (an exception inside).
    _spec: TemplateSpec
    _parent: CallHandle | None
    _scope: Scope | None  # who called (vividly_trace.context), when the call started
    _seq: int
    _t0: int
    _wall_ns: int
    _token: Token[CallHandle | None]
    _streamed: bool = False
    _closed_early: bool = False
    _t1: int = 0
    _ttfc_ns: int = 0
    _error: tuple[str, str, int | None] | None = None
    _response: Any = NOTHING
    _result: Any = None
    _last_chunk: Any = NOTHING
    _usage: Usage | None = None
    _model: str | None = None
    _tier: str | None = None  # set_service_tier
    _metadata: dict[str, Any] | None = None
    _record: Any = NOTHING
    _trace: Any = None  # the OpenTelemetry span context active at the start, if captured
    # What client capture saw, in order (read through requests_of).
    _requests: list[GeminiRequest | RequestEntry] | None = None
    _t_chunk: int = 0  # when the last stream chunk was handed to the consumer
    _open: bool = False  # a stream in OPEN_STREAMS: whoever claims it records it
    _claimed: bool = False
    # (key, version, ab_group) of the prompt served from the store during the call
    # (vividly_trace.prompts.get), which the record then carries as its version and group.
    _prompt: tuple[str, str | None, str | None] | None = None

    def _open_stream(self) -> None:
        """A stream starts: ``shutdown()`` records it if it is still open then."""
        self._open = True
        OPEN_STREAMS.add(self)

    def _claim(self) -> bool:
        """True for the one caller that may record this call: the stream's own end, or
        ``shutdown()`` finalising it (never both); always True for a call not streamed.

        Not membership of ``OPEN_STREAMS``: the garbage collector clears that weak
        reference before it finalises an abandoned generator, whose end must still record."""
        if not self._open:
            return True
        with _claim_lock:
            if self._claimed:
                return False
            self._claimed = True
        OPEN_STREAMS.discard(self)
        return True

    def __new__(
        cls,
        spec: TemplateSpec,
        parent: CallHandle | None,
        trace_getter: Callable[[], Any] | None = None,
    ) -> CallHandle:
        return open_call(spec, parent, trace_getter)

    # -- public handle API ---------------------------------------------------------------
    @property
    def execution_id(self) -> str:
        """The id this call's record will carry (a UUIDv7 string)."""
        return format_uuid7(self._wall_ns, self._seq)

    @property
    def metadata(self) -> dict[str, Any]:
        """Per-call metadata, merged over the decorator's ``metadata``."""
        meta = self._metadata
        if meta is None:
            meta = self._metadata = {}
        return meta

    def score(
        self,
        name: str,
        value: float | bool | str,
        *,
        comment: str | None = None,
        source: str = "user",
    ) -> bool:
        """Score the execution this call produces (see :func:`vividly_trace.score`).

        .. versionadded:: 0.2.0
        """
        from ._score import send_score  # scores are optional: not imported with the package

        return send_score(self.execution_id, name, value, comment, source)

    def record_response(self, response: Any) -> None:
        """Keep ``response`` (a Gemini response, stream chunk or usage dict) for this record.

        Call it once with a response, or with every chunk of a stream: usage is taken from
        the last one that carries usage, the finish reason from the last one.
        """
        if self._response is NOTHING or carries_usage(response):
            self._response = response
        if self._last_chunk is not NOTHING:  # a second chunk: this is a stream
            self._streamed = True
        elif not self._ttfc_ns:
            self._ttfc_ns = perf_counter_ns()
        self._last_chunk = response

    def set_usage(
        self,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        *,
        cached_tokens: int | None = None,
        thinking_tokens: int | None = None,
        tool_use_tokens: int | None = None,
        audio_input_tokens: int | None = None,
        cached_audio_tokens: int | None = None,
    ) -> None:
        """Set token counts by hand (Gemini semantics, as in ``calculate_gemini_cost``).

        ``input_tokens`` includes ``cached_tokens``; ``output_tokens`` excludes
        ``thinking_tokens``, which are added to output. ``cached_audio_tokens`` is the audio
        part of ``cached_tokens`` (and of ``audio_input_tokens``), billed at the cached-audio
        rate. These win over a recorded response.
        """
        try:
            self._usage = usage_from_mapping(
                {
                    "input_tokens": input_tokens,
                    "output_tokens": output_tokens,
                    "cached_tokens": cached_tokens,
                    "thinking_tokens": thinking_tokens,
                    "tool_use_tokens": tool_use_tokens,
                    "audio_input_tokens": audio_input_tokens,
                    "cached_audio_tokens": cached_audio_tokens,
                }
            )
        except Exception as exc:
            warn_limited(
                "set_usage",
                "CallHandle.set_usage: unusable counts ignored (%s)",
                type(exc).__name__,
            )

    def set_model(self, name: str) -> None:
        """Name the model requested (wins over the decorator's ``model``)."""
        if isinstance(name, str):
            self._model = valid_text(str.__str__(name)[:256])
        else:
            warn_limited(
                "set_model",
                "CallHandle.set_model: the model name must be a str; ignored (%s)",
                type(name).__name__,
            )

    def set_service_tier(self, tier: str) -> None:
        """Name the service tier that priced this call: ``"batch"`` for the results of a
        Batch API job handed to :meth:`record_response` (their responses do not say so),
        or ``standard``, ``flex``, ``priority``, ``provisioned``. Wins over what the request
        and the response say."""
        name = service_tier_name(tier) if isinstance(tier, str) else None
        if name is None:
            warn_limited(
                "set_service_tier",
                "CallHandle.set_service_tier: unknown tier %r ignored (standard, flex, "
                "priority, batch or provisioned)",
                str(tier)[:40] if isinstance(tier, str) else type(tier).__name__,
            )
            return
        self._tier = name

    def __repr__(self) -> str:
        return f"<CallHandle {self._spec.template_key!r} {self.execution_id}>"

    def _request(
        self,
        model: Any,
        operation: str = "generate_content",
        kind: type[GeminiRequest] = GeminiRequest,
    ) -> GeminiRequest:
        """A Gemini request starts inside this call (client capture)."""
        request = kind(model, operation)
        requests = self._requests
        if requests is None:
            self._requests = [request]
        else:
            requests.append(request)
        return request

    def _use_prompt(self, key: str, version: str | None, ab_group: str | None) -> None:
        """A prompt was fetched from the store during this call: its version and group
        become the record's. The first one fetched counts, unless a later one has the
        call's own template key and the first had not."""
        current = self._prompt
        own = self._spec.template_key
        if current is None or (current[0] != own and key == own):
            self._prompt = (key, version, ab_group)

    # -- used by the decorator -----------------------------------------------------------
    def _finish(self) -> None:
        """Stop the clock (if the hot path did not already); snapshot per-call metadata."""
        if not self._t1:
            self._t1 = perf_counter_ns()
        if self._metadata:
            # The record is built later, off this thread: keep the values of now.
            self._metadata = dict(self._metadata)

    def _fail(self, exc: BaseException) -> None:
        self._error = error_facts(exc)

    def _chunk(self, chunk: Any, carries_usage: bool) -> None:
        now = self._t_chunk = perf_counter_ns()
        if not self._ttfc_ns:
            self._ttfc_ns = now
        if carries_usage:
            self._response = chunk
        self._last_chunk = chunk

    def _close_early(self) -> None:
        """The consumer went away (closed the stream, was cancelled, or shutdown came):
        closed early, not failed, its latency up to the last chunk delivered."""
        self._closed_early = True
        if not self._t1:
            self._t1 = self._t_chunk or perf_counter_ns()
        self._finish()


_new = object.__new__


def open_call(
    spec: TemplateSpec,
    parent: CallHandle | None,
    trace_getter: Callable[[], Any] | None = None,
) -> CallHandle:
    """A logged call starts: its handle, the clock started last. ``CallHandle(...)`` is this;
    the hot path calls it directly (a plain call costs about 75 ns less than ``type.__call__``
    and an ``__init__``)."""
    call: CallHandle = _new(CallHandle)
    call._spec = spec
    call._parent = parent
    call._scope = current_scope.get()
    call._seq = next_sequence()
    call._wall_ns = time_ns()
    if trace_getter is not None:
        call._trace = trace_getter()
    call._t0 = perf_counter_ns()  # last: the clock starts just before the call
    return call


class ReadyRecord:
    """A record built by the caller (``log_prompt_execution``), queued like a call."""

    __slots__ = ("_record", "_t1", "record")

    def __init__(self, record: PromptExecution) -> None:
        self.record = record
        self._record = NOTHING
        self._t1 = perf_counter_ns()  # when it was queued, as a call's end

    @property
    def failed(self) -> bool:
        return not self.record.success

    record: PromptExecution
    _record: Any
    _t1: int
