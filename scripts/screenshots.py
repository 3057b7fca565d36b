"""Regenerate the dashboard's screenshots in docs/screenshots/ (PNG, one per page).

Runs the Chromium page test on SQLite with $VIVIDLY_TRACE_SCREENSHOTS pointing there: the
store is filled through the real pipeline and ``vividly-trace serve`` serves it.

    .venv/bin/python scripts/screenshots.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"


def main() -> int:
    """Run the page test and keep its screenshots."""
    OUT.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "VIVIDLY_TRACE_SCREENSHOTS": str(OUT)}
    test = "tests/dashboard/test_dashboard_pages.py::test_pages_in_chromium[sqlite]"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", test], cwd=ROOT, env=env
    )
    for path in sorted(OUT.glob("*-sqlite.png")):
        path.replace(path.with_name(path.name.replace("-sqlite", "")))
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
