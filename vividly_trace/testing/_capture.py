"""``capture_records()``: the records of the calls made inside a block, as structlog's
``capture_logs`` gives the log entries."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from .._config import configured_pipeline, swap_pipeline
from .._record import PromptExecution

__all__ = ["CapturedRecords", "capture_records"]


class CapturedRecords(list[PromptExecution]):
    """The list :func:`capture_records` yields: every record, in the order calls ended."""

    def only(self) -> PromptExecution:
        """The one record captured; ``AssertionError`` when there is not exactly one."""
        if len(self) != 1:
            raise AssertionError(f"expected exactly one record, captured {len(self)}")
        return self[0]


class _ListSink:
    """Appends every record to a :class:`CapturedRecords` (written inline: ``sync=True``)."""

    spool = False

    def __init__(self, records: CapturedRecords) -> None:
        self.name = "capture_records"
        self._records = records

    def write_batch(self, records: Sequence[PromptExecution]) -> None:
        self._records.extend(records)

    def close(self) -> None:
        """Nothing to release."""


@contextlib.contextmanager
def capture_records(**options: Any) -> Iterator[CapturedRecords]:
    """Capture the record of every logged call that ends inside the block.

    The calls are recorded synchronously (each record is in the list as soon as its call
    ends) by a pipeline of its own, which replaces the configured one for the duration of
    the block; the configured one is put back, untouched, afterwards. ``options`` are
    :func:`vividly_trace.configure` arguments (``pricing=``, ``redact=``, ``sample_rate=``,
    ``mask_secrets=``...); ``sinks`` and ``sync`` are set here.

    ::

        with capture_records() as records:
            extract_intent("book a table")
        assert records.only().success

    Raises:
        ConfigurationError: bad ``options``.

    .. versionadded:: 0.2.0
    """
    records = CapturedRecords()
    pipeline = configured_pipeline(
        sinks=[_ListSink(records)], sync=True, spool_dir=False, **options
    )
    previous = swap_pipeline(pipeline)
    try:
        yield records
    finally:
        swap_pipeline(previous)
        pipeline.shutdown(5.0)
