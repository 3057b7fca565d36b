"""Shared pieces of the reliability suite: fake secrets, versions, polling, subprocesses,
the per-process load body, and checks against the SQL store.

Imported by the test modules as ``tests.reliability.reliability_helpers``, so also by the
processes they spawn (``multiprocessing`` spawn passes ``sys.path`` on, and the repository
root is on it: ``pythonpath`` in the pytest options), and by bare name by
``reliability_apps.py``, which runs as a script (its directory is its ``sys.path[0]``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
APPS = HERE / "reliability_apps.py"

SHORT = "short"
LONG = "long"
#: Parametrise a test over the two versions; the long one needs ``--run-long``.
VERSIONS = [
    pytest.param(SHORT, id=SHORT),
    pytest.param(LONG, id=LONG, marks=pytest.mark.long),
]

# -- fake secrets: distinctive, so that a scan for them cannot match by accident --------------
API_KEY = "AIzaSyFAKE-vividly-reliability-0123456789"
DB_PASSWORD = "S3cretPW"
BEARER_TOKEN = "vvRelBearer.S3cr3tT0ken-4242"
BASIC_CREDENTIALS = "dml2aWRseVJlbDpub3RoaW5n"
SECRETS: dict[str, str] = {
    "API key": API_KEY,
    "database password": DB_PASSWORD,
    "bearer token": BEARER_TOKEN,
    "basic credentials": BASIC_CREDENTIALS,
}


#: The destination key of the dead sink of ``reliability_apps``: the tests replay its spool
#: with a sink of the same key (a spool is only replayed into the destination it was for).
DEAD_SINK_KEY = "reliability-dead-sink"


def secret_text(i: int = 0) -> str:
    """Free text carrying every secret the ways they leak: headers, URLs, DSNs."""
    forms = [
        f"Authorization: Bearer {BEARER_TOKEN}",
        f"authorization: Basic {BASIC_CREDENTIALS}",
        f"GET http://127.0.0.1:8080/v1beta/models?key={API_KEY}",
        f"x-goog-api-key {API_KEY}",
        f"postgresql+psycopg://postgres:{DB_PASSWORD}@127.0.0.1:5432/app",
        f"redis://:{DB_PASSWORD}@127.0.0.1:6379/0",
        f"host=127.0.0.1 port=5432 user=postgres password={DB_PASSWORD} dbname=app",
    ]
    return " | ".join(forms[i % len(forms) :] + forms[: i % len(forms)])


def secret_metadata(i: int = 0) -> dict[str, Any]:
    """Metadata carrying secrets under secret-looking keys and inside ordinary values."""
    return {
        "headers": {"Authorization": f"Bearer {BEARER_TOKEN}", "X-Goog-Api-Key": API_KEY},
        "api_key": API_KEY,
        "db_password": DB_PASSWORD,
        "request": secret_text(i),
        "note": f"called with key {API_KEY}",
        "i": i,
    }


class SecretError(Exception):
    """An exception whose message carries secrets (an upstream error echoing a request)."""

    def __init__(self, i: int = 0, execution_id: str = "") -> None:
        super().__init__(f"401 UNAUTHENTICATED: {secret_text(i)}")
        self.execution_id = execution_id


def with_password(url: str) -> str:
    """``postgresql+psycopg://postgres@host...`` -> ``postgresql+psycopg://postgres:PW@host...``
    (the test server trusts every local connection, so the password is accepted as is)."""
    return url.replace("://postgres@", f"://postgres:{DB_PASSWORD}@", 1)


# -- polling ---------------------------------------------------------------------------------
def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true; False once ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return True
        except Exception:  # e.g. the table does not exist yet
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


# -- subprocesses ----------------------------------------------------------------------------
@dataclass
class Finished:
    """A finished application process."""

    returncode: int
    stdout: str
    stderr: str


def app_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Environment of an application subprocess (inherits the fake API key)."""
    env = {
        **os.environ,
        "VIVIDLY_TRACE_SPOOL_DIR": str(tmp_path / "spool"),
        "PYTHONUNBUFFERED": "1",
    }
    for var in ("VIVIDLY_TRACE_DATABASE_URL", "VIVIDLY_TRACE_SINKS", "VIVIDLY_TRACE_DISABLED"):
        env.pop(var, None)
    env.update(extra)
    return env


def start_app(
    tmp_path: Path, scenario: str, args: dict[str, Any], **env: str
) -> subprocess.Popen[str]:
    """Start ``reliability_apps.py SCENARIO JSON`` with its output in files under tmp_path."""
    out = open(tmp_path / f"{scenario}.stdout", "w")  # noqa: SIM115 - closed by finish_app
    err = open(tmp_path / f"{scenario}.stderr", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, str(APPS), scenario, json.dumps(args)],
        stdout=out,
        stderr=err,
        text=True,
        env=app_env(tmp_path, **env),
        cwd=str(tmp_path),
    )
    proc._vt_files = (out, err, tmp_path / f"{scenario}.stdout", tmp_path / f"{scenario}.stderr")  # type: ignore[attr-defined]
    return proc


def wait_app(
    proc: subprocess.Popen[str], predicate: Callable[[], bool], timeout: float, what: str
) -> None:
    """Wait until ``predicate()``; fail at once (with its stderr) if the process died."""
    ok = wait_until(lambda: proc.poll() is not None or predicate(), timeout)
    if proc.poll() is not None and not predicate():
        err = Path(proc._vt_files[3]).read_text("utf-8", "replace")  # type: ignore[attr-defined]
        raise AssertionError(
            f"the application ended ({proc.returncode}) before {what}:\n{err[-3000:]}"
        )
    assert ok, f"timed out waiting for {what}"


def finish_app(proc: subprocess.Popen[str], timeout: float, scan: Any = None) -> Finished:
    """Wait for the process (kill it after ``timeout``); return its output, also scanned."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)
        raise
    finally:
        out, err, out_path, err_path = proc._vt_files  # type: ignore[attr-defined]
        out.close()
        err.close()
    stdout = Path(out_path).read_text("utf-8", "replace")
    stderr = Path(err_path).read_text("utf-8", "replace")
    if scan is not None:
        scan.add_text(f"stdout of {proc.args[2]}", stdout)
        scan.add_text(f"stderr of {proc.args[2]}", stderr)
    return Finished(proc.returncode, stdout, stderr)


def run_app(
    tmp_path: Path,
    scenario: str,
    args: dict[str, Any],
    timeout: float,
    scan: Any = None,
    **env: str,
) -> Finished:
    """Run an application subprocess to its end."""
    return finish_app(start_app(tmp_path, scenario, args, **env), timeout, scan)


def mount_tmpfs(path: Path, size: str) -> bool:
    """Mount a tmpfs of ``size`` on ``path`` (root only); False when that is not possible."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or sys.platform != "linux":
        return False
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0


def unmount(path: Path) -> None:
    """Undo :func:`mount_tmpfs` (lazily, should a file still be open)."""
    subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


# -- files written by applications -------------------------------------------------------------
def read_jsonl(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Parse a JSON-lines file: (objects, unparsable lines); a missing file is empty."""
    if not path.exists():
        return [], 0
    good: list[dict[str, Any]] = []
    bad = 0
    for line in path.read_bytes().splitlines():
        if not line.strip():
            continue
        try:
            good.append(json.loads(line))
        except ValueError:
            bad += 1
    return good, bad


def read_offered(path: Path) -> list[tuple[str, float]]:
    """The offered log of an application: ``(execution id, CLOCK_MONOTONIC at offer)``;
    a torn last line (the process was killed mid-write) is ignored."""
    if not path.exists():
        return []
    out = []
    for line in path.read_bytes().decode("utf-8", "replace").splitlines():
        parts = line.split()
        if len(parts) != 2 or len(parts[0]) != 36:
            continue
        try:
            out.append((parts[0], float(parts[1])))
        except ValueError:
            continue
    return out


def spool_files(spool_dir: Path) -> list[Path]:
    """Every spool file under ``spool_dir`` (all sinks, all processes)."""
    return sorted(spool_dir.rglob("*.jsonl")) if spool_dir.exists() else []


# -- the SQL store ---------------------------------------------------------------------------
def store_ids(url: str) -> list[str]:
    """Every ``prompt_executions.id`` in the store at ``url`` (empty if no table yet)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [r[0] for r in conn.execute(sa.text("SELECT id FROM prompt_executions"))]
    except sa.exc.DBAPIError:
        return []
    finally:
        engine.dispose()


def store_counts(url: str) -> tuple[int, int]:
    """``count(*), count(DISTINCT id)`` of ``prompt_executions``."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows, distinct = conn.execute(
                sa.text("SELECT count(*), count(DISTINCT id) FROM prompt_executions")
            ).one()
        return int(rows), int(distinct)
    finally:
        engine.dispose()


_STAT_COLUMNS = (
    "total_executions",
    "successful_executions",
    "failed_executions",
    "total_input_tokens",
    "total_output_tokens",
    "total_tokens",
    "total_cost_usd",
    "total_response_time_ms",
)
_AGGREGATES = """
    SELECT template_id, count(*),
           sum(CASE WHEN success THEN 1 ELSE 0 END),
           sum(CASE WHEN success THEN 0 ELSE 1 END),
           coalesce(sum(input_token_count), 0), coalesce(sum(output_token_count), 0),
           coalesce(sum(total_token_count), 0), coalesce(sum(cost_usd), 0),
           coalesce(sum(response_time_ms), 0)
      FROM prompt_executions GROUP BY template_id
"""


def statistics_mismatches(url: str) -> tuple[int, list[str]]:
    """Compare the trigger-kept template statistics with aggregates over the raw rows.

    Returns (templates compared, differences). Counts and token sums must be equal; money
    exactly on PostgreSQL (as floats on SQLite); the response-time sum within 1e-9 relative.
    """
    import math
    from decimal import Decimal

    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            stats = {
                r[0]: r[1:]
                for r in conn.execute(
                    sa.text(f"SELECT id, {', '.join(_STAT_COLUMNS)} FROM prompt_templates")
                )
            }
            raw = {r[0]: r[1:] for r in conn.execute(sa.text(_AGGREGATES))}
    finally:
        engine.dispose()
    problems = []
    for tid, values in stats.items():
        want_all = raw.get(tid, (0,) * len(_STAT_COLUMNS))
        for name, got, want in zip(_STAT_COLUMNS, values, want_all, strict=True):
            if name == "total_cost_usd":  # exact on both engines (SQLite: pico-dollars)
                ok = Decimal(got) == Decimal(want)
            elif name == "total_response_time_ms":
                ok = math.isclose(float(got), float(want), rel_tol=1e-9, abs_tol=1e-9)
            else:
                ok = int(got) == int(want)
            if not ok:
                problems.append(f"template {tid}: {name} = {got!r}, the rows say {want!r}")
    for tid in set(raw) - set(stats):
        problems.append(f"rows point to a missing template {tid}")
    return len(stats), problems


def dump_store(url: str) -> str:
    """Every row of both tables as text (for the secret scan)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    parts: list[str] = []
    try:
        with engine.connect() as conn:
            for table in ("prompt_templates", "prompt_executions"):
                try:
                    rows = conn.execute(sa.text(f"SELECT * FROM {table}")).all()
                except sa.exc.DBAPIError:
                    conn.rollback()
                    continue
                parts.extend(repr(tuple(r)) for r in rows)
    finally:
        engine.dispose()
    return "\n".join(parts)


def start_writers(
    url: str,
    tmp_path: Path,
    processes: int,
    threads: int,
    seconds: float,
    pause: float,
    tag: str = "load",
    **extra: Any,
) -> list[tuple[Any, dict[str, Any]]]:
    """Start ``processes`` spawned writer processes (:func:`load_process`)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    jobs = []
    for p in range(processes):
        args = {
            "url": url,
            "proc": p,
            "threads": threads,
            "seconds": seconds,
            "pause": pause,
            "spool_dir": str(tmp_path / f"spool_{tag}_{p}"),
            "ids_path": str(tmp_path / f"{tag}_ids_{p}.txt"),
            "out_path": str(tmp_path / f"{tag}_report_{p}.json"),
            **extra,
        }
        jobs.append((ctx.Process(target=load_process, args=(args,)), args))
    for proc, _ in jobs:
        proc.start()
    return jobs


def wait_writers(
    jobs: list[tuple[Any, dict[str, Any]]], timeout: float
) -> tuple[list[dict[str, Any]], list[str]]:
    """Wait (at most ``timeout`` seconds in all) for the writer processes; return their
    reports and all the ids they logged."""
    deadline = time.monotonic() + timeout
    for proc, _ in jobs:
        proc.join(max(1.0, deadline - time.monotonic()))
    for proc, _ in jobs:
        if proc.is_alive():
            proc.kill()
            proc.join(10)
    assert [proc.exitcode for proc, _ in jobs] == [0] * len(jobs), "a writer process failed"
    reports = []
    ids: list[str] = []
    for _, args in jobs:
        reports.append(json.loads(Path(args["out_path"]).read_text()))
        text = Path(args["ids_path"]).read_text()
        ids.extend(text.split("\n") if text else [])
    return reports, ids


def load_process(args: dict[str, Any]) -> None:
    """Body of one writer process of the load and outage scenarios (spawned).

    ``threads`` threads log for ``seconds`` through the three public forms (decorator,
    ``with`` block, ``log_prompt_execution``), pausing ``pause`` seconds between calls; then
    the process flushes, waits until its spool is replayed, and writes a JSON report: calls
    offered, ids (to ``ids_path``), its ``stats()``, the slowest call.
    """
    import random
    import threading
    from decimal import Decimal

    import vividly_trace
    from vividly_trace import log_prompt_execution, logged_prompt
    from vividly_trace._config import get_pipeline
    from vividly_trace.sinks.sql import SQLSink

    vividly_trace.configure(
        sinks=[SQLSink(args["url"], connect_timeout=2)],
        batch_size=args.get("batch_size", 200),
        flush_interval=args.get("flush_interval", 0.2),
        max_retries=args.get("max_retries", 3),
        retry_backoff=args.get("retry_backoff", 0.2),
        spool_dir=args["spool_dir"],
    )
    proc = args["proc"]
    threads = args["threads"]
    keys = ("nlu_extraction", "clarification", "script_generation")

    @logged_prompt("decorated_task", version="v1", ab_group="B", model="gemini-2.5-flash")
    def decorated(n: int) -> str:
        call = vividly_trace.get_current_call()
        assert call is not None
        call.set_usage(input_tokens=10 + n % 50, output_tokens=n % 20, thinking_tokens=n % 3)
        if n % 11 == 0:
            call.metadata.update(secret_metadata(n))
            raise SecretError(n, call.execution_id)
        return call.execution_id

    ids: list[list[str]] = [[] for _ in range(threads)]
    slowest = [0.0] * threads
    start = threading.Barrier(threads)
    deadline_box: list[float] = []

    def worker(t: int) -> None:
        mine = ids[t]
        rnd = random.Random(proc * 1000 + t)
        start.wait()
        if not deadline_box:
            deadline_box.append(time.monotonic() + args["seconds"])
        deadline = deadline_box[0]
        i = 0
        while time.monotonic() < deadline:
            n = (proc * threads + t) * 10_000_000 + i
            key = keys[n % 3]
            version, group = f"v{n % 2 + 1}", "AB"[n // 2 % 2]
            form = i % 3
            t0 = time.perf_counter()
            if form == 0:
                got = log_prompt_execution(
                    key,
                    n % 9 != 0,
                    5.0 + n % 400,
                    100 + n % 1000,
                    n % 300,
                    Decimal(n % 1000) / Decimal(10**6),
                    None if n % 9 else secret_text(n),
                    secret_metadata(n) if n % 13 == 0 else {"n": n, "proc": proc},
                    template_version=version,
                    ab_test_group=group,
                )
                assert got is not None
                mine.append(got)
            elif form == 1:
                with logged_prompt(
                    key, version=version, ab_group=group, model="gemini-2.5-flash"
                ) as call:
                    call.set_usage(input_tokens=n % 700, output_tokens=n % 90, cached_tokens=n % 7)
                    call.metadata["n"] = n
                mine.append(call.execution_id)
            else:
                try:
                    mine.append(decorated(n))
                except SecretError as exc:
                    mine.append(exc.execution_id)
            slowest[t] = max(slowest[t], time.perf_counter() - t0)
            i += 1
            time.sleep(args["pause"] * (0.5 + rnd.random()))

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    offered = sum(len(chunk) for chunk in ids)
    flushed = vividly_trace.flush(timeout=args.get("flush_timeout", 120))
    pipeline = get_pipeline()
    assert pipeline is not None
    replay_deadline = time.monotonic() + args.get("replay_timeout", 60)
    while pipeline.stats()["sinks"]["sql"]["spool_pending"] and time.monotonic() < replay_deadline:
        time.sleep(0.2)
    stats = pipeline.stats()
    vividly_trace.shutdown(timeout=30)
    Path(args["ids_path"]).write_text("\n".join(i for chunk in ids for i in chunk))
    Path(args["out_path"]).write_text(
        json.dumps(
            {
                "offered": offered,
                "flushed": flushed,
                "stats": stats,
                "slowest_call_s": max(slowest),
            }
        )
    )
