"""capture_records(): the records of the calls made inside a block, and nothing else."""

from __future__ import annotations

import dataclasses

import pytest

import vividly_trace
from vividly_trace import ConfigurationError, log_prompt_execution, logged_prompt
from vividly_trace.sinks import MemorySink
from vividly_trace.testing import CapturedRecords, capture_records


def test_records_of_the_block_in_the_order_calls_ended() -> None:
    """Each record is in the list as soon as its call ends (synchronous pipeline)."""
    with capture_records() as records:
        assert isinstance(records, CapturedRecords)
        with logged_prompt("outer"):
            log_prompt_execution("inner", True, 1.0)
            assert [r.template_key for r in records] == ["inner"]
        assert [r.template_key for r in records] == ["inner", "outer"]
        assert vividly_trace.stats()["mode"] == "sync"
    log_prompt_execution("after", True, 1.0)
    assert [r.template_key for r in records] == ["inner", "outer"]


def test_only() -> None:
    """only() returns the one record, and refuses none or several."""
    with capture_records() as records:
        with pytest.raises(AssertionError, match="captured 0"):
            records.only()
        eid = log_prompt_execution("k", True, 1.0)
        assert records.only().execution_id == eid
        log_prompt_execution("k", True, 1.0)
        with pytest.raises(AssertionError, match="captured 2"):
            records.only()


def test_the_configured_set_up_is_put_back_untouched() -> None:
    """Calls inside the block do not reach the configured sink; calls after it do."""
    sink = MemorySink()
    vividly_trace.configure(sinks=[sink], sync=True, spool_dir=False)
    with capture_records() as records:
        log_prompt_execution("inside", True, 1.0)
    log_prompt_execution("outside", True, 1.0)
    assert [r.template_key for r in records] == ["inside"]
    assert [r.template_key for r in sink.records] == ["outside"]
    assert vividly_trace.stats()["sinks"]["memory"]["written"] == 1


def test_unconfigured_before_means_unconfigured_after() -> None:
    """Before any configure(), the block captures, and afterwards calls are discarded."""
    with capture_records() as records:
        assert log_prompt_execution("inside", True, 1.0) is not None
    assert records.only().template_key == "inside"
    assert log_prompt_execution("outside", True, 1.0) is None
    assert vividly_trace.stats()["mode"] == "disabled"


def test_nested_blocks_capture_separately() -> None:
    """An inner block takes the calls made inside it; the outer one gets the others."""
    with capture_records() as outer:
        log_prompt_execution("a", True, 1.0)
        with capture_records() as inner:
            log_prompt_execution("b", True, 1.0)
        log_prompt_execution("c", True, 1.0)
    assert [r.template_key for r in outer] == ["a", "c"]
    assert [r.template_key for r in inner] == ["b"]


def test_an_exception_in_the_block_still_restores() -> None:
    """The configured set-up is back even when the block raises."""
    sink = MemorySink()
    vividly_trace.configure(sinks=[sink], sync=True, spool_dir=False)
    with pytest.raises(RuntimeError), capture_records():
        raise RuntimeError("boom")
    log_prompt_execution("after", True, 1.0)
    assert [r.template_key for r in sink.records] == ["after"]


def test_options_are_configure_arguments() -> None:
    """pricing=, redact=, sample_rate=, mask_secrets= shape the captured records."""
    with capture_records(pricing={"in-house": {"input": "1", "output": "2"}}) as records:
        log_prompt_execution("k", True, 1.0, 1_000_000, 1_000_000, model="in-house")
    assert str(records.only().cost_usd) == "3"

    def tag(record: vividly_trace.PromptExecution) -> vividly_trace.PromptExecution | None:
        if record.template_key == "secret":
            return None
        return dataclasses.replace(record, metadata={"tagged": True})

    with capture_records(redact=tag) as records:
        log_prompt_execution("secret", True, 1.0)
        log_prompt_execution("k", True, 1.0)
        assert vividly_trace.stats()["dropped"] == {"redacted": 1}
    assert records.only().metadata == {"tagged": True}

    with capture_records(sample_rate=0.0) as records:
        log_prompt_execution("ok", True, 1.0)
        log_prompt_execution("failed", False, 1.0)
    assert records.only().template_key == "failed"

    with capture_records(mask_secrets=False) as records:
        log_prompt_execution("k", True, 1.0, metadata={"api_key": "s3cret"})
    assert records.only().metadata == {"api_key": "s3cret"}


@pytest.mark.parametrize(
    "options",
    [{"sinks": []}, {"sync": False}, {"spool_dir": "x"}, {"enabled": False}, {"nope": 1}],
    ids=["sinks", "sync", "spool_dir", "enabled", "unknown"],
)
def test_options_it_sets_itself_or_does_not_know_are_refused(options: dict[str, object]) -> None:
    """A configuration error (not a TypeError), and nothing is installed."""
    with (
        pytest.raises(ConfigurationError, match=f"{next(iter(options))}="),
        capture_records(**options),
    ):
        pytest.fail("the block must not run")
    assert vividly_trace.stats()["mode"] == "disabled"


def test_a_bad_option_value_is_a_configuration_error() -> None:
    """Values are checked as configure() checks them."""
    with pytest.raises(ConfigurationError, match="sample_rate"), capture_records(sample_rate=2):
        pytest.fail("the block must not run")


def test_configure_inside_the_block_ends_with_the_block() -> None:
    """A set-up the block installs is flushed and shut down at its end; the one from before
    the block is back."""
    before = MemorySink("before")
    vividly_trace.configure(sinks=[before], sync=True, spool_dir=False)
    inside = MemorySink("inside")
    with capture_records() as records:
        vividly_trace.configure(sinks=[inside], flush_interval=3600, spool_dir=False)
        log_prompt_execution("queued", True, 1.0)
    assert list(records) == []
    assert [r.template_key for r in inside.records] == ["queued"]  # flushed at the block's end
    log_prompt_execution("after", True, 1.0)
    assert [r.template_key for r in before.records] == ["after"]
    assert [r.template_key for r in inside.records] == ["queued"]
