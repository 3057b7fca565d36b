"""Usage extraction for plain dicts.

Accepted shapes:

- ``{"input_tokens": 10, "output_tokens": 20, "cached_tokens": 4, "thinking_tokens": 3}``:
  Gemini semantics, so ``input_tokens`` includes ``cached_tokens`` and ``output_tokens``
  excludes ``thinking_tokens`` (thinking is added to output); also ``tool_use_tokens``
  (added to input) and ``audio_input_tokens`` (part of input).
- ``{"prompt_tokens": .., "completion_tokens": ..}`` (OpenAI style);
- a Gemini REST body: ``{"usageMetadata": {"promptTokenCount": ..}, "modelVersion": ..}``;
- any of those under a ``"usage"`` or ``"usage_metadata"`` key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._types import MAX_TOKENS, ResponseInfo, Usage, build_usage

__all__ = ["extract_dict", "usage_from_mapping"]


def _int(value: Any) -> int | None:
    """A token count from ``value``, or None (never raises, whatever the value)."""
    try:
        if value is None or isinstance(value, bool):
            return None
        if isinstance(value, int):
            count = int.__index__(value)
        elif isinstance(value, float):
            f = float.__float__(value)
            if f != f or f in (float("inf"), float("-inf")):
                return None
            count = int(f)
        elif isinstance(value, str):
            text = str.__str__(value).strip()
            if not text.isdigit() or len(text) > 19:
                return None
            count = int(text)
        else:
            return None
    except Exception:
        return None
    return count if 0 <= count <= MAX_TOKENS else None


def _first(data: Mapping[str, Any], *keys: str) -> int | None:
    """The first of ``keys`` whose value is a count."""
    for key in keys:
        value = _int(data.get(key))
        if value is not None:
            return value
    return None


def _audio_count(details: Any) -> int | None:
    """The AUDIO tokens of a REST ``*TokensDetails`` list; ``None`` when it names none."""
    if not isinstance(details, list):
        return None
    counts = [
        _int(d.get("tokenCount")) or 0
        for d in details
        if isinstance(d, Mapping) and d.get("modality") == "AUDIO"
    ]
    return sum(counts) if counts else None


def usage_from_mapping(data: Mapping[str, Any]) -> Usage | None:
    """Read token counts from a flat mapping; ``None`` when it holds none we know."""
    get = data.get
    if "promptTokenCount" in data or "candidatesTokenCount" in data or "totalTokenCount" in data:
        return build_usage(
            prompt=_int(get("promptTokenCount")),
            candidates=_int(get("candidatesTokenCount")),
            thinking=_int(get("thoughtsTokenCount")),
            cached=_int(get("cachedContentTokenCount")),
            tool_use=_int(get("toolUsePromptTokenCount")),
            audio_input=_audio_count(get("promptTokensDetails")),
            cached_audio=_audio_count(get("cacheTokensDetails")),
            reported_total=_int(get("totalTokenCount")),
        )
    prompt = _first(data, "input_tokens", "prompt_tokens", "prompt_token_count")
    candidates = _first(data, "output_tokens", "completion_tokens", "candidates_token_count")
    if prompt is None and candidates is None:
        return None
    thinking = _first(data, "thinking_tokens", "thoughts_token_count")
    cached = _first(data, "cached_tokens", "cached_content_token_count")
    tool_use = _first(data, "tool_use_tokens", "tool_use_prompt_token_count")
    return build_usage(
        prompt=prompt,
        candidates=candidates,
        thinking=thinking,
        cached=cached,
        tool_use=tool_use,
        audio_input=_int(get("audio_input_tokens")),
        cached_audio=_int(get("cached_audio_tokens")),
    )


def extract_dict(response: Any) -> ResponseInfo | None:
    """Extract usage from a plain dict response; ``None`` when it is not one we know."""
    if not isinstance(response, Mapping):
        return None
    usage = usage_from_mapping(response)
    nested_keys = ("usageMetadata", "usage_metadata", "usage")
    for key in nested_keys:
        if usage is not None:
            break
        nested = response.get(key)
        if isinstance(nested, Mapping):
            usage = usage_from_mapping(nested)
    if usage is None:
        return None
    model = next(
        (
            v
            for k in ("modelVersion", "model_version", "model")
            if isinstance(v := response.get(k), str) and v
        ),
        None,
    )
    finish = None
    block = None
    feedback = response.get("promptFeedback")
    if isinstance(feedback, Mapping) and isinstance(feedback.get("blockReason"), str):
        block = feedback["blockReason"]
    candidates = response.get("candidates")
    if isinstance(candidates, list) and candidates and isinstance(candidates[0], Mapping):
        reason = candidates[0].get("finishReason")
        finish = reason if isinstance(reason, str) else None
    return ResponseInfo(
        usage=usage,
        provider="gemini" if "usageMetadata" in response else None,
        response_model=model if isinstance(model, str) else None,
        finish_reason=finish,
        block_reason=block,
    )
