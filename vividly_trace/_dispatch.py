"""When records are written: one bounded queue and one worker thread per sink.

Like OpenTelemetry's ``BatchProcessor`` and sentry's ``BackgroundWorker``: the caller only
appends to a ``deque`` (dropping and counting when it is full, never blocking); the worker
wakes on a timer or when a batch is full (never per record), builds the records, and writes
them with retries and backoff; a batch that still fails goes to the sink's spool on disk and is
replayed when the sink answers again. One worker per sink keeps a slow sink from holding
the others.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ._build import Item
from ._errors import describe_error
from ._record import PromptExecution
from ._safety import internal_error, logger, warn_limited
from ._spool import Spool, destination_key
from .exceptions import RecordsRejected

__all__ = ["PASS_THROUGH", "DispatchOptions", "ScoreChannel", "SinkWorker"]

REPLAY_PER_WAKE = 10
"""Batches replayed from the spool per worker wake-up, at most."""

GIL_SLICE = 0.0002
"""Seconds a worker builds records before it lets application threads have the GIL."""

PACE_CHUNK = 16
"""Records built between two looks at the clock."""

KEEP_WAIT = 2.0
"""Seconds stop() waits for the worker to finish spooling the batch it is keeping."""


@dataclass(frozen=True, slots=True)
class DispatchOptions:
    """Batching, retry and spool settings shared by every sink worker."""

    queue_size: int = 10_000
    batch_size: int = 200
    flush_interval: float = 1.0
    max_retries: int = 3
    retry_backoff: float = 0.2
    max_backoff: float = 5.0
    replay_interval: float = 5.0
    spool_dir: Any = None
    spool_max_bytes: int = 256 * 1024 * 1024


class Builder(Protocol):
    """What turns queued items into what the sink writes (:class:`~._build.RecordBuilder`)."""

    def build_batch(
        self, items: Sequence[Any], on_error: Callable[[Exception], None]
    ) -> list[Any]: ...


class _PassThrough:
    """The builder of items that are ready as queued (scores)."""

    def build_batch(self, items: Sequence[Any], on_error: Callable[[Exception], None]) -> list[Any]:
        return list(items)


PASS_THROUGH = _PassThrough()


class ScoreChannel:
    """A sink's scores as a sink of their own: ``write_batch`` is the sink's
    ``write_scores``, so that a :class:`SinkWorker` queues, batches, retries and spools
    scores (in a spool of their own, ``<name>.scores``) exactly as it does records."""

    def __init__(self, sink: Any) -> None:
        self.sink = sink
        self.name = f"{sink.name}.scores"
        self.spool = getattr(sink, "spool", True)
        self.spool_key = f"scores:{destination_key(sink)}"
        self.max_batch_size = getattr(sink, "max_batch_size", None)

    def write_batch(self, scores: Sequence[Any]) -> object:
        return self.sink.write_scores(scores)

    def close(self) -> None:
        """Nothing: the sink's own worker closes the sink."""


class SinkWorker:
    """The queue, worker thread, retry policy, spool and counters of one sink."""

    def __init__(
        self,
        sink: Any,
        options: DispatchOptions,
        builder: Builder,
        sync: bool,
        decode: Callable[[dict[str, Any]], Any] = PromptExecution.from_dict,
    ) -> None:
        self.sink = sink
        self.name: str = str.__str__(sink.name)  # a plain copy: configure() checked it is a str
        self.options = options
        self.sync = sync
        self.builder = builder
        self.batch_size = int(getattr(sink, "max_batch_size", None) or options.batch_size)
        self.max_queue = options.queue_size
        self._high_water = options.queue_size // 2
        self._max_lag_ns = int(options.flush_interval * 1e9) // 2
        use_spool = getattr(sink, "spool", True) and options.spool_dir is not None
        self.spool: Spool | None = (
            Spool(
                options.spool_dir,
                self.name,
                options.spool_max_bytes,
                destination_key(sink),
                decode,
            )
            if use_spool
            else None
        )
        self.written = 0
        self.failed_batches = 0
        self.retries = 0
        self.spooled = 0
        self.replayed = 0
        self.dropped: dict[str, int] = {}
        self._drop_lock = threading.Lock()
        self._reset_runtime()

    def _reset_runtime(self) -> None:
        """Fresh queue, locks and thread (also after ``fork()`` in the child)."""
        self.queue: deque[Item] = deque()
        self._wake = threading.Event()
        self._cond = threading.Condition(threading.Lock())
        self._done = 0
        self._inflight = 0
        self._current: list[Item] | None = None  # the batch the worker is writing
        self._abandoned: list[Item] | None = None  # that batch, once stop() kept it
        self._keeping = False  # the worker is spooling its failed batch (stop() waits)
        self._stopping = False
        self._kept = threading.Event()  # set once stop() has spooled what was left
        self._thread: threading.Thread | None = None
        self._started = False
        self._start_lock = threading.Lock()
        self._last_replay = 0.0
        self._replay_stalled = False
        self._down = False  # the last batch failed every retry (and nothing wrote since)
        self._spool_pending = self.spool is not None and self.spool.pending()
        self._hurry = 0  # flush() calls waiting on this worker
        self._slice_start = 0.0

    # -- hot path ------------------------------------------------------------------------
    def offer(self, item: Item) -> None:
        """Queue ``item``; drop and count when the queue is full. Never blocks on I/O."""
        q = self.queue
        n = len(q)
        if n >= self.max_queue or self.sync:
            self._offer_slow(item)
            return
        q.append(item)
        # Wake the worker once a batch is full (racing producers may both miss the exact
        # size, hence >=; is_set() keeps it to one wake-up per batch).
        if n + 1 >= self.batch_size and not self._wake.is_set():
            self._wake.set()
        if not self._started:
            self._start()

    def _offer_slow(self, item: Item) -> None:
        if self.sync:
            self._write_inline(item)
            return
        self.count_drop("queue_full")
        warn_limited(
            f"queue_full:{self.name}",
            "vividly_trace: queue of sink %r is full (%d); dropping records",
            self.name,
            self.max_queue,
        )

    def count_drop(self, reason: str, n: int = 1) -> None:
        with self._drop_lock:
            self.dropped[reason] = self.dropped.get(reason, 0) + n

    def _start(self) -> None:
        with self._start_lock:
            if self._started:
                return
            thread = threading.Thread(
                target=self._run, name=f"vividly_trace-{self.name}", daemon=True
            )
            try:
                thread.start()
            except RuntimeError:  # interpreter shutting down: write inline instead
                self.sync = True
                return
            self._thread = thread
            self._started = True

    # -- worker --------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.wait(self.options.flush_interval)
            self._wake.clear()
            self._slice_start = time.perf_counter()
            try:
                self._drain()
                if self._spool_pending and not self._stopping:
                    self._maybe_replay(force=False)
            except BaseException as exc:  # the worker must survive anything a sink raises
                internal_error(
                    f"worker:{self.name}", exc, "vividly_trace worker %r: %r", self.name, exc
                )
            if self._stopping and not self.queue:
                return

    def _drain(self) -> None:
        q = self.queue
        while q:
            with self._cond:
                batch: list[Item] = []
                while q and len(batch) < self.batch_size:
                    batch.append(q.popleft())
                self._inflight = len(batch)
                self._current = batch
            try:
                self._process(batch)
            finally:
                with self._cond:
                    self._done += len(batch)
                    self._inflight = 0
                    self._current = None
                    self._cond.notify_all()
            self._pace()

    def _pace(self) -> None:
        """Release the GIL for a moment once this worker has held it for ``GIL_SLICE``.

        CPython makes a thread that wants the GIL wait up to the switch interval (5 ms)
        while another thread computes, so an application thread whose response arrived
        would wait on the worker's record building: the pause hands it over at once. Not
        while a ``flush()`` waits, nor once the worker is behind (see :meth:`_behind`).
        """
        now = time.perf_counter()
        if now - self._slice_start < GIL_SLICE:
            return
        if not (self._hurry or self._stopping or self.sync or self._behind()):
            time.sleep(0)
            now = time.perf_counter()
        self._slice_start = now

    def _behind(self) -> bool:
        """Over half the queue, or the oldest queued call ended over half a flush interval
        ago: then catching up comes first, so that being polite neither drops records nor
        delays them past the flush interval (what a ``kill -9`` may lose)."""
        q = self.queue
        if len(q) > self._high_water:
            return True
        try:
            ended = q[0]._t1
        except (IndexError, AttributeError):
            return False
        return bool(ended) and time.perf_counter_ns() - ended > self._max_lag_ns

    def _records(self, batch: Sequence[Item]) -> list[PromptExecution]:
        if len(batch) <= PACE_CHUNK or self.sync:
            return self.builder.build_batch(batch, self._build_failed)
        records: list[PromptExecution] = []
        for start in range(0, len(batch), PACE_CHUNK):
            if start:
                self._pace()
            records += self.builder.build_batch(
                batch[start : start + PACE_CHUNK], self._build_failed
            )
        return records

    def _build_failed(self, exc: Exception) -> None:
        self.count_drop("build_error")
        internal_error("build_error", exc, "vividly_trace could not build a record: %r", exc)

    def _process(self, batch: Sequence[Item]) -> None:
        records = self._records(batch)
        if not records:
            return
        if self._write_with_retry(records):
            # Replay once the live queue is (nearly) drained: the application's records
            # first, or a large backlog replayed batch after batch lets the queue overflow.
            if self._spool_pending and len(self.queue) < self.batch_size:
                self._maybe_replay(force=True)
            return
        if self.sync:  # written inline, under the lock already: no worker to race with
            self._keep(records)
            return
        # Claim the batch under the lock: either stop() has kept it already (it gave up
        # waiting), or the worker keeps it and stop() must not take it a second time.
        with self._cond:
            if self._abandoned is batch:
                return
            self._current = None
            self._keeping = True
        try:
            self._keep(records)
        finally:
            with self._cond:
                self._keeping = False
                self._cond.notify_all()

    def _write_with_retry(self, records: Sequence[PromptExecution]) -> bool:
        # While the sink is down (the last batch failed every retry), a batch gets one
        # attempt, then the spool: sleeping through every batch's backoffs would make the
        # worker far slower than the application for as long as the outage lasts, and the
        # bounded queue would overflow and drop what the spool could keep.
        down = self._down and self.spool is not None
        attempts = 1 if down else 1 + max(0, self.options.max_retries)
        delay = self.options.retry_backoff
        for attempt in range(attempts):
            try:
                skipped = self.sink.write_batch(records)
            except RecordsRejected as exc:
                self._down = False  # it answered
                self._reject(records, exc)
                return True
            except BaseException as exc:  # CancelledError & co. must not kill the worker
                if self._caller_owns(exc):
                    raise
                self.failed_batches += 1
                warn_limited(
                    f"write:{self.name}",
                    "vividly_trace sink %r failed a batch of %d (attempt %d/%d): %s",
                    self.name,
                    len(records),
                    attempt + 1,
                    attempts,
                    describe_error(exc),
                )
                if attempt + 1 < attempts and not self._stopping:
                    self.retries += 1
                    time.sleep(min(self.options.max_backoff, delay) * (0.5 + random.random()))
                    delay *= 2
                    continue
                self._down = True
                return False
            self._down = False
            self._account(records, skipped)
            return True
        return False

    def _reject(self, records: Sequence[PromptExecution], exc: RecordsRejected) -> None:
        """A batch the destination refuses for good: count it, never retry or spool it."""
        self.failed_batches += 1
        self.count_drop(exc.reason or "rejected", len(records))
        warn_limited(
            f"rejected:{self.name}",
            "vividly_trace sink %r refused a batch of %d for good (dropped, counted as %r): %s",
            self.name,
            len(records),
            exc.reason,
            describe_error(exc.__cause__ or exc),
        )

    def _account(self, records: Sequence[PromptExecution], skipped: object) -> None:
        not_written = 0
        if isinstance(skipped, Mapping):
            for reason, n in skipped.items():
                if isinstance(n, int) and n > 0:
                    self.count_drop(str(reason), n)
                    not_written += n
        self.written += len(records) - not_written

    def _keep(self, records: Sequence[PromptExecution]) -> None:
        if self.spool is None:
            self.count_drop("sink_failed", len(records))
            return
        try:
            kept = self.spool.append(records)
        except Exception as exc:  # OSError, or a record json cannot encode (ValueError)
            self.count_drop("spool_error", len(records))
            warn_limited(
                f"spool:{self.name}", "vividly_trace spool of %r failed: %r", self.name, exc
            )
            return
        if kept:
            self.spooled += len(records)
            self._spool_pending = True
            # The sink just failed: give it replay_interval before trying the spool again.
            self._last_replay = time.monotonic()
        else:
            self.count_drop("spool_full", len(records))
            warn_limited(f"spool_full:{self.name}", "vividly_trace spool of %r is full", self.name)

    def _maybe_replay(self, force: bool) -> None:
        now = time.monotonic()
        # After a successful write the spool is tried at once, unless the last replay got
        # nothing through (a record the sink keeps refusing): then only every interval.
        if (not force or self._replay_stalled) and (
            now - self._last_replay < self.options.replay_interval
        ):
            return
        self._last_replay = now
        sent = self.replay_spool(max_records=REPLAY_PER_WAKE * self.batch_size)
        self._replay_stalled = sent == 0 and self._spool_pending

    def replay_spool(self, max_records: int | None = None) -> int:
        """Send what this sink's spool holds (about ``max_records`` at most, so that a large
        backlog does not starve live records); returns how many records went out."""
        if self.spool is None:
            return 0
        replayed = 0

        def write(batch: Sequence[PromptExecution]) -> None:
            nonlocal replayed
            try:
                skipped = self.sink.write_batch(batch)
            except RecordsRejected as exc:  # poison: drop it so the rest can replay
                self._reject(batch, exc)
                return
            self._account(batch, skipped)
            # A replayed record was counted as spooled before; count it as written now too.
            self.replayed += len(batch)
            replayed += len(batch)

        corrupt_before = self.spool.corrupt_lines
        try:
            self.spool.replay(write, self.batch_size, max_records)
        except BaseException as exc:
            if self._caller_owns(exc):
                raise
            warn_limited(
                f"replay:{self.name}", "vividly_trace replay to %r failed: %r", self.name, exc
            )
            self._spool_pending = True
        else:
            self._spool_pending = self.spool.pending()
        finally:
            # Count what was unreadable even when a later batch failed.
            corrupt = self.spool.corrupt_lines - corrupt_before
            if corrupt:
                self.count_drop("spool_corrupt", corrupt)
        return replayed

    def _caller_owns(self, exc: BaseException) -> bool:
        """A ``KeyboardInterrupt`` / ``SystemExit`` met while writing inline (sync mode)
        belongs to the caller's thread and goes on; anywhere else it is a failed write."""
        return self.sync and isinstance(exc, (KeyboardInterrupt, SystemExit))

    # -- synchronous mode ----------------------------------------------------------------
    def _write_inline(self, item: Item) -> None:
        with self._cond:
            self._inflight = 1
            try:
                self._process([item])
            except Exception as exc:
                internal_error(
                    f"worker:{self.name}", exc, "vividly_trace sink %r: %r", self.name, exc
                )
            finally:
                self._done += 1
                self._inflight = 0

    # -- lifecycle -----------------------------------------------------------------------
    def flush(self, deadline: float) -> bool:
        """Wait until everything queued now is handled; False at the deadline."""
        with self._cond:
            target = self._done + self._inflight + len(self.queue)
        if target == self._done:
            return True
        if not self._started and not self.sync:
            self._start()
        self._wake.set()
        with self._cond:
            self._hurry += 1
            try:
                while self._done < target:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._cond.wait(min(left, 0.1))
                    self._wake.set()
            finally:
                self._hurry -= 1
        return True

    def begin_stop(self) -> None:
        """Ask the worker to drain what it holds and exit (see :meth:`stop`)."""
        self._stopping = True
        self._wake.set()

    def stop(self, deadline: float) -> bool:
        """Drain, then stop the worker; spool what a hung sink still holds at the deadline."""
        self.begin_stop()
        thread = self._thread
        done = True
        if thread is not None and thread.is_alive():
            thread.join(max(0.0, deadline - time.monotonic()))
            done = not thread.is_alive()
        left: list[Item] = []
        if not done:
            # The worker is still inside the sink (hung, or sleeping between retries) with a
            # batch: keep that batch too, or it is lost when the process exits. Should the
            # sink answer after all, the record is written and also replayed later, which
            # sinks absorb (writes are idempotent on the execution id).
            with self._cond:
                # A batch the worker is spooling right now is its own: wait for the (local,
                # fsync'd) append rather than spool and count that batch twice.
                self._cond.wait_for(lambda: not self._keeping, KEEP_WAIT)
                current = self._current
                self._abandoned = current
            if current:
                left.extend(current)
        taken = 0
        while True:
            try:
                left.append(self.queue.popleft())
            except IndexError:
                break
            taken += 1
        if taken:  # handled here, not by the worker: count them as done (stats, flush)
            with self._cond:
                self._done += taken
                self._cond.notify_all()
        if left:
            done = False
            records = self._records(left)
            if records and self.spool is not None:
                self._keep(records)
            elif records:
                self.count_drop("shutdown", len(records))
        self._kept.set()
        if done:
            try:
                self.sink.close()
            except Exception as exc:
                logger.warning("vividly_trace sink %r failed to close: %r", self.name, exc)
        return done

    def wait_kept(self, timeout: float) -> bool:
        """Wait until :meth:`stop` has spooled (or counted) what it took over."""
        return self._kept.wait(max(0.0, timeout))

    def after_fork(self) -> None:
        """In a forked child: forget the parent's queue and threads (the parent writes them),
        and let the sink renew what a parent thread may have held at the fork (its locks)."""
        self._drop_lock = threading.Lock()
        self._reset_runtime()
        hook = getattr(self.sink, "after_fork", None)
        if callable(hook):
            try:
                hook()
            except Exception as exc:
                logger.warning("vividly_trace sink %r after fork: %r", self.name, exc)

    def stats(self) -> dict[str, Any]:
        queued = len(self.queue)
        out = {
            "enqueued": self._done + self._inflight + queued,
            "queued": queued,
            "written": self.written,
            "failed_batches": self.failed_batches,
            "retries": self.retries,
            "spooled": self.spooled,
            "replayed": self.replayed,
            "spool_pending": bool(self._spool_pending),
            "dropped": dict(self.dropped),
        }
        counters = getattr(self.sink, "counters", None)
        if callable(counters):
            try:
                for key, value in dict(counters()).items():
                    out.setdefault(str(key), value)  # never hides the worker's own counts
            except Exception as exc:
                internal_error(
                    "stats", exc, "vividly_trace: %s.counters() failed: %r", self.name, exc
                )
        return out
