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
existed) are left out for it. A tree with client capture also times the same call through
a ``Models`` class without the capture wrapper (``unwrapped``): every other arm goes through
the installed wrapper (switched off by a flag where the arm is not captured), so the capture
arms are also shown against that call, their true added latency.

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
BASELINES = {  # name -> what the paired differences are taken against
    "undecorated": "the undecorated call (through the capture wrapper, if installed, "
    "switched off for the call)",
    "unwrapped": "the undecorated call through a `Models` without the capture wrapper",
}
UNWRAPPED_ARMS = {
    "undecorated": "undecorated, through the capture wrapper switched off (its pass-through)",
    "decorated_capture": ARMS["decorated_capture"],
    "unlogged_capture": ARMS["unlogged_capture"],
}


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
        # The same call through a Models class without the capture wrapper (the methods as
        # google-genai ships them), on the same API client: what a process without client
        # capture pays, the baseline of the capture arms' true added latency.
        arms.append(("unwrapped", _unwrapped_call(client)))
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


def _pairs(times: dict[str, Any]) -> list[tuple[str, str]]:
    """(arm, baseline) pairs a process's times have: every arm against the undecorated
    call, and, where there is an unwrapped call, those of ``UNWRAPPED_ARMS`` against it."""
    pairs = [(arm, "undecorated") for arm in ARMS if arm in times]
    if "unwrapped" in times:
        pairs += [(arm, "unwrapped") for arm in UNWRAPPED_ARMS if arm in times]
    return pairs


def _unwrapped_call(client: Any) -> Callable[[], Any]:
    from google import genai
    from google.genai import models

    names = ("_generate_content", "_generate_content_stream", "_embed_content")
    originals = {n: getattr(models.Models.__dict__[n], "__wrapped__", None) for n in names}
    if any(f is None for f in originals.values()):
        raise RuntimeError("client capture is not installed: no unwrapped baseline")
    raw_models = type("UnwrappedModels", (models.Models,), originals)
    raw = genai.Client(vertexai=False, api_key="fake-key")
    raw._models = raw_models(client._api_client)  # the same connection pool as the others

    def call_gemini() -> Any:
        return raw.models.generate_content(model=MODEL, contents="Book me a flight")

    return call_gemini


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
                for arm, baseline in _pairs(part["times"]):
                    diffs = paired_diffs(part["times"][arm], part["times"][baseline])
                    per = mine["per_process"].setdefault((arm, baseline), [])
                    per.append(statistics.median(diffs))
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
    lines += _rows(results, names, ARMS, "undecorated")
    unwrapped = [n for n in names if "unwrapped" in results[n]["times"]]
    if unwrapped:
        lines += [
            "",
            f"The same, against {BASELINES['unwrapped']} (the methods as google-genai ships "
            "them, same API client): the latency a process without client capture does not "
            "pay, the capture wrapper's binding and pass-through included.",
            "",
            "| arm | " + " | ".join(f"`{n}`" for n in unwrapped) + " |",
            "|---|" + "---:|" * len(unwrapped),
        ]
        lines += _rows(results, unwrapped, UNWRAPPED_ARMS, "unwrapped")
    base_decorated = _median_diff(results[base], "decorated", "undecorated")
    lines += [""]
    if base_decorated:
        for n in names[1:]:
            for arm, baseline in [
                ("decorated", "undecorated"),
                *((a, b) for a in TARGETS_US for b in BASELINES),
            ]:
                value = _median_diff(results[n], arm, baseline)
                if value is None:
                    continue
                lines.append(
                    f"- `{n}` {ARMS[arm]}, against {BASELINES[baseline]}: "
                    f"**{value / base_decorated:.2f}x** what `{base}`'s decorator adds "
                    "(median paired differences, this run)."
                )
    records = {n: (results[n]["records"], results[n]["dropped"]) for n in names}
    lines += [
        "- Records written / dropped: "
        + ", ".join(f"`{n}` {w:,} / {d:,}" for n, (w, d) in records.items()),
        "",
    ]
    return "\n".join(lines) + "\n"


def _rows(
    results: dict[str, dict[str, Any]], names: list[str], arms: dict[str, str], baseline: str
) -> list[str]:
    """Table rows: each arm's median paired difference against ``baseline`` per tree, its
    CI, then each process's median."""
    lines = []
    for arm, label in arms.items():
        cells = []
        for n in names:
            times = results[n]["times"]
            if arm not in times or baseline not in times:
                cells.append("-")
                continue
            diffs = paired_diffs(times[arm], times[baseline])
            lo, hi = median_ci(diffs)
            per = ", ".join(f"{d / 1000:+.1f}" for d in results[n]["per_process"][(arm, baseline)])
            cells.append(
                f"**{statistics.median(diffs) / 1000:+.2f}** ({lo / 1000:+.2f} .. "
                f"{hi / 1000:+.2f}); {per}"
            )
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _median_diff(result: dict[str, Any], arm: str, baseline: str) -> float | None:
    times = result["times"]
    if arm not in times or baseline not in times:
        return None
    return statistics.median(paired_diffs(times[arm], times[baseline]))


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
