"""Alert rules: dataclasses checked when built, a TOML loader, and tumbling UTC windows.

A rule fires when its measured value reaches its ``threshold`` in a window. Windows are
``"hour"``, ``"day"``, ``"month"`` (calendar, UTC) or a length such as ``"10m"``, ``"6h"``,
``"2d"`` (aligned to the Unix epoch). A bad rule raises :class:`RuleError` naming the rule
and the field, at configuration time.
"""

from __future__ import annotations

import datetime as _dt
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, fields
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeAlias

from ..exceptions import ConfigurationError

__all__ = [
    "KINDS",
    "CostRule",
    "ErrorRateRule",
    "LatencyRule",
    "MissingUsageRule",
    "Rule",
    "RuleError",
    "check_rules",
    "load_rules",
    "parse_rules",
    "window_bounds",
]

_UTC = _dt.timezone.utc
_CALENDAR = ("hour", "day", "month")
_LENGTH = re.compile(r"^(\d+)(m|h|d)$")
_SECONDS = {"m": 60, "h": 3600, "d": 86400}


class RuleError(ConfigurationError):
    """A rule (or a rules file) that cannot be used; the message names the rule and field."""


def _fail(rule: str, field: str, message: str) -> RuleError:
    return RuleError(f"alert rule {rule!r}: {field}: {message}")


def _check_window(rule: str, window: Any) -> str:
    if not isinstance(window, str):
        raise _fail(rule, "window", f"must be a string ('hour', 'day', '10m'...), got {window!r}")
    text = window.strip().lower()
    if text in _CALENDAR:
        return text
    match = _LENGTH.match(text)
    if match is None or int(match.group(1)) == 0:
        raise _fail(
            rule,
            "window",
            f"must be 'hour', 'day', 'month' or a length such as '10m', '6h', '2d'; got {window!r}",
        )
    return text


def window_bounds(window: str, now: _dt.datetime) -> tuple[_dt.datetime, _dt.datetime]:
    """The window (``start`` inclusive, ``end`` exclusive, UTC) that holds ``now``."""
    now = now.astimezone(_UTC) if now.tzinfo else now.replace(tzinfo=_UTC)
    if window == "hour":
        start = now.replace(minute=0, second=0, microsecond=0)
        return start, start + _dt.timedelta(hours=1)
    if window == "day":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return start, start + _dt.timedelta(days=1)
    if window == "month":
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
        return start, start.replace(year=year, month=month)
    match = _LENGTH.match(window)
    if match is None:
        raise ConfigurationError(f"not an alert window: {window!r}")
    length = int(match.group(1)) * _SECONDS[match.group(2)]
    epoch = int(now.timestamp()) // length * length
    start = _dt.datetime.fromtimestamp(epoch, _UTC)
    return start, start + _dt.timedelta(seconds=length)


def _check_common(rule: Any) -> None:
    if not isinstance(rule.name, str) or not rule.name.strip():
        raise RuleError(f"alert rule: name: must be a non-empty string, got {rule.name!r}")
    object.__setattr__(rule, "window", _check_window(rule.name, rule.window))
    if rule.template is not None and (not isinstance(rule.template, str) or not rule.template):
        raise _fail(rule.name, "template", f"must be a template key, got {rule.template!r}")
    if not isinstance(rule.per_template, bool):
        raise _fail(rule.name, "per_template", f"must be true or false, got {rule.per_template!r}")


def _number(rule: str, value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise _fail(rule, "threshold", f"must be {what}, got {value!r}")
    return float(value)


def _min_calls(rule: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _fail(rule, "min_calls", f"must be a whole number >= 1, got {value!r}")


@dataclass(frozen=True)
class CostRule:
    """Known cost in USD reaching ``threshold`` in a window: a budget.

    Per template (``per_template=True``), for one ``template``, or (default) for all calls
    together: ``CostRule("hourly spend", "10", window="hour")``. Calls without a known cost
    are not counted as $0: the alert says how many there were (see
    :class:`MissingUsageRule` to alert on them).
    """

    name: str
    threshold: Decimal | str | int | float
    window: str = "day"
    template: str | None = None
    per_template: bool = False

    kind = "cost"

    def __post_init__(self) -> None:
        _check_common(self)
        value = self.threshold
        try:
            if isinstance(value, bool) or not isinstance(value, (Decimal, str, int, float)):
                raise InvalidOperation
            amount = Decimal(str(value))
        except InvalidOperation:
            raise _fail(
                self.name, "threshold", f"must be an amount in USD, got {value!r}"
            ) from None
        if not amount.is_finite() or amount <= 0:
            raise _fail(self.name, "threshold", f"must be an amount > 0 USD, got {value!r}")
        object.__setattr__(self, "threshold", amount)


@dataclass(frozen=True)
class ErrorRateRule:
    """Share of failed calls reaching ``threshold`` (a fraction: 0.05 is 5 %) in a window,
    once at least ``min_calls`` calls were made there. Per template by default."""

    name: str
    threshold: float
    window: str = "hour"
    template: str | None = None
    per_template: bool = True
    min_calls: int = 20

    kind = "error_rate"

    def __post_init__(self) -> None:
        _check_common(self)
        rate = _number(self.name, self.threshold, "a fraction in (0, 1]")
        if not 0 < rate <= 1:
            raise _fail(self.name, "threshold", f"must be a fraction in (0, 1], got {rate!r}")
        object.__setattr__(self, "threshold", rate)
        _min_calls(self.name, self.min_calls)


@dataclass(frozen=True)
class LatencyRule:
    """A latency percentile (default p95, in ms, over every call) of a template reaching
    ``threshold`` ms in a window, once it had ``min_calls`` calls there. Always per
    template (``per_template`` must stay true)."""

    name: str
    threshold: float
    window: str = "hour"
    template: str | None = None
    per_template: bool = True
    min_calls: int = 20
    percentile: float = 0.95

    kind = "latency"

    def __post_init__(self) -> None:
        _check_common(self)
        if not self.per_template:
            raise _fail(self.name, "per_template", "latency rules are per template")
        ms = _number(self.name, self.threshold, "a number of milliseconds > 0")
        if not 0 < ms < float("inf"):
            raise _fail(self.name, "threshold", f"must be milliseconds > 0, got {ms!r}")
        object.__setattr__(self, "threshold", ms)
        _min_calls(self.name, self.min_calls)
        p = self.percentile
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1:
            raise _fail(self.name, "percentile", f"must be a fraction in (0, 1], got {p!r}")
        object.__setattr__(self, "percentile", float(p))


@dataclass(frozen=True)
class MissingUsageRule:
    """Calls without token usage (``missing="usage"``) or without a known cost
    (``missing="cost"``) reaching ``threshold`` calls in a window."""

    name: str
    threshold: int = 1
    window: str = "hour"
    template: str | None = None
    per_template: bool = False
    missing: str = "usage"

    kind = "missing_usage"

    def __post_init__(self) -> None:
        _check_common(self)
        n = self.threshold
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise _fail(self.name, "threshold", f"must be a number of calls >= 1, got {n!r}")
        if self.missing not in ("usage", "cost"):
            raise _fail(self.name, "missing", f"must be 'usage' or 'cost', got {self.missing!r}")


Rule: TypeAlias = "CostRule | ErrorRateRule | LatencyRule | MissingUsageRule"
"""Any alert rule."""

KINDS: dict[str, type[Any]] = {
    "cost": CostRule,
    "error_rate": ErrorRateRule,
    "latency": LatencyRule,
    "missing_usage": MissingUsageRule,
}
"""The rule classes by the ``kind`` a rules file names."""


def parse_rules(document: Mapping[str, Any], source: str = "<rules>") -> list[Rule]:
    """Rules from a parsed document: ``{"rule": [{"name": ..., "kind": ..., ...}, ...]}``.

    Raises:
        RuleError: naming ``source``, the rule (by name or position) and the field.
    """
    unknown = sorted(set(document) - {"rule"})
    if unknown:
        raise RuleError(f"{source}: unknown top-level key {unknown[0]!r} (rules go in [[rule]])")
    entries = document.get("rule")
    if not isinstance(entries, list) or not entries:
        raise RuleError(f"{source}: no rules (add [[rule]] tables)")
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries, start=1):
        label = repr(entry.get("name")) if isinstance(entry, dict) and "name" in entry else f"#{i}"
        if not isinstance(entry, dict):
            raise RuleError(f"{source}: rule {label}: must be a table")
        kind = entry.get("kind")
        cls = KINDS.get(kind) if isinstance(kind, str) else None
        if cls is None:
            raise RuleError(
                f"{source}: rule {label}: kind: must be one of {', '.join(KINDS)}, got {kind!r}"
            )
        allowed = {f.name for f in fields(cls)}
        for key in entry:
            if key != "kind" and key not in allowed:
                raise RuleError(
                    f"{source}: rule {label}: {key}: unknown field for kind {kind!r} "
                    f"(known: {', '.join(sorted(allowed))})"
                )
        for f in fields(cls):
            if f.default is MISSING and f.name not in entry:
                raise RuleError(f"{source}: rule {label}: {f.name}: missing")
        arguments = {k: v for k, v in entry.items() if k != "kind"}
        try:
            rule = cls(**arguments)
        except RuleError as exc:
            raise RuleError(f"{source}: {exc}") from None
        if rule.name in seen:
            raise RuleError(f"{source}: rule {rule.name!r}: name: used by two rules")
        seen.add(rule.name)
        rules.append(rule)
    return rules


def load_rules(path: str | Path) -> list[Rule]:
    """Rules from a TOML file (see :func:`parse_rules` for its shape).

    Raises:
        RuleError: the file is missing, not TOML, or holds a bad rule.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(f"{p}: cannot read the rules file: {exc}") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(f"{p}: not valid TOML: {exc}") from None
    return parse_rules(document, str(p))


def check_rules(rules: Sequence[Any]) -> list[Rule]:
    """The rules as a list, after checking each is a rule and names are unique."""
    out: list[Rule] = []
    seen: set[str] = set()
    for rule in rules:
        if not isinstance(rule, (CostRule, ErrorRateRule, LatencyRule, MissingUsageRule)):
            raise RuleError(f"not an alert rule: {rule!r}")
        if rule.name in seen:
            raise RuleError(f"alert rule {rule.name!r}: name: used by two rules")
        seen.add(rule.name)
        out.append(rule)
    return out
