"""Latency ``@logged_prompt`` adds to a real ``google-genai`` call.

Run alone (prints its section, does not write BENCHMARKS.md)::

    .venv/bin/python benchmarks/bench_real_call.py [--quick] [--blocks N] [--processes N]

``client.models.generate_content`` of the real ``google-genai`` client against the fake
Gemini server running in another process (``python -m vividly_trace.testing.fake_gemini
--port 0``), over one kept-alive connection. Paired, interleaved runs in randomised blocks:
each block times one undecorated call, one decorated call and two controls (an identical
undecorated function, an A/A control; a bare ``wrapt`` pass-through) in a freshly shuffled
order, and each arm is paired with the undecorated call of its block. (A strict alternation
of two calls showed a first-call-of-the-pair effect of about 10 µs here, which a median of
paired differences does not cancel reliably.) Reported: the median of the paired
differences with a distribution-free 95% confidence interval (order statistics of the
binomial), the mean difference, the median and p99 of each arm; the controls show the noise
floor. Every arm's response is released after its timed region (the decorated arm's is kept
by its record until the worker built it, so timing the others' release would flatter it).
One process's result moves by a few µs from run to run, more than its CI says: the part
runs in three fresh interpreters, pooled (``--processes``), and each one's median is shown.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import re
import statistics
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import report
from _common import MODEL, ROOT, DiscardSink, configure_vividly, passthrough, time_blocks
from _stats import mean_ci, median_ci, paired_diffs

import vividly_trace
from vividly_trace import logged_prompt

# As a part of overhead.py (see report.Part): its keyword in report.render_overhead(), and
# the entry point's flag that skips it, with the flag's help.
KEY: str = "real"
SKIP: tuple[str, str] | None = ("--no-real", "skip the real-call part")
CHILD = "--child"  # first argument of a measuring child process (see run_real_processes)
RECORD_FIELDS = (  # what a child reports of its last record
    "input_token_count",
    "output_token_count",
    "cached_token_count",
    "thinking_token_count",
    "model",
    "success",
)


@dataclass
class RealResult:
    blocks: int
    warmup: int
    times: dict[str, list[int]]  # arm -> ns per call, one per block
    by_position: list[float]  # median ns of the k-th call of a block, all arms
    url: str
    dropped: int
    records: int
    last_record: Any
    processes: int = 1
    per_process: list[float] = field(default_factory=list)  # vividly's median diff, each

    def median(self, arm: str) -> float:
        return statistics.median(self.times[arm])

    def diffs(self, arm: str) -> list[float]:
        """Paired: the arm's call minus the undecorated call of the same block."""
        return paired_diffs(self.times[arm], self.times["undecorated"])

    def median_diff(self, arm: str) -> float:
        return statistics.median(self.diffs(arm))

    def median_diff_ci(self, arm: str) -> tuple[float, float]:
        return median_ci(self.diffs(arm))

    def mean_diff(self, arm: str) -> tuple[float, float]:
        """Mean paired difference and the half-width of its 95% CI (normal approximation)."""
        return mean_ci(self.diffs(arm))


def start_fake_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "vividly_trace.testing.fake_gemini", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=str(ROOT),
    )
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(30)
    match = re.search(r"listening on (http://\S+)", line[0] if line else "")
    if not match:
        stop_process(proc)
        raise RuntimeError(f"the fake Gemini server did not start (got {line!r})")
    return proc, match.group(1)


def stop_process(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def run_real_processes(blocks: int, warmup: int, processes: int) -> RealResult:
    """:func:`run_real` in ``processes`` fresh interpreters, one after the other, pooled.

    One process's result moves by a few µs from run to run (memory layout, caches) more
    than its own confidence interval says; pooling fresh processes spreads that out, and
    the per-process medians show it."""
    parts: list[dict[str, Any]] = []
    for i in range(processes):
        out = subprocess.run(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                CHILD,
                "--blocks",
                str(blocks),
                "--warmup",
                str(warmup),
            ],
            capture_output=True,
            text=True,
            cwd=str(ROOT),
            timeout=3600,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"real-call process {i + 1} failed: {out.stderr[-2000:]}")
        parts.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"  process {i + 1}/{processes} done", flush=True)
    arms = list(parts[0]["times"])
    times = {arm: [t for part in parts for t in part["times"][arm]] for arm in arms}
    positions = [
        [t for part in parts for t in part["positions"][k]]
        for k in range(len(parts[0]["positions"]))
    ]
    per_process = [
        statistics.median(paired_diffs(part["times"]["vividly"], part["times"]["undecorated"]))
        for part in parts
    ]
    return RealResult(
        blocks=blocks * processes,
        warmup=warmup,
        times=times,
        by_position=[statistics.median(p) for p in positions],
        url=parts[-1]["url"],
        dropped=sum(part["dropped"] for part in parts),
        records=sum(part["records"] for part in parts),
        last_record=SimpleNamespace(**parts[-1]["last_record"]),
        processes=processes,
        per_process=per_process,
    )


def child(argv: list[str]) -> int:
    """``bench_real_call.py --child``: one :func:`run_real`, printed as one JSON line."""
    parser = argparse.ArgumentParser(prog="bench_real_call.py --child")
    parser.add_argument("--blocks", type=int, required=True)
    parser.add_argument("--warmup", type=int, required=True)
    args = parser.parse_args(argv)
    result, positions = run_real(args.blocks, args.warmup)
    rec = result.last_record
    summary: dict[str, Any] = {f: getattr(rec, f, None) for f in RECORD_FIELDS}
    summary["cost_usd"] = str(getattr(rec, "cost_usd", None))
    print(
        json.dumps(
            {
                "times": result.times,
                "positions": positions,
                "url": result.url,
                "dropped": result.dropped,
                "records": result.records,
                "last_record": summary,
            }
        )
    )
    return 0


def run_real(blocks: int, warmup: int) -> tuple[RealResult, list[list[int]]]:
    """Randomised blocks: each block times one call of every arm, in a shuffled order."""
    from google import genai
    from google.genai import types

    proc, url = start_fake_server()
    try:
        client = genai.Client(
            vertexai=False,
            api_key="fake-key",
            http_options=types.HttpOptions(base_url=url, api_version="v1beta"),
        )

        def call_gemini() -> Any:
            return client.models.generate_content(model=MODEL, contents="Book me a flight")

        def call_gemini_copy() -> Any:
            return client.models.generate_content(model=MODEL, contents="Book me a flight")

        def call_gemini_w() -> Any:  # the wrapt control's own function: see report.WRAPT_NOTE
            return client.models.generate_content(model=MODEL, contents="Book me a flight")

        from vividly_trace import _active as vividly_active
        from vividly_trace import integrations

        def call_gemini_u() -> Any:  # made outside any logged call, with capture on
            return client.models.generate_content(model=MODEL, contents="Book me a flight")

        sink = DiscardSink()
        configure_vividly(sink, queue_size=max(10_000, 3 * (blocks + warmup)))
        # Keep the callables in a list, not as dict keys or in sets: a wrapt wrapper
        # hashes and compares equal to the function it wraps.
        arms: list[tuple[str, Callable[[], Any]]] = [
            ("undecorated", call_gemini),
            ("undecorated_copy", call_gemini_copy),
            ("wrapt", passthrough(call_gemini_w)),
            ("vividly", logged_prompt("bench_real")(call_gemini)),
            ("vividly_capture", logged_prompt("bench_capture")(call_gemini)),
            ("unlogged_capture", call_gemini_u),
        ]
        # Client capture is installed for the whole run and switched on for the capture
        # arms only (the active set-up's flag, set outside the timed region), so every arm
        # goes through the same patched class (patching per arm would invalidate the
        # interpreter's method caches): the other arms pay the capture wrapper's
        # pass-through (a wrapt call and one flag test).
        captured = {"vividly_capture", "unlogged_capture"}
        pipeline: Any = vividly_active.state.pipeline
        integrations.install()
        rng = random.Random(20240601)
        for _ in range(warmup):
            for name, fn in arms:
                pipeline.capture_clients = name in captured
                fn()
        vividly_trace.flush(timeout=60)
        gc.collect()

        def switch(name: str) -> None:
            pipeline.capture_clients = name in captured

        def progress(done: int) -> None:
            if done % max(1, blocks // 4) == 0:
                print(f"  {done}/{blocks} blocks", flush=True)

        # Each response is freed outside the timed region, as the decorated arm's is (its
        # record keeps it until the worker has built the record).
        times, positions = time_blocks(arms, blocks, rng, switch, progress)
        vividly_trace.flush(timeout=60)
        stats = vividly_trace.stats()
        result = RealResult(
            blocks=blocks,
            warmup=warmup,
            times=times,
            by_position=[statistics.median(p) for p in positions],
            url=url,
            dropped=sum(stats["dropped"].values()),
            records=sink.records,
            last_record=sink.last_with_usage,
        )
        vividly_trace.shutdown()
        client.close()
        return result, positions
    finally:
        stop_process(proc)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--blocks", "--pairs", type=int, help="real-call blocks per process (default 2000/150)"
    )
    parser.add_argument(
        "--processes", type=int, help="fresh processes for the real-call part (default 3)"
    )
    parser.add_argument("--warmup", type=int, help=argparse.SUPPRESS)


def measure(args: argparse.Namespace) -> RealResult:
    blocks = args.blocks or (150 if args.quick else 2000)
    warmup = args.warmup or (50 if args.quick else 200)
    processes = args.processes or 3
    print(
        f"\n[2] real google-genai call vs fake server process: {processes} "
        f"processes x {blocks} blocks",
        flush=True,
    )
    return run_real_processes(blocks, warmup, processes)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == [CHILD]:
        return child(args[1:])
    return report.main(__file__, __doc__, [sys.modules[__name__]], argv)


if __name__ == "__main__":
    sys.exit(main())
