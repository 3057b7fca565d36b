"""The offline demo behind ``vividly-trace demo``.

It runs the example services of :mod:`vividly_trace.examples` (NLU extraction in an A/B test
of two template versions, clarification with ``async with``, streamed script generation,
ad-hoc summaries) through the real ``google-genai`` client against local fake Gemini servers,
logs every call into a SQLite file with :class:`~vividly_trace.sinks.SQLSink`, then prints
the report and writes the HTML report.

The fake answers are drawn from a seeded random generator, so a run is reproducible: the two
NLU versions differ in tokens, latency and failure rate (v3 often wraps its JSON in prose or
code fences; v4, with a stricter prompt, rarely does), some calls get 429 and 500 answers,
one clarification prompt is blocked for safety, script generation streams with thinking
tokens and a cached style guide, and one stream in about twenty-five breaks mid-way.

So that the daily charts have something to show, the records' start times are spread over
the last 14 days (with a ``redact`` hook, before they reach the database); the latencies,
tokens, costs and outcomes are those of the real calls to the fake servers. Each service
runs in its own thread with its own fake server, so that the answers queued for one service
are never taken by another.

With ``GEMINI_API_KEY`` set, the same services call the real Gemini API instead: a couple of
dozen calls, real timestamps, real answers.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime as _dt
import importlib
import json
import math
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._record import PromptExecution
from ..analytics._report import Report, build_report, write_html_report
from ..exceptions import VividlyTraceError

__all__ = ["DEFAULT_CALLS", "DemoError", "DemoResult", "plan_calls", "run_demo"]

DEFAULT_CALLS = 400
"""Calls made by the offline demo unless told otherwise."""
ONLINE_CALLS = 16
"""At most this many calls against the real API (they cost money and take seconds)."""
_DAYS = 14
_SHARES = (("nlu", 0.55), ("clarification", 0.20), ("scripts", 0.12), ("summaries", 0.13))

_INTENTS = (
    ("book a table for two at eight", "book_table", {"party_size": 2, "time": "20:00"}),
    ("play some jazz in the kitchen", "play_music", {"genre": "jazz", "room": "kitchen"}),
    ("what's the weather in Oslo tomorrow", "get_weather", {"city": "Oslo", "day": "tomorrow"}),
    ("remind me to call mum at 6", "set_reminder", {"task": "call mum", "time": "18:00"}),
    ("order more coffee beans", "reorder", {"item": "coffee beans"}),
    ("turn off the lights upstairs", "lights_off", {"area": "upstairs"}),
    ("how long to the airport", "travel_time", {"destination": "airport"}),
    ("cancel my 3pm meeting", "cancel_event", {"time": "15:00"}),
)
_REQUESTS = (
    "book something for Friday",
    "play that song",
    "send it to the team",
    "move the meeting",
    "get me a ticket",
    "order the usual",
    "fix the heating",
    "find a present for her",
)
_TOPICS = (
    "tide pools",
    "sourdough",
    "night trains in Europe",
    "urban beekeeping",
    "the history of the bicycle",
    "home composting",
    "how lighthouses work",
    "rock climbing for beginners",
)
_ARTICLE = (
    "Quarterly revenue grew 12 percent as subscriptions rose, while hardware sales slipped. "
    "The company expects margins to improve next year as it moves to its own chips. "
)


class DemoError(VividlyTraceError):
    """The demo cannot run (e.g. the database file exists and is not a demo database)."""


@dataclass
class Task:
    """One planned call: which service, its input, and the fake server's answer."""

    service: str
    text: str
    user: str = ""
    scenario: Any = None  # a fake_gemini.Scenario (None against the real API)


@dataclass(frozen=True)
class DemoResult:
    """What :func:`run_demo` did.

    .. versionadded:: 0.1.0
    """

    db_path: Path
    url: str
    html_path: Path | None
    offline: bool
    planned_calls: int
    recorded: int
    failures_seen: int
    seconds: float
    report: Report
    unexpected: dict[str, int] = field(default_factory=dict)


def _example(name: str) -> Any:
    """A module of the shipped examples (``vividly_trace.examples``, from ``examples/``)."""
    return importlib.import_module(f"vividly_trace.examples.{name}")


def _variant_for(user: str) -> str:
    return str(_example("nlu_extraction").NLUExtractionService.variant_for(user))


# -- the plan -------------------------------------------------------------------------------


def _lognormal_s(rng: random.Random, median_ms: float, sigma: float, cap_ms: float) -> float:
    return min(cap_ms, median_ms * math.exp(rng.gauss(0.0, sigma))) / 1000.0


def _nlu_task(rng: random.Random, scenario_cls: Any, user: str, variant: str) -> Task:
    text, intent, slots = rng.choice(_INTENTS)
    b = variant == "B"
    scenario = scenario_cls(
        text=json.dumps({"intent": intent, "slots": slots}),
        prompt_tokens=(66 if b else 24) + len(text) // 4 + rng.randint(0, 6),
        candidates_tokens=rng.randint(18, 34),
        thoughts_tokens=rng.randint(20, 90) if b else rng.randint(0, 60),
        delay_s=_lognormal_s(rng, 30.0 if b else 22.0, 0.35, 400.0),
        model_version="gemini-2.5-flash",
    )
    draw = rng.random()
    malformed = 0.02 if b else 0.20
    if draw < 0.015:
        scenario.error_status = 429
        scenario.error_message = "Resource has been exhausted (e.g. check quota)."
    elif draw < 0.025:
        scenario.error_status = 500
        scenario.error_message = "An internal error has occurred. Please retry."
    elif draw < 0.025 + malformed:
        scenario.text = rng.choice(
            (
                "```json\n" + scenario.text + "\n```",
                f"Sure! The intent is {intent} with {len(slots)} slots.",
                scenario.text[: len(scenario.text) * 2 // 3],
                json.dumps({"slots": slots}),
            )
        )
    return Task("nlu", text, user, scenario)


def _clarification_task(rng: random.Random, scenario_cls: Any, blocked: bool) -> Task:
    text = rng.choice(_REQUESTS)
    scenario = scenario_cls(
        text="Which one do you mean: the first or the second?",
        prompt_tokens=22 + len(text) // 4,
        candidates_tokens=rng.randint(10, 28),
        thoughts_tokens=rng.randint(40, 220),
        delay_s=_lognormal_s(rng, 38.0, 0.4, 600.0),
    )
    if blocked:
        scenario.block_reason = "SAFETY"
        text = "tell me how to get into my neighbour's flat without a key"
    elif rng.random() < 0.04:
        scenario.error_status = 500
        scenario.error_message = "An internal error has occurred. Please retry."
    user = "pro" if rng.random() < 0.3 else "free"
    return Task("clarification", text, user, scenario)


def _script_task(rng: random.Random, scenario_cls: Any) -> Task:
    topic = rng.choice(_TOPICS)
    cached = 2048 if rng.random() < 0.7 else None  # the cached style guide
    scenario = scenario_cls(
        text=f"[SCENE 1] A close-up of {topic}. NARRATOR: Thirty seconds is all it takes... "
        "[SCENE 2] Wide shot. NARRATOR: ...to see why it matters.",
        prompt_tokens=2100 + rng.randint(0, 300),
        cached_tokens=cached,
        candidates_tokens=rng.randint(280, 520),
        thoughts_tokens=rng.randint(250, 900),
        stream_chunks=rng.randint(4, 7),
        delay_s=_lognormal_s(rng, 75.0, 0.4, 900.0),
    )
    draw = rng.random()
    if draw < 0.04:
        scenario.stream_error_after = 2
        scenario.error_status = 503
        scenario.error_message = "The model is overloaded. Please try again later."
    elif draw < 0.09:
        scenario.finish_reason = "MAX_TOKENS"
    return Task("scripts", topic, "", scenario)


def _summary_task(rng: random.Random, scenario_cls: Any) -> Task:
    text = _ARTICLE * rng.randint(2, 10)
    prompt = 40 + len(text) // 4
    scenario = scenario_cls(
        text="Revenue up 12% on subscriptions; hardware down; margins to improve.",
        prompt_tokens=prompt,
        cached_tokens=256 if prompt > 300 and rng.random() < 0.4 else None,
        candidates_tokens=rng.randint(18, 40),
        delay_s=_lognormal_s(rng, 14.0, 0.3, 200.0),
    )
    if rng.random() < 0.05:
        scenario.error_status = 429
        scenario.error_message = "Resource has been exhausted (e.g. check quota)."
    return Task("summaries", text, "", scenario)


def plan_calls(calls: int, seed: int = 7, *, offline: bool = True) -> dict[str, list[Task]]:
    """The calls of a demo run, per lane (each lane runs in its own thread).

    Lanes: ``nlu-1`` and ``nlu-2`` (NLU extraction, users split between them),
    ``clarification``, ``scripts`` and ``summaries``. Offline, each task carries the answer
    its fake server will give; online, none.

    .. versionadded:: 0.1.0
    """
    from ..testing.fake_gemini import Scenario

    if calls < 5:
        raise DemoError(f"the demo needs at least 5 calls, got {calls}")
    rng = random.Random(seed)
    counts = {name: max(1, round(calls * share)) for name, share in _SHARES}
    counts["nlu"] += calls - sum(counts.values())
    users = [f"user-{i:04d}" for i in range(1, 121)]
    lanes: dict[str, list[Task]] = {
        "nlu-1": [],
        "nlu-2": [],
        "clarification": [],
        "scripts": [],
        "summaries": [],
    }
    blocked_at = rng.randrange(counts["clarification"])
    for _ in range(counts["nlu"]):
        user = rng.choice(users)
        task = _nlu_task(rng, Scenario, user, _variant_for(user))
        lanes["nlu-1" if int(user[-4:]) % 2 else "nlu-2"].append(task)
    for i in range(counts["clarification"]):
        lanes["clarification"].append(_clarification_task(rng, Scenario, i == blocked_at))
    for _ in range(counts["scripts"]):
        lanes["scripts"].append(_script_task(rng, Scenario))
    for _ in range(counts["summaries"]):
        lanes["summaries"].append(_summary_task(rng, Scenario))
    if not offline:
        for tasks in lanes.values():
            for task in tasks:
                task.scenario = None
    return lanes


# -- start times spread over two weeks -------------------------------------------------------


def _spread_times(
    rng: random.Random, n: int, start: _dt.datetime, end: _dt.datetime
) -> list[_dt.datetime]:
    """``n`` sorted times in [start, end): busier on weekdays and in working hours, growing."""
    out: list[_dt.datetime] = []
    span = (end - start).total_seconds()
    while len(out) < n:
        t = start + _dt.timedelta(seconds=rng.random() * span)
        growth = 0.6 + 0.4 * (t - start).total_seconds() / span
        weekday = 0.55 if t.weekday() >= 5 else 1.0
        hour = 0.25 + math.exp(-(((t.hour + t.minute / 60) - 14.0) ** 2) / 18.0)
        if rng.random() < growth * weekday * hour / 1.25:
            out.append(t)
    out.sort()
    return out


class _Backdate:
    """A ``redact`` hook giving the k-th record of each (template, version) its planned time."""

    def __init__(self, times: dict[tuple[str, str | None], list[_dt.datetime]]) -> None:
        self._times = {key: collections.deque(value) for key, value in times.items()}
        self._lock = threading.Lock()

    def __call__(self, record: PromptExecution) -> PromptExecution:
        with self._lock:
            queue = self._times.get((record.template_key, record.template_version))
            if not queue:
                return record
            when = queue.popleft()
        return dataclasses.replace(record, started_at=when)


def _backdate_plan(lanes: dict[str, list[Task]], seed: int, now: _dt.datetime) -> _Backdate:
    rng = random.Random(seed + 1)
    counts: collections.Counter[tuple[str, str | None]] = collections.Counter()
    for lane, tasks in lanes.items():
        for task in tasks:
            if lane.startswith("nlu"):
                variant = _variant_for(task.user)
                counts[("nlu_extraction", "v4" if variant == "B" else "v3")] += 1
            elif lane == "clarification":
                counts[("clarification", "v1")] += 1
            elif lane == "scripts":
                counts[("script_generation", "v2")] += 1
            else:
                counts[("adhoc_summary", None)] += 1
    end = now - _dt.timedelta(minutes=2)
    start = (now - _dt.timedelta(days=_DAYS)).replace(hour=0, minute=0, second=0, microsecond=0)
    times = {}
    for key in sorted(counts, key=lambda k: (k[0], k[1] or "")):
        # v4 (the challenger) went live four days after v3: v3 is the A/B baseline.
        begin = start + _dt.timedelta(days=4) if key == ("nlu_extraction", "v4") else start
        times[key] = _spread_times(rng, counts[key], begin, end)
    return _Backdate(times)


# -- running the services ---------------------------------------------------------------------


def _expected_error(exc: BaseException) -> bool:
    from google.genai import errors

    parse_error = _example("nlu_extraction").NLUParseError
    return isinstance(exc, (errors.APIError, parse_error))


class _Outcome:
    def __init__(self, tick: Callable[[], None]) -> None:
        self.tick = tick
        self.failures = 0
        self.unexpected: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()

    def done(self, exc: BaseException | None = None) -> None:
        if exc is not None:
            with self.lock:
                self.failures += 1
                if not _expected_error(exc):
                    self.unexpected[f"{type(exc).__name__}: {exc}"[:200]] += 1
        self.tick()


def _run_lane(lane: str, client: Any, tasks: Sequence[Task], outcome: _Outcome) -> None:
    if lane == "clarification":
        service = _example("clarification").ClarificationService(client)

        async def clarify_all() -> None:
            for i in range(0, len(tasks), 3):  # a few requests in flight at once
                group = tasks[i : i + 3]
                results = await asyncio.gather(
                    *(service.clarify(t.text, user_tier=t.user) for t in group),
                    return_exceptions=True,
                )
                for result in results:
                    outcome.done(result if isinstance(result, BaseException) else None)

        asyncio.run(clarify_all())
        return
    run: Callable[[Task], Any]
    if lane.startswith("nlu"):
        nlu = _example("nlu_extraction").NLUExtractionService(client)
        run = lambda t: nlu.extract(t.text, t.user)  # noqa: E731
    elif lane == "scripts":
        scripts = _example("script_generation").ScriptGenerationService(client)
        run = lambda t: scripts.script(t.text)  # noqa: E731
    else:
        summarise = _example("adhoc_block").summarise
        run = lambda t: summarise(client, t.text)  # noqa: E731
    for task in tasks:
        try:
            run(task)
        except Exception as exc:
            outcome.done(exc)
        else:
            outcome.done()


@contextmanager
def _clients(lanes: dict[str, list[Task]], offline: bool) -> Iterator[dict[str, Any]]:
    """One client per lane: offline, each with its own fake server and queued answers."""
    with ExitStack() as stack:
        clients: dict[str, Any] = {}
        if offline:
            from ..testing.fake_gemini import FakeGeminiServer

            for lane, tasks in lanes.items():
                fake = stack.enter_context(FakeGeminiServer())
                fake.enqueue(*(t.scenario for t in tasks))
                clients[lane] = fake.genai_client(api_key="offline-demo")
        else:
            from google import genai

            client = genai.Client(api_key=os.environ["GEMINI_API_KEY"])
            clients = dict.fromkeys(lanes, client)
        yield clients


def _prepare_db(path: Path) -> None:
    """Remove a previous demo database; refuse to touch any other file."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        return
    if not path.is_file():
        raise DemoError(f"{path} exists and is not a file; choose another --db")
    if path.stat().st_size:
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            finally:
                conn.close()
        except sqlite3.DatabaseError:
            names = set()
        if "prompt_executions" not in names:
            raise DemoError(
                f"{path} exists and is not a vividly-trace database; choose another --db "
                "(the demo replaces its database on every run)"
            )
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def run_demo(
    db_path: str | os.PathLike[str] = "vividly_demo.db",
    html_path: str | os.PathLike[str] | None = "vividly_report.html",
    *,
    calls: int = DEFAULT_CALLS,
    seed: int = 7,
    console: Any = None,
    offline: bool | None = None,
) -> DemoResult:
    """Run the demo: call the example services, log into SQLite, report.

    Offline (no ``GEMINI_API_KEY``) it makes ``calls`` calls to local fake servers; with a
    key, at most :data:`ONLINE_CALLS` calls to the real API. The database file is replaced
    on every run (a file that is not a vividly-trace database is never touched). The
    process's vividly_trace configuration is replaced during the run and shut down after it.

    Args:
        db_path: the SQLite file to (re)create.
        html_path: where to write the HTML report (None: no HTML).
        calls: how many calls to make offline.
        seed: seed of the fake answers and start times.
        console: a rich ``Console`` for progress and the terminal report (None: silent).
        offline: ``True``: the local fake servers even when ``GEMINI_API_KEY`` is set;
            ``False``: the real API (needs the key); ``None``: real API when the key is set.

    Returns:
        A :class:`DemoResult` (the report included).

    Raises:
        DemoError: bad arguments, a --db file that is not a demo database, or records lost.

    .. versionadded:: 0.1.0
    """
    import vividly_trace

    from ..sinks.sql import SQLSink

    started = time.monotonic()
    has_key = bool(os.environ.get("GEMINI_API_KEY"))
    if offline is None:
        offline = not has_key
    elif not offline and not has_key:
        raise DemoError("calling the real Gemini API needs GEMINI_API_KEY")
    n_calls = calls if offline else min(calls, ONLINE_CALLS)
    db = Path(db_path).expanduser().resolve()
    _prepare_db(db)
    url = f"sqlite:///{db}"
    lanes = plan_calls(n_calls, seed, offline=offline)
    now = _dt.datetime.now(_dt.timezone.utc)
    planned = sum(len(t) for t in lanes.values())
    hook = _backdate_plan(lanes, seed, now) if offline else None
    vividly_trace.configure(
        sinks=[SQLSink(url, name="demo")],
        spool_dir=False,
        redact=hook,
        flush_interval=0.25,
        batch_size=200,
    )
    try:
        with _progress(console, planned, offline) as tick:
            outcome = _Outcome(tick)
            with _clients(lanes, offline) as clients:
                threads = [
                    threading.Thread(
                        target=_run_lane,
                        args=(lane, clients[lane], tasks, outcome),
                        name=f"demo-{lane}",
                        daemon=True,
                    )
                    for lane, tasks in lanes.items()
                    if tasks
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
        flushed = vividly_trace.flush(timeout=60.0)
        written = int(vividly_trace.stats()["written"])
    finally:
        vividly_trace.shutdown(timeout=10.0)
    if not flushed or written < planned:
        raise DemoError(f"only {written} of {planned} calls reached {db} (see the warnings above)")
    report = build_report(url)
    target = write_html_report(report, html_path) if html_path is not None else None
    return DemoResult(
        db_path=db,
        url=url,
        html_path=target,
        offline=offline,
        planned_calls=planned,
        recorded=written,
        failures_seen=outcome.failures,
        seconds=time.monotonic() - started,
        report=report,
        unexpected=dict(outcome.unexpected),
    )


@contextmanager
def _progress(console: Any, total: int, offline: bool) -> Iterator[Callable[[], None]]:
    if console is None:
        yield lambda: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    where = "local fake Gemini servers" if offline else "the Gemini API"
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task(f"Calling {where}", total=total)
        yield lambda: progress.advance(task)
