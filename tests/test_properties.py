"""Property tests: hostile input never reaches the caller as an exception, and every call
still ends as a JSON-safe record (or as a counted drop).

Hostile means: recursive and cyclic structures, 10 MB strings, NaN and infinities, bytes,
objects whose ``__repr__`` / ``__str__`` / ``__eq__`` / ``__hash__`` / ``__bool__`` raise,
wrong types everywhere, responses whose attributes raise on access, exceptions that cannot
be printed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vividly_trace
from tests.hostile_objects import (
    Bag,
    Boom,
    EvilBaseException,
    EvilDict,
    EvilFloat,
    EvilInt,
    EvilList,
    EvilMapping,
    EvilStr,
    Hostile,
    HostileKey,
    RaisingAttrError,
    UnprintableError,
    WeirdCodeError,
    cyclic_dict,
    cyclic_list,
    deep,
    plainly_valid,
)
from tests.hostile_objects import RaisingResponse as _RaisingResponse
from vividly_trace import PromptExecution, log_prompt_execution, logged_prompt
from vividly_trace.sinks import MemorySink
from vividly_trace.testing import capture_records

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

BIG = "x" * 10_000_000  # 10 MB
BIG_KEY = "AIzaSy" + "k" * 10_000_000


def big() -> str:
    return BIG


def big_key() -> str:
    return BIG_KEY


def huge_int() -> int:
    return 10**5000  # beyond int->str conversion limits (4300 digits)


# -- strategies ---------------------------------------------------------------------------
hostile_objects = st.one_of(
    st.builds(Hostile),
    st.builds(HostileKey),
    st.builds(EvilStr, st.text(max_size=5)),
    st.builds(EvilInt, st.integers()),
    st.builds(EvilFloat, st.floats()),
    st.builds(EvilDict, st.dictionaries(st.text(max_size=3), st.integers(), max_size=3)),
    st.builds(EvilMapping),
    st.builds(EvilList, st.lists(st.integers(), max_size=3)),
    st.builds(cyclic_dict),
    st.builds(cyclic_list),
    st.builds(deep),
    st.builds(huge_int),
    st.builds(lambda: -(10**400)),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e308]),
    st.just(object()),
    st.just(type),
    st.just(print),
    st.just(Ellipsis),
    st.just(NotImplemented),
)
hostile_atoms = st.one_of(hostile_objects, st.builds(big), st.builds(big_key))
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
    st.binary(max_size=20),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.datetimes(),
    st.complex_numbers(allow_nan=True),
    hostile_atoms,
)
keys = st.one_of(
    st.text(max_size=20),
    st.sampled_from(
        ["api_key", "Authorization", "password", "token", "secret", "max_tokens", "", " "]
    ),
    st.integers(),
    st.binary(max_size=5),
    st.none(),
    st.tuples(st.integers(), st.text(max_size=3)),
    st.builds(HostileKey),
    st.builds(EvilStr, st.text(max_size=5)),
    st.builds(big),
    st.floats(allow_nan=True),
)
values = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.tuples(children, children),
        st.dictionaries(keys, children, max_size=4),
        st.frozensets(st.one_of(st.integers(), st.text(max_size=3)), max_size=3),
    ),
    max_leaves=12,
)
metadata = st.one_of(st.dictionaries(keys, values, max_size=6), values)
wrong_type = st.one_of(
    leaves,
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(), st.integers(), max_size=2),
)


# -- hostile responses --------------------------------------------------------------------
USAGE_FIELDS = [
    "prompt_token_count",
    "candidates_token_count",
    "total_token_count",
    "thoughts_token_count",
    "cached_content_token_count",
    "tool_use_prompt_token_count",
    "prompt_tokens_details",
    "cache_tokens_details",
]
#: Wrong but well-behaved token counts: any int (negative, huge), NaN, inf, text, bytes...
plain_counts = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**12),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(["12", "-3", "1e3", "0x10", "9" * 5000]),
    st.binary(max_size=4),
    st.lists(st.integers(), max_size=2),
    st.decimals(allow_nan=True),
)
#: ... plus objects whose dunders raise.
count_values = st.one_of(plain_counts, hostile_atoms)


class RaisingUsage:
    """A ``usage_metadata`` whose every field raises on access."""

    def __getattribute__(self, name: str) -> Any:
        raise Boom(name)


class RaisingResponse(_RaisingResponse):
    """Looks like a Gemini response, but ``usage_metadata`` raises on access.

    Unlike the shared one, ``candidates`` is empty rather than raising: these tests keep the
    failing usage apart from the (well-behaved) candidates.
    """

    candidates = ()  # type: ignore[assignment]


def _response(usage: dict[str, Any], finish: Any, block: Any, model: Any, usage_kind: str) -> Any:
    meta: Any = {"bag": Bag(usage), "raising": RaisingUsage(), "none": None, "hostile": Hostile()}[
        usage_kind
    ]
    candidate = Bag({"finish_reason": finish})
    return Bag(
        {
            "usage_metadata": meta,
            "candidates": [candidate],
            "prompt_feedback": Bag({"block_reason": block}),
            "model_version": model,
        }
    )


gemini_like = st.builds(
    _response,
    st.dictionaries(st.sampled_from(USAGE_FIELDS), count_values, max_size=8),
    st.one_of(
        st.none(), st.text(max_size=10), st.sampled_from(["SAFETY", "STOP"]), hostile_objects
    ),
    # (A 10 MB block reason has its own test below.)
    st.one_of(st.none(), st.text(max_size=10), hostile_objects),
    st.one_of(st.none(), st.text(max_size=10), st.builds(big), hostile_atoms),
    st.sampled_from(["bag", "raising", "none", "hostile"]),
)
usage_dicts = st.dictionaries(
    st.sampled_from(
        [
            "input_tokens",
            "output_tokens",
            "cached_tokens",
            "thinking_tokens",
            "prompt_tokens",
            "completion_tokens",
            "usage",
            "usage_metadata",
            "usageMetadata",
            "promptTokenCount",
            "candidatesTokenCount",
            "totalTokenCount",
            "promptTokensDetails",
            "modelVersion",
        ]
    ),
    st.one_of(count_values, st.dictionaries(st.text(max_size=5), count_values, max_size=3)),
    max_size=6,
)
responses = st.one_of(
    gemini_like,
    usage_dicts,
    st.builds(RaisingResponse),
    st.dictionaries(keys, values, max_size=4),
    values,
)


#: Stream chunks that do not raise on attribute access (see the parametrised test for those).
plain_chunks = st.one_of(
    st.builds(
        _response,
        st.dictionaries(st.sampled_from(USAGE_FIELDS), plain_counts, max_size=8),
        st.one_of(st.none(), st.text(max_size=10)),
        st.one_of(st.none(), st.text(max_size=10)),
        st.one_of(st.none(), st.text(max_size=10), st.builds(big)),
        st.sampled_from(["bag", "none"]),
    ),
    usage_dicts,
    st.dictionaries(st.text(max_size=5), leaves, max_size=4),
    st.text(max_size=10),
    st.integers(),
    st.none(),
    st.binary(max_size=10),
)


# -- hostile exceptions -------------------------------------------------------------------
exceptions = st.one_of(
    st.builds(UnprintableError),
    st.builds(WeirdCodeError, count_values, st.one_of(st.text(), st.builds(big), hostile_atoms)),
    st.builds(RaisingAttrError),
    st.builds(ValueError, st.one_of(st.text(), st.builds(big_key))),
    st.builds(KeyError, st.builds(HostileKey)),
    st.builds(EvilBaseException),
)


def run_coro(coro: Any) -> Any:
    """Run a coroutine that never suspends, without an event loop: asyncio.run() itself
    cannot cope with an exception whose ``__repr__`` raises."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise AssertionError("the coroutine suspended")


# -- checks -------------------------------------------------------------------------------
def check_records(records: Sequence[PromptExecution], calls: int) -> None:
    """Exactly one record per call, none dropped (call it while the set-up that wrote them
    is active); each record's metadata is strict JSON, its template key and error message
    plain text, the message at most 1000 characters."""
    assert vividly_trace.flush(5)
    stats = vividly_trace.stats()
    assert stats["dropped"] == {}, stats
    assert len(records) == calls, stats
    assert stats["written"] == calls, stats
    for r in records:
        assert type(r.metadata) is dict
        json.dumps(r.metadata, allow_nan=False)
        assert type(r.template_key) is str
        assert r.error_message is None or (
            type(r.error_message) is str and len(r.error_message) <= 1000
        )


# -- the properties -----------------------------------------------------------------------
class TestHostileMetadata:
    @SETTINGS
    @given(meta=metadata)
    def test_log_prompt_execution_metadata(self, meta: Any) -> None:
        """Any metadata: log_prompt_execution returns an id and the record is JSON-safe."""
        with capture_records() as records:
            eid = log_prompt_execution("t", True, 1.0, metadata=meta)
            check_records(records, 1)
        assert records.only().execution_id == eid

    @SETTINGS
    @given(meta=metadata, extra=st.dictionaries(keys, values, max_size=3))
    def test_with_block_metadata(self, meta: Any, extra: dict[Any, Any]) -> None:
        """Anything put into call.metadata gives a JSON-safe record."""
        with capture_records() as records:
            with logged_prompt("t") as call:
                call.metadata["m"] = meta
                call.metadata.update(extra)
            check_records(records, 1)

    @SETTINGS
    @given(meta=st.dictionaries(st.text(max_size=10), values, max_size=4))
    def test_background_mode_metadata(self, meta: dict[str, Any]) -> None:
        """The same holds when records are built by a background worker."""
        sink = MemorySink()
        vividly_trace.configure(sinks=[sink], flush_interval=0.01)

        @logged_prompt("bg", metadata=meta)
        def f() -> int:
            return 1

        assert f() == 1
        assert vividly_trace.flush(5)  # sink.records is a snapshot: take it once written
        check_records(sink.records, 1)


class TestHostileArguments:
    @SETTINGS
    @given(
        key=st.one_of(st.text(), wrong_type, st.builds(big)),
        version=st.one_of(st.none(), st.text(), wrong_type),
        group=st.one_of(st.none(), st.text(), wrong_type),
        success=st.one_of(st.booleans(), wrong_type),
        ms=st.one_of(st.floats(allow_nan=True), st.integers(), wrong_type),
        tokens=st.tuples(count_values, count_values),
        cost=st.one_of(st.none(), st.floats(allow_nan=True), st.decimals(), st.text(), wrong_type),
        error=st.one_of(st.none(), st.text(), st.builds(big_key), wrong_type),
        model=st.one_of(st.none(), st.sampled_from(["gemini-2.5-flash", "nope"]), wrong_type),
        status=st.one_of(st.none(), st.integers(), wrong_type),
    )
    def test_log_prompt_execution_never_raises(
        self,
        key: Any,
        version: Any,
        group: Any,
        success: Any,
        ms: Any,
        tokens: tuple[Any, Any],
        cost: Any,
        error: Any,
        model: Any,
        status: Any,
    ) -> None:
        """Whatever it is given, log_prompt_execution returns an id (always when the required
        arguments are plainly valid) whose record is written, or None and records nothing."""
        with capture_records() as records:
            eid = log_prompt_execution(
                key,
                success,
                ms,
                tokens[0],
                tokens[1],
                cost,
                error,
                None,
                template_version=version,
                ab_test_group=group,
                model=model,
                http_status=status,
            )
            check_records(records, 1 if eid is not None else 0)
        if plainly_valid(key, success, ms):
            assert eid is not None
        if eid is not None:
            assert records.only().execution_id == eid
            json.dumps(records.only().to_dict(), allow_nan=False)

    @SETTINGS
    @given(
        args=st.lists(plain_counts, max_size=2),
        kwargs=st.dictionaries(
            st.sampled_from(
                [
                    "input_tokens",
                    "output_tokens",
                    "cached_tokens",
                    "thinking_tokens",
                    "tool_use_tokens",
                    "audio_input_tokens",
                ]
            ),
            plain_counts,
            max_size=6,
        ),
        model=st.one_of(st.none(), st.text(max_size=20), hostile_atoms),
        response=responses,
    )
    def test_with_block_handle_calls(
        self, args: list[Any], kwargs: dict[str, Any], model: Any, response: Any
    ) -> None:
        """set_usage / set_model / record_response with hostile values never raise."""
        with capture_records() as records:
            with logged_prompt("t", model="gemini-2.5-flash") as call:
                call.record_response(response)
                call.set_usage(*args)
                call.set_usage(**kwargs)
                call.set_model(model)
            check_records(records, 1)

    @pytest.mark.parametrize(
        "make",
        [lambda: EvilStr("not a number"), lambda: EvilInt(3), lambda: EvilFloat(1.0)],
        ids=["EvilStr", "EvilInt", "EvilFloat"],
    )
    def test_set_usage_with_values_whose_dunders_raise(self, make: Any) -> None:
        """set_usage() with a value whose dunders raise does not raise."""
        with capture_records() as records:
            with logged_prompt("t") as call:
                call.set_usage(make(), make(), cached_tokens=make())
            check_records(records, 1)


class TestHostileResponses:
    @SETTINGS
    @given(response=responses)
    def test_sync_function_returns_the_same_object(self, response: Any) -> None:
        """A decorated function's return value passes through untouched, whatever it is."""
        with capture_records() as records:

            @logged_prompt("t", model="gemini-2.5-flash")
            def f() -> Any:
                return response

            assert f() is response
            check_records(records, 1)

    @SETTINGS
    @given(response=responses)
    def test_async_function_returns_the_same_object(self, response: Any) -> None:
        """The same for an async function."""
        with capture_records() as records:

            @logged_prompt("t")
            async def f() -> Any:
                return response

            assert run_coro(f()) is response
            check_records(records, 1)

    @SETTINGS
    @given(chunks=st.lists(plain_chunks, max_size=4))
    def test_generator_chunks_pass_through(self, chunks: list[Any]) -> None:
        """A decorated generator yields exactly its chunks, whatever they are."""
        with capture_records() as records:

            @logged_prompt("t")
            def stream() -> Iterator[Any]:
                yield from chunks

            got = list(stream())
            assert len(got) == len(chunks)
            assert all(a is b for a, b in zip(got, chunks, strict=True))
            check_records(records, 1)

    @SETTINGS
    @given(chunks=st.lists(plain_chunks, max_size=4))
    def test_async_generator_chunks_pass_through(self, chunks: list[Any]) -> None:
        """The same for an async generator."""
        with capture_records() as records:

            @logged_prompt("t")
            async def stream() -> Any:
                for c in chunks:
                    yield c

            async def consume() -> list[Any]:
                return [c async for c in stream()]

            got = run_coro(consume())
            assert all(a is b for a, b in zip(got, chunks, strict=True))
            check_records(records, 1)

    @pytest.mark.parametrize(
        "make",
        [
            RaisingResponse,
            Hostile,
            lambda: _response({}, None, None, None, "raising"),
            lambda: _response({}, None, None, None, "hostile"),
        ],
        ids=["raising-usage_metadata", "hostile-object", "raising-fields", "hostile-usage"],
    )
    def test_generator_chunk_raising_on_attribute_access(self, make: Any) -> None:
        """A chunk that raises on attribute access still passes through the stream."""
        with capture_records() as records:
            chunk = make()

            @logged_prompt("t")
            def stream() -> Iterator[Any]:
                yield chunk

            got = list(stream())
            assert len(got) == 1
            assert got[0] is chunk
            check_records(records, 1)


class TestOneBadValue:
    @pytest.mark.parametrize(
        "make",
        [
            huge_int,
            lambda: EvilInt(3),
            lambda: EvilFloat(2.0),
            lambda: EvilDict({"a": 1}),
            EvilMapping,
            lambda: EvilList([1, 2]),
            lambda: [1, EvilInt(2)],
        ],
        ids=["10**5000", "EvilInt", "EvilFloat", "EvilDict", "EvilMapping", "EvilList", "nested"],
    )
    def test_one_bad_value_does_not_take_the_rest_of_the_metadata(self, make: Any) -> None:
        """A value that cannot be converted is replaced on its own; its neighbours stay."""
        with capture_records() as records:
            log_prompt_execution("t", True, 1.0, metadata={"user": "u1", "n": 3, "bad": make()})
            check_records(records, 1)
            meta = records.only().metadata
            assert meta["user"] == "u1"
            assert meta["n"] == 3
            assert "bad" in meta

    def test_a_huge_int_is_described_not_dropped(self) -> None:
        """An int too large for JSON text becomes a short description."""
        with capture_records() as records:
            log_prompt_execution("t", True, 1.0, metadata={"big": 10**5000, "ok": 2**64})
            assert records.only().metadata == {"big": "<int of 16610 bits>", "ok": 2**64}


class TestLongReasons:
    def test_a_10mb_block_reason_is_cut(self) -> None:
        """A blocked response with a 10 MB block reason gives an error message <= 1000."""
        with capture_records() as records:

            @logged_prompt("t")
            def f() -> Any:
                return _response({}, None, BIG, None, "none")

            f()
            check_records(records, 1)


class TestHostileExceptions:
    @SETTINGS
    @given(exc=exceptions)
    def test_the_same_exception_reaches_the_caller(self, exc: BaseException) -> None:
        """A hostile exception propagates as the very same object; the record says failed."""
        with capture_records() as records:

            @logged_prompt("t")
            def f() -> None:
                raise exc

            with pytest.raises(type(exc)) as info:
                f()
            assert info.value is exc
            check_records(records, 1)
            assert [r.success for r in records] == [False]

    @SETTINGS
    @given(exc=exceptions)
    def test_the_same_exception_leaves_a_with_block(self, exc: BaseException) -> None:
        """The same through ``with logged_prompt(...)``."""
        with capture_records() as records:
            with pytest.raises(type(exc)) as info, logged_prompt("t"):
                raise exc
            assert info.value is exc
            check_records(records, 1)

    @SETTINGS
    @given(exc=exceptions)
    def test_the_same_exception_leaves_an_async_function(self, exc: BaseException) -> None:
        """The same for an async function."""
        with capture_records() as records:

            @logged_prompt("t")
            async def f() -> None:
                raise exc

            with pytest.raises(type(exc)) as info:
                run_coro(f())
            assert info.value is exc
            check_records(records, 1)

    @SETTINGS
    @given(exc=exceptions, before=st.integers(min_value=0, max_value=2))
    def test_the_same_exception_leaves_a_generator(self, exc: BaseException, before: int) -> None:
        """An exception in the middle of a stream reaches the consumer as the same object."""
        with capture_records() as records:

            @logged_prompt("t")
            def stream() -> Iterator[int]:
                yield from range(before)
                raise exc

            got: list[int] = []
            with pytest.raises(type(exc)) as info:
                for chunk in stream():
                    got.append(chunk)
            assert info.value is exc
            assert got == list(range(before))
            check_records(records, 1)
            assert [r.success for r in records] == [False]


#: Wrong types whose dunders behave (decoration-time arguments are configuration: an
#: object whose __repr__ raises may make ConfigurationError's message fail there).
tame_wrong = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.binary(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.just(object()),
)


class TestHostileDecoratorArguments:
    @SETTINGS
    @given(
        key=st.one_of(st.text(max_size=30), tame_wrong),
        version=st.one_of(st.text(max_size=10), tame_wrong),
        group=st.one_of(st.text(max_size=10), tame_wrong),
        model=st.one_of(st.text(max_size=10), tame_wrong),
        meta=st.one_of(st.dictionaries(keys, values, max_size=3), tame_wrong),
    )
    def test_bad_arguments_fail_at_decoration_or_record(
        self, key: Any, version: Any, group: Any, model: Any, meta: Any
    ) -> None:
        """logged_prompt(...) either refuses its arguments with ConfigurationError right
        away, or every call through it records."""
        with capture_records() as records:
            try:
                deco = logged_prompt(
                    key, version=version, ab_group=group, model=model, metadata=meta
                )
            except vividly_trace.ConfigurationError:
                return

            @deco
            def f() -> int:
                return 7

            assert f() == 7
            check_records(records, 1)
