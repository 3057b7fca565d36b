"""A breakdown of the per-call cost: caller thread vs worker, and the pieces of the hot path.

Run alone (prints its section, does not write BENCHMARKS.md)::

    .venv/bin/python benchmarks/bench_breakdown.py [--quick]

The caller-thread cost and the worker cost of each per-call variant (see
``bench_per_call.py``) measured apart: the worker is parked during the loop, then drained
and the drain timed. Then micro-timings (``timeit``, best of repeats) of the pieces of the
hot path and of the record building. These reach into private modules of ``vividly_trace``
(``_call``, ``_build``, ``_active``, ``_context``, ``_ids``, ``usage``, ``_record``) to time
the pieces; a piece whose internals moved is reported as ``n/a`` and the run still finishes.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import gc
import statistics
import sys
import timeit
from collections.abc import Callable
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Any

import report
from _common import (
    DiscardSink,
    configure_vividly,
    make_otel,
    make_response,
    passthrough,
    rotation,
    sets_self_shortcut,
    settle,
    time_loop,
)
from bench_per_call import make_variants

import vividly_trace
from vividly_trace import logged_prompt

# As a part of overhead.py (see report.Part): its keyword in report.render_overhead(), and
# the entry point's flag that skips it, with the flag's help.
KEY: str = "breakdown"
SKIP: tuple[str, str] | None = ("--no-breakdown", "skip the breakdown")

Piece = tuple[str, str, float | None, str]  # (where, what, ns, note)


@dataclass
class Split:
    caller_ns: float  # per call, worker parked (loop only)
    worker_ns: float  # per record, measured as the drain after the loop


@dataclass
class Breakdown:
    chunk: int
    rounds: int
    splits: dict[str, Split] = field(default_factory=dict)
    pieces: list[Piece] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _median_ns(stmt: str, ns: dict[str, Any], number: int, repeat: int) -> float:
    """Best (minimum) ns per execution of ``stmt`` over ``repeat`` runs, as ``timeit``
    recommends for pieces this small (gc disabled while timing)."""
    timer = timeit.Timer(stmt, globals=ns)
    return min(timer.repeat(repeat, number)) / number * 1e9


def run_splits(chunk: int, rounds: int) -> dict[str, Split]:
    """Each variant with its worker parked: time ``chunk`` calls (caller thread only), then
    time the drain (the worker's per-record work, plus one wake-up per chunk). Small chunks,
    so the queued objects do not make the garbage collector's passes longer."""
    sink = DiscardSink()
    configure_vividly(sink, queue_size=chunk + 1, parked=True)
    provider, tracer, _processor = make_otel(max_queue_size=chunk + 1, parked=True)

    def flush_vividly() -> None:
        vividly_trace.flush(timeout=60)

    def flush_otel() -> None:
        provider.force_flush(60_000)

    def flush_nothing() -> None:
        pass

    variants: dict[str, tuple[Callable[[], Any], Callable[[], None]]] = {}
    for name, fn in make_variants(tracer)[0].items():
        if name.startswith("vividly"):
            variants[name] = (fn, flush_vividly)
        elif name == "otel_span":
            variants[name] = (fn, flush_otel)
        else:
            variants[name] = (fn, flush_nothing)
    caller: dict[str, list[float]] = {n: [] for n in variants}
    worker: dict[str, list[float]] = {n: [] for n in variants}
    for fn, flush in variants.values():  # warm-up
        time_loop(fn, chunk)
        flush()
    settle()
    names = list(variants)
    for r in range(rounds):
        for name in rotation(names, r):
            fn, flush = variants[name]
            gc.collect()
            caller[name].append(time_loop(fn, chunk) / chunk)
            t0 = perf_counter_ns()
            flush()
            worker[name].append((perf_counter_ns() - t0) / chunk)
            settle()
    provider.shutdown()
    vividly_trace.shutdown()
    base = statistics.median(caller["baseline"])
    return {
        name: Split(
            caller_ns=statistics.median(caller[name]) - base,
            worker_ns=statistics.median(worker[name]),
        )
        for name in variants
        if name != "baseline"
    }


def _kind(cls: Any) -> str:
    """What sort of class ``cls`` is, for the labels (the package keeps evolving)."""
    if cls is None:
        return "?"
    params = getattr(cls, "__dataclass_params__", None)
    if params is not None:
        n = len(getattr(cls, "__dataclass_fields__", {}))
        return f"{'frozen ' if params.frozen else ''}dataclass, {n} fields"
    if isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields"):
        return f"named tuple, {len(cls._fields)} fields"
    return getattr(cls, "__name__", "?")


def run_pieces(number: int, repeat: int) -> tuple[list[Piece], list[str]]:
    """Micro-timings of the hot path's pieces and of the record building.

    These use private names of ``vividly_trace`` (``_call``, ``_build``, ``_active``, ``_ids``,
    ``usage``, ``_record``): a piece whose internals moved is reported as ``n/a``.
    """
    rows: list[Piece] = []
    notes: list[str] = []
    sink = DiscardSink()
    # Parked: the queue only grows while pieces run; it is drained between pieces.
    configure_vividly(sink, queue_size=10 * number * repeat + 1, parked=True)
    ns: dict[str, Any] = {
        "noop": lambda: None,
        "noop_w": lambda: None,
        "noop_fast": lambda: None,
        "dt": dt,
        "UTC": dt.timezone.utc,
    }
    ns["noop_fast"].__self__ = None  # the shortcut: what logged_prompt writes, or wrote
    shortcut = (
        "what `logged_prompt` sets"
        if sets_self_shortcut()
        else "a shortcut `logged_prompt` no longer takes"
    )
    try:
        from time import time_ns

        from vividly_trace import _active, _build, _call, _context, _ids
        from vividly_trace._record import PromptExecution, new_record
        from vividly_trace.usage import extract
        from vividly_trace.usage import gemini as usage_gemini
        from vividly_trace.usage._types import ResponseInfo, Usage

        response = make_response()
        pipeline: Any = _active.state.pipeline
        worker = pipeline.workers[0]
        spec = _call.TemplateSpec(template_key="bench")
        call = _call.CallHandle(spec, None)
        call._finish()
        rcall = _call.CallHandle(spec, None)
        rcall._finish()
        rcall._response = response
        record = _build.build_record(rcall, pipeline.pricing, True)
        built = []
        for _ in range(200):
            done = _call.CallHandle(spec, None)
            done._record = record
            built.append(done)
        ns.update(
            _call=_call,
            _ids=_ids,
            g=usage_gemini,
            time_ns=time_ns,
            perf_counter_ns=perf_counter_ns,
            CallHandle=_call.CallHandle,
            current_call=_context.current_call,
            reset_token=_context.reset_token,
            build_record=_build.build_record,
            extract=extract,
            _state=_active.state,
            UNSET=_active.UNSET,
            next_sequence=_ids.next_sequence,
            spec=spec,
            call=call,
            rcall=rcall,
            response=response,
            meta=response.usage_metadata,
            finish_reason=response.candidates[0].finish_reason,
            usage=extract(response).usage,
            Usage=Usage,
            ResponseInfo=ResponseInfo,
            PE=PromptExecution,
            fields={f: getattr(record, f) for f in PromptExecution.__dataclass_fields__},
            p=pipeline,
            worker=worker,
            dq=collections.deque(),
            builder=pipeline.builder,
            NR=new_record,
            wrapped_pt=passthrough(ns["noop_w"]),
            wrapped_fast=passthrough(ns["noop_fast"]),
            new=object.__new__,
            built=built,
            values=[getattr(record, f) for f in PromptExecution.__dataclass_fields__],
            wrapped_v=logged_prompt("bench")(ns["noop"]),
        )
    except Exception as exc:  # the internals moved: report, do not fail the run
        notes.append(f"some pieces are n/a: private API changed ({exc!r})")

    empty = _median_ns("pass", ns, number, repeat)

    def piece(where: str, what: str, stmt: str, note: str = "", div: int = 1) -> None:
        try:
            value: float | None = _median_ns(stmt, ns, max(1, number // div), repeat) - empty
        except Exception as exc:
            value = None
            note = f"n/a: {type(exc).__name__}: {exc}"[:100]
        rows.append((where, what, value, note))
        with contextlib.suppress(Exception):  # drain what the piece queued
            vividly_trace.flush(timeout=120)
        settle()

    # -- caller thread: what the sync wrapper does, in order -------------------------------
    piece(
        "caller",
        "`wrapt` pass-through call: `passthrough(noop)()`",
        "wrapped_pt()",
        "incl. the no-op call itself",
    )
    piece(
        "caller",
        f"- the same on a function with `__self__ = None` ({shortcut})",
        "wrapped_fast()",
    )
    piece(
        "caller",
        "whole vividly call: `logged_prompt('bench')(noop)()`",
        "wrapped_v()",
        "worker parked; incl. wrapt and the no-op call",
        div=10,
    )
    piece(
        "caller",
        "1. read `_state.pipeline` + 2 identity checks",
        "p_ = _state.pipeline\nif p_ is None: pass\nif p_ is UNSET: pass",
    )
    piece("caller", "2. `current_call.get()`", "current_call.get()")
    piece(
        "caller",
        "3. `CallHandle(spec, parent, trace_getter)` (its one constructor)",
        "c_ = CallHandle(spec, None, None)",
        div=10,
    )
    piece("caller", "- in it: `next_sequence()`", "next_sequence()")
    piece("caller", "- in it: `time_ns()`", "time_ns()")
    piece("caller", "- in it: `perf_counter_ns()`", "perf_counter_ns()")
    piece(
        "caller",
        "4. `current_call.set(call)` ... `current_call.reset(token)`",
        "t_ = current_call.set(call)\ncurrent_call.reset(t_)",
    )
    piece(
        "caller",
        "- same through the `reset_token(token)` helper",
        "t_ = current_call.set(call)\nreset_token(t_)",
    )
    piece("caller", "5. `call._t1 = perf_counter_ns()`", "call._t1 = perf_counter_ns()")
    piece("caller", "6. `call._result = result`", "call._result = None")
    piece(
        "caller",
        "7. `p.submit(call)` (one sink: `_submit_one` -> `SinkWorker.offer`)",
        "p.submit(call)",
        div=10,
    )
    piece("caller", "- `worker.offer(call)`", "worker.offer(call)", div=10)
    piece("caller", "  - a `deque` append alone (+ `pop()`)", "dq.append(call)\ndq.pop()")
    # -- worker thread: building one record ---------------------------------------------
    piece(
        "worker", "`build_record(call)`, no response", "build_record(call, p.pricing, True)", div=10
    )
    piece(
        "worker",
        "`build_record(call)`, `GenerateContentResponse`",
        "build_record(rcall, p.pricing, True)",
        div=10,
    )
    piece("worker", "- `extract(response)`", "extract(response)", div=10)
    piece(
        "worker", "  - `usage_from_metadata(usage_metadata)`", "g.usage_from_metadata(meta)", div=10
    )
    piece(
        "worker",
        f"  - `Usage(...)` ({_kind(ns.get('Usage'))})",
        "Usage(input_tokens=1, output_tokens=2, total_tokens=3, cached_tokens=None, "
        "thinking_tokens=None, tool_use_tokens=None, audio_input_tokens=None, "
        "cached_audio_tokens=None)",
        div=10,
    )
    piece(
        "worker",
        f"  - `ResponseInfo(...)` ({_kind(ns.get('ResponseInfo'))})",
        "ResponseInfo(usage=usage, provider='gemini', response_model='m', "
        "finish_reason='STOP', block_reason=None)",
        div=10,
    )
    piece(
        "worker",
        "  - `_modality_count(prompt_tokens_details, 'AUDIO')`",
        "g._modality_count(meta.prompt_tokens_details, 'AUDIO')",
        div=10,
    )
    piece("worker", "  - `_enum_name(finish_reason)`", "g._enum_name(finish_reason)")
    piece("worker", "    - `finish_reason.name` (enum property)", "finish_reason.name")
    piece("worker", "    - `finish_reason._name_` (plain attribute)", "finish_reason._name_")
    piece(
        "worker",
        "- `pricing.cost(model, usage)` (Decimal)",
        "p.pricing.cost('gemini-2.5-flash', usage)",
        div=10,
    )
    piece("worker", "- `call.execution_id` (`format_uuid7`)", "call.execution_id", div=10)
    piece(
        "worker",
        "- `datetime.fromtimestamp(wall_ns // 1000 / 1e6, UTC)`",
        "dt.datetime.fromtimestamp(call._wall_ns // 1000 / 1e6, UTC)",
    )
    n_fields = len(ns.get("values", ()))
    piece(
        "worker",
        f"- `new_record(*values)` ({n_fields} positional, frozen record)",
        "NR(*values)",
        div=10,
    )
    piece(
        "worker",
        "  - `PromptExecution(*values)`, the frozen class's own constructor",
        "PE(*values)",
        div=10,
    )
    piece(
        "worker",
        "`RecordBuilder.build_batch` of 200 records already built (one lock, the memo "
        "check; per batch, not per record)",
        "builder.build_batch(built, None)",
        div=200,
    )
    vividly_trace.shutdown()
    return rows, notes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options of its own: ``--quick`` sets the sizes."""


def measure(args: argparse.Namespace) -> Breakdown:
    chunk, rounds = (2000, 15) if args.quick else (2000, 60)
    print(f"\n[3] breakdown: {rounds} rounds of {chunk} calls, parked workers", flush=True)
    breakdown = Breakdown(chunk=chunk, rounds=rounds)
    breakdown.splits = run_splits(chunk, rounds)
    number = 20_000 if args.quick else 200_000
    breakdown.pieces, breakdown.notes = run_pieces(number, 5 if args.quick else 7)
    return breakdown


def main(argv: list[str] | None = None) -> int:
    return report.main(__file__, __doc__, [sys.modules[__name__]], argv)


if __name__ == "__main__":
    sys.exit(main())
