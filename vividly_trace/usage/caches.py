"""Usage of a context-cache creation (google-genai's ``CachedContent``).

The Gemini API answers ``caches.create`` with the cache resource, whose
``usageMetadata.totalTokenCount`` is the number of tokens the cache holds: the only count
it reports (the audio / image / text / video fields of ``CachedContentUsageMetadata`` are
Vertex AI only). They are recorded as the request's input tokens (0 output); what they cost
at creation is a billing rule of :mod:`vividly_trace.pricing` (see
:meth:`~vividly_trace.pricing.PricingTable.request_cost`). Duck-typed: imports nothing.
"""

from __future__ import annotations

from typing import Any

from ._types import EMPTY_USAGE, ResponseInfo, Usage
from .gemini import _count as count

__all__ = ["extract_cached_content"]


def extract_cached_content(response: Any) -> ResponseInfo | None:
    """Usage and model of a cache resource; ``None`` when ``response`` is not one."""
    if isinstance(response, dict) or not hasattr(response, "expire_time"):
        return None
    if not hasattr(response, "usage_metadata"):
        return None
    meta = getattr(response, "usage_metadata", None)
    total = count(meta, "total_token_count") if meta is not None else None
    model = getattr(response, "model", None)
    model = model.removeprefix("models/") if isinstance(model, str) and model else None
    usage = EMPTY_USAGE if total is None else Usage(total, 0, total)
    return ResponseInfo(usage, "gemini", model)
