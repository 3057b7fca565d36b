"""Load: 16 threads in each of 4 processes logging into one PostgreSQL.

Each process logs through the three public forms (decorator, ``with`` block,
``log_prompt_execution``) with a short pause between calls (an application's threads wait
on I/O between Gemini calls), then flushes and reports its ``stats()`` and the ids it got.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.reliability_helpers import (
    LONG,
    SHORT,
    VERSIONS,
    dump_store,
    start_writers,
    statistics_mismatches,
    store_counts,
    store_ids,
    wait_writers,
    with_password,
)

pytestmark = [pytest.mark.reliability, pytest.mark.postgres]

PLAN = {
    SHORT: {"processes": 4, "threads": 16, "seconds": 4.0, "pause": 0.004},
    LONG: {"processes": 4, "threads": 16, "seconds": 65.0, "pause": 0.004},
}


@pytest.mark.timeout(900)
@pytest.mark.parametrize("version", VERSIONS)
def test_load_16_threads_x_4_processes_into_one_postgresql(
    version: str, postgres_url: str, tmp_path: Path, figures: Any, secret_scan: Any
) -> None:
    """4 spawned processes x 16 threads log for the duration (a few seconds short, >= 60 s
    long) into one PostgreSQL through a URL carrying a password: in every process records
    offered = written + counted drops (its `stats()`), the table holds exactly the written
    records (count(*) = count(distinct id) = sum of written, every stored id one that was
    offered), and the template statistics kept by the triggers equal the aggregates over the
    raw rows."""
    plan = PLAN[version]
    url = with_password(postgres_url)
    started = time.monotonic()
    reports, ids = wait_writers(start_writers(url, tmp_path, **plan), timeout=600)
    elapsed = time.monotonic() - started
    offered = sum(r["offered"] for r in reports)
    written = sum(r["stats"]["sinks"]["sql"]["written"] for r in reports)
    dropped: dict[str, int] = {}
    for r in reports:
        for reason, n in r["stats"]["sinks"]["sql"]["dropped"].items():
            dropped[reason] = dropped.get(reason, 0) + n
    rows, distinct = store_counts(url)
    stored = store_ids(url)
    templates, mismatches = statistics_mismatches(url)
    secret_scan.add_text("load: PostgreSQL rows", dump_store(url))
    figures.record(
        "load: 16 threads x 4 processes into one PostgreSQL",
        version,
        processes=plan["processes"],
        threads_per_process=plan["threads"],
        seconds_of_load=plan["seconds"],
        records_offered=offered,
        records_written=written,
        dropped=", ".join(f"{k} {v}" for k, v in dropped.items()) or "0",
        rows=rows,
        distinct_ids=distinct,
        records_per_second=round(rows / plan["seconds"]),
        templates_checked=templates,
        statistics_mismatches=len(mismatches),
        slowest_call_ms=round(1000 * max(r["slowest_call_s"] for r in reports), 1),
        wall_seconds=round(elapsed, 1),
    )
    for r in reports:
        sql = r["stats"]["sinks"]["sql"]
        assert r["flushed"] is True
        assert r["offered"] == sql["written"] + sum(sql["dropped"].values()), sql
        assert sql["failed_batches"] == 0, sql
        assert not sql["spool_pending"]
    assert len(ids) == offered and len(set(ids)) == offered, "execution ids are not unique"
    assert rows == distinct == written
    assert set(stored) <= set(ids)
    assert offered == written + sum(dropped.values())
    assert mismatches == []
    assert offered > 0
