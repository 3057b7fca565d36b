"""The pipeline: one configured set-up's fan-out to its sink workers, sampling, shutdown.

Built by :mod:`vividly_trace._config`; the hot path calls :meth:`Pipeline.submit`. It owns
the :class:`~vividly_trace._build.RecordBuilder` that every one of its workers is handed.
"""

from __future__ import annotations

import gc
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._active import state
from ._build import Item, RecordBuilder, Redactor
from ._call import OPEN_STREAMS, ReadyRecord, call_failed
from ._dispatch import PASS_THROUGH, DispatchOptions, ScoreChannel, SinkWorker
from ._lifecycle import on_fork
from ._safety import internal_error, logger, warn_limited

if TYPE_CHECKING:
    from ._score import Score
    from .pricing import PricingTable

__all__ = ["Pipeline"]

#: Seconds shutdown() waits, past its timeout, for the workers to spool what they held.
_SPOOL_GRACE = 30.0


_COLLECT_EVERY_S = 1.0
_last_collect = -_COLLECT_EVERY_S


def collect_abandoned_streams() -> None:
    """Record the streams nobody will iterate again, now rather than whenever the garbage
    collector gets to them.

    A server that stops iterating a sync generator when its client disconnects (Starlette's
    ``StreamingResponse``) neither closes it nor drops it at once: the generator is left in
    a reference cycle, and its record (closed early, latency up to its last chunk) waits for
    a full garbage collection. While streams are open, ``flush()`` runs one (at most once a
    second); a stream still referenced is left alone, and ``shutdown()`` records those.
    """
    global _last_collect
    if not OPEN_STREAMS:
        return
    now = time.monotonic()
    if now - _last_collect < _COLLECT_EVERY_S:
        return
    _last_collect = now
    gc.collect()


def _score_from_dict(data: Any) -> Any:
    """``Score.from_dict``, imported when a spooled score is replayed (scores are optional:
    their module is not imported with the package)."""
    from ._score import Score

    return Score.from_dict(data)


class Pipeline:
    """The active configuration: sinks with their workers, pricing, sampling, redaction."""

    def __init__(
        self,
        sinks: Sequence[Any],
        *,
        sync: bool,
        options: DispatchOptions,
        pricing: PricingTable,
        sample_rate: float,
        redact: Redactor | None,
        mask_secrets: bool,
        shutdown_timeout: float,
        trace_getter: Callable[[], Any] | None = None,
        capture_clients: bool = False,
        capture_unlogged: bool = False,
        content_max_chars: int | None = None,
    ) -> None:
        self.trace_getter = trace_getter
        self.capture_clients = capture_clients
        self.capture_unlogged = capture_unlogged
        # Read by the capture wrappers on every request: one attribute, False when off.
        self.capture_content = content_max_chars is not None
        self.content_max_chars = content_max_chars
        self.pricing = pricing
        self.sample_rate = sample_rate
        self.mask_secrets = mask_secrets
        self.shutdown_timeout = shutdown_timeout
        self.sync = sync
        self.options = options
        self.sampled_out = 0
        self.builder = RecordBuilder(
            pricing,
            mask_secrets=mask_secrets,
            redact=redact,
            on_drop=self._count_drop,
            content_max_chars=content_max_chars,
        )
        self.workers = tuple(SinkWorker(s, options, self.builder, sync) for s in sinks)
        # Scores go only to the sinks that store them, each through a worker of its own
        # (its thread starts with the first score, so a set-up that never scores has none).
        self.score_workers = tuple(
            SinkWorker(ScoreChannel(s), options, PASS_THROUGH, sync, _score_from_dict)
            for s in sinks
            if callable(getattr(s, "write_scores", None))
        )
        self._every_worker = self.workers + self.score_workers
        self.invalid_scores = 0
        self.sinks = tuple(sinks)
        self._offers = tuple(w.offer for w in self.workers)
        if len(self._offers) == 1 and sample_rate >= 1.0:
            # The common case: the hot path calls the one worker's offer() directly.
            self.submit = self._offers[0]  # type: ignore[method-assign]
        self._closed = False
        on_fork(self.after_fork)

    def submit(self, item: Item) -> None:
        """Hand a finished call (or a ready record) to every sink. Never raises."""
        try:
            if self.sample_rate < 1.0 and random.random() >= self.sample_rate:
                failed = item.failed if isinstance(item, ReadyRecord) else call_failed(item)
                if not failed:  # failures are always kept
                    self.sampled_out += 1
                    return
            for offer in self._offers:
                offer(item)
        except Exception as exc:
            internal_error("submit", exc, "vividly_trace could not queue a record: %r", exc)

    def submit_score(self, score: Score) -> bool:
        """Queue ``score`` for every sink that stores scores; False when none does."""
        if self._closed:
            current = state.pipeline
            if isinstance(current, Pipeline) and current is not self and not current._closed:
                return current.submit_score(score)
            for worker in self.score_workers:
                worker.count_drop("after_shutdown")
            return False
        for worker in self.score_workers:
            worker.offer(score)  # type: ignore[arg-type]  # a ready item, passed through
        return bool(self.score_workers)

    def count_invalid_score(self) -> None:
        """A score refused by :func:`~vividly_trace._score.make_score` (warned already)."""
        self.invalid_scores += 1

    def _submit_after_close(self, item: Item) -> None:
        current = state.pipeline
        if isinstance(current, Pipeline) and current is not self and not current._closed:
            current.submit(item)
            return
        for worker in self.workers:
            worker.count_drop("after_shutdown")
        warn_limited(
            "after_shutdown",
            "vividly_trace: a call ended after shutdown(); its record was dropped",
        )

    def _count_drop(self, reason: str) -> None:
        for worker in self.workers:
            worker.count_drop(reason)

    def flush(self, timeout: float) -> bool:
        """Wait (one deadline for all sinks) until what was queued so far is handled; first
        record the streams their consumer abandoned (see :func:`collect_abandoned_streams`)."""
        deadline = time.monotonic() + max(0.0, timeout)
        collect_abandoned_streams()
        ok = True
        for worker in self._every_worker:
            ok = worker.flush(deadline) and ok
        return ok

    def shutdown(self, timeout: float, *, finalise_streams: bool = False) -> bool:
        """Drain and stop every worker in parallel within ``timeout``; close the sinks.

        ``finalise_streams`` (process exit and ``shutdown()``, not a reconfiguration, whose
        successor takes the calls still running) records every stream still open first."""
        if self._closed:
            return True
        self._closed = True
        if finalise_streams:
            self._finalise_open_streams()
        # Calls still running when this pipeline closes hand their records to whatever is
        # configured when they end, instead of to workers that are stopping.
        self.submit = self._submit_after_close  # type: ignore[method-assign]
        deadline = time.monotonic() + max(0.0, timeout)
        results = []
        # Stop all workers in parallel so that one hung sink does not eat the others' time.
        for worker in self._every_worker:
            worker.begin_stop()  # every worker starts draining now
        threads = []
        for worker in self._every_worker:
            t = threading.Thread(target=lambda w=worker: results.append(w.stop(deadline)))
            t.daemon = True
            try:
                t.start()
            except RuntimeError:
                # Python >= 3.12 refuses new threads in atexit hooks: stop inline (the
                # workers already drain in parallel, so they share the one deadline).
                results.append(worker.stop(deadline))
                continue
            threads.append(t)
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()) + 0.5)
        # Past the deadline a stopping worker only spools what it still held (local work,
        # bounded by the queue size, never waiting on the sink): wait for that, or those
        # records die with the process unspooled and uncounted (their daemon thread is cut).
        grace = time.monotonic() + _SPOOL_GRACE
        for worker in self._every_worker:
            worker.wait_kept(grace - time.monotonic())
        ok = all(results) and len(results) == len(self._every_worker)
        if not ok:
            pending = {w.name: len(w.queue) for w in self._every_worker if w.queue}
            logger.warning("vividly_trace shutdown timed out; still pending: %s", pending)
        return ok

    def _finalise_open_streams(self) -> None:
        """Record every stream still open (closed early, latency up to its last chunk), so
        that one the consumer abandoned is not lost with the process."""
        for _ in range(3):  # another thread may open or end a stream meanwhile
            try:
                calls = list(OPEN_STREAMS)
                break
            except RuntimeError:
                continue
        else:
            return
        for call in calls:
            if not call._claim():  # the stream's own end is recording it
                continue
            try:
                call._close_early()
                for offer in self._offers:
                    offer(call)
            except Exception as exc:
                internal_error("finalise", exc, "vividly_trace could not record a stream: %r", exc)

    def after_fork(self) -> None:
        """In a forked child: fresh queues and threads for every worker."""
        for worker in self._every_worker:
            worker.after_fork()

    def stats(self) -> dict[str, Any]:
        """The counters of :func:`vividly_trace.stats`."""
        sinks = {w.name: w.stats() for w in self.workers}
        dropped: dict[str, int] = {}
        for s in sinks.values():
            for reason, n in s["dropped"].items():
                dropped[reason] = dropped.get(reason, 0) + n
        scores = {w.name: w.stats() for w in self.score_workers}
        for s in scores.values():
            for reason, n in s["dropped"].items():
                dropped[f"score_{reason}"] = dropped.get(f"score_{reason}", 0) + n
        if self.invalid_scores:
            dropped["score_invalid"] = self.invalid_scores
        return {
            "mode": "sync" if self.sync else "background",
            "sampled_out": self.sampled_out,
            "enqueued": sum(s["enqueued"] for s in sinks.values()),
            "written": sum(s["written"] for s in sinks.values()),
            "dropped": dropped,
            "sinks": sinks,
            "scores": {
                "enqueued": sum(s["enqueued"] for s in scores.values()),
                "written": sum(s["written"] for s in scores.values()),
                "invalid": self.invalid_scores,
                "sinks": scores,
            },
        }
