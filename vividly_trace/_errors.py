"""What an exception says, as a record stores it: type name, cleaned message, HTTP status."""

from __future__ import annotations

from typing import Any

from ._jsonsafe import mask_secrets_in_text

__all__ = ["MAX_ERROR_CHARS", "clean_error_message", "describe_error", "error_facts"]

MAX_ERROR_CHARS = 1000


def _http_status(exc: BaseException) -> int | None:
    value: Any
    for value in (
        getattr(exc, "code", None),
        getattr(exc, "status_code", None),
        getattr(getattr(exc, "response", None), "status_code", None),
    ):
        if isinstance(value, bool):
            continue
        try:
            code = int(value)
        except (TypeError, ValueError):
            continue
        if 100 <= code <= 599:
            return code
    return None


def clean_error_message(text: str) -> str:
    """An error message as stored: secrets masked, valid text, at most 1000 characters."""
    return mask_secrets_in_text(text[: MAX_ERROR_CHARS * 4])[:MAX_ERROR_CHARS]


def error_facts(exc: BaseException) -> tuple[str, str, int | None]:
    """(type name, message cut to 1000 characters with secrets masked, HTTP status)."""
    try:
        name = type(exc).__qualname__
    except Exception:
        name = "Exception"
    try:
        message = str(exc)
    except Exception:
        message = f"<unprintable {name}>"
    if not isinstance(message, str):
        message = f"<unprintable {name}>"
    message = clean_error_message(message)
    try:
        status = _http_status(exc)
    except Exception:
        status = None
    return name, message, status


def describe_error(exc: BaseException) -> str:
    """A short one-line description for the SDK's own log lines: ``Type(status): message``."""
    name, message, status = error_facts(exc)
    return f"{name}({status}): {message[:300]}" if status else f"{name}: {message[:300]}"
