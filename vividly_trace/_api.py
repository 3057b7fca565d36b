"""The plain-function forms of the original design: ``log_prompt_execution`` and
``calculate_gemini_cost`` (both read the configured set-up)."""

from __future__ import annotations

import datetime as _dt
import math
import time
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from ._call import ReadyRecord
from ._config import current_pricing, get_pipeline
from ._context import current_call, current_scope
from ._errors import clean_error_message
from ._ids import new_execution_id
from ._jsonsafe import safe_repr, sanitize_metadata, show, valid_text
from ._record import new_record
from ._safety import internal_error, warn_limited
from .usage import MAX_TOKENS, Usage, usage_from_mapping

__all__ = ["calculate_gemini_cost", "log_prompt_execution"]


def _show(value: Any) -> str:
    """A repr for a warning that cannot raise (hostile ``__repr__``) and stays short."""
    return show(value)


def _text(value: Any) -> str | None:
    """A plain, valid ``str`` copy of a string argument (a subclass could misbehave later)."""
    return valid_text(str.__str__(value)) if isinstance(value, str) else None


def _truthy(value: Any) -> bool:
    if value is NotImplemented:  # its truth value is deprecated: "something was given"
        return True
    try:
        return bool(value)
    except Exception:  # a hostile __bool__: treat as "something was given"
        return True


def _plain(value: Any) -> Any:
    """An ``int`` or ``float`` subclass as the plain number it holds (its own methods are not
    trusted: they may raise); ``bool`` and anything else as it is."""
    if type(value) in (int, float, bool):
        return value
    if isinstance(value, bool):
        return bool.__bool__(value)
    if isinstance(value, int):
        return int.__index__(value)
    if isinstance(value, float):
        return float.__float__(value)
    return value


#: A call that took longer than a year is a unit error (or a hostile value).
_MAX_DURATION_MS = 365 * 86400 * 1000


def _duration_ms(value: Any) -> float | None:
    """``response_time_ms`` as a float, or ``None`` when it is not a usable duration."""
    value = _plain(value)
    if type(value) is int:
        return float(value) if 0 <= value <= _MAX_DURATION_MS else None
    if type(value) is float and math.isfinite(value) and 0.0 <= value <= _MAX_DURATION_MS:
        return value
    return None


def _count(name: str, value: Any) -> int | None:
    if value is None:
        return None
    value = _plain(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        warn_limited(
            f"arg:{name}", "log_prompt_execution: %s=%s is not a count; ignored", name, _show(value)
        )
        return None
    if isinstance(value, float) and (not math.isfinite(value) or value != int(value)):
        warn_limited(
            f"arg:{name}", "log_prompt_execution: %s=%s is not a count; ignored", name, _show(value)
        )
        return None
    if value < 0 or value > MAX_TOKENS:
        warn_limited(
            f"arg:{name}",
            "log_prompt_execution: %s=%s is out of range; ignored",
            name,
            _show(value),
        )
        return None
    return int(value)


#: A single call billed over this is a typo (or a unit error): it would not even fit a
#: float in the JSON sinks beyond ~1e308. Costs are rounded to 18 decimals at most.
_MAX_COST = Decimal(10**9)
_ATTO_USD = Decimal("1e-18")


def _cost(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        cost = (
            value
            if isinstance(value, Decimal)
            else Decimal(repr(value) if isinstance(value, float) else str(value))
        )
    except Exception:  # InvalidOperation, or a hostile __str__
        cost = None
    if (
        isinstance(value, bool)
        or cost is None
        or not cost.is_finite()
        or cost < 0
        or cost > _MAX_COST
    ):
        warn_limited(
            "arg:cost", "log_prompt_execution: cost_usd=%s is not a cost; ignored", _show(value)
        )
        return None
    if cost.as_tuple().exponent < -18:  # type: ignore[operator]
        # Beyond any currency's precision, and beyond what SQL NUMERIC columns take.
        cost = cost.quantize(_ATTO_USD)
    return cost


def log_prompt_execution(
    template_key: str,
    success: bool,
    response_time_ms: float,
    input_token_count: int | None = None,
    output_token_count: int | None = None,
    cost_usd: float | Decimal | None = None,
    error_message: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    *,
    template_version: str | None = None,
    ab_test_group: str | None = None,
    model: str | None = None,
    error_type: str | None = None,
    http_status: int | None = None,
) -> str | None:
    """Log one prompt execution; return its execution id, or ``None`` on any failure.

    Never raises and never blocks on I/O: the record is queued for the configured sinks.
    ``total_token_count`` is ``input + output`` when both are given; ``error_message`` is cut
    to 1000 characters. Without ``cost_usd``, the cost is computed from the token counts
    when ``model`` is given. Bad optional values are dropped with a warning on the
    ``vividly_trace`` logger; a bad ``template_key`` or ``response_time_ms`` gives ``None``.

    .. versionadded:: 0.1.0
    """
    try:
        return _log(
            template_key,
            success,
            response_time_ms,
            input_token_count,
            output_token_count,
            cost_usd,
            error_message,
            metadata,
            template_version,
            ab_test_group,
            model,
            error_type,
            http_status,
        )
    except Exception as exc:
        internal_error("log_prompt_execution", exc, "log_prompt_execution failed: %r", exc)
        return None


def _log(
    template_key: Any,
    success: Any,
    response_time_ms: Any,
    input_tokens: Any,
    output_tokens: Any,
    cost_usd: Any,
    error_message: Any,
    metadata: Any,
    version: Any,
    group: Any,
    model: Any,
    error_type: Any,
    http_status: Any,
) -> str | None:
    if not isinstance(template_key, str) or not str.strip(template_key):
        warn_limited(
            "arg:template_key",
            "log_prompt_execution: template_key=%s is not a non-empty string; nothing logged",
            _show(template_key),
        )
        return None
    template_key = valid_text(str.__str__(template_key))
    duration = _duration_ms(response_time_ms)
    if duration is None:
        warn_limited(
            "arg:response_time_ms",
            "log_prompt_execution: response_time_ms=%s is "
            "not a non-negative number of milliseconds; nothing logged",
            _show(response_time_ms),
        )
        return None
    try:
        succeeded = bool(success)
    except Exception:  # a hostile __bool__
        warn_limited(
            "arg:success",
            "log_prompt_execution: success=%s is not a bool; nothing logged",
            _show(success),
        )
        return None
    pipeline = get_pipeline()
    if pipeline is None:
        return None
    inp = _count("input_token_count", input_tokens)
    out = _count("output_token_count", output_tokens)
    total = inp + out if inp is not None and out is not None else None
    cost = _cost(cost_usd)
    pricing_version = None
    model = _text(model)
    if cost is None and cost_usd is None and model and (inp is not None or out is not None):
        usage = Usage(input_tokens=inp, output_tokens=out, total_tokens=total)
        cost = pipeline.pricing.cost(model, usage)
        pricing_version = pipeline.pricing.version if cost is not None else None
    message = None
    if error_message is not None:
        text = _text(error_message)
        if text is None:
            text = safe_repr(error_message)
        message = clean_error_message(text)
    http_status = _plain(http_status)
    status = http_status if type(http_status) is int and 100 <= http_status <= 599 else None
    parent = current_call.get()
    mask = pipeline.mask_secrets
    clean = sanitize_metadata(metadata, mask=mask) if _truthy(metadata) else {}
    scope = current_scope.get()
    if scope is not None and scope.metadata:  # the call's own metadata wins
        clean = {**sanitize_metadata(scope.metadata, mask=mask), **clean}
    now = time.time()
    record = new_record(
        execution_id=new_execution_id(),
        template_key=template_key,
        success=succeeded,
        response_time_ms=duration,
        started_at=_dt.datetime.fromtimestamp(now - duration / 1000, _dt.timezone.utc),
        template_version=_text(version),
        ab_test_group=_text(group),
        model=model,
        input_token_count=inp,
        output_token_count=out,
        total_token_count=total,
        cost_usd=cost,
        pricing_version=pricing_version,
        error_type=_text(error_type),
        error_message=message,
        http_status=status,
        parent_execution_id=parent.execution_id if parent is not None else None,
        metadata=clean,
        user_id=scope.user_id if scope is not None else None,
        session_id=scope.session_id if scope is not None else None,
        request_id=scope.request_id if scope is not None else None,
    )
    pipeline.submit(ReadyRecord(record))
    return record.execution_id


#: How many near names an unknown model's error offers, and how much of the name is compared
#: (difflib is quadratic in the length: a hostile megabyte name must not stall the caller).
_CLOSEST = 3
_COMPARED_CHARS = 200


def _closest_models(model: str, known: Iterable[str]) -> list[str]:
    """The priced model names nearest to ``model`` (after the table's name normalisation),
    best first; some are always named when the table has any."""
    import difflib  # only for this error message: not worth its import at start-up

    from .pricing import normalize_model_name

    names = sorted(known)
    query = normalize_model_name(model[:_COMPARED_CHARS])[-1]
    return difflib.get_close_matches(query, names, n=_CLOSEST, cutoff=0.0)


def calculate_gemini_cost(usage: dict[str, Any], model: str = "gemini-2.5-flash") -> float:
    """Cost in USD of one Gemini call from a usage dict (the original design's helper).

    ``usage`` keys: ``input_tokens`` (including any cached part), ``output_tokens`` (visible
    output, without thinking), and optional ``cached_tokens``, ``thinking_tokens`` (billed at
    the output rate), ``tool_use_tokens`` and ``audio_input_tokens``. Prices come from the
    configured table (the packaged one by default).

    Raises:
        ValueError: the model has no price in the table (the message names the closest
            priced models), or ``usage`` holds no token count.

    .. versionadded:: 0.1.0
    """
    try:
        parsed = usage_from_mapping(usage) if isinstance(usage, Mapping) else None
    except Exception:  # a mapping whose access raises
        parsed = None
    if parsed is None:
        raise ValueError("usage must be a dict with 'input_tokens' and/or 'output_tokens'")
    if not isinstance(model, str):
        raise ValueError(f"model must be a model name (a string), got {show(model)}")
    table = current_pricing()
    price = table.resolve(model)
    if price is None:
        closest = ", ".join(map(repr, _closest_models(str.__str__(model), table.models)))
        raise ValueError(
            f"no price for model {show(model)} in pricing table {table.version!r}"
            + (f"; the closest known models: {closest}" if closest else "")
        )
    cost = price.cost(parsed)
    if cost is None:
        raise ValueError(
            f"prompt size {parsed.input_tokens} is beyond the priced range of {show(model)}"
        )
    return float(cost)
