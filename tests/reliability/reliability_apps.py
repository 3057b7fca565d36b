"""Small applications the reliability tests run as subprocesses (and signal, or kill).

Usage: ``python reliability_apps.py SCENARIO JSON_ARGS``. Each logs through the public API
and appends one line per record it handed over (``<execution id> <CLOCK_MONOTONIC>``) to an
*offered log* with ``os.write`` on an ``O_APPEND`` descriptor, so that the log survives a
``kill -9`` up to the last record whose call had returned.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Run as a script, this file's directory is sys.path[0]: reliability_helpers imports.
from reliability_helpers import DEAD_SINK_KEY, SecretError, secret_metadata, secret_text

import vividly_trace
from vividly_trace import PromptExecution, log_prompt_execution, logged_prompt


class OfferedLog:
    """Append-only log of the records handed over, with the monotonic time of each."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.count = 0
        self._lock = threading.Lock()

    def add(self, execution_id: str | None) -> None:
        assert execution_id is not None
        os.write(self.fd, f"{execution_id} {time.monotonic():.6f}\n".encode())
        with self._lock:
            self.count += 1


class DeadSink:
    """Every write fails, with secrets in the error (an upstream echoing the request)."""

    spool_key = DEAD_SINK_KEY

    def __init__(self, name: str = "dead") -> None:
        self.name = name
        self.attempts = 0

    def write_batch(self, records: Sequence[PromptExecution]) -> None:
        self.attempts += 1
        raise SecretError(self.attempts)

    def close(self) -> None:
        pass


class HungSink:
    """Every write hangs (a black-holed endpoint)."""

    def __init__(self, name: str = "hung") -> None:
        self.name = name
        self._never = threading.Event()

    def write_batch(self, records: Sequence[PromptExecution]) -> None:
        self._never.wait()

    def close(self) -> None:
        pass


def _sql(url: str) -> Any:
    from vividly_trace.sinks import SQLSink

    return SQLSink(url, connect_timeout=2)


def _produce(
    log: OfferedLog, n: int, key: str, pause: float, stop: threading.Event | None, i0: int = 0
) -> None:
    """Log ``n`` records (or until ``stop``), alternating the three public forms."""
    i = i0
    while (n < 0 or i - i0 < n) and not (stop is not None and stop.is_set()):
        form = i % 3
        if form == 0:
            log.add(
                log_prompt_execution(
                    key,
                    i % 7 != 0,
                    1.0 + i % 50,
                    100 + i % 90,
                    i % 40,
                    error_message=None if i % 7 else secret_text(i),
                    metadata=secret_metadata(i) if i % 5 == 0 else {"i": i},
                )
            )
        elif form == 1:
            with logged_prompt(key, version="v2", model="gemini-2.5-flash") as call:
                call.set_usage(input_tokens=i % 300, output_tokens=i % 30)
                call.metadata["i"] = i
            log.add(call.execution_id)
        else:
            _decorated(log, i)
        i += 1
        if pause:
            time.sleep(pause)


@logged_prompt("decorated", ab_group="A", model="gemini-2.5-flash")
def _decorated_call(i: int) -> dict[str, Any]:
    call = vividly_trace.get_current_call()
    assert call is not None
    if i % 4 == 0:
        raise SecretError(i, call.execution_id)
    return {"input_tokens": i % 100, "output_tokens": 3, "id": call.execution_id}


def _decorated(log: OfferedLog, i: int) -> None:
    try:
        log.add(_decorated_call(i)["id"])
    except SecretError as exc:
        log.add(exc.execution_id)


def _threads(target: Any, count: int, daemon: bool, *args: Any) -> list[threading.Thread]:
    pool = [threading.Thread(target=target, args=(*args, t), daemon=daemon) for t in range(count)]
    for thread in pool:
        thread.start()
    return pool


# -- scenarios -------------------------------------------------------------------------------
def sigterm(a: dict[str, Any]) -> None:
    """Threads log continuously (records stay queued: long timer, large batches); the
    parent sends SIGTERM; vividly_trace's handler flushes, then the process dies of it."""
    vividly_trace.configure(
        sinks=[vividly_trace.sinks.JSONLinesSink(a["jsonl"]), _sql(a["url"])],
        flush_interval=a["flush_interval"],
        batch_size=a["batch_size"],
        spool_dir=a["spool_dir"],
        shutdown_timeout=a.get("shutdown_timeout", 20),
    )
    log = OfferedLog(a["offered"])

    def body(t: int) -> None:
        _produce(log, -1, f"sigterm_{t % 2}", a["pause"], None, t * 10_000_000)

    _threads(body, a["threads"], True)
    while log.count < a["ready_after"]:
        time.sleep(0.01)
    print("ready", flush=True)
    while True:
        time.sleep(1)


def normal_exit(a: dict[str, Any]) -> None:
    """Threads log a fixed number each and end; the main thread returns with the records
    still queued (long timer, large batches, a queue that holds them all): the atexit flush
    writes them."""
    vividly_trace.configure(
        sinks=[vividly_trace.sinks.JSONLinesSink(a["jsonl"]), _sql(a["url"])],
        flush_interval=a["flush_interval"],
        batch_size=a["batch_size"],
        queue_size=a["threads"] * a["per_thread"],
        spool_dir=a["spool_dir"],
        shutdown_timeout=a.get("shutdown_timeout", 60),
    )
    log = OfferedLog(a["offered"])

    def body(t: int) -> None:
        _produce(log, a["per_thread"], f"exit_{t % 2}", 0.0, None, t * 10_000_000)

    for thread in _threads(body, a["threads"], False):
        thread.join()
    queued = vividly_trace.stats()["sinks"]["jsonl"]["queued"]
    print(json.dumps({"queued_at_exit": queued}), flush=True)


def kill9(a: dict[str, Any]) -> None:
    """One or more producers log at a steady pace into a durable JSON-lines sink until the
    parent kills the process with SIGKILL."""
    vividly_trace.configure(
        sinks=[vividly_trace.sinks.JSONLinesSink(a["jsonl"], fsync=True)],
        flush_interval=a["flush_interval"],
        batch_size=a["batch_size"],
        spool_dir=a["spool_dir"],
    )
    log = OfferedLog(a["offered"])

    def body(t: int) -> None:
        _produce(log, -1, "kill9", a["pause"], None, t * 10_000_000)

    _threads(body, a["threads"], True)
    print("ready", flush=True)
    while True:
        time.sleep(1)


def kill9_spooling(a: dict[str, Any]) -> None:
    """The sink is dead: every batch goes to the spool (no retries). The parent kills the
    process with SIGKILL while the worker is spooling."""
    vividly_trace.configure(
        sinks=[DeadSink("dead")],
        flush_interval=a["flush_interval"],
        batch_size=a["batch_size"],
        max_retries=0,
        spool_dir=a["spool_dir"],
    )
    log = OfferedLog(a["offered"])

    def body(t: int) -> None:
        _produce(log, -1, "spooling", a["pause"], None, t * 10_000_000)

    _threads(body, a["threads"], True)
    print("ready", flush=True)
    while True:
        time.sleep(1)


def fork_after_queue(a: dict[str, Any]) -> None:
    """The parent queues records (the worker is parked: long timer, large batches), then
    forks; the child logs its own records and exits normally; so does the parent."""
    vividly_trace.configure(
        sinks=[vividly_trace.sinks.JSONLinesSink(a["jsonl"]), _sql(a["url"])],
        flush_interval=3600,
        batch_size=1_000_000,
        spool_dir=a["spool_dir"],
        queue_size=a["parent_records"] + a["child_records"],
        shutdown_timeout=60,
    )
    log = OfferedLog(a["offered_parent"])
    _produce(log, a["parent_records"], "parent", 0.0, None)
    queued = vividly_trace.stats()["sinks"]["jsonl"]["queued"]
    pid = os.fork()
    if pid == 0:
        child_log = OfferedLog(a["offered_child"])
        _produce(child_log, a["child_records"], "child", 0.0, None, 50_000_000)
        ok = vividly_trace.flush(timeout=60)
        # A normal exit of the child (atexit hooks run), as a pre-fork server's worker does.
        sys.exit(0 if ok else 3)
    _, status = os.waitpid(pid, 0)
    print(
        json.dumps({"child_exit": os.waitstatus_to_exitcode(status), "queued_at_fork": queued}),
        flush=True,
    )


def memory_burst(a: dict[str, Any]) -> None:
    """A dead sink (raising, or hanging) and a burst of decorated calls returning a real
    google-genai response: report the peak RSS before and after, and the counters."""
    from google.genai import types

    from vividly_trace._config import get_pipeline

    response = types.GenerateContentResponse.model_validate(
        {
            "candidates": [
                {"content": {"parts": [{"text": "hello"}], "role": "model"}, "finishReason": "STOP"}
            ],
            "usageMetadata": {
                "promptTokenCount": 1234,
                "candidatesTokenCount": 210,
                "cachedContentTokenCount": 1024,
                "thoughtsTokenCount": 350,
                "totalTokenCount": 1794,
            },
            "modelVersion": "gemini-2.5-flash",
        }
    )
    sink: Any = DeadSink("dead") if a["mode"] == "raising" else HungSink("dead")
    vividly_trace.configure(
        sinks=[sink],
        spool_dir=a["spool_dir"],
        spool_max_bytes=a["spool_max_bytes"],
        shutdown_timeout=2,
    )

    @logged_prompt("burst", model="gemini-2.5-flash", metadata={"service": "burst"})
    def call(i: int) -> Any:
        current = vividly_trace.get_current_call()
        if current is not None:
            current.metadata["i"] = i
        return response

    def status(field: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        return -1

    for i in range(2000):  # warm up: imports, first batch, first spool write
        call(i)
    time.sleep(0.5)
    before = status("VmHWM")
    rss_before = status("VmRSS")
    per_thread = a["records"] // a["threads"]
    started = time.monotonic()

    def body(t: int) -> None:
        for i in range(per_thread):
            assert call(i) is response

    for thread in _threads(body, a["threads"], False):
        thread.join()
    burst_s = time.monotonic() - started
    after_burst = status("VmHWM")
    pipeline = get_pipeline()
    assert pipeline is not None
    vividly_trace.shutdown(timeout=2)
    stats = pipeline.stats()
    print(
        json.dumps(
            {
                "offered": 2000 + per_thread * a["threads"],
                "hwm_before": before,
                "rss_before": rss_before,
                "hwm_after_burst": after_burst,
                "hwm_end": status("VmHWM"),
                "burst_s": burst_s,
                "stats": stats,
            }
        ),
        flush=True,
    )


SCENARIOS = {
    "sigterm": sigterm,
    "normal_exit": normal_exit,
    "kill9": kill9,
    "kill9_spooling": kill9_spooling,
    "fork_after_queue": fork_after_queue,
    "memory_burst": memory_burst,
}

if __name__ == "__main__":
    import vividly_trace.sinks

    SCENARIOS[sys.argv[1]](json.loads(sys.argv[2]))
