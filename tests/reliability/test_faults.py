"""Faults: the database crashes, the Logging endpoint fails then hangs, the spool's disk
fills up, the process is terminated, exits, is killed with SIGKILL, or forks.

Nothing here asserts on speed: every wait is a poll with a generous deadline.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import vividly_trace
from tests.reliability.reliability_helpers import (
    DEAD_SINK_KEY,
    LONG,
    SHORT,
    VERSIONS,
    SecretError,
    dump_store,
    finish_app,
    mount_tmpfs,
    read_jsonl,
    read_offered,
    secret_metadata,
    secret_text,
    spool_files,
    start_app,
    start_writers,
    statistics_mismatches,
    store_counts,
    store_ids,
    unmount,
    wait_app,
    wait_until,
    wait_writers,
    with_password,
)
from vividly_trace import PromptExecution, log_prompt_execution
from vividly_trace._config import get_pipeline

pytestmark = pytest.mark.reliability


class Recorder:
    """A sink that keeps what it is given; fails while ``broken`` (with secrets in the
    error, as an upstream echoing the request would)."""

    def __init__(self, name: str, spool_key: str | None = None) -> None:
        self.name = name
        if spool_key is not None:
            self.spool_key = spool_key
        self.records: list[PromptExecution] = []
        self.broken = False
        self._lock = threading.Lock()

    def write_batch(self, records: Sequence[PromptExecution]) -> None:
        if self.broken:
            raise SecretError(len(records))
        with self._lock:
            self.records.extend(records)

    def close(self) -> None:
        pass


# -- PostgreSQL crash --------------------------------------------------------------------------
PG_CRASH = {
    SHORT: {"processes": 4, "threads": 4, "seconds": 7.0, "pause": 0.004, "outages": [(1.5, 2.0)]},
    LONG: {
        "processes": 4,
        "threads": 16,
        "seconds": 45.0,
        "pause": 0.004,
        "outages": [(6.0, 10.0), (25.0, 3.0), (35.0, 1.0)],
    },
}


@pytest.mark.postgres
@pytest.mark.timeout(900)
@pytest.mark.parametrize("version", VERSIONS)
def test_postgresql_killed_and_restarted_mid_load(
    version: str, crash_pg: Any, tmp_path: Path, figures: Any, secret_scan: Any
) -> None:
    """Writer processes log into a PostgreSQL that is killed (`pg_ctl stop -m immediate`)
    and restarted while they run (once short; three times long, down 10 s, 3 s and 1 s):
    failed batches are retried, then spooled and replayed; at the end every record offered
    is in the table exactly once, nothing was dropped, the spools are empty, and the
    template statistics equal the aggregates over the raw rows."""
    plan = PG_CRASH[version]
    url = with_password(crash_pg.create_database())
    jobs = start_writers(
        url,
        tmp_path,
        plan["processes"],
        plan["threads"],
        plan["seconds"],
        plan["pause"],
        tag="crash",
        max_retries=2,
        retry_backoff=0.1,
        flush_interval=0.1,
        replay_timeout=120,
    )
    assert wait_until(lambda: store_counts(url)[0] > 0, timeout=60), "no writes started"
    started = time.monotonic()
    downtime = 0.0
    for at, down in plan["outages"]:
        time.sleep(max(0.0, started + at - time.monotonic()))
        crash_pg.kill()
        time.sleep(down)
        crash_pg.start()
        downtime += down
    reports, ids = wait_writers(jobs, timeout=plan["seconds"] + 300)
    rows, distinct = store_counts(url)
    stored = store_ids(url)
    _, mismatches = statistics_mismatches(url)
    secret_scan.add_text("crash: PostgreSQL rows", dump_store(url))
    sql = [r["stats"]["sinks"]["sql"] for r in reports]
    dropped = sum(sum(s["dropped"].values()) for s in sql)
    leftover = sum(len(read_jsonl(f)[0]) for f in spool_files(tmp_path))
    figures.record(
        "fault: PostgreSQL killed and restarted mid-load",
        version,
        writers=f"{plan['processes']} processes x {plan['threads']} threads",
        seconds_of_load=plan["seconds"],
        kills=len(plan["outages"]),
        seconds_down=downtime,
        records_offered=len(ids),
        rows=rows,
        distinct_ids=distinct,
        missing=len(set(ids) - set(stored)),
        duplicates=rows - distinct,
        failed_batches=sum(s["failed_batches"] for s in sql),
        spooled=sum(s["spooled"] for s in sql),
        replayed=sum(s["replayed"] for s in sql),
        dropped=dropped,
        left_in_spool=leftover,
        statistics_mismatches=len(mismatches),
        slowest_call_ms=round(1000 * max(r["slowest_call_s"] for r in reports), 1),
    )
    for r in reports:
        assert r["flushed"] is True
        assert not r["stats"]["sinks"]["sql"]["spool_pending"], r["stats"]
    assert sum(s["failed_batches"] for s in sql) > 0, "the outage was not noticed"
    assert len(set(ids)) == len(ids)
    assert rows == distinct == len(ids)
    assert set(stored) == set(ids)
    assert dropped == 0
    assert leftover == 0
    assert mismatches == []


# -- Cloud Logging: 503s, then a hang -----------------------------------------------------------
LOGGING = {
    SHORT: {"seconds": 8.0, "hang_at": 2.0, "hang": 3.0, "errors": 6, "rate": 40},
    LONG: {"seconds": 40.0, "hang_at": 5.0, "hang": 20.0, "errors": 20, "rate": 40},
}


@pytest.mark.timeout(900)
@pytest.mark.parametrize("version", VERSIONS)
def test_logging_endpoint_503_then_hanging(
    version: str, fake_logging: Any, tmp_path: Path, figures: Any, secret_scan: Any
) -> None:
    """Cloud Logging answers 503 to the first requests, then hangs (held requests, the
    client times out after 1 s) for a while, then recovers; an application logs all along
    to it and to SQLite. Every record reaches Cloud Logging once it recovers; no insertId
    is shared by two records, and every re-delivery of an insertId carries the very same
    entry (same timestamp and payload, so Cloud Logging keeps one); the SQL sink never
    fails a batch and has records logged during the hang before the hang ends."""
    from google.auth.credentials import AnonymousCredentials

    from vividly_trace.sinks import CloudLoggingSink, SQLSink

    plan = LOGGING[version]
    db = tmp_path / "dual.db"
    sql_url = f"sqlite:///{db}"
    cloud = CloudLoggingSink(
        project="vividly-reliability",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": fake_logging.url},
        timeout=1.0,
    )
    vividly_trace.configure(
        sinks=[SQLSink(sql_url), cloud],
        flush_interval=0.05,
        batch_size=100,
        max_retries=2,
        retry_backoff=0.1,
        spool_dir=tmp_path / "spool",
    )
    fake_logging.fail_next(plan["errors"], status=503)
    ids: list[str] = []
    during: list[str] = []
    hang_box: list[Any] = []
    stop = threading.Event()

    def produce() -> None:
        i = 0
        while not stop.is_set():
            eid = log_prompt_execution(
                "dual",
                i % 6 != 0,
                10.0 + i % 50,
                100,
                20,
                error_message=None if i % 6 else secret_text(i),
                metadata=secret_metadata(i) if i % 4 == 0 else {"i": i},
                model="gemini-2.5-flash",
            )
            assert eid is not None
            ids.append(eid)
            if hang_box and hang_box[0].active:
                during.append(eid)
            i += 1
            time.sleep(1.0 / plan["rate"])

    producer = threading.Thread(target=produce)
    started = time.monotonic()
    producer.start()
    time.sleep(plan["hang_at"])
    hang = fake_logging.hang_for(plan["hang"])
    hang_box.append(hang)
    # While Cloud Logging hangs, records keep reaching SQL (the predicate is only ever
    # evaluated before the hang ends).
    reached_sql_during_hang = wait_until(
        lambda: bool(during) and during[len(during) // 2] in set(store_ids(sql_url)),
        timeout=hang.deadline - time.monotonic() - 0.3,
    )
    time.sleep(max(0.0, started + plan["seconds"] - time.monotonic()))
    stop.set()
    producer.join()
    assert vividly_trace.flush(timeout=120)
    all_ids = set(ids)
    arrived = fake_logging.wait_for(
        lambda: set(fake_logging.insert_ids(accepted=True)) >= all_ids, timeout=120
    )
    stats = vividly_trace.stats()["sinks"]
    entries = fake_logging.entries()
    by_id: dict[str, list[str]] = {}
    for entry in entries:
        by_id.setdefault(str(entry.get("insertId")), []).append(json.dumps(entry, sort_keys=True))
    for request in fake_logging.requests:
        secret_scan.add_bytes("Cloud Logging request body", request.raw)
        secret_scan.add_text("Cloud Logging request headers", json.dumps(request.headers))
    sql_ids = set(store_ids(sql_url))
    redelivered = sum(len(v) - 1 for v in by_id.values())
    differing = [k for k, v in by_id.items() if len(set(v)) > 1]
    figures.record(
        "fault: Cloud Logging answers 503, then hangs",
        version,
        records=len(ids),
        logged_during_the_hang=len(during),
        errors_503=plan["errors"],
        seconds_hanging=plan["hang"],
        requests=len(fake_logging.requests),
        entries_received=len(entries),
        distinct_insert_ids=len(by_id),
        redeliveries_same_entry=redelivered,
        redeliveries_differing=len(differing),
        cloud_failed_batches=stats["cloud_logging"]["failed_batches"],
        cloud_spooled=stats["cloud_logging"]["spooled"],
        all_accepted_after_recovery=arrived,
        sql_failed_batches=stats["sql"]["failed_batches"],
        sql_reached_during_hang=reached_sql_during_hang,
    )
    assert arrived, all_ids - set(fake_logging.insert_ids(accepted=True))
    assert set(by_id) == all_ids, "an insertId that is no record's execution id"
    assert differing == [], "a re-delivered insertId carried a different entry"
    assert hang.held >= 1, "the endpoint never hung a request"
    assert stats["cloud_logging"]["failed_batches"] >= plan["errors"]
    assert stats["cloud_logging"]["dropped"] == {}
    assert stats["sql"]["failed_batches"] == 0
    assert stats["sql"]["dropped"] == {}
    assert sql_ids == all_ids
    assert reached_sql_during_hang, "SQL records waited for the hung Cloud Logging sink"


# -- the spool's disk is full -------------------------------------------------------------------
DISK = {SHORT: 3000, LONG: 30000}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("limit", ["tmpfs", "spool_max_bytes"])
@pytest.mark.parametrize("version", VERSIONS)
def test_spool_disk_full(version: str, limit: str, tmp_path: Path, figures: Any) -> None:
    """A sink is down and its spool's disk fills up: a 1 MiB tmpfs (root only; skipped
    elsewhere) or a 64 KiB `spool_max_bytes` cap. Every call still returns its id at once;
    every record is spooled or counted as `spool_error` / `spool_full`; once the sink is
    back, the spool is replayed, and written + counted drops = records offered, with no
    record written twice."""
    spool = tmp_path / "small_disk"
    mounted = False
    if limit == "tmpfs":
        mounted = mount_tmpfs(spool, "1m")
        if not mounted:
            pytest.skip("cannot mount a tmpfs here (needs root on Linux)")
    try:
        sink = Recorder("down")
        sink.broken = True
        vividly_trace.configure(
            sinks=[sink],
            spool_dir=spool,
            max_retries=0,
            batch_size=50,
            flush_interval=0.02,
            spool_max_bytes=64 * 1024 if limit == "spool_max_bytes" else 256 * 1024 * 1024,
        )
        n = DISK[version]
        slowest = 0.0
        ids = []
        for i in range(n):
            t0 = time.perf_counter()
            eid = log_prompt_execution(
                "disk_full",
                True,
                12.5,
                1000,
                200,
                metadata={"i": i, "pad": "p" * 300},
                model="gemini-2.5-flash",
            )
            slowest = max(slowest, time.perf_counter() - t0)
            assert eid is not None
            ids.append(eid)
            if i % 500 == 0:
                time.sleep(0.01)  # let the worker spool as it goes
        assert vividly_trace.flush(timeout=120)
        during = vividly_trace.stats()["sinks"]["down"]
        sink.broken = False
        last = log_prompt_execution("disk_full", True, 1.0)
        assert last is not None
        ids.append(last)
        assert vividly_trace.flush(timeout=60)
        pipeline = get_pipeline()
        assert pipeline is not None

        def replayed() -> bool:
            # The application keeps logging: each successful write also replays the spool.
            eid = log_prompt_execution("disk_full", True, 1.0)
            assert eid is not None
            ids.append(eid)
            assert vividly_trace.flush(timeout=60)
            return not pipeline.stats()["sinks"]["down"]["spool_pending"]

        assert wait_until(replayed, 120, interval=0.1)
        after = pipeline.stats()["sinks"]["down"]
    finally:
        vividly_trace.shutdown(timeout=5)
        if mounted:
            unmount(spool)
    written_ids = [r.execution_id for r in sink.records]
    dropped = sum(after["dropped"].values())
    figures.record(
        "fault: spool disk full ("
        + ("1 MiB tmpfs" if limit == "tmpfs" else "64 KiB spool_max_bytes")
        + ")",
        version,
        records_offered=len(ids),
        spooled=during["spooled"],
        dropped=", ".join(f"{k} {v}" for k, v in after["dropped"].items()) or "0",
        written_after_recovery=len(written_ids),
        replayed=after["replayed"],
        duplicates=len(written_ids) - len(set(written_ids)),
        slowest_call_ms=round(slowest * 1000, 2),
    )
    assert during["spooled"] > 0
    assert set(after["dropped"]) <= {"spool_full", "spool_error"}, after
    assert dropped > 0, "the disk never filled up"
    assert len(written_ids) == len(set(written_ids)), "a record was written twice"
    assert set(written_ids) <= set(ids)
    assert len(ids) == len(written_ids) + dropped, after


# -- SIGTERM and normal exit with records in flight ---------------------------------------------
@pytest.mark.postgres
@pytest.mark.timeout(600)
@pytest.mark.parametrize("version", VERSIONS)
def test_sigterm_with_records_in_flight(
    version: str, postgres_url: str, tmp_path: Path, figures: Any, secret_scan: Any
) -> None:
    """An application's threads keep logging (records queued behind a 5 s timer and
    large batches) into a JSON-lines file and PostgreSQL when SIGTERM arrives: the handler
    flushes, the process dies of SIGTERM, and every record offered before the signal is in
    both sinks (or, past the shutdown timeout, in the spool)."""
    rounds = 1 if version == SHORT else 5
    url = with_password(postgres_url)
    missing_total = late_total = offered_total = 0
    all_before: set[str] = set()
    all_spooled: set[str] = set()
    for r in range(rounds):
        run_dir = tmp_path / f"round{r}"
        run_dir.mkdir()
        args = {
            "jsonl": str(run_dir / "out.jsonl"),
            "url": url,
            "offered": str(run_dir / "offered.log"),
            "spool_dir": str(run_dir / "spool"),
            "threads": 4,
            "pause": 0.001,
            "flush_interval": 5.0,
            "batch_size": 100_000,
            "ready_after": 500 + 1000 * r,
        }
        proc = start_app(run_dir, "sigterm", args)
        out_path = run_dir / "sigterm.stdout"
        wait_app(proc, lambda p=out_path: "ready" in p.read_text(), 60, "it was ready")
        time.sleep(random.Random(r).uniform(0.0, 0.5))
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        done = finish_app(proc, 120, secret_scan)
        assert done.returncode == -signal.SIGTERM, done.stderr[-3000:]
        offered = read_offered(run_dir / "offered.log")
        before = {eid for eid, t in offered if t < signalled}
        late = {eid for eid, t in offered if t >= signalled}
        lines, torn = read_jsonl(run_dir / "out.jsonl")
        in_jsonl = {x["execution_id"] for x in lines}
        spooled = {
            x["execution_id"] for f in spool_files(run_dir / "spool") for x in read_jsonl(f)[0]
        }
        missing = before - in_jsonl - spooled
        assert torn == 0
        assert missing == set(), f"{len(missing)} records offered before SIGTERM were lost"
        missing_total += len(missing)
        late_total += len(late)
        offered_total += len(offered)
        all_before |= before
        all_spooled |= spooled
    pg_ids = set(store_ids(url))
    figures.record(
        "fault: SIGTERM with records in flight",
        version,
        rounds=rounds,
        records_offered_before_the_signal=offered_total - late_total,
        lost=missing_total,
        offered_while_dying=late_total,
        rows_in_postgresql=len(pg_ids),
        left_in_spool=len(all_spooled),
    )
    # PostgreSQL got them too (it is the second sink of each round).
    assert all_before - pg_ids - all_spooled == set()


@pytest.mark.postgres
@pytest.mark.timeout(600)
@pytest.mark.parametrize("version", VERSIONS)
def test_normal_exit_with_records_in_flight(
    version: str, postgres_url: str, tmp_path: Path, figures: Any, secret_scan: Any
) -> None:
    """Threads log a fixed number of records each and end; the main thread returns while
    the records still wait in the queue (5 s timer, large batches): the exit hook writes
    every one of them to the JSON-lines file and to PostgreSQL."""
    per_thread = 250 if version == SHORT else 5000
    url = with_password(postgres_url)
    args = {
        "jsonl": str(tmp_path / "out.jsonl"),
        "url": url,
        "offered": str(tmp_path / "offered.log"),
        "spool_dir": str(tmp_path / "spool"),
        "threads": 8,
        "per_thread": per_thread,
        "flush_interval": 5.0,
        "batch_size": 100_000,
    }
    done = finish_app(start_app(tmp_path, "normal_exit", args), 300, secret_scan)
    assert done.returncode == 0, done.stderr[-3000:]
    queued = json.loads(done.stdout.strip().splitlines()[-1])["queued_at_exit"]
    offered = {eid for eid, _ in read_offered(tmp_path / "offered.log")}
    lines, torn = read_jsonl(tmp_path / "out.jsonl")
    in_jsonl = [x["execution_id"] for x in lines]
    in_pg = set(store_ids(url)) & offered
    figures.record(
        "fault: normal exit with records in flight",
        version,
        records_offered=len(offered),
        queued_when_main_returned=queued,
        in_jsonl=len(in_jsonl),
        in_postgresql=len(in_pg),
        lost=len(offered - set(in_jsonl)),
    )
    assert len(offered) == 8 * per_thread
    assert queued > 0, "nothing was in flight at exit"
    assert torn == 0
    assert sorted(in_jsonl) == sorted(offered)
    assert in_pg == offered


# -- kill -9 -----------------------------------------------------------------------------------
FLUSH_INTERVAL = 0.5
BATCH = 200


@pytest.mark.timeout(600)
@pytest.mark.parametrize("version", VERSIONS)
def test_kill9_loses_at_most_the_last_flush_interval(
    version: str, tmp_path: Path, figures: Any, secret_scan: Any
) -> None:
    """An application logging at a steady pace into a durable (fsync'd) JSON-lines sink is
    killed with SIGKILL at a random moment: the records lost (offered before the kill and
    not in the file) are at most those offered in the last `flush_interval` plus one batch,
    and the file holds no torn or duplicated line."""
    rounds = 3 if version == SHORT else 20
    worst_lost = worst_bound = 0
    total_lost = total_offered = 0
    for r in range(rounds):
        run_dir = tmp_path / f"round{r}"
        run_dir.mkdir()
        args = {
            "jsonl": str(run_dir / "out.jsonl"),
            "offered": str(run_dir / "offered.log"),
            "spool_dir": str(run_dir / "spool"),
            "threads": 2,
            "pause": 0.001,
            "flush_interval": FLUSH_INTERVAL,
            "batch_size": BATCH,
        }
        proc = start_app(run_dir, "kill9", args)
        offered_path = run_dir / "offered.log"
        wait_app(
            proc, lambda p=offered_path: p.exists() and p.stat().st_size > 50_000, 60, "it logged"
        )
        time.sleep(random.Random(r).uniform(0.2, 1.5))
        killed = time.monotonic()
        proc.kill()
        finish_app(proc, 60, secret_scan)
        offered = read_offered(offered_path)
        before = {eid for eid, t in offered if t < killed}
        recent = sum(1 for _, t in offered if killed - FLUSH_INTERVAL <= t < killed)
        lines, torn = read_jsonl(run_dir / "out.jsonl")
        present = [x["execution_id"] for x in lines]
        lost = len(before - set(present))
        bound = recent + BATCH
        assert torn <= 1, "more than a torn last line in the sink's file"
        assert len(present) == len(set(present)), "a record was written twice"
        assert set(present) <= {eid for eid, _ in offered}
        assert lost <= bound, f"round {r}: lost {lost} > bound {bound}"
        if lost > worst_lost:
            worst_lost, worst_bound = lost, bound
        total_lost += lost
        total_offered += len(before)
    figures.record(
        "fault: kill -9 of the application",
        version,
        rounds=rounds,
        flush_interval_s=FLUSH_INTERVAL,
        batch_size=BATCH,
        records_offered_before_the_kills=total_offered,
        lost_in_all=total_lost,
        worst_round=f"lost {worst_lost} (bound {worst_bound})",
    )


@pytest.mark.timeout(600)
@pytest.mark.parametrize("version", VERSIONS)
def test_kill9_while_spooling_leaves_a_readable_spool(
    version: str, tmp_path: Path, figures: Any, secret_scan: Any
) -> None:
    """The sink is down and every batch goes to the spool when the application is killed
    with SIGKILL: every spool line but a torn last one parses; replaying the spool into a
    working sink delivers each parsable record exactly once and counts the torn line as
    `spool_corrupt`. (Records lost are reported: those still queued or being spooled.)"""
    rounds = 3 if version == SHORT else 20
    totals = {"lines": 0, "torn": 0, "replayed": 0, "corrupt": 0, "lost": 0, "offered": 0}
    worst = (0, 0)
    for r in range(rounds):
        run_dir = tmp_path / f"round{r}"
        run_dir.mkdir()
        spool = run_dir / "spool"
        args = {
            "offered": str(run_dir / "offered.log"),
            "spool_dir": str(spool),
            "threads": 2,
            "pause": 0.0005,
            "flush_interval": 0.02,
            "batch_size": 50,
        }
        proc = start_app(run_dir, "kill9_spooling", args)
        wait_app(
            proc,
            lambda s=spool: sum(f.stat().st_size for f in spool_files(s)) > 200_000,
            60,
            "it spooled",
        )
        time.sleep(random.Random(100 + r).uniform(0.0, 0.5))
        killed = time.monotonic()
        proc.kill()
        finish_app(proc, 60, secret_scan)
        files = spool_files(spool)
        lines = torn = 0
        for f in files:
            raw = f.read_bytes().splitlines()
            for i, line in enumerate(raw):
                try:
                    json.loads(line)
                    lines += 1
                except ValueError:
                    assert i == len(raw) - 1, f"a corrupt line in the middle of {f}"
                    torn += 1
        secret_scan.add_tree(spool)
        # Replay that spool into a working sink of the same destination.
        sink = Recorder("dead", spool_key=DEAD_SINK_KEY)
        vividly_trace.configure(sinks=[sink], spool_dir=spool, flush_interval=3600)
        pipeline = get_pipeline()
        assert pipeline is not None
        worker = pipeline.workers[0]
        while worker.replay_spool():
            pass
        stats = pipeline.stats()["sinks"]["dead"]
        vividly_trace.shutdown()
        got = [x.execution_id for x in sink.records]
        offered = read_offered(run_dir / "offered.log")
        before = {eid for eid, t in offered if t < killed}
        recent = sum(1 for _, t in offered if killed - 0.02 <= t < killed)
        lost = len(before - set(got))
        assert len(got) == len(set(got)) == lines, (len(got), lines)
        assert stats["dropped"].get("spool_corrupt", 0) == torn
        assert set(got) <= {eid for eid, _ in offered}
        assert spool_files(spool) == [] or all(f.stat().st_size == 0 for f in spool_files(spool))
        worst = max(worst, (lost, recent + 50))
        totals["lines"] += lines
        totals["torn"] += torn
        totals["replayed"] += len(got)
        totals["corrupt"] += stats["dropped"].get("spool_corrupt", 0)
        totals["lost"] += lost
        totals["offered"] += len(before)
    figures.record(
        "fault: kill -9 while spooling",
        version,
        rounds=rounds,
        records_offered_before_the_kills=totals["offered"],
        spool_lines_parsed=totals["lines"],
        torn_last_lines=totals["torn"],
        replayed_once_each=totals["replayed"],
        counted_spool_corrupt=totals["corrupt"],
        lost_in_all=totals["lost"],
        worst_round=f"lost {worst[0]} (bound {worst[1]})",
    )


# -- fork() after records were queued ------------------------------------------------------------
@pytest.mark.postgres
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.timeout(600)
@pytest.mark.parametrize("version", VERSIONS)
def test_fork_after_records_were_queued(
    version: str, postgres_url: str, tmp_path: Path, figures: Any, secret_scan: Any
) -> None:
    """A process queues records (its worker parked) and forks; the child logs its own and
    exits normally, then the parent exits: the JSON-lines file and PostgreSQL hold the
    parent's records once (never also written by the child) and all of the child's."""
    n_parent, n_child = (300, 200) if version == SHORT else (20_000, 10_000)
    url = with_password(postgres_url)
    args = {
        "jsonl": str(tmp_path / "out.jsonl"),
        "url": url,
        "spool_dir": str(tmp_path / "spool"),
        "offered_parent": str(tmp_path / "parent.log"),
        "offered_child": str(tmp_path / "child.log"),
        "parent_records": n_parent,
        "child_records": n_child,
    }
    done = finish_app(start_app(tmp_path, "fork_after_queue", args), 300, secret_scan)
    assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads(done.stdout.strip().splitlines()[-1])
    parent = {eid for eid, _ in read_offered(tmp_path / "parent.log")}
    child = {eid for eid, _ in read_offered(tmp_path / "child.log")}
    lines, torn = read_jsonl(tmp_path / "out.jsonl")
    in_jsonl = [x["execution_id"] for x in lines]
    in_pg = set(store_ids(url))
    figures.record(
        "fault: fork() after records were queued",
        version,
        parent_records_queued_at_fork=info["queued_at_fork"],
        child_records=len(child),
        jsonl_lines=len(in_jsonl),
        duplicates=len(in_jsonl) - len(set(in_jsonl)),
        rows_in_postgresql=len(in_pg & (parent | child)),
        child_exit_code=info["child_exit"],
    )
    assert info["child_exit"] == 0
    assert info["queued_at_fork"] == n_parent
    assert (len(parent), len(child)) == (n_parent, n_child)
    assert torn == 0
    assert len(in_jsonl) == len(set(in_jsonl)), "a record was written twice"
    assert set(in_jsonl) == parent | child
    assert in_pg >= parent | child


# -- shutdown with a hung sink and a full queue ---------------------------------------------------
class HungSink(Recorder):
    """Every write hangs until released (a black-holed endpoint)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.release = threading.Event()

    def write_batch(self, records: Sequence[PromptExecution]) -> None:
        self.release.wait(600)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("version", VERSIONS)
def test_shutdown_with_a_hung_sink_spools_everything_it_held(
    version: str, tmp_path: Path, figures: Any, secret_scan: Any
) -> None:
    """The only sink hangs and thousands of records wait in its queue when the application
    shuts down (`shutdown_timeout=0.5`), and building them takes longer than that (a slow
    `redact` hook): `shutdown()` returns only once every record it held is in the spool
    (or counted), so none dies with the process unspooled and uncounted."""
    n = 3000 if version == SHORT else 9000
    sink = HungSink("hung")

    def slow_redact(record: PromptExecution) -> PromptExecution:
        time.sleep(0.0003)
        return record

    try:
        vividly_trace.configure(
            sinks=[sink],
            redact=slow_redact,
            shutdown_timeout=0.5,
            queue_size=n,
            batch_size=100,
            flush_interval=0.01,
            spool_dir=tmp_path / "spool",
        )
        ids = [log_prompt_execution("held", True, 1.0, metadata={"i": i}) for i in range(n)]
        pipeline = get_pipeline()
        assert pipeline is not None
        started = time.monotonic()
        vividly_trace.shutdown()
        took = time.monotonic() - started
        stats = pipeline.stats()["sinks"]["hung"]
    finally:
        sink.release.set()
    spooled = {x["execution_id"] for f in spool_files(tmp_path / "spool") for x in read_jsonl(f)[0]}
    dropped = sum(stats["dropped"].values())
    figures.record(
        "fault: shutdown with a hung sink and a full queue",
        version,
        records_held=n,
        shutdown_timeout_s=0.5,
        shutdown_took_s=round(took, 2),
        spooled=len(spooled),
        dropped=dropped,
        lost=n - len(spooled) - dropped,
    )
    assert None not in ids
    assert stats["spooled"] + dropped == n, stats
    assert spooled == set(ids) - {None} or len(spooled) + dropped == n
