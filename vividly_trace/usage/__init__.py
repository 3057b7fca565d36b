"""Token usage extraction: a registry of duck-typed extractors.

An extractor is a callable ``(response) -> ResponseInfo | None``; it returns ``None`` for a
response it does not recognise. :func:`extract` tries the registered extractors (most
recently registered first, then the built-in Gemini, embedding, context-cache,
Interactions API and dict extractors) and never raises: a response nobody recognises gives
an empty :class:`ResponseInfo`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._jsonsafe import valid_text
from .._lazy import lazy_names
from ._types import (
    EMPTY_USAGE,
    MAX_TOKENS,
    ResponseInfo,
    Usage,
    add_usage,
    build_usage,
    service_tier_name,
)
from .dicts import extract_dict, usage_from_mapping
from .gemini import extract_gemini, has_usage

if TYPE_CHECKING:
    from .caches import extract_cached_content
    from .embeddings import extract_embedding
    from .interactions import extract_interaction, interaction_failure

__all__ = [
    "EMPTY_INFO",
    "EMPTY_USAGE",
    "MAX_TOKENS",
    "Extractor",
    "ResponseInfo",
    "Usage",
    "add_usage",
    "build_usage",
    "extract",
    "extract_cached_content",
    "extract_dict",
    "extract_embedding",
    "extract_gemini",
    "extract_interaction",
    "has_usage",
    "interaction_failure",
    "register_extractor",
    "service_tier_name",
    "unregister_extractor",
    "usage_from_mapping",
]

Extractor = Callable[[Any], "ResponseInfo | None"]

_logger = logging.getLogger("vividly_trace")
_user_extractors: list[Extractor] = []
_RELOAD: Any = object()


def _load_builtins(response: Any) -> Any:
    """Stands for the built-in extractors after Gemini's until one is needed: imports them
    (embeddings, context caches, the Interactions API; most responses are Gemini's, and
    ``import vividly_trace`` need not load them) and has :func:`extract` start again."""
    global _BUILTIN
    from .caches import extract_cached_content
    from .embeddings import extract_embedding
    from .interactions import extract_interaction

    _BUILTIN = (
        extract_gemini,
        extract_embedding,
        extract_cached_content,
        extract_interaction,
        extract_dict,
    )
    return _RELOAD


_BUILTIN: tuple[Extractor, ...] = (extract_gemini, _load_builtins)
EMPTY_INFO = ResponseInfo()
_LAZY = {
    "extract_cached_content": ".caches",
    "extract_embedding": ".embeddings",
    "extract_interaction": ".interactions",
    "interaction_failure": ".interactions",
}


__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())


def register_extractor(extractor: Extractor) -> None:
    """Register an extractor for another provider's responses; it is tried first.

    .. versionadded:: 0.1.0
    """
    if not callable(extractor):
        raise TypeError("register_extractor() needs a callable (response) -> ResponseInfo | None")
    _user_extractors.insert(0, extractor)


def unregister_extractor(extractor: Extractor) -> None:
    """Remove an extractor added with :func:`register_extractor` (no error if absent)."""
    while extractor in _user_extractors:
        _user_extractors.remove(extractor)


def extract(response: Any) -> ResponseInfo:
    """Return what the first matching extractor finds; an empty result otherwise."""
    if response is None:
        return EMPTY_INFO
    for extractor in (*_user_extractors, *_BUILTIN) if _user_extractors else _BUILTIN:
        try:
            info = extractor(response)
        except Exception as exc:  # an extractor must never break the caller
            _logger.debug("usage extractor %r failed: %r", extractor, exc)
            continue
        if info is not None:
            if isinstance(info, ResponseInfo):
                if extractor is extract_gemini:  # its texts are valid and plain already
                    return info
                if extractor in _BUILTIN:
                    return _valid_strings(info)
                return _valid_info(info)
            if info is _RELOAD:  # the other built-in extractors were just imported
                return extract(response)
            _logger.debug(
                "usage extractor %r returned a %s, not ResponseInfo", extractor, type(info).__name__
            )
    return EMPTY_INFO


def _plain(text: Any) -> str | None:
    """A response's text (model, finish or block reason) as valid, plain text, or None."""
    if not isinstance(text, str):
        return None
    return valid_text(str.__str__(text))


def _valid_strings(info: ResponseInfo) -> ResponseInfo:
    """``info`` with its texts made valid Unicode: a lone surrogate in a response's model
    or block reason would otherwise make every sink refuse the record's whole batch."""
    p, m, f, b = info.provider, info.response_model, info.finish_reason, info.block_reason
    if (
        (m is None or (type(m) is str and m.isascii()))
        and (f is None or (type(f) is str and f.isascii()))
        and (b is None or (type(b) is str and b.isascii()))
        and (p is None or (type(p) is str and p.isascii()))
    ):
        return info
    return info._replace(
        provider=_plain(p),
        response_model=_plain(m),
        finish_reason=_plain(f),
        block_reason=_plain(b),
    )


def _count(value: Any) -> int | None:
    if type(value) is int and 0 <= value <= MAX_TOKENS:
        return value
    return None


def _valid_info(info: ResponseInfo) -> ResponseInfo:
    """A user extractor's result with wrong types dropped: counts that are not ints in
    range become None, texts that are not strings None (a record is never lost to them)."""
    u = info.usage
    usage = Usage(*(_count(v) for v in u)) if isinstance(u, Usage) else EMPTY_USAGE
    return _valid_strings(
        info._replace(
            usage=usage,
            provider=_plain(info.provider),
            response_model=_plain(info.response_model),
            finish_reason=_plain(info.finish_reason),
            block_reason=_plain(info.block_reason),
        )
    )
