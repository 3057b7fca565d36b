"""The pytest plugin, used the way an application's test suite uses it: a test file of the
application's own, run by pytest in a fresh process, the plugin found through its ``pytest11``
entry point (nothing imported or configured by hand)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

APP = """
import json
from google import genai
from vividly_trace import logged_prompt

@logged_prompt("nlu_extraction")
def extract_intent(text: str) -> dict:
    client = genai.Client()  # configured by the environment, as in production
    response = client.models.generate_content(model="gemini-2.5-flash", contents=text)
    return json.loads(response.text)
"""

TESTS = """
import pytest
from decimal import Decimal
from vividly_trace.testing.fake_gemini import Scenario
from my_app import extract_intent

def test_records_and_fake(fake_gemini, vividly_records):
    fake_gemini.enqueue(Scenario(text='{"intent": "book"}', prompt_tokens=120, candidates_tokens=8))
    assert extract_intent("a table for two") == {"intent": "book"}
    rec = vividly_records.only()
    assert (rec.template_key, rec.input_token_count, rec.output_token_count) == (
        "nlu_extraction", 120, 8)
    assert rec.cost_usd == Decimal("0.000056")  # 120 x $0.30 + 8 x $2.50 per 1M
    assert fake_gemini.requests[0]["path"] == "/v1beta/models/gemini-2.5-flash:generateContent" \\
        or fake_gemini.requests[0]["path"].endswith("/models/gemini-2.5-flash:generateContent")

@pytest.mark.vividly_budget("0.0001")
def test_within_budget(fake_gemini):
    fake_gemini.enqueue(Scenario(text='{}', prompt_tokens=120, candidates_tokens=8))
    extract_intent("x")

@pytest.mark.vividly_budget("0.00005")
def test_over_budget(fake_gemini):
    fake_gemini.enqueue(Scenario(text='{}', prompt_tokens=120, candidates_tokens=8))
    extract_intent("x")

@pytest.mark.vividly_budget(max_usd="1")
def test_unknown_cost_is_not_free(fake_gemini):
    fake_gemini.enqueue(Scenario(text='{}', omit_prompt_tokens=True, candidates_tokens=8))
    extract_intent("x")
"""

BAD_BUDGET = """
import pytest

@pytest.mark.vividly_budget("-1")
def test_bad_budget():
    pass
"""


def run_user_suite(tmp_path: Path, tests: str = TESTS) -> subprocess.CompletedProcess[str]:
    (tmp_path / "my_app.py").write_text(textwrap.dedent(APP))
    (tmp_path / "test_my_app.py").write_text(textwrap.dedent(tests))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "GEMINI"))}
    env["PYTHONPATH"] = str(tmp_path)
    env["COLUMNS"] = "400"  # whole lines in the short summary
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
            "--strict-markers",
            "-rf",
            str(tmp_path),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_entry_point_is_registered() -> None:
    names = {e.name: e.value for e in entry_points(group="pytest11")}
    assert names.get("vividly_trace") == "vividly_trace.testing.pytest_plugin"


def test_an_applications_suite(tmp_path: Path) -> None:
    result = run_user_suite(tmp_path)
    out = result.stdout + result.stderr
    assert "2 failed, 2 passed" in out, out
    over = next(
        line for line in out.splitlines() if "test_over_budget" in line and "FAILED" in line
    )
    assert "cost $0.000056, over the budget of $0.00005" in over, over
    assert "nlu_extraction $0.000056" in over
    unknown = next(
        line
        for line in out.splitlines()
        if "test_unknown_cost_is_not_free" in line and "FAILED" in line
    )
    assert "1 of 1 calls have an unknown cost" in unknown, unknown


def test_a_bad_budget_stops_the_run_at_collection(tmp_path: Path) -> None:
    result = run_user_suite(tmp_path, BAD_BUDGET)
    out = result.stdout + result.stderr
    assert result.returncode == 4, out  # a usage error
    assert "test_my_app.py::test_bad_budget: vividly_budget: max_usd must be >= 0" in out, out
