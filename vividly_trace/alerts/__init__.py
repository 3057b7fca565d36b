"""Alerts and budgets over the SQL store: rules, checks, once-per-window state, webhooks.

Rules come from a TOML file (:func:`load_rules`) or from code::

    from vividly_trace.alerts import CostRule, ErrorRateRule, load_rules

    rules = [
        CostRule("nlu daily budget", "25.00", window="day", template="nlu_extraction"),
        CostRule("hourly spend", "10", window="hour"),
        ErrorRateRule("errors", 0.05, window="1h", min_calls=20),
    ]
    rules = load_rules("alerts.toml")   # the same, from a file
    for firing in check_once(url, rules, webhook="https://hooks.slack.com/services/..."):
        print(firing.message, "new" if firing.new else "already notified")

.. versionadded:: 0.4.0
"""

from __future__ import annotations

from ._evaluator import ALL_TEMPLATES, Firing, check_once, run
from ._notify import mask_webhook
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
    "ALL_TEMPLATES",
    "KINDS",
    "CostRule",
    "ErrorRateRule",
    "Firing",
    "LatencyRule",
    "MissingUsageRule",
    "Rule",
    "RuleError",
    "check_once",
    "load_rules",
    "mask_webhook",
    "parse_rules",
    "run",
    "window_bounds",
]
