"""Record building: a finished call becomes its :class:`PromptExecution`, off the hot path.

Each sink worker is handed the pipeline's :class:`RecordBuilder` and calls
:meth:`RecordBuilder.build_batch` on the items it dequeued. The line is straight:
worker -> builder -> usage extraction / pricing / metadata sanitising -> record. A record is
built once, by whichever worker asks first; the others reuse it.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import threading
from collections.abc import Callable, Sequence
from decimal import Decimal
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any

from ._call import (
    CAPTURED_REFS,
    NOTHING,
    CallHandle,
    ContentRequest,
    ReadyRecord,
    mark_captured,
    requests_of,
    was_captured,
)
from ._errors import MAX_ERROR_CHARS
from ._ids import format_uuid7
from ._jsonsafe import sanitize_metadata
from ._lifecycle import on_fork
from ._record import TWINS, PromptExecution, RequestRecord, twin_of
from ._safety import internal_error, logger, warn_limited
from .usage import (
    EMPTY_INFO,
    EMPTY_USAGE,
    ResponseInfo,
    Usage,
    add_usage,
    extract,
    service_tier_name,
)

if TYPE_CHECKING:
    from .pricing import PricingTable

__all__ = ["Item", "RecordBuilder", "Redactor", "build_record"]

Item = CallHandle | ReadyRecord
"""What the hot path queues: a finished call, or a record built by the caller."""

Redactor = Callable[[PromptExecution], "PromptExecution | None"]

_MAX_WARNED = 1000  # templates warned about, at most (a bound, not a goal)
_UTC = _dt.timezone.utc
_from_timestamp = _dt.datetime.fromtimestamp
_lock = threading.Lock()


def _renew_lock() -> None:
    global _lock
    _lock = threading.Lock()  # a parent thread may have held it at the fork


on_fork(_renew_lock)


class RecordBuilder:
    """Builds (and redacts) the records of queued items, each once for all sinks.

    ``on_drop(reason)`` is told of every record left out on purpose (``redacted``,
    ``redact_error``), so that each sink's worker counts it. ``content_max_chars`` (None:
    content capture off) bounds the prompt and response texts.
    """

    def __init__(
        self,
        pricing: PricingTable,
        *,
        mask_secrets: bool = True,
        redact: Redactor | None = None,
        on_drop: Callable[[str], None] | None = None,
        content_max_chars: int | None = None,
    ) -> None:
        self.pricing = pricing
        self.content_max_chars = content_max_chars
        self.mask_secrets = mask_secrets
        self.redact = redact
        self._on_drop = on_drop
        self._no_usage: set[str] = set()  # templates already warned about

    def build_batch(
        self, items: Sequence[Item], on_error: Callable[[Exception], None]
    ) -> list[PromptExecution]:
        """The records of ``items`` (redacted ones left out). An item whose building raises
        goes to ``on_error`` and stays unbuilt, so every worker counts its own loss. One
        lock per batch, not per record."""
        records: list[PromptExecution] = []
        append = records.append
        build = self._build
        with _lock:
            for item in items:
                record = item._record
                if record is NOTHING:
                    try:
                        record = item._record = build(item)
                    except Exception as exc:
                        on_error(exc)
                        continue
                if record is not None:
                    append(record)
        return records

    def _build(self, item: Item) -> PromptExecution | None:
        if type(item) is ReadyRecord:
            record: PromptExecution = item.record
        else:
            record = build_record(
                item,  # type: ignore[arg-type]
                self.pricing,
                self.mask_secrets,
                self.content_max_chars,
            )
            if (
                record.success
                and record.input_token_count is None
                and record.output_token_count is None
                and record.template_key not in self._no_usage
            ):
                self._warn_no_usage(record.template_key)
        if self.redact is None:
            return record
        try:
            result = self.redact(record)
            if result is not None and not isinstance(result, PromptExecution):
                raise TypeError(f"redact hook returned {type(result).__name__}")
        except Exception as exc:  # the application's hook: a warning, not an internal error
            warn_limited("redact", "vividly_trace redact hook failed, record dropped: %r", exc)
            self._drop("redact_error")
            return None
        if result is None:
            self._drop("redacted")
        return result

    def _warn_no_usage(self, key: str) -> None:
        """Once per template: a successful call whose record has no token usage."""
        if len(self._no_usage) >= _MAX_WARNED:
            return
        self._no_usage.add(key)
        logger.warning(
            "vividly_trace: a call of template %r succeeded without token usage, so its cost "
            "is unknown. Likely fix: call Gemini with google-genai inside the logged function "
            "(client capture, on by default), or hand the response over with "
            "get_current_call().record_response(response), or give the counts with "
            "set_usage(...)",
            key,
        )

    def _drop(self, reason: str) -> None:
        if self._on_drop is not None:
            self._on_drop(reason)


def _merged_info(response: Any, last: Any) -> ResponseInfo:
    """Usage from ``response`` (the response, or the last chunk with usage), finish and
    block reasons from ``last`` (the last chunk) when it says more."""
    info = extract(response) if response is not None else None
    if last is not NOTHING and last is not None and last is not response:
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
                service_tier=info.service_tier or tail.service_tier,
            )
    return info if info is not None else EMPTY_INFO


_RECORD_FIELDS = (
    "execution_id",
    "template_key",
    "success",
    "response_time_ms",
    "started_at",
    "template_version",
    "ab_test_group",
    "provider",
    "model",
    "response_model",
    "input_token_count",
    "output_token_count",
    "total_token_count",
    "cached_token_count",
    "thinking_token_count",
    "tool_use_token_count",
    "audio_input_token_count",
    "cached_audio_token_count",
    "cost_usd",
    "pricing_version",
    "error_type",
    "error_message",
    "http_status",
    "finish_reason",
    "streamed",
    "stream_closed_early",
    "time_to_first_chunk_ms",
    "parent_execution_id",
    "metadata",
    "requests",
    "prompt_text",
    "response_text",
    "user_id",
    "session_id",
    "request_id",
    "service_tier",
    "image_input_token_count",
    "video_input_token_count",
    "image_output_token_count",
    "audio_output_token_count",
    "grounded_prompt_count",
    "search_query_count",
)
if tuple(f.name for f in dataclasses.fields(PromptExecution)) != _RECORD_FIELDS:  # pragma: no cover
    raise RuntimeError("PromptExecution's fields changed: update build_record (positional)")
_REQUEST_FIELDS = (
    "operation",
    "success",
    "response_time_ms",
    "offset_ms",
    "model",
    "response_model",
    "input_token_count",
    "output_token_count",
    "total_token_count",
    "cached_token_count",
    "thinking_token_count",
    "tool_use_token_count",
    "audio_input_token_count",
    "cached_audio_token_count",
    "cost_usd",
    "error_type",
    "http_status",
    "finish_reason",
    "streamed",
    "image_input_token_count",
    "video_input_token_count",
    "image_output_token_count",
    "audio_output_token_count",
    "grounded_prompt_count",
    "search_query_count",
)
if tuple(f.name for f in dataclasses.fields(RequestRecord)) != _REQUEST_FIELDS:  # pragma: no cover
    raise RuntimeError("RequestRecord's fields changed: update _request_record (positional)")


class _Requests:
    """What the Gemini requests of one call add up to (client capture): tokens summed,
    each request priced at its own model, the outcome of the last one.

    When capture saw requests, they alone give the usage: a response the function returned,
    yielded or handed to ``record_response`` is one of them, or a copy or conversion of one
    (a stream's merged chunks, ``model_dump()``), and counting it too would double the bill.
    """

    __slots__ = (
        "cost",
        "error",
        "first_chunk",
        "info",
        "model",
        "provider",
        "records",
        "tier",
        "usage",
        "version",
    )

    def __init__(self, call: CallHandle, pricing: PricingTable, day: int) -> None:
        usage = EMPTY_USAGE
        cost: Decimal | None = _ZERO
        info = EMPTY_INFO
        records = []
        t0 = call._t0
        version: str | None = None
        tier = provider = first_model = error = None
        first_chunk = 0
        for request in call._requests or ():
            if isinstance(request, tuple):  # a RequestEntry of the hot path: it answered
                model, operation, client, r_t0, r_t1, response = request
                if type(model) is not str:
                    model = None
                mark_captured(response)  # the capture mark, off the hot path (see RequestEntry)
                info = extract(response)
                config = None
                error = None
                streamed = False
            else:
                model = request.model
                operation = request.operation
                client = request.client
                r_t0, r_t1 = request.t0, request.t1
                info = _merged_info(request.response, request.last)
                config = request.config
                error = request.error
                streamed = request.streamed
                if not first_chunk:
                    first_chunk = request.t_first
            if model and first_model is None:
                first_model = model
            priced = pricing.priced_model(model, info.response_model)
            more = info.usage
            tier = call._tier or info.service_tier or _config_tier(config)
            provider = _provider_of(client) or info.provider
            price = None
            if more.input_tokens is not None or more.output_tokens is not None:
                price, priced_by = pricing.quote(
                    priced, more, day=day, tier=tier, operation=operation, provider=provider
                )
                usage = more if usage is EMPTY_USAGE else add_usage(usage, more)
                # One request without a price makes the total unknown (never an undercount).
                cost = None if cost is None or price is None else cost + price
                if priced_by is not None and priced_by != version:
                    # Requests priced in different periods (a call across a price change).
                    version = priced_by if version is None else f"{pricing.version}/mixed"
            records.append(
                _request_record(operation, model, r_t0, r_t1, error, streamed, info, price, t0)
            )
        self.usage = usage
        self.cost = None if usage.is_empty else cost
        self.version = version if self.cost is not None else None
        self.tier = tier
        self.provider = provider
        self.info = info
        self.error = error  # the last request's
        self.model = first_model
        self.records = tuple(records)
        self.first_chunk = first_chunk


def _provider_of(client: Any) -> str | None:
    """``vertex_ai`` for a request a google-genai client built with ``vertexai=True`` sent
    (its ``Models`` / ``Caches`` object's ``_api_client.vertexai``), else None."""
    if client is None:
        return None
    api = getattr(client, "_api_client", None)
    return "vertex_ai" if getattr(api, "vertexai", None) is True else None


def _config_tier(config: Any) -> str | None:
    """The ``service_tier`` a google-genai request's config asks for (an object or a dict)."""
    if config is None:
        return None
    if isinstance(config, dict):
        value = config.get("service_tier", config.get("serviceTier"))
    else:
        value = getattr(config, "service_tier", None)
    return None if value is None else service_tier_name(value)


def _request_record(
    operation: str,
    model: str | None,
    r_t0: int,
    r_t1: int,
    error: tuple[str, str, int | None] | None,
    streamed: bool,
    info: ResponseInfo,
    cost: Decimal | None,
    t0: int,
) -> RequestRecord:
    usage = info.usage  # unpacked as in build_record
    (n_in, n_out, n_total, n_cached, n_thinking, n_tool, n_audio, n_cached_audio) = usage[:8]
    (n_image, n_video, n_image_out, n_audio_out, n_grounded, n_queries) = usage[8:]
    t1 = r_t1 or perf_counter_ns()
    success = error is None and not info.block_reason
    request: Any = (TWINS.get(RequestRecord) or twin_of(RequestRecord))(
        operation,
        success,
        (t1 - r_t0) / 1e6,
        (r_t0 - t0) / 1e6,
        model,
        info.response_model,
        n_in,
        n_out,
        n_total,
        n_cached,
        n_thinking,
        n_tool,
        n_audio,
        n_cached_audio,
        cost,
        error[0] if error is not None else (_blocked(info)[0] if info.block_reason else None),
        error[2] if error is not None else None,
        info.finish_reason,
        streamed,
        n_image,
        n_video,
        n_image_out,
        n_audio_out,
        n_grounded,
        n_queries,
    )
    request.__class__ = RequestRecord
    return request  # type: ignore[no-any-return]


_ZERO = Decimal(0)
_DAY_NS = 86_400 * 10**9


def _blocked(info: ResponseInfo) -> tuple[str, str]:
    """(error type, message) of a blocked prompt, a response stopped by a filter, or an
    interaction that failed, was cancelled or exceeded its budget."""
    from .usage.interactions import interaction_failure  # rare: a blocked or failed answer

    failed = interaction_failure(info.block_reason)
    if failed is not None:
        return failed
    blocked_prompt = info.finish_reason is None or info.finish_reason != info.block_reason
    if blocked_prompt:
        return "BlockedPrompt", f"prompt blocked: {info.block_reason}"[:MAX_ERROR_CHARS]
    message = f"response stopped: finish_reason={info.block_reason}"
    return "BlockedResponse", message[:MAX_ERROR_CHARS]


_NO_TEXT_ANSWER = ("embed", "caches.")  # operations whose answer is no text
_NO_PROMPT = ("interactions.get", "interactions.cancel", "interactions.delete")  # send no text


def _call_texts(call: CallHandle, max_chars: int, mask: bool) -> tuple[str | None, str | None]:
    """(prompt, response) of a call, bounded and masked.

    With several requests, the prompt is the first request's and the response the last
    text-answering request's (automatic function calling: the question asked and the final
    answer); without client capture, the response is that of a raw response the function
    returned or handed to ``record_response`` (not of a stream, whose chunks are not kept).
    """
    # Imported on first use: content capture is off by default.
    from ._content import bound_text, prompt_text, response_text, stream_text, system_instruction_of

    try:
        prompt = response = None
        requests = requests_of(call)
        if requests:
            kept = [r for r in requests if type(r) is ContentRequest]
            for request in kept:
                if request.operation.startswith(_NO_PROMPT):
                    continue
                kwargs = request.kwargs
                system = system_instruction_of(kwargs.get("config"), kwargs)
                prompt = prompt_text(request.contents, system)
                if prompt is not None:
                    break
            # Every request, not only those whose content was kept: a background
            # interaction's completion is a request added when it completes.
            answering = [r for r in requests if not r.operation.startswith(_NO_TEXT_ANSWER)]
            last = answering[-1] if answering else None
            if last is not None and last.error is None:
                chunks = last.chunks if type(last) is ContentRequest else None
                if chunks is not None:
                    response = stream_text(chunks)
                elif not last.streamed:  # a stream without its chunks has no whole text
                    response = response_text(last.response)
        elif not call._streamed:
            answer = call._response if call._response is not NOTHING else call._result
            response = response_text(answer)
        return (
            bound_text(prompt, max_chars, mask) if prompt is not None else None,
            bound_text(response, max_chars, mask) if response is not None else None,
        )
    except Exception as exc:
        internal_error("content", exc, "vividly_trace could not read a call's text: %r", exc)
        return None, None


def build_record(
    call: CallHandle, pricing: PricingTable, mask: bool, content_max_chars: int | None = None
) -> PromptExecution:
    """Turn a finished call into its record (extraction, pricing, sanitising); with
    ``content_max_chars``, its prompt and response texts too."""
    spec = call._spec
    day = call._wall_ns // _DAY_NS  # the UTC day the call started: its price period
    summed = _Requests(call, pricing, day) if call._requests else None
    if summed is not None:
        info = summed.info
        usage: Usage = call._usage or summed.usage
    else:
        response = call._response
        if response is NOTHING:
            response = call._result
        last = call._last_chunk
        if last is NOTHING or last is None or last is response:
            info = extract(response)  # one response (EMPTY_INFO for None)
        else:
            info = _merged_info(response, last)
        usage = call._usage or info.usage
        if (
            call._usage is None
            and CAPTURED_REFS
            and response is not None
            and was_captured(response)
        ):
            # A captured request's response, recorded already (under the call that made the
            # request, or on its own, e.g. from a thread pool the call did not carry into).
            usage = EMPTY_USAGE
    error = call._error
    if error is None and summed is not None:
        error = summed.error  # the last request failed and the function went on
    success = error is None
    error_type = error_message = None
    http_status = None
    if error is not None:
        error_type, error_message, http_status = error
    elif info.block_reason:
        success = False
        error_type, error_message = _blocked(info)
    model = (
        call._model
        or spec.model
        or (summed.model if summed is not None else None)
        or info.response_model
    )
    t1 = call._t1 or perf_counter_ns()
    streamed = call._streamed
    ttfc = (call._ttfc_ns or None) if streamed else None
    if not streamed and summed is not None and summed.first_chunk:
        # A with-block or a function that consumed a Gemini stream itself: a streamed call,
        # its first chunk the first one Gemini sent.
        streamed = True
        ttfc = summed.first_chunk
    metadata: Any = spec.metadata
    scope = call._scope
    if scope is not None and scope.metadata:
        metadata = {**spec.metadata, **scope.metadata} if spec.metadata else scope.metadata
    own = call._metadata
    if own:
        metadata = {**metadata, **own} if metadata else own
    trace = call._trace
    if trace is not None and not (metadata and "traceparent" in metadata):
        flags = int(getattr(trace, "trace_flags", 0)) & 0xFF
        header = f"00-{trace.trace_id:032x}-{trace.span_id:016x}-{flags:02x}"
        metadata = {**metadata, "traceparent": header} if metadata else {"traceparent": header}
    tier = summed.tier if summed is not None else (call._tier or info.service_tier)
    provider = summed.provider if summed is not None else info.provider
    if summed is not None and call._usage is None:
        cost = summed.cost
        priced_by = summed.version
    elif usage.input_tokens is None:  # no count at all, or no input count: cost unknown
        cost = priced_by = None
    else:
        cost, priced_by = pricing.quote(model, usage, day=day, tier=tier, provider=provider)
    parent = call._parent
    version, group = spec.version, spec.ab_group
    fetched = call._prompt
    if fetched is not None:
        version, group = fetched[1], fetched[2]
    prompt = answer = None
    if content_max_chars is not None:
        prompt, answer = _call_texts(call, content_max_chars, mask)
    # By position, in _RECORD_FIELDS order (checked at import): a third of the cost of
    # 29 keyword arguments, on the path every record takes.
    # Unpacked (field order checked in usage._types): cheaper than 14 attribute reads.
    (n_in, n_out, n_total, n_cached, n_thinking, n_tool, n_audio, n_cached_audio) = usage[:8]
    (n_image, n_video, n_image_out, n_audio_out, n_grounded, n_queries) = usage[8:]
    record: Any = (TWINS.get(PromptExecution) or twin_of(PromptExecution))(
        format_uuid7(call._wall_ns, call._seq),  # execution_id (CallHandle.execution_id)
        spec.template_key,  # template_key
        success,  # success
        (t1 - call._t0) / 1e6,  # response_time_ms
        # Whole microseconds / 1e6 is within 0.12 µs of exact until the year 2255, and
        # fromtimestamp() rounds to the microsecond: exact, and cheaper than epoch + delta.
        _from_timestamp(call._wall_ns // 1000 / 1e6, _UTC),  # started_at
        version,  # template_version
        group,  # ab_test_group
        provider,  # provider
        model,  # model
        info.response_model,  # response_model
        n_in,  # input_token_count
        n_out,  # output_token_count
        n_total,  # total_token_count
        n_cached,  # cached_token_count
        n_thinking,  # thinking_token_count
        n_tool,  # tool_use_token_count
        n_audio,  # audio_input_token_count
        n_cached_audio,  # cached_audio_token_count
        cost,  # cost_usd
        priced_by,  # pricing_version
        error_type,  # error_type
        error_message,  # error_message
        http_status,  # http_status
        info.finish_reason,  # finish_reason
        streamed,  # streamed
        call._closed_early,  # stream_closed_early
        (ttfc - call._t0) / 1e6 if ttfc is not None else None,  # time_to_first_chunk_ms
        parent.execution_id if parent is not None else None,  # parent_execution_id
        sanitize_metadata(metadata, mask=mask) if metadata else {},  # metadata
        summed.records if summed is not None else (),  # requests
        prompt,  # prompt_text
        answer,  # response_text
        scope.user_id if scope is not None else None,  # user_id
        scope.session_id if scope is not None else None,  # session_id
        scope.request_id if scope is not None else None,  # request_id
        tier,  # service_tier
        n_image,  # image_input_token_count
        n_video,  # video_input_token_count
        n_image_out,  # image_output_token_count
        n_audio_out,  # audio_output_token_count
        n_grounded,  # grounded_prompt_count
        n_queries,  # search_query_count
    )
    record.__class__ = PromptExecution
    return record  # type: ignore[no-any-return]
