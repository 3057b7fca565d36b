"""The call handle: what the hot path fills in, and how it becomes a record off the hot path.

The decorator only takes clocks, keeps a reference to the response and hands the handle to
the dispatcher. Usage extraction, pricing, metadata sanitising and id formatting happen when a
sink worker first needs the record (:meth:`CallHandle.materialize`, memoised).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import threading
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass
from time import perf_counter_ns, time_ns
from typing import TYPE_CHECKING, Any

from ._ids import format_uuid7, next_sequence
from ._jsonsafe import mask_secrets_in_text, sanitize_metadata, valid_text
from ._record import PromptExecution
from ._safety import warn_limited
from .usage import (
    EMPTY_INFO,
    EMPTY_USAGE,
    ResponseInfo,
    Usage,
    extract,
    has_usage,
    usage_from_mapping,
)

if TYPE_CHECKING:
    from .pricing import PricingTable

__all__ = [
    "CallHandle",
    "ReadyRecord",
    "TemplateSpec",
    "call_failed",
    "carries_usage",
    "current_call",
    "error_facts",
    "get_current_call",
    "materialize_batch",
]

MAX_ERROR_CHARS = 1000
current_call: ContextVar[CallHandle | None] = ContextVar("vividly_trace_call", default=None)
NOTHING: Any = object()  # "not set", where None is a legitimate value
_materialize_lock = threading.Lock()
_UTC = _dt.timezone.utc
_from_timestamp = _dt.datetime.fromtimestamp


@dataclass(frozen=True, slots=True)
class TemplateSpec:
    """What ``logged_prompt(...)`` was given (validated at decoration time)."""

    template_key: str
    version: str | None = None
    ab_group: str | None = None
    model: str | None = None
    metadata: Mapping[str, Any] | None = None


def _http_status(exc: BaseException) -> int | None:
    for value in (
        getattr(exc, "code", None),
        getattr(exc, "status_code", None),
        getattr(getattr(exc, "response", None), "status_code", None),
    ):
        if isinstance(value, bool):
            continue
        try:
            code = int(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if 100 <= code <= 599:
            return code
    return None


def clean_error_message(text: str) -> str:
    """An error message as stored: secrets masked, valid text, at most 1000 characters."""
    return mask_secrets_in_text(text[: MAX_ERROR_CHARS * 4])[:MAX_ERROR_CHARS]


def error_facts(exc: BaseException) -> tuple[str, str, int | None]:
    """(type name, message cut to 1000 characters with secrets masked, HTTP status)."""
    try:
        name = type(exc).__qualname__
    except Exception:
        name = "Exception"
    try:
        message = str(exc)
    except Exception:
        message = f"<unprintable {name}>"
    if not isinstance(message, str):
        message = f"<unprintable {name}>"
    message = clean_error_message(message)
    try:
        status = _http_status(exc)
    except Exception:
        status = None
    return name, message, status


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
    response = call._response if call._response is not NOTHING else call._result
    if response is None:
        return False
    try:
        return bool(extract(response).block_reason)
    except Exception:
        return False


def get_current_call() -> CallHandle | None:
    """The call in progress in this context (inside a decorated function or with-block).

    Inside a decorated generator that yields text rather than chunks, hand the chunks over
    with ``get_current_call().record_response(chunk)`` so that their usage is recorded.

    .. versionadded:: 0.1.0
    """
    return current_call.get()


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
    _metadata: dict[str, Any] | None = None
    _record: Any = NOTHING
    _trace: Any = None  # the OpenTelemetry span context active at the start, if captured

    def __init__(self, spec: TemplateSpec, parent: CallHandle | None) -> None:
        self._spec = spec
        self._parent = parent
        self._seq = next_sequence()
        self._wall_ns = time_ns()
        self._t0 = perf_counter_ns()

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

    def __repr__(self) -> str:
        return f"<CallHandle {self._spec.template_key!r} {self.execution_id}>"

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
        if not self._ttfc_ns:
            self._ttfc_ns = perf_counter_ns()
        if carries_usage:
            self._response = chunk
        self._last_chunk = chunk



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


def materialize_batch(
    items: Sequence[CallHandle | ReadyRecord],
    finish: Callable[[Any], PromptExecution | None],
    on_error: Callable[[Exception], None],
) -> list[PromptExecution]:
    """The records of ``items``, each built by ``finish`` once, whichever sink worker asks
    first (the others reuse it); ``None`` (redacted) is left out. An item whose ``finish``
    raises goes to ``on_error`` and is left unbuilt, so every worker counts its own loss.
    One lock per batch, not per record."""
    records: list[PromptExecution] = []
    append = records.append
    with _materialize_lock:
        for item in items:
            record = item._record
            if record is NOTHING:
                try:
                    record = item._record = finish(item)
                except Exception as exc:
                    on_error(exc)
                    continue
            if record is not None:
                append(record)
    return records


def _info_of(call: CallHandle) -> ResponseInfo:
    response = call._response
    if response is NOTHING:
        response = call._result
    info = extract(response) if response is not None else None
    last = call._last_chunk
    if last is not NOTHING and last is not response:
        tail = extract(last)
        if info is None:
            info = tail
        elif tail.finish_reason or tail.block_reason:
            info = ResponseInfo(
                usage=info.usage,
                provider=info.provider or tail.provider,
                response_model=info.response_model or tail.response_model,
                finish_reason=tail.finish_reason or info.finish_reason,
                block_reason=tail.block_reason or info.block_reason,
            )
    return info if info is not None else EMPTY_INFO


_RECORD_FIELDS = (
    "execution_id", "template_key", "success", "response_time_ms", "started_at",
    "template_version", "ab_test_group", "provider", "model", "response_model",
    "input_token_count", "output_token_count", "total_token_count", "cached_token_count",
    "thinking_token_count", "tool_use_token_count", "audio_input_token_count",
    "cached_audio_token_count", "cost_usd", "pricing_version", "error_type", "error_message",
    "http_status", "finish_reason", "streamed", "stream_closed_early", "time_to_first_chunk_ms",
    "parent_execution_id", "metadata",
)
if tuple(f.name for f in dataclasses.fields(PromptExecution)) != _RECORD_FIELDS:
    raise RuntimeError("PromptExecution's fields changed: update build_record (positional)")


def build_record(call: CallHandle, pricing: PricingTable, mask: bool) -> PromptExecution:
    """Turn a finished call into its record (extraction, pricing, sanitising)."""
    spec = call._spec
    info = _info_of(call)
    usage: Usage = call._usage or info.usage or EMPTY_USAGE
    error = call._error
    success = error is None
    error_type = error_message = None
    http_status = None
    if error is not None:
        error_type, error_message, http_status = error
    elif info.block_reason:
        success = False
        blocked_prompt = info.finish_reason is None or info.finish_reason != info.block_reason
        error_type = "BlockedPrompt" if blocked_prompt else "BlockedResponse"
        error_message = (
            f"prompt blocked: {info.block_reason}"
            if blocked_prompt
            else f"response stopped: finish_reason={info.block_reason}"
        )[:MAX_ERROR_CHARS]
    model = call._model or spec.model or info.response_model
    t1 = call._t1 or perf_counter_ns()
    ttfc = (call._ttfc_ns or None) if call._streamed else None
    metadata: Any = spec.metadata
    own = call._metadata
    if own:
        metadata = {**spec.metadata, **own} if spec.metadata else own
    trace = call._trace
    if trace is not None and not (metadata and "traceparent" in metadata):
        flags = int(getattr(trace, "trace_flags", 0)) & 0xFF
        header = f"00-{trace.trace_id:032x}-{trace.span_id:016x}-{flags:02x}"
        metadata = {**metadata, "traceparent": header} if metadata else {"traceparent": header}
    cost = None if usage is EMPTY_USAGE or usage.is_empty else pricing.cost(model, usage)
    parent = call._parent
    # By position, in _RECORD_FIELDS order (checked at import): a third of the cost of
    # 29 keyword arguments, on the path every record takes.
    return PromptExecution(
        call.execution_id,  # execution_id
        spec.template_key,  # template_key
        success,  # success
        (t1 - call._t0) / 1e6,  # response_time_ms
        # Whole microseconds / 1e6 is within 0.12 µs of exact until the year 2255, and
        # fromtimestamp() rounds to the microsecond: exact, and cheaper than epoch + delta.
        _from_timestamp(call._wall_ns // 1000 / 1e6, _UTC),  # started_at
        spec.version,  # template_version
        spec.ab_group,  # ab_test_group
        info.provider,  # provider
        model,  # model
        info.response_model,  # response_model
        usage.input_tokens,  # input_token_count
        usage.output_tokens,  # output_token_count
        usage.total_tokens,  # total_token_count
        usage.cached_tokens,  # cached_token_count
        usage.thinking_tokens,  # thinking_token_count
        usage.tool_use_tokens,  # tool_use_token_count
        usage.audio_input_tokens,  # audio_input_token_count
        usage.cached_audio_tokens,  # cached_audio_token_count
        cost,  # cost_usd
        pricing.version if cost is not None else None,  # pricing_version
        error_type,  # error_type
        error_message,  # error_message
        http_status,  # http_status
        info.finish_reason,  # finish_reason
        call._streamed,  # streamed
        call._closed_early,  # stream_closed_early
        (ttfc - call._t0) / 1e6 if ttfc is not None else None,  # time_to_first_chunk_ms
        parent.execution_id if parent is not None else None,  # parent_execution_id
        sanitize_metadata(metadata, mask=mask) if metadata else {},  # metadata
    )


def reset_token(token: Token[CallHandle | None]) -> None:
    """Reset the current-call context variable; ignore a token from another context."""
    try:
        current_call.reset(token)
    except ValueError:
        current_call.set(None)
