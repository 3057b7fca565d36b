"""Fitting a log entry under a size limit by cutting its longest texts, never dropping it.

Cloud Logging refuses a ``LogEntry`` over 256 KB (and, with it, a whole ``entries:write``
request), so an entry that would be larger loses characters from its longest text fields
(``prompt_text``, ``response_text``, ``error_message``, string values anywhere in
``metadata``), each cut field ending with ``...[truncated N chars]``, until it fits. Only
when that is not enough (metadata made of many short values, thousands of requests) are
``metadata`` and then ``requests`` replaced by a note.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .._jsonsafe import truncation_marker

__all__ = ["CUT_FIELDS", "Fitted", "entry_size", "fit_payload"]

#: The top-level payload fields that may be cut, besides the strings inside ``metadata``.
CUT_FIELDS = ("prompt_text", "response_text", "error_message")
_MARKER_ROOM = 40  # bytes a marker may add (its digits included), with room to spare
_MIN_CUT = 256  # a text shorter than this is not worth its marker: left whole
_MAX_DEPTH = 16


def entry_size(entry: Any) -> int:
    """The size of ``entry`` as compact UTF-8 JSON, in bytes."""
    text = json.dumps(entry, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return len(text) if text.isascii() else len(text.encode("utf-8"))


class Fitted:
    """What :func:`fit_payload` did: ``size`` (bytes after), ``cut`` (fields cut) and
    ``replaced`` (containers replaced by a note: ``metadata``, ``requests``)."""

    __slots__ = ("cut", "replaced", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.cut = 0
        self.replaced: list[str] = []


class _Text:
    """One cuttable string: where it is, its original value and how much of it is kept."""

    __slots__ = ("container", "keep", "key", "original")

    def __init__(self, container: Any, key: Any, original: str) -> None:
        self.container = container
        self.key = key
        self.original = original
        self.keep = len(original)

    def cut_to(self, keep: int) -> int:
        """Keep ``keep`` characters; return by how many bytes the JSON shrank."""
        before = _encoded(self.container[self.key])
        self.keep = keep
        value = self.original[:keep] + truncation_marker(len(self.original) - keep)
        self.container[self.key] = value
        return before - _encoded(value)


def _encoded(text: str) -> int:
    """Bytes of ``text`` as a JSON string (as :func:`entry_size` counts them)."""
    encoded = json.dumps(text, ensure_ascii=False)
    return len(encoded) if encoded.isascii() else len(encoded.encode("utf-8"))


def _texts(payload: dict[str, Any]) -> list[_Text]:
    found = [
        _Text(payload, name, payload[name])
        for name in CUT_FIELDS
        if isinstance(payload.get(name), str) and len(payload[name]) >= _MIN_CUT
    ]
    stack: list[tuple[Any, int]] = [(payload.get("metadata"), 0)]
    while stack:
        value, depth = stack.pop()
        if depth > _MAX_DEPTH:
            continue
        items = (
            value.items()
            if isinstance(value, dict)
            else enumerate(value)
            if isinstance(value, list)
            else ()
        )
        for key, item in items:
            if isinstance(item, str):
                if len(item) >= _MIN_CUT:
                    found.append(_Text(value, key, item))
            elif isinstance(item, (dict, list)):
                stack.append((item, depth + 1))
    return found


def fit_payload(
    entry: dict[str, Any], payload: dict[str, Any], limit: int, size: int | None = None
) -> Fitted:
    """Cut the longest texts of ``payload`` (a dict inside ``entry``, changed in place)
    until ``entry`` serialises to at most ``limit`` bytes.

    Each step takes the text with the most characters still kept and keeps ``excess +
    room for the marker`` fewer of them: every character is at least one byte of JSON, so
    one step is usually enough; a text too short for the excess is cut to its marker alone
    and the next longest follows. Texts under 256 characters are left whole. The size is
    kept up to date from the cut strings alone (the entry is serialised once more at the
    end, to check).
    """
    measure: Callable[[], int] = lambda: entry_size(entry)  # noqa: E731
    fitted = Fitted(measure() if size is None else size)
    if fitted.size <= limit:
        return fitted
    texts = _texts(payload)
    cut: set[int] = set()
    while fitted.size > limit:
        longest = max(texts, key=lambda t: t.keep, default=None)
        if longest is None or longest.keep < _MIN_CUT:
            break
        excess = fitted.size - limit
        fitted.size -= longest.cut_to(max(0, longest.keep - excess - _MARKER_ROOM))
        cut.add(id(longest))
    fitted.cut = len(cut)
    if cut:
        fitted.size = measure()
    if fitted.size > limit and isinstance(payload.get("metadata"), dict):
        payload["metadata"] = {
            "vividly_trace_truncated": "metadata removed: the entry was over the log entry "
            "limit even with its texts cut"
        }
        fitted.replaced.append("metadata")
        fitted.size = measure()
    if fitted.size > limit and payload.get("requests"):
        removed = len(payload["requests"])
        payload["requests"] = []
        payload["vividly_trace_requests_removed"] = removed
        fitted.replaced.append("requests")
        fitted.size = measure()
    return fitted
