"""What the overhead benchmarks share: the things measured and the timing helpers.

A discarding sink, the OpenTelemetry set-up with a no-op exporter, a realistic
``GenerateContentResponse``, the bare ``wrapt`` pass-through control, vividly's
configuration, draining, and the timed loop. No statistics (``_stats.py``) and no Markdown
(``report.py``) here.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from time import perf_counter_ns
from typing import Any

import wrapt

import vividly_trace
from vividly_trace import logged_prompt

ROOT = Path(__file__).resolve().parent.parent
MODEL = "gemini-2.5-flash"


class DiscardSink:
    """A sink that discards records (it keeps the last one, to check extraction ran)."""

    name = "discard"
    spool = False

    def __init__(self) -> None:
        self.batches = 0
        self.records = 0
        self.last: Any = None
        self.last_with_usage: Any = None

    def write_batch(self, records: Sequence[Any]) -> None:
        self.batches += 1
        self.records += len(records)
        last = self.last = records[-1]
        if getattr(last, "input_token_count", None) is not None:
            self.last_with_usage = last

    def close(self) -> None:
        pass


def _noop_exporter_class() -> type:
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class NoopSpanExporter(SpanExporter):
        """Accepts every batch and does nothing with it."""

        def export(self, spans: Sequence[Any]) -> Any:
            return SpanExportResult.SUCCESS

        def shutdown(self) -> None:
            pass

        def force_flush(self, timeout_millis: int = 30_000) -> bool:
            return True

    return NoopSpanExporter


def make_otel(max_queue_size: int, parked: bool = False) -> tuple[Any, Any, Any]:
    """A TracerProvider with a BatchSpanProcessor and a no-op exporter;
    (provider, tracer, processor).

    ``parked``: the export thread never wakes during a loop (huge batch, 1 h delay); it
    exports on ``force_flush`` only.
    """
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    kwargs: dict[str, Any] = {"max_queue_size": max_queue_size}
    if parked:
        kwargs.update(max_export_batch_size=max_queue_size, schedule_delay_millis=3_600_000)
    processor = BatchSpanProcessor(_noop_exporter_class()(), **kwargs)
    provider.add_span_processor(processor)
    return provider, provider.get_tracer("vividly_trace.benchmarks"), processor


def otel_queued(processor: Any) -> int | None:
    """Spans waiting in the BatchSpanProcessor (private attribute; None if it moved)."""
    try:
        return len(processor._batch_processor._queue)
    except Exception:
        return None


def make_response() -> Any:
    """A realistic ``GenerateContentResponse`` (thinking, cached input, finish reason)."""
    from google.genai import types

    return types.GenerateContentResponse.model_validate(
        {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [{"text": '{"intent": "book_flight", "city": "Lisbon"}'}],
                    },
                    "finish_reason": "STOP",
                    "index": 0,
                }
            ],
            "usage_metadata": {
                "prompt_token_count": 1234,
                "cached_content_token_count": 1024,
                "candidates_token_count": 210,
                "thoughts_token_count": 350,
                "total_token_count": 1794,
                "prompt_tokens_details": [{"modality": "TEXT", "token_count": 1234}],
                "cache_tokens_details": [{"modality": "TEXT", "token_count": 1024}],
                "candidates_tokens_details": [{"modality": "TEXT", "token_count": 210}],
            },
            "model_version": MODEL,
            "response_id": "bench-response-1",
        }
    )


@wrapt.decorator
def passthrough(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    return wrapped(*args, **kwargs)


def strip_self_shortcut(function: Any) -> bool:
    """Delete the ``__self__`` that ``logged_prompt`` may have written onto ``function``
    (to spare wrapt's failing ``__self__`` lookup on every call); True if there was one.

    wrapt looks ``__self__`` up on every call, so deleting it after decorating gives the
    cost of a ``logged_prompt`` that does not write it, whichever version is installed.
    """
    if "__self__" in getattr(function, "__dict__", {}):
        del function.__self__
        return True
    return False


def sets_self_shortcut() -> bool:
    """Whether the installed ``logged_prompt`` writes ``__self__`` onto a plain function."""

    def probe() -> None:
        return None

    logged_prompt("probe")(probe)
    return strip_self_shortcut(probe)


def configure_vividly(sink: DiscardSink, queue_size: int, parked: bool = False) -> None:
    """Default background mode with a discarding sink; ``parked``: the worker does not wake
    during a loop (it drains on ``flush()`` only). Client capture is not installed (the
    decorator alone is measured); ``bench_real_call`` installs it around its capture arms."""
    kwargs: dict[str, Any] = {}
    if parked:
        kwargs.update(batch_size=queue_size + 1, flush_interval=3600)
    vividly_trace.configure(
        sinks=[sink], spool_dir=False, queue_size=queue_size, capture_clients=False, **kwargs
    )


def drain(provider: Any) -> None:
    if not vividly_trace.flush(timeout=120):
        print("warning: vividly_trace.flush() timed out", file=sys.stderr)
    provider.force_flush(120_000)


def settle() -> None:
    """Let a parked worker take the wake-up that ``flush()`` leaves behind (it sets the
    worker's event once more before returning) while its queue is still empty, so that it
    does not wake inside the next timed loop."""
    time.sleep(0.005)


def time_loop(fn: Callable[[], Any], n: int) -> int:
    """Total ns of ``n`` calls of ``fn`` (the loop's own cost is in the baseline too)."""
    it = itertools.repeat(None, n)
    t0 = perf_counter_ns()
    for _ in it:
        fn()
    return perf_counter_ns() - t0


def rotation(names: Sequence[str], r: int) -> list[str]:
    """Round ``r``'s order: the names rotated by ``r`` (ABCDE, BCDEA, ...)."""
    k = r % len(names)
    return [*names[k:], *names[:k]]


# --------------------------------------------------------------------------------------
# Checkouts measured side by side (``--tree NAME=PATH``)
# --------------------------------------------------------------------------------------
def parse_trees(specs: Sequence[str], default_name: str = "this") -> dict[str, Path]:
    """``--tree NAME=PATH`` values (repeatable; none: this checkout) as ``{NAME: PATH}``;
    a bare ``PATH`` is named after itself. Raises ``ValueError`` for a path that is not a
    directory."""
    trees: dict[str, Path] = {}
    for spec in specs or [f"{default_name}={ROOT}"]:
        name, _, path = spec.rpartition("=")
        if not Path(path).is_dir():
            raise ValueError(f"--tree takes NAME=PATH with PATH a directory, got {spec!r}")
        trees[name or path] = Path(path).resolve()
    return trees


def tree_env(tree: Path, **extra: str) -> dict[str, str]:
    """The environment of a child process that runs ``tree``'s code (and these benchmarks'
    helpers), plus ``extra``."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tree), str(ROOT / "benchmarks")]),
        **extra,
    }


def time_blocks(
    arms: Sequence[tuple[str, Callable[[], Any]]],
    blocks: int,
    rng: Any,
    before: Callable[[str], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[str, list[int]], list[list[int]]]:
    """Randomised blocks: each block times one call of every arm, in a freshly shuffled
    order; ``before(name)`` runs outside the timed region, ``progress(blocks done)`` after
    each block. Each call's result is released outside the timed region too. Returns (ns
    per call by arm, one per block; ns by position in the block)."""
    times: dict[str, list[int]] = {name: [] for name, _ in arms}
    positions: list[list[int]] = [[] for _ in arms]
    order = list(range(len(arms)))
    for b in range(blocks):
        rng.shuffle(order)
        for pos, k in enumerate(order):
            name, fn = arms[k]
            if before is not None:
                before(name)
            t0 = perf_counter_ns()
            response = fn()
            elapsed = perf_counter_ns() - t0
            del response  # freed outside the timed region (see bench_real_call)
            times[name].append(elapsed)
            positions[pos].append(elapsed)
        if progress is not None:
            progress(b + 1)
    return times, positions
