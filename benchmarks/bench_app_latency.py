"""Application threads while a worker drains a backlog.

Run alone (prints its section, does not write BENCHMARKS.md)::

    .venv/bin/python benchmarks/bench_app_latency.py [--quick]

How late an application thread sleeping 1 ms in a loop wakes while vividly's worker builds
and writes a backlog of records, with the worker's GIL pacing on (the default) and off
(``_dispatch.GIL_SLICE`` set to infinity), in alternating rounds; and how long the drain
takes in each mode. It reaches into private names (``_active.state``, ``_dispatch``, the
worker's ``_wake`` and ``_done``).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import dataclass
from time import perf_counter_ns
from typing import Any

import report
from _common import DiscardSink, configure_vividly, make_response, settle

import vividly_trace
from vividly_trace import logged_prompt

# As a part of overhead.py (see report.Part): its keyword in report.render_overhead(), and
# the entry point's flag that skips it, with the flag's help.
KEY: str = "app"
SKIP: tuple[str, str] | None = ("--no-app", "skip the application-latency part")

MODES = ("idle", "paced", "unpaced")  # no backlog (reference); worker draining, paced or not


@dataclass
class AppLatency:
    records: int
    rounds: int
    delays: dict[str, list[float]]  # mode -> µs an application thread woke late
    drain_s: dict[str, list[float]]  # mode -> seconds the worker took to drain


def run_app_latency(records: int, rounds: int) -> AppLatency:
    """An application thread sleeps 1 ms in a loop while the worker drains ``records``
    queued calls that returned a ``GenerateContentResponse``: how late it wakes, with the
    worker paced (default) and unpaced, alternating in the same run."""
    from vividly_trace import _active, _dispatch

    response = make_response()

    def call() -> Any:
        return response

    decorated = logged_prompt("bench_app")(call)
    delays: dict[str, list[float]] = {mode: [] for mode in MODES}
    drain_s: dict[str, list[float]] = {"paced": [], "unpaced": []}
    default_slice = _dispatch.GIL_SLICE
    try:
        for r in range(rounds):
            for mode in ("paced", "unpaced") if r % 2 == 0 else ("unpaced", "paced"):
                _dispatch.GIL_SLICE = default_slice if mode == "paced" else float("inf")
                # A queue of 4x the backlog: under half full, where pacing applies (over it,
                # the worker catches up unpaced by design).
                configure_vividly(DiscardSink(), queue_size=4 * records, parked=True)
                for _ in range(records):
                    decorated()
                pipeline: Any = _active.state.pipeline
                worker = pipeline.workers[0]
                seen: list[float] = []
                stop = threading.Event()

                def app(seen: list[float] = seen, stop: threading.Event = stop) -> None:
                    while not stop.is_set():
                        t0 = perf_counter_ns()
                        time.sleep(0.001)
                        seen.append((perf_counter_ns() - t0) / 1e3 - 1000.0)

                thread = threading.Thread(target=app)
                thread.start()
                time.sleep(0.1)
                delays["idle"] += seen[:]
                seen.clear()
                worker.batch_size = 200  # unpark: the usual batches from now on
                t0 = time.perf_counter()
                worker._wake.set()
                while worker._done < records:
                    time.sleep(0.002)
                drain_s[mode].append(time.perf_counter() - t0)
                stop.set()
                thread.join()
                delays[mode] += seen
                vividly_trace.shutdown()
                settle()
    finally:
        _dispatch.GIL_SLICE = default_slice
    return AppLatency(records=records, rounds=rounds, delays=delays, drain_s=drain_s)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options of its own: ``--quick`` sets the sizes."""


def measure(args: argparse.Namespace) -> AppLatency:
    records, rounds = (20_000, 1) if args.quick else (50_000, 3)
    print(f"\n[4] application thread while {records:,} records drain", flush=True)
    return run_app_latency(records, rounds)


def main(argv: list[str] | None = None) -> int:
    return report.main(__file__, __doc__, [sys.modules[__name__]], argv)


if __name__ == "__main__":
    sys.exit(main())
