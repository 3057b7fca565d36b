"""A sink that keeps records in a list, for tests and notebooks."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from .._record import PromptExecution
from .._score import Score

__all__ = ["MemorySink"]


class MemorySink:
    """Keeps every record it is given; :attr:`records` hands out a snapshot, and
    :attr:`scores` the scores (:func:`vividly_trace.score`) in the order they arrived.

    For the records of the calls a test makes, :func:`vividly_trace.testing.capture_records`
    is simpler.

    .. versionadded:: 0.1.0
    """

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self._records: list[PromptExecution] = []
        self._scores: list[Score] = []
        self.batches = 0
        self._lock = threading.Lock()

    @property
    def records(self) -> list[PromptExecution]:
        """The records written so far, in order: a new list each time (the worker thread
        may be appending meanwhile)."""
        with self._lock:
            return list(self._records)

    @property
    def scores(self) -> list[Score]:
        """The scores written so far, in order of arrival (every value, not only the
        latest per key): a new list each time.

        .. versionadded:: 0.4.0
        """
        with self._lock:
            return list(self._scores)

    def write_scores(self, scores: Sequence[Score]) -> None:
        """Keep the scores."""
        with self._lock:
            self._scores.extend(scores)

    def write_batch(self, records: Sequence[PromptExecution]) -> None:
        """Keep the batch."""
        with self._lock:
            self._records.extend(records)
            self.batches += 1

    def after_fork(self) -> None:
        """In a forked child: a parent thread may have held the lock at the fork."""
        self._lock = threading.Lock()

    def clear(self) -> None:
        """Forget the records and scores kept so far."""
        with self._lock:
            self._records.clear()
            self._scores.clear()

    def close(self) -> None:
        """Nothing to release."""
