"""Usage extraction for google-genai's Interactions API (``client.interactions``).

Duck-typed, like :mod:`.gemini`: an ``Interaction`` (or its ``model_dump()`` dict) and the
stream events (``interaction.created`` / ``interaction.completed`` with a partial
``interaction``, ``interaction.status_update``, ``step.*``, ``error``).

``Interaction.usage`` maps onto the record's semantics as ``usage_metadata`` does:
``total_input_tokens`` is the prompt (its cached part, ``total_cached_tokens``, included),
``total_tool_use_tokens`` is added to the input, ``total_thought_tokens`` to the output
(``total_output_tokens`` does not hold them); ``input_tokens_by_modality`` /
``cached_tokens_by_modality`` give the audio input and its cached part.

The interaction's ``status`` is the finish reason (``completed``, ``incomplete``,
``requires_action``...); ``failed``, ``cancelled`` and ``budget_exceeded`` (and a stream's
``error`` event) make the request a failure (see :func:`interaction_failure`). The model is
the interaction's ``model``; an agent interaction that names none has no model, so its
cost is unknown (never $0).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._types import EMPTY_USAGE, MAX_TOKENS, ResponseInfo, Usage, build_usage

__all__ = ["FAILED_STATUSES", "extract_interaction", "interaction_failure"]

#: Interaction statuses that make the request a failure, with the record's error type.
FAILED_STATUSES: Mapping[str, str] = {
    "failed": "InteractionFailed",
    "cancelled": "InteractionCancelled",
    "budget_exceeded": "InteractionBudgetExceeded",
    "error": "InteractionStreamError",  # an ``error`` event in a stream
}
_STATUSES = frozenset(
    {
        "in_progress",
        "requires_action",
        "completed",
        "failed",
        "cancelled",
        "incomplete",
        "budget_exceeded",
        "queued",
        "idle",
        "requires_continuation",
    }
)
_LIFECYCLE = frozenset({"interaction.created", "interaction.completed"})
_NOTHING = ResponseInfo(EMPTY_USAGE, "gemini")


def interaction_failure(block_reason: str | None) -> tuple[str, str] | None:
    """(error type, message) when ``block_reason`` is an interaction's failed status."""
    if block_reason is None:
        return None
    kind = FAILED_STATUSES.get(block_reason)
    if kind is None:
        return None
    if block_reason == "error":
        return kind, "the interaction stream sent an error event"
    return kind, f"interaction {block_reason.replace('_', ' ')}"


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _count(obj: Any, name: str) -> int | None:
    value = _get(obj, name)
    if type(value) is int and 0 <= value <= MAX_TOKENS:
        return value
    return None


def _modality(details: Any, modality: str) -> int | None:
    """The tokens of ``modality`` in a ``*_by_modality`` list; None when it names none."""
    if not isinstance(details, (list, tuple)):
        return None
    total = 0
    found = False
    for item in details:
        name = _get(item, "modality")
        if isinstance(name, str) and name.lower() == modality:
            total += _count(item, "tokens") or 0
            found = True
    return total if found else None


def usage_from_interaction(usage: Any) -> Usage:
    """An ``Interaction.usage`` (object or dict) as a :class:`Usage`."""
    if usage is None:
        return EMPTY_USAGE
    return build_usage(
        prompt=_count(usage, "total_input_tokens"),
        candidates=_count(usage, "total_output_tokens"),
        thinking=_count(usage, "total_thought_tokens"),
        cached=_count(usage, "total_cached_tokens"),
        tool_use=_count(usage, "total_tool_use_tokens"),
        audio_input=_modality(_get(usage, "input_tokens_by_modality"), "audio"),
        cached_audio=_modality(_get(usage, "cached_tokens_by_modality"), "audio"),
        reported_total=_count(usage, "total_tokens"),
    )


def _is_usage(usage: Any) -> bool:
    return usage is None or any(
        _get(usage, name) is not None
        for name in ("total_input_tokens", "total_output_tokens", "total_tokens")
    )


def _info(interaction: Any, status: Any) -> ResponseInfo:
    usage = usage_from_interaction(_get(interaction, "usage"))
    model = _get(interaction, "model")
    reason = status if isinstance(status, str) and status else None
    block = reason if reason in FAILED_STATUSES else None
    return ResponseInfo(
        usage, "gemini", model if isinstance(model, str) and model else None, reason, block
    )


def extract_interaction(response: Any) -> ResponseInfo | None:
    """Usage, model and outcome of an ``Interaction`` or an Interactions stream event;
    ``None`` for anything else."""
    event_type = _get(response, "event_type")
    if isinstance(event_type, str):
        if event_type in _LIFECYCLE:
            interaction = _get(response, "interaction")
            return _info(interaction, _get(interaction, "status"))
        if event_type == "interaction.status_update":
            return _info(response, _get(response, "status"))
        if event_type == "error":
            return ResponseInfo(EMPTY_USAGE, "gemini", None, "error", "error")
        if event_type == "step.stop" and _get(response, "usage") is not None:
            # The interaction's usage so far (``step_usage`` is this step's alone).
            return ResponseInfo(usage_from_interaction(_get(response, "usage")), "gemini")
        if event_type.startswith("step."):
            return _NOTHING  # text deltas and step boundaries carry no usage
        return None
    status = _get(response, "status")
    if not isinstance(status, str) or status not in _STATUSES:
        return None
    if not _is_usage(_get(response, "usage")):
        return None
    if _get(response, "steps") is None and _get(response, "id") is None:
        return None
    return _info(response, status)
