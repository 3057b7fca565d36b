"""Alerts and budgets over the SQL store: rules, their windows, and (to come) their checks.

Rules come from a TOML file (:func:`load_rules`) or from code::

    from vividly_trace.alerts import CostRule, ErrorRateRule, load_rules

    rules = [
        CostRule("nlu daily budget", "25.00", window="day", template="nlu_extraction"),
        CostRule("hourly spend", "10", window="hour"),
        ErrorRateRule("errors", 0.05, window="1h", min_calls=20),
    ]
    rules = load_rules("alerts.toml")   # the same, from a file

.. versionadded:: 0.4.0
"""

from __future__ import annotations

from ._rules import (
    KINDS,
    CostRule,
    ErrorRateRule,
    LatencyRule,
    MissingUsageRule,
    Rule,
    RuleError,
    load_rules,
    parse_rules,
    window_bounds,
)

__all__ = [
    "KINDS",
    "CostRule",
    "ErrorRateRule",
    "LatencyRule",
    "MissingUsageRule",
    "Rule",
    "RuleError",
    "load_rules",
    "parse_rules",
    "window_bounds",
]
