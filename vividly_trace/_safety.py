"""Internal error reporting: the ``vividly_trace`` logger, rate-limited per message key."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator

from ._jsonsafe import mask_secrets_in_text
from ._lifecycle import on_fork

__all__ = [
    "add_internal_error_hook",
    "internal_error",
    "logger",
    "remove_internal_error_hook",
    "reset_limits",
    "swallow_internal",
    "warn_limited",
]

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


def _renew_lock() -> None:
    global _lock
    _lock = threading.Lock()  # a parent thread may have held it at the fork


on_fork(_renew_lock)

_internal_hooks: list[Callable[[BaseException], None]] = []


def internal_error(key: str, exc: BaseException, message: str, *args: object) -> None:
    """Report an exception the SDK swallowed because of its own failure (not the sink's,
    not the application's): log it, rate-limited per ``key``, and tell the hooks.

    Every internal ``except`` that keeps "logging never raises into the caller" ends here,
    so that a test suite can turn swallowed bugs back into failures
    (:func:`add_internal_error_hook`), as sentry-python's tests do.
    """
    try:
        warn_limited(key, message, *args)
    finally:
        for hook in tuple(_internal_hooks):
            with contextlib.suppress(Exception):
                hook(exc)


@contextlib.contextmanager
def swallow_internal(key: str, what: str) -> Iterator[None]:
    """Run a step of the SDK's own work; an ``Exception`` it raises is reported through
    :func:`internal_error` ("vividly_trace could not <what>: <exc>") and swallowed."""
    try:
        yield
    except Exception as exc:
        internal_error(key, exc, "vividly_trace could not %s: %r", what, exc)


def add_internal_error_hook(hook: Callable[[BaseException], None]) -> None:
    """Call ``hook(exc)`` for every internal error swallowed from now on (tests)."""
    _internal_hooks.append(hook)


def remove_internal_error_hook(hook: Callable[[BaseException], None]) -> None:
    """Undo :func:`add_internal_error_hook`."""
    with contextlib.suppress(ValueError):
        _internal_hooks.remove(hook)


def reset_limits() -> None:
    """Forget the rate-limit state (for tests)."""
    with _lock:
        _last.clear()
        _suppressed.clear()
