"""Internal error reporting: the ``vividly_trace`` logger, rate-limited per message key."""

from __future__ import annotations

import logging
import threading
import time

__all__ = ["logger", "reset_limits", "warn_limited"]

logger = logging.getLogger("vividly_trace")

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
