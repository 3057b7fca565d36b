"""Evaluating the rules against the store, firing once per window, delivering.

:func:`check_once` measures each rule in its current window (and in the window that ended
less than an hour ago, so that a check made just after a boundary still sees its end) with
the analytics queries (:func:`~vividly_trace.analytics.success_rates`,
:func:`~vividly_trace.analytics.latency_percentiles`), fires what reached its threshold
(``alert_state``: once per window, whichever process checks), logs each new alert on the
``vividly_trace`` logger, then delivers every undelivered alert to the webhook. :func:`run`
repeats it (for ``serve`` and long-running use).
"""

from __future__ import annotations

import datetime as _dt
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .._safety import logger
from ..analytics._queries import latency_percentiles, success_rates
from ..analytics._rows import TemplateSummary
from ..analytics._store import StoreSource, open_store, to_utc
from . import _state
from ._notify import DeliveryError, check_webhook, mask_webhook, post_webhook
from ._rules import CostRule, ErrorRateRule, LatencyRule, Rule, check_rules, window_bounds

__all__ = ["ALL_TEMPLATES", "Firing", "check_once", "run"]

ALL_TEMPLATES = "*"
"""The subject of a rule over all templates together."""

_GRACE = _dt.timedelta(hours=1)


@dataclass(frozen=True)
class Firing:
    """A rule over its threshold in one window, for one subject (a template key or ``*``).

    ``new`` says whether this check fired it (else an earlier check did: it is not sent
    again); ``delivered`` whether this check delivered it (to the webhook, or to the log
    alone when no webhook is set).
    ``unpriced_calls`` counts the calls without a known cost, never taken as $0.
    """

    rule: str
    kind: str
    subject: str
    window_start: _dt.datetime
    window_end: _dt.datetime
    value: Decimal | float | int
    threshold: Decimal | float | int
    calls: int
    unpriced_calls: int
    message: str
    new: bool = False
    delivered: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (times in ISO 8601, money as exact strings)."""

        def plain(v: Any) -> Any:
            return str(v) if isinstance(v, Decimal) else v

        return {
            "rule": self.rule,
            "kind": self.kind,
            "subject": self.subject,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "value": plain(self.value),
            "threshold": plain(self.threshold),
            "calls": self.calls,
            "unpriced_calls": self.unpriced_calls,
            "message": self.message,
            "new": self.new,
            "delivered": self.delivered,
        }


def _subject(rule: Rule, template: str | None) -> str:
    if rule.per_template and template is not None:
        return template
    return rule.template or ALL_TEMPLATES


def _total(rows: Sequence[TemplateSummary]) -> dict[str, int | Decimal]:
    return {
        "calls": sum(r.executions for r in rows),
        "failures": sum(r.failures for r in rows),
        "cost": sum((r.cost_usd for r in rows), Decimal(0)),
        "unpriced": sum(r.unpriced_executions for r in rows),
        "no_usage": sum(r.no_usage_executions for r in rows),
    }


def _measure(engine: Any, rule: Rule, window: tuple[_dt.datetime, _dt.datetime]) -> list[Firing]:
    start, end = window
    span = f"{start:%Y-%m-%d %H:%M}-{end:%H:%M} UTC"
    out: list[Firing] = []
    if isinstance(rule, LatencyRule):
        rows = latency_percentiles(
            engine, since=start, until=end, template=rule.template, percentiles=(rule.percentile,)
        )
        for r in rows:
            ms = r.percentile(rule.percentile)
            if ms is None or r.executions < rule.min_calls or ms < rule.threshold:
                continue
            p = f"p{rule.percentile * 100:g}"
            message = (
                f"[{rule.name}] {r.template}: {p} latency {ms:.0f} ms over {r.executions} "
                f"calls reached {rule.threshold:g} ms ({span})"
            )
            out.append(
                Firing(
                    rule.name,
                    rule.kind,
                    r.template,
                    start,
                    end,
                    ms,
                    rule.threshold,
                    r.executions,
                    0,
                    message,
                )
            )
        return out
    summaries = success_rates(engine, since=start, until=end, template=rule.template)
    groups = [(r.template, [r]) for r in summaries] if rule.per_template else [(None, summaries)]
    for template, members in groups:
        t = _total(members)
        calls, unpriced = int(t["calls"]), int(t["unpriced"])
        subject = _subject(rule, template)
        value: Decimal | float | int
        threshold = Decimal(str(rule.threshold)) if isinstance(rule, CostRule) else rule.threshold
        if isinstance(rule, CostRule):
            value = Decimal(t["cost"])
            if value < Decimal(str(rule.threshold)):
                continue
            known = f" ({unpriced} calls without a known cost, not counted)" if unpriced else ""
            text = f"known cost ${value} reached the budget of ${rule.threshold}{known}"
        elif isinstance(rule, ErrorRateRule):
            if calls < rule.min_calls:
                continue
            value = int(t["failures"]) / calls
            if value < rule.threshold:
                continue
            text = (
                f"error rate {value:.1%} ({t['failures']} of {calls} calls) reached "
                f"{rule.threshold:.1%}"
            )
        else:
            value = int(t["no_usage"] if rule.missing == "usage" else t["unpriced"])
            if value < rule.threshold:
                continue
            what = "token usage" if rule.missing == "usage" else "a known cost"
            text = f"{value} of {calls} calls without {what}"
        message = f"[{rule.name}] {subject}: {text} ({span})"
        out.append(
            Firing(
                rule.name,
                rule.kind,
                subject,
                start,
                end,
                value,
                threshold,
                calls,
                unpriced,
                message,
            )
        )
    return out


def check_once(
    source: StoreSource,
    rules: Sequence[Rule],
    now: _dt.datetime | None = None,
    *,
    webhook: str | None = None,
    lease_s: float = 60.0,
    tries: int = 3,
    backoff_s: float = 0.5,
    retry_after_s: float = 30.0,
    timeout_s: float = 10.0,
) -> list[Firing]:
    """Evaluate ``rules`` once; fire, log and deliver; return the rules over threshold.

    ``now`` (default: the clock) places the windows and times the state. A webhook that
    fails ``tries`` times keeps its alert undelivered; a later check retries it once
    ``retry_after_s`` (doubling per failure, at most an hour) has passed.

    Raises:
        StoreError: the store cannot be used. ConfigurationError: bad rules or webhook.
    """
    checked = check_rules(rules)
    if webhook is not None:
        check_webhook(webhook)
    at = to_utc(now) if now is not None else _dt.datetime.now(_dt.timezone.utc)
    owner = uuid.uuid4().hex
    firings: list[Firing] = []
    with open_store(source) as engine:
        _state.ensure_table(engine)
        for rule in checked:
            current = window_bounds(rule.window, at)
            windows = [current]
            if at - current[0] < _GRACE:
                windows.insert(
                    0, window_bounds(rule.window, current[0] - _dt.timedelta(microseconds=1))
                )
            for window in windows:
                for firing in _measure(engine, rule, window):
                    payload = {"text": firing.message, "alert": firing.to_dict()}
                    new = _state.fire(
                        engine,
                        rule=firing.rule,
                        subject=firing.subject,
                        kind=firing.kind,
                        window=window,
                        message=firing.message,
                        payload=payload,
                        now=at,
                    )
                    if new:
                        logger.warning("vividly_trace alert: %s", firing.message)
                    firings.append(_replace(firing, new=new))
        delivered = _deliver(
            engine, owner, at, webhook, lease_s, tries, backoff_s, retry_after_s, timeout_s
        )
    return [
        _replace(f, delivered=(f.rule, f.subject, f.window_start) in delivered or f.delivered)
        for f in firings
    ]


def _replace(firing: Firing, **changes: Any) -> Firing:
    from dataclasses import replace

    return replace(firing, **changes)


def _deliver(
    engine: Any,
    owner: str,
    at: _dt.datetime,
    webhook: str | None,
    lease_s: float,
    tries: int,
    backoff_s: float,
    retry_after_s: float,
    timeout_s: float,
) -> set[tuple[str, str, _dt.datetime]]:
    done = set()
    for pending in _state.claim(engine, owner, at, lease_s):
        key = (pending.rule, pending.subject, pending.window_start)
        if webhook is None:  # the log had it when it fired
            _state.mark_delivered(engine, pending, owner, at)
            done.add(key)
            continue
        try:
            post_webhook(
                webhook, pending.payload, timeout_s=timeout_s, tries=tries, backoff_s=backoff_s
            )
        except DeliveryError as exc:
            logger.warning(
                "vividly_trace alert %r not delivered (attempt %d, retried later): %s",
                pending.rule,
                pending.attempts + 1,
                exc,
            )
            _state.mark_failed(engine, pending, owner, at, str(exc), retry_after_s)
            continue
        _state.mark_delivered(engine, pending, owner, at)
        logger.info("vividly_trace alert %r delivered to %s", pending.rule, mask_webhook(webhook))
        done.add(key)
    return done


def run(
    source: StoreSource,
    rules: Sequence[Rule],
    *,
    interval_s: float = 60.0,
    stop: threading.Event | None = None,
    **options: Any,
) -> None:
    """Call :func:`check_once` every ``interval_s`` seconds until ``stop`` is set; a failed
    check (store down) is logged and the loop goes on."""
    check_rules(rules)
    event = stop or threading.Event()
    while not event.is_set():
        try:
            check_once(source, rules, **options)
        except Exception as exc:  # the store may be down for a while: keep checking
            logger.warning("vividly_trace alerts: check failed: %s", exc)
        event.wait(interval_s)
