"""log_prompt_execution: the original design's function and its test list."""

from __future__ import annotations

import json
import logging
import math
import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

import vividly_trace
from tests.hostile_objects import EvilFloat, EvilInt
from vividly_trace import log_prompt_execution, logged_prompt
from vividly_trace.sinks import MemorySink
from vividly_trace.testing import CapturedRecords, capture_records


@pytest.fixture(name="records")
def _records() -> Iterator[CapturedRecords]:
    """The records of the calls the test makes."""
    with capture_records() as records:
        yield records


def is_uuid(text: Any) -> bool:
    if not isinstance(text, str):
        return False
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


class TestOriginalDesign:
    def test_success_with_all_metrics(self, records: CapturedRecords) -> None:
        """Every metric given is recorded as given; the id is returned."""
        eid = log_prompt_execution(
            "nlu_extraction_gemini_25",
            True,
            1234.5,
            input_token_count=150,
            output_token_count=75,
            cost_usd=0.000233,
            metadata={"user_id": "u1", "request_id": "r1"},
        )
        r = records.only()
        assert r.execution_id == eid
        assert is_uuid(eid)
        assert uuid.UUID(eid).version == 7
        assert r.template_key == "nlu_extraction_gemini_25"
        assert r.success is True
        assert r.response_time_ms == 1234.5
        assert r.input_token_count == 150
        assert r.output_token_count == 75
        assert r.total_token_count == 225
        assert r.cost_usd == Decimal("0.000233")
        assert r.error_message is None
        assert r.metadata == {"user_id": "u1", "request_id": "r1"}
        assert r.started_at.tzinfo is not None

    def test_minimal_data(self, records: CapturedRecords) -> None:
        """Only the three required arguments: the optional fields stay empty."""
        eid = log_prompt_execution("clarification", True, 10)
        r = records.only()
        assert r.execution_id == eid
        assert r.response_time_ms == 10.0
        assert r.input_token_count is None
        assert r.output_token_count is None
        assert r.total_token_count is None
        assert r.cost_usd is None
        assert r.metadata == {}

    def test_failure_with_an_error_message(self, records: CapturedRecords) -> None:
        """A failed execution keeps its error message."""
        eid = log_prompt_execution(
            "script_generation", False, 5000.0, error_message="API timeout after 5000ms"
        )
        r = records.only()
        assert eid == r.execution_id
        assert r.success is False
        assert r.error_message == "API timeout after 5000ms"

    def test_error_message_truncated_to_1000_characters(self, records: CapturedRecords) -> None:
        """A long error message is cut to 1000 characters."""
        log_prompt_execution("t", False, 1.0, error_message="x" * 5000)
        assert records.only().error_message == "x" * 1000

    def test_total_tokens_is_input_plus_output(self, records: CapturedRecords) -> None:
        """total_token_count = input + output when both are given."""
        log_prompt_execution("t", True, 1.0, 100, 50)
        assert records.only().total_token_count == 150

    def test_input_tokens_only(self, records: CapturedRecords) -> None:
        """With input tokens only, total stays None (not a guess)."""
        log_prompt_execution("t", True, 1.0, input_token_count=100)
        r = records.only()
        assert r.input_token_count == 100
        assert r.output_token_count is None
        assert r.total_token_count is None

    def test_output_tokens_only_leave_the_cost_unknown(self, records: CapturedRecords) -> None:
        """With a model but no input count, the cost is unknown (not an output-only price)."""
        log_prompt_execution("t", True, 1.0, output_token_count=50, model="gemini-2.5-flash")
        r = records.only()
        assert (r.input_token_count, r.output_token_count) == (None, 50)
        assert r.cost_usd is None and r.pricing_version is None

    def test_complex_metadata(self, records: CapturedRecords) -> None:
        """Nested metadata survives intact and JSON-serialisable."""
        meta = {
            "user": {"id": 7, "tier": "pro", "flags": [True, False, None]},
            "scores": [0.1, 2.5, -3],
            "empty": {},
            "unicode": "héllo ✓ 日本",
            "tuple": (1, 2),
        }
        log_prompt_execution("t", True, 1.0, metadata=meta)
        r = records.only()
        assert r.metadata == {**meta, "tuple": [1, 2]}
        json.dumps(r.metadata, allow_nan=False)

    def test_five_concurrent_threads(self) -> None:
        """5 threads logging at once: every record kept, ids unique."""
        sink = MemorySink()
        vividly_trace.configure(sinks=[sink], flush_interval=0.01)
        ids: list[str | None] = []
        lock = threading.Lock()
        barrier = threading.Barrier(5)

        def work(n: int) -> None:
            barrier.wait()
            for i in range(200):
                eid = log_prompt_execution(f"t{n}", True, float(i), i, i)
                with lock:
                    ids.append(eid)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert vividly_trace.flush(5)
        assert None not in ids
        assert len(set(ids)) == 1000
        assert sorted(r.execution_id for r in sink.records) == sorted(ids)  # type: ignore[arg-type]

    def test_cost_computed_when_model_given(self, records: CapturedRecords) -> None:
        """Without cost_usd, the cost comes from the packaged prices when model= is given."""
        log_prompt_execution("t", True, 1.0, 1_000_000, 1_000_000, model="gemini-2.5-flash")
        r = records.only()
        # gemini-2.5-flash: $0.30 input + $2.50 output per 1M tokens (pricing-sources.md).
        assert r.cost_usd == Decimal("2.80")
        assert r.model == "gemini-2.5-flash"
        assert r.pricing_version

    def test_cost_accuracy_small_call(self, records: CapturedRecords) -> None:
        """150 in / 75 out on gemini-2.5-flash costs exactly 0.000045 + 0.0001875."""
        log_prompt_execution("t", True, 1.0, 150, 75, model="models/gemini-2.5-flash")
        assert records.only().cost_usd == Decimal("0.0002325")

    def test_explicit_cost_wins_over_the_model(self, records: CapturedRecords) -> None:
        """A given cost_usd is kept even when the model would price the call differently."""
        log_prompt_execution(
            "t", True, 1.0, 10, 10, cost_usd=Decimal("1.5"), model="gemini-2.5-pro"
        )
        assert records.only().cost_usd == Decimal("1.5")

    def test_unknown_model_gives_no_cost(self, records: CapturedRecords) -> None:
        """A model without a price leaves cost None rather than guessing."""
        log_prompt_execution("t", True, 1.0, 10, 10, model="no-such-model")
        assert records.only().cost_usd is None

    def test_extra_keyword_fields(self, records: CapturedRecords) -> None:
        """Version, A/B group, error type and HTTP status are recorded."""
        log_prompt_execution(
            "t",
            False,
            1.0,
            template_version="v3",
            ab_test_group="B",
            error_type="ServerError",
            http_status=503,
        )
        r = records.only()
        assert (r.template_version, r.ab_test_group, r.error_type, r.http_status) == (
            "v3",
            "B",
            "ServerError",
            503,
        )


class TestReturnsNone:
    @pytest.mark.parametrize("key", ["", "   ", None, 42, b"bytes", ["k"]], ids=repr)
    def test_bad_template_key(self, records: CapturedRecords, key: Any) -> None:
        """A missing or non-string template key logs nothing and returns None."""
        assert log_prompt_execution(key, True, 1.0) is None
        assert records == []

    @pytest.mark.parametrize(
        "ms", [-1, -0.001, math.nan, math.inf, -math.inf, "100", None, True], ids=repr
    )
    def test_bad_response_time(self, records: CapturedRecords, ms: Any) -> None:
        """A negative or non-numeric response time logs nothing and returns None."""
        assert log_prompt_execution("t", True, ms) is None
        assert records == []

    def test_unconfigured(self) -> None:
        """Before configure() (and with no environment) the function returns None."""
        assert log_prompt_execution("t", True, 1.0) is None

    def test_sink_failure_does_not_change_the_answer(self) -> None:
        """A database that is down does not make the call fail (the record is spooled)."""

        class Down:
            name = "down"

            def write_batch(self, records: Any) -> None:
                raise ConnectionError("database unavailable")

            def close(self) -> None:
                pass

        vividly_trace.configure(sinks=[Down()], sync=True, max_retries=0)
        assert is_uuid(log_prompt_execution("t", True, 1.0))
        assert vividly_trace.stats()["sinks"]["down"]["spooled"] == 1


class TestBadOptionalValues:
    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"input_token_count": -5}, "input_token_count"),
            ({"input_token_count": "12"}, "input_token_count"),
            ({"input_token_count": 1.5}, "input_token_count"),
            ({"input_token_count": math.nan}, "input_token_count"),
            ({"output_token_count": True}, "output_token_count"),
            ({"output_token_count": object()}, "output_token_count"),
            ({"cost_usd": -1}, "cost_usd"),
            ({"cost_usd": math.nan}, "cost_usd"),
            ({"cost_usd": "lots"}, "cost_usd"),
            ({"cost_usd": True}, "cost_usd"),
        ],
        ids=repr,
    )
    def test_dropped_with_a_warning_record_kept(
        self,
        records: CapturedRecords,
        caplog: pytest.LogCaptureFixture,
        kwargs: dict[str, Any],
        field: str,
    ) -> None:
        """A bad optional value becomes None, a warning names it, and the record is kept."""
        caplog.set_level(logging.WARNING, logger="vividly_trace")
        eid = log_prompt_execution("t", True, 1.0, **kwargs)
        assert is_uuid(eid)
        r = records.only()
        assert getattr(r, field) is None
        assert r.total_token_count is None
        assert any(field in rec.getMessage() for rec in caplog.records)

    def test_float_counts_that_are_whole_are_accepted(self, records: CapturedRecords) -> None:
        """10.0 tokens is 10 tokens."""
        log_prompt_execution("t", True, 1.0, 10.0, 5.0)
        r = records.only()
        assert (r.input_token_count, r.output_token_count, r.total_token_count) == (10, 5, 15)

    def test_non_string_error_message_is_kept_as_text(self, records: CapturedRecords) -> None:
        """An exception object passed as error_message is recorded as text."""
        log_prompt_execution("t", False, 1.0, error_message=ValueError("bad"))
        assert "bad" in (records.only().error_message or "")

    def test_bad_http_status_dropped(self, records: CapturedRecords) -> None:
        """An HTTP status outside 100..599 is not recorded."""
        log_prompt_execution("t", False, 1.0, http_status=1234)
        assert records.only().http_status is None


class Hostile:
    """Raises from every dunder a logger might touch."""

    def __repr__(self) -> str:
        raise RuntimeError("repr")

    def __str__(self) -> str:
        raise RuntimeError("str")

    def __bool__(self) -> bool:
        raise RuntimeError("bool")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("eq")

    def __hash__(self) -> int:
        raise RuntimeError("hash")

    def __len__(self) -> int:
        raise RuntimeError("len")

    def __iter__(self) -> Any:
        raise RuntimeError("iter")

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(name)


class HostileKey(Hostile):
    """Hashable (so it can be a dict key), hostile otherwise."""

    def __hash__(self) -> int:
        return 1

    def __eq__(self, other: object) -> bool:
        return self is other


class TestNeverRaises:
    @pytest.mark.parametrize(
        ("name", "make"),
        [
            ("metadata", Hostile),
            ("metadata", lambda: {"k": Hostile()}),
            ("metadata", lambda: {HostileKey(): 1}),
            ("metadata", lambda: [1, 2, 3]),
            ("metadata", lambda: "just a string"),
            ("error_message", Hostile),
            ("cost_usd", Hostile),
            ("input_token_count", Hostile),
            ("model", Hostile),
            ("template_version", Hostile),
            ("ab_test_group", Hostile),
            ("error_type", Hostile),
            ("http_status", Hostile),
        ],
        ids=lambda v: v if isinstance(v, str) else "",
    )
    def test_hostile_optional_values_keep_the_record(
        self, records: CapturedRecords, name: str, make: Any
    ) -> None:
        """Hostile optional arguments never raise, and the record is still logged."""
        eid = log_prompt_execution("t", False, 1.0, **{name: make()})
        assert is_uuid(eid)
        r = records.only()
        json.dumps(r.to_dict(), allow_nan=False)

    @pytest.mark.parametrize(
        ("name", "make", "stored"),
        [
            ("input_token_count", lambda: EvilInt(3), 3),
            ("output_token_count", lambda: EvilFloat(2.0), 2),
            ("http_status", lambda: EvilInt(200), 200),
        ],
        ids=["EvilInt-input", "EvilFloat-output", "EvilInt-status"],
    )
    def test_numbers_whose_methods_raise_are_read_as_plain_numbers(
        self, records: CapturedRecords, name: str, make: Any, stored: int
    ) -> None:
        """An int or float subclass whose comparisons raise is read as the plain number it
        holds (its own methods are never called): the record keeps it."""
        eid = log_prompt_execution("t", True, 1.0, **{name: make()})
        assert is_uuid(eid)
        r = records.only()
        assert r.execution_id == eid
        assert getattr(r, name) == stored
        assert type(getattr(r, name)) is int

    @pytest.mark.parametrize(
        ("args", "success"),
        [
            (lambda: (Hostile(), True, 1.0), None),
            (lambda: ("t", Hostile(), 1.0), None),
            (lambda: ("t", True, Hostile()), None),
            (lambda: (Hostile(), Hostile(), Hostile()), None),
            (lambda: ("t", 1, 1.0), True),
            (lambda: ("t", None, 1.0), False),
            (lambda: ("t", [], 0), False),
        ],
        ids=["key", "success", "time", "all", "int_success", "none_success", "empty_success"],
    )
    def test_hostile_required_values_return_none_or_an_id(
        self, records: CapturedRecords, args: Any, success: bool | None
    ) -> None:
        """Required arguments never raise: a hostile one gives None and records nothing; a
        ``success`` that is not a bool but has a truth value gives an id, and that very
        record is written with the truth value."""
        eid = log_prompt_execution(*args())
        stats = vividly_trace.stats()
        assert stats["dropped"] == {}
        if success is None:
            assert eid is None
            assert records == []
            assert stats["enqueued"] == stats["written"] == 0
        else:
            assert is_uuid(eid)
            r = records.only()
            assert (r.execution_id, r.success) == (eid, success)
            assert stats["written"] == 1


class TestParent:
    def test_parent_id_inside_a_decorated_function(self, records: CapturedRecords) -> None:
        """Called inside a decorated call, the record names that call as its parent."""
        inner: list[str | None] = []

        @logged_prompt("outer")
        def outer() -> None:
            inner.append(log_prompt_execution("inner", True, 1.0))

        outer()
        by_key = {r.template_key: r for r in records}
        assert sorted(by_key) == ["inner", "outer"]
        assert by_key["inner"].execution_id == inner[0]
        assert by_key["inner"].parent_execution_id == by_key["outer"].execution_id
        assert by_key["outer"].parent_execution_id is None

    def test_parent_id_inside_a_with_block(self, records: CapturedRecords) -> None:
        """Inside ``with logged_prompt(...) as call`` the parent is that call."""
        with logged_prompt("outer") as call:
            log_prompt_execution("inner", True, 1.0)
        inner, outer = records
        assert (inner.template_key, outer.template_key) == ("inner", "outer")
        assert inner.parent_execution_id == call.execution_id == outer.execution_id

    def test_no_parent_outside(self, records: CapturedRecords) -> None:
        """Outside any decorated call there is no parent."""
        log_prompt_execution("t", True, 1.0)
        assert records.only().parent_execution_id is None
