"""Alert rules: a TOML file and code give the same rules; bad files fail naming the rule
and the field; windows are UTC hours, days, months or epoch-aligned lengths."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from vividly_trace.alerts import (
    CostRule,
    ErrorRateRule,
    LatencyRule,
    MissingUsageRule,
    RuleError,
    load_rules,
    window_bounds,
)
from vividly_trace.alerts._rules import check_rules
from vividly_trace.exceptions import ConfigurationError

UTC = dt.timezone.utc

GOOD = """
[[rule]]
name = "nlu daily budget"
kind = "cost"
threshold = "25.00"
window = "day"
template = "nlu_extraction"

[[rule]]
name = "hourly spend"
kind = "cost"
threshold = 10
window = "hour"

[[rule]]
name = "errors"
kind = "error_rate"
threshold = 0.05
window = "1h"
min_calls = 30

[[rule]]
name = "slow"
kind = "latency"
threshold = 8000
percentile = 0.99
window = "10m"

[[rule]]
name = "unpriced"
kind = "missing_usage"
missing = "cost"
window = "day"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "alerts.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_file_gives_the_rules_code_would(tmp_path: Path) -> None:
    """Each [[rule]] becomes the dataclass of its kind, with exact money and defaults."""
    rules = load_rules(_write(tmp_path, GOOD))
    assert rules == [
        CostRule("nlu daily budget", Decimal("25.00"), window="day", template="nlu_extraction"),
        CostRule("hourly spend", "10", window="hour"),
        ErrorRateRule("errors", 0.05, window="1h", min_calls=30),
        LatencyRule("slow", 8000, percentile=0.99, window="10m"),
        MissingUsageRule("unpriced", missing="cost", window="day"),
    ]
    assert rules[0].threshold == Decimal("25.00") and isinstance(rules[1].threshold, Decimal)
    assert [r.kind for r in rules] == ["cost", "cost", "error_rate", "latency", "missing_usage"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('name = "a"\nkind = "cost"\nthreshold = -1', "rule 'a': threshold: must be an amount > 0"),
        ('name = "a"\nkind = "cost"\nthreshold = "ten"', "rule 'a': threshold: must be an amount"),
        ('name = "a"\nkind = "cost"', "rule 'a': threshold: missing"),
        ('kind = "cost"\nthreshold = 1', "rule #1: name: missing"),
        ('name = "a"\nkind = "budget"\nthreshold = 1', "rule 'a': kind: must be one of cost"),
        ('name = "a"\nkind = "cost"\nthreshold = 1\nwindow = "fortnight"', "'a': window: must"),
        ('name = "a"\nkind = "cost"\nthreshold = 1\nwindow = "0m"', "'a': window: must"),
        ('name = "a"\nkind = "cost"\nthreshold = 1\ntreshold = 2', "'a': treshold: unknown field"),
        ('name = "e"\nkind = "error_rate"\nthreshold = 5', "'e': threshold: must be a fraction"),
        ('name = "e"\nkind = "error_rate"\nthreshold = 0.1\nmin_calls = 0', "'e': min_calls:"),
        ('name = "l"\nkind = "latency"\nthreshold = 10\npercentile = 95', "'l': percentile:"),
        ('name = "l"\nkind = "latency"\nthreshold = 10\nper_template = false', "per template"),
        ('name = "m"\nkind = "missing_usage"\nmissing = "tokens"', "'m': missing: must be"),
        ('name = "m"\nkind = "missing_usage"\nthreshold = 0', "'m': threshold: must be a number"),
        ('name = "c"\nkind = "cost"\nthreshold = 1\ntemplate = ""', "'c': template: must be"),
    ],
)
def test_a_bad_rule_names_the_file_the_rule_and_the_field(
    tmp_path: Path, body: str, message: str
) -> None:
    """The error says where: file, rule (by name, else its position) and field."""
    path = _write(tmp_path, "[[rule]]\n" + body + "\n")
    with pytest.raises(RuleError, match=r"alerts\.toml") as caught:
        load_rules(path)
    assert message in str(caught.value)
    assert isinstance(caught.value, ConfigurationError)


def test_bad_files(tmp_path: Path) -> None:
    """A missing file, broken TOML, no rules, a stray key and a repeated name all fail."""
    with pytest.raises(RuleError, match="cannot read the rules file"):
        load_rules(tmp_path / "missing.toml")
    with pytest.raises(RuleError, match="not valid TOML"):
        load_rules(_write(tmp_path, "[[rule]\nname = 1"))
    with pytest.raises(RuleError, match="no rules"):
        load_rules(_write(tmp_path, "# nothing\n"))
    with pytest.raises(RuleError, match="unknown top-level key 'rules'"):
        load_rules(_write(tmp_path, '[[rules]]\nname = "a"\n'))
    twice = '[[rule]]\nname = "a"\nkind = "cost"\nthreshold = 1\n' * 2
    with pytest.raises(RuleError, match="rule 'a': name: used by two rules"):
        load_rules(_write(tmp_path, twice))
    with pytest.raises(RuleError, match="not an alert rule"):
        check_rules([CostRule("a", 1), "b"])


def test_windows() -> None:
    """Calendar windows in UTC, lengths aligned to the epoch; an aware time in another zone
    lands in its UTC window."""
    at = dt.datetime(2026, 12, 31, 23, 59, 30, tzinfo=UTC)
    assert window_bounds("hour", at) == (
        at.replace(minute=0, second=0),
        at.replace(year=2027, month=1, day=1, hour=0, minute=0, second=0),
    )
    assert window_bounds("day", at)[0] == dt.datetime(2026, 12, 31, tzinfo=UTC)
    assert window_bounds("month", at) == (
        dt.datetime(2026, 12, 1, tzinfo=UTC),
        dt.datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert window_bounds("10m", at) == (
        dt.datetime(2026, 12, 31, 23, 50, tzinfo=UTC),
        dt.datetime(2027, 1, 1, tzinfo=UTC),
    )
    paris = dt.timezone(dt.timedelta(hours=1))
    assert window_bounds("day", dt.datetime(2027, 1, 1, 0, 30, tzinfo=paris))[0] == dt.datetime(
        2026, 12, 31, tzinfo=UTC
    )
