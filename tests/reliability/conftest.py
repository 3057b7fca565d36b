"""The reliability suite: options, the long/short split, the figures and the secret scan.

* ``--run-long`` (or ``VIVIDLY_TRACE_RUN_LONG=1``): run the tests marked ``long``; without
  it they are skipped. ``make test-long`` runs ``pytest -q -m long --run-long
  tests/reliability``. (Pass the ``tests/reliability`` path with the option: pytest reads
  options of a sub-directory's conftest only when that directory is named.)
* ``--write-reliability`` (or ``VIVIDLY_TRACE_WRITE_RELIABILITY=1``; implied by
  ``--run-long``): at the end of the session, rewrite ``RELIABILITY.md`` from the figures the
  tests recorded. Rows of scenarios not run in this session are kept from the file, so a
  short run and a long run can share it. The default (CI) run writes nothing.
* Every test here is marked ``reliability``. Each records its figures through the
  ``figures`` fixture; the outcome (pass/fail) is taken from the test's report.
* The secret scan: a session-wide collector (``secret_scan``) sees every log line (all
  loggers, ``vividly_trace`` at DEBUG), the files each test leaves in its ``tmp_path``
  (records, spools, databases), and what the tests add (records, subprocess output, store
  dumps). ``test_security.py::test_no_secret_anywhere`` runs last and asserts it found none.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import platform
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.reliability_helpers import API_KEY, HERE, ROOT, SECRETS

RELIABILITY_MD = ROOT / "RELIABILITY.md"
_DATA_START = "<!-- reliability-data"
_DATA_END = "reliability-data -->"
_SCAN_LAST = "test_no_secret_anywhere"


# -- options ---------------------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("reliability", "vividly_trace reliability suite")
    group.addoption(
        "--run-long",
        action="store_true",
        default=False,
        help="run the long version of the reliability suite (tests marked 'long')",
    )
    group.addoption(
        "--write-reliability",
        action="store_true",
        default=False,
        help="rewrite RELIABILITY.md from this session's figures",
    )


def _flag(config: pytest.Config, name: str, env: str) -> bool:
    value = config.getoption(name, default=False)
    return bool(value) or os.environ.get(env, "").strip().lower() in ("1", "true", "yes")


def run_long(config: pytest.Config) -> bool:
    """Whether the long version runs in this session."""
    return _flag(config, "run_long", "VIVIDLY_TRACE_RUN_LONG")


def _ours(item: pytest.Item) -> bool:
    return Path(str(item.path)).resolve().is_relative_to(HERE)


# -- the figures -----------------------------------------------------------------------------
class Collector:
    """Figures recorded by the tests of this session, and their outcomes."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}  # by scenario + version
        self.by_node: dict[str, list[str]] = {}
        self.outcomes: dict[str, str] = {}
        self.docs: dict[str, str] = {}
        self.lock = threading.Lock()

    def record(self, nodeid: str, scenario: str, version: str, figures: dict[str, Any]) -> None:
        key = f"{scenario} [{version}]"
        with self.lock:
            row = self.rows.setdefault(
                key, {"scenario": scenario, "version": version, "figures": {}}
            )
            row["figures"].update({k: _show(v) for k, v in figures.items()})
            row["nodeid"] = nodeid
            self.by_node.setdefault(nodeid, [])
            if key not in self.by_node[nodeid]:
                self.by_node[nodeid].append(key)


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


class Figures:
    """What a test gets from the ``figures`` fixture."""

    def __init__(self, collector: Collector, nodeid: str) -> None:
        self._collector = collector
        self._nodeid = nodeid

    def record(self, scenario: str, version: str, **figures: Any) -> None:
        """Record (or add to) the figures of ``scenario`` in ``version`` (short/long)."""
        clean = {k.replace("_", " "): v for k, v in figures.items()}
        self._collector.record(self._nodeid, scenario, version, clean)


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "_vt_reliability"):
        config._vt_reliability = Collector()  # type: ignore[attr-defined]


def _collector(config: pytest.Config) -> Collector:
    if not hasattr(config, "_vt_reliability"):
        config._vt_reliability = Collector()  # type: ignore[attr-defined]
    return config._vt_reliability  # type: ignore[attr-defined,no-any-return]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ours ``reliability``; run the secret scan after everything else."""
    last = []
    for item in items:
        if not _ours(item):
            continue
        if item.get_closest_marker("reliability") is None:
            item.add_marker(pytest.mark.reliability)
        if getattr(item, "originalname", item.name) == _SCAN_LAST:
            last.append(item)
    for item in last:
        items.remove(item)
        items.append(item)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("long") is not None and not run_long(item.config):
        pytest.skip("long version of the reliability suite: run with --run-long")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if not _ours(item):
        return
    collector = _collector(item.config)
    doc = getattr(getattr(item, "function", None), "__doc__", None)
    if doc:
        collector.docs[item.nodeid] = " ".join(doc.split())
    current = collector.outcomes.get(item.nodeid)
    if report.failed:
        collector.outcomes[item.nodeid] = "FAIL"
    elif report.skipped and current is None:
        collector.outcomes[item.nodeid] = "skipped"
    elif report.when == "call" and report.passed and current != "FAIL":
        collector.outcomes[item.nodeid] = "pass"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if not (
        _flag(config, "write_reliability", "VIVIDLY_TRACE_WRITE_RELIABILITY") or run_long(config)
    ):
        return
    collector = _collector(config)
    if not collector.outcomes:
        return
    _write_reliability(config, collector)


def _command(config: pytest.Config) -> str:
    args = " ".join(str(a) for a in config.invocation_params.args)
    return f".venv/bin/python -m pytest {args}".strip()


def _machine() -> str:
    try:
        load = "/".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"Python {platform.python_version()} ({platform.python_implementation()}, "
        f"{sys.platform}); {os.cpu_count()} logical CPUs ({cpu}); load average {load} at the end"
    )


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return out.stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def _load_existing() -> dict[str, Any]:
    try:
        text = RELIABILITY_MD.read_text("utf-8")
    except OSError:
        return {}
    start = text.find(_DATA_START)
    end = text.find(_DATA_END)
    if start < 0 or end < 0:
        return {}
    try:
        data = json.loads(text[start + len(_DATA_START) : end])
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _write_reliability(config: pytest.Config, collector: Collector) -> None:
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = _command(config)
    data = _load_existing()
    rows: dict[str, Any] = dict(data.get("rows", {}))
    machine = _machine()
    commit = _git_commit()
    for nodeid, outcome in collector.outcomes.items():
        if outcome == "skipped":
            continue
        keys = collector.by_node.get(nodeid)
        if not keys:  # failed before recording anything
            name = nodeid.split("::")[-1]
            version = "long" if "[long" in name else "short"
            keys = [f"{name} [{version}]"]
            collector.rows[keys[0]] = {"scenario": name, "version": version, "figures": {}}
        for key in keys:
            row = dict(collector.rows[key])
            row.update(
                result=outcome,
                date=now,
                command=command,
                machine=machine,
                commit=commit,
                doc=collector.docs.get(nodeid, ""),
                nodeid=nodeid,
            )
            rows[key] = row
    RELIABILITY_MD.write_text(_render(rows), "utf-8")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


_ORDER = ("hostile", "load", "fault", "memory", "security")


def _sort_key(item: tuple[str, dict[str, Any]]) -> tuple[int, str, int]:
    scenario = item[1]["scenario"]
    group = next((i for i, p in enumerate(_ORDER) if scenario.startswith(p)), len(_ORDER))
    return (group, scenario, 0 if item[1]["version"] == "short" else 1)


def _render(rows: dict[str, Any]) -> str:
    ordered = sorted(rows.items(), key=_sort_key)
    lines = [
        "# Reliability",
        "",
        "What the reliability suite (`tests/reliability/`) measured: hostile input, load, "
        "faults, memory and secrets. This file is written by the suite; do not edit it by "
        "hand. Each row says which version ran (short: part of every `make test`; long: "
        "`make test-long`), when, with which command, and whether the test passed.",
        "",
        "Reproduce:",
        "",
        "```sh",
        ".venv/bin/python -m pytest -q tests/reliability --write-reliability   # short (~1 min)",
        "make test-long   # .venv/bin/python -m pytest -q -m long --run-long tests/reliability",
        "```",
        "",
        "| scenario | version | figures | result | date | command |",
        "|---|---|---|---|---|---|",
    ]
    for _, row in ordered:
        figures = "; ".join(f"{k}: {v}" for k, v in row.get("figures", {}).items()) or "-"
        lines.append(
            f"| {_cell(row['scenario'])} | {row['version']} | {_cell(figures)} | "
            f"**{row.get('result', '?')}** | {row.get('date', '?')} | "
            f"`{_cell(row.get('command', '?'))}` |"
        )
    lines += ["", "## Scenarios", ""]
    seen: set[str] = set()
    for _, row in ordered:
        scenario = row["scenario"]
        if scenario in seen:
            continue
        seen.add(scenario)
        lines.append(
            f"- **{scenario}** (`{row.get('nodeid', '?').split('[')[0]}`): {row.get('doc', '')}"
        )
    lines += ["", "## Machines", ""]
    machines = sorted(
        {(r.get("version"), r.get("machine", "?"), r.get("commit", "?")) for r in rows.values()}
    )
    for version, machine, commit in machines:
        lines.append(f"- {version}: {machine}; commit {commit} (working tree as found)")
    lines += [
        "",
        _DATA_START,
        json.dumps({"rows": rows}, indent=1, ensure_ascii=False),
        _DATA_END,
        "",
    ]
    return "\n".join(lines)


@pytest.fixture(name="figures")
def _figures(request: pytest.FixtureRequest) -> Figures:
    """Record this test's figures for RELIABILITY.md."""
    return Figures(_collector(request.config), request.node.nodeid)


# -- the secret scan -------------------------------------------------------------------------
class SecretScan:
    """Scans everything it is given for the suite's fake secrets; keeps what it found."""

    def __init__(self) -> None:
        self.findings: list[str] = []
        self.items = 0
        self.bytes = 0
        self.log_lines = 0
        self.records = 0
        self.files = 0
        self._lock = threading.Lock()
        self._patterns = {name: value.encode() for name, value in SECRETS.items()}

    def add_bytes(self, source: str, data: bytes) -> None:
        with self._lock:
            self.items += 1
            self.bytes += len(data)
        for name, pattern in self._patterns.items():
            at = data.find(pattern)
            if at >= 0:
                context = data[max(0, at - 80) : at + len(pattern) + 20]
                with self._lock:
                    if len(self.findings) < 200:
                        self.findings.append(
                            f"{name} in {source}: ...{context.decode('utf-8', 'replace')}..."
                        )

    def add_text(self, source: str, text: str) -> None:
        self.add_bytes(source, text.encode("utf-8", "surrogatepass"))

    def add_records(self, source: str, records: Any) -> None:
        n = 0
        chunk: list[str] = []
        for record in records:
            n += 1
            chunk.append(repr(record.to_exact_dict()))
            if len(chunk) >= 1000:
                self.add_text(source, "\n".join(chunk))
                chunk = []
        if chunk:
            self.add_text(source, "\n".join(chunk))
        with self._lock:
            self.records += n

    def add_file(self, path: Path, limit: int = 256 * 1024 * 1024) -> None:
        try:
            if not path.is_file() or path.stat().st_size > limit:
                return
            data = path.read_bytes()
        except OSError:
            return
        with self._lock:
            self.files += 1
        self.add_bytes(str(path), data)

    def add_tree(self, root: Path) -> None:
        if not root.exists():
            return
        for path in root.rglob("*"):
            self.add_file(path)


class _ScanHandler(logging.Handler):
    def __init__(self, scan: SecretScan) -> None:
        super().__init__(logging.DEBUG)
        self.scan = scan
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception as exc:  # a line that cannot be formatted is a finding of its own
            line = f"<unformattable log record {record.msg!r}: {exc!r}>"
        with self.scan._lock:
            self.scan.log_lines += 1
        self.scan.add_text(f"log line ({record.name})", line)


_SCAN = SecretScan()


@pytest.fixture(name="secret_scan", scope="session")
def _secret_scan() -> SecretScan:
    """The session's secret scan (see the module docstring)."""
    return _SCAN


@pytest.fixture(scope="session", autouse=True)
def _reliability_session() -> Iterator[None]:
    """For the whole suite: a fake Gemini API key in the environment, and every log line
    (``vividly_trace`` at DEBUG) going through the secret scan."""
    old_key = os.environ.get("GEMINI_API_KEY")
    os.environ["GEMINI_API_KEY"] = API_KEY
    handler = _ScanHandler(_SCAN)
    root = logging.getLogger()
    ours = logging.getLogger("vividly_trace")
    old_level = ours.level
    root.addHandler(handler)
    ours.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(handler)
        ours.setLevel(old_level)
        if old_key is None:
            os.environ.pop("GEMINI_API_KEY", None)
        else:
            os.environ["GEMINI_API_KEY"] = old_key


@pytest.fixture(autouse=True)
def _scan_tmp_path(tmp_path: Path) -> Iterator[None]:
    """After each test, scan what it left in its tmp_path (records, spools, databases)."""
    yield
    _SCAN.add_tree(tmp_path)


# -- servers and disks -----------------------------------------------------------------------
@pytest.fixture(name="crash_pg")
def _crash_pg(tmp_path: Path) -> Iterator[Any]:
    """A PostgreSQL server of this test only (it gets killed): never the session's."""
    from vividly_trace.testing.postgres import PostgresServer

    server = PostgresServer(tmp_path / "pg")
    server.start()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture(name="fake_logging")
def _fake_logging() -> Iterator[Any]:
    """A fresh fake Cloud Logging endpoint on 127.0.0.1."""
    pytest.importorskip("google.cloud.logging")
    from vividly_trace.testing.fake_logging import FakeLoggingServer

    with FakeLoggingServer() as server:
        yield server
