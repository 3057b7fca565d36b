"""Token usage extraction: a registry of duck-typed extractors.

An extractor is a callable ``(response) -> ResponseInfo | None``; it returns ``None`` for a
response it does not recognise. :func:`extract` tries the registered extractors (most
recently registered first, then the built-in Gemini and dict extractors) and never raises:
a response nobody recognises gives an empty :class:`ResponseInfo`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ._types import EMPTY_USAGE, ResponseInfo, Usage, build_usage
from .dicts import extract_dict, usage_from_mapping
from .gemini import extract_gemini, has_usage

__all__ = [
    "EMPTY_INFO",
    "EMPTY_USAGE",
    "Extractor",
    "ResponseInfo",
    "Usage",
    "build_usage",
    "extract",
    "extract_dict",
    "extract_gemini",
    "has_usage",
    "register_extractor",
    "unregister_extractor",
    "usage_from_mapping",
]

Extractor = Callable[[Any], "ResponseInfo | None"]

_logger = logging.getLogger("vividly_trace")
_user_extractors: list[Extractor] = []
_BUILTIN: tuple[Extractor, ...] = (extract_gemini, extract_dict)
EMPTY_INFO = ResponseInfo()


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
                return info
            _logger.debug("usage extractor %r returned %r, not ResponseInfo", extractor, info)
    return EMPTY_INFO
