"""The in-process spend guard: a rolling window of this process's Gemini spend, a warning and
the application's callback when it crosses the threshold, once per crossing."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from typing import Any

import pytest

import vividly_trace
from tests.factories import make_record, usd
from vividly_trace import logged_prompt
from vividly_trace.exceptions import ConfigurationError
from vividly_trace.sinks import MemorySink, SpendAlert, SpendGuard
from vividly_trace.testing.fake_gemini import Scenario

FLASH = "gemini-2.5-flash"


def test_a_runaway_loop_fires_once(
    gemini: Any, client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Each call costs 1000 x $0.30 + 1000 x $2.50 per 1M = $0.0028; the threshold of
    $0.01 is reached at the fourth call, and the guard fires once however many follow."""
    caplog.set_level(logging.WARNING, logger="vividly_trace")
    gemini.set_default(Scenario(prompt_tokens=1000, candidates_tokens=1000))
    alerts: list[SpendAlert] = []
    guard = SpendGuard("0.01", on_exceed=alerts.append)
    vividly_trace.configure(sinks=[guard, MemorySink()], spool_dir=False, sync=True)

    @logged_prompt("agent_step")
    def step() -> str:
        return str(client.models.generate_content(model=FLASH, contents="go on").text)

    for n in range(1, 8):
        step()
        if n == 3:
            assert alerts == [] and guard.spend() == 3 * usd((1000, "0.30"), (1000, "2.50"))
    (alert,) = alerts
    assert alert.spend_usd == 4 * usd((1000, "0.30"), (1000, "2.50")) == Decimal("0.0112")
    assert (alert.threshold_usd, alert.window_s, alert.calls, alert.unpriced_calls) == (
        Decimal("0.01"),
        600.0,
        4,
        0,
    )
    assert alert.top_templates == (("agent_step", Decimal("0.0112")),)
    assert guard.spend() == Decimal("0.0196")
    warned = [r.getMessage() for r in caplog.records if "spend guard" in r.getMessage()]
    assert len(warned) == 1 and "$0.0112" in warned[0] and "agent_step" in warned[0]


def test_the_window_rolls_and_the_guard_rearms() -> None:
    now = [1_000_000.0]
    alerts: list[SpendAlert] = []
    guard = SpendGuard("1.00", window_s=60, on_exceed=alerts.append, clock=lambda: now[0])

    def spent(cost: str, at: float, key: str = "t") -> Any:
        started = vividly_trace.PromptExecution.from_dict(
            {
                "execution_id": "e",
                "template_key": key,
                "success": True,
                "response_time_ms": 1,
                "started_at": "1970-01-01T00:00:00Z",
            }
        ).started_at
        import datetime as dt

        return make_record(
            template_key=key,
            cost_usd=Decimal(cost) if cost else None,
            started_at=started + dt.timedelta(seconds=at),
        )

    guard.write_batch([spent("0.60", now[0]), spent("", now[0], "unpriced")])
    guard.write_batch([spent("0.50", now[0] + 1, "big")])
    assert len(alerts) == 1 and alerts[0].unpriced_calls == 1
    assert alerts[0].top_templates == (("t", Decimal("0.60")), ("big", Decimal("0.50")))
    now[0] += 30
    guard.write_batch([spent("0.10", now[0])])  # still above: no second alert
    assert len(alerts) == 1
    now[0] += 45  # the first two calls left the window: $0.10 left, re-armed
    guard.write_batch([spent("0.95", now[0])])  # $1.05 again within 60 s: fires again
    assert len(alerts) == 2 and alerts[1].spend_usd == Decimal("1.05")
    # A record older than the window when it arrives (a replay) is not counted.
    guard.write_batch([spent("5.00", now[0] - 3600)])
    assert guard.spend() == Decimal("1.05")


def test_a_failing_callback_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="vividly_trace")

    def broken(alert: SpendAlert) -> None:
        raise RuntimeError("pager down")

    guard = SpendGuard("0.01", on_exceed=broken)
    now = dt.datetime.now(dt.timezone.utc)
    guard.write_batch([make_record(cost_usd=Decimal("0.02"), started_at=now)])
    assert guard.fired == 1
    assert any("on_exceed failed" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold_usd": 0}, "threshold_usd must be > 0"),
        ({"threshold_usd": "ten"}, "threshold_usd must be an amount"),
        ({"threshold_usd": True}, "threshold_usd must be an amount"),
        ({"threshold_usd": "1", "window_s": 0}, "window_s must be > 0"),
        ({"threshold_usd": "1", "on_exceed": "page me"}, "on_exceed must be callable"),
        ({"threshold_usd": "1", "rearm_fraction": 2}, "rearm_fraction"),
    ],
)
def test_configuration_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        SpendGuard(**kwargs)
