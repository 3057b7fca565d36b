"""The sink protocol: *where* records go. *When* they go is the dispatcher's job."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from .._record import PromptExecution

__all__ = ["Sink"]


@runtime_checkable
class Sink(Protocol):
    """A destination for records.

    ``write_batch`` is called from the sink's own worker thread (never from the caller's),
    with a batch of records; it raises on failure, and the dispatcher then retries with
    backoff and finally spools the batch to disk for a later replay. Writes should be
    idempotent on ``execution_id``: a replay may send a record again.

    It may return a mapping ``reason -> count`` of records it deliberately did not write
    (for example ``{"unknown_template": 2}`` in strict mode); those are counted as dropped.

    Optional attributes read by the dispatcher: ``max_batch_size`` (int), ``spool`` (bool,
    default True: keep failed batches on disk), ``spool_key`` (str: where the sink writes,
    e.g. a database URL without password; the spool directory is keyed by it so that two
    applications' sinks of the same name never replay into each other), and
    ``after_fork()`` (called in a forked child: renew locks and connections), and
    ``wants_trace_context`` (bool, default False: record the OpenTelemetry span active at
    each call, as ``traceparent`` in the metadata, when ``configure()`` is not told), and
    ``counters()`` (a mapping ``name -> int`` of the sink's own counts, e.g. the entries
    :class:`~vividly_trace.sinks.CloudLoggingSink` cut to fit; shown in that sink's
    :func:`vividly_trace.stats`).

    A batch the destination refuses for good (retrying cannot help) should raise
    :class:`vividly_trace.RecordsRejected`: it is counted as dropped, not retried.

    .. versionadded:: 0.1.0
    """

    name: str

    def write_batch(self, records: Sequence[PromptExecution]) -> Mapping[str, int] | None:
        """Write ``records``; raise on failure."""
        ...

    def close(self) -> None:
        """Release resources; called once at shutdown after the last batch."""
        ...
