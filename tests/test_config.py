"""configure(), the environment, sampling, redaction and secret masking."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import vividly_trace
from vividly_trace import ConfigurationError, PromptExecution, log_prompt_execution, logged_prompt
from vividly_trace.sinks import MemorySink
from vividly_trace.testing import capture_records

GOOGLE_KEY = "AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvW"


class Nameless:
    def write_batch(self, records: Sequence[PromptExecution]) -> None:
        pass


class NoWrite:
    name = "nowrite"

    def close(self) -> None:
        pass


class TestValidation:
    @pytest.mark.parametrize(
        "kwargs",
        [
            {"sample_rate": 1.5},
            {"sample_rate": -0.1},
            {"sample_rate": math.nan},
            {"sample_rate": "0.5"},
            {"sample_rate": True},
            {"queue_size": 0},
            {"queue_size": -5},
            {"queue_size": 10.5},
            {"batch_size": 0},
            {"flush_interval": 0},
            {"max_retries": -1},
            {"retry_backoff": -1.0},
            {"spool_max_bytes": -1},
            {"shutdown_timeout": math.inf},
            {"sync": "yes"},
            {"redact": "not callable"},
        ],
        ids=repr,
    )
    def test_bad_numbers_and_flags(self, kwargs: dict[str, Any]) -> None:
        """Bad settings raise ConfigurationError and leave nothing configured."""
        with pytest.raises(ConfigurationError):
            vividly_trace.configure(sinks=[MemorySink()], **kwargs)
        assert vividly_trace.stats()["sinks"] == {}

    def test_configuration_error_is_a_value_error(self) -> None:
        """ConfigurationError can be caught as ValueError."""
        with pytest.raises(ValueError):
            vividly_trace.configure(sinks=[MemorySink()], queue_size=0)

    def test_duplicate_sink_names(self) -> None:
        """Two sinks with one name are refused (spools and stats are per name)."""
        with pytest.raises(ConfigurationError, match="named 'memory'"):
            vividly_trace.configure(sinks=[MemorySink(), MemorySink()])

    @pytest.mark.parametrize("sink", [Nameless(), NoWrite(), object(), "memory"], ids=repr)
    def test_not_a_sink(self, sink: Any) -> None:
        """A sink without a name or without write_batch is refused."""
        with pytest.raises(ConfigurationError):
            vividly_trace.configure(sinks=[sink])

    @pytest.mark.parametrize(
        "pricing",
        [
            42,
            {"my-model": {"input": "abc", "output": "1"}},
            {"my-model": {"input": "-1", "output": "1"}},
            {"my-model": {"input": "1"}},
            {"my-model": {"input": "1", "output": "1", "colour": "red"}},
            "/nonexistent/prices.toml",
        ],
        ids=repr,
    )
    def test_bad_pricing(self, pricing: Any) -> None:
        """A price table that cannot be used is refused at configure() time."""
        with pytest.raises(ConfigurationError):
            vividly_trace.configure(sinks=[MemorySink()], pricing=pricing)

    def test_good_pricing_override_prices_calls(self) -> None:
        """A mapping of overrides prices a model the packaged table does not know."""
        sink = MemorySink()
        vividly_trace.configure(
            sinks=[sink], sync=True, pricing={"my-model": {"input": "1", "output": "2"}}
        )
        log_prompt_execution("t", True, 1.0, 1_000_000, 1_000_000, model="my-model")
        assert str(sink.records[0].cost_usd) == "3"


class TestUnconfigured:
    def test_decorated_functions_run_untouched_with_one_warning(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Before configure(), calls pass through and one warning says records are discarded."""
        caplog.set_level(logging.WARNING, logger="vividly_trace")

        @logged_prompt("plain")
        def f(x: int) -> int:
            return x * 2

        @logged_prompt("plain")
        def boom() -> None:
            raise KeyError("k")

        assert [f(i) for i in range(5)] == [0, 2, 4, 6, 8]
        with pytest.raises(KeyError):
            boom()
        assert log_prompt_execution("plain", True, 1.0) is None
        with logged_prompt("plain") as call:
            assert uuid.UUID(call.execution_id).version == 7  # known on entry, as configured
        warnings = [r for r in caplog.records if "discarded" in r.getMessage()]
        assert len(warnings) == 1
        assert warnings[0].levelno == logging.WARNING
        assert vividly_trace.stats()["mode"] == "disabled"

    def test_disabled_by_environment(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
    ) -> None:
        """VIVIDLY_TRACE_DISABLED=1 records nothing, even with sinks in the environment."""
        monkeypatch.setenv("VIVIDLY_TRACE_DISABLED", "1")
        monkeypatch.setenv("VIVIDLY_TRACE_SINKS", f"jsonl:{tmp_path / 'x.jsonl'}")
        caplog.set_level(logging.WARNING, logger="vividly_trace")

        @logged_prompt("off")
        def f() -> str:
            return "ok"

        assert f() == "ok"
        assert log_prompt_execution("off", True, 1.0) is None
        assert vividly_trace.flush(1)
        assert not (tmp_path / "x.jsonl").exists()
        assert not [r for r in caplog.records if "discarded" in r.getMessage()]

    def test_enabled_false_turns_decorators_into_pass_throughs(self) -> None:
        """configure(enabled=False) records nothing and never warns about it."""
        vividly_trace.configure(sinks=[MemorySink()], enabled=False)

        @logged_prompt("off")
        def f() -> int:
            return 3

        assert f() == 3
        assert log_prompt_execution("off", True, 1.0) is None
        assert vividly_trace.stats()["mode"] == "disabled"

    def test_sinks_from_environment(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        """VIVIDLY_TRACE_SINKS=jsonl:PATH sends records there without configure()."""
        out = tmp_path / "x.jsonl"
        monkeypatch.setenv("VIVIDLY_TRACE_SINKS", f"jsonl:{out}")
        vividly_trace.reset()

        @logged_prompt("env", version="v1")
        def f() -> dict[str, int]:
            return {"input_tokens": 3, "output_tokens": 4}

        assert f() == {"input_tokens": 3, "output_tokens": 4}
        assert vividly_trace.flush(5)
        [line] = out.read_text("utf-8").splitlines()
        record = PromptExecution.from_dict(json.loads(line))
        assert record.template_key == "env"
        assert record.template_version == "v1"
        assert record.total_token_count == 7

    def test_two_sinks_from_environment(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """A comma-separated VIVIDLY_TRACE_SINKS feeds every sink listed."""
        monkeypatch.setenv("VIVIDLY_TRACE_SINKS", f"memory, jsonl:{tmp_path / 'x.jsonl'}")
        assert log_prompt_execution("env", True, 1.0) is not None
        assert vividly_trace.flush(5)
        assert set(vividly_trace.stats()["sinks"]) == {"memory", "jsonl"}
        assert len((tmp_path / "x.jsonl").read_text("utf-8").splitlines()) == 1

    @pytest.mark.parametrize(
        "spec", ["bogus", "jsonl:/nonexistent-dir/x.jsonl", "memory,memory", ":"], ids=repr
    )
    def test_bad_sinks_in_environment_warn_and_do_not_crash(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, spec: str
    ) -> None:
        """A bad VIVIDLY_TRACE_SINKS is logged; calls still run and nothing is recorded."""
        monkeypatch.setenv("VIVIDLY_TRACE_SINKS", spec)
        caplog.set_level(logging.WARNING, logger="vividly_trace")

        @logged_prompt("env")
        def f() -> int:
            return 5

        assert f() == 5
        assert f() == 5
        assert log_prompt_execution("env", True, 1.0) is None
        bad = [r for r in caplog.records if "environment" in r.getMessage()]
        assert len(bad) == 1
        assert vividly_trace.stats()["mode"] == "disabled"

    def test_bad_disabled_value_is_ignored_with_a_warning(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A non-boolean VIVIDLY_TRACE_DISABLED is logged and ignored."""
        monkeypatch.setenv("VIVIDLY_TRACE_DISABLED", "maybe")
        monkeypatch.setenv("VIVIDLY_TRACE_SINKS", "memory")
        caplog.set_level(logging.WARNING, logger="vividly_trace")
        assert log_prompt_execution("env", True, 1.0) is not None
        assert any("VIVIDLY_TRACE_DISABLED" in r.getMessage() for r in caplog.records)

    def test_environment_is_read_per_call_not_at_decoration(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A function decorated before configure() records once configure() is called."""

        @logged_prompt("late")
        def f() -> int:
            return 1

        sink = MemorySink()
        vividly_trace.configure(sinks=[sink], sync=True)
        f()
        assert [r.template_key for r in sink.records] == ["late"]


class TestSampling:
    def test_keeps_about_half_of_successes_and_all_failures(self) -> None:
        """sample_rate=0.5 keeps roughly half the successes and every failure."""
        sink = MemorySink()
        vividly_trace.configure(sinks=[sink], sync=True, sample_rate=0.5)

        @logged_prompt("sampled")
        def ok() -> int:
            return 1

        @logged_prompt("sampled")
        def bad() -> None:
            raise RuntimeError("x")

        for _ in range(2000):
            ok()
        for _ in range(300):
            with pytest.raises(RuntimeError):
                bad()
        for _ in range(100):
            log_prompt_execution("sampled", False, 1.0, error_message="e")
        kept_ok = sum(1 for r in sink.records if r.success)
        failed = sum(1 for r in sink.records if not r.success)
        # Binomial(2000, 0.5): sd ~22, so 800..1200 is > 9 sd away from the mean.
        assert 800 <= kept_ok <= 1200
        assert failed == 400
        assert vividly_trace.stats()["sampled_out"] == 2000 - kept_ok

    def test_rate_zero_keeps_only_failures(self) -> None:
        """sample_rate=0 drops every success and still keeps failures."""
        sink = MemorySink()
        vividly_trace.configure(sinks=[sink], sync=True, sample_rate=0.0)
        for _ in range(50):
            log_prompt_execution("z", True, 1.0)
        log_prompt_execution("z", False, 1.0)
        assert [r.success for r in sink.records] == [False]


class TestRedact:
    def test_redact_can_change_and_drop_records(self) -> None:
        """The redact hook rewrites records, and None drops them (counted as redacted)."""
        sink = MemorySink()

        def redact(record: PromptExecution) -> PromptExecution | None:
            if record.template_key == "secret":
                return None
            return dataclasses.replace(record, metadata={**record.metadata, "redacted": True})

        vividly_trace.configure(sinks=[sink], redact=redact, flush_interval=60)
        log_prompt_execution("public", True, 1.0, metadata={"a": 1})
        log_prompt_execution("secret", True, 1.0)
        log_prompt_execution("secret", True, 1.0)
        assert vividly_trace.flush(5)
        assert [(r.template_key, r.metadata) for r in sink.records] == [
            ("public", {"a": 1, "redacted": True})
        ]
        s = vividly_trace.stats()
        assert s["sinks"]["memory"]["dropped"] == {"redacted": 2}
        assert s["sinks"]["memory"]["written"] == 1

    def test_raising_redact_hook_drops_with_a_warning(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A hook that raises drops the record (redact_error) and says so, never the caller."""
        caplog.set_level(logging.WARNING, logger="vividly_trace")
        sink = MemorySink()

        def redact(record: PromptExecution) -> PromptExecution | None:
            raise RuntimeError("hook bug")

        vividly_trace.configure(sinks=[sink], redact=redact, sync=True)

        @logged_prompt("r")
        def f() -> int:
            return 1

        assert f() == 1
        assert log_prompt_execution("r", True, 1.0) is not None
        assert sink.records == []
        assert vividly_trace.stats()["sinks"]["memory"]["dropped"] == {"redact_error": 2}
        assert any("redact" in r.getMessage() for r in caplog.records)

    def test_redact_returning_a_wrong_type_drops(self) -> None:
        """A hook returning something other than a record or None drops the record."""
        sink = MemorySink()
        vividly_trace.configure(sinks=[sink], redact=lambda r: {"not": "a record"}, sync=True)
        log_prompt_execution("r", True, 1.0)
        assert sink.records == []
        assert vividly_trace.stats()["sinks"]["memory"]["dropped"] == {"redact_error": 1}

    def test_redact_runs_once_per_record_with_two_sinks(self) -> None:
        """With two sinks the hook runs once per record and both get the same result."""
        a, b = MemorySink("a"), MemorySink("b")
        calls: list[str] = []
        lock = threading.Lock()

        def redact(record: PromptExecution) -> PromptExecution:
            with lock:
                calls.append(record.execution_id)
            return dataclasses.replace(record, metadata={"n": len(calls)})

        vividly_trace.configure(sinks=[a, b], redact=redact, flush_interval=0.01)

        @logged_prompt("two")
        def f() -> None:
            return None

        for _ in range(200):
            f()
        assert vividly_trace.flush(5)
        assert len(calls) == 200
        assert len(set(calls)) == 200
        assert [(r.execution_id, r.metadata) for r in a.records] == [
            (r.execution_id, r.metadata) for r in b.records
        ]


class TestSecrets:
    META = {
        "api_key": "k-1",
        "Authorization": "Bearer abc.def",
        "password": "hunter2",
        "token": "t-1",
        "secret": "s-1",
        "X-Api-Key": "k-2",
        "access_token": "t-2",
        "max_tokens": 256,
        "input_token_count": 3,
        "note": f"called with key {GOOGLE_KEY} today",
        "url": f"http://127.0.0.1:8080/v1?key={GOOGLE_KEY}",
        "nested": {"client_secret": "s-2", "list": [f"{GOOGLE_KEY}"]},
    }

    def _records(self, **options: Any) -> tuple[PromptExecution, PromptExecution]:
        """The records of a failed call and of a call with META, under ``options``."""

        @logged_prompt("s", metadata={"service_password": "pw"})
        def f() -> None:
            raise PermissionError(f"API key {GOOGLE_KEY} not valid. Please pass a valid key.")

        with capture_records(**options) as records:
            with pytest.raises(PermissionError):
                f()
            with logged_prompt("s") as call:
                call.metadata.update(self.META)
        failed, ok = records
        return failed, ok

    def test_secret_keys_and_api_keys_are_masked_by_default(self) -> None:
        """Secret-looking keys and API keys inside strings and errors are masked."""
        failed, ok = self._records()
        m = ok.metadata
        for key in ("api_key", "Authorization", "password", "token", "secret", "X-Api-Key"):
            assert m[key] == "[REDACTED]", key
        assert m["access_token"] == "[REDACTED]"
        assert m["max_tokens"] == 256
        assert m["input_token_count"] == 3
        assert GOOGLE_KEY not in json.dumps(m)
        assert m["note"].startswith("called with key ") and "[REDACTED]" in m["note"]
        assert m["nested"]["client_secret"] == "[REDACTED]"
        assert failed.metadata == {"service_password": "[REDACTED]"}
        assert failed.error_message is not None
        assert GOOGLE_KEY not in failed.error_message
        assert "[REDACTED]" in failed.error_message

    def test_log_prompt_execution_masks_too(self) -> None:
        """The plain-function form masks metadata and error messages in the same way."""
        with capture_records() as records:
            log_prompt_execution(
                "s", False, 1.0, error_message=f"bad key {GOOGLE_KEY}", metadata={"token": "x"}
            )
        r = records.only()
        assert r.metadata == {"token": "[REDACTED]"}
        assert r.error_message is not None and GOOGLE_KEY not in r.error_message

    def test_mask_secrets_false_keeps_them(self) -> None:
        """mask_secrets=False leaves metadata values as given."""
        failed, ok = self._records(mask_secrets=False)
        assert ok.metadata["api_key"] == "k-1"
        assert ok.metadata["password"] == "hunter2"
        assert GOOGLE_KEY in ok.metadata["note"]
        assert failed.metadata == {"service_password": "pw"}


class TestReconfigure:
    def test_configure_twice_replaces_and_flushes_the_old_pipeline(self) -> None:
        """A second configure() flushes and closes the old sinks; new records go to the new."""

        class ClosingSink(MemorySink):
            closed = False

            def close(self) -> None:
                self.closed = True

        old, new = ClosingSink("old"), ClosingSink("new")
        vividly_trace.configure(sinks=[old], flush_interval=60)
        first = [log_prompt_execution("a", True, 1.0) for _ in range(5)]
        vividly_trace.configure(sinks=[new], flush_interval=60)
        assert [r.execution_id for r in old.records] == first
        assert old.closed
        second = log_prompt_execution("b", True, 1.0)
        assert vividly_trace.flush(5)
        assert [r.execution_id for r in new.records] == [second]
        assert len(old.records) == 5
        assert set(vividly_trace.stats()["sinks"]) == {"new"}

    def test_reset_forgets_everything(self) -> None:
        """reset() flushes and returns to the unconfigured state."""
        sink = MemorySink()
        vividly_trace.configure(sinks=[sink], flush_interval=60)
        log_prompt_execution("a", True, 1.0)
        vividly_trace.reset()
        assert len(sink.records) == 1
        assert log_prompt_execution("a", True, 1.0) is None
