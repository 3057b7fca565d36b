"""The worker's cost per record with a response, and ``import vividly_trace``, for two or
more checkouts measured in the same run.

Run on demand (a benchmark, not a test)::

    git archive cb48808 | tar -x -C /tmp/before      # the code to compare against
    .venv/bin/python benchmarks/bench_record_cost.py --tree before=/tmp/before --tree after=.
    .venv/bin/python benchmarks/bench_record_cost.py ... --quick --no-write   # smoke run

Every measurement runs in a fresh interpreter with ``PYTHONPATH`` set to the tree's root,
trees alternating round by round (same machine, same minutes, same installed packages), so
the ratios hold although the machine's own speed moves from run to run:

- ``build_record(call, pricing, True)`` of a finished call whose response is a realistic
  ``GenerateContentResponse`` (thinking, cached input, modality details), as the worker
  builds it: ``timeit`` with the collector off, best of the repeats, per round; reported is
  the median over rounds. For a tree with client capture, also the same response reached
  through a captured request (what a real call now records).
- The worker's whole cost per record: ``--records`` decorated calls returning that
  response queued with the worker parked (``batch_size`` above them, a 1 h timer), then
  ``flush()`` timed: building, batching, handing to a discarding sink, one wake-up.
- ``import vividly_trace`` in a fresh interpreter minus ``python -c pass``, rounds
  interleaved, median over rounds, with each tree's byte-code caches written beforehand
  (in a temporary ``PYTHONPYCACHEPREFIX``, also where ``PYTHONDONTWRITEBYTECODE`` is set).

- Instructions per ``build_record`` (both ways of reaching the response), counted by
  ``valgrind --tool=callgrind`` (``--no-instructions`` skips it): a run of 2,500 calls
  minus one of 500, so start-up and imports cancel out. The timings move with the shared
  machine's speed; the counts do not.

The results are printed and written to ``BENCHMARKS.md`` between
``<!-- record-cost:start -->`` and ``<!-- record-cost:end -->`` (``--no-write`` to skip).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from time import perf_counter_ns
from typing import Any

import report
from _common import ROOT, parse_trees, tree_env

START_MARK = "<!-- record-cost:start -->"
END_MARK = "<!-- record-cost:end -->"
CHILD = "--child"
LOOP = "--loop"
MODES = ("returned", "captured")
NOT_APPLICABLE = 3  # a --loop child's exit status: the tree cannot run that mode


# --------------------------------------------------------------------------------------
# The measured process (PYTHONPATH = the tree)
# --------------------------------------------------------------------------------------
def child(records: int) -> dict[str, Any]:
    """One round in this interpreter: the ``build_record`` timings and the drain."""
    import gc
    import timeit

    from _common import DiscardSink, make_response

    import vividly_trace
    from vividly_trace import _active, _build, _call, logged_prompt

    sink = DiscardSink()
    options: dict[str, Any] = {
        "sinks": [sink],
        "spool_dir": False,
        "queue_size": records + 10,
        "batch_size": records + 1,
        "flush_interval": 3600,
    }
    try:
        vividly_trace.configure(capture_clients=False, **options)
    except TypeError:  # a tree from before client capture
        vividly_trace.configure(**options)
    pipeline: Any = _active.state.pipeline
    response = make_response()
    calls = {"returned": finished_call(_call, "returned", response)}
    if hasattr(_call, "GeminiRequest"):
        calls["captured"] = finished_call(_call, "captured", response)
    out: dict[str, Any] = {}
    gc.disable()
    try:
        for name, call in calls.items():
            record = _build.build_record(call, pipeline.pricing, True)
            assert record.input_token_count == 1234, record  # the response was read
            assert record.cost_usd is not None, record
            timer = timeit.Timer(
                "build(call, pricing, True)",
                globals={"build": _build.build_record, "call": call, "pricing": pipeline.pricing},
            )
            best = min(timer.repeat(repeat=7, number=2000)) / 2000
            out[f"build_{name}"] = best * 1e9
    finally:
        gc.enable()

    decorated = logged_prompt("bench_drain")(lambda: response)
    for _ in range(records):
        decorated()
    t0 = perf_counter_ns()
    flushed = vividly_trace.flush(timeout=120)
    out["drain"] = (perf_counter_ns() - t0) / records
    if not flushed or sink.records != records:
        raise RuntimeError(f"drain wrote {sink.records} of {records} records")
    out["dropped"] = sum(vividly_trace.stats()["dropped"].values())
    vividly_trace.shutdown()
    return out


def finished_call(_call: Any, mode: str, response: Any) -> Any:
    """A finished call of the tree's ``_call`` module whose record has ``response``:
    returned by the function (``returned``) or answered to a request client capture saw
    (``captured``: the tuple the hot path keeps, or a tree's older request object)."""
    call = _call.CallHandle(_call.TemplateSpec(template_key="bench"), None)
    if mode == "returned":
        call._response = response
    elif hasattr(_call, "requests_of"):
        t0 = perf_counter_ns()
        call._requests = [("gemini-2.5-flash", "generate_content", None, t0, t0, response)]
    else:
        request = call._request("gemini-2.5-flash", "generate_content")
        request.response = response
        request.t1 = perf_counter_ns()
    call._finish()
    return call


_PYCACHE = Path(tempfile.mkdtemp(prefix="vividly-bench-pycache-"))


def loop_child(mode: str, n: int) -> None:
    """``--loop MODE N``: N ``build_record`` calls of one finished call (run under
    callgrind: two such runs, N apart, give the instructions of one)."""
    from _common import DiscardSink, make_response

    import vividly_trace
    from vividly_trace import _active, _build, _call

    options: dict[str, Any] = {"sinks": [DiscardSink()], "spool_dir": False}
    try:
        vividly_trace.configure(capture_clients=False, **options)
    except TypeError:  # a tree from before client capture
        vividly_trace.configure(**options)
    pricing: Any = _active.state.pipeline.pricing
    if mode == "captured" and not hasattr(_call, "GeminiRequest"):
        raise SystemExit(NOT_APPLICABLE)  # a tree from before client capture
    call = finished_call(_call, mode, make_response())
    record = _build.build_record(call, pricing, True)
    assert record.input_token_count == 1234 and record.cost_usd is not None, record
    build = _build.build_record
    for _ in range(n):
        build(call, pricing, True)


def _instructions(tree: Path, mode: str, n: int) -> int | None:
    """Instructions callgrind counts for a ``--loop`` run (the whole process)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={tmp}/cg.out",
                sys.executable,
                str(Path(__file__).resolve()),
                LOOP,
                mode,
                str(n),
            ],
            capture_output=True,
            text=True,
            cwd=str(tree),
            env=_env(tree),
            timeout=3600,
            check=False,
        )
    if out.returncode == NOT_APPLICABLE:
        return None
    match = re.search(r"Collected : (\d+)", out.stderr)
    if out.returncode != 0 or match is None:
        raise RuntimeError(f"callgrind run in {tree} failed: {out.stderr[-2000:]}")
    return int(match.group(1))


def measure_instructions(
    trees: dict[str, Path], low: int, high: int, jobs: int
) -> dict[str, dict[str, float]]:
    """Instructions per ``build_record`` of each tree and mode: (count with ``high``
    calls - count with ``low``) / (high - low); start-up and imports cancel out."""
    for tree in trees.values():  # write the byte-code caches first: compiling is not the point
        subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), LOOP, MODES[0], "1"],
            cwd=str(tree),
            env=_env(tree),
            capture_output=True,
            timeout=600,
            check=True,
        )
    runs = [(name, mode, n) for name in trees for mode in MODES for n in (low, high)]
    with ThreadPoolExecutor(jobs) as pool:
        counts = dict(
            zip(
                runs,
                pool.map(lambda r: _instructions(trees[r[0]], r[1], r[2]), runs),
                strict=True,
            )
        )
    return {
        name: {
            mode: (hi - lo) / (high - low)
            for mode in MODES
            if (hi := counts[(name, mode, high)]) is not None
            and (lo := counts[(name, mode, low)]) is not None
        }
        for name in trees
    }


def _env(tree: Path | None) -> dict[str, str]:
    """The tree's code first on the path, with byte-code caches of its own (written even
    where ``PYTHONDONTWRITEBYTECODE`` is set: an import that compiles every module measures
    the compiler, not the import a deployed application pays)."""
    if tree is None:
        env = {**os.environ, "PYTHONPYCACHEPREFIX": str(_PYCACHE / "none")}
    else:
        env = tree_env(tree, PYTHONPYCACHEPREFIX=str(_PYCACHE / str(abs(hash(str(tree))))))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _run_child(tree: Path, records: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), CHILD, str(records)],
        capture_output=True,
        text=True,
        cwd=str(tree),
        env=_env(tree),
        timeout=600,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"child in {tree} failed: {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _import_ns(tree: Path | None) -> int:
    code = "import vividly_trace" if tree is not None else "pass"
    env = _env(tree)
    cwd = str(tree) if tree is not None else "/"
    t0 = perf_counter_ns()
    subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, check=True)
    return perf_counter_ns() - t0


# --------------------------------------------------------------------------------------
# The run and its report
# --------------------------------------------------------------------------------------
def measure(
    trees: dict[str, Path], rounds: int, records: int, imports: int
) -> dict[str, dict[str, list[float]]]:
    results: dict[str, dict[str, list[float]]] = {name: {} for name in trees}
    for r in range(rounds):
        for name, tree in trees.items():
            for key, value in _run_child(tree, records).items():
                results[name].setdefault(key, []).append(float(value))
        print(f"  round {r + 1}/{rounds}", flush=True)
    for each in (None, *trees.values()):  # writes the byte-code caches
        _import_ns(each)
    for _ in range(imports):
        empty = _import_ns(None)
        for name, tree in trees.items():
            results[name].setdefault("import", []).append(float(_import_ns(tree) - empty))
    return results


ROWS = (  # key, label, unit divisor, unit
    ("build_returned", "`build_record`, the function returned the response", 1e3, "µs"),
    ("build_captured", "`build_record`, the response of a captured request", 1e3, "µs"),
    ("drain", "worker per record (`flush()` of queued records / records)", 1e3, "µs"),
    (
        "import",
        "`import vividly_trace` (fresh interpreter, byte-code cached, minus `python -c pass`)",
        1e6,
        "ms",
    ),
)


def render(
    results: dict[str, dict[str, list[float]]],
    trees: dict[str, Path],
    args: argparse.Namespace,
    instructions: dict[str, dict[str, float]] | None,
) -> str:
    env = report.environment("bench_record_cost.py " + " ".join(sys.argv[1:]))
    names = list(trees)
    base = names[0]
    lines = [
        "## Worker cost per record and import time (`benchmarks/bench_record_cost.py`)",
        "",
        f"- Date: {env['date']}",
        f"- Command: `.venv/bin/python benchmarks/{env['command']}`",
        f"- Python {env['python']}; CPU: {env['cpu']} ({env['ncpu']} logical CPUs, "
        f"load average {env['load']} at the end)",
        "- Trees: "
        + ", ".join(f"`{n}` = {_describe(p)}" for n, p in trees.items())
        + f"; ratios against `{base}`, measured in the same run, trees alternating.",
        f"- {args.rounds} rounds of one fresh interpreter per tree (`build_record`: `timeit`,"
        f" collector off, best of 7 x 2,000; drain: {args.records:,} records);"
        f" {args.imports} interleaved import timings. Medians over rounds.",
        "",
        *_table_head("measurement", names, ""),
    ]
    for key, label, div, unit in ROWS:
        medians = {n: statistics.median(v) if (v := results[n].get(key)) else None for n in names}
        cells = [f"{m / div:,.2f} {unit}" if m is not None else "-" for m in medians.values()]
        b = medians[base]
        ratios = [
            f"**{m / b:.2f}x**" if m is not None and b else "-"
            for m in (medians[n] for n in names[1:])
        ]
        lines.append(f"| {label} | " + " | ".join(cells + ratios) + " |")
    dropped = sum(sum(results[n].get("dropped", [])) for n in names)
    lines += ["", f"Records dropped in the drains: {dropped:g}.", ""]
    if instructions is not None:
        lines += [
            "**Instructions per `build_record`** (`valgrind --tool=callgrind`, whole process;"
            f" a run of {args.high:,} calls minus one of {args.low:,}, per call): the count"
            " that does not move with the machine's speed, which the timings above do (by"
            " up to 2x within minutes on this shared VM).",
            "",
            *_table_head("response reached", names, " returned"),
        ]
        reference = instructions[base].get("returned")
        for mode, label in (
            ("returned", "returned by the decorated function"),
            ("captured", "through a captured request (client capture, the default)"),
        ):
            counts = [instructions[n].get(mode) for n in names]
            cells = [f"{c:,.0f}" if c is not None else "-" for c in counts]
            ratios = [
                f"**{c / reference:.2f}x**" if c is not None and reference else "-"
                for c in counts[1:]
            ]
            lines.append(f"| {label} | " + " | ".join(cells + ratios) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def _table_head(first: str, names: list[str], reference: str) -> list[str]:
    """A table's header rows: one column per tree, then each tree's ratio to the first's
    (``reference`` says which of the first tree's values)."""
    base = names[0]
    ratios = "".join(f" `{n}` / `{base}`{reference} |" for n in names[1:])
    return [
        f"| {first} |" + "".join(f" `{n}` |" for n in names) + ratios,
        "|---|" + "---:|" * (2 * len(names) - 1),
    ]


def _describe(tree: Path) -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except OSError:
        head = ""
    if tree.resolve() == ROOT.resolve():
        return f"this checkout ({head or 'unknown commit'}, working tree as found)"
    return f"`{tree}`"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [CHILD]:
        print(json.dumps(child(int(argv[1]))))
        return 0
    if argv[:1] == [LOOP]:
        loop_child(argv[1], int(argv[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--records", type=int)
    parser.add_argument("--imports", type=int)
    parser.add_argument("--no-instructions", action="store_true", help="skip the callgrind counts")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (2 if args.quick else 9)
    args.records = args.records or (2_000 if args.quick else 20_000)
    args.imports = args.imports or (5 if args.quick else 31)
    try:
        trees = parse_trees(args.tree)
    except ValueError as exc:
        parser.error(str(exc))
    args.low, args.high = (200, 700) if args.quick else (500, 2500)
    instructions = None
    if not args.no_instructions:
        if shutil.which("valgrind") is None:
            parser.error(
                "valgrind is not installed (apt-get install valgrind; or --no-instructions)"
            )
        print(f"  callgrind: {len(trees) * len(MODES) * 2} runs, 2 at a time", flush=True)
        instructions = measure_instructions(trees, args.low, args.high, jobs=2)
    results = measure(trees, args.rounds, args.records, args.imports)
    body = render(results, trees, args, instructions)
    print(body)
    if not args.no_write and not args.quick:
        report.write_section(args.output, body, START_MARK, END_MARK)
    return 0


if __name__ == "__main__":
    sys.exit(main())
