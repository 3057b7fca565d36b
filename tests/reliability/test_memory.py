"""Memory: a dead sink under a burst of calls keeps memory bounded (the queue is bounded;
what does not fit is dropped and counted, never buffered without limit)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.reliability_helpers import LONG, SHORT, VERSIONS, run_app

pytestmark = pytest.mark.reliability

RECORDS = {SHORT: 100_000, LONG: 1_000_000}
#: Peak RSS growth allowed over the process's peak before the burst (a 10,000-record queue
#: of calls holding a shared response needs a few MB; anything near this bound is a leak).
BOUND = 300 * 1024 * 1024
MB = 1024 * 1024


@pytest.mark.timeout(900)
@pytest.mark.parametrize("mode", ["raising", "hanging"])
@pytest.mark.parametrize("version", VERSIONS)
def test_dead_sink_burst_keeps_memory_bounded(
    version: str, mode: str, tmp_path: Path, figures: Any, secret_scan: Any
) -> None:
    """A process whose only sink always raises (or hangs forever) takes a burst of
    decorated calls (100,000 short, 1,000,000 long, from 4 threads) returning a real
    google-genai response: its peak RSS (VmHWM) grows by less than 300 MB, and every record
    is accounted for (spooled, up to a 32 MB spool, or dropped and counted)."""
    args = {
        "mode": mode,
        "records": RECORDS[version],
        "threads": 4,
        "spool_dir": str(tmp_path / "spool"),
        "spool_max_bytes": 32 * MB,
    }
    done = run_app(tmp_path, "memory_burst", args, timeout=850, scan=secret_scan)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    sink = out["stats"]["sinks"]["dead"]
    growth = out["hwm_end"] - out["hwm_before"]
    dropped = sum(sink["dropped"].values())
    figures.record(
        f"memory: dead sink ({mode}) under a burst",
        version,
        calls=out["offered"],
        peak_rss_before_mb=round(out["hwm_before"] / MB, 1),
        peak_rss_after_mb=round(out["hwm_end"] / MB, 1),
        growth_mb=round(growth / MB, 1),
        bound_mb=BOUND // MB,
        spooled=sink["spooled"],
        dropped=", ".join(f"{k} {v:,}" for k, v in sink["dropped"].items()) or "0",
        burst_seconds=round(out["burst_s"], 1),
    )
    assert growth < BOUND
    assert sink["written"] == 0
    assert out["offered"] == sink["spooled"] + dropped, sink
    assert sink["dropped"].get("queue_full", 0) > 0, "the queue never filled"
