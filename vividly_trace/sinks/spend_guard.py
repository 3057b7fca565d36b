"""An in-process spend guard: this process's Gemini spend over a rolling window, with a
warning (and the application's callback) when it crosses a threshold.

A runaway loop or a thinking-budget bug can burn money in minutes, and Gemini's own
cost-based limits answer 429 once a spend is reached in 10 minutes: the guard tells the
application first. It is a sink, so it sees each record off the hot path, in its own worker,
and fails alone::

    def on_spend(alert: SpendAlert) -> None:
        pager.notify(f"Gemini spend ${alert.spend_usd} in {alert.window_s:g} s")

    configure(sinks=[SQLSink(url), SpendGuard("20.00", on_exceed=on_spend)])

It counts the records it is given: with ``sample_rate`` below 1 it sees only the sampled
calls (set the threshold accordingly).
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from .._record import PromptExecution
from .._safety import logger, warn_limited
from ..exceptions import ConfigurationError

__all__ = ["SpendAlert", "SpendGuard"]


@dataclass(frozen=True, slots=True)
class SpendAlert:
    """What :class:`SpendGuard` hands its callback when the spend crosses the threshold.

    ``spend_usd`` is the known cost of the calls that started in the last ``window_s``
    seconds; ``unpriced_calls`` how many of them have no cost (unknown, so not in the sum);
    ``top_templates`` the templates that spent most in the window, with their spend.
    """

    spend_usd: Decimal
    threshold_usd: Decimal
    window_s: float
    calls: int
    unpriced_calls: int
    top_templates: tuple[tuple[str, Decimal], ...]


class SpendGuard:
    """Warn (on the ``vividly_trace`` logger) and call ``on_exceed(alert)`` when the known
    cost of the calls that started in the last ``window_s`` seconds (default 10 minutes)
    reaches ``threshold_usd``.

    It fires once per crossing: it is armed again once the rolling spend has fallen below
    ``rearm_fraction`` of the threshold (default 0.8). :meth:`spend` tells the rolling spend
    now. Records older than the window when they arrive (a spool replay) are not counted.

    Raises:
        ConfigurationError: a threshold that is not a positive amount, a window that is not
            a positive number of seconds, a callback that is not callable.

    .. versionadded:: 0.3.0
    """

    spool = False  # an alert about old spend is no alert: nothing to replay

    def __init__(
        self,
        threshold_usd: str | int | float | Decimal,
        *,
        window_s: float = 600.0,
        on_exceed: Callable[[SpendAlert], Any] | None = None,
        rearm_fraction: float = 0.8,
        name: str = "spend_guard",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.threshold = _amount(threshold_usd)
        if (
            isinstance(window_s, bool)
            or not isinstance(window_s, int | float)
            or not (0 < window_s < float("inf"))
        ):
            raise ConfigurationError(f"SpendGuard: window_s must be > 0 seconds, got {window_s!r}")
        if on_exceed is not None and not callable(on_exceed):
            raise ConfigurationError(f"SpendGuard: on_exceed must be callable, got {on_exceed!r}")
        if (
            isinstance(rearm_fraction, bool)
            or not isinstance(rearm_fraction, int | float)
            or not (0 <= rearm_fraction <= 1)
        ):
            raise ConfigurationError(
                f"SpendGuard: rearm_fraction must be within [0, 1], got {rearm_fraction!r}"
            )
        self.name = name
        self.window_s = float(window_s)
        self.on_exceed = on_exceed
        self._rearm_below = self.threshold * Decimal(str(rearm_fraction))
        self._clock = clock
        # (started_at as epoch seconds, template, cost or None), oldest first
        self._calls: collections.deque[tuple[float, str, Decimal | None]] = collections.deque()
        self._spend = Decimal(0)
        self._armed = True
        self.fired = 0
        self._lock = threading.Lock()

    def write_batch(self, records: Sequence[PromptExecution]) -> None:
        """Add the batch's costs to the window; fire when the threshold is reached."""
        alert = None
        with self._lock:
            now = self._clock()
            horizon = now - self.window_s
            self._expire(horizon)
            if not self._armed and self._spend < self._rearm_below:
                self._armed = True  # the spend fell back since the last alert
            for record in records:
                started = record.started_at.timestamp()
                if started < horizon:
                    continue
                cost = record.cost_usd
                self._calls.append((started, record.template_key, cost))
                if cost is not None:
                    self._spend += cost
            if self._armed and self._spend >= self.threshold:
                self._armed = False
                self.fired += 1
                alert = self._alert()
        if alert is not None:
            self._notify(alert)

    def spend(self) -> Decimal:
        """The known cost of the calls that started within the window, now."""
        with self._lock:
            self._expire(self._clock() - self.window_s)
            return self._spend

    def _expire(self, horizon: float) -> None:
        calls = self._calls
        # Records arrive roughly in start order; a late one older than the head stays
        # until the head goes (a bounded overcount of at most one batch's skew).
        while calls and calls[0][0] < horizon:
            _, _, cost = calls.popleft()
            if cost is not None:
                self._spend -= cost

    def _alert(self) -> SpendAlert:
        by_template: dict[str, Decimal] = {}
        unpriced = 0
        for _, key, cost in self._calls:
            if cost is None:
                unpriced += 1
            else:
                by_template[key] = by_template.get(key, Decimal(0)) + cost
        top = sorted(by_template.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        return SpendAlert(
            spend_usd=self._spend,
            threshold_usd=self.threshold,
            window_s=self.window_s,
            calls=len(self._calls),
            unpriced_calls=unpriced,
            top_templates=tuple(top),
        )

    def _notify(self, alert: SpendAlert) -> None:
        top = ", ".join(f"{key} ${cost}" for key, cost in alert.top_templates)
        logger.warning(
            "vividly_trace spend guard: $%s spent on Gemini in the last %g s (threshold $%s; "
            "%d calls, %d without a known cost); top templates: %s",
            alert.spend_usd,
            alert.window_s,
            alert.threshold_usd,
            alert.calls,
            alert.unpriced_calls,
            top or "none",
        )
        if self.on_exceed is None:
            return
        try:
            self.on_exceed(alert)
        except Exception as exc:  # the application's callback: a warning, not our error
            warn_limited("spend_guard", "vividly_trace spend guard: on_exceed failed: %r", exc)

    def after_fork(self) -> None:
        """In a forked child: its own spend, from nothing."""
        self._lock = threading.Lock()
        self._calls.clear()
        self._spend = Decimal(0)
        self._armed = True

    def close(self) -> None:
        """Nothing to release."""


def _amount(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise ConfigurationError(f"SpendGuard: threshold_usd must be an amount, got {value!r}")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ConfigurationError(
            f"SpendGuard: threshold_usd must be an amount, got {value!r}"
        ) from None
    if not amount.is_finite() or amount <= 0:
        raise ConfigurationError(f"SpendGuard: threshold_usd must be > 0, got {value!r}")
    return amount
