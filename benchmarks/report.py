"""The Markdown the overhead benchmarks write, and the command line they share.

``render_overhead()`` assembles the ``BENCHMARKS.md`` section between
``<!-- overhead:start -->`` and ``<!-- overhead:end -->`` from the parts' results (any part
may be missing); ``write_section()`` replaces one marked section of ``BENCHMARKS.md``
atomically, leaving the rest byte for byte (``sql_sink.py`` uses it too); ``main()`` is the
command line of ``overhead.py`` (every part, writes the file) and of each ``bench_*.py`` run
alone (one part, prints only).

A part is a module with ``KEY`` (its keyword in ``render_overhead()``), ``SKIP`` (the entry
point's flag that skips it and its help, or None), ``add_arguments(parser)`` and
``measure(args)``. This module imports none of them at run time (they import it).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from _common import MODEL, ROOT
from _stats import quantile

import vividly_trace

if TYPE_CHECKING:
    from bench_app_latency import AppLatency
    from bench_breakdown import Breakdown
    from bench_per_call import MicroResult
    from bench_real_call import RealResult

START_MARK = "<!-- overhead:start -->"
END_MARK = "<!-- overhead:end -->"
MD_HEADER = (
    "# Benchmarks\n\n"
    "Measured numbers for vividly_trace. Each section is written by the benchmark named in "
    "it; re-run the command shown there to refresh it.\n"
)
RATIO_TARGET = 1 / 8
REAL_TARGET_US = 10.0
WRAPT_NOTE = (  # when the installed logged_prompt writes __self__ (see NO_SHORTCUT_NOTE)
    "`logged_prompt` gives the plain function it decorates `__self__ = None`: on every call "
    "wrapt looks up the wrapped function's `__self__`, and on a plain function that lookup "
    "raises (and clears) an `AttributeError`. The `wrapt` control wraps a function of its "
    "own, so it shows stock wrapt."
)
NO_SHORTCUT_NOTE = (  # when it does not
    "`logged_prompt` leaves the plain function it decorates as it is: on every call wrapt "
    "looks up the wrapped function's `__self__`, and on a plain function that lookup raises "
    "(and clears) an `AttributeError`, as in the `wrapt` control, which wraps a function of "
    "its own."
)
VARIANT_LABELS = {  # bench_per_call.make_variants(), in its order
    "baseline": "(a) undecorated no-op (baseline)",
    "wrapt": "(b) bare `wrapt` pass-through",
    "vividly": '(c) `@logged_prompt("bench")`, background mode',
    "otel_span": "(d) OpenTelemetry SDK span (BatchSpanProcessor, no-op exporter)",
    "vividly_response": "(e) `@logged_prompt`, returns a `GenerateContentResponse`",
    "vividly_no_self": "(f) `@logged_prompt`, without the `__self__` shortcut",
}
REAL_ARMS = {  # bench_real_call.run_real()'s arms
    "undecorated": "undecorated (reference)",
    "undecorated_copy": "control: an identical undecorated function (A/A)",
    "wrapt": "control: bare `wrapt` pass-through",
    "vividly": '`@logged_prompt("bench_real")`, background mode, client capture off',
    "vividly_capture": '`@logged_prompt("bench_capture")`, client capture on (the default)',
    "unlogged_capture": "no decorator, client capture on: recorded under its caller's key",
}
#: Targets (µs added to the real call) of the capture arms.
CAPTURE_TARGETS_US = {"vividly_capture": 10.0, "unlogged_capture": 15.0}
APP_MODES = {  # bench_app_latency.MODES
    "idle": "no backlog (reference)",
    "paced": "worker draining, paced (the default)",
    "unpaced": "worker draining, unpaced (`GIL_SLICE` set to infinity)",
}


# --------------------------------------------------------------------------------------
# The machine and the versions
# --------------------------------------------------------------------------------------
def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def version(dist: str) -> str:
    try:
        return importlib_metadata.version(dist)
    except importlib_metadata.PackageNotFoundError:
        return "not installed"


def git_head() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=str(ROOT),
            capture_output=True,
            text=True,
            timeout=10,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def load_average() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def environment(command: str) -> dict[str, str]:
    """What the section's header shows; ``load_after`` is added when the run ends."""
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "python": f"{platform.python_version()} ({platform.python_implementation()}, "
        f"{sys.platform})",
        "cpu": cpu_model(),
        "ncpu": str(os.cpu_count()),
        "load": load_average(),
        "vividly": getattr(vividly_trace, "__version__", "?"),
        "commit": git_head(),
        "wrapt": version("wrapt"),
        "otel": version("opentelemetry-sdk"),
        "genai": version("google-genai"),
    }


# --------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------
def _fmt(x: float | None, digits: int = 0) -> str:
    return "n/a" if x is None else f"{x:,.{digits}f}"


def _record_summary(rec: Any) -> str:
    if rec is None:
        return "no record seen"
    return (
        f"input={rec.input_token_count} output={rec.output_token_count} "
        f"cached={rec.cached_token_count} thinking={rec.thinking_token_count} "
        f"cost_usd={rec.cost_usd} model={rec.model!r} success={rec.success}"
    )


def _ratio_cell(micro: MicroResult, name: str, drain: bool) -> str:
    if name == "baseline":
        return "-"
    if name == "otel_span":
        return "1 (reference)"
    lo, hi = micro.ratio_range(name, drain)
    return f"**{micro.ratio(name, drain):.3f}** ({lo:.3f}..{hi:.3f})"


def _overhead_cell(micro: MicroResult, name: str, drain: bool) -> str:
    if name == "baseline":
        return "0"
    lo, hi = micro.overhead_range(name, drain)
    return f"{_fmt(micro.overhead(name, drain))} ({_fmt(lo)}..{_fmt(hi)})"


def _diff_cell(micro: MicroResult, name: str, reference: str, drain: bool) -> str:
    lo, hi = micro.overhead_range(name, drain, reference)
    return f"{micro.overhead(name, drain, reference):+,.0f} ns ({lo:+,.0f}..{hi:+,.0f})"


def _shortcut_line(micro: MicroResult, breakdown: Breakdown | None) -> str:
    """(f) - (c): what the ``__self__`` shortcut saves per call, or that there is none."""
    line = (
        "**Without the `__self__` shortcut** ((f) - (c), paired per round): loop "
        f"{_diff_cell(micro, 'vividly_no_self', 'vividly', False)}, loop + drain "
        f"{_diff_cell(micro, 'vividly_no_self', 'vividly', True)}"
    )
    splits = breakdown.splits if breakdown is not None else {}
    if "vividly_no_self" in splits and "vividly" in splits:
        caller = splits["vividly_no_self"].caller_ns - splits["vividly"].caller_ns
        line += f", caller thread only (worker parked) {caller:+,.0f} ns"
    if micro.self_shortcut:
        return line + (
            ". (f) decorates a function of its own like (c), then deletes the `__self__` "
            "`logged_prompt` wrote on it, so wrapt's `__self__` lookup fails on every call: "
            "what each call pays once `logged_prompt` stops writing `__self__`."
        )
    return line + (
        ". The installed `logged_prompt` does not write `__self__`, so (f) and (c) run the "
        "same code: the difference is noise."
    )


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def render_header(env: dict[str, str]) -> list[str]:
    out: list[str] = []
    w = out.append
    w("## Decorator overhead (`benchmarks/overhead.py`)\n")
    w(f"- Date: {env['date']}")
    w(f"- Command: `{env['command']}`")
    w(
        f"- Python {env['python']}; CPU: {env['cpu']} ({env['ncpu']} logical CPUs, shared with "
        f"other work: load average {env['load']} before the run, {env['load_after']} after)"
    )
    w(
        f"- Versions: vividly_trace {env['vividly']} (commit {env['commit']}, working tree as "
        f"found), wrapt {env['wrapt']}, opentelemetry-sdk {env['otel']}, "
        f"google-genai {env['genai']}"
    )
    w("")
    return out


def render_per_call(micro: MicroResult, breakdown: Breakdown | None) -> list[str]:
    """The per-call table; its target line adds the caller-thread ratios of ``breakdown``."""
    out: list[str] = []
    w = out.append
    w("### Per-call cost (no-op function)\n")
    w(
        f"{micro.iterations:,} calls per repeat, {micro.repeats} repeats interleaved (rounds "
        "rotated: " + " ".join(micro.order) + "). vividly: `configure(sinks=[discarding sink], "
        f"spool_dir=False, queue_size={micro.iterations + 1:,})`, default background mode "
        "(batch 200, 1 s timer); OpenTelemetry: `TracerProvider` + `BatchSpanProcessor(no-op "
        f"exporter, max_queue_size={micro.iterations + 1:,})`, `with "
        "tracer.start_as_current_span('x'): f()`. Garbage collector on. Per variant: median "
        "over repeats of ns/call; overhead = median over rounds of (variant - baseline of the "
        "same round), with min..max over rounds.\n"
    )
    w(
        "- **loop**: the timed loop only; the queues are drained after it, outside the timed "
        "region. The workers' work done *during* the loop is included (it holds the GIL), the "
        "work left queued at the end is not. vividly's worker paces itself (it releases the "
        "GIL after every 0.2 ms of record building while its queue is under half full, its "
        "oldest record waited under half the flush interval and no `flush()` waits; see "
        "*Application threads* below), so in a tight loop it builds fewer "
        "records than it could: the loop column shows what the calling thread pays, and the "
        "work deferred is in the next column."
    )
    w(
        "- **loop + drain**: the same loop plus `flush()` / `force_flush()` (every record built "
        "and handed to the sink): the whole CPU cost per call, wherever it runs.\n"
    )
    w(
        "| variant | loop: median ns/call | loop: overhead ns | loop: overhead / OTel's "
        "| loop + drain: overhead ns | loop + drain: overhead / OTel's "
        "| records still queued at loop end |"
    )
    w("|---|---:|---:|---:|---:|---:|---:|")
    for name, label in VARIANT_LABELS.items():
        w(
            f"| {label} | {_fmt(micro.median(name), 1)} | {_overhead_cell(micro, name, False)} "
            f"| {_ratio_cell(micro, name, False)} | {_overhead_cell(micro, name, True)} "
            f"| {_ratio_cell(micro, name, True)} | {micro.queued(name)} |"
        )
    w("")
    w(WRAPT_NOTE if micro.self_shortcut else NO_SHORTCUT_NOTE)
    w("")
    w(_shortcut_line(micro, breakdown))
    w("")
    w(
        f"Records: {micro.enqueued:,} enqueued, {micro.written:,} written to the discarding "
        f"sink, **{micro.dropped} dropped**. A record of (e): "
        f"{_record_summary(micro.last_record)}."
    )
    w("")
    r_c, r_e = micro.ratio("vividly"), micro.ratio("vividly_response")
    d_c, d_e = micro.ratio("vividly", True), micro.ratio("vividly_response", True)
    line = (
        f"**Target: overhead <= 1/8 (0.125) of the OTel span's.** Loop (as specified): "
        f"(c) {r_c:.3f} {_met(r_c <= RATIO_TARGET)}, (e) {r_e:.3f} "
        f"{_met(r_e <= RATIO_TARGET)}. Loop + drain (all the work): (c) {d_c:.3f} "
        f"{_met(d_c <= RATIO_TARGET)}, (e) {d_e:.3f} {_met(d_e <= RATIO_TARGET)}."
    )
    if breakdown is not None and "otel_span" in breakdown.splits:
        o = breakdown.splits["otel_span"].caller_ns
        parts = []
        for name in ("vividly", "vividly_response"):
            if name in breakdown.splits:
                rc = breakdown.splits[name].caller_ns / o
                parts.append(
                    f"({'c' if name == 'vividly' else 'e'}) {rc:.3f} {_met(rc <= RATIO_TARGET)}"
                )
        line += " Caller thread only (worker parked, see the breakdown): " + ", ".join(parts) + "."
    w(line)
    w("")
    return out


def render_real(real: RealResult) -> list[str]:
    out: list[str] = []
    w = out.append
    w("### Latency added to a real `google-genai` call\n")
    w(
        f"`client.models.generate_content(model={MODEL!r})` of the real `google-genai` "
        "client against `python -m vividly_trace.testing.fake_gemini --port 0` running in "
        f"another process (one `genai.Client`, one kept-alive connection), in "
        f"{real.processes} fresh interpreter(s) one after the other, pooled: "
        f"{real.warmup} warm-up blocks, then {real.blocks // real.processes:,} blocks each "
        f"({real.blocks:,} in all); each block times one call of each "
        "arm below, in a freshly shuffled order, and each arm is paired with the "
        "undecorated call of the same block. (Strict alternation of two calls showed a "
        "first-call-of-the-pair effect of about ±10 µs on this machine; shuffling spreads "
        "it evenly over the arms.) The two control arms show the noise floor: their true "
        "cost is 0 and about 0.4 µs. Every arm's response is released after its timed "
        "region. vividly in the default background mode with a "
        "discarding sink. 95% CI of the median difference: distribution-free (order "
        "statistics); of the mean: normal approximation.\n"
    )
    w(
        "| arm | median µs | **median paired difference µs (95% CI)** "
        "| mean paired difference µs (95% CI) | p99 µs |"
    )
    w("|---|---:|---:|---:|---:|")
    for arm, label in REAL_ARMS.items():
        med = real.median(arm) / 1e3
        p99 = quantile(real.times[arm], 0.99) / 1e3
        if arm == "undecorated":
            w(f"| {label} | {med:,.1f} | - | - | {p99:,.1f} |")
            continue
        lo, hi = real.median_diff_ci(arm)
        mean, half = real.mean_diff(arm)
        bold = "**" if arm in ("vividly", *CAPTURE_TARGETS_US) else ""
        w(
            f"| {label} | {med:,.1f} | {bold}{real.median_diff(arm) / 1e3:+.2f}{bold} "
            f"({lo / 1e3:+.2f} .. {hi / 1e3:+.2f}) | {mean / 1e3:+.2f} "
            f"({(mean - half) / 1e3:+.2f} .. {(mean + half) / 1e3:+.2f}) | {p99:,.1f} |"
        )
    w("")
    if real.per_process:
        w(
            "Median paired difference of `@logged_prompt` in each process: "
            + ", ".join(f"{x / 1e3:+.2f}" for x in real.per_process)
            + " µs (the spread between fresh processes, beyond each one's CI)."
        )
        w("")
    w(
        "Median µs by position in the block (all arms): "
        + ", ".join(f"{x / 1e3:,.1f}" for x in real.by_position)
        + "."
    )
    w("")
    w(
        f"Records: {real.records:,} written, {real.dropped} dropped; last: "
        f"{_record_summary(real.last_record)}."
    )
    w("")
    lo, hi = real.median_diff_ci("vividly")
    med_us, hi_us = real.median_diff("vividly") / 1e3, hi / 1e3
    lo_us = lo / 1e3
    if hi_us < REAL_TARGET_US:
        verdict = "met (the whole 95% CI is below the target)"
    elif lo_us >= REAL_TARGET_US:
        verdict = "NOT met (the whole 95% CI is at or above the target)"
    else:
        verdict = (
            f"inconclusive: the 95% CI spans {REAL_TARGET_US:.0f} µs (point estimate "
            f"{_met(med_us < REAL_TARGET_US)})"
        )
    w(
        f"**Target: under {REAL_TARGET_US:.0f} µs added to the real call.** {verdict}; "
        f"median {med_us:+.2f} µs, 95% CI {lo_us:+.2f} .. {hi_us:+.2f} µs."
    )
    w("")
    for arm, target in CAPTURE_TARGETS_US.items():
        if arm not in real.times:
            continue
        lo, hi = real.median_diff_ci(arm)
        w(
            f"- {REAL_ARMS[arm]}: target under {target:.0f} µs, "
            f"{_met(hi / 1e3 < target)} by the whole 95% CI; median "
            f"{real.median_diff(arm) / 1e3:+.2f} µs, 95% CI {lo / 1e3:+.2f} .. {hi / 1e3:+.2f} µs."
        )
    w("")
    return out


def render_app(app: AppLatency) -> list[str]:
    out: list[str] = []
    w = out.append
    w("### Application threads while a worker drains a backlog\n")
    w(
        f"{app.records:,} calls that returned a `GenerateContentResponse` are queued with "
        f"the worker parked (queue size {4 * app.records:,}, so the backlog is under half "
        "of it); then the worker drains them (batches of 200) while an "
        "application thread sleeps 1 ms in a loop and notes how late it wakes. CPython "
        "lets a thread that wants the GIL wait up to the switch interval "
        f"({sys.getswitchinterval() * 1e3:g} ms) while another computes; the paced worker "
        "releases the GIL after every 0.2 ms of record building (not while a `flush()` "
        "waits, nor once its queue is half full or its oldest record waited half the "
        "flush interval). Paced and unpaced alternate, "
        f"{app.rounds} round(s) each.\n"
    )
    w(
        "| mode | wake-ups | delay p50 µs | delay p99 µs | delay max µs "
        "| drain ms (median) | records/s |"
    )
    w("|---|---:|---:|---:|---:|---:|---:|")
    for mode, label in APP_MODES.items():
        d = app.delays[mode]
        if not d:
            continue
        drains = app.drain_s.get(mode)
        if drains:
            med = statistics.median(drains)
            rate = f"{app.records / med:,.0f}"
            drain_cell = f"{med * 1e3:,.0f}"
        else:
            rate = drain_cell = "-"
        w(
            f"| {label} | {len(d):,} | {quantile(d, 0.5):,.0f} | {quantile(d, 0.99):,.0f} "
            f"| {max(d):,.0f} | {drain_cell} | {rate} |"
        )
    w("")
    if app.delays["paced"] and app.delays["unpaced"]:
        ratio = quantile(app.delays["unpaced"], 0.5) / max(1.0, quantile(app.delays["paced"], 0.5))
        slower = statistics.median(app.drain_s["paced"]) / statistics.median(app.drain_s["unpaced"])
        w(
            f"Pacing makes the median wake-up delay {ratio:,.1f}x shorter; the drain takes "
            f"{slower:.2f}x as long (the pauses, and the application thread's own turns)."
        )
        w("")
    return out


def render_breakdown(breakdown: Breakdown) -> list[str]:
    out: list[str] = []
    w = out.append
    w("### Breakdown\n")
    if breakdown.splits:
        w(
            "Caller thread vs worker, measured apart: the worker is parked (vividly: "
            "`batch_size` above the loop and a 1 h timer; OTel: 1 h schedule delay) while "
            f"{breakdown.chunk:,} calls are timed, then the drain (`flush()` / "
            f"`force_flush()`) is timed; median of {breakdown.rounds} rounds. The drain "
            f"includes one thread wake-up per {breakdown.chunk:,} records.\n"
        )
        w("| variant | caller thread ns/call (minus baseline) | worker ns/record (drain) | sum |")
        w("|---|---:|---:|---:|")
        for name, sp in breakdown.splits.items():
            w(
                f"| {VARIANT_LABELS[name]} | {_fmt(sp.caller_ns)} | {_fmt(sp.worker_ns)} | "
                f"{_fmt(sp.caller_ns + sp.worker_ns)} |"
            )
        w("")
    if breakdown.pieces:
        w(
            "Pieces (`timeit`, gc off, best of repeats minus an empty statement; nested "
            "rows are parts of the row above them; pieces overlap, so they do not add up "
            "exactly):\n"
        )
        w("| where | piece | ns |")
        w("|---|---|---:|")
        for where, what, value, note in breakdown.pieces:
            extra = f" ({note})" if note else ""
            w(f"| {where} | {what}{extra} | {_fmt(value)} |")
        w("")
    for note in breakdown.notes:
        w(f"- {note}")
    return out


def render_overhead(
    env: dict[str, str],
    micro: MicroResult | None = None,
    real: RealResult | None = None,
    breakdown: Breakdown | None = None,
    app: AppLatency | None = None,
) -> str:
    """The overhead section's body: the header, then each part that ran."""
    out = render_header(env)
    if micro is not None:
        out += render_per_call(micro, breakdown)
    if real is not None:
        out += render_real(real)
    if app is not None:
        out += render_app(app)
    if breakdown is not None:
        out += render_breakdown(breakdown)
    return "\n".join(out).rstrip() + "\n"


# --------------------------------------------------------------------------------------
# Writing and the command line
# --------------------------------------------------------------------------------------
def write_section(
    path: Path, body: str, start_mark: str = START_MARK, end_mark: str = END_MARK
) -> None:
    """Replace (or add) the section between ``start_mark`` and ``end_mark``; leave
    everything else byte for byte. The file is re-read now and replaced atomically."""
    section = f"{start_mark}\n{body}{end_mark}"
    text = path.read_text(encoding="utf-8") if path.exists() else MD_HEADER  # re-read now
    start, end = text.find(start_mark), text.find(end_mark)
    if start != -1 and end != -1 and end > start:
        new = text[:start] + section + text[end + len(end_mark) :]
    else:
        new = text.rstrip("\n") + "\n\n" + section + "\n"
    if path.exists():
        mode = path.stat().st_mode & 0o777
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix=".BENCHMARKS.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(new)
        os.chmod(tmp, mode)  # mkstemp creates 0600; keep the file's own mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class Part(Protocol):
    """A benchmark module (``bench_*.py``), as :func:`main` uses it."""

    KEY: str  # its keyword in render_overhead()
    SKIP: tuple[str, str] | None  # the entry point's flag that skips it, and the flag's help

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def measure(self, args: argparse.Namespace) -> Any: ...


def main(
    script: str,
    doc: str | None,
    parts: Sequence[Part],
    argv: list[str] | None = None,
    *,
    entry_point: bool = False,
) -> int:
    """Parse the command line, run ``parts`` in order, print the section.

    ``entry_point`` (``overhead.py``): the parts' skip flags, ``--no-write`` and
    ``--output``, and the section is written to ``BENCHMARKS.md``. Otherwise (a part run
    alone) it is printed only: the file's section is the whole run's.
    """
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    for part in parts:
        part.add_arguments(parser)
    skipped = {}
    if entry_point:
        for part in parts:
            if part.SKIP is not None:
                flag, help_text = part.SKIP
                skipped[part.KEY] = parser.add_argument(flag, action="store_true", help=help_text)
        parser.add_argument("--no-write", action="store_true", help="do not write BENCHMARKS.md")
        parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args(argv)

    shown = [f"benchmarks/{Path(script).name}", *(sys.argv[1:] if argv is None else argv)]
    env = environment(".venv/bin/python " + " ".join(shown))
    print(f"vividly_trace overhead benchmark: {env['command']}", flush=True)
    print(f"Python {env['python']}, {env['cpu']} x{env['ncpu']}, load {env['load']}", flush=True)
    results = {
        part.KEY: part.measure(args)
        for part in parts
        if part.KEY not in skipped or not getattr(args, skipped[part.KEY].dest)
    }
    env["load_after"] = load_average()
    body = render_overhead(env, **results)
    print("\n" + body)
    if entry_point and not args.no_write:
        write_section(args.output, body)
        print(f"written to {args.output} (section {START_MARK} .. {END_MARK})")
    return 0
