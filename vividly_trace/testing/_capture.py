"""``capture_records()``: the records of the calls made inside a block, as structlog's
``capture_logs`` gives the log entries."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator, Sequence
from typing import Any

from .._config import configured_pipeline, swap_pipeline
from .._pipeline import Pipeline
from .._record import PromptExecution
from ..exceptions import ConfigurationError

__all__ = ["CapturedRecords", "capture_records"]

#: configure() arguments that capture_records() sets itself.
_SET_HERE = ("sinks", "sync", "spool_dir")
#: configure() arguments it accepts.
_OPTIONS = frozenset(inspect.signature(configured_pipeline).parameters) - set(_SET_HERE)


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

    A set-up the block itself installs (``configure()`` inside it) ends with the block:
    it is shut down (flushed) and the one configured before the block is put back.

    Raises:
        ConfigurationError: bad ``options``, or one of ``sinks``, ``sync``, ``spool_dir``
            (set here) or an argument that is not :func:`vividly_trace.configure`'s.

    .. versionadded:: 0.2.0
    """
    for name in options:
        if name not in _OPTIONS:
            why = "is set by capture_records()" if name in _SET_HERE else "is not accepted"
            raise ConfigurationError(
                f"capture_records(): {name}= {why}; options are configure() arguments "
                f"among {', '.join(sorted(_OPTIONS))}"
            )
    records = CapturedRecords()
    pipeline = configured_pipeline(
        sinks=[_ListSink(records)], sync=True, spool_dir=False, **options
    )
    previous = swap_pipeline(pipeline)
    try:
        yield records
    finally:
        current = swap_pipeline(previous)
        pipeline.shutdown(5.0)
        if current is not pipeline and isinstance(current, Pipeline):
            # configure() inside the block replaced the capture (and shut it down): its
            # set-up would otherwise keep running unseen, its workers never flushed.
            current.shutdown(current.shutdown_timeout)
