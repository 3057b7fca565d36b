"""Edges of the pipeline's life: reconfiguration mid-call, sampling of blocked responses,
the kill switch, and -exp model names."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import vividly_trace
from tests.factories import make_record
from vividly_trace import PricingTable, Usage, logged_prompt
from vividly_trace.sinks import MemorySink
from vividly_trace.testing import capture_records


def test_call_ending_after_reconfigure_goes_to_the_new_pipeline() -> None:
    """A call that started under one configure() and ends after the next is not lost."""
    old, new = MemorySink("old"), MemorySink("new")
    vividly_trace.configure(sinks=[old], spool_dir=False)
    inside, release = threading.Event(), threading.Event()

    @logged_prompt("slow")
    def slow() -> int:
        inside.set()
        release.wait(10)
        return 1

    t = threading.Thread(target=slow)
    t.start()
    assert inside.wait(10)
    vividly_trace.configure(sinks=[new], spool_dir=False)
    release.set()
    t.join(10)
    assert vividly_trace.flush(10)
    assert [r.template_key for r in old.records + new.records] == ["slow"]


def test_call_ending_after_shutdown_is_counted(caplog: pytest.LogCaptureFixture) -> None:
    """With nothing configured any more, the late record is counted and warned about."""
    sink = MemorySink()
    vividly_trace.configure(sinks=[sink], spool_dir=False)
    pipeline = vividly_trace._config.get_pipeline()
    assert pipeline is not None
    vividly_trace.shutdown()
    with logged_prompt("late"):
        pass
    pipeline.submit(vividly_trace._call.ReadyRecord(make_record("late")))
    assert pipeline.stats()["dropped"] == {"after_shutdown": 1}
    assert any("after shutdown" in r.getMessage() for r in caplog.records)


def test_sampling_keeps_blocked_responses() -> None:
    """Blocked prompts count as failures, which sampling always keeps."""
    blocked: dict[str, Any] = {
        "promptFeedback": {"blockReason": "SAFETY"},
        "usageMetadata": {"promptTokenCount": 3, "totalTokenCount": 3},
    }
    fine: dict[str, Any] = {"usageMetadata": {"promptTokenCount": 3, "totalTokenCount": 3}}
    with capture_records(sample_rate=0.0) as records:
        for response in (blocked, fine, blocked):
            logged_prompt("k")(lambda r=response: r)()
        assert vividly_trace.stats()["sampled_out"] == 1
    assert [r.success for r in records] == [False, False]


def test_disabled_environment_wins_over_configure(monkeypatch: pytest.MonkeyPatch) -> None:
    """VIVIDLY_TRACE_DISABLED=1 is a kill switch even for an explicit configure()."""
    monkeypatch.setenv("VIVIDLY_TRACE_DISABLED", "1")
    sink = MemorySink()
    vividly_trace.configure(sinks=[sink], sync=True, spool_dir=False)
    assert logged_prompt("k")(lambda: 5)() == 5
    assert sink.records == []
    assert vividly_trace.stats()["mode"] == "disabled"


def test_experimental_models_are_not_guessed() -> None:
    """An -exp model is not priced as its stable namesake."""
    usage = Usage(input_tokens=10, output_tokens=10, total_tokens=20)
    assert PricingTable.default().cost("gemini-2.0-flash-exp", usage) is None
