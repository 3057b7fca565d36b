"""Hostile input through every public entry point: nothing but the caller's own exception
(or ``ConfigurationError`` at configuration time) may come out, and every call still ends
as a JSON-safe record in every sink (or as a counted drop).

The cases come from a seeded generator (the seed is in RELIABILITY.md, so any failure can
be replayed): wrong types everywhere, objects whose dunders raise, cycles, deep nesting,
NaN, huge ints, 1 MB strings, NUL and lone surrogates, SQL and format-string payloads,
secrets in messages and metadata; responses of every supported shape (google-genai objects
built with ``model_validate`` and broken ones built with ``model_construct``, the old
client's protos and wrappers, REST and usage dicts, duck-typed objects) and junk.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import enum
import json
import math
import os
import random
import sqlite3
import time
import traceback
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from types import AsyncGeneratorType, GeneratorType
from typing import Any

import pytest

import vividly_trace
from tests.hostile_objects import (
    Bag,
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
    RaisingResponse,
    UnprintableError,
    WeirdCodeError,
    _boom,
    cyclic_dict,
    cyclic_list,
    deep,
    plainly_valid,
)
from tests.reliability.reliability_helpers import LONG, SHORT, VERSIONS, SecretError, secret_text
from vividly_trace import (
    ConfigurationError,
    PricingTable,
    calculate_gemini_cost,
    choose_variant,
    json_safe,
    log_prompt_execution,
    logged_prompt,
    register_extractor,
)
from vividly_trace.sinks import JSONLinesSink, MemorySink, SQLSink
from vividly_trace.usage import ResponseInfo, Usage, unregister_extractor

pytestmark = pytest.mark.reliability
pytest.importorskip("google.genai")  # responses are built with the real client's classes

#: Cases per entry-point family. The long version runs >= 10,000 in all.
CASES = {
    SHORT: {
        "decorator": 1000,
        "with_block": 700,
        "log_prompt_execution": 700,
        "pricing": 400,
        "configure": 400,
        "misc": 300,
    },
    LONG: {
        "decorator": 6000,
        "with_block": 4000,
        "log_prompt_execution": 4000,
        "pricing": 2500,
        "configure": 2500,
        "misc": 2000,
    },
}
#: Replay or explore with VIVIDLY_TRACE_HOSTILE_SEED=N.
SEEDS = {SHORT: 20261124, LONG: 424242}


# -- hostile objects (the shared ones are in tests/hostile_objects.py) ---------------------
class Echo:
    """Every attribute, item and call is the object itself (an infinitely deep response)."""

    def __getattr__(self, name: str) -> Any:
        return self

    def __getitem__(self, key: Any) -> Any:
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self

    def __iter__(self) -> Iterator[Any]:
        return iter([self, self])


class Color(enum.Enum):
    RED = 1
    BLUE = "blue"


class Slotted:
    __slots__ = ("a",)


BIG = "x" * 1_000_000
BIG_NUL = ("\x00\ud800é" * 100_000)[:300_000]
DEEP = deep(3000)
HUGE_INT = 10**5000
CYCLIC_DICT = cyclic_dict()
CYCLIC_LIST = cyclic_list()
SQL_PAYLOADS = (
    "'; DROP TABLE prompt_executions; --",
    "Robert'); DROP TABLE prompt_templates;--",
    '" OR "1"="1',
    "1; SELECT pg_sleep(10); --",
    "$$; DELETE FROM prompt_executions; $$",
    "\\x00\\'",
)
ODD_STRINGS = (
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udcffy",
    "é",
    "日本語",
    "🙂" * 3,
    "\u202eevil",
    "%s %d %(x)s %",
    "{0} {x} {{",
    "\\",
    "\n\r\t",
    "null",
    "NaN",
    "-1",
    "1e309",
    "models/",
    "gemini-2.5-flash",
    "models/gemini-2.5-pro-latest",
    "GEMINI-2.5-FLASH-001",
    " gemini-2.0-flash ",
    "projects/p/locations/l/publishers/google/models/gemini-2.5-flash",
    *SQL_PAYLOADS,
)
MODELS = (
    "gemini-2.5-flash",
    "gemini-2.5-pro",
    "gemini-2.0-flash",
    "models/gemini-2.5-flash-001",
    "gemini-3.1-pro-preview",
    "unknown-model",
    "",
)
FINISH = (
    "STOP",
    "MAX_TOKENS",
    "SAFETY",
    "RECITATION",
    "OTHER",
    "BLOCKLIST",
    "FINISH_REASON_UNSPECIFIED",
    "MALFORMED_FUNCTION_CALL",
)
BLOCK = ("SAFETY", "OTHER", "BLOCKLIST", "PROHIBITED_CONTENT", "BLOCK_REASON_UNSPECIFIED")


# -- the generator ---------------------------------------------------------------------------
class Gen:
    """Seeded source of hostile values, arguments and responses."""

    def __init__(self, seed: int, tmp: Path) -> None:
        self.r = random.Random(seed)
        self.tmp = tmp
        self.n = 0
        self._genai: Any = None
        self._old: Any = None

    def p(self, prob: float) -> bool:
        return self.r.random() < prob

    def pick(self, seq: Any) -> Any:
        return seq[self.r.randrange(len(seq))]

    # scalars
    def text(self, secrets: bool = False) -> Any:
        roll = self.r.random()
        if roll < 0.35:
            return self.pick(ODD_STRINGS)
        if roll < 0.6:
            n = self.r.randrange(0, 40)
            return "".join(chr(self._codepoint()) for _ in range(n))
        if roll < 0.7:
            return "".join(self.r.choice("abc_-./ ") for _ in range(self.r.randrange(1, 30)))
        if roll < 0.75 and secrets:
            return secret_text(self.r.randrange(100))
        if roll < 0.8:
            return "k" * self.r.choice((257, 1001, 8193, 20_000))
        if roll < 0.82:
            return self.pick((BIG, BIG_NUL))
        if roll < 0.9:
            return EvilStr(self.pick(("x", "gemini-2.5-flash", "")))
        return self.pick(("t", "nlu_extraction", "clarification", "script_generation"))

    def _codepoint(self) -> int:
        roll = self.r.random()
        if roll < 0.5:
            return self.r.randrange(32, 127)
        if roll < 0.6:
            return self.r.randrange(0, 32)
        if roll < 0.7:
            return self.r.randrange(0xD800, 0xE000)  # lone surrogates
        return self.r.randrange(0x80, 0x110000)

    def number(self) -> Any:
        return self.pick(
            (
                0,
                1,
                -1,
                7,
                2**31,
                2**53,
                2**53 + 1,
                2**63,
                2**64,
                -(2**63) - 1,
                HUGE_INT,
                -(10**400),
                0.5,
                -0.0,
                math.nan,
                math.inf,
                -math.inf,
                1e308,
                5e-324,
                12.0,
                Decimal("NaN"),
                Decimal("sNaN"),
                Decimal("Infinity"),
                Decimal("1e-999999"),
                Decimal("0.000001"),
                Decimal("-3"),
                3 + 4j,
                True,
                False,
                EvilInt(3),
                EvilFloat(1.5),
                self.r.randrange(-(10**6), 10**12),
                self.r.random() * 1e6,
            )
        )

    def atom(self, secrets: bool = False) -> Any:
        roll = self.r.random()
        if roll < 0.25:
            return self.text(secrets)
        if roll < 0.45:
            return self.number()
        if roll < 0.5:
            return None
        return self.pick(
            (
                b"\x00\xff bytes",
                bytearray(b"abc"),
                memoryview(b"xyz"),
                _dt.datetime(2026, 1, 1, tzinfo=_dt.timezone.utc),
                _dt.datetime(1, 1, 1),
                _dt.date(2026, 2, 28),
                _dt.time(23, 59),
                _dt.timedelta(days=-1),
                uuid.UUID(int=7),
                Path("/etc/passwd"),
                Color.RED,
                Color.BLUE,
                Slotted(),
                object(),
                type,
                print,
                len,
                Ellipsis,
                NotImplemented,
                Hostile(),
                HostileKey(),
                EvilDict({"a": 1}),
                EvilMapping(),
                EvilList([1, 2]),
                Echo(),
                CYCLIC_DICT,
                CYCLIC_LIST,
                DEEP,
                ValueError("an exception as a value"),
                iter([1, 2]),
                (x for x in range(3)),
                {1, 2, "a"},
                frozenset({None}),
                range(5),
                SecretError(self.r.randrange(9)) if secrets else KeyError("k"),
            )
        )

    def value(self, depth: int = 0, secrets: bool = True) -> Any:
        if depth >= 3 or self.p(0.6):
            return self.atom(secrets)
        kind = self.r.randrange(5)
        n = self.r.randrange(0, 5)
        if kind == 0:
            return [self.value(depth + 1, secrets) for _ in range(n)]
        if kind == 1:
            return tuple(self.value(depth + 1, secrets) for _ in range(n))
        if kind == 2:
            return {self.key(): self.value(depth + 1, secrets) for _ in range(n)}
        if kind == 3:
            return {self.pick((1, "a", None, 2.5)) for _ in range(n)}
        return [self.key() for _ in range(n)]

    def key(self) -> Any:
        """A hashable metadata key."""
        return self.pick(
            (
                "user_tier",
                "api_key",
                "Authorization",
                "password",
                "max_tokens",
                "token",
                "X-Goog-Api-Key",
                "",
                " ",
                "\x00",
                "\ud800",
                1,
                -1,
                2.5,
                math.nan,
                None,
                True,
                (1, "a"),
                b"bytes",
                HostileKey(),
                EvilStr("evil"),
                "k" * 300,
                Color.RED,
                frozenset({1}),
                "traceparent",
                "trace_id",
                "n",
            )
        )

    def metadata(self) -> Any:
        roll = self.r.random()
        if roll < 0.6:
            return {self.key(): self.value() for _ in range(self.r.randrange(0, 6))}
        if roll < 0.7:
            return {"big": BIG, "n": 1, "secret": secret_text(1)}
        if roll < 0.75:
            return {f"k{i}": "v" * 100 for i in range(1000)}  # > 64 KiB once serialised
        return self.value()

    def count(self) -> Any:
        roll = self.r.random()
        if roll < 0.5:
            return self.r.choice((None, 0, 1, 10, 1000, 123_456, 2**31 - 1))
        if roll < 0.8:
            return self.number()
        return self.atom()

    # responses
    def genai_response(self) -> Any:
        if self._genai is None:
            from google.genai import types

            self._genai = types
        types = self._genai
        usage: dict[str, Any] = {}
        for field in (
            "promptTokenCount",
            "candidatesTokenCount",
            "totalTokenCount",
            "thoughtsTokenCount",
            "cachedContentTokenCount",
            "toolUsePromptTokenCount",
        ):
            if self.p(0.7):
                usage[field] = self.r.choice((0, 1, 17, 4096, 200_001, 10**7, 2**40))
        if self.p(0.3):
            usage["promptTokensDetails"] = [
                {
                    "modality": self.pick(("AUDIO", "TEXT", "IMAGE")),
                    "tokenCount": self.r.randrange(0, 5000),
                }
                for _ in range(self.r.randrange(3))
            ]
        body: dict[str, Any] = {"usageMetadata": usage}
        if self.p(0.9):
            body["candidates"] = [
                {
                    "content": {"parts": [{"text": "hi"}], "role": "model"},
                    "finishReason": self.pick(FINISH),
                }
                for _ in range(self.r.randrange(0, 3))
            ]
        if self.p(0.2):
            body["promptFeedback"] = {"blockReason": self.pick(BLOCK)}
        if self.p(0.8):
            body["modelVersion"] = self.pick(MODELS)
        if self.p(0.8):
            return types.GenerateContentResponse.model_validate(body)
        # Broken shapes the client would never build, with the real classes.
        meta = types.GenerateContentResponseUsageMetadata.model_construct(
            **{
                f: self.count()
                for f in (
                    "prompt_token_count",
                    "candidates_token_count",
                    "total_token_count",
                    "thoughts_token_count",
                    "cached_content_token_count",
                )
                if self.p(0.7)
            }
        )
        return types.GenerateContentResponse.model_construct(
            usage_metadata=self.pick((meta, None, self.atom(), Echo())),
            candidates=self.pick(
                ([], None, "junk", [Bag(finish_reason=self.atom())], Echo(), [None], EvilList([1]))
            ),
            prompt_feedback=self.pick((None, Bag(block_reason=self.atom()), self.atom())),
            model_version=self.pick((None, "gemini-2.5-flash", self.atom(secrets=False))),
        )

    def old_client_response(self) -> Any:
        if self._old is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    from google.generativeai import protos
                    from google.generativeai.types import GenerateContentResponse
                except ImportError:  # the old client is optional: duck-typed stand-ins
                    self._old = False
                else:
                    self._old = (protos, GenerateContentResponse)
        if self._old is False:
            return self.bag_response()
        protos, wrapper = self._old
        meta = protos.GenerateContentResponse.UsageMetadata(
            **{
                f: self.r.choice((0, 1, 99, 2**31 - 1))
                for f in (
                    "prompt_token_count",
                    "candidates_token_count",
                    "total_token_count",
                    "cached_content_token_count",
                )
                if self.p(0.75)
            }
        )
        candidates = [
            protos.Candidate(
                finish_reason=self.r.randrange(0, 10),
                content=protos.Content(parts=[protos.Part(text="x")]),
            )
            for _ in range(self.r.randrange(0, 3))
        ]
        proto = protos.GenerateContentResponse(
            candidates=candidates,
            usage_metadata=meta,
            model_version=self.pick(("", "gemini-1.5-flash-002", "gemini-2.5-flash")),
        )
        if self.p(0.2):
            proto.prompt_feedback.block_reason = self.r.randrange(0, 4)
        return wrapper.from_response(proto) if self.p(0.6) else proto

    def dict_response(self) -> Any:
        roll = self.r.random()
        if roll < 0.3:
            return {
                "usageMetadata": {
                    k: self.count()
                    for k in (
                        "promptTokenCount",
                        "candidatesTokenCount",
                        "totalTokenCount",
                        "thoughtsTokenCount",
                        "cachedContentTokenCount",
                    )
                    if self.p(0.7)
                },
                "modelVersion": self.pick((*MODELS, None, 3)),
                "candidates": self.pick(([{"finishReason": self.pick(FINISH)}], [], None, "x")),
                "promptFeedback": self.pick(({"blockReason": self.pick(BLOCK)}, None, 5)),
            }
        if roll < 0.6:
            keys = (
                "input_tokens",
                "output_tokens",
                "cached_tokens",
                "thinking_tokens",
                "tool_use_tokens",
                "audio_input_tokens",
                "prompt_tokens",
                "completion_tokens",
                "model",
            )
            return {k: self.count() for k in keys if self.p(0.5)}
        if roll < 0.8:
            return {self.pick(("usage", "usage_metadata", "usageMetadata")): self.dict_response()}
        return {self.key(): self.value(secrets=False) for _ in range(self.r.randrange(4))}

    def bag_response(self) -> Any:
        usage = Bag(
            **{
                f: self.count()
                for f in (
                    "prompt_token_count",
                    "candidates_token_count",
                    "total_token_count",
                    "thoughts_token_count",
                    "cached_content_token_count",
                    "tool_use_prompt_token_count",
                    "prompt_tokens_details",
                    "cache_tokens_details",
                )
                if self.p(0.6)
            }
        )
        return Bag(
            usage_metadata=self.pick((usage, None, Hostile(), Echo(), self.atom())),
            candidates=self.pick(
                (
                    [Bag(finish_reason=self.pick((*FINISH, self.atom())))],
                    [],
                    None,
                    Hostile(),
                    Echo(),
                )
            ),
            prompt_feedback=self.pick(
                (Bag(block_reason=self.pick((*BLOCK, self.atom()))), None, Hostile())
            ),
            model_version=self.pick((*MODELS, None, self.atom(secrets=False))),
        )

    def response(self) -> Any:
        roll = self.r.random()
        if roll < 0.25:
            return self.genai_response()
        if roll < 0.4:
            return self.old_client_response()
        if roll < 0.6:
            return self.dict_response()
        if roll < 0.75:
            return self.bag_response()
        if roll < 0.8:
            return self.pick((RaisingResponse(), Hostile(), Echo()))
        return self.value(secrets=False)

    def user_exception(self) -> BaseException:
        return self.pick(
            (
                ValueError("the caller's own error"),
                SecretError(self.r.randrange(9)),
                UnprintableError(),
                RaisingAttrError(),
                EvilBaseException(),
                WeirdCodeError(self.count(), self.text(secrets=True)),
                KeyError(HostileKey()),
                SystemExit(3),
                KeyboardInterrupt(),
                asyncio.CancelledError(),
                ConnectionResetError(104, "reset"),
                RecursionError("deep"),
            )
        )

    def ident(self) -> Any:
        """A decorator / record identifier: usually a sensible string, often not."""
        if self.p(0.6):
            return self.pick(
                ("nlu_extraction", "clarification", "t", "v3", "B", None, "gemini-2.5-flash")
            )
        if self.p(0.5):
            return self.text()
        return self.atom()


# -- bookkeeping -----------------------------------------------------------------------------
def _safe(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__} with a raising __repr__>"
    return text[:200]


class Escapes:
    """Exceptions that reached a caller, and other broken promises, per family."""

    def __init__(self) -> None:
        self.found: list[str] = []
        self.count: Counter[str] = Counter()
        self.allowed: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()

    def call(
        self,
        family: str,
        case: int,
        what: str,
        fn: Callable[[], Any],
        allowed: tuple[type[BaseException], ...] = (),
        own: BaseException | None = None,
    ) -> tuple[bool, Any]:
        """Run ``fn``; (True, result) or (False, None) when it raised something allowed."""
        try:
            return True, fn()
        except BaseException as exc:
            if own is not None and exc is own:
                self.allowed[f"{family}: the caller's own exception"] += 1
                return False, None
            if allowed and isinstance(exc, allowed):
                self.allowed[f"{family}: {type(exc).__name__}"] += 1
                return False, None
            if isinstance(exc, KeyboardInterrupt) and own is None:
                raise
            self.kinds[f"{family}: {what.split('(')[0]} raised {type(exc).__name__}"] += 1
            self.fail(
                family,
                case,
                f"{what} raised {type(exc).__name__}: {_safe(exc)}\n"
                + "".join(traceback.format_exception(exc)[-6:]),
            )
            return False, None

    def fail(self, family: str, case: int, message: str) -> None:
        self.count[family] += 1
        if len(self.found) < 300:
            self.found.append(f"[{family} #{case}] {message}")


def _is_stream(value: Any) -> bool:
    """A returned generator is handed back wrapped (the record ends with the stream)."""
    return isinstance(value, (GeneratorType, AsyncGeneratorType))


def consume_stream(stream: Any) -> list[Any]:
    """Iterate a (sync or async) generator handed back by a decorated function to its end:
    its record ends with it."""
    if isinstance(stream, AsyncGeneratorType):
        got = []
        while True:
            try:
                got.append(drive(stream.__anext__()))
            except StopAsyncIteration:
                return got
    return list(stream)


def drive(coro: Any) -> Any:
    """Run a coroutine that never suspends, without an event loop (an event loop cannot
    cope with exceptions whose ``__repr__`` raises)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise AssertionError("the coroutine suspended")


# -- the families ------------------------------------------------------------------------------
def handle_ops(g: Gen, call: Any) -> None:
    """Random CallHandle method calls with hostile arguments."""
    for _ in range(g.r.randrange(0, 5)):
        op = g.r.randrange(7)
        if op == 0:
            call.record_response(g.response())
        elif op == 1:
            names = ("cached_tokens", "thinking_tokens", "tool_use_tokens", "audio_input_tokens")
            kwargs = {n: g.count() for n in names if g.p(0.4)}
            args = [g.count() for _ in range(g.r.randrange(0, 3))]
            call.set_usage(*args, **kwargs)
        elif op == 2:
            call.set_model(g.pick((g.ident(), g.atom(), "gemini-2.5-pro")))
        elif op == 3:
            call.metadata[g.key()] = g.value()
        elif op == 4:
            call.metadata.update({g.key(): g.value() for _ in range(3)})
        elif op == 5:
            assert isinstance(call.execution_id, str) and len(call.execution_id) == 36
        else:
            repr(call)


def decorator_case(g: Gen, esc: Escapes, case: int) -> int:
    kwargs: dict[str, Any] = {}
    if g.p(0.8):
        key: Any = g.pick(("nlu_extraction", "clarification", "t", "script_generation"))
    else:
        key = g.ident()
    for name in ("version", "ab_group", "model"):
        if g.p(0.5):
            kwargs[name] = g.ident() if g.p(0.7) else g.pick(MODELS)
    if g.p(0.4):
        kwargs["metadata"] = g.metadata()
    ok, deco = esc.call(
        "decorator",
        case,
        "logged_prompt(...)",
        lambda: logged_prompt(key, **kwargs),
        allowed=(ConfigurationError,),
    )
    if not ok:
        return 0
    kind = g.pick(("sync", "sync", "async", "gen", "agen", "method", "classmethod", "staticmethod"))
    own = g.user_exception() if g.p(0.2) else None
    response = g.response()
    chunks = [g.response() for _ in range(g.r.randrange(0, 4))]
    ops = g.p(0.3)
    seed = g.r.random()

    def body() -> Any:
        if ops:
            call = vividly_trace.get_current_call()
            assert call is not None
            handle_ops(Gen(int(seed * 1e9), g.tmp), call)
        if own is not None:
            raise own
        return response

    args = [g.atom() for _ in range(g.r.randrange(0, 3))]
    if kind == "sync":
        f = deco(lambda *a, **k: body())
        ok, got = esc.call("decorator", case, "sync call", lambda: f(*args), own=own)
        if ok and _is_stream(response):
            esc.call("decorator", case, "returned stream", lambda: consume_stream(got))
        elif ok and got is not response:
            esc.fail("decorator", case, "the return value was not passed through")
        return 1
    if kind == "async":

        async def coro(*a: Any) -> Any:
            return body()

        af = deco(coro)
        ok, got = esc.call("decorator", case, "async call", lambda: drive(af(*args)), own=own)
        if ok and _is_stream(response):
            esc.call("decorator", case, "returned stream", lambda: consume_stream(got))
        elif ok and got is not response:
            esc.fail("decorator", case, "the awaited value was not passed through")
        return 1
    if kind in ("method", "classmethod", "staticmethod"):

        class Service:
            def m(self, *a: Any) -> Any:
                return body()

            @classmethod
            def cm(cls, *a: Any) -> Any:
                return body()

            @staticmethod
            def sm(*a: Any) -> Any:
                return body()

        Service.m = deco(Service.m)  # type: ignore[method-assign]
        Service.cm = deco(Service.__dict__["cm"])  # type: ignore[method-assign]
        Service.sm = deco(Service.__dict__["sm"])  # type: ignore[method-assign]
        target = {"method": Service().m, "classmethod": Service.cm, "staticmethod": Service.sm}[
            kind
        ]
        ok, got = esc.call("decorator", case, kind, lambda: target(*args), own=own)
        if ok and _is_stream(response):
            esc.call("decorator", case, "returned stream", lambda: consume_stream(got))
        elif ok and got is not response:
            esc.fail("decorator", case, f"the {kind}'s return value was not passed through")
        return 1
    take = g.r.randrange(0, len(chunks) + 2)
    throw = g.p(0.1) and own is None
    thrown = ValueError("thrown in by the consumer")
    raise_at = g.r.randrange(0, len(chunks) + 1) if own is not None else -1

    if kind == "gen":

        def gen_fn(*a: Any) -> Iterator[Any]:
            for i, c in enumerate(chunks):
                if i == raise_at and own is not None:
                    raise own
                yield c
            if raise_at == len(chunks) and own is not None:
                raise own

        wrapped = deco(gen_fn)

        def consume() -> list[Any]:
            got: list[Any] = []
            stream = wrapped(*args)
            for c in stream:
                got.append(c)
                if throw:
                    stream.throw(thrown)
                if len(got) >= take:
                    stream.close()
                    break
            if not got:  # make sure the generator started, so that it records
                stream.close()
            return got

        ok, got = esc.call(
            "decorator",
            case,
            "generator",
            consume,
            own=own if own is not None else (thrown if throw else None),
        )
        if ok and not all(a is b for a, b in zip(got, chunks, strict=False)):
            esc.fail("decorator", case, "the stream's chunks were not passed through")
        return 1

    async def agen_fn(*a: Any) -> Any:
        for i, c in enumerate(chunks):
            if i == raise_at and own is not None:
                raise own
            yield c
        if raise_at == len(chunks) and own is not None:
            raise own

    awrapped = deco(agen_fn)

    def aconsume() -> list[Any]:
        got: list[Any] = []
        stream = awrapped(*args)
        while True:
            try:
                got.append(drive(stream.__anext__()))
            except StopAsyncIteration:
                break
            if len(got) >= take:
                drive(stream.aclose())
                break
        return got

    ok, got = esc.call("decorator", case, "async generator", aconsume, own=own)
    if ok and not all(a is b for a, b in zip(got, chunks, strict=False)):
        esc.fail("decorator", case, "the async stream's chunks were not passed through")
    return 1


def with_block_case(g: Gen, esc: Escapes, case: int) -> int:
    key = g.pick(("clarification", "t", "nlu_extraction")) if g.p(0.85) else g.ident()
    ok, block = esc.call(
        "with_block",
        case,
        "logged_prompt(...)",
        lambda: logged_prompt(key, model=g.pick(MODELS)),
        allowed=(ConfigurationError,),
    )
    if not ok:
        return 0
    own = g.user_exception() if g.p(0.2) else None
    nested = g.p(0.15)
    asynchronous = g.p(0.3)
    seed = int(g.r.random() * 1e9)

    def run() -> None:
        with block as call:
            handle_ops(Gen(seed, g.tmp), call)
            if nested:
                with logged_prompt("child") as inner:
                    assert vividly_trace.get_current_call() is inner
                    handle_ops(Gen(seed + 1, g.tmp), inner)
            if own is not None:
                raise own

    async def arun() -> None:
        async with block as call:
            handle_ops(Gen(seed, g.tmp), call)
            if own is not None:
                raise own

    if asynchronous:
        esc.call("with_block", case, "async with", lambda: drive(arun()), own=own)
        return 1
    esc.call("with_block", case, "with", run, own=own)
    return 2 if nested else 1


def log_case(g: Gen, esc: Escapes, case: int) -> int:
    def arg(valid: Any) -> Any:
        return valid if g.p(0.6) else g.pick((g.atom(), g.ident(), g.number()))

    args = [
        arg(g.pick(("nlu_extraction", "t", "clarification"))),
        arg(g.pick((True, False))),
        arg(g.pick((0.0, 1.5, 412.0, 10**6))),
        arg(g.count()),
        arg(g.count()),
        arg(g.pick((None, 0.001, Decimal("0.000015"), "0.3"))),
        arg(g.pick((None, g.text(secrets=True), secret_text(g.r.randrange(9))))),
        g.metadata() if g.p(0.5) else None,
    ]
    n_pos = g.r.randrange(3, len(args) + 1)
    kwargs = {
        name: arg(valid)
        for name, valid in (
            ("template_version", "v3"),
            ("ab_test_group", "B"),
            ("model", g.pick(MODELS)),
            ("error_type", "TimeoutError"),
            ("http_status", g.pick((200, 429, 503))),
        )
        if g.p(0.4)
    }
    ok, got = esc.call(
        "log_prompt_execution",
        case,
        "log_prompt_execution",
        lambda: log_prompt_execution(*args[:n_pos], **kwargs),
    )
    if not ok:
        return 0
    if got is not None and not (isinstance(got, str) and len(got) == 36):
        esc.fail("log_prompt_execution", case, f"returned {_safe(got)}")
    elif got is None and plainly_valid(*args[:3]):
        esc.fail(
            "log_prompt_execution",
            case,
            "returned None for valid required arguments: "
            f"{_safe(args[:n_pos])[:300]} {_safe(kwargs)[:300]}",
        )
    return 1 if isinstance(got, str) else 0


def pricing_overrides(g: Gen) -> Any:
    roll = g.r.random()
    fields = (
        "input",
        "output",
        "cached_input",
        "audio_input",
        "cached_audio_input",
        "tier_threshold",
        "input_above",
        "output_above",
        "cached_input_above",
        "max_prompt_tokens",
        "as_of",
        "source",
        "secondary_source",
    )
    if roll < 0.5:
        out: dict[Any, Any] = {}
        for _ in range(g.r.randrange(0, 4)):
            name = g.pick(("my-model", "gemini-2.5-flash", "models/x-001")) if g.p(0.7) else g.key()
            if g.p(0.8):
                price: Any = {}
                for f in fields:
                    if g.p(0.3 if f not in ("input", "output") else 0.85):
                        price[f] = g.pick(
                            (
                                "0.5",
                                "2",
                                1,
                                0.25,
                                Decimal("1.25"),
                                "-1",
                                "abc",
                                math.nan,
                                None,
                                200_000,
                                True,
                                [1],
                                {"x": 1},
                                Decimal("NaN"),
                                "1e999999",
                                g.atom(),
                            )
                        )
                if g.p(0.1):
                    price[g.key()] = 1
                out[name] = price
            else:
                out[name] = g.atom()
        return out
    if roll < 0.65:
        path = g.tmp / f"prices_{g.n}.{g.pick(('toml', 'json', 'txt'))}"
        g.n += 1
        content = g.pick(
            (
                'version = "v1"\n[models."my-model"]\ninput = "0.5"\noutput = "1"\n',
                'version = "v1"\n[models."my-model"]\ninput = "abc"\n',
                '{"version": "v2", "models": {"my-model": {"input": 1, "output": 2}}}',
                '{"version": 3, "models": []}',
                "not toml [[[",
                "\x00\xff",
                "",
                'version = "v"\nmodels = 5\n',
            )
        )
        path.write_text(content, "utf-8", errors="surrogateescape")
        return str(path) if g.p(0.5) else path
    if roll < 0.75:
        return g.pick((str(g.tmp / "missing.toml"), str(g.tmp), "", "/dev/null", Path("/")))
    if roll < 0.85:
        return PricingTable.default().with_overrides({"my-model": {"input": "1", "output": "2"}})
    return g.atom()


def pricing_case(g: Gen, esc: Escapes, case: int, sink: MemorySink) -> int:
    before = len(sink.records)
    overrides = pricing_overrides(g)
    ok, _ = esc.call(
        "pricing",
        case,
        f"configure(pricing={_safe(overrides)})",
        lambda: vividly_trace.configure(sinks=[sink], sync=True, pricing=overrides),
        allowed=(ConfigurationError,),
    )
    if not ok:
        return 0
    model = g.pick(("my-model", "gemini-2.5-flash", "models/x-001", "nope"))
    usage = {"input_tokens": g.count(), "output_tokens": g.count(), "cached_tokens": g.count()}
    ok, got = esc.call(
        "pricing",
        case,
        "log_prompt_execution(model=...)",
        lambda: log_prompt_execution("priced", True, 1.0, 250_000, 10, model=model),
    )
    if ok and not isinstance(got, str):
        esc.fail("pricing", case, f"log_prompt_execution returned {_safe(got)}, not an id")
    expected = 1 if isinstance(got, str) else 0

    @logged_prompt("priced", model=model)
    def f() -> Any:
        return usage

    esc.call("pricing", case, "decorated call", f)
    esc.call(
        "pricing",
        case,
        "calculate_gemini_cost",
        lambda: calculate_gemini_cost(usage, model),
        allowed=(ValueError,),
    )
    expected += 1
    if len(sink.records) - before != expected:
        esc.fail(
            "pricing",
            case,
            f"{expected} calls gave {len(sink.records) - before} records: "
            f"{vividly_trace.stats()['dropped']}",
        )
    return expected


class _Sink:
    def __init__(self, name: Any) -> None:
        self.name = name

    def write_batch(self, records: Any) -> None:
        pass

    def close(self) -> None:
        pass


def configure_case(g: Gen, esc: Escapes, case: int, sink: MemorySink) -> tuple[int, bool]:
    """A configure() with some hostile arguments; if it succeeds, one call through it."""

    def hostile_sinks() -> Any:
        return g.pick(
            (
                [sink, g.atom()],
                [_Sink(g.ident())],
                [_Sink("a"), _Sink("a")],
                g.atom(),
                "sql",
                [Hostile()],
                [HostileKey()],
                [sink, Echo()],
                (s for s in [sink]),
                EvilList([sink]),
                [_Sink(EvilStr("x"))],
                {"sink": sink},
                [type],
            )
        )

    candidates: dict[str, Callable[[], Any]] = {
        "sinks": hostile_sinks,
        "sync": lambda: g.pick((True, False, 1, None, Hostile(), "yes")),
        "sample_rate": g.number,
        "redact": lambda: g.pick(
            (None, 5, lambda r: r, lambda r: None, lambda r: "junk", _boom, Hostile(), Echo())
        ),
        "mask_secrets": lambda: g.pick((True, False, None, 0, "no", Hostile())),
        "pricing": lambda: pricing_overrides(g),
        "queue_size": g.number,
        "batch_size": g.number,
        "flush_interval": g.number,
        "max_retries": g.number,
        "retry_backoff": g.number,
        "spool_max_bytes": g.number,
        "shutdown_timeout": g.number,
        "spool_dir": lambda: g.pick(
            (
                False,
                None,
                True,
                str(g.tmp / "spool_x"),
                5,
                b"x",
                Hostile(),
                g.tmp / "file_not_dir.txt",
                [1],
                "",
            )
        ),
        "enabled": lambda: g.pick((True, False, 1, None, Hostile())),
        "handle_sigterm": lambda: g.pick((True, False, None, "x", Hostile())),
    }
    (g.tmp / "file_not_dir.txt").write_text("x")
    own_sinks = [sink]
    kwargs: dict[str, Any] = {"sinks": own_sinks, "sync": True}
    for name in g.r.sample(sorted(candidates), g.r.randrange(1, 4)):
        kwargs[name] = candidates[name]()
    before = len(sink.records)
    ok, _ = esc.call(
        "configure",
        case,
        f"configure({', '.join(kwargs)})",
        lambda: vividly_trace.configure(**kwargs),
        allowed=(ConfigurationError,),
    )
    if not ok:
        return 0, False
    ok, got = esc.call(
        "configure",
        case,
        "log_prompt_execution after configure",
        lambda: log_prompt_execution(
            "configured", False, 2.0, 1, 2, error_message=secret_text(case)
        ),
    )
    # configure() accepted its arguments, so `enabled` is a bool: True gives an id.
    if ok and (not isinstance(got, str) if kwargs.get("enabled", True) else got is not None):
        esc.fail(
            "configure",
            case,
            f"log_prompt_execution returned {_safe(got)} with "
            f"enabled={kwargs.get('enabled', True)}",
        )
    ok, _ = esc.call("configure", case, "flush", lambda: vividly_trace.flush(timeout=5))
    ids = 1 if isinstance(got, str) else 0
    if kwargs["sinks"] is own_sinks:
        s = vividly_trace.stats()
        drops = s["dropped"]
        # A failed call is never sampled out; only the redact hook may drop it.
        accounted = len(sink.records) - before + sum(drops.values())
        if accounted != ids or s["sampled_out"] or set(drops) - {"redacted", "redact_error"}:
            esc.fail(
                "configure",
                case,
                f"{ids} records logged, {len(sink.records) - before} "
                f"written, sampled out {s['sampled_out']}, dropped {drops}",
            )
    return ids, True


def misc_case(g: Gen, esc: Escapes, case: int) -> int:
    """flush/stats/json_safe/choose_variant/calculate_gemini_cost/register_extractor."""
    op = g.r.randrange(7)
    if op == 0:
        timeout = g.pick((g.number(), g.atom(), 0, 1.0))
        ok, got = esc.call(
            "misc", case, f"flush({_safe(timeout)})", lambda: vividly_trace.flush(timeout=timeout)
        )
        if ok and not isinstance(got, bool):
            esc.fail("misc", case, f"flush returned {_safe(got)}")
        return 0
    if op == 1:
        ok, got = esc.call("misc", case, "stats()", vividly_trace.stats)
        if ok:
            json.dumps(got)
        return 0
    if op == 2:
        value = g.value()
        ok, got = esc.call("misc", case, "json_safe", lambda: json_safe(value))
        if ok:
            try:
                json.dumps(got, allow_nan=False)
            except (TypeError, ValueError) as exc:
                esc.fail("misc", case, f"json_safe gave non-JSON {exc!r}")
        return 0
    if op == 3:
        args = (
            g.ident(),
            g.pick((g.atom(), "user-1", 42)),
            g.pick(({"A": 0.5, "B": 0.5}, {"A": g.number()}, {g.key(): 1}, g.atom(), {})),
        )
        ok, got = esc.call(
            "misc",
            case,
            "choose_variant",
            lambda: choose_variant(*args),
            allowed=(ConfigurationError,),
        )
        if ok and not isinstance(got, str):
            esc.fail("misc", case, f"choose_variant returned {_safe(got)}")
        return 0
    if op == 4:
        usage = g.pick((g.dict_response(), g.atom(), {"input_tokens": g.count()}))
        model = g.pick((*MODELS, g.atom(), g.ident()))
        ok, got = esc.call(
            "misc",
            case,
            "calculate_gemini_cost",
            lambda: calculate_gemini_cost(usage, model),
            allowed=(ValueError,),
        )
        if ok and not (isinstance(got, float) and math.isfinite(got) and got >= 0):
            esc.fail("misc", case, f"calculate_gemini_cost returned {_safe(got)}")
        return 0
    if op == 5:
        ok, got = esc.call("misc", case, "get_current_call", vividly_trace.get_current_call)
        if ok and got is not None:
            esc.fail("misc", case, "a call is current outside any call")
        return 0
    # A user extractor that raises, returns junk, or returns a ResponseInfo full of junk.
    junk = g.pick(
        (
            _boom,
            lambda r: g.atom(),
            lambda r: None,
            lambda r: ResponseInfo(
                usage=Usage(input_tokens=g.count(), output_tokens=g.count()),
                provider=g.atom(),
                response_model=g.atom(),
                finish_reason=g.atom(),
                block_reason=g.atom(),
            ),
            lambda r: ResponseInfo(usage=g.atom()),
        )
    )
    ok, _ = esc.call("misc", case, "register_extractor", lambda: register_extractor(junk))
    if not ok:
        return 0
    try:

        @logged_prompt("extracted", model="gemini-2.5-flash")
        def f() -> Any:
            return {"input_tokens": 3, "output_tokens": 4}

        esc.call("misc", case, "call with a hostile extractor", f)
    finally:
        unregister_extractor(junk)
    return 1


# -- the test ----------------------------------------------------------------------------------
def _check_records(records: list[Any], expected: int, esc: Escapes, family: str) -> None:
    """``expected`` records (one per call that returned an id), each JSON-safe."""
    if len(records) != expected:
        esc.fail(family, -1, f"{expected} calls gave {len(records)} records")
    for r in records:
        try:
            json.dumps(r.to_dict(), allow_nan=False)
            json.dumps(r.metadata, allow_nan=False)
            assert isinstance(r.template_key, str) and r.template_key
            assert r.error_message is None or (
                type(r.error_message) is str and len(r.error_message) <= 1000
            )
            assert len(r.execution_id) == 36
        except Exception as exc:
            esc.fail(family, -1, f"record {r.execution_id} is not JSON-safe: {exc!r}")


def _sqlite_rows(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM prompt_executions").fetchone()[0])
    finally:
        conn.close()


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("version", VERSIONS)
def test_hostile_input_never_reaches_the_caller(
    version: str, tmp_path: Path, figures: Any, secret_scan: Any
) -> None:
    """Seeded hostile cases through the decorator (sync, async, generators, methods), `with`
    blocks and their handle methods, `log_prompt_execution`, pricing overrides,
    `configure()`, and the helpers (`flush`, `stats`, `json_safe`, `choose_variant`,
    `calculate_gemini_cost`, `register_extractor`): the only exceptions allowed out are the
    caller's own (the very same object) and `ConfigurationError` at configuration time
    (`ValueError`, documented, from `calculate_gemini_cost`). Decorator, `with` and
    `log_prompt_execution` records go to a memory, a JSON-lines and a SQLite sink in
    background mode: every call must be a JSON-safe record in each of them, none dropped."""
    warnings.simplefilter("ignore")
    seed = int(os.environ.get("VIVIDLY_TRACE_HOSTILE_SEED") or SEEDS[version])
    g = Gen(seed, tmp_path)
    esc = Escapes()
    plan = CASES[version]
    started = time.monotonic()

    memory = MemorySink()
    jsonl = tmp_path / "hostile.jsonl"
    db = tmp_path / "hostile.db"
    vividly_trace.configure(
        sinks=[memory, JSONLinesSink(jsonl, fsync=False), SQLSink(f"sqlite:///{db}")],
        queue_size=1_000_000,
        flush_interval=0.2,
        batch_size=500,
        spool_dir=tmp_path / "spool",
    )
    expected = 0
    done: Counter[str] = Counter()
    for family, fn in (
        ("decorator", decorator_case),
        ("with_block", with_block_case),
        ("log_prompt_execution", log_case),
        ("misc", misc_case),
    ):
        for case in range(plan[family]):
            expected += fn(g, esc, case)
            done[family] += 1
    assert vividly_trace.flush(timeout=600), "the background sinks did not drain"
    stats = vividly_trace.stats()
    assert expected > 0, "no case logged anything"
    _check_records(memory.records, expected, esc, "records")
    secret_scan.add_records("hostile-input records", memory.records)
    lines, unparsable = _read_lines(jsonl)
    sql_rows = _sqlite_rows(db)
    counted = {name: sum(s["dropped"].values()) for name, s in stats["sinks"].items()}
    background = {
        "memory": len(memory.records),
        "jsonl": lines,
        "sql": sql_rows,
    }
    vividly_trace.shutdown()

    # Configuration families: each case configures its own synchronous pipeline.
    conf_sink = MemorySink("conf")
    conf_expected = 0
    conf_ok = 0
    for case in range(plan["pricing"]):
        conf_sink.clear()
        conf_expected += pricing_case(g, esc, case, conf_sink)
        done["pricing"] += 1
    for case in range(plan["configure"]):
        n, ok = configure_case(g, esc, case, conf_sink)
        conf_expected += n
        conf_ok += ok
        done["configure"] += 1
    vividly_trace.shutdown(timeout=5)
    elapsed = time.monotonic() - started

    total = sum(done.values())
    escaped = sum(esc.count.values())
    figures.record(
        "hostile input: every public entry point",
        version,
        cases=total,
        per_entry_point=", ".join(f"{k} {v:,}" for k, v in done.items()),
        seed=str(seed),
        exceptions_reaching_the_caller=escaped,
        allowed_exceptions=sum(esc.allowed.values()),
        records_expected=expected,
        records_per_sink="memory {memory:,}, jsonl {jsonl:,}, sqlite {sql:,}".format(**background),
        dropped_per_sink=", ".join(f"{k} {v}" for k, v in counted.items()),
        seconds=round(elapsed, 1),
    )
    summary = "\n".join(f"{n:5d} x {k}" for k, n in esc.kinds.most_common())
    summary += f"\nrecords: expected {expected}, got {background}, dropped {counted}"
    summary += f"\nunparsable jsonl lines: {unparsable}; drops: "
    summary += str({k: v["dropped"] for k, v in stats["sinks"].items()})
    summary += "\n" + "\n".join(_missing(memory.records, jsonl))
    assert esc.found == [], summary + "\n\n" + "\n\n".join(esc.found)
    assert total >= (10_000 if version == LONG else 2_000)
    assert unparsable == 0
    assert counted == {"memory": 0, "jsonl": 0, "sql": 0}, stats["sinks"]
    assert background == {"memory": expected, "jsonl": expected, "sql": expected}, stats


def _missing(records: list[Any], jsonl: Path) -> list[str]:
    """Records of the memory sink absent from the JSON-lines file (for the failure message)."""
    seen = set()
    for line in jsonl.read_bytes().splitlines() if jsonl.exists() else []:
        try:
            seen.add(json.loads(line)["execution_id"])
        except (ValueError, KeyError):
            continue
    return [
        f"missing from jsonl: {_safe(r)[:1000]}" for r in records if r.execution_id not in seen
    ][:5]


def _read_lines(path: Path) -> tuple[int, int]:
    good = bad = 0
    for line in path.read_bytes().splitlines() if path.exists() else []:
        try:
            json.loads(line)
            good += 1
        except ValueError:
            bad += 1
    return good, bad
