"""Process lifecycle: SIGTERM with records in flight, an application's own handler."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import signal, sys, time, vividly_trace
    from vividly_trace.sinks import JSONLinesSink
    if sys.argv[2] == "own-handler":
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(7))
    # Nothing is written before SIGTERM: the worker only wakes on a full batch or hourly.
    vividly_trace.configure(sinks=[JSONLinesSink(sys.argv[1])], flush_interval=3600,
                            batch_size=100000, spool_dir=False)
    @vividly_trace.logged_prompt("k")
    def f(i):
        return {"input_tokens": i, "output_tokens": 1}
    for i in range(500):
        f(i)
    print("ready", flush=True)
    time.sleep(60)
    """
)


def run_until_ready(tmp_path: Path, mode: str) -> tuple[subprocess.Popen[str], Path]:
    out = tmp_path / "records.jsonl"
    script = tmp_path / "app.py"
    script.write_text(SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(out), mode], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc, out


def test_sigterm_flushes_records_in_flight(tmp_path: Path) -> None:
    """SIGTERM with 500 queued records: all are written, then the process dies of SIGTERM."""
    proc, out = run_until_ready(tmp_path, "default")
    assert not out.exists()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == -signal.SIGTERM
    lines = out.read_text().splitlines()
    assert len(lines) == 500
    assert sorted(json.loads(x)["input_token_count"] for x in lines) == list(range(500))


def test_application_handler_wins(tmp_path: Path) -> None:
    """An application's own SIGTERM handler is left alone; its exit still flushes (atexit)."""
    proc, out = run_until_ready(tmp_path, "own-handler")
    time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 7
    assert len(out.read_text().splitlines()) == 500
