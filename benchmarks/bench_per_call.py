"""Per-call cost of ``@logged_prompt`` on a no-op function.

Run alone (prints its section, does not write BENCHMARKS.md)::

    .venv/bin/python benchmarks/bench_per_call.py [--quick] [--iterations N] [--repeats N]

Variants: (a) undecorated (the baseline), (b) a bare ``wrapt`` pass-through decorator,
(c) ``@logged_prompt("bench")`` configured with a sink that discards, in the default
background mode, (d) an OpenTelemetry SDK span (``TracerProvider`` + ``BatchSpanProcessor``
+ a no-op exporter) around the call, and (e) ``@logged_prompt`` on a function returning a
realistic ``GenerateContentResponse`` (so usage extraction and pricing run), and
(f) ``@logged_prompt`` on a no-op function of its own whose ``__self__`` (which
``logged_prompt`` writes onto a plain function, to spare wrapt a failing lookup on every
call) is deleted after decorating: what (c) costs without that shortcut. Each variant
is timed over many iterations with ``perf_counter_ns``; repeats are interleaved (rounds of
A B C D E F, rotated each round) and the queues are drained between repeats, outside the
timed region. Overhead is paired per round (variant - baseline in the same round), then the
median over rounds is taken.

The time of the background workers (vividly's sink worker, OpenTelemetry's export thread)
that runs during the loop is part of the measured time: with the GIL, it is time the
caller's thread does not run. Because a worker that cannot keep up with a tight loop leaves
records queued when the loop ends (drained outside the timed region), the result also has
the cost *including the drain* (loop + ``flush()``: every record built and handed to the
sink) and how many records were still queued when the loop ended.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter_ns
from typing import Any

import report
from _common import (
    DiscardSink,
    configure_vividly,
    drain,
    make_otel,
    make_response,
    otel_queued,
    passthrough,
    rotation,
    strip_self_shortcut,
    time_loop,
)
from _stats import paired_diffs

import vividly_trace
from vividly_trace import logged_prompt

# As a part of overhead.py (see report.Part): its keyword in report.render_overhead(), and
# the entry point's flag that skips it, with the flag's help.
KEY: str = "micro"
SKIP: tuple[str, str] | None = None


def make_variants(tracer: Any) -> tuple[dict[str, Callable[[], Any]], bool]:
    """The callables timed, by name, in the order of the report's letters (a), (b), ...;
    ``tracer`` is OpenTelemetry's. Also: whether the installed ``logged_prompt`` wrote
    ``__self__`` onto the function it decorates (if not, (f) is the same as (c)).

    vividly must be configured before they are called; a wrapt wrapper hashes and compares
    equal to the function it wraps, so they are kept as dict values, never keys.
    """
    response = make_response()

    def noop() -> None:
        return None

    def noop_w() -> None:  # (b)'s own function: see report.WRAPT_NOTE
        return None

    def noop_response() -> Any:
        return response

    def noop_no_self() -> None:  # (f)'s own function, to take its __self__ away
        return None

    def otel_span() -> None:
        with tracer.start_as_current_span("x"):
            noop()

    no_self = logged_prompt("bench")(noop_no_self)
    shortcut = strip_self_shortcut(noop_no_self)
    variants: dict[str, Callable[[], Any]] = {
        "baseline": noop,
        "wrapt": passthrough(noop_w),
        "vividly": logged_prompt("bench")(noop),
        "otel_span": otel_span,
        "vividly_response": logged_prompt("bench")(noop_response),
        "vividly_no_self": no_self,
    }
    return variants, shortcut


@dataclass
class MicroResult:
    iterations: int
    repeats: int
    per_call: dict[str, list[float]]  # variant -> loop ns/call, one per round
    with_drain: dict[str, list[float]]  # variant -> (loop + drain) ns/call, one per round
    queued_at_end: dict[str, list[int | None]]  # records/spans still queued after the loop
    dropped: int
    enqueued: int
    written: int
    last_record: Any
    order: list[str]
    self_shortcut: bool  # the installed logged_prompt wrote __self__ ((f) differs from (c))

    def median(self, name: str, drain: bool = False) -> float:
        return statistics.median((self.with_drain if drain else self.per_call)[name])

    def diffs(self, name: str, drain: bool = False, reference: str = "baseline") -> list[float]:
        """Per round: the variant minus ``reference`` (the baseline) of the same round."""
        data = self.with_drain if drain else self.per_call
        return paired_diffs(data[name], data[reference])

    def overhead(self, name: str, drain: bool = False, reference: str = "baseline") -> float:
        """Median over rounds of (variant - baseline) in the same round."""
        return statistics.median(self.diffs(name, drain, reference))

    def overhead_range(
        self, name: str, drain: bool = False, reference: str = "baseline"
    ) -> tuple[float, float]:
        diffs = self.diffs(name, drain, reference)
        return min(diffs), max(diffs)

    def ratio(self, name: str, drain: bool = False) -> float:
        return self.overhead(name, drain) / self.overhead("otel_span", drain)

    def ratio_range(self, name: str, drain: bool = False) -> tuple[float, float]:
        ratios = [
            v / o
            for v, o in zip(self.diffs(name, drain), self.diffs("otel_span", drain), strict=True)
        ]
        return min(ratios), max(ratios)

    def queued(self, name: str) -> str:
        values = [v for v in self.queued_at_end[name] if v is not None]
        if not values:
            return "n/a"
        return f"{statistics.median(values):,.0f}"


def run_micro(iterations: int, repeats: int) -> MicroResult:
    sink = DiscardSink()
    configure_vividly(sink, queue_size=iterations + 1)
    provider, tracer, processor = make_otel(max_queue_size=iterations + 1)
    variants, shortcut = make_variants(tracer)
    names = list(variants)

    def queued(name: str) -> int | None:
        if name == "otel_span":
            return otel_queued(processor)
        if name.startswith("vividly"):
            return int(vividly_trace.stats()["sinks"][sink.name]["queued"])
        return 0

    # Warm-up: every variant, a tenth of a repeat.
    for name in names:
        time_loop(variants[name], max(1000, iterations // 10))
        drain(provider)
    before = vividly_trace.stats()

    per_call: dict[str, list[float]] = {name: [] for name in names}
    with_drain: dict[str, list[float]] = {name: [] for name in names}
    queued_at_end: dict[str, list[int | None]] = {name: [] for name in names}
    orders: list[str] = []
    letters = "abcdefghij"
    for r in range(repeats):
        order = rotation(names, r)  # ABCDEF, BCDEFA, ...
        orders.append("".join(letters[names.index(n)] for n in order))
        for name in order:
            gc.collect()
            ns = time_loop(variants[name], iterations)
            queued_at_end[name].append(queued(name))
            t0 = perf_counter_ns()
            drain(provider)  # outside the timed region (timed apart)
            drain_ns = perf_counter_ns() - t0
            per_call[name].append(ns / iterations)
            with_drain[name].append((ns + drain_ns) / iterations)
        print(
            f"  round {r + 1}/{repeats}: "
            + "  ".join(
                f"{n}={per_call[n][-1]:.0f}ns (+drain {with_drain[n][-1]:.0f})" for n in names
            ),
            flush=True,
        )
    after = vividly_trace.stats()
    result = MicroResult(
        iterations=iterations,
        repeats=repeats,
        per_call=per_call,
        with_drain=with_drain,
        queued_at_end=queued_at_end,
        dropped=sum(after["dropped"].values()) - sum(before["dropped"].values()),
        enqueued=after["enqueued"] - before["enqueued"],
        written=after["written"] - before["written"],
        last_record=sink.last_with_usage,
        order=orders,
        self_shortcut=shortcut,
    )
    provider.shutdown()
    vividly_trace.shutdown()
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--iterations", type=int, help="calls per repeat (default 200k/20k)")
    parser.add_argument("--repeats", type=int, help="interleaved repeats (default 9/5)")


def measure(args: argparse.Namespace) -> MicroResult:
    iterations = args.iterations or (20_000 if args.quick else 200_000)
    repeats = args.repeats or (5 if args.quick else 9)
    print(f"\n[1] per-call cost: {iterations:,} calls x {repeats} interleaved repeats", flush=True)
    return run_micro(iterations, repeats)


def main(argv: list[str] | None = None) -> int:
    return report.main(__file__, __doc__, [sys.modules[__name__]], argv)


if __name__ == "__main__":
    sys.exit(main())
