"""``vividly-trace ab TEMPLATE``, through the real entry point: the table with both
verdicts, the JSON shape and values (against counts and a z-test by hand), the options,
and bad options as exit status 2 with one clear line."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from tests.cli.cli_helpers import run_cli
from tests.cli.test_cli_commands import assert_fits_80_columns
from tests.factories import make_record
from tests.sql.sql_helpers import write_records
from vividly_trace import PromptExecution


def _calls(version: str, group: str, ok: int, failed: int, infra: int, ms: float) -> list[Any]:
    """``ok`` successes, ``failed`` application errors, ``infra`` 429s; latency ms + i."""
    out: list[PromptExecution] = []
    for i in range(ok + failed + infra):
        success = i < ok
        kind = {} if success else {"error_type": "ValueError", "http_status": 400}
        if i >= ok + failed:
            kind = {"error_type": "ClientError", "http_status": 429}
        out.append(
            make_record(
                "summ",
                template_version=version,
                ab_test_group=group,
                success=success,
                response_time_ms=ms + i,
                **kind,
            )
        )
    return out


@pytest.fixture(name="ab_url", scope="module")
def _ab_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """v1/A: 38 ok, 12 failed, 10 rate-limited; v2/B: 57 ok, 3 failed; B slower by 100 ms."""
    url = f"sqlite:///{tmp_path_factory.mktemp('ab') / 'store.db'}"
    write_records(url, _calls("v1", "A", 38, 12, 10, 100.0) + _calls("v2", "B", 57, 3, 0, 200.0))
    return url


def _z(ok_a: int, n_a: int, ok_b: int, n_b: int) -> tuple[float, float]:
    pooled = (ok_a + ok_b) / (n_a + n_b)
    z = (ok_b / n_b - ok_a / n_a) / math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    return z, math.erfc(abs(z) / math.sqrt(2))


def _json(*args: str) -> dict[str, Any]:
    result = run_cli("ab", *args, "--json")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_json_shape_and_values(ab_url: str) -> None:
    """The default: success, the control first registered, 429s left out (by hand)."""
    data = _json("summ", "--url", ab_url)
    assert {
        key: data[key] for key in ("template", "control", "baseline", "control_source", "metric")
    } == {
        "template": "summ",
        "control": "v1/A",
        "baseline": "v1/A",
        "control_source": "first registered",
        "metric": "success",
    }
    assert (data["include_infra_errors"], data["confidence"], data["min_samples"]) == (
        False,
        0.95,
        30,
    )
    assert "v2/B vs control v1/A on success" in data["summary"]
    control, challenger = data["variants"]
    assert [control["label"], challenger["label"]] == ["v1/A", "v2/B"]
    assert (control["is_baseline"], control["outcome"], control["direction"]) == (
        True,
        None,
        None,
    )
    assert (control["executions"], control["metric_executions"], control["infra_errors"]) == (
        60,
        50,
        10,
    )
    assert control["metric_value"] == pytest.approx(38 / 50)
    assert control["metric_ci_low"] < 38 / 50 < control["metric_ci_high"]
    outcome = challenger["outcome"]
    z, p = _z(38, 50, 57, 60)
    assert outcome["z"] == pytest.approx(z, rel=1e-12)
    assert outcome["p_value"] == pytest.approx(p, rel=1e-9)
    assert (outcome["baseline"], outcome["challenger"]) == ("v1/A", "v2/B")
    assert (outcome["test"], outcome["metric"]) == ("two-proportion z", "success_rate")
    assert (outcome["direction"], challenger["direction"]) == ("better", "better")
    assert outcome["text"] == challenger["verdict"] == "v2/B better at 95%"
    # 110 calls convince the fixed-horizon test read once, not yet the sequential one.
    assert outcome["sequential_direction"] == "no difference"
    assert outcome["sequential_text"] == "no difference yet"
    assert 0.05 < outcome["sequential_p_value"] <= 1
    assert isinstance(control["total_cost_usd"], str)  # exact decimal as text
    assert control["first_seen"].endswith("+00:00")


def test_infra_errors_metric_and_control_options(ab_url: str) -> None:
    """--include-infra-errors counts the 429s (B's lead grows); --metric latency with
    --control v2 is Welch's test against v2/B (lower is better: v1/A is better)."""
    counted = _json("summ", "--url", ab_url, "--include-infra-errors")
    assert counted["include_infra_errors"] is True
    control = counted["variants"][0]
    assert (control["metric_executions"], control["metric_value"]) == (60, pytest.approx(38 / 60))
    assert counted["variants"][1]["outcome"]["z"] == pytest.approx(_z(38, 60, 57, 60)[0])

    latency = _json("summ", "--url", ab_url, "--metric", "latency", "--control", "v2")
    assert (latency["control"], latency["control_source"], latency["metric"]) == (
        "v2/B",
        "declared",
        "latency",
    )
    control, challenger = latency["variants"]
    assert control["metric_value"] == pytest.approx(200 + 59 / 2)
    assert challenger["metric_value"] == pytest.approx(100 + 59 / 2)
    assert challenger["outcome"]["test"] == "Welch t"
    assert challenger["outcome"]["direction"] == "better"
    assert challenger["outcome"]["sequential_direction"] == "better"


def test_terminal_shows_both_verdicts(ab_url: str) -> None:
    result = run_cli("ab", "summ", "--url", ab_url)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "A/B: summ on success, vs control v1/A (first registered)" in out
    assert "v2/B vs control v1/A:" in out
    assert "fixed horizon: v2/B better at 95%" in out
    assert "sequential:" in out
    assert "10 infrastructure errors left out of the success rates" in out
    assert "Sequential: mixture SPRT" in out
    assert_fits_80_columns(out)
    latency = run_cli("ab", "summ", "--url", ab_url, "--metric", "latency")
    assert "mean ms (95% CI)" in latency.stdout
    assert "v2/B worse at 95%" in latency.stdout
    assert "Welch t-test" in latency.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--metric", "speed"],
            "vividly-trace: error: unknown A/B metric 'speed' "
            "(known: success, cost, latency, score:NAME)",
        ),
        (
            ["--control", "v9"],
            "vividly-trace: error: control 'v9' matches no variant (variants: v1/A, v2/B)",
        ),
    ],
)
def test_bad_options_exit_2(ab_url: str, args: list[str], message: str) -> None:
    result = run_cli("ab", "summ", "--url", ab_url, *args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip() == message


def test_bad_url_and_missing_template(tmp_path: Path) -> None:
    """A missing store is exit 2; a template without executions says so (exit 0)."""
    missing = run_cli("ab", "summ", "--url", "nosuchdriver://x")
    assert missing.returncode == 2
    assert missing.stderr.startswith("vividly-trace: error:")
    url = f"sqlite:///{tmp_path / 'store.db'}"
    write_records(url, [make_record("other")])
    empty = run_cli("ab", "summ", "--url", url)
    assert empty.returncode == 0, empty.stderr
    assert "summ: no executions in this window" in empty.stdout
    assert run_cli("ab", "--url", url).returncode == 2  # TEMPLATE is required
