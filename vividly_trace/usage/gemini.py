"""Usage extraction for Gemini responses of ``google-genai`` and ``google-generativeai``.

Duck-typed: nothing here imports a Google package. Both clients expose
``response.usage_metadata`` with the same field names (``prompt_token_count``,
``candidates_token_count``, ...); the new client's fields are ``None`` when absent, the old
client's proto fields read ``0`` and it has no thinking / tool-use counts at all.
"""

from __future__ import annotations

from typing import Any

from .._jsonsafe import valid_text
from ._types import (
    MAX_TOKENS,
    ResponseInfo,
    Usage,
    build_usage,
    new_tuple,
    service_tier_name,
)

__all__ = ["extract_gemini", "has_usage"]

_BLOCKING_FINISH_REASONS = frozenset(
    {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}
)


def _count(obj: Any, name: str) -> int | None:
    value = getattr(obj, name, None)
    if value is None:
        return None
    if type(value) is int:  # what both clients give: no conversion needed
        return value if 0 <= value <= MAX_TOKENS else None
    try:
        count = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return count if 0 <= count <= MAX_TOKENS else None


def _enum_name(value: Any) -> str | None:
    """An enum's name as valid, plain text (a member's ``_name_``, else its ``name``, else
    the text itself)."""
    if value is None:
        return None
    # ``_name_`` is a plain attribute of every Enum member (the enums of both clients);
    # ``.name`` is a much slower property.
    name = getattr(value, "_name_", None)
    if type(name) is str and name.isascii():
        return name
    if not isinstance(name, str):
        name = value if isinstance(value, str) else getattr(value, "name", None)
        if not isinstance(name, str):
            name = str(value)
    return valid_text(str.__str__(name)) or None


def _modality_count(details: Any, modality: str) -> int | None:
    if details is None:  # not truthiness: a hostile __bool__ (or NotImplemented) must not run
        return None
    return _modalities(details).get(modality)


_NO_MODALITIES: dict[str, int] = {}
_TEXT = "TEXT"


def _modalities(details: Any) -> dict[str, int]:
    """Tokens per modality name (``AUDIO``, ``IMAGE``...) of a ``*_tokens_details`` list,
    in one pass, text left out; empty when there is none."""
    if details is None:  # not truthiness: a hostile __bool__ (or NotImplemented) must not run
        return _NO_MODALITIES
    if type(details) is list and len(details) == 1:
        try:
            if details[0].modality._name_ == _TEXT:
                return _NO_MODALITIES  # most responses: one text entry, no rate of its own
        except AttributeError:
            pass  # not an enum member: the general case below
    out: dict[str, int] | None = None
    try:
        for item in details:
            modality = getattr(item, "modality", None)
            # An Enum member's plain ``_name_`` (both clients), else _enum_name's slow cases.
            name = getattr(modality, "_name_", None)
            if type(name) is not str:
                name = _enum_name(modality)
                if name is None:
                    continue
            if name == _TEXT:  # no rate of its own: the plain input and output rates
                continue
            count = getattr(item, "token_count", None)
            if type(count) is not int or not 0 <= count <= MAX_TOKENS:
                count = _count(item, "token_count") or 0
            if out is None:
                out = {}
            out[name] = out.get(name, 0) + count
    except TypeError:
        return _NO_MODALITIES
    return _NO_MODALITIES if out is None else out


_COUNTS = (
    "prompt_token_count",
    "candidates_token_count",
    "total_token_count",
    "thoughts_token_count",
    "cached_content_token_count",
    "tool_use_prompt_token_count",
)
_INT_OR_NONE = frozenset({int, type(None)})


def usage_from_metadata(meta: Any) -> Usage:
    """Read a ``usage_metadata`` object of either client into a :class:`Usage`."""
    try:  # both clients' usage objects have every field (None when not reported)
        prompt = meta.prompt_token_count
        candidates = meta.candidates_token_count
        total = meta.total_token_count
        thinking = meta.thoughts_token_count
        cached = meta.cached_content_token_count
        tool_use = meta.tool_use_prompt_token_count
    except AttributeError:  # another shape: a missing count is not reported
        prompt, candidates, total, thinking, cached, tool_use = (
            getattr(meta, name, None) for name in _COUNTS
        )
    plain = _INT_OR_NONE
    if not (
        type(prompt) in plain
        and type(candidates) in plain
        and type(total) in plain
        and type(thinking) in plain
        and type(cached) in plain
        and type(tool_use) in plain
        # Ints all in [0, MAX_TOKENS) exactly when their bitwise or is (a negative one
        # makes it negative); the edge and everything else take the one-by-one path.
        and 0
        <= (
            (prompt or 0)
            | (candidates or 0)
            | (total or 0)
            | (thinking or 0)
            | (cached or 0)
            | (tool_use or 0)
        )
        < MAX_TOKENS
    ):
        prompt, candidates, total, thinking, cached, tool_use = (
            _count(meta, name) for name in _COUNTS
        )
    if not (prompt or candidates or total):
        return build_usage(prompt=None, candidates=None)
    details = getattr(meta, "prompt_tokens_details", None)
    given = _modalities(details) if details is not None else _NO_MODALITIES
    details = getattr(meta, "candidates_tokens_details", None)
    answered = _modalities(details) if details is not None else _NO_MODALITIES
    # Cached audio is a part of the cached tokens: without those, there is none to read.
    details = getattr(meta, "cache_tokens_details", None) if cached else None
    return build_usage(
        prompt=prompt,
        candidates=candidates,
        thinking=thinking,
        cached=cached,
        tool_use=tool_use,
        audio_input=given.get("AUDIO") if given else None,
        cached_audio=_modalities(details).get("AUDIO") if details is not None else None,
        reported_total=total,
        image_input=given.get("IMAGE") if given else None,
        video_input=given.get("VIDEO") if given else None,
        image_output=answered.get("IMAGE") if answered else None,
        audio_output=answered.get("AUDIO") if answered else None,
    )


def _search_queries(candidate: Any) -> int | None:
    """How many Google Search queries a candidate's grounding ran (``web_search_queries``
    of its ``grounding_metadata``), None without grounding."""
    grounding = getattr(candidate, "grounding_metadata", None)
    if grounding is None:
        return None
    queries = getattr(grounding, "web_search_queries", None)
    if queries is None:
        return None
    try:
        return len(queries)  # a list, or a proto's repeated field (google-generativeai)
    except TypeError:
        return None


def has_usage(chunk: Any) -> bool:
    """True when a response or stream chunk carries non-zero usage counts."""
    meta = getattr(chunk, "usage_metadata", None)
    if meta is None:
        return False
    return bool(
        getattr(meta, "total_token_count", None)
        or getattr(meta, "prompt_token_count", None)
        or getattr(meta, "candidates_token_count", None)
    )


def _model_version(response: Any) -> str | None:
    value = getattr(response, "model_version", None)
    if value is None:
        # google-generativeai keeps the proto in ``_result``.
        value = getattr(getattr(response, "_result", None), "model_version", None)
    if type(value) is str and value.isascii():
        return value or None
    return (valid_text(str.__str__(value)) or None) if isinstance(value, str) else None


_TIER_HEADER = "x-gemini-service-tier"
_TIER_LEN = len(_TIER_HEADER)


def _served_tier(response: Any, meta: Any) -> str | None:
    """The tier that served the request: Vertex AI's ``usage_metadata.traffic_type``, else
    the Gemini API's ``x-gemini-service-tier`` response header (google-genai keeps the
    headers in ``sdk_http_response``)."""
    if meta is not None:
        traffic = getattr(meta, "traffic_type", None)
        if traffic is not None:
            tier = service_tier_name(traffic)
            if tier is not None:
                return tier
    headers = getattr(getattr(response, "sdk_http_response", None), "headers", None)
    if isinstance(headers, dict):
        value = headers.get(_TIER_HEADER)
        if value is None:  # aiohttp keeps the server's spelling of header names
            value = next(
                (
                    v
                    for k, v in headers.items()
                    if isinstance(k, str) and len(k) == _TIER_LEN and k.lower() == _TIER_HEADER
                ),
                None,
            )
        if value is not None:
            return service_tier_name(value)
    return None


def extract_gemini(response: Any) -> ResponseInfo | None:
    """Extract usage, model and outcome from a Gemini response or stream chunk.

    Returns ``None`` when ``response`` does not look like a Gemini response.
    """
    if isinstance(response, dict):
        return None
    try:
        meta = response.usage_metadata
    except AttributeError:
        return None
    if not (hasattr(response, "candidates") or hasattr(response, "prompt_feedback")):
        return None
    usage = (
        usage_from_metadata(meta) if meta is not None else build_usage(prompt=None, candidates=None)
    )
    finish: str | None = None
    try:
        candidates = getattr(response, "candidates", None)
        if candidates:
            first = candidates[0]
            finish = _enum_name(getattr(first, "finish_reason", None))
            if finish in ("FINISH_REASON_UNSPECIFIED", "0"):
                finish = None
            queries = _search_queries(first)
            if queries and not usage.is_empty:
                usage = usage._replace(grounded_prompts=1, search_queries=queries)
    except (TypeError, IndexError, KeyError):
        finish = None
    block: str | None = None
    feedback = getattr(response, "prompt_feedback", None)
    if feedback is not None:
        block = _enum_name(getattr(feedback, "block_reason", None))
        if block in ("BLOCK_REASON_UNSPECIFIED", "BLOCKED_REASON_UNSPECIFIED", "0"):
            block = None
    if block is None and finish in _BLOCKING_FINISH_REASONS:
        block = finish
    # (usage, provider, response_model, finish_reason, block_reason, tier), through
    # tuple.__new__: the named tuple's own __new__ is a Python function, once per record.
    return new_tuple(  # type: ignore[no-any-return]
        ResponseInfo,
        (usage, "gemini", _model_version(response), finish, block, _served_tier(response, meta)),
    )
