"""Exceptions raised by vividly_trace at configuration time.

::

    VividlyTraceError
    ├── ConfigurationError (also a ValueError)
    ├── MissingExtraError (also an ImportError)
    └── RecordsRejected (raised by a sink: a batch that no retry can fix)

Nothing here is ever raised into a decorated call: at call time problems are logged to the
``vividly_trace`` logger and counted in :func:`vividly_trace.stats`.
"""

from __future__ import annotations

__all__ = ["ConfigurationError", "MissingExtraError", "RecordsRejected", "VividlyTraceError"]


class VividlyTraceError(Exception):
    """Base class of this package's exceptions."""


class ConfigurationError(VividlyTraceError, ValueError):
    """A bad argument to configure(), a sink or a price table."""


class MissingExtraError(VividlyTraceError, ImportError):
    """An integration was used without its optional dependency installed."""

    def __init__(self, feature: str, extra: str, missing: str | None = None) -> None:
        detail = f" ({missing} is not installed)" if missing else ""
        super().__init__(
            f"{feature} needs the '{extra}' extra{detail}: pip install 'vividly-trace[{extra}]'"
        )
        self.extra = extra


class RecordsRejected(VividlyTraceError):
    """Raised by a sink's ``write_batch`` when the destination refuses the batch for good.

    For example an HTTP 400 (invalid argument): retrying or replaying it later would fail
    the same way. The dispatcher does not retry or spool such a batch: it counts its records
    as dropped under ``reason`` and logs a warning. Raise it ``from`` the original error.
    """

    def __init__(self, message: str, reason: str = "rejected") -> None:
        super().__init__(message)
        self.reason = reason
