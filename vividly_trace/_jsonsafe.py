"""Turn arbitrary metadata into a bounded, JSON-safe dict, masking secrets.

Rules (documented in the README):

- keys become strings; values become ``None``, ``bool``, ``int``, finite ``float``, ``str``,
  lists or dicts. ``NaN`` / ``inf`` become the strings ``"NaN"``, ``"Infinity"``,
  ``"-Infinity"``; ``bytes`` become ``"<N bytes>"``; datetimes ISO strings; ``Decimal`` a
  string; sets and tuples lists; anything else its ``repr()`` (or ``"<unrepresentable T>"``).
  An int too large for JSON text (over 10,000 bits) becomes ``"<int of N bits>"``; a value
  whose conversion raises (a hostile ``__iter__``, ``items()``...) becomes
  ``"<unconvertible>"`` without taking its neighbours along.
- cycles become ``"<cycle>"``; nesting deeper than 16 levels ``"<too deep>"``; containers
  keep at most 1000 items.
- strings longer than 8192 characters are cut to 8192 and end with ``"...[truncated N chars]"``.
- when the whole result still serialises to more than 64 KiB, it is replaced by
  ``{"_truncated": true, "_original_bytes": N, "_keys": [first 50 keys]}``.
- values under keys that look like secrets (``api_key``, ``authorization``, ``password``,
  ``token``, ``secret``, ``cookie``, ``credential``...) become ``"[REDACTED]"``, and string
  values that look like Google API keys or bearer tokens are masked wherever they are.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

__all__ = [
    "MAX_METADATA_BYTES",
    "MAX_STRING_CHARS",
    "REDACTED",
    "is_secret_key",
    "json_safe",
    "mask_secrets_in_text",
    "mask_url_password",
    "replace_nul",
    "safe_repr",
    "sanitize_metadata",
    "show",
    "truncation_marker",
    "valid_text",
]

MAX_STRING_CHARS = 8192
MAX_METADATA_BYTES = 64 * 1024
MAX_ITEMS = 1000
MAX_DEPTH = 16
_MAX_INT_BITS = 10_000  # about 3000 digits, below Python's int-to-str limit of 4300
REDACTED = "[REDACTED]"

_SECRET_WORDS = frozenset(
    {
        "token",
        "secret",
        "password",
        "passwd",
        "pwd",
        "authorization",
        "auth",
        "cookie",
        "credential",
        "credentials",
        "apikey",
        "sessionid",
    }
)
_SECRET_PARTS = (
    "apikey",
    "privatekey",
    "accesskey",
    "secretkey",
    "clientsecret",
    "password",
    "passwd",
    "authorization",
    "credential",
)
_SPLIT = re.compile(r"[^a-z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SECRET_VALUE = re.compile(
    r"AIza[0-9A-Za-z_\-]{20,}"  # Google API keys
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/\-]+=*"  # bearer tokens
    r"|ya29\.[0-9A-Za-z_\-]+"  # Google OAuth access tokens
    r"|(?i:(?<=[?&])key=)[^&\s\"']+"  # ?key=... in URLs
)
# Credentials after their name, the name kept: "Authorization: Basic <...>" (any scheme),
# "password=<...>" in a libpq DSN or a query string.
_SECRET_ASSIGNMENT = re.compile(
    r"(?i)(\bauthorization[\"']?\s*[:=]\s*[\"']?(?:(?:basic|bearer|digest|token|negotiate)\s+)?"
    r"|(?<![a-z0-9_])(?:password|passwd|pwd)=)[^\s\"',;&]+"
)
_key_cache: dict[str, bool] = {}


def show(value: Any, limit: int = 200) -> str:
    """A short ``repr`` for messages that never raises (hostile ``__repr__``, huge ints,
    deep nesting)."""
    return valid_text(safe_repr(value)[:limit])


def is_secret_key(key: str) -> bool:
    """True when a metadata key names a secret (``api_key``, ``X-Auth-Token``, ``password``...).

    The key is split into words (snake, kebab and camel case). It is a secret when its last
    word is one (``token``, ``secret``, ``auth``...) or it contains ``api_key``,
    ``password``, ``authorization``, ``credential``... So ``max_tokens`` and
    ``input_token_count`` are kept, ``access_token`` and ``X-Api-Key`` are masked.
    """
    cached = _key_cache.get(key)
    if cached is not None:
        return cached
    words = [w for w in _SPLIT.split(_CAMEL.sub("_", key).lower()) if w]
    joined = "".join(words)
    result = bool(words) and (
        words[-1] in _SECRET_WORDS or any(part in joined for part in _SECRET_PARTS)
    )
    if len(_key_cache) < 10_000:
        _key_cache[key] = result
    return result


def mask_secrets_in_text(text: str) -> str:
    """Mask API keys, bearer tokens, Authorization header values and passwords (in URLs and
    ``password=`` assignments) inside free text (made valid Unicode)."""
    text = mask_url_password(valid_text(text))
    if "AIza" in text or "earer" in text or "ya29." in text or "key=" in text:
        text = _SECRET_VALUE.sub(REDACTED, text)
    if (
        "uthorization" in text
        or "UTHORIZATION" in text
        or "assw" in text
        or "ASSW" in text
        or "pwd=" in text
        or "PWD=" in text
    ):
        text = _SECRET_ASSIGNMENT.sub(r"\1" + REDACTED, text)
    return text


_URL_PASSWORD = re.compile(r"(://[^/\s:@]*):[^/\s@]*@")


def mask_url_password(text: str) -> str:
    """Hide the password of every ``scheme://user:password@host`` URL in ``text`` (``***``)."""
    return _URL_PASSWORD.sub(r"\1:***@", text) if "@" in text else text


def replace_nul(text: str) -> str:
    """``text`` with NUL characters replaced by U+FFFD (PostgreSQL text refuses NUL)."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def valid_text(text: str) -> str:
    """``text`` as valid Unicode: unpaired surrogates (e.g. half an emoji from a cut JSON
    string) become ``\\udXXX`` escapes, since no UTF-8 store or encoder accepts them."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def truncation_marker(cut: int) -> str:
    """The marker that ends a text cut by ``cut`` characters: ``...[truncated N chars]``
    (metadata strings, prompt and response texts, fields cut to fit a log entry)."""
    return f"...[truncated {cut} chars]"


def _truncate(text: str) -> str:
    if len(text) > MAX_STRING_CHARS:
        text = text[:MAX_STRING_CHARS] + truncation_marker(len(text) - MAX_STRING_CHARS)
    return valid_text(text)


def safe_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:
        try:
            text = f"<unrepresentable {type(value).__name__}>"
        except Exception:
            text = "<unrepresentable>"
    if not isinstance(text, str):
        return "<unrepresentable>"
    return text


def json_safe(value: Any, *, mask: bool = True) -> Any:
    """Convert ``value`` to JSON-safe data by the module's rules; never raises."""
    try:
        return _convert(value, mask, 0, set())
    except Exception:  # e.g. RecursionError, MemoryError from a hostile __iter__
        return "<unconvertible>"


def _convert(value: Any, mask: bool, depth: int, seen: set[int]) -> Any:
    try:
        return _convert_value(value, mask, depth, seen)
    except Exception:  # a hostile __iter__ / __int__ / items(): lose this value, not its siblings
        return "<unconvertible>"


def _int(value: int) -> int | str:
    # json.dumps (and repr) refuse ints beyond 4300 digits; keep those as a description.
    bits = value.bit_length()
    return value if bits <= _MAX_INT_BITS else f"<int of {bits} bits>"


def _convert_value(value: Any, mask: bool, depth: int, seen: set[int]) -> Any:
    if value is None or value is True or value is False:
        return value
    t = type(value)
    if t is str:
        value = _truncate(value)
        return mask_secrets_in_text(value) if mask else value
    if t is int:
        return _int(value)
    if t is float:
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if depth >= MAX_DEPTH:
        return "<too deep>"
    if isinstance(value, Mapping):
        ident = id(value)
        if ident in seen:
            return "<cycle>"
        seen.add(ident)
        out: dict[str, Any] = {}
        try:
            for i, (k, v) in enumerate(value.items()):
                if i >= MAX_ITEMS:
                    out["_truncated_items"] = len(value) - MAX_ITEMS
                    break
                key = k if type(k) is str else _key_text(k)
                key = valid_text(key[:256])
                if mask and is_secret_key(key):
                    out[key] = REDACTED
                else:
                    out[key] = _convert(v, mask, depth + 1, seen)
        finally:
            seen.discard(ident)
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        ident = id(value)
        if ident in seen:
            return "<cycle>"
        seen.add(ident)
        try:
            items = list(value) if not isinstance(value, (set, frozenset)) else _sorted(value)
            result = [_convert(v, mask, depth + 1, seen) for v in items[:MAX_ITEMS]]
            if len(items) > MAX_ITEMS:
                result.append(f"<{len(items) - MAX_ITEMS} more items>")
        finally:
            seen.discard(ident)
        return result
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return _int(int(value))
    if isinstance(value, float):
        return _convert(float(value), mask, depth, seen)
    if isinstance(value, str):
        return _convert(str.__str__(value), mask, depth, seen)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if isinstance(value, Decimal):
        return str(value) if value.is_finite() else _convert(float(value), mask, depth, seen)
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    text = _truncate(safe_repr(value))
    return mask_secrets_in_text(text) if mask else text


def _key_text(key: Any) -> str:
    if isinstance(key, str):
        return str.__str__(key)
    if isinstance(key, (bytes, bytearray)):
        return bytes(key).decode("utf-8", "replace")
    return safe_repr(key)


def _sorted(items: Any) -> list[Any]:
    values = list(items)
    try:
        return sorted(values)
    except Exception:
        return values


def sanitize_metadata(metadata: Any, *, mask: bool = True) -> dict[str, Any]:
    """Return ``metadata`` as a bounded JSON-safe dict (see the module rules)."""
    if metadata is None:
        return {}
    safe = json_safe(metadata, mask=mask)
    if not isinstance(safe, dict):
        safe = {"value": safe}
    if not safe:
        return safe
    try:
        text = json.dumps(safe, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        return {"_unserialisable": True}
    size = len(text) if text.isascii() else len(text.encode("utf-8"))
    if size > MAX_METADATA_BYTES:
        return {"_truncated": True, "_original_bytes": size, "_keys": list(safe)[:50]}
    return safe
