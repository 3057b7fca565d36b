"""``log_prompt_execution``: the plain-function form of the original design."""

from __future__ import annotations

import datetime as _dt
import math
import time
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from ._call import MAX_ERROR_CHARS, ReadyRecord, current_call
from ._config import get_pipeline
from ._ids import new_execution_id
from ._jsonsafe import mask_secrets_in_text, sanitize_metadata
from ._record import PromptExecution
from ._safety import warn_limited

__all__ = ["log_prompt_execution"]


def _count(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        warn_limited(
            f"arg:{name}", "log_prompt_execution: %s=%r is not a count; ignored", name, value
        )
        return None
    if isinstance(value, float) and (not math.isfinite(value) or value != int(value)):
        warn_limited(
            f"arg:{name}", "log_prompt_execution: %s=%r is not a count; ignored", name, value
        )
        return None
    if value < 0:
        warn_limited(f"arg:{name}", "log_prompt_execution: %s=%r is negative; ignored", name, value)
        return None
    return int(value)


def _cost(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        cost = (
            value
            if isinstance(value, Decimal)
            else Decimal(repr(value) if isinstance(value, float) else str(value))
        )
    except (InvalidOperation, ValueError, TypeError):
        cost = None
    if isinstance(value, bool) or cost is None or not cost.is_finite() or cost < 0:
        warn_limited("arg:cost", "log_prompt_execution: cost_usd=%r is not a cost; ignored", value)
        return None
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
        warn_limited("log_prompt_execution", "log_prompt_execution failed: %r", exc)
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
    if not isinstance(template_key, str) or not template_key.strip():
        warn_limited(
            "arg:template_key",
            "log_prompt_execution: template_key=%r is not a non-empty string; nothing logged",
            template_key,
        )
        return None
    if (
        isinstance(response_time_ms, bool)
        or not isinstance(response_time_ms, (int, float))
        or not math.isfinite(response_time_ms)
        or response_time_ms < 0
    ):
        warn_limited(
            "arg:response_time_ms",
            "log_prompt_execution: response_time_ms=%r is "
            "not a non-negative number; nothing logged",
            response_time_ms,
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
    if (
        cost is None
        and cost_usd is None
        and isinstance(model, str)
        and model
        and (inp is not None or out is not None)
    ):
        from .usage import Usage

        usage = Usage(input_tokens=inp, output_tokens=out, total_tokens=total)
        cost = pipeline.pricing.cost(model, usage)
        pricing_version = pipeline.pricing.version if cost is not None else None
    message = None
    if error_message is not None:
        text = error_message if isinstance(error_message, str) else repr(error_message)
        message = mask_secrets_in_text(text[: MAX_ERROR_CHARS * 4])[:MAX_ERROR_CHARS]
    status = http_status if isinstance(http_status, int) and 100 <= http_status <= 599 else None
    parent = current_call.get()
    now = time.time()
    record = PromptExecution(
        execution_id=new_execution_id(),
        template_key=template_key,
        success=bool(success),
        response_time_ms=float(response_time_ms),
        started_at=_dt.datetime.fromtimestamp(now - response_time_ms / 1000, _dt.timezone.utc),
        template_version=version if isinstance(version, str) else None,
        ab_test_group=group if isinstance(group, str) else None,
        model=model if isinstance(model, str) else None,
        input_token_count=inp,
        output_token_count=out,
        total_token_count=total,
        cost_usd=cost,
        pricing_version=pricing_version,
        error_type=error_type if isinstance(error_type, str) else None,
        error_message=message,
        http_status=status,
        parent_execution_id=parent.execution_id if parent is not None else None,
        metadata=sanitize_metadata(metadata, mask=pipeline.mask_secrets) if metadata else {},
    )
    pipeline.submit(ReadyRecord(record))
    return record.execution_id
