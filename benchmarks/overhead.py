"""Overhead of ``@logged_prompt``: per call, and on a real ``google-genai`` call.

Run on demand (a benchmark, not a test)::

    .venv/bin/python benchmarks/overhead.py            # full run, ~2 minutes
    .venv/bin/python benchmarks/overhead.py --quick    # smoke run, ~15 seconds

The entry point: it runs every part below in one process (same machine state; the real-call
part in fresh child processes), in this order, and writes one section of ``BENCHMARKS.md``.
Each part is its own module and runs alone too (printing its part, writing nothing):

1. ``bench_per_call.py``: the **per-call cost** of a no-op function, undecorated, with a
   bare ``wrapt`` pass-through, ``@logged_prompt``, an OpenTelemetry SDK span, and
   ``@logged_prompt`` returning a ``GenerateContentResponse``; loop only and loop + drain.
2. ``bench_real_call.py`` (``--no-real`` skips it): the **latency added to a real call** of
   the ``google-genai`` client against the fake Gemini server in another process, in
   randomised blocks, pooled over fresh processes (``--processes``).
3. ``bench_breakdown.py`` (``--no-breakdown`` skips it): **a breakdown**, the caller-thread
   cost and the worker cost measured apart, and micro-timings of the pieces of the hot path
   and of the record building (private modules; a piece whose internals moved is ``n/a``).
4. ``bench_app_latency.py`` (``--no-app`` skips it): **application threads while a worker
   drains a backlog**, with the worker's GIL pacing on and off.

Shared: ``_common.py`` (the things measured, timing), ``_stats.py`` (paired differences,
order-statistic confidence intervals) and ``report.py`` (the Markdown, the command line).
The results are printed and written to ``BENCHMARKS.md`` between
``<!-- overhead:start -->`` and ``<!-- overhead:end -->`` (``--no-write`` to skip).
Targets (issue 2): vividly's overhead at most 1/8 of the OpenTelemetry span's overhead, and
under 10 microseconds added to the real client call.
"""

from __future__ import annotations

import sys

import bench_app_latency
import bench_breakdown
import bench_per_call
import bench_real_call
import report

PARTS = (bench_per_call, bench_real_call, bench_breakdown, bench_app_latency)


def main(argv: list[str] | None = None) -> int:
    return report.main(__file__, __doc__, PARTS, argv, entry_point=True)


if __name__ == "__main__":
    sys.exit(main())
