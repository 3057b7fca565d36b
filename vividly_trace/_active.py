"""What is configured right now: the active pipeline and its sinks.

A leaf module, so that everything may read it: the hot path reads ``state.pipeline`` on
every call (one attribute), a pipeline closing hands late calls to its successor, and
``register_template`` finds the configured SQL sinks, all without importing the
configuration. Only :mod:`vividly_trace._config` writes it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ._lifecycle import on_fork

__all__ = ["UNSET", "state"]

UNSET: Any = object()
"""``state.pipeline`` before the first ``configure()`` (the environment is not read yet)."""


class _State:
    """``pipeline``: ``UNSET``, ``None`` (disabled) or the active pipeline; ``sinks``: the
    sinks it writes to."""

    def __init__(self) -> None:
        self.pipeline: Any = UNSET
        self.sinks: tuple[Any, ...] = ()
        self.lock = threading.RLock()
        self.env_warned = False
        self.load_environment: Callable[[], Any] | None = None  # set by the configuration

    def configured_sinks(self) -> tuple[Any, ...]:
        """The sinks of the active set-up, reading the environment first if nothing did."""
        if self.pipeline is UNSET and self.load_environment is not None:
            self.load_environment()
        return self.sinks

    def renew_lock(self) -> None:
        """In a forked child: a parent thread may have held the lock at the fork."""
        self.lock = threading.RLock()


state = _State()
on_fork(state.renew_lock)
