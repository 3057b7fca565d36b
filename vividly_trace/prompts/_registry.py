"""``PromptRegistry``: one store's prompts behind an in-process cache.

A key's snapshot (versions, labels, rollout) is read in one query and kept ``ttl`` seconds.
After that the next ``get`` still answers from it at once and starts one background
refresh (stale-while-revalidate). When the store cannot be reached, the last snapshot
keeps being served (counted as ``served_last_known``) and the refresh is retried every
``retry_after`` seconds; with no snapshot at all the caller's fallback is used (counted
as ``fallbacks``), and only without one does ``get`` raise.
"""

from __future__ import annotations

import copy
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.engine import Engine

from .._assign import choose_variant
from .._context import current_call, current_scope
from .._lifecycle import on_fork
from .._safety import warn_limited
from ..exceptions import ConfigurationError
from ..sinks.sql import migrate
from ._prompt import Prompt, PromptNotFoundError, PromptUnavailableError
from ._store import Snapshot, check_key, load_snapshot, push_version, set_rollout
from ._store import list_keys as _list_keys

__all__ = ["COUNTERS", "PromptRegistry"]

COUNTERS = (
    "queries",
    "hits",
    "stale_hits",
    "refreshes",
    "refresh_failures",
    "fetch_failures",
    "served_last_known",
    "fallbacks",
    "not_found",
)
"""The counters of :meth:`PromptRegistry.stats`, in order."""

CONTROL_GROUP = "control"
TREATMENT_GROUP = "treatment"


class _Entry:
    """The cached snapshot of one key and the state of its refresh."""

    __slots__ = ("failed_at", "load_lock", "loaded_at", "refresher", "refreshing", "snapshot")

    def __init__(self) -> None:
        self.snapshot: Snapshot | None = None
        self.loaded_at = 0.0
        self.failed_at: float | None = None  # the last load failed (then), else None
        self.refresher: threading.Thread | None = None
        self.refreshing = False  # set before the refresher starts, cleared when it ends
        self.load_lock = threading.Lock()


class _Unavailable(Exception):
    """The store could not be read (the message names why, password hidden)."""


class PromptRegistry:
    """The prompts of one SQL store, cached in this process.

    Most code uses the module functions of :mod:`vividly_trace.prompts`, which keep one
    registry per store. Build one yourself for another TTL or clock::

        registry = PromptRegistry("postgresql+psycopg://app@db/app", ttl=30)
        prompt = registry.get("nlu_extraction", user_id=user.id, fallback=DEFAULT_TEXT)

    Args:
        url: the database URL (as for :class:`~vividly_trace.sinks.sql.SQLSink`).
        engine: an existing SQLAlchemy engine instead (left open by :meth:`close`).
        ttl: seconds a key's snapshot is served before a background refresh (default 60;
            0: no cache, every ``get`` reads the store).
        retry_after: seconds between attempts while the store is unreachable (default
            ``min(ttl, 5)``).
        clock: a monotonic clock in seconds (tests).
        prepare: called once before the first query (creating or upgrading the schema);
            default: :func:`vividly_trace.sinks.sql.migrate.upgrade` on the engine.

    Raises:
        ConfigurationError: a bad URL, both or neither of ``url`` and ``engine``, a bad TTL.

    .. versionadded:: 0.4.0
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        engine: Engine | None = None,
        ttl: float = 60.0,
        retry_after: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        prepare: Callable[[], Any] | None = None,
    ) -> None:
        if (url is None) == (engine is None):
            raise ConfigurationError("PromptRegistry: pass url= or engine= (one of them)")
        self.ttl = _seconds("ttl", ttl)
        self.retry_after = (
            min(self.ttl, 5.0) if retry_after is None else _seconds("retry_after", retry_after)
        )
        if engine is None:
            from sqlalchemy.pool import NullPool

            from ..sinks.sql._engine import create_engine, parse_url, sqlite_file

            parsed = parse_url(url)  # type: ignore[arg-type]
            # A SQLite file is opened per query (one per TTL): a file moved or deleted is
            # then seen as gone, as a stopped server is.
            options = {"poolclass": NullPool} if sqlite_file(parsed) is not None else {}
            engine = create_engine(parsed, 10.0, 5.0, options)
            self._owns_engine = True
        else:
            self._owns_engine = False
        self.engine = engine
        self._clock = clock
        self._prepare = prepare or (lambda: migrate.upgrade(self.engine))
        self._prepared = False
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._counts = dict.fromkeys(COUNTERS, 0)
        on_fork(self._after_fork)

    # -- reading -------------------------------------------------------------------------
    def get(
        self,
        key: str,
        *,
        user_id: str | int | None = None,
        label: str | None = None,
        version: str | None = None,
        fallback: str | None = None,
    ) -> Prompt:
        """The prompt to use now (see :func:`vividly_trace.prompts.get`)."""
        key = check_key("prompts.get()", key)
        if label is not None and version is not None:
            raise ConfigurationError("prompts.get(): give label= or version=, not both")
        for name, value in (("label", label), ("version", version)):
            if value is not None and not isinstance(value, str):
                raise ConfigurationError(f"prompts.get(): {name} must be a string, got {value!r}")
        if user_id is not None and (
            isinstance(user_id, bool) or not isinstance(user_id, (str, int))
        ):
            raise ConfigurationError(
                f"prompts.get(): user_id must be a string or an int, got {user_id!r}"
            )
        if fallback is not None and not isinstance(fallback, str):
            raise ConfigurationError(
                f"prompts.get(): fallback must be the prompt text (a str), got {fallback!r}"
            )
        try:
            snapshot = self._snapshot(key)
        except _Unavailable as exc:
            if fallback is None:
                raise PromptUnavailableError(
                    f"prompt {key!r}: the store cannot be read and nothing is cached ({exc}); "
                    "pass fallback= to serve a default text"
                ) from None
            return self._fallback(key, fallback)
        try:
            prompt = _choose(snapshot, user_id, label, version)
        except PromptNotFoundError:
            self._count("not_found")
            if fallback is None:
                raise
            return self._fallback(key, fallback)
        call = current_call.get()
        if call is not None:
            call._use_prompt(key, prompt.version, prompt.ab_group)
        return prompt

    def snapshot(self, key: str) -> Snapshot:
        """The key's versions, labels and rollout, read from the store now (not cached).

        Raises:
            PromptUnavailableError: the store cannot be read.
        """
        key = check_key("prompts.snapshot()", key)
        try:
            return self._load(key)
        except _Unavailable as exc:
            raise PromptUnavailableError(f"prompt {key!r}: {exc}") from None

    def list_keys(self) -> list[str]:
        """Every key with a pushed version, by name (read now).

        Raises:
            PromptUnavailableError: the store cannot be read.
        """
        try:
            self._ensure_prepared()
            with self.engine.connect() as conn:
                return _list_keys(conn)
        except Exception as exc:
            raise PromptUnavailableError(_describe(self.engine, exc)) from None

    # -- writing -------------------------------------------------------------------------
    def push(
        self,
        key: str,
        text: str,
        *,
        version: str,
        model: str | None = None,
        config: Mapping[str, Any] | None = None,
        labels: Any = (),
    ) -> bool:
        """Store a version (see :func:`vividly_trace.prompts.push`)."""
        key = check_key("prompts.push()", key)
        self._ensure_prepared_or_raise()
        with self.engine.begin() as conn:
            created = push_version(conn, key, text, version, model, config, labels)
        self.invalidate(key)
        return created

    def rollout(self, key: str, weights: Mapping[str, float], *, control: str) -> dict[str, float]:
        """Set the key's rollout (see :func:`vividly_trace.prompts.rollout`)."""
        key = check_key("prompts.rollout()", key)
        self._ensure_prepared_or_raise()
        with self.engine.begin() as conn:
            stored = set_rollout(conn, key, weights, control)
        self.invalidate(key)
        return stored

    # -- the cache -----------------------------------------------------------------------
    def invalidate(self, key: str | None = None) -> None:
        """Forget the cached snapshot of ``key`` (every key when ``None``)."""
        with self._lock:
            if key is None:
                self._entries.clear()
            else:
                self._entries.pop(key, None)

    def stats(self) -> dict[str, int]:
        """The counters: ``queries`` (snapshots read from the store), ``hits`` (served
        fresh from the cache), ``stale_hits`` (served stale while a refresh ran),
        ``refreshes`` / ``refresh_failures`` (background), ``fetch_failures`` (a read with
        nothing cached failed), ``served_last_known`` (served from the cache while the
        store was unreachable), ``fallbacks`` (the caller's fallback served),
        ``not_found`` (no such key, version or label)."""
        with self._lock:
            return dict(self._counts)

    def wait_for_refresh(self, timeout: float = 10.0) -> bool:
        """Wait until no background refresh runs; False if one still does after
        ``timeout`` seconds (for tests and orderly shutdowns)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = [e.refresher for e in self._entries.values() if e.refresher is not None]
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in threads)

    def close(self) -> None:
        """Forget the cache; dispose of the engine when the registry made it."""
        self.invalidate()
        if self._owns_engine:
            self.engine.dispose()

    # -- internals -----------------------------------------------------------------------
    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def _fallback(self, key: str, text: str) -> Prompt:
        self._count("fallbacks")
        return Prompt(key=key, version=None, ab_group=None, text=text, is_fallback=True)

    def _entry(self, key: str) -> _Entry:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry()
            return entry

    def _snapshot(self, key: str) -> Snapshot:
        if not self.ttl:  # no cache: every get reads the store
            return self._load(key)
        entry = self._entry(key)
        snapshot = entry.snapshot
        now = self._clock()
        if snapshot is not None:
            if now - entry.loaded_at < self.ttl:
                self._count("hits")
                return snapshot
            self._count("stale_hits" if entry.failed_at is None else "served_last_known")
            self._start_refresh(key, entry, now)
            return snapshot
        with entry.load_lock:  # one reader per key: the others wait for its snapshot
            snapshot = entry.snapshot
            if snapshot is not None:
                self._count("hits")
                return snapshot
            failed_at = entry.failed_at
            if failed_at is not None and self._clock() - failed_at < self.retry_after:
                self._count("fetch_failures")
                raise _Unavailable("the last attempt failed moments ago")
            try:
                snapshot = self._load(key)
            except _Unavailable:
                entry.failed_at = self._clock()
                self._count("fetch_failures")
                raise
            entry.snapshot, entry.loaded_at, entry.failed_at = snapshot, self._clock(), None
            return snapshot

    def _start_refresh(self, key: str, entry: _Entry, now: float) -> None:
        with self._lock:
            if entry.refreshing:
                return
            if now - entry.loaded_at < self.ttl:  # refreshed since the caller looked
                return
            if entry.failed_at is not None and now - entry.failed_at < self.retry_after:
                return
            thread = threading.Thread(
                target=self._refresh,
                args=(key, entry),
                name=f"vividly-trace-prompts:{key}"[:60],
                daemon=True,
            )
            entry.refresher, entry.refreshing = thread, True
        try:
            thread.start()
        except RuntimeError:  # no more threads (interpreter shutdown): serve the stale one
            with self._lock:
                entry.refreshing = False

    def _refresh(self, key: str, entry: _Entry) -> None:
        try:
            snapshot = self._load(key)
        except _Unavailable:
            with self._lock:
                entry.failed_at, entry.refreshing = self._clock(), False
                self._counts["refresh_failures"] += 1
            return
        with self._lock:
            entry.snapshot, entry.loaded_at, entry.failed_at = snapshot, self._clock(), None
            entry.refreshing = False
            self._counts["refreshes"] += 1

    def _load(self, key: str) -> Snapshot:
        """Read the key's snapshot (one query); failures become :class:`_Unavailable`
        with a warning."""
        try:
            self._ensure_prepared()
            self._count("queries")
            with self.engine.connect() as conn:
                return load_snapshot(conn, key)
        except Exception as exc:  # the store's failure, whatever the driver raised
            text = _describe(self.engine, exc)
            warn_limited(
                f"prompts_unavailable:{self.engine.url!r}",
                "vividly_trace prompts: cannot read prompt %r from the store, serving the "
                "cached prompt or the fallback: %s",
                key,
                text,
            )
            raise _Unavailable(text) from None

    def _ensure_prepared(self) -> None:
        if not self._prepared:
            self._prepare()
            self._prepared = True

    def _ensure_prepared_or_raise(self) -> None:
        try:
            self._ensure_prepared()
        except Exception as exc:
            raise PromptUnavailableError(_describe(self.engine, exc)) from None

    def _after_fork(self) -> None:
        """In a forked child: the parent's locks and refresh threads are not ours."""
        self._lock = threading.Lock()
        self._entries = {}


def _seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ConfigurationError(f"PromptRegistry: {name} must be seconds >= 0, got {value!r}")
    return float(value)


def _describe(engine: Engine, exc: BaseException) -> str:
    from ..sinks.sql._engine import describe_error

    if isinstance(exc, (PromptUnavailableError, ConfigurationError)):
        return str(exc)
    if type(exc).__name__ == "SQLSinkError":
        return str(exc)
    return describe_error(exc, engine.url)


def _choose(
    snapshot: Snapshot, user_id: str | int | None, label: str | None, version: str | None
) -> Prompt:
    """The prompt ``get`` serves from ``snapshot``: the version asked for, else the
    label's, else the rollout's choice for the user, else ``production``'s, else the
    latest."""
    key = snapshot.key
    group: str | None = None
    if not snapshot.versions:
        raise PromptNotFoundError(f"no prompt {key!r} in the store (push one first)")
    if version is not None:
        chosen = snapshot.versions.get(version)
        if chosen is None:
            raise PromptNotFoundError(
                f"prompt {key!r} has no version {version!r} "
                f"(versions: {', '.join(snapshot.versions)})"
            )
    elif label is not None:
        name = snapshot.labels.get(label)
        if name is None or name not in snapshot.versions:
            raise PromptNotFoundError(
                f"prompt {key!r} has no label {label!r} "
                f"(labels: {', '.join(sorted(snapshot.labels)) or 'none'})"
            )
        chosen = snapshot.versions[name]
    elif snapshot.weights:
        unit: str | int | None = user_id
        if unit is None:
            scope = current_scope.get()
            unit = scope.user_id if scope is not None else None
        if unit is None:
            unit = uuid.uuid4().hex  # no user: a weighted random choice, not sticky
        name = choose_variant(key, unit, snapshot.weights)
        found = snapshot.versions.get(name)
        if found is None:  # pragma: no cover - rollout() checks its versions exist
            raise PromptNotFoundError(f"prompt {key!r}: the rollout names version {name!r}")
        chosen = found
        group = CONTROL_GROUP if name == snapshot.control else TREATMENT_GROUP
    else:
        production = snapshot.labels.get("production")
        latest = snapshot.latest
        chosen = snapshot.versions.get(production) if production is not None else None
        chosen = chosen or latest
        if chosen is None:  # pragma: no cover - versions is not empty
            raise PromptNotFoundError(f"no prompt {key!r} in the store")
    return Prompt(
        key=key,
        version=chosen.version,
        ab_group=group,
        text=chosen.text,
        model=chosen.model,
        config=copy.deepcopy(dict(chosen.config)),
    )
