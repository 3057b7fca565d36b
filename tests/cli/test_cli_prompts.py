"""``vividly-trace prompts list | show | push | rollout | diff`` through the real entry point:
what each prints, the JSON shapes against the store, and bad arguments as exit status 2 with
one clear line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.cli.cli_helpers import cli_env, entry_point, run_cli
from tests.cli.test_cli_commands import assert_fits_80_columns
from vividly_trace import choose_variant, prompts

KEY = "summarise"


def _ok(*args: str) -> str:
    result = run_cli("prompts", *args)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def _error(*args: str) -> str:
    result = run_cli("prompts", *args)
    assert result.returncode == 2, result.stdout
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vividly-trace: error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture(name="url")
def _url(tmp_path: Path) -> str:
    """A store with two versions of KEY pushed through the command line."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    first = tmp_path / "v1.txt"
    first.write_text("Summarise {{ text }}.\nBe brief.\n", encoding="utf-8")
    second = tmp_path / "v2.txt"
    second.write_text("Summarise {{ text }} in {{ words }} words.\nBe brief.\n", encoding="utf-8")
    out = _ok("push", KEY, str(first), "--version", "v1", "--label", "production", "--url", url)
    assert out == f"{KEY} version v1: pushed; labels production -> v1\n"
    out = _ok(
        "push",
        KEY,
        str(second),
        "--version",
        "v2",
        "--model",
        "gemini-2.5-flash",
        "--config",
        '{"temperature": 0.3}',
        "--url",
        url,
    )
    assert out == f"{KEY} version v2: pushed\n"
    return url


def test_push_stores_what_get_serves(url: str, tmp_path: Path) -> None:
    """The pushed texts, model and config are what prompts.get() returns; pushing the same
    file again is a no-op, another text for the version is refused."""
    v2 = prompts.get(KEY, version="v2", url=url)
    assert (v2.text, v2.model, dict(v2.config)) == (
        "Summarise {{ text }} in {{ words }} words.\nBe brief.\n",
        "gemini-2.5-flash",
        {"temperature": 0.3},
    )
    assert prompts.get(KEY, url=url).version == "v1"  # production
    again = _ok("push", KEY, str(tmp_path / "v1.txt"), "--version", "v1", "--url", url)
    assert again == f"{KEY} version v1: already there, unchanged\n"
    changed = tmp_path / "changed.txt"
    changed.write_text("Something else", encoding="utf-8")
    assert "immutable" in _error("push", KEY, str(changed), "--version", "v1", "--url", url)
    assert "--config is not JSON" in _error(
        "push", KEY, str(changed), "--version", "v3", "--config", "{", "--url", url
    )


def test_push_reads_stdin(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'stdin.db'}"
    result = subprocess.run(
        [str(entry_point()), "prompts", "push", "k", "--version", "s1", "--url", url],
        input="From stdin {{ x }}",
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert prompts.get("k", url=url).render(x="!") == "From stdin !"


def test_rollout_then_show_per_user(url: str) -> None:
    """The rollout is stored as given; show --user prints the version choose_variant gives
    that user, with its group."""
    out = _ok("rollout", KEY, "v1=1", "v2=3", "--control", "v1", "--url", url)
    assert out == f"{KEY}: v1 25% / v2 75% (control v1)\n"
    snapshot = prompts.snapshot(KEY, url=url)
    assert (snapshot.weights, snapshot.control) == ({"v1": 1.0, "v2": 3.0}, "v1")
    for user in ("alice", "bob", "carol", "dave"):
        data = json.loads(_ok("show", KEY, "--user", user, "--json", "--url", url))
        version = choose_variant(KEY, user, {"v1": 1, "v2": 3})
        assert (data["version"], data["ab_group"]) == (
            version,
            "control" if version == "v1" else "treatment",
        )
    assert "control 'v3' is not among the weights" in _error(
        "rollout", KEY, "v1=1", "--control", "v3", "--url", url
    )
    assert "versions never pushed: 'v9'" in _error(
        "rollout", KEY, "v1=1", "v9=1", "--control", "v1", "--url", url
    )
    assert "VERSION=WEIGHT" in _error("rollout", KEY, "v1", "--control", "v1", "--url", url)
    assert "VERSION=WEIGHT" in _error("rollout", KEY, "v1=x", "--control", "v1", "--url", url)


def test_show(url: str) -> None:
    out = _ok("show", KEY, "--url", url)
    assert out.splitlines() == [
        f"{KEY} version v1",
        "  labels: production",
        "  variables: text",
        "",
        "Summarise {{ text }}.",
        "Be brief.",
        "",
    ]
    out = _ok("show", KEY, "--version", "v2", "--url", url)
    assert "  model: gemini-2.5-flash" in out.splitlines()
    assert '  config: {"temperature": 0.3}' in out.splitlines()
    assert "  variables: text, words" in out.splitlines()
    data: dict[str, Any] = json.loads(
        _ok("show", KEY, "--label", "production", "--json", "--url", url)
    )
    assert data == {
        "key": KEY,
        "version": "v1",
        "ab_group": None,
        "model": None,
        "config": {},
        "labels": ["production"],
        "variables": ["text"],
        "text": "Summarise {{ text }}.\nBe brief.\n",
    }
    assert "no version 'v7'" in _error("show", KEY, "--version", "v7", "--url", url)
    assert "no prompt 'nope'" in _error("show", "nope", "--url", url)


def test_list(url: str) -> None:
    _ok("rollout", KEY, "v1=1", "v2=1", "--control", "v2", "--url", url)
    out = _ok("list", "--url", url)
    assert_fits_80_columns(out)
    (row,) = [line for line in out.splitlines() if line.strip().startswith(KEY)]
    cells = [c.strip() for c in row.split("│")]
    assert cells == [KEY, "2", "v2", "production=v1", "v1 50% / v2 50% (control v2)"]
    data = json.loads(_ok("list", "--json", "--url", url))
    assert [d["key"] for d in data] == [KEY]
    assert [v["version"] for v in data[0]["versions"]] == ["v1", "v2"]
    assert data[0]["labels"] == {"production": "v1"}
    assert data[0]["rollout"] == {"weights": {"v1": 1.0, "v2": 1.0}, "control": "v2"}


def test_list_of_an_empty_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    assert run_cli("db", "upgrade", url).returncode == 0
    assert "no prompts in the store" in _ok("list", "--url", url)
    assert json.loads(_ok("list", "--json", "--url", url)) == []


def test_diff(url: str) -> None:
    out = _ok("diff", KEY, "v1", "v2", "--url", url)
    assert out.splitlines() == [
        f"--- {KEY} v1",
        f"+++ {KEY} v2",
        "@@ -1,2 +1,2 @@",
        "-Summarise {{ text }}.",
        "+Summarise {{ text }} in {{ words }} words.",
        " Be brief.",
        "model: None -> 'gemini-2.5-flash'",
        "config: {} -> {'temperature': 0.3}",
    ]
    assert _ok("diff", KEY, "v1", "v1", "--url", url) == f"{KEY}: v1 and v1 are the same\n"
    assert "no version 'v5'" in _error("diff", KEY, "v1", "v5", "--url", url)


def test_missing_store_is_one_line(tmp_path: Path) -> None:
    """Reading commands never create a store; a missing file or server is exit 2."""
    missing = tmp_path / "missing.db"
    assert "no SQLite database" in _error("list", "--url", f"sqlite:///{missing}")
    assert not missing.exists()
    assert "vividly-trace: error:" in _error("show", KEY, "--url", "mysql://u@h/db")
