"""A sink that keeps records in a list, for tests and notebooks."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from .._record import PromptExecution

__all__ = ["MemorySink"]


class MemorySink:
    """Keeps every record in :attr:`records` (a list of :class:`PromptExecution`).

    .. versionadded:: 0.1.0
    """

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self.records: list[PromptExecution] = []
        self.batches = 0
        self._lock = threading.Lock()

    def write_batch(self, records: Sequence[PromptExecution]) -> None:
        """Append the batch to :attr:`records`."""
        with self._lock:
            self.records.extend(records)
            self.batches += 1

    def after_fork(self) -> None:
        """In a forked child: a parent thread may have held the lock at the fork."""
        self._lock = threading.Lock()

    def clear(self) -> None:
        """Forget the records kept so far."""
        with self._lock:
            self.records.clear()

    def close(self) -> None:
        """Nothing to release."""
