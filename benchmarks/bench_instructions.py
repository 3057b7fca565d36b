"""Instructions per real ``google-genai`` call, counted by ``valgrind --tool=callgrind``.

Run on demand (a benchmark, not a test; needs ``valgrind`` and the ``genai`` extra)::

    .venv/bin/python benchmarks/bench_instructions.py             # ~10 min; updates BENCHMARKS.md
    .venv/bin/python benchmarks/bench_instructions.py --quick     # smoke run, prints only
    .venv/bin/python benchmarks/bench_instructions.py --tree before=/tmp/old --tree after=.

Wall-clock differences of a few µs on a shared 2-core VM move by more than their size from
run to run; instruction counts do not. Each arm runs in its own fresh interpreter under
callgrind: ``--warmup`` calls, then N calls of ``client.models.generate_content`` of the
real client against the fake Gemini server (``vividly_trace.testing.fake_gemini``, one
server started here, outside valgrind, for every run), then ``flush()`` (so every record is
built and handed to a discarding sink). Each arm runs twice, with ``--calls`` and with
``--calls-low`` calls, and the cost of one call is the difference of the two counts divided
by the difference of the call counts: start-up, imports, warm-up and shutdown cancel out.
``--separate-threads=yes`` splits the count into the caller's thread (the application's,
what it waits for) and every other thread (vividly's sink worker, which competes for the
GIL; what the whole process pays is the sum). With ``--cache-sim`` (the default) callgrind
also simulates the caches and counts level-1 instruction-cache misses, which is what a small
wrapper costs on a real call, whose ~1 ms of ``httpx`` and ``pydantic`` work between two
wrapped calls evicts the wrapper's code.

Arms (each against ``baseline``, the same call in an interpreter where vividly is imported but
not configured): an identical baseline (the A/A control: the counts' own noise); ``configure
(capture_clients=False)`` with the call undecorated (capture off: the client left as it is);
a bare ``wrapt`` pass-through; ``@logged_prompt`` with capture off; ``@logged_prompt`` with
capture on (the default); the undecorated call with capture on (recorded under its caller's
key). ``--tree NAME=PATH`` (repeatable) runs every arm with ``PYTHONPATH=PATH``: the code of
another checkout (e.g. ``git archive main | tar -x -C /tmp/old``) measured in the same run.
The results are printed and written to ``BENCHMARKS.md`` between
``<!-- instructions:start -->`` and ``<!-- instructions:end -->`` (``--no-write`` to skip).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import report
from _common import MODEL, ROOT, DiscardSink, parse_trees, passthrough

START_MARK = "<!-- instructions:start -->"
END_MARK = "<!-- instructions:end -->"
CHILD = "--child"
BASELINE = "baseline"
ARMS: dict[str, str] = {  # name -> label, in the report's order
    BASELINE: "undecorated, vividly imported, not configured (baseline)",
    "baseline_copy": "control: the same again (A/A)",
    "capture_off": "undecorated, `configure(capture_clients=False)`",
    "wrapt": "control: bare `wrapt` pass-through",
    "decorated": "`@logged_prompt`, capture off",
    "decorated_capture": "`@logged_prompt`, capture on (the default)",
    "unlogged_capture": "undecorated, capture on: recorded under its caller's key",
}
TARGETS: dict[str, tuple[str, str]] = {  # arm -> (what issue 11 asks, how it is checked)
    "decorated_capture": ("under 10 µs added", "wall clock, `bench_real_call.py`"),
    "unlogged_capture": ("under 15 µs added", "wall clock, `bench_real_call.py`"),
    "capture_off": ("unchanged within the A/A noise", "instructions, this table"),
}


# --------------------------------------------------------------------------------------
# The measured process (under valgrind)
# --------------------------------------------------------------------------------------
CONTROL_C = r"""
#include <valgrind/callgrind.h>
void vt_start(void) { CALLGRIND_START_INSTRUMENTATION; CALLGRIND_ZERO_STATS; }
void vt_stop(void) { CALLGRIND_STOP_INSTRUMENTATION; }
"""


def build_control(directory: Path) -> Path:
    """A tiny shared library of callgrind client requests (``valgrind/callgrind.h``; no
    Python binding exists): start instrumenting (counts zeroed), stop."""
    source, library = directory / "vt_callgrind.c", directory / "vt_callgrind.so"
    source.write_text(CONTROL_C)
    subprocess.run(
        ["cc", "-O1", "-shared", "-fPIC", "-o", str(library), str(source)],
        check=True,
        capture_output=True,
    )
    return library


def child(argv: list[str]) -> int:
    """``bench_instructions.py --child ARM CALLS WARMUP URL LIBRARY``: one measured
    interpreter. Start-up and warm-up run uninstrumented (``--instr-atstart=no``); the
    counts cover the timed calls and the ``flush()`` after them."""
    import ctypes

    arm, calls, warmup, url = argv[0], int(argv[1]), int(argv[2]), argv[3]
    control = ctypes.CDLL(argv[4])
    from google import genai
    from google.genai import types

    import vividly_trace
    from vividly_trace import logged_prompt

    client = genai.Client(
        vertexai=False,
        api_key="fake-key",
        http_options=types.HttpOptions(base_url=url, api_version="v1beta"),
    )

    def call_gemini() -> Any:
        return client.models.generate_content(model=MODEL, contents="Book me a flight")

    sink = DiscardSink()
    if arm not in (BASELINE, "baseline_copy"):
        vividly_trace.configure(
            sinks=[sink],
            spool_dir=False,
            queue_size=max(10_000, 2 * (calls + warmup)),
            capture_clients=arm.endswith("_capture"),
        )
    fn: Any = call_gemini
    if arm == "wrapt":
        fn = passthrough(call_gemini)
    elif arm.startswith("decorated"):
        fn = logged_prompt("bench_instructions")(call_gemini)
    for _ in range(warmup):
        fn()
    vividly_trace.flush(timeout=60)
    control.vt_start()
    for _ in range(calls):
        response = fn()
        del response
    vividly_trace.flush(timeout=60)
    control.vt_stop()
    stats = vividly_trace.stats()
    dropped = sum(stats.get("dropped", {}).values()) if isinstance(stats, dict) else 0
    print(json.dumps({"records": sink.records, "dropped": dropped}))
    vividly_trace.shutdown()
    client.close()
    return 0


# --------------------------------------------------------------------------------------
# The parent: runs valgrind, reads its counts
# --------------------------------------------------------------------------------------
@dataclass
class Count:
    """Callgrind's totals of one run: event -> count, for the caller's thread and the rest."""

    caller: dict[str, int]
    others: dict[str, int]
    records: int
    dropped: int


def read_counts(files: list[Path]) -> tuple[dict[str, int], dict[str, int]]:
    """(thread 1's totals, the other threads' summed) from ``--separate-threads`` files."""
    caller: dict[str, int] = {}
    others: dict[str, int] = {}
    for path in files:
        events: list[str] = []
        totals: list[int] = []
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith("totals:"):
                totals = [int(x) for x in line.split()[1:]]
        thread = re.search(r"-(\d+)$", path.name)
        into = caller if thread is None or int(thread.group(1)) == 1 else others
        for event, value in zip(events, totals, strict=False):
            into[event] = into.get(event, 0) + value
    return caller, others


def run_one(
    arm: str, calls: int, warmup: int, url: str, tree: Path, cache_sim: bool, library: Path
) -> Count:
    out_dir = Path(tempfile.mkdtemp(prefix="vividly-callgrind-"))
    try:
        command = [
            "valgrind",
            "--tool=callgrind",
            "--separate-threads=yes",
            "--instr-atstart=no",
            f"--cache-sim={'yes' if cache_sim else 'no'}",
            f"--callgrind-out-file={out_dir}/callgrind.out",
            sys.executable,
            str(Path(__file__).resolve()),
            CHILD,
            arm,
            str(calls),
            str(warmup),
            url,
            str(library),
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(tree)}
        done = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=3600, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{arm} ({calls} calls) failed: {done.stderr[-3000:]}")
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        caller, others = read_counts(sorted(out_dir.glob("callgrind.out*")))
        return Count(caller, others, summary["records"], summary["dropped"])
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


@dataclass
class ArmResult:
    """Per call (high minus low run, divided by the calls between them)."""

    caller: dict[str, float]
    others: dict[str, float]
    records: int
    dropped: int


def per_call(high: Count, low: Count, n: int) -> ArmResult:
    def diff(a: dict[str, int], b: dict[str, int]) -> dict[str, float]:
        return {k: (a.get(k, 0) - b.get(k, 0)) / n for k in a.keys() | b.keys()}

    return ArmResult(
        diff(high.caller, low.caller), diff(high.others, low.others), high.records, high.dropped
    )


@dataclass
class Result:
    trees: dict[str, dict[str, list[ArmResult]]]  # tree -> arm -> one per repeat
    calls: int
    calls_low: int
    warmup: int
    cache_sim: bool
    seconds: float


def measure(args: argparse.Namespace) -> Result:
    from bench_real_call import start_fake_server, stop_process

    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    calls = args.calls or (12 if args.quick else 150)
    calls_low = args.calls_low if args.calls_low is not None else (4 if args.quick else 50)
    warmup = args.warmup or (5 if args.quick else 30)
    repeats = args.repeats or 1
    try:
        trees = parse_trees(args.tree, default_name="working tree")
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    arms = [a for a in ARMS if not args.arms or a in args.arms or a == BASELINE]
    jobs = [
        (tree, arm, r, n)
        for r in range(repeats)
        for tree in trees
        for arm in arms
        for n in (calls, calls_low)
    ]
    print(
        f"callgrind: {len(trees)} tree(s) x {len(arms)} arms x {repeats} repeat(s), "
        f"{calls} and {calls_low} calls after {warmup} warm-up calls; "
        f"{len(jobs)} valgrind runs, {args.jobs} at a time",
        flush=True,
    )
    t0 = time.monotonic()
    build_dir = Path(tempfile.mkdtemp(prefix="vividly-callgrind-lib-"))
    library = build_control(build_dir)
    proc, url = start_fake_server()
    try:
        with ThreadPoolExecutor(args.jobs) as pool:
            futures = {
                job: pool.submit(
                    run_one,
                    job[1],
                    job[3],
                    warmup,
                    url,
                    trees[job[0]],
                    not args.no_cache_sim,
                    library,
                )
                for job in jobs
            }
            counts: dict[tuple[str, str, int, int], Count] = {}
            for i, (job, future) in enumerate(futures.items()):
                counts[job] = future.result()
                print(f"  {i + 1}/{len(jobs)} {job[0]}: {job[1]} x{job[3]}", flush=True)
    finally:
        stop_process(proc)
        shutil.rmtree(build_dir, ignore_errors=True)
    result: dict[str, dict[str, list[ArmResult]]] = {
        tree: {
            arm: [
                per_call(
                    counts[tree, arm, r, calls], counts[tree, arm, r, calls_low], calls - calls_low
                )
                for r in range(repeats)
            ]
            for arm in arms
        }
        for tree in trees
    }
    return Result(result, calls, calls_low, warmup, not args.no_cache_sim, time.monotonic() - t0)


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------
def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _cell(runs: list[ArmResult], base: list[ArmResult], event: str, where: str) -> str:
    def value(r: ArmResult) -> float:
        if where == "caller":
            return r.caller.get(event, 0.0)
        return r.caller.get(event, 0.0) + r.others.get(event, 0.0)

    diffs = [value(a) - value(b) for a, b in zip(runs, base, strict=True)]
    text = f"{_median(diffs):+,.0f}"
    if len(diffs) > 1:
        text += f" ({min(diffs):+,.0f}..{max(diffs):+,.0f})"
    return text


def render(result: Result, env: dict[str, str]) -> str:
    lines = [
        "## Instructions per real call (`benchmarks/bench_instructions.py`)",
        "",
        f"- Date: {env['date']}",
        f"- Command: `{env['command']}`",
        f"- Python {env['python']}; valgrind {_valgrind_version()}; "
        f"commit {env['commit']}; google-genai {env['genai']}, wrapt {env['wrapt']}",
        f"- Each arm in a fresh interpreter under `valgrind --tool=callgrind "
        f"--separate-threads=yes{' --cache-sim=yes' if result.cache_sim else ''}`: "
        f"{result.warmup} warm-up calls, then {result.calls} (and, in a second run, "
        f"{result.calls_low}) calls of `client.models.generate_content` against the fake "
        f"Gemini server, then `flush()`; per call = (count of the long run - count of the "
        f"short run) / {result.calls - result.calls_low}. `PYTHONHASHSEED=0`. "
        f"Took {result.seconds / 60:.1f} min.",
        "- **caller**: the application's thread (what the call waits for); **all threads**: "
        "plus vividly's sink worker (record building, which competes for the GIL). "
        "Differences against the baseline arm of the same tree and repeat"
        + ("; with several repeats, the median and min..max." if _repeats(result) > 1 else "."),
        "",
    ]
    trees = list(result.trees)
    has_misses = result.cache_sim
    header = "| arm | " + " | ".join(
        f"{t}: caller Ir | {t}: all threads Ir"
        + (f" | {t}: caller I1 misses" if has_misses else "")
        + f" | {t}: caller / baseline"
        for t in trees
    )
    per_tree = 4 if has_misses else 3
    lines += [header + " |", "|---|" + "---:|" * (per_tree * len(trees))]
    for arm, label in ARMS.items():
        if any(arm not in result.trees[t] for t in trees):
            continue
        cells = []
        for t in trees:
            runs, base = result.trees[t][arm], result.trees[t][BASELINE]
            if arm == BASELINE:
                ir = _median([r.caller.get("Ir", 0.0) for r in runs])
                allir = _median([r.caller.get("Ir", 0.0) + r.others.get("Ir", 0.0) for r in runs])
                cells += [f"{ir:,.0f} per call", f"{allir:,.0f} per call"]
                if has_misses:
                    i1 = _median([r.caller.get("I1mr", 0.0) for r in runs])
                    cells.append(f"{i1:,.0f} per call")
                cells.append("1")
                continue
            cells += [_cell(runs, base, "Ir", "caller"), _cell(runs, base, "Ir", "all")]
            if has_misses:
                cells.append(_cell(runs, base, "I1mr", "caller"))
            ratio = _median([r.caller.get("Ir", 0.0) for r in runs]) / _median(
                [r.caller.get("Ir", 0.0) for r in base]
            )
            cells.append(f"{ratio:.4f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    for t in trees:
        records = {a: rs[-1].records for a, rs in result.trees[t].items()}
        dropped = sum(r.dropped for rs in result.trees[t].values() for r in rs)
        shown = ", ".join(f"{a} {n:,}" for a, n in records.items() if n)
        lines.append(
            f"- {t}: records written in the long run: {shown or 'none'}; dropped: {dropped}."
        )
    if len(trees) == 2:
        lines += ["", *_compare(result, *trees)]
    lines.append("")
    return "\n".join(lines)


def _added(result: Result, tree: str, arm: str) -> float:
    """Median caller instructions the arm adds per call, against its tree's baseline."""
    runs, base = result.trees[tree][arm], result.trees[tree][BASELINE]
    return _median(
        [r.caller.get("Ir", 0.0) - s.caller.get("Ir", 0.0) for r, s in zip(runs, base, strict=True)]
    )


def _compare(result: Result, old: str, new: str) -> list[str]:
    """The second tree against the first, per arm; an arm, or its change, within twice the
    larger A/A difference of the two trees is said to be within the noise."""
    noise = 0.0
    if "baseline_copy" in result.trees[old] and "baseline_copy" in result.trees[new]:
        noise = 2 * max(
            abs(_added(result, old, "baseline_copy")), abs(_added(result, new, "baseline_copy"))
        )
    lines = [
        f"**{new} against {old}** (caller instructions added per call; noise: twice the "
        f"larger A/A difference, {noise:,.0f}):",
        "",
    ]
    for arm, label in ARMS.items():
        if arm in (BASELINE, "baseline_copy"):
            continue
        if arm not in result.trees[old] or arm not in result.trees[new]:
            continue
        a, b = _added(result, old, arm), _added(result, new, arm)
        if abs(a) <= noise and abs(b) <= noise:
            change = "both within the noise"
        elif abs(b - a) <= noise:
            change = f"{b - a:+,.0f}: the change is within the noise"
        else:
            change = f"{b / a:.2f}x, {b - a:+,.0f}"
        lines.append(f"- {label}: {a:+,.0f} -> {b:+,.0f} ({change})")
    return lines


def _repeats(result: Result) -> int:
    return max(len(rs) for arms in result.trees.values() for rs in arms.values())


def _valgrind_version() -> str:
    try:
        out = subprocess.run(["valgrind", "--version"], capture_output=True, text=True, check=False)
        return out.stdout.strip().removeprefix("valgrind-") or "?"
    except OSError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    if args_list[:1] == [CHILD]:
        return child(args_list[1:])
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few calls (smoke run, no write)")
    parser.add_argument("--calls", type=int, help="calls in the long run (default 150)")
    parser.add_argument("--calls-low", type=int, help="calls in the short run (default 50)")
    parser.add_argument("--warmup", type=int, help="warm-up calls (default 30)")
    parser.add_argument("--repeats", type=int, help="runs of every arm (default 1)")
    parser.add_argument("--jobs", type=int, default=2, help="valgrind runs at a time (2)")
    parser.add_argument(
        "--tree", action="append", help="NAME=PATH: measure the code at PATH too (repeatable)"
    )
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), help="only these arms")
    parser.add_argument("--no-cache-sim", action="store_true", help="count instructions only")
    parser.add_argument("--no-write", action="store_true", help="do not write BENCHMARKS.md")
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args(args_list)
    env = report.environment(
        ".venv/bin/python benchmarks/bench_instructions.py " + " ".join(args_list)
    )
    result = measure(args)
    body = render(result, env)
    print("\n" + body)
    if not args.quick and not args.no_write:
        report.write_section(args.output, body, START_MARK, END_MARK)
        print(f"written to {args.output} (section {START_MARK} .. {END_MARK})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
