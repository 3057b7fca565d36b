"""Exceptions raised by vividly_trace at configuration time.

::

    VividlyTraceError
    ├── ConfigurationError (also a ValueError)
    └── MissingExtraError (also an ImportError)

Nothing here is ever raised into a decorated call: at call time problems are logged to the
``vividly_trace`` logger and counted in :func:`vividly_trace.stats`.
"""

from __future__ import annotations

__all__ = ["ConfigurationError", "MissingExtraError", "VividlyTraceError"]


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
