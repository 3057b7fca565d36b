"""Dispatch: per-sink bounded queues and worker threads, retries, spool, flush, exit, fork.

Everything here runs real worker threads (and real processes for exit and fork); the only
stand-ins are small fake sinks (a sink is just ``name``, ``write_batch`` and ``close``).
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

import vividly_trace
from tests.factories import make_record
from vividly_trace import PromptExecution, RecordsRejected, log_prompt_execution, logged_prompt
from vividly_trace._config import get_pipeline
from vividly_trace.sinks import JSONLinesSink, MemorySink

ROOT = Path(__file__).resolve().parents[1]


# -- fake sinks ---------------------------------------------------------------------------
class RecordingSink:
    """Keeps every batch it is given, with the thread that wrote it."""

    spool_key = "test-destination"  # all these fakes stand for one destination

    def __init__(self, name: str = "rec") -> None:
        self.name = name
        self.batches: list[list[PromptExecution]] = []
        self.threads: list[int] = []
        self.closed = False
        self._lock = threading.Lock()

    def write_batch(self, records: Sequence[PromptExecution]) -> None:
        with self._lock:
            self.batches.append(list(records))
            self.threads.append(threading.get_ident())

    @property
    def records(self) -> list[PromptExecution]:
        with self._lock:
            return [r for batch in self.batches for r in batch]

    def close(self) -> None:
        self.closed = True


class BlockingSink(RecordingSink):
    """Blocks inside ``write_batch`` until :attr:`gate` is set (a hung endpoint)."""

    def __init__(self, name: str = "hung") -> None:
        super().__init__(name)
        self.gate = threading.Event()
        self.entered = threading.Event()

    def write_batch(self, records: Sequence[PromptExecution]) -> None:
        self.entered.set()
        self.gate.wait(30)
        super().write_batch(records)


class FlakySink(RecordingSink):
    """Raises ``ConnectionError`` while :attr:`broken` is true; counts every attempt."""

    def __init__(self, name: str = "flaky", exc: BaseException | None = None) -> None:
        super().__init__(name)
        self.broken = True
        self.attempts: list[float] = []
        self.exc = exc

    def write_batch(self, records: Sequence[PromptExecution]) -> None:
        self.attempts.append(time.monotonic())
        if self.broken:
            raise self.exc if self.exc is not None else ConnectionError("sink is down")
        super().write_batch(records)


# -- helpers ------------------------------------------------------------------------------
def log_n(n: int, key: str = "t", **kw: Any) -> list[str]:
    ids = []
    for i in range(n):
        eid = log_prompt_execution(key, True, 1.0 + i, 10, 20, **kw)
        assert eid is not None
        ids.append(eid)
    return ids


def wait_until(cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def spool_lines(spool_dir: Path, sink_name: str) -> list[str]:
    """The lines of a sink's spool files, read under the spool's own lock."""
    lines: list[str] = []
    for path in sorted(spool_dir.glob(f"{sink_name}-*/*.jsonl")):
        try:
            text = locked_edit(path, None)
        except FileNotFoundError:  # replayed and removed meanwhile
            continue
        lines.extend(line for line in text.splitlines() if line.strip())
    return lines


def locked_edit(path: Path, change: Callable[[str], str] | None) -> str:
    """Read (and optionally rewrite) a spool file under ``flock``, as the spool does, so a
    concurrent replay by the worker never interleaves with the test."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with os.fdopen(os.dup(fd), "r+", encoding="utf-8") as fh:
            text = fh.read()
            if change is not None:
                fh.seek(0)
                fh.truncate()
                fh.write(change(text))
                fh.flush()
        return text
    finally:
        os.close(fd)


def accounted(sink_stats: dict[str, Any]) -> int:
    """Records written, spooled or counted as dropped by one sink worker."""
    return (
        sink_stats["written"]
        - sink_stats["replayed"]
        + sink_stats["spooled"]
        + sum(sink_stats["dropped"].values())
    )


@pytest.fixture(name="spool_dir")
def _spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


# -- batching -----------------------------------------------------------------------------
class TestBatching:
    def test_full_batches_not_one_write_per_record(self) -> None:
        """1000 records with batch_size 100 arrive in about 10 batches, none above 100."""
        sink = RecordingSink()
        vividly_trace.configure(sinks=[sink], batch_size=100, flush_interval=60)
        log_n(1000)
        assert vividly_trace.flush(5)
        sizes = [len(b) for b in sink.batches]
        assert sum(sizes) == 1000
        assert max(sizes) <= 100
        assert len(sizes) <= 20, sizes

    def test_paced_producer_still_gets_batches(self) -> None:
        """A producer slower than the worker does not turn batching into per-record writes."""
        sink = RecordingSink()
        vividly_trace.configure(sinks=[sink], batch_size=50, flush_interval=60)
        for _ in range(10):
            log_n(50)
            time.sleep(0.02)
        assert vividly_trace.flush(5)
        sizes = [len(b) for b in sink.batches]
        assert sum(sizes) == 500
        assert len(sizes) <= 30, sizes

    def test_a_full_batch_wakes_the_worker_before_the_interval(self) -> None:
        """Reaching batch_size wakes the worker at once, without waiting for the timer."""
        sink = RecordingSink()
        vividly_trace.configure(sinks=[sink], batch_size=20, flush_interval=60)
        log_n(20)
        assert wait_until(lambda: len(sink.records) == 20, timeout=5)

    def test_the_timer_writes_a_partial_batch(self) -> None:
        """Fewer records than a batch wait for the interval, then go out as one batch."""
        sink = RecordingSink()
        vividly_trace.configure(sinks=[sink], batch_size=1000, flush_interval=1.0)
        started = time.monotonic()
        log_n(10)
        time.sleep(0.1)
        if time.monotonic() - started < 0.8:  # only meaningful while the timer cannot have run
            assert sink.batches == [], "the worker woke per record"
        assert wait_until(lambda: len(sink.records) == 10, timeout=5)
        assert [len(b) for b in sink.batches] == [10]

    def test_records_are_written_off_the_callers_thread(self) -> None:
        """In background mode the sink is called from its worker thread, not the caller's."""
        sink = RecordingSink()
        vividly_trace.configure(sinks=[sink], flush_interval=0.05)
        log_n(3)
        assert vividly_trace.flush(5)
        assert sink.threads
        assert threading.get_ident() not in sink.threads


class TestPacing:
    """The worker hands the GIL to application threads between chunks of records."""

    @pytest.fixture(name="sleeps")
    def _sleeps(self, monkeypatch: pytest.MonkeyPatch) -> list[float]:
        """``time.sleep`` calls made in the dispatch module (real sleeps, counted); every
        look at the clock finds the slice used up."""
        from vividly_trace import _dispatch

        calls: list[float] = []
        real = time.sleep

        class Clock:
            def __getattr__(self, name: str) -> Any:
                return getattr(time, name)

            @staticmethod
            def sleep(seconds: float) -> None:
                calls.append(seconds)
                real(seconds)

        monkeypatch.setattr(_dispatch, "time", Clock())
        monkeypatch.setattr(_dispatch, "GIL_SLICE", 0.0)  # pace at every look
        return calls

    def test_paces_between_chunks_and_keeps_order(self, sleeps: list[float]) -> None:
        """A batch of 64 is built in chunks of 16 with a GIL release between them; the
        records still arrive whole and in order."""
        sink = RecordingSink()
        vividly_trace.configure(sinks=[sink], batch_size=64, flush_interval=60)
        ids = log_n(64)
        assert wait_until(lambda: len(sink.records) == 64)
        assert [r.execution_id for r in sink.records] == ids
        assert sleeps.count(0) >= 3  # between the 4 chunks (and after the batch)

    def test_no_pause_while_a_flush_waits(self, sleeps: list[float]) -> None:
        """flush() gets the worker's full attention: no pauses while it waits."""
        sink = RecordingSink()
        vividly_trace.configure(sinks=[sink], batch_size=1000, flush_interval=60)
        log_n(200)
        assert vividly_trace.flush(5)
        assert len(sink.records) == 200
        assert sleeps == []

    def test_no_pause_once_the_queue_is_half_full(self, sleeps: list[float]) -> None:
        """Above half the queue, catching up comes first; at half or below, it pauses."""
        from vividly_trace import _dispatch

        worker = _dispatch.SinkWorker(
            RecordingSink(), _dispatch.DispatchOptions(queue_size=10), lambda b, e: [], False
        )
        for queued in (6, 5, 0):
            worker.queue.extend([None] * queued)
            worker._pace()
            worker.queue.clear()
        assert sleeps == [0, 0]

    def test_no_pause_once_the_oldest_record_waited_half_the_interval(
        self, sleeps: list[float]
    ) -> None:
        """A queued call that ended over half a flush interval ago ends the politeness."""
        from vividly_trace import _dispatch
        from vividly_trace._call import ReadyRecord

        worker = _dispatch.SinkWorker(
            RecordingSink(),
            _dispatch.DispatchOptions(queue_size=100, flush_interval=1.0),
            lambda b, e: [],
            False,
        )
        record = make_record("k")
        for age_s in (0.6, 0.4):
            item = ReadyRecord(record)
            item._t1 -= int(age_s * 1e9)
            worker.queue.append(item)
            worker._pace()
            worker.queue.clear()
        assert sleeps == [0]  # only for the call that waited 0.4 s


# -- full queue ---------------------------------------------------------------------------
class TestFullQueue:
    def test_drops_and_counts_never_blocks(self) -> None:
        """With the sink hung, the caller returns at once and the overflow is counted."""
        sink = BlockingSink()
        vividly_trace.configure(sinks=[sink], queue_size=10, batch_size=5, flush_interval=60)
        try:
            log_n(5)
            assert sink.entered.wait(5)  # the worker holds one batch inside the hung sink
            started = time.monotonic()
            log_n(200)
            elapsed = time.monotonic() - started
            assert elapsed < 2.0, f"the caller blocked for {elapsed:.2f}s"
            s = vividly_trace.stats()
            sink_stats = s["sinks"]["hung"]
            assert sink_stats["dropped"]["queue_full"] == 200 - 10
            assert s["dropped"]["queue_full"] == 200 - 10
            assert sink_stats["enqueued"] == 5 + 10
            assert sink_stats["queued"] == 10
        finally:
            sink.gate.set()
        assert vividly_trace.flush(5)
        assert len(sink.records) == 15
        assert vividly_trace.stats()["sinks"]["hung"]["written"] == 15

    def test_drops_are_counted_per_sink(self) -> None:
        """Only the hung sink's queue overflows; the healthy sink gets every record."""
        hung = BlockingSink()
        healthy = RecordingSink("healthy")
        vividly_trace.configure(
            sinks=[hung, healthy], queue_size=20, batch_size=5, flush_interval=0.01
        )
        try:
            for _ in range(10):
                log_n(5)
                time.sleep(0.02)  # let the healthy worker keep up
            s = vividly_trace.stats()
            assert s["sinks"]["hung"]["dropped"].get("queue_full", 0) > 0
            assert "queue_full" not in s["sinks"]["healthy"]["dropped"]
            assert wait_until(lambda: len(healthy.records) == 50)
        finally:
            hung.gate.set()


# -- retries, spool, replay ---------------------------------------------------------------
class TestRetryAndSpool:
    def test_failed_batch_is_retried_with_backoff_then_spooled(self, spool_dir: Path) -> None:
        """A failing sink is retried (growing delays) and then its batch goes to the spool."""
        sink = FlakySink()
        vividly_trace.configure(
            sinks=[sink], max_retries=2, retry_backoff=0.05, flush_interval=60, spool_dir=spool_dir
        )
        ids = log_n(10)
        assert vividly_trace.flush(5)
        # Three attempts, then the batch is spooled (a replay attempt may follow at once).
        assert len(sink.attempts) >= 3
        gaps = [b - a for a, b in zip(sink.attempts[:2], sink.attempts[1:3], strict=True)]
        assert gaps[0] >= 0.05 * 0.5 - 0.005
        assert gaps[1] >= 0.10 * 0.5 - 0.005
        s = vividly_trace.stats()["sinks"]["flaky"]
        assert s["failed_batches"] == 3
        assert s["retries"] == 2
        assert s["spooled"] == 10
        assert s["written"] == 0
        assert s["spool_pending"] is True
        lines = spool_lines(spool_dir, "flaky")
        assert sorted(json.loads(line)["execution_id"] for line in lines) == sorted(ids)
        assert sink.records == []

    def test_spool_replays_once_the_sink_works_again(self, spool_dir: Path) -> None:
        """After recovery the spooled records are replayed: each exactly once, none lost."""
        sink = FlakySink()
        vividly_trace.configure(
            sinks=[sink], max_retries=1, retry_backoff=0.01, flush_interval=60, spool_dir=spool_dir
        )
        first = log_n(25)
        assert vividly_trace.flush(5)
        assert len(spool_lines(spool_dir, "flaky")) == 25
        sink.broken = False
        second = log_n(5)  # the next successful write triggers the replay
        assert vividly_trace.flush(5)
        assert wait_until(lambda: len(sink.records) == 30)
        got = [r.execution_id for r in sink.records]
        assert sorted(got) == sorted(first + second)
        assert len(set(got)) == 30
        assert wait_until(lambda: not vividly_trace.stats()["sinks"]["flaky"]["spool_pending"])
        s = vividly_trace.stats()["sinks"]["flaky"]
        assert s["replayed"] == 25
        assert s["written"] == 30
        assert s["spool_pending"] is False
        assert spool_lines(spool_dir, "flaky") == []
        # A replayed record comes back equal to what was spooled.
        back = {r.execution_id: r for r in sink.records}[first[0]]
        assert back.input_token_count == 10
        assert back.total_token_count == 30

    def test_rejected_batch_is_dropped_not_retried(self, spool_dir: Path) -> None:
        """RecordsRejected: no retry, no spool; counted under its reason."""
        sink = FlakySink(exc=RecordsRejected("invalid", reason="invalid_batch"))
        vividly_trace.configure(
            sinks=[sink], max_retries=3, retry_backoff=0.01, flush_interval=60, spool_dir=spool_dir
        )
        log_n(7)
        assert vividly_trace.flush(5)
        s = vividly_trace.stats()["sinks"]["flaky"]
        assert len(sink.attempts) == 1
        assert (s["retries"], s["spooled"], s["written"]) == (0, 0, 0)
        assert s["dropped"] == {"invalid_batch": 7}
        assert spool_lines(spool_dir, "flaky") == []

    def test_rejected_batch_in_the_spool_does_not_block_the_rest(self, spool_dir: Path) -> None:
        """A spooled batch that is later refused for good is dropped; the rest replays."""

        class PickySink(FlakySink):
            def write_batch(self, records: Sequence[PromptExecution]) -> None:
                if not self.broken and any(r.template_key == "poison" for r in records):
                    self.attempts.append(time.monotonic())
                    raise RecordsRejected("poison", reason="poison")
                super().write_batch(records)

        sink = PickySink()
        vividly_trace.configure(
            sinks=[sink], max_retries=0, batch_size=3, flush_interval=60, spool_dir=spool_dir
        )
        good = log_n(3)
        assert vividly_trace.flush(5)
        log_n(3, key="poison")
        assert vividly_trace.flush(5)
        assert len(spool_lines(spool_dir, "flaky")) == 6
        sink.broken = False
        later = log_n(1)
        assert vividly_trace.flush(5)
        assert wait_until(lambda: not vividly_trace.stats()["sinks"]["flaky"]["spool_pending"])
        assert sorted(r.execution_id for r in sink.records) == sorted(good + later)
        assert vividly_trace.stats()["sinks"]["flaky"]["dropped"] == {"poison": 3}

    def test_spool_replays_on_the_timer_without_new_traffic(self, spool_dir: Path) -> None:
        """With no new records, the worker retries the spool on its replay timer."""
        sink = FlakySink()
        vividly_trace.configure(
            sinks=[sink], max_retries=0, flush_interval=0.05, spool_dir=spool_dir
        )
        ids = log_n(7)
        assert vividly_trace.flush(5)
        assert wait_until(lambda: len(spool_lines(spool_dir, "flaky")) == 7)
        sink.broken = False
        worker = get_pipeline().workers[0]  # type: ignore[union-attr]
        assert wait_until(
            lambda: len(sink.records) == 7, timeout=worker.options.replay_interval + 5
        )
        assert sorted(r.execution_id for r in sink.records) == sorted(ids)
        assert wait_until(lambda: vividly_trace.stats()["sinks"]["flaky"]["replayed"] == 7)

    def test_spooled_records_survive_a_new_process(self, spool_dir: Path) -> None:
        """A spool left by an earlier configuration is replayed by a later one."""
        broken = FlakySink("db")
        vividly_trace.configure(
            sinks=[broken], max_retries=0, flush_interval=60, spool_dir=spool_dir
        )
        ids = log_n(4)
        assert vividly_trace.flush(5)
        vividly_trace.shutdown()
        working = RecordingSink("db")
        vividly_trace.configure(sinks=[working], flush_interval=60, spool_dir=spool_dir)
        more = log_n(1)
        assert vividly_trace.flush(5)
        assert wait_until(lambda: len(working.records) == 5)
        assert sorted(r.execution_id for r in working.records) == sorted(ids + more)

    def test_torn_last_line_is_skipped_and_counted(self, spool_dir: Path) -> None:
        """A torn write at the end of a spool file is counted as corrupt; the rest replays."""
        sink = FlakySink()
        vividly_trace.configure(sinks=[sink], max_retries=0, flush_interval=60, spool_dir=spool_dir)
        ids = log_n(6)
        assert vividly_trace.flush(5)
        [path] = list(spool_dir.glob("flaky-*/*.jsonl"))
        # A write cut short by a crash: half a line, no newline.
        locked_edit(path, lambda text: text + text.splitlines()[0][:100])
        sink.broken = False
        more = log_n(1)
        assert vividly_trace.flush(5)
        assert wait_until(lambda: len(sink.records) == 7)
        assert sorted(r.execution_id for r in sink.records) == sorted(ids + more)
        # (A replay counts its corrupt lines when it has gone through the whole spool.)
        assert wait_until(lambda: not vividly_trace.stats()["sinks"]["flaky"]["spool_pending"])
        s = vividly_trace.stats()
        assert s["sinks"]["flaky"]["dropped"]["spool_corrupt"] == 1
        assert s["sinks"]["flaky"]["replayed"] == 6

    @pytest.mark.parametrize(
        "bad_line",
        [
            "[1, 2, 3]",
            "42",
            '{"execution_id": "x"}',
            '{"execution_id":"x","template_key":"t","success":true,"response_time_ms":1,'
            '"started_at":"2025-01-01T00:00:00Z","cost_usd":"not money"}',
            '{"execution_id":"x","template_key":"t","success":true,"response_time_ms":1,'
            '"started_at":"yesterday"}',
        ],
        ids=["list", "number", "missing-fields", "bad-cost", "bad-timestamp"],
    )
    def test_a_line_that_is_not_a_record_is_counted_not_fatal(
        self, spool_dir: Path, bad_line: str
    ) -> None:
        """Any undecodable spool line is counted as corrupt and never blocks the others."""
        sink = FlakySink()
        vividly_trace.configure(sinks=[sink], max_retries=0, flush_interval=60, spool_dir=spool_dir)
        ids = log_n(3)
        assert vividly_trace.flush(5)
        [path] = list(spool_dir.glob("flaky-*/*.jsonl"))

        def insert(text: str) -> str:
            lines = text.splitlines()
            lines.insert(1, bad_line)
            return "\n".join(lines) + "\n"

        locked_edit(path, insert)
        sink.broken = False
        more = log_n(1)
        assert vividly_trace.flush(5)
        assert wait_until(lambda: len(sink.records) == 4)
        assert sorted(r.execution_id for r in sink.records) == sorted(ids + more)
        assert wait_until(lambda: not vividly_trace.stats()["sinks"]["flaky"]["spool_pending"])
        assert vividly_trace.stats()["sinks"]["flaky"]["dropped"]["spool_corrupt"] == 1
        assert spool_lines(spool_dir, "flaky") == []

    def test_spool_size_cap_counts_spool_full(self, spool_dir: Path) -> None:
        """Beyond spool_max_bytes failed records are dropped and counted as spool_full."""
        sink = FlakySink()
        vividly_trace.configure(
            sinks=[sink],
            max_retries=0,
            flush_interval=60,
            spool_dir=spool_dir,
            spool_max_bytes=100,
        )
        log_n(5)
        assert vividly_trace.flush(5)
        s = vividly_trace.stats()["sinks"]["flaky"]
        assert s["dropped"]["spool_full"] == 5
        assert s["spooled"] == 0
        assert spool_lines(spool_dir, "flaky") == []
        assert accounted(s) == s["enqueued"] == 5

    def test_no_spool_counts_sink_failed(self) -> None:
        """With spooling off, a failed batch is counted as dropped (sink_failed)."""
        sink = FlakySink()
        vividly_trace.configure(sinks=[sink], max_retries=0, flush_interval=60, spool_dir=False)
        log_n(4)
        assert vividly_trace.flush(5)
        s = vividly_trace.stats()["sinks"]["flaky"]
        assert s["dropped"] == {"sink_failed": 4}
        assert accounted(s) == 4

    def test_unencodable_record_is_counted_when_the_spool_cannot_take_it(
        self, spool_dir: Path, tmp_path: Path
    ) -> None:
        """A batch neither the sink nor the spool can encode is counted, never silently lost."""
        sink = JSONLinesSink(tmp_path / "out.jsonl", name="jsonl")
        vividly_trace.configure(sinks=[sink], max_retries=0, flush_interval=60, spool_dir=spool_dir)
        with logged_prompt("huge") as call:
            call.record_response({"input_tokens": 10**5000, "output_tokens": 1})
        assert vividly_trace.flush(5)
        s = vividly_trace.stats()["sinks"]["jsonl"]
        assert s["enqueued"] == 1
        assert accounted(s) == 1, s

    @pytest.mark.parametrize(
        "exc", [asyncio.CancelledError(), SystemExit(3)], ids=["CancelledError", "SystemExit"]
    )
    def test_a_sink_raising_a_base_exception_does_not_kill_its_worker(
        self, spool_dir: Path, exc: BaseException
    ) -> None:
        """A BaseException from a sink is a failed batch; the worker lives on."""
        sink = FlakySink(exc=exc)
        vividly_trace.configure(sinks=[sink], max_retries=0, flush_interval=60, spool_dir=spool_dir)
        first = log_n(2)
        assert vividly_trace.flush(5)
        sink.broken = False
        second = log_n(2)
        assert vividly_trace.flush(5)
        assert wait_until(lambda: len(sink.records) == 4)
        assert sorted(r.execution_id for r in sink.records) == sorted(first + second)


# -- isolation between sinks --------------------------------------------------------------
class TestIsolation:
    def test_a_hung_sink_does_not_delay_the_others(self) -> None:
        """While one sink hangs, another receives every record within a deadline."""
        hung = BlockingSink()
        healthy = RecordingSink("healthy")
        vividly_trace.configure(sinks=[hung, healthy], batch_size=50, flush_interval=0.05)
        try:
            ids = log_n(500)
            assert hung.entered.wait(5)
            assert wait_until(lambda: len(healthy.records) == 500, timeout=3)
            assert sorted(r.execution_id for r in healthy.records) == sorted(ids)
            assert hung.records == []
        finally:
            hung.gate.set()
        assert vividly_trace.flush(5)
        assert len(hung.records) == 500

    def test_a_failing_sink_does_not_lose_the_others_records(self, spool_dir: Path) -> None:
        """A sink that raises is spooled; the healthy sink's records are untouched."""
        bad = FlakySink("bad")
        good = RecordingSink("good")
        vividly_trace.configure(
            sinks=[bad, good], max_retries=1, retry_backoff=0.01, spool_dir=spool_dir
        )
        ids = log_n(100)
        assert vividly_trace.flush(5)
        assert sorted(r.execution_id for r in good.records) == sorted(ids)
        assert len(spool_lines(spool_dir, "bad")) == 100
        assert spool_lines(spool_dir, "good") == []


# -- flush and shutdown -------------------------------------------------------------------
class TestFlushAndShutdown:
    def test_flush_true_when_drained(self) -> None:
        """flush() returns True once everything queued is written."""
        sink = RecordingSink()
        vividly_trace.configure(sinks=[sink], flush_interval=60)
        log_n(123)
        assert vividly_trace.flush(5) is True
        assert len(sink.records) == 123
        assert vividly_trace.stats()["sinks"]["rec"]["queued"] == 0

    def test_flush_with_nothing_queued_is_immediate(self) -> None:
        """flush() on an idle pipeline returns True without waiting."""
        vividly_trace.configure(sinks=[RecordingSink()], flush_interval=60)
        started = time.monotonic()
        assert vividly_trace.flush(5) is True
        assert time.monotonic() - started < 0.5

    def test_flush_false_when_a_sink_hangs(self) -> None:
        """flush(timeout) gives up at the deadline and says so."""
        sink = BlockingSink()
        vividly_trace.configure(sinks=[sink], flush_interval=60)
        try:
            log_n(3)
            started = time.monotonic()
            assert vividly_trace.flush(0.3) is False
            elapsed = time.monotonic() - started
            assert 0.25 <= elapsed < 2.0
        finally:
            sink.gate.set()
        assert vividly_trace.flush(5) is True

    def test_shutdown_spools_what_a_hung_sink_holds(self, spool_dir: Path) -> None:
        """shutdown() with a hung sink: every record is written, spooled or counted."""
        hung = BlockingSink()
        healthy = RecordingSink("healthy")
        vividly_trace.configure(
            sinks=[hung, healthy], batch_size=10, flush_interval=60, spool_dir=spool_dir
        )
        pipeline = get_pipeline()
        assert pipeline is not None
        try:
            ids = log_n(100)
            assert hung.entered.wait(5)
            started = time.monotonic()
            assert vividly_trace.shutdown(timeout=0.5) is False
            assert time.monotonic() - started < 3
            s = pipeline.stats()["sinks"]
            assert s["hung"]["enqueued"] == 100
            assert accounted(s["hung"]) == 100, s["hung"]
            spooled = [json.loads(line)["execution_id"] for line in spool_lines(spool_dir, "hung")]
            assert len(spooled) == s["hung"]["spooled"]
            assert set(spooled) | {r.execution_id for r in hung.records} == set(ids)
            assert sorted(r.execution_id for r in healthy.records) == sorted(ids)
            assert healthy.closed
        finally:
            hung.gate.set()

    def test_shutdown_while_the_worker_spools_keeps_its_batch_once(self, spool_dir: Path) -> None:
        """shutdown() gives up on a worker that is spooling its failed batch (a slow disk):
        that batch is spooled once, by the worker, not a second time by shutdown()."""
        sink = FlakySink()
        vividly_trace.configure(
            sinks=[sink], batch_size=10, flush_interval=0.01, max_retries=0, spool_dir=spool_dir
        )
        pipeline = get_pipeline()
        assert pipeline is not None
        worker = pipeline.workers[0]
        assert worker.spool is not None
        append = worker.spool.append
        entered, gate = threading.Event(), threading.Event()

        def slow_append(records: Sequence[PromptExecution]) -> bool:
            if threading.current_thread() is worker._thread:
                entered.set()
                gate.wait(10)
            return append(records)

        worker.spool.append = slow_append  # type: ignore[method-assign]
        try:
            log_n(10)
            assert entered.wait(5)
            releaser = threading.Timer(0.5, gate.set)
            releaser.start()
            vividly_trace.shutdown(timeout=0.1)
            releaser.join()
        finally:
            gate.set()
        assert worker._thread is not None
        worker._thread.join(5)
        s = pipeline.stats()["sinks"]["flaky"]
        assert s["spooled"] == 10, s
        assert accounted(s) == 10, s
        assert len(spool_lines(spool_dir, "flaky")) == 10

    def test_shutdown_closes_sinks_and_unconfigures(self) -> None:
        """After shutdown() the sinks are closed and new calls are not recorded."""
        sink = RecordingSink()
        vividly_trace.configure(sinks=[sink], flush_interval=60)
        log_n(5)
        assert vividly_trace.shutdown() is True
        assert sink.closed
        assert len(sink.records) == 5
        assert log_prompt_execution("t", True, 1.0) is None
        assert vividly_trace.stats()["mode"] == "disabled"


# -- sync mode and stats ------------------------------------------------------------------
class TestSyncModeAndStats:
    def test_sync_mode_writes_inline(self) -> None:
        """In sync mode a record is in the sink when the call returns, written by the caller."""
        sink = RecordingSink()
        vividly_trace.configure(sinks=[sink], sync=True)

        @logged_prompt("inline")
        def f() -> int:
            return 1

        assert f() == 1
        assert len(sink.records) == 1
        assert sink.threads == [threading.get_ident()]
        eid = log_prompt_execution("inline", True, 2.0)
        assert sink.records[-1].execution_id == eid
        assert vividly_trace.stats()["mode"] == "sync"

    def test_sync_mode_spools_a_failing_sink(self, spool_dir: Path) -> None:
        """Sync mode shares the retry/spool policy and never raises into the caller."""
        sink = FlakySink()
        vividly_trace.configure(sinks=[sink], sync=True, max_retries=0, spool_dir=spool_dir)
        assert log_prompt_execution("t", True, 1.0) is not None
        assert len(spool_lines(spool_dir, "flaky")) == 1

    def test_stats_shape_and_counters(self, spool_dir: Path) -> None:
        """stats() reports totals and per-sink counters with the documented keys."""
        good = RecordingSink("good")
        bad = FlakySink("bad")
        vividly_trace.configure(
            sinks=[good, bad],
            max_retries=1,
            retry_backoff=0.01,
            flush_interval=60,
            spool_dir=spool_dir,
        )
        log_n(10)
        assert vividly_trace.flush(5)
        s = vividly_trace.stats()
        assert set(s) >= {"mode", "sampled_out", "enqueued", "written", "dropped", "sinks"}
        assert s["mode"] == "background"
        assert set(s["sinks"]) == {"good", "bad"}
        keys = {
            "enqueued",
            "queued",
            "written",
            "failed_batches",
            "retries",
            "spooled",
            "replayed",
            "spool_pending",
            "dropped",
        }
        for per_sink in s["sinks"].values():
            assert set(per_sink) >= keys
        assert s["sinks"]["good"] == {
            **s["sinks"]["good"],
            "enqueued": 10,
            "queued": 0,
            "written": 10,
            "failed_batches": 0,
            "retries": 0,
            "spooled": 0,
            "replayed": 0,
            "dropped": {},
        }
        assert s["sinks"]["bad"]["enqueued"] == 10
        assert s["sinks"]["bad"]["written"] == 0
        assert s["sinks"]["bad"]["failed_batches"] == 2
        assert s["sinks"]["bad"]["retries"] == 1
        assert s["sinks"]["bad"]["spooled"] == 10
        assert s["enqueued"] == 20
        assert s["written"] == 10
        json.dumps(s)  # plain data

        bad.broken = False
        log_n(1)
        assert vividly_trace.flush(5)
        assert wait_until(lambda: vividly_trace.stats()["sinks"]["bad"]["replayed"] == 10)
        assert wait_until(lambda: not vividly_trace.stats()["sinks"]["bad"]["spool_pending"])
        s = vividly_trace.stats()["sinks"]["bad"]
        assert s["written"] == 11
        assert s["spool_pending"] is False


# -- interpreter exit and fork ------------------------------------------------------------
def _run_python(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "VIVIDLY_TRACE_SPOOL_DIR": str(tmp_path / "spool"), **env}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env=full_env,
        cwd=str(tmp_path),
    )


class TestExitAndFork:
    def test_records_are_flushed_at_interpreter_exit(self, tmp_path: Path) -> None:
        """A process that exits without flush() still writes every queued record."""
        out = tmp_path / "exit.jsonl"
        proc = _run_python(
            f"""
            import vividly_trace
            from vividly_trace.sinks import JSONLinesSink
            vividly_trace.configure(sinks=[JSONLinesSink({str(out)!r})], flush_interval=60)
            for i in range(100):
                assert vividly_trace.log_prompt_execution("exit", True, float(i)) is not None
            """,
            tmp_path,
        )
        assert proc.returncode == 0, proc.stderr
        lines = out.read_text("utf-8").splitlines()
        assert len(lines) == 100
        assert len({json.loads(line)["execution_id"] for line in lines}) == 100

    def test_exit_with_a_hung_sink_is_bounded_and_spools(self, tmp_path: Path) -> None:
        """At exit a hung sink delays the process by about shutdown_timeout, then spools."""
        started = time.monotonic()
        proc = _run_python(
            """
            import threading, vividly_trace
            class Hung:
                name = "hung"
                def write_batch(self, records):
                    threading.Event().wait(60)
                def close(self):
                    pass
            vividly_trace.configure(sinks=[Hung()], flush_interval=60, shutdown_timeout=0.5)
            for i in range(50):
                vividly_trace.log_prompt_execution("exit", True, float(i))
            """,
            tmp_path,
        )
        assert proc.returncode == 0, proc.stderr
        assert time.monotonic() - started < 20  # not the sink's 60 s
        assert len(spool_lines(tmp_path / "spool", "hung")) == 50

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
    def test_fork_child_has_its_own_worker_and_not_the_parents_queue(self, tmp_path: Path) -> None:
        """Records queued before fork() are written once (by the parent); the child's by a
        fresh worker in the child."""
        out = tmp_path / "fork.jsonl"
        vividly_trace.configure(sinks=[JSONLinesSink(out)], flush_interval=60, batch_size=10_000)
        parent_ids = log_n(50, key="parent")
        pid = os.fork()
        if pid == 0:  # child: never return into pytest
            code = 1
            try:
                child_ids = log_n(30, key="child")
                ok = vividly_trace.flush(10)
                (tmp_path / "child_ids.json").write_text(json.dumps(child_ids))
                code = 0 if ok else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        child_lines = out.read_text("utf-8").splitlines() if out.exists() else []
        assert {json.loads(line)["template_key"] for line in child_lines} <= {"child"}
        assert len(child_lines) == 30
        assert vividly_trace.flush(5)
        lines = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
        by_key: dict[str, list[str]] = {}
        for rec in lines:
            by_key.setdefault(rec["template_key"], []).append(rec["execution_id"])
        child_ids = json.loads((tmp_path / "child_ids.json").read_text())
        assert sorted(by_key["parent"]) == sorted(parent_ids)
        assert sorted(by_key["child"]) == sorted(child_ids)
        assert len(set(by_key["parent"]) | set(by_key["child"])) == 80

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
    def test_fork_while_the_worker_is_busy_does_not_deadlock_the_child(
        self, tmp_path: Path
    ) -> None:
        """Forking while the parent's worker is mid-write leaves the child able to log."""
        out = tmp_path / "busy.jsonl"
        vividly_trace.configure(
            sinks=[JSONLinesSink(out)], batch_size=1, flush_interval=0.001, queue_size=200
        )

        @logged_prompt("busy", metadata={"k": "v"})
        def call() -> dict[str, int]:
            return {"input_tokens": 1, "output_tokens": 1}

        def child() -> bool:
            call()
            return vividly_trace.flush(10)

        assert fork_while_busy(call, child) == 0

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
    def test_fork_while_the_worker_holds_the_spool_lock(self, spool_dir: Path) -> None:
        """A child forked while the parent's worker is inside its spool can still replay
        that spool (the child does not keep the parent's file lock)."""
        sink = FlakySink()
        vividly_trace.configure(
            sinks=[sink],
            batch_size=1,
            flush_interval=0.001,
            max_retries=0,
            spool_dir=spool_dir,
            queue_size=200,
        )

        def call() -> None:
            log_prompt_execution("spooling", True, 1.0)

        def child() -> bool:
            sink.broken = False
            call()  # written at once, then the spool (all files) is replayed
            return vividly_trace.flush(10)

        assert fork_while_busy(call, child) == 0


def fork_while_busy(produce_one: Callable[[], object], child: Callable[[], bool]) -> int:
    """Fork 10 times while a thread keeps producing; run ``child`` in each child.

    Returns how many children failed; fails the test if one hangs. The producer pauses
    while a child runs, so that the child contends with the parent only briefly."""
    stop = threading.Event()
    paused = threading.Event()

    def produce() -> None:
        while not stop.is_set():
            if paused.is_set():
                time.sleep(0.001)
                continue
            produce_one()

    producer = threading.Thread(target=produce)
    producer.start()
    failures = 0
    try:
        for _ in range(10):
            time.sleep(0.01)
            pid = os.fork()
            if pid == 0:  # child: never return into pytest
                code = 1
                try:
                    code = 0 if child() else 2
                finally:
                    os._exit(code)
            paused.set()
            deadline = time.monotonic() + 15
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    failures += os.waitstatus_to_exitcode(status) != 0
                    paused.clear()
                    break
                if time.monotonic() > deadline:
                    os.kill(pid, 9)
                    os.waitpid(pid, 0)
                    pytest.fail("a forked child hung")
                time.sleep(0.01)
    finally:
        stop.set()
        producer.join()
        vividly_trace.shutdown(timeout=0.5)  # the backlog goes to the spool, quickly
    return failures


# -- concurrency --------------------------------------------------------------------------
class TestConcurrency:
    def test_16_threads_x_1000_calls(self) -> None:
        """16 threads x 1000 decorated calls give exactly 16000 records with unique ids."""
        sink = MemorySink()
        vividly_trace.configure(sinks=[sink], queue_size=20_000, flush_interval=0.05)

        @logged_prompt("threads", model="gemini-2.5-flash")
        def call(i: int) -> dict[str, int]:
            return {"input_tokens": i, "output_tokens": 1}

        barrier = threading.Barrier(16)
        errors: list[BaseException] = []

        def work() -> None:
            try:
                barrier.wait()
                for i in range(1000):
                    assert call(i)["input_tokens"] == i
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert vividly_trace.flush(30)
        assert len(sink.records) == 16_000
        assert len({r.execution_id for r in sink.records}) == 16_000
        s = vividly_trace.stats()
        assert s["written"] == 16_000
        assert s["dropped"] == {}
        assert sum(r.input_token_count or 0 for r in sink.records) == 16 * sum(range(1000))
