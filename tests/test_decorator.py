"""The decorator's contract: transparency, kinds of callables, parents, context manager."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import wrapt

import vividly_trace
from vividly_trace import ConfigurationError, logged_prompt
from vividly_trace.sinks import MemorySink
from vividly_trace.testing import CapturedRecords, capture_records


def _instance_spy(seen: list[Any]) -> Any:
    """A wrapt decorator noting the ``instance`` wrapt hands it on each call."""

    @wrapt.decorator
    def spy(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        seen.append(instance)
        return wrapped(*args, **kwargs)

    return spy


@pytest.fixture(name="records")
def _records() -> Iterator[CapturedRecords]:
    """The records of the calls the test makes."""
    with capture_records() as records:
        yield records


class TestTransparency:
    """A decorated function looks and behaves like the original."""

    def test_metadata_of_function(self) -> None:
        """Signature, name, doc and kind checks match the original."""

        def plain(a: int, b: str = "x", *, c: float = 1.0) -> str:
            """Plain doc."""
            return b

        async def coro(a: int) -> int:
            """Coro doc."""
            return a

        def gen(n: int) -> Any:
            yield n

        async def agen(n: int) -> Any:
            yield n

        for fn in (plain, coro, gen, agen):
            wrapped = logged_prompt("k")(fn)
            assert inspect.signature(wrapped) == inspect.signature(fn)
            assert wrapped.__name__ == fn.__name__
            assert wrapped.__doc__ == fn.__doc__
            assert inspect.iscoroutinefunction(wrapped) == inspect.iscoroutinefunction(fn)
            assert inspect.isasyncgenfunction(wrapped) == inspect.isasyncgenfunction(fn)
            assert inspect.isgeneratorfunction(wrapped) == inspect.isgeneratorfunction(fn)

    def test_return_value_unchanged(self, records: CapturedRecords) -> None:
        """The very same object is returned."""
        sentinel = object()
        assert logged_prompt("k")(lambda: sentinel)() is sentinel
        assert records.only().success is True

    def test_exception_unchanged(self, records: CapturedRecords) -> None:
        """The same exception object propagates with its traceback; the record is failed."""
        err = ValueError("x" * 5000)

        @logged_prompt("k")
        def boom() -> None:
            raise err

        with pytest.raises(ValueError) as info:
            boom()
        assert info.value is err
        assert info.traceback[-1].name == "boom"
        rec = records.only()
        assert rec.success is False
        assert rec.error_type == "ValueError"
        assert rec.error_message == "x" * 1000

    def test_base_exceptions_propagate(self, records: CapturedRecords) -> None:
        """KeyboardInterrupt is recorded as a failure and re-raised."""

        @logged_prompt("k")
        def interrupted() -> None:
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            interrupted()
        rec = records.only()
        assert rec.error_type == "KeyboardInterrupt"

    def test_bad_decorator_arguments(self) -> None:
        """Bad arguments fail at decoration time with a clear error."""
        with pytest.raises(ConfigurationError, match="template_key"):
            logged_prompt("")
        with pytest.raises(ConfigurationError, match="template_key"):
            logged_prompt(None)  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="metadata"):
            logged_prompt("k", metadata=["a"])  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="decorates functions"):
            logged_prompt("k")(42)  # type: ignore[arg-type]

    def test_unconfigured_passthrough(self, caplog: pytest.LogCaptureFixture) -> None:
        """Before configure(), calls run untouched and one warning says records are discarded."""
        caplog.set_level(logging.WARNING, logger="vividly_trace")

        @logged_prompt("k")
        def f(x: int) -> int:
            return x * 2

        assert [f(i) for i in range(5)] == [0, 2, 4, 6, 8]
        warnings = [r for r in caplog.records if "not configured" in r.getMessage()]
        assert len(warnings) == 1


class TestKinds:
    """Methods, classmethods, staticmethods, generators."""

    def test_methods(self, records: CapturedRecords) -> None:
        """self and cls are passed through; each call is one record."""

        class Service:
            factor = 3

            def __init__(self) -> None:
                self.base = 10

            @logged_prompt("method")
            def method(self, x: int) -> int:
                return self.base + x

            @logged_prompt("classmethod")
            @classmethod
            def cm(cls, x: int) -> int:
                return cls.factor * x

            @classmethod
            @logged_prompt("classmethod_inner")
            def cm2(cls, x: int) -> int:
                return cls.factor * x

            @logged_prompt("staticmethod")
            @staticmethod
            def sm(x: int) -> int:
                return x - 1

        s = Service()
        assert s.method(1) == 11
        assert Service.cm(2) == 6
        assert s.cm(2) == 6
        assert Service.cm2(3) == 9
        assert Service.sm(5) == 4
        assert s.sm(5) == 4
        keys = sorted(r.template_key for r in records)
        assert keys == sorted(
            [
                "method",
                "classmethod",
                "classmethod",
                "classmethod_inner",
                "staticmethod",
                "staticmethod",
            ]
        )

    def test_instance_seen_by_wrapt(self, records: CapturedRecords) -> None:
        """wrapt's binding is kept: plain functions get no instance, methods (also called
        through the class) get theirs; the user's function is not changed (no ``__self__``
        is written onto it, which frameworks would read as "bound method")."""
        seen: list[Any] = []
        spy = _instance_spy(seen)

        def plain(x: int) -> int:
            return x

        class Service:
            @spy
            @logged_prompt("m")
            def method(self, x: int) -> int:
                return x * 2

        def tagged() -> str:
            return "t"

        tagged.__self__ = "mine"  # type: ignore[attr-defined]
        outer = spy(logged_prompt("p")(plain))
        assert outer(4) == 4
        s = Service()
        assert s.method(2) == 4
        assert Service.method(s, 3) == 6
        assert logged_prompt("t")(tagged)() == "t"
        assert tagged.__self__ == "mine"  # type: ignore[attr-defined]
        assert not hasattr(plain, "__self__")
        assert "__self__" not in plain.__dict__
        assert not inspect.ismethod(plain)
        assert seen == [None, s, s]
        assert [r.template_key for r in records] == ["p", "m", "m", "t"]

    @pytest.mark.parametrize("implementation", ["C extension", "pure Python"])
    def test_plain_function_wrapper_skips_wrapts_self_lookup(
        self,
        records: CapturedRecords,
        implementation: str,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A decorated plain function's wrapper is made with an instance of its own, so a
        direct call skips wrapt's failing ``__self__`` lookup (its cost: see BENCHMARKS.md);
        binding still works as wrapt's: methods through an instance, through the class, a
        wrapper reused in a subclass, and a stacked decorator that reads ``instance``.
        Both of wrapt's implementations take the re-initialisation."""
        if implementation == "pure Python":
            monkeypatch.setattr(wrapt, "FunctionWrapper", wrapt.wrappers.FunctionWrapper)
        seen: list[Any] = []
        spy = _instance_spy(seen)

        def plain(x: int) -> int:
            return x + 1

        class Service:
            @logged_prompt("m")
            def method(self, x: int) -> tuple[Any, int]:
                return self, x

        class Sub(Service):
            again = Service.method

        decorated = logged_prompt("p")(plain)
        assert type(decorated) is wrapt.FunctionWrapper
        assert decorated._self_instance is not None  # the lookup's guard in wrapt's __call__
        assert decorated(1) == 2
        assert spy(decorated)(2) == 3
        s, sub = Service(), Sub()
        assert s.method(3) == (s, 3)
        assert Service.method(s, 4) == (s, 4)
        assert sub.again(5) == (sub, 5)
        assert sub.method(6) == (sub, 6)
        assert seen == [None]
        assert [r.template_key for r in records] == ["p", "p", "m", "m", "m", "m"]

    def test_generator_send_and_return(self, records: CapturedRecords) -> None:
        """A generator's send() values and return value pass through."""

        @logged_prompt("gen")
        def echo() -> Any:
            got = yield "first"
            got2 = yield f"got {got}"
            return f"done {got2}"

        g = echo()
        assert next(g) == "first"
        assert g.send("a") == "got a"
        with pytest.raises(StopIteration) as stop:
            g.send("b")
        assert stop.value.value == "done b"
        rec = records.only()
        assert rec.streamed and rec.success and not rec.stream_closed_early

    def test_generator_throw(self, records: CapturedRecords) -> None:
        """An exception thrown into the stream reaches the inner generator."""

        @logged_prompt("gen")
        def gen() -> Any:
            try:
                yield 1
            except KeyError:
                yield "caught"

        g = gen()
        next(g)
        assert g.throw(KeyError("k")) == "caught"
        g.close()
        rec = records.only()
        assert rec.success is True

    def test_generator_not_started(self, records: CapturedRecords) -> None:
        """A generator that is never iterated makes no record."""

        @logged_prompt("gen")
        def gen() -> Any:
            yield 1

        gen()
        assert records == []

    async def test_async_generator_close_early(self, records: CapturedRecords) -> None:
        """An async stream closed early is recorded as closed early."""

        @logged_prompt("agen")
        async def agen() -> Any:
            for i in range(10):
                yield i

        it = agen()
        assert await it.__anext__() == 0
        await it.aclose()
        rec = records.only()
        assert rec.stream_closed_early is True
        assert rec.time_to_first_chunk_ms is not None

    async def test_async_generator_error(self, records: CapturedRecords) -> None:
        """An error inside an async stream propagates unchanged."""
        err = RuntimeError("mid-stream")

        @logged_prompt("agen")
        async def agen() -> Any:
            yield 1
            raise err

        with pytest.raises(RuntimeError) as info:
            async for _ in agen():
                pass
        assert info.value is err
        rec = records.only()
        assert (rec.success, rec.error_type) == (False, "RuntimeError")

    async def test_cancelled(self, records: CapturedRecords) -> None:
        """A cancelled async call is recorded as failed with CancelledError, and re-raised."""
        started = asyncio.Event()

        @logged_prompt("slow")
        async def slow() -> None:
            started.set()
            await asyncio.sleep(30)

        task = asyncio.create_task(slow())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        rec = records.only()
        assert rec.error_type == "CancelledError"


class TestParents:
    """Nested calls record the outer call's execution id."""

    def test_nested_sync(self, records: CapturedRecords) -> None:
        """Inner decorated calls and with-blocks point at the outer call."""

        @logged_prompt("inner")
        def inner() -> None:
            pass

        @logged_prompt("outer")
        def outer() -> None:
            inner()
            with logged_prompt("block"):
                inner()

        outer()
        inner()
        by_key: dict[str, list[Any]] = {}
        for r in records:
            by_key.setdefault(r.template_key, []).append(r)
        [out] = by_key["outer"]
        [block] = by_key["block"]
        assert out.parent_execution_id is None
        assert block.parent_execution_id == out.execution_id
        parents = sorted(str(r.parent_execution_id) for r in by_key["inner"])
        assert parents == sorted([out.execution_id, block.execution_id, "None"])

    async def test_asyncio_tasks(self, records: CapturedRecords) -> None:
        """1000 concurrent tasks created inside an outer call record it as their parent."""

        @logged_prompt("child")
        async def child(i: int) -> int:
            await asyncio.sleep(0)
            return i

        @logged_prompt("parent")
        async def parent(base: int) -> list[int]:
            tasks = [asyncio.create_task(child(base + i)) for i in range(100)]
            return await asyncio.gather(*tasks)

        results = await asyncio.gather(*(parent(j * 100) for j in range(10)))
        assert sorted(x for r in results for x in r) == list(range(1000))
        parents = {r.execution_id for r in records if r.template_key == "parent"}
        children = [r for r in records if r.template_key == "child"]
        assert len(parents) == 10
        assert len(children) == 1000
        assert all(c.parent_execution_id in parents for c in children)
        counts: dict[str | None, int] = {}
        for c in children:
            counts[c.parent_execution_id] = counts.get(c.parent_execution_id, 0) + 1
        assert sorted(counts.values()) == [100] * 10

    def test_threads(self, records: CapturedRecords) -> None:
        """16 threads x 1000 calls give exactly 16000 records with unique ids."""

        @logged_prompt("threaded")
        def work(i: int) -> int:
            return i

        def run() -> None:
            for i in range(1000):
                work(i)

        threads = [threading.Thread(target=run) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(records) == 16000
        assert len({r.execution_id for r in records}) == 16000
        assert vividly_trace.stats()["dropped"] == {}


class TestCallHandle:
    """The handle yielded by the with-block."""

    def test_handle_api(self, records: CapturedRecords) -> None:
        """set_usage, set_model and metadata shape the record; the id is known on entry."""
        with logged_prompt("k", metadata={"service": "nlu", "api_key": "s3cret"}) as call:
            entry_id = call.execution_id
            call.set_usage(
                input_tokens=1000, output_tokens=100, cached_tokens=400, thinking_tokens=50
            )
            call.set_model("models/gemini-2.5-flash-001")
            call.metadata["user"] = "u1"
        rec = records.only()
        assert rec.execution_id == entry_id
        assert rec.model == "models/gemini-2.5-flash-001"
        assert (rec.input_token_count, rec.output_token_count, rec.total_token_count) == (
            1000,
            150,
            1150,
        )
        assert rec.cached_token_count == 400
        assert rec.metadata == {"service": "nlu", "api_key": "[REDACTED]", "user": "u1"}
        from decimal import Decimal

        # (600 x 0.30 + 400 x 0.03 + 150 x 2.50) / 1M
        assert rec.cost_usd == Decimal("0.000567")

    def test_set_usage_cached_audio(self, records: CapturedRecords) -> None:
        """cached_audio_tokens= is recorded and billed at the cached-audio rate."""
        with logged_prompt("voice", model="gemini-2.5-flash") as call:
            call.set_usage(
                1000, 10, cached_tokens=600, audio_input_tokens=300, cached_audio_tokens=200
            )
        with logged_prompt("voice", model="gemini-2.5-flash") as call:
            call.set_usage(1000, 10, cached_tokens=600, audio_input_tokens=300)
        audio, text = records
        assert (audio.cached_token_count, audio.audio_input_token_count) == (600, 300)
        assert audio.cached_audio_token_count == 200
        assert text.cached_audio_token_count is None
        from decimal import Decimal

        # gemini-2.5-flash per 1M: input 0.30, audio 1.00, cached 0.03, cached audio 0.10,
        # output 2.50. 300 plain, 100 uncached audio, 400 cached text, 200 cached audio:
        assert (
            audio.cost_usd
            == (
                300 * Decimal("0.30")
                + 100 * Decimal("1.00")
                + 400 * Decimal("0.03")
                + 200 * Decimal("0.10")
                + 10 * Decimal("2.50")
            )
            / Decimal(1_000_000)
            == Decimal("0.000247")
        )
        # Without the count, the cached part is text and all 300 audio tokens are uncached:
        assert (
            text.cost_usd
            == (
                100 * Decimal("0.30")
                + 300 * Decimal("1.00")
                + 600 * Decimal("0.03")
                + 10 * Decimal("2.50")
            )
            / Decimal(1_000_000)
            == Decimal("0.000373")
        )

    def test_ids_time_ordered(self, records: CapturedRecords) -> None:
        """Execution ids are UUIDv7 and sort in creation order."""
        import uuid

        ids = []
        for _ in range(50):
            with logged_prompt("k") as call:
                ids.append(call.execution_id)
        assert ids == sorted(ids)
        assert all(uuid.UUID(i).version == 7 for i in ids)
        assert [r.execution_id for r in records] == ids

    def test_record_response_dict(self, records: CapturedRecords) -> None:
        """A plain usage dict is accepted as a response."""
        with logged_prompt("k", model="gemini-2.0-flash") as call:
            call.record_response({"input_tokens": 10, "output_tokens": 20})
        rec = records.only()
        assert rec.total_token_count == 30
        from decimal import Decimal

        assert rec.cost_usd == (Decimal(10) * Decimal("0.10") + Decimal(20) * Decimal("0.40")) / (
            Decimal(1_000_000)
        )

    def test_reusable_object(self, records: CapturedRecords) -> None:
        """One logged_prompt object serves nested and repeated with-blocks."""
        lp = logged_prompt("shared")
        with lp as outer, lp as inner:
            assert inner.execution_id != outer.execution_id
        with lp:
            pass
        assert len(records) == 3
        inner_rec = next(r for r in records if r.parent_execution_id is not None)
        assert inner_rec.parent_execution_id == outer.execution_id


def test_decorating_at_import_is_late_bound() -> None:
    """A function decorated before configure() records once configured."""

    @logged_prompt("early")
    def f() -> int:
        return 1

    f()
    sink = MemorySink()
    vividly_trace.configure(sinks=[sink], sync=True, spool_dir=False)
    f()
    assert [r.template_key for r in sink.records] == ["early"]
