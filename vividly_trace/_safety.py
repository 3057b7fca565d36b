"""Internal error reporting: the ``vividly_trace`` logger, rate-limited per message key."""

from __future__ import annotations

import logging
import threading
import time

from ._jsonsafe import mask_secrets_in_text

__all__ = ["logger", "reset_limits", "warn_limited"]

logger = logging.getLogger("vividly_trace")


class _MaskSecrets(logging.Filter):
    """Mask API keys, tokens and passwords in every message of the ``vividly_trace`` logger.

    Its messages quote what the application handed over (a rejected argument, the text of
    an exception raised by a sink, a redact hook or an extractor), and those may carry
    credentials. The message is formatted here, once, and a format that fails becomes a
    plain note instead of a logging error (whose report would print the raw arguments).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            message = f"{record.msg} (its arguments could not be formatted)"
        record.msg = mask_secrets_in_text(message)
        record.args = ()
        return True


logger.addFilter(_MaskSecrets())

_INTERVAL_S = 60.0
_last: dict[str, float] = {}
_suppressed: dict[str, int] = {}
_lock = threading.Lock()


def warn_limited(key: str, message: str, *args: object, level: int = logging.WARNING) -> None:
    """Log ``message`` at most once per minute per ``key``; say how many were suppressed."""
    now = time.monotonic()
    with _lock:
        last = _last.get(key)
        if last is not None and now - last < _INTERVAL_S:
            _suppressed[key] = _suppressed.get(key, 0) + 1
            return
        _last[key] = now
        skipped = _suppressed.pop(key, 0)
    if skipped:
        message = f"{message} ({skipped} similar messages suppressed)"
    logger.log(level, message, *args)


def reset_limits() -> None:
    """Forget the rate-limit state (for tests)."""
    with _lock:
        _last.clear()
        _suppressed.clear()
