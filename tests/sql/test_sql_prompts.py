"""Prompts in the store (``vividly_trace.prompts``) on SQLite and PostgreSQL: push, labels,
rollout, sticky ``get`` per user, render errors, the cache (one query per TTL from 16
threads), stale-while-revalidate, the store stopped while prompts are fetched, and the
logged call that records the version and group of the prompt it fetched."""

from __future__ import annotations

import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import vividly_trace
from vividly_trace import choose_variant, logged_prompt, prompts
from vividly_trace.analytics import compare_ab
from vividly_trace.exceptions import ConfigurationError
from vividly_trace.prompts import (
    PromptNotFoundError,
    PromptRegistry,
    PromptRenderError,
    PromptUnavailableError,
)
from vividly_trace.sinks.sql import SQLSink
from vividly_trace.testing.fake_gemini import Scenario

FLASH = "gemini-2.5-flash"
KEY = "nlu_extraction"
V1 = "Extract the intent of: {{ text }}"
V2 = "Intent of {{text}}? Answer in one word, {{ style }}."


class FakeClock:
    """A monotonic clock the test moves by hand: the TTL passes when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def _fresh_prompt_caches() -> Iterator[None]:
    prompts.clear_cache()
    yield
    prompts.clear_cache()


def snapshot_queries(engine: sa.Engine) -> list[str]:
    """The snapshot queries (the ones that read ``prompt_deployments``) run on ``engine``
    from now on."""
    seen: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "prompt_deployments" in statement and statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", before)
    return seen


def push_two(url: str) -> None:
    assert prompts.push(KEY, V1, version="v1", model=FLASH, labels=["production"], url=url)
    assert prompts.push(
        KEY, V2, version="v2", model="gemini-2.5-pro", config={"temperature": 0.2}, url=url
    )


def test_push_then_get_by_label_version_and_default(db_url: str) -> None:
    """A pushed version is served with its text, model and config; the default is the
    version labelled production; pushing the same version again changes nothing and a
    different text for it is refused (versions are immutable)."""
    push_two(db_url)
    default = prompts.get(KEY, url=db_url)
    assert (default.version, default.ab_group, default.text, default.model) == (
        "v1",
        None,
        V1,
        FLASH,
    )
    v2 = prompts.get(KEY, version="v2", url=db_url)
    assert (v2.text, v2.model, dict(v2.config)) == (V2, "gemini-2.5-pro", {"temperature": 0.2})
    assert prompts.get(KEY, label="production", url=db_url).version == "v1"

    assert prompts.push(KEY, V1, version="v1", model=FLASH, url=db_url) is False
    with pytest.raises(ConfigurationError, match="immutable"):
        prompts.push(KEY, V1 + "!", version="v1", model=FLASH, url=db_url)
    with pytest.raises(ConfigurationError, match="immutable"):
        prompts.push(KEY, V1, version="v1", model="gemini-2.5-pro", url=db_url)

    # Moving the label: pushing v2 again with labels=production points production at v2.
    assert (
        prompts.push(
            KEY,
            V2,
            version="v2",
            model="gemini-2.5-pro",
            config={"temperature": 0.2},
            labels=["production", "canary"],
            url=db_url,
        )
        is False
    )
    assert prompts.get(KEY, url=db_url).version == "v2"
    snap = prompts.snapshot(KEY, url=db_url)
    assert list(snap.versions) == ["v1", "v2"]
    assert snap.labels == {"production": "v2", "canary": "v2"}
    assert prompts.list_keys(url=db_url) == [KEY]

    with pytest.raises(PromptNotFoundError, match="no version 'v9'"):
        prompts.get(KEY, version="v9", url=db_url)
    with pytest.raises(PromptNotFoundError, match="no label 'beta'"):
        prompts.get(KEY, label="beta", url=db_url)
    with pytest.raises(PromptNotFoundError, match="no prompt 'other'"):
        prompts.get("other", url=db_url)
    assert prompts.get("other", fallback="plain {{ text }}", url=db_url).is_fallback


def test_latest_version_without_production_label(db_url: str) -> None:
    """No rollout and no production label: the version pushed last."""
    prompts.push("k", "one", version="a", url=db_url)
    prompts.push("k", "two", version="b", url=db_url)
    assert prompts.get("k", url=db_url).version == "b"


def test_register_template_text_is_served(db_url: str) -> None:
    """A text stored with register_template(key, version=, text=) is a version too."""
    from vividly_trace.sinks.sql import register_template

    register_template("legacy", version="v7", text="Old {{ x }}", url=db_url)
    assert prompts.get("legacy", url=db_url).render(x=1) == "Old 1"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: prompts.push("", "t", version="v"), "key must be a non-empty string"),
        (lambda: prompts.push("k", "", version="v"), "text must be a non-empty string"),
        (lambda: prompts.push("k", "t", version=""), "version must be a non-empty string"),
        (lambda: prompts.push("k", "t", version="v", labels="prod"), "labels must be a list"),
        (lambda: prompts.push("k", "t", version="v", config=[1]), "config must be a mapping"),
        (lambda: prompts.push("k", "t", version="v", config={"x": {1}}), "JSON-safe"),
        (lambda: prompts.push("k", "t\x00", version="v"), "NUL"),
        (lambda: prompts.get("k", label="a", version="b"), "not both"),
        (lambda: prompts.get("k", user_id=1.5), "user_id must be"),
        (lambda: prompts.get("k", label=["a"]), "label must be a string"),
        (lambda: prompts.get("k", fallback=3), "fallback must be"),
    ],
)
def test_bad_arguments_are_clear_errors(db_url: str, call: Any, message: str) -> None:
    vividly_trace.configure(sinks=[SQLSink(db_url)])
    with pytest.raises(ConfigurationError, match=message):
        call()


def test_rollout_is_sticky_per_user_with_choose_variants_hashing(db_url: str) -> None:
    """Each user gets the version choose_variant gives them, on every call; the control is
    group "control", the others "treatment"; the shares follow the weights."""
    push_two(db_url)
    weights = {"v1": 0.5, "v2": 0.5}
    assert prompts.rollout(KEY, weights, control="v1", url=db_url) == weights
    served: Counter[str] = Counter()
    for n in range(400):
        user = f"user-{n}"
        first = prompts.get(KEY, user_id=user, url=db_url)
        assert first.version == choose_variant(KEY, user, weights)
        assert first.ab_group == ("control" if first.version == "v1" else "treatment")
        for _ in range(3):
            assert prompts.get(KEY, user_id=user, url=db_url).version == first.version
        served[first.version] += 1
    assert 150 < served["v1"] < 250 and served["v1"] + served["v2"] == 400
    # An int id hashes as choose_variant hashes it; the user bound by context() is used.
    assert prompts.get(KEY, user_id=42, url=db_url).version == choose_variant(KEY, 42, weights)
    with vividly_trace.context(user_id="bound-user"):
        chosen = prompts.get(KEY, url=db_url).version
    assert chosen == choose_variant(KEY, "bound-user", weights)
    # Label and version still pin a version, outside the experiment.
    pinned = prompts.get(KEY, user_id="user-1", version="v2", url=db_url)
    assert (pinned.version, pinned.ab_group) == ("v2", None)

    # A new split moves only the users between the old and new boundaries.
    before = {
        f"user-{n}": prompts.get(KEY, user_id=f"user-{n}", url=db_url).version for n in range(400)
    }
    prompts.rollout(KEY, {"v1": 0.2, "v2": 0.8}, control="v1", url=db_url)
    after = {u: prompts.get(KEY, user_id=u, url=db_url).version for u in before}
    assert all(after[u] == "v2" for u, v in before.items() if v == "v2")
    assert sum(v == "v1" for v in after.values()) < sum(v == "v1" for v in before.values())


def test_rollout_errors(db_url: str) -> None:
    push_two(db_url)
    with pytest.raises(ConfigurationError, match="versions never pushed: 'v3'"):
        prompts.rollout(KEY, {"v1": 1, "v3": 1}, control="v1", url=db_url)
    with pytest.raises(ConfigurationError, match="control 'v2' is not among the weights"):
        prompts.rollout(KEY, {"v1": 1}, control="v2", url=db_url)
    with pytest.raises(ConfigurationError, match="must be finite and >= 0"):
        prompts.rollout(KEY, {"v1": -1, "v2": 1}, control="v1", url=db_url)
    with pytest.raises(ConfigurationError, match="non-empty mapping"):
        prompts.rollout(KEY, {}, control="v1", url=db_url)
    assert prompts.snapshot(KEY, url=db_url).weights is None


def test_render_fills_placeholders_and_names_what_is_wrong(db_url: str) -> None:
    push_two(db_url)
    v2 = prompts.get(KEY, version="v2", url=db_url)
    assert v2.variables == {"text", "style"}
    assert v2.render(text="a table", style="politely") == (
        "Intent of a table? Answer in one word, politely."
    )
    with pytest.raises(PromptRenderError, match="missing variables style") as missing:
        v2.render(text="a table")
    assert "'nlu_extraction' version 'v2'" in str(missing.value)
    with pytest.raises(PromptRenderError, match="variables not in the template mood"):
        v2.render(text="x", style="y", mood="z")
    with pytest.raises(PromptRenderError, match=r"missing variables style, text; .* mood"):
        v2.render(mood="z")
    assert isinstance(missing.value, ValueError)


def test_one_query_per_ttl_from_16_threads(db_url: str) -> None:
    """1,000 gets from each of 16 threads at once read the store once; after the TTL,
    16 threads again: one more query (the background refresh), and none waited for it."""
    push_two(db_url)
    prompts.rollout(KEY, {"v1": 1, "v2": 1}, control="v1", url=db_url)
    clock = FakeClock()
    registry = PromptRegistry(db_url, ttl=60, clock=clock)
    queries = snapshot_queries(registry.engine)
    start = threading.Barrier(16)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            start.wait()
            for n in range(1000):
                prompt = registry.get(KEY, user_id=f"u{worker}-{n % 50}")
                assert prompt.version in ("v1", "v2")
        except BaseException as exc:  # reported below
            errors.append(exc)

    def run_all() -> None:
        threads = [threading.Thread(target=work, args=(w,)) for w in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []

    run_all()
    assert len(queries) == 1
    assert registry.stats()["queries"] == 1
    assert registry.stats()["hits"] == 16_000 - 1  # all but the one that read the store
    clock.advance(60)
    run_all()
    assert registry.wait_for_refresh()
    assert len(queries) == 2
    stats = registry.stats()
    assert (stats["refreshes"], stats["fetch_failures"], stats["refresh_failures"]) == (1, 0, 0)
    assert stats["stale_hits"] >= 1
    registry.close()


def test_ttl_zero_reads_the_store_every_time(db_url: str) -> None:
    push_two(db_url)
    registry = PromptRegistry(db_url, ttl=0)
    queries = snapshot_queries(registry.engine)
    for _ in range(3):
        assert registry.get(KEY).version == "v1"
    assert len(queries) == 3 and registry.stats()["hits"] == 0
    assert registry.wait_for_refresh(timeout=0)
    registry.close()


def test_stale_while_revalidate(db_url: str) -> None:
    """Another process moves the production label: this one serves the cached version
    until the TTL, then once more (stale) while the refresh runs, then the new one."""
    push_two(db_url)
    clock = FakeClock()
    registry = PromptRegistry(db_url, ttl=30, clock=clock)
    assert registry.get(KEY).version == "v1"
    other = PromptRegistry(db_url)  # another process's registry
    other.push(
        KEY,
        V2,
        version="v2",
        model="gemini-2.5-pro",
        config={"temperature": 0.2},
        labels=["production"],
    )
    clock.advance(29)
    assert registry.get(KEY).version == "v1"  # within the TTL: the cache
    clock.advance(1)
    assert registry.get(KEY).version == "v1"  # stale, served at once; refresh started
    assert registry.wait_for_refresh()
    assert registry.get(KEY).version == "v2"
    stats = registry.stats()
    assert (stats["queries"], stats["stale_hits"], stats["refreshes"]) == (2, 1, 1)
    other.close()
    registry.close()


class _Store:
    """A store that can be stopped and started: its own PostgreSQL server, or a SQLite
    file whose directory is moved away and back."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        if kind == "postgresql":
            from vividly_trace.testing.postgres import PostgresServer

            self.server = PostgresServer(tmp_path / "pg").start()
            self.url = self.server.create_database()
        else:
            self.home = tmp_path / "store"
            self.away = tmp_path / "moved"
            self.home.mkdir()
            self.url = f"sqlite:///{self.home / 'store.db'}"

    def stop(self) -> None:
        if self.kind == "postgresql":
            self.server.kill()
        else:
            shutil.move(self.home, self.away)

    def start(self) -> None:
        if self.kind == "postgresql":
            self.server.start()
        else:
            shutil.move(self.away, self.home)

    def remove(self) -> None:
        if self.kind == "postgresql":
            self.server.remove()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_store_stopped_while_prompts_are_fetched(kind: str, tmp_path: Path) -> None:
    """The store stops while 8 threads fetch prompts: the cached prompt keeps being served,
    a key never cached gets its fallback, all counted, nothing raised into the callers;
    only a key with neither raises PromptUnavailableError. Back up, the refresh succeeds."""
    store = _Store(kind, tmp_path)
    try:
        clock = FakeClock()
        prompts.push(KEY, V1, version="v1", labels=["production"], url=store.url)
        registry = PromptRegistry(store.url, ttl=10, retry_after=5, clock=clock)
        assert registry.get(KEY).text == V1
        store.stop()
        clock.advance(10)
        served: list[tuple[str | None, bool]] = []
        errors: list[BaseException] = []

        def fetch() -> None:
            try:
                for _ in range(50):
                    cached = registry.get(KEY)
                    fallback = registry.get("never_cached", fallback="default {{ text }}")
                    served.append((cached.version, fallback.is_fallback))
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=fetch) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert registry.wait_for_refresh(timeout=60)
        assert errors == []
        assert set(served) == {("v1", True)} and len(served) == 400
        with pytest.raises(PromptUnavailableError, match="cannot be read and nothing is cached"):
            registry.get("never_cached")
        stats = registry.stats()
        assert stats["refresh_failures"] == 1
        assert stats["fallbacks"] == 400
        assert stats["fetch_failures"] == 401
        assert stats["stale_hits"] + stats["served_last_known"] == 400
        assert registry.get(KEY).version == "v1"  # still, after the failed refresh
        after = registry.stats()
        assert after["served_last_known"] == stats["served_last_known"] + 1
        assert after["refresh_failures"] == 1  # no new attempt before retry_after

        store.start()
        clock.advance(5)  # retry_after
        assert registry.get(KEY).version == "v1"  # stale once more; the refresh runs
        assert registry.wait_for_refresh(timeout=60)
        assert registry.stats()["refreshes"] == 1
        assert registry.get("never_cached", fallback="x").is_fallback  # unknown key, reachable
        assert registry.stats()["not_found"] == 1
        registry.close()
    finally:
        store.remove()


def test_no_store_serves_the_fallback_or_raises() -> None:
    """Nothing configured: the fallback is served and counted; without one, a clear error."""
    prompt = prompts.get(KEY, fallback="hello {{ who }}")
    assert (prompt.is_fallback, prompt.version, prompt.render(who="you")) == (
        True,
        None,
        "hello you",
    )
    assert prompts.stats()["fallbacks"] == 1
    with pytest.raises(ConfigurationError, match="no SQL store"):
        prompts.get(KEY)


def test_configured_sink_and_environment_are_the_default_store(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without url=: the configure()'d SQL sink's store, else $VIVIDLY_TRACE_DATABASE_URL."""
    vividly_trace.configure(sinks=[SQLSink(db_url)])
    prompts.push(KEY, V1, version="v1")
    assert prompts.get(KEY).version == "v1"
    assert prompts.list_keys(url=db_url) == [KEY]
    vividly_trace.reset()
    from vividly_trace.sinks import MemorySink

    vividly_trace.configure(sinks=[MemorySink()])
    env_url = f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.setenv("VIVIDLY_TRACE_DATABASE_URL", env_url)
    prompts.push("env_key", "from the environment", version="e1")
    assert prompts.get("env_key").text == "from the environment"
    assert prompts.list_keys(url=env_url) == ["env_key"]


def test_a_logged_call_records_the_fetched_prompts_version_and_group(
    db_url: str, client: Any, gemini: Any
) -> None:
    """The decorator fixes no version: each record carries the version and group of the
    prompt its call fetched (decorator and with-block), a fallback leaves them empty, and
    compare_ab takes the rollout's control as its control, not the first version pushed."""
    gemini.set_default(Scenario(text="book", prompt_tokens=20, candidates_tokens=2))
    vividly_trace.configure(sinks=[SQLSink(db_url)], flush_interval=0.05)
    push_two(db_url)
    prompts.push("other_key", "another prompt", version="o1")
    weights = {"v1": 0.5, "v2": 0.5}
    prompts.rollout(KEY, weights, control="v2")

    @logged_prompt(KEY)
    def extract_intent(text: str, user: str) -> str:
        prompt = prompts.get(KEY, user_id=user)
        variables = {"text": text} if prompt.version == "v1" else {"text": text, "style": "x"}
        response = client.models.generate_content(
            model=prompt.model or FLASH, contents=prompt.render(**variables)
        )
        return str(response.text)

    users = [f"user-{n}" for n in range(40)]
    for user in users:
        assert extract_intent("a table for two", user) == "book"
    with logged_prompt(KEY) as call:
        assert prompts.get("other_key").version == "o1"  # another key's prompt, then...
        served = prompts.get(KEY, user_id="with-block")  # the call's own key wins
        call.record_response(client.models.generate_content(model=FLASH, contents=served.text))
    with logged_prompt(KEY):
        prompts.get("missing", fallback="default")  # a fallback tags nothing
        client.models.generate_content(model=FLASH, contents="plain")
    assert vividly_trace.flush(timeout=30)

    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT user_id, template_version, template_ab_test_group, prompt_text "
                "FROM prompt_executions ORDER BY executed_at"
            )
        ).all()
    engine.dispose()
    assert len(rows) == len(users) + 2
    expected = [
        (v, "control" if v == "v2" else "treatment")
        for v in (choose_variant(KEY, u, weights) for u in users)
    ]
    assert [(r.template_version, r.template_ab_test_group) for r in rows[: len(users)]] == expected
    with_block = choose_variant(KEY, "with-block", weights)
    assert (rows[-2].template_version, rows[-2].template_ab_test_group) == (
        with_block,
        "control" if with_block == "v2" else "treatment",
    )
    assert (rows[-1].template_version, rows[-1].template_ab_test_group) == (None, None)

    result = compare_ab(db_url, KEY, min_samples=1)
    assert (result.baseline, result.control_source) == ("v2/control", "rollout control")
    declared = compare_ab(db_url, KEY, control="v1/treatment", min_samples=1)
    assert (declared.baseline, declared.control_source) == ("v1/treatment", "declared")
