"""Usage of an embedding response (google-genai's ``EmbedContentResponse``).

What the Gemini API reports for ``batchEmbedContents`` / ``embedContent`` is an
``EmbeddingUsageMetadata``: ``promptTokenCount`` (the input tokens of the whole batch) and
``promptTokenDetails`` (per modality); no output, total or cached count. google-genai 3.6.1
reads it into ``response.usage_metadata.prompt_token_count`` and drops the details (its own
field is named ``prompt_tokens_details``; read when present, for audio). An embedding has no
output tokens, so the usage is the prompt count as input, 0 as output, and a total equal to
the input; it is priced at the embedding model's input rate. A response without usage (older
answers, Vertex AI's ``predict``) leaves the counts unknown. Duck-typed: imports nothing.
"""

from __future__ import annotations

from typing import Any

from ._types import EMPTY_USAGE, ResponseInfo, Usage
from .gemini import _count as count
from .gemini import _modality_count as modality_count

__all__ = ["extract_embedding"]


def extract_embedding(response: Any) -> ResponseInfo | None:
    """Usage of an embedding response; ``None`` when ``response`` is not one."""
    if isinstance(response, dict) or not hasattr(response, "embeddings"):
        return None
    if not hasattr(response, "usage_metadata"):
        return None
    meta = getattr(response, "usage_metadata", None)
    prompt = count(meta, "prompt_token_count") if meta is not None else None
    if prompt is None:
        return ResponseInfo(EMPTY_USAGE, "gemini")
    audio = modality_count(getattr(meta, "prompt_tokens_details", None), "AUDIO")
    # Positional: input, output, total, cached, thinking, tool use, audio input.
    return ResponseInfo(Usage(prompt, 0, prompt, None, None, None, audio), "gemini")
