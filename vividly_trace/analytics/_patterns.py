"""Error message normalisation: one pattern per kind of error, not one per request.

Error messages carry request ids, counts, timestamps, UUIDs and quoted values that differ
on every call; grouping on the raw text would split one problem into hundreds of rows.
:func:`normalize_error_message` replaces those parts with placeholders.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

__all__ = ["normalize_error_message"]

MAX_PATTERN_CHARS = 240

# Order matters: each rule runs on the output of the ones before it.
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # ISO 8601 timestamps and dates: 2026-11-24T03:30:00.123Z, 2026-11-24 03:30:00+00:00.
    (
        re.compile(
            r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?"
            r"(?:Z|[+-]\d{2}:?\d{2})?)?\b"
        ),
        "<time>",
    ),
    # UUIDs (any version), with or without braces.
    (
        re.compile(
            r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
        ),
        "<uuid>",
    ),
    # E-mail addresses.
    (re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"), "<email>"),
    # Quoted values: '...', "..." and `...`, but not dictionary keys ('code': ...), so
    # that the shape of an embedded JSON or dict error body stays readable.
    (re.compile(r"(?<![\w'])'(?:[^'\\\n]|\\.)*'(?![\w'])(?!\s*:)"), "'<str>'"),
    (re.compile(r'(?<![\w"])"(?:[^"\\\n]|\\.)*"(?![\w"])(?!\s*:)'), '"<str>"'),
    (re.compile(r"`[^`\n]*`"), "`<str>`"),
    # Hexadecimal: 0x1f3a, and bare runs of 8+ hex digits mixing digits and letters
    # (hashes, trace ids).
    (re.compile(r"\b0[xX][0-9a-fA-F]+\b"), "<hex>"),
    (re.compile(r"\b(?=[0-9a-fA-F]*[0-9])(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"), "<hex>"),
    # Identifiers: words with letters and at least 4 digits (req_83412, user8812x, k3j4h5l6).
    (re.compile(r"\b(?=\w*[A-Za-z])(?=(?:\w*?\d){4})\w+\b"), "<id>"),
)
# "429 RESOURCE_EXHAUSTED. {'error': {'code': 429, 'message': '...', 'status': ...}}": the
# google-genai errors (and many HTTP clients) append the response body to the message.
_BODY = re.compile(r"^(?P<head>[^{]*?)[\s.:,-]*(?P<body>\{.*\})\s*$", re.DOTALL)


def _body_message(body: str) -> str | None:
    """The ``error.message`` (or ``message``) of a JSON or Python-literal error body."""
    parsed: Any = None
    try:
        parsed = json.loads(body)
    except ValueError:
        try:
            parsed = ast.literal_eval(body)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        parsed = parsed["error"]
    if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        return str(parsed["message"])
    return None


def _unwrap_body(text: str) -> str:
    match = _BODY.match(text)
    if match is None or len(text) > 4000:
        return text
    message = _body_message(match.group("body"))
    if message is None:
        return text
    head = match.group("head").strip()
    return f"{head}: {message}" if head else message


# A number not glued to a word on its left ("30.5s" is a number, "v1beta" is not).
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?")
# An HTTP status at the start or after "HTTP", "status" or "code" is part of the pattern.
_STATUS_CONTEXT = re.compile(
    r"\b(?:HTTP(?:/\d(?:\.\d)?)?|status|code)['\"]?\s*[:=]?\s*$", re.IGNORECASE
)
_SPACE = re.compile(r"\s+")


def _number(match: re.Match[str]) -> str:
    value = match.group(0)
    if len(value) == 3 and value[0] in "12345" and value.isdigit():
        before = match.string[max(0, match.start() - 16) : match.start()]
        if match.start() == 0 or _STATUS_CONTEXT.search(before):
            return value
    return "<n>"


def normalize_error_message(message: str | None) -> str:
    """Collapse the variable parts of an error message into placeholders.

    An error body appended to the message (``429 RESOURCE_EXHAUSTED. {'error': {'code':
    429, 'message': 'Resource has been exhausted', ...}}``, as the ``google-genai`` errors
    give it) is first reduced to its message: ``429 RESOURCE_EXHAUSTED: Resource has been
    exhausted``. Then, in order, these are replaced:

    - timestamps (``<time>``), UUIDs (``<uuid>``), e-mail addresses (``<email>``);
    - quoted values (``'<str>'``; dictionary keys such as ``'code':`` are kept);
    - hexadecimal (``<hex>``: ``0x..``, and runs of 8+ hex digits mixing digits and
      letters);
    - identifiers with 4+ digits (``<id>``);
    - every other number (``<n>``), except an HTTP status (1xx-5xx) at the start of the
      message or after ``HTTP``, ``status`` or ``code``, which stays.

    Whitespace is collapsed and the result is cut to 240 characters.

    ``None`` or an empty message gives ``"(no message)"``.

    Example::

        >>> normalize_error_message("429 RESOURCE_EXHAUSTED: quota for user 8812 exceeded")
        '429 RESOURCE_EXHAUSTED: quota for user <n> exceeded'

    .. versionadded:: 0.1.0
    """
    if not message or not message.strip():
        return "(no message)"
    text = _SPACE.sub(" ", _unwrap_body(message.strip()))
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    text = _NUMBER.sub(_number, text)
    if len(text) > MAX_PATTERN_CHARS:
        text = text[: MAX_PATTERN_CHARS - 1].rstrip() + "…"
    return text
