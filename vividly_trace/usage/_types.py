"""Normalised token usage and response facts, independent of any provider package."""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = [
    "EMPTY_USAGE",
    "MAX_TOKENS",
    "ResponseInfo",
    "Usage",
    "add_usage",
    "build_usage",
    "new_tuple",
    "service_tier_name",
]

# A request's or response's tier name (google-genai ServiceTier, the x-gemini-service-tier
# header, Vertex AI's TrafficType) -> the record's service tier.
_TIERS = {
    "standard": "standard",
    "flex": "flex",
    "priority": "priority",
    "batch": "batch",
    "provisioned": "provisioned",
    "on_demand": "standard",
    "on_demand_flex": "flex",
    "on_demand_priority": "priority",
    "provisioned_throughput": "provisioned",
}


def service_tier_name(value: object) -> str | None:
    """The record's service tier (``standard``, ``flex``, ``priority``, ``batch``,
    ``provisioned``) for a tier as a client or the API names it (an enum member such as
    ``ServiceTier.FLEX`` or ``TrafficType.PROVISIONED_THROUGHPUT``, or a string); None for
    an unspecified or unknown one."""
    name = getattr(value, "_name_", None) if not isinstance(value, str) else value
    if not isinstance(name, str):
        name = getattr(value, "value", None)
        if not isinstance(name, str):
            return None
    name = name.strip().lower()
    for prefix in ("service_tier_", "traffic_type_"):
        name = name.removeprefix(prefix)
    return _TIERS.get(name)


class Usage(NamedTuple):
    """Token counts of one call, with the record's semantics.

    ``input_tokens`` is all billed input: the prompt (its cached part included) plus tool-use
    prompt tokens. ``output_tokens`` is all billed output: candidates plus thinking.
    ``total_tokens`` is ``input_tokens + output_tokens``. The other counts say how much of
    those were cached, thinking, tool-use or audio input. ``None`` means "not reported".
    An immutable named tuple (cheap to build off the hot path).

    .. versionadded:: 0.1.0
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cached_tokens: int | None = None
    thinking_tokens: int | None = None
    tool_use_tokens: int | None = None
    audio_input_tokens: int | None = None
    cached_audio_tokens: int | None = None
    #: Input tokens per modality (part of ``input_tokens``, cached ones included).
    image_input_tokens: int | None = None
    video_input_tokens: int | None = None
    #: Output tokens per modality (part of ``output_tokens``).
    image_output_tokens: int | None = None
    audio_output_tokens: int | None = None
    #: Grounding with Google Search: 1 for a request whose answer ran searches (summed over
    #: requests), and how many search queries it ran (``webSearchQueries``).
    grounded_prompts: int | None = None
    search_queries: int | None = None

    @property
    def is_empty(self) -> bool:
        """True when no count at all was reported."""
        return self.input_tokens is None and self.output_tokens is None


if Usage._fields != (  # pragma: no cover
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cached_tokens",
    "thinking_tokens",
    "tool_use_tokens",
    "audio_input_tokens",
    "cached_audio_tokens",
    "image_input_tokens",
    "video_input_tokens",
    "image_output_tokens",
    "audio_output_tokens",
    "grounded_prompts",
    "search_queries",
):
    # The record builder and the price table unpack a Usage by position.
    raise RuntimeError("Usage's fields changed: update _build and pricing (they unpack it)")
EMPTY_USAGE = Usage()
new_tuple: Any = tuple.__new__
"""``new_tuple(Usage, (...))``: a named tuple from a tuple of all its fields, without the
Python-level ``__new__`` (and its frame) that calling the class costs."""


def add_usage(a: Usage, b: Usage) -> Usage:
    """The counts of two requests together; a count neither reported stays ``None``, and an
    input count one of them did not report makes the sum's input (and total) unknown."""
    if a.is_empty:
        return b
    if b.is_empty:
        return a
    summed = Usage(
        *(x if y is None else y if x is None else x + y for x, y in zip(a, b, strict=True))
    )
    if a.input_tokens is None or b.input_tokens is None:
        return summed._replace(input_tokens=None, total_tokens=None)
    return summed


MAX_TOKENS = 2**53
"""Counts above this (or negative) are not token counts: they are ignored."""


class ResponseInfo(NamedTuple):
    """What an extractor learned from one response (or stream chunk).

    .. versionadded:: 0.1.0
    """

    usage: Usage = EMPTY_USAGE
    provider: str | None = None
    response_model: str | None = None
    finish_reason: str | None = None
    block_reason: str | None = None
    #: The tier that served the request, when the response says (see service_tier_name).
    service_tier: str | None = None


if len(Usage._fields) != 14 or len(ResponseInfo._fields) != 6:  # pragma: no cover
    raise RuntimeError("Usage or ResponseInfo changed: update their new_tuple calls")


def build_usage(
    *,
    prompt: int | None,
    candidates: int | None,
    thinking: int | None = None,
    cached: int | None = None,
    tool_use: int | None = None,
    audio_input: int | None = None,
    cached_audio: int | None = None,
    reported_total: int | None = None,
    image_input: int | None = None,
    video_input: int | None = None,
    image_output: int | None = None,
    audio_output: int | None = None,
) -> Usage:
    """Normalise raw provider counts (Gemini semantics) into a :class:`Usage`.

    ``prompt`` includes ``cached`` (as Gemini's ``prompt_token_count`` does) and excludes
    ``tool_use``; ``candidates`` excludes ``thinking``. A missing ``prompt`` leaves the
    input (and the total) ``None``: unknown, not 0. When thinking and tool-use are not
    reported but ``reported_total`` exceeds prompt + candidates, the hidden part is counted
    as thinking (billed as output), which is what the older Gemini client hides.
    """
    if prompt is None and candidates is None and reported_total is None:
        return EMPTY_USAGE
    c = candidates or 0  # the API omits a zero count: no candidates means none
    if prompt is None and tool_use is None:
        # A prompt has tokens: an answer that does not say how many (file-URI inputs) leaves
        # the input unknown, never 0, and with it the total (and the cost).
        input_tokens = total = None
        output_tokens = c + (thinking or 0)
    else:
        p = prompt or 0
        if thinking is None and tool_use is None and reported_total is not None:
            hidden = reported_total - p - c
            if hidden > 0:
                thinking = hidden
        input_tokens = p + (tool_use or 0)
        output_tokens = c + (thinking or 0)
        total = input_tokens + output_tokens
    # Every field, in order (input, output, total, cached, thinking, tool use, audio input,
    # cached audio, modalities, grounding), once per record.
    return new_tuple(  # type: ignore[no-any-return]
        Usage,
        (
            input_tokens,
            output_tokens,
            total,
            cached,
            thinking,
            tool_use,
            audio_input,
            cached_audio,
            image_input,
            video_input,
            image_output,
            audio_output,
            None,
            None,
        ),
    )
