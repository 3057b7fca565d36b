"""Latency added to a real ``google-genai`` call, for two or more checkouts in the same run.

Run on demand (a benchmark, not a test; needs the ``genai`` extra)::

    git archive cb48808 | tar -x -C /tmp/before      # the code issue 11 measured
    .venv/bin/python benchmarks/bench_real_trees.py --tree before=/tmp/before --tree after=.
    .venv/bin/python benchmarks/bench_real_trees.py ... --quick --no-write   # smoke run

``bench_real_call.py`` measures one checkout, in µs; a µs target set on one machine does
not carry to another (a shared VM whose real call takes 3 ms instead of 1.6 ms runs a small
wrapper's cold code several times slower too). This runs the same randomised-block design
(each block times one call of every arm in a shuffled order, each arm paired with the
undecorated call of its block; responses released outside the timed regions) in fresh
interpreters whose ``PYTHONPATH`` is each tree in turn, trees alternating process by
process against one fake Gemini server, so each tree's added latency is measured on the
same machine in the same minutes. Arms a tree does not have (client capture before it
existed) are left out for it.

Printed, and written to ``BENCHMARKS.md`` between ``<!-- real-trees:start -->`` and
``<!-- real-trees:end -->`` (``--no-write`` to skip).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import report
from _common import MODEL, ROOT, DiscardSink, parse_trees, passthrough, time_blocks, tree_env
from _stats import median_ci, paired_diffs
from bench_real_call import start_fake_server, stop_process

START_MARK = "<!-- real-trees:start -->"
END_MARK = "<!-- real-trees:end -->"
CHILD = "--child"
ARMS = {  # name -> label, in the report's order
    "aa": "control: an identical undecorated function (A/A)",
    "wrapt": "control: bare `wrapt` pass-through",
    "decorated": "`@logged_prompt`, client capture off (or none)",
    "decorated_capture": "`@logged_prompt`, client capture on",
    "unlogged_capture": "no decorator, client capture on (recorded under its caller's key)",
}
TARGETS_US = {"decorated_capture": 10.0, "unlogged_capture": 15.0}  # issue 11, on its machine


def child(url: str, blocks: int, warmup: int) -> dict[str, Any]:
    """One process: every arm this tree has, ``blocks`` randomised blocks."""
    from google import genai
    from google.genai import types

    import vividly_trace
    from vividly_trace import _active, logged_prompt

    client = genai.Client(
        vertexai=False,
        api_key="fake-key",
        http_options=types.HttpOptions(base_url=url, api_version="v1beta"),
    )

    def make() -> Callable[[], Any]:
        def call_gemini() -> Any:
            return client.models.generate_content(model=MODEL, contents="Book me a flight")

        return call_gemini

    sink = DiscardSink()
    options: dict[str, Any] = {
        "sinks": [sink],
        "spool_dir": False,
        "queue_size": max(10_000, 3 * (blocks + warmup)),
    }
    try:
        vividly_trace.configure(capture_clients=True, **options)
        capture = True
    except TypeError:  # a tree from before client capture
        vividly_trace.configure(**options)
        capture = False
    decorated = make()
    arms: list[tuple[str, Callable[[], Any]]] = [
        ("undecorated", make()),
        ("aa", make()),
        ("wrapt", passthrough(make())),
        ("decorated", logged_prompt("bench_real")(decorated)),
    ]
    if capture:
        arms += [
            ("decorated_capture", logged_prompt("bench_capture")(decorated)),
            ("unlogged_capture", make()),
        ]
    captured = {"decorated_capture", "unlogged_capture"}
    pipeline: Any = _active.state.pipeline
    rng = random.Random(20261203)
    for _ in range(warmup):
        for name, fn in arms:
            if capture:
                pipeline.capture_clients = name in captured
            fn()
    vividly_trace.flush(timeout=60)
    gc.collect()

    def switch(name: str) -> None:  # the flag, set outside the timed region
        if capture:
            pipeline.capture_clients = name in captured

    times, _ = time_blocks(arms, blocks, rng, switch)
    vividly_trace.flush(timeout=60)
    dropped = sum(vividly_trace.stats()["dropped"].values())
    vividly_trace.shutdown()
    client.close()
    return {"times": times, "records": sink.records, "dropped": dropped}


def measure(
    trees: dict[str, Path], processes: int, blocks: int, warmup: int
) -> dict[str, dict[str, Any]]:
    proc, url = start_fake_server()
    results: dict[str, dict[str, Any]] = {
        name: {"times": {}, "per_process": {}, "records": 0, "dropped": 0} for name in trees
    }
    try:
        for i in range(processes):
            for name, tree in trees.items():
                out = subprocess.run(
                    [
                        sys.executable,
                        str(Path(__file__).resolve()),
                        CHILD,
                        url,
                        str(blocks),
                        str(warmup),
                    ],
                    capture_output=True,
                    text=True,
                    cwd=str(tree),
                    env=tree_env(tree),
                    timeout=3600,
                    check=False,
                )
                if out.returncode != 0:
                    raise RuntimeError(f"process in {tree} failed: {out.stderr[-2000:]}")
                part = json.loads(out.stdout.strip().splitlines()[-1])
                mine = results[name]
                for arm, values in part["times"].items():
                    mine["times"].setdefault(arm, []).extend(values)
                    if arm != "undecorated":
                        diffs = paired_diffs(values, part["times"]["undecorated"])
                        mine["per_process"].setdefault(arm, []).append(statistics.median(diffs))
                mine["records"] += part["records"]
                mine["dropped"] += part["dropped"]
                print(f"  process {i + 1}/{processes}, tree {name}: done", flush=True)
    finally:
        stop_process(proc)
    return results


def render(
    results: dict[str, dict[str, Any]], trees: dict[str, Path], args: argparse.Namespace
) -> str:
    env = report.environment("bench_real_trees.py " + " ".join(sys.argv[1:]))
    names = list(trees)
    base = names[0]
    lines = [
        "## Latency added to a real call, checkouts compared (`benchmarks/bench_real_trees.py`)",
        "",
        f"- Date: {env['date']}",
        f"- Command: `.venv/bin/python benchmarks/{env['command']}`",
        f"- Python {env['python']}; CPU: {env['cpu']} ({env['ncpu']} logical CPUs, load "
        f"average {env['load']} at the end); google-genai {env['genai']}",
        "- Trees: " + ", ".join(f"`{n}` = `{p}`" for n, p in trees.items()),
        f"- {args.processes} fresh processes per tree, trees alternating, {args.blocks:,} "
        f"blocks each after {args.warmup} warm-up blocks; one fake Gemini server for all.",
        "",
        "Median paired difference against the undecorated call of the same block, µs (95% CI,"
        " distribution-free), pooled over the tree's processes; then each process's median.",
        "",
        "| arm | " + " | ".join(f"`{n}`" for n in names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    undecorated = [
        f"{statistics.median(results[n]['times']['undecorated']) / 1000:,.1f} (median µs)"
        for n in names
    ]
    lines.append("| undecorated call | " + " | ".join(undecorated) + " |")
    for arm, label in ARMS.items():
        cells = []
        for n in names:
            times = results[n]["times"]
            if arm not in times:
                cells.append("-")
                continue
            diffs = paired_diffs(times[arm], times["undecorated"])
            lo, hi = median_ci(diffs)
            per = ", ".join(f"{d / 1000:+.1f}" for d in results[n]["per_process"][arm])
            cells.append(
                f"**{statistics.median(diffs) / 1000:+.2f}** ({lo / 1000:+.2f} .. "
                f"{hi / 1000:+.2f}); {per}"
            )
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    base_decorated = _median_diff(results[base], "decorated")
    lines += [""]
    if base_decorated:
        for n in names[1:]:
            for arm in ("decorated", *TARGETS_US):
                value = _median_diff(results[n], arm)
                if value is None:
                    continue
                lines.append(
                    f"- `{n}` {ARMS[arm]}: **{value / base_decorated:.2f}x** what `{base}`'s "
                    "decorator adds (median paired differences, this run)."
                )
    records = {n: (results[n]["records"], results[n]["dropped"]) for n in names}
    lines += [
        "- Records written / dropped: "
        + ", ".join(f"`{n}` {w:,} / {d:,}" for n, (w, d) in records.items()),
        "",
    ]
    return "\n".join(lines) + "\n"


def _median_diff(result: dict[str, Any], arm: str) -> float | None:
    times = result["times"]
    if arm not in times:
        return None
    return statistics.median(paired_diffs(times[arm], times["undecorated"]))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [CHILD]:
        print(json.dumps(child(argv[1], int(argv[2]), int(argv[3]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--processes", type=int)
    parser.add_argument("--blocks", type=int)
    parser.add_argument("--warmup", type=int)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    args.processes = args.processes or (1 if args.quick else 3)
    args.blocks = args.blocks or (100 if args.quick else 1500)
    args.warmup = args.warmup or (20 if args.quick else 200)
    try:
        trees = parse_trees(args.tree)
    except ValueError as exc:
        parser.error(str(exc))
    results = measure(trees, args.processes, args.blocks, args.warmup)
    body = render(results, trees, args)
    print(body)
    if not args.no_write and not args.quick:
        report.write_section(args.output, body, START_MARK, END_MARK)
    return 0


if __name__ == "__main__":
    sys.exit(main())
