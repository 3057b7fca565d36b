"""``vividly-trace demo`` from a fresh copy of the repository, and its HTML report in headless
Chromium (Debian's ``chromium``, driven over the DevTools protocol).

"Fresh clone": ``git clone`` would miss uncommitted work, so the test copies the files git
would put in a clone once the work is committed (``git ls-files --cached --others
--exclude-standard``: tracked and untracked, never ignored ones such as .venv or *.db), builds
and installs that copy with pip (non-editable, into a directory of its own, ``--no-deps``: the
dependencies come from this virtualenv), and runs the installed ``vividly-trace`` console
script in an empty directory with that install first on the path. So the demo runs from the
package as a wheel ships it (examples and migrations included), not from this work tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cli.cli_chromium import Chromium, find_chromium
from tests.cli.cli_helpers import ARTIFACTS, ROOT, cli_env


def _copy_repository(target: Path) -> int:
    """Copy what a clone of the repository would hold (tracked and untracked, not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    count = 0
    for raw in listed:
        if not raw:
            continue
        relative = raw.decode()
        source = ROOT / relative
        if not source.is_file():  # deleted in the work tree, not yet committed
            continue
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)
        count += 1
    return count


@pytest.fixture(name="installed", scope="module")
def _installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The repository copied, built and installed on its own; the demo run from it."""
    base = tmp_path_factory.mktemp("fresh")
    clone = base / "clone"
    site = base / "site"
    assert _copy_repository(clone) > 20
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(site),
            str(clone),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, (
        f"building the fresh copy failed (needs setuptools>=77, in the dev extra):\n{build.stderr}"
    )
    env = cli_env(PYTHONPATH=str(site), VIVIDLY_TRACE_SPOOL_DIR=str(base / "spool"))
    workdir = base / "work"
    workdir.mkdir()
    script = site / "bin" / "vividly-trace"
    demo = subprocess.run(
        [str(script), "demo"],
        capture_output=True,
        text=True,
        env=env,
        cwd=workdir,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    return {
        "site": site,
        "env": env,
        "workdir": workdir,
        "script": script,
        "demo": demo,
    }


class TestDemo:
    def test_runs_from_the_fresh_install(self, installed: dict[str, Any]) -> None:
        """The demo imports the copy's package, not this work tree."""
        probe = subprocess.run(
            [
                sys.executable,
                "-c",
                "import vividly_trace, vividly_trace.examples.nlu_extraction as n, "
                "vividly_trace.sinks.sql.migrate as m;"
                "print(vividly_trace.__file__); print(n.__file__); print(m.MIGRATIONS_DIR)",
            ],
            capture_output=True,
            text=True,
            env=installed["env"],
            cwd=installed["workdir"],  # not this work tree, which `python -c` would put first
            check=True,
        )
        site = str(installed["site"])
        assert len(probe.stdout.splitlines()) == 3, probe.stdout
        for line in probe.stdout.splitlines():
            assert line.startswith(site), line
        assert (installed["site"] / "vividly_trace/sinks/sql/migrations/versions").is_dir()

    def test_demo_output(self, installed: dict[str, Any]) -> None:
        """Exit 0, 400 calls logged, the report and its verdict (how long the demo takes is
        measured in benchmarks, never asserted under a loaded test machine)."""
        demo = installed["demo"]
        assert demo.returncode == 0, demo.stderr
        out = demo.stdout
        assert "400 calls to local fake Gemini servers logged into" in out
        for text in (
            "Cost and success by template",
            "Latency (ms)",
            "Top error patterns",
            "[BlockedPrompt] prompt blocked: SAFETY",
            "[NLUParseError]",
            "429 RESOURCE_EXHAUSTED",
            "A/B: nlu_extraction",
            "v4/B better at 95%",
            "HTML report:",
        ):
            assert text in out, text
        for name in ("nlu_extraction", "clarification", "script_generation", "adhoc_summary"):
            assert name in out
        assert "unexpected error" not in demo.stderr
        assert "Traceback" not in demo.stderr
        workdir = installed["workdir"]
        assert (workdir / "vividly_demo.db").is_file()
        assert (workdir / "vividly_report.html").is_file()

    def test_database_content(self, installed: dict[str, Any]) -> None:
        """Streams, thinking and cached tokens, errors, a blocked prompt, 14 days of data."""
        import sqlalchemy as sa

        engine = sa.create_engine(f"sqlite:///{installed['workdir'] / 'vividly_demo.db'}")
        with engine.connect() as conn:
            q = conn.execute
            assert q(sa.text("SELECT count(*) FROM prompt_executions")).scalar() == 400
            assert q(sa.text("SELECT count(*) FROM prompt_executions WHERE streamed")).scalar() > 20
            assert q(sa.text("SELECT sum(thinking_token_count) FROM prompt_executions")).scalar()
            assert q(sa.text("SELECT sum(cached_token_count) FROM prompt_executions")).scalar()
            # The example services return parsed dicts and yield text: client capture gives
            # every successful call its tokens and cost (no record_response in examples/).
            unpriced = q(
                sa.text(
                    "SELECT count(*) FROM prompt_executions WHERE success AND "
                    "(input_token_count IS NULL OR cost_usd IS NULL)"
                )
            )
            assert unpriced.scalar() == 0
            assert q(sa.text("SELECT count(*) FROM prompt_executions WHERE success")).scalar()
            statuses = set(
                q(sa.text("SELECT DISTINCT http_status FROM prompt_executions")).scalars()
            )
            assert {429, 500} <= statuses
            assert (
                q(
                    sa.text(
                        "SELECT count(*) FROM prompt_executions WHERE error_type='BlockedPrompt'"
                    )
                ).scalar()
                == 1
            )
            days = q(sa.text("SELECT count(DISTINCT date(executed_at)) FROM prompt_executions"))
            assert days.scalar() >= 14
            groups = set(
                q(
                    sa.text(
                        "SELECT DISTINCT template_ab_test_group FROM prompt_executions "
                        "WHERE template_name = 'nlu_extraction'"
                    )
                ).scalars()
            )
            assert groups == {"A", "B"}
        engine.dispose()

    def test_rerun_replaces_and_foreign_files_are_refused(self, installed: dict[str, Any]) -> None:
        """A second run replaces the demo database; any other file is left alone (exit 2)."""
        workdir = installed["workdir"]
        again = subprocess.run(
            [str(installed["script"]), "demo", "--calls", "40", "--html", "second.html"],
            capture_output=True,
            text=True,
            env=installed["env"],
            cwd=workdir,
            timeout=300,
        )
        assert again.returncode == 0, again.stderr
        assert "40 calls" in again.stdout
        precious = workdir / "precious.db"
        precious.write_text("not a database", encoding="utf-8")
        refused = subprocess.run(
            [str(installed["script"]), "demo", "--db", str(precious)],
            capture_output=True,
            text=True,
            env=installed["env"],
            cwd=workdir,
            timeout=300,
        )
        assert refused.returncode == 2
        assert refused.stderr.splitlines() == [
            f"vividly-trace: error: {precious} exists and is not a vividly-trace database; "
            "choose another --db (the demo replaces its database on every run)"
        ]
        assert precious.read_text(encoding="utf-8") == "not a database"


# -- the HTML report in a browser ----------------------------------------------------------

_CHARTS_JS = """
(async () => {
  const deadline = Date.now() + 20000;
  const charts = () => [...document.querySelectorAll('.plotly-graph-div')];
  const marks = d => [...d.querySelectorAll('g.trace path, g.trace rect, g.points path')]
    .filter(el => { const b = el.getBBox(); return b.width > 0 || b.height > 0; }).length;
  while (Date.now() < deadline) {
    if (charts().length && charts().every(d => d._fullLayout && marks(d) > 0)) break;
    await new Promise(r => setTimeout(r, 100));
  }
  return charts().map(d => {
    const box = d.getBoundingClientRect();
    return {id: d.id, width: box.width, height: box.height, marks: marks(d),
            svgs: d.querySelectorAll('svg.main-svg').length};
  });
})()
"""

_LAYOUT_JS = """
(() => {
  const sizes = [...document.querySelectorAll('p, td, th, h1, h2, h3, .card .v, .card .k')]
    .filter(el => el.offsetParent !== null)
    .map(el => parseFloat(getComputedStyle(el).fontSize));
  const tables = [...document.querySelectorAll('table')]
    .map(t => t.scrollWidth - t.parentElement.clientWidth);
  return {
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    minFont: Math.min(...sizes),
    tableOverflow: Math.max(...tables),
    mainWidth: document.querySelector('main').getBoundingClientRect().width,
    text: document.body.innerText,
  };
})()
"""


@pytest.fixture(name="chromium", scope="module")
def _chromium() -> str:
    binary = find_chromium()
    assert binary is not None, (
        "chromium is not installed: run scripts/system-deps.sh (apt-get install -y chromium)"
    )
    return binary


class TestHtmlReportInChromium:
    def test_report_renders_offline_at_1280(self, installed: dict[str, Any], chromium: str) -> None:
        """No console errors, no request but the file, every chart drawn, readable at 1280 px;
        the screenshot is kept in test-artifacts/."""
        page = installed["workdir"] / "vividly_report.html"
        with Chromium(chromium, width=1280, height=2000) as browser:
            browser.open(page.as_uri())
            charts = browser.evaluate(_CHARTS_JS)
            layout = browser.evaluate(_LAYOUT_JS)
            shot = ARTIFACTS / "report-1280.png"
            size = browser.screenshot(shot)
            problems = browser.problems()
            requests = browser.requests()
        assert problems == []
        assert requests == [page.as_uri()]  # plotly.js is inline: nothing else is fetched
        assert [c["id"] for c in charts] == [
            "chart-daily-cost",
            "chart-model-cost",
            "chart-latency",
            "chart-ab-0",
        ]
        for chart in charts:
            assert chart["svgs"] >= 1 and chart["marks"] > 0, chart
            assert 900 <= chart["width"] <= 1280 and chart["height"] >= 300, chart
        daily = charts[0]
        assert daily["marks"] >= 14  # a bar per day at least
        assert layout["scrollWidth"] <= layout["innerWidth"] == 1280
        assert layout["tableOverflow"] <= 1
        assert layout["minFont"] >= 12
        assert layout["mainWidth"] <= 1280
        assert "v4/B better at 95%" in layout["text"]
        assert size[0] == 1280 and size[1] > 2000
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    def test_the_checks_catch_a_broken_page(self, tmp_path: Path, chromium: str) -> None:
        """A thrown error, console.error and a failed load are all reported."""
        page = tmp_path / "broken.html"
        page.write_text(
            "<!DOCTYPE html><html><body><p>x</p>"
            "<script>console.error('bad thing')</script>"
            "<script>throw new Error('boom')</script>"
            "<img src='http://127.0.0.1:9/missing.png'></body></html>",
            encoding="utf-8",
        )
        with Chromium(chromium) as browser:
            browser.open(page.as_uri())
            time.sleep(0.5)
            browser.evaluate("1")
            problems = browser.problems()
        text = "\n".join(problems)
        assert "bad thing" in text
        assert "boom" in text
        assert "load failed" in text or "ERR_" in text


def test_artifacts_dir_is_ignored() -> None:
    """test-artifacts/ stays out of git."""
    assert "test-artifacts/" in (ROOT / ".gitignore").read_text().splitlines()
    assert os.sep not in "report-1280.png"


def test_with_a_key_the_services_call_the_api(gemini: Any, tmp_path: Path) -> None:
    """GEMINI_API_KEY set: at most 16 calls to the API (here the fake, through the client's own
    GOOGLE_GEMINI_BASE_URL setting), with the key, real timestamps."""
    from tests.cli.cli_helpers import run_cli
    from vividly_trace.testing.fake_gemini import Scenario

    gemini.set_default(Scenario(text='{"intent": "play_music", "slots": {}}', prompt_tokens=40))
    env = cli_env(GEMINI_API_KEY="test-key", GOOGLE_GEMINI_BASE_URL=gemini.url)
    result = run_cli("demo", "--html", "r.html", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "16 calls to the Gemini API logged into" in result.stdout
    assert len(gemini.requests) == 16
    assert {r["headers"].get("x-goog-api-key") for r in gemini.requests} == {"test-key"}
    assert any(r["stream"] for r in gemini.requests)
    assert "No executions" not in result.stdout
    assert (tmp_path / "r.html").is_file()


def test_offline_flag_ignores_the_key(gemini: Any, tmp_path: Path) -> None:
    """--offline: the fake servers even with GEMINI_API_KEY set; the API is never called."""
    from tests.cli.cli_helpers import run_cli

    env = cli_env(GEMINI_API_KEY="test-key", GOOGLE_GEMINI_BASE_URL=gemini.url)
    result = run_cli(
        "demo", "--offline", "--calls", "20", "--html", "r.html", env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "20 calls to local fake Gemini servers" in result.stdout
    assert gemini.requests == []
