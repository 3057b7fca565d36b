"""Prompts served from the SQL store: versions, labels, rollouts, an in-process cache.

::

    from vividly_trace import logged_prompt, prompts

    prompts.push("nlu_extraction", "Extract the intent of: {{ text }}", version="v3",
                 model="gemini-2.5-flash", labels=["production"])
    prompts.push("nlu_extraction", "Intent of {{ text }}? One word.", version="v4")
    prompts.rollout("nlu_extraction", {"v3": 0.5, "v4": 0.5}, control="v3")

    @logged_prompt("nlu_extraction")          # no version fixed here
    def extract_intent(text, user_id):
        prompt = prompts.get("nlu_extraction", user_id=user_id, fallback=DEFAULT)
        return client.models.generate_content(
            model=prompt.model or "gemini-2.5-flash", contents=prompt.render(text=text)
        )                                      # the record carries v3/control or v4/treatment

``get`` picks, in order: ``version=``, ``label=``, the key's rollout (sticky per user:
``choose_variant`` on ``user_id``, else the user of :func:`vividly_trace.context`, else a
weighted random choice), the version labelled ``production``, the latest version. Each
key's versions, labels and rollout are cached ``ttl`` seconds (60 by default,
:func:`set_cache_ttl`) and then refreshed in the background while the cached ones are
still served; when the store cannot be read, the cached prompt or the ``fallback`` is
served and counted (:func:`stats`), and ``get`` raises only when it has neither.

The store is the one ``url=`` or ``engine=`` names, else the SQL sink of the active
:func:`vividly_trace.configure` set-up, else ``$VIVIDLY_TRACE_DATABASE_URL``. A logged call
(decorator or ``with`` block) in which ``get`` served a prompt records that prompt's version
and A/B group.

.. versionadded:: 0.4.0
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import Engine

from .._active import state as _active_state
from .._lifecycle import on_fork
from .._safety import warn_limited
from ..exceptions import ConfigurationError
from ..sinks.sql._engine import parse_url, spool_key
from ..sinks.sql._sink import SQLSink
from ._prompt import (
    Prompt,
    PromptError,
    PromptNotFoundError,
    PromptRenderError,
    PromptUnavailableError,
)
from ._registry import COUNTERS, PromptRegistry
from ._store import Snapshot, StoredVersion

__all__ = [
    "Prompt",
    "PromptError",
    "PromptNotFoundError",
    "PromptRegistry",
    "PromptRenderError",
    "PromptUnavailableError",
    "Snapshot",
    "StoredVersion",
    "clear_cache",
    "get",
    "list_keys",
    "push",
    "registry",
    "rollout",
    "set_cache_ttl",
    "snapshot",
    "stats",
]

_lock = threading.Lock()
_ttl = 60.0
_by_url: dict[str, PromptRegistry] = {}
_by_engine: weakref.WeakKeyDictionary[Engine, PromptRegistry] = weakref.WeakKeyDictionary()
_by_sink: weakref.WeakKeyDictionary[SQLSink, PromptRegistry] = weakref.WeakKeyDictionary()
_all: weakref.WeakSet[PromptRegistry] = weakref.WeakSet()
_no_store = dict.fromkeys(COUNTERS, 0)  # fallbacks served with no store to ask


def _renew_lock() -> None:
    global _lock
    _lock = threading.Lock()  # a parent thread may have held it at the fork


on_fork(_renew_lock)


def _made(made: PromptRegistry) -> PromptRegistry:
    _all.add(made)
    return made


def registry(url: str | None = None, *, engine: Engine | None = None) -> PromptRegistry:
    """The registry (and cache) of a store, made on first use and kept for the process.

    Where: ``url=`` or ``engine=``; else the first SQL sink of the active
    :func:`vividly_trace.configure` set-up (through its engine; its ``auto_migrate``
    decides whether the schema may be created); else ``$VIVIDLY_TRACE_DATABASE_URL``.

    Raises:
        ConfigurationError: both ``url`` and ``engine``, a bad URL, or no store at all.
    """
    if url is not None and engine is not None:
        raise ConfigurationError("prompts: pass url= or engine=, not both")
    if engine is not None:
        if not isinstance(engine, Engine):
            raise ConfigurationError(f"prompts: engine must be a SQLAlchemy Engine, not {engine!r}")
        with _lock:
            found = _by_engine.get(engine)
            if found is None:
                found = _by_engine[engine] = _made(PromptRegistry(engine=engine, ttl=_ttl))
            return found
    if url is None:
        for sink in _active_state.configured_sinks():
            if isinstance(sink, SQLSink):
                with _lock:
                    found = _by_sink.get(sink)
                    if found is None:
                        made = PromptRegistry(
                            engine=sink.engine, ttl=_ttl, prepare=sink.ensure_schema
                        )
                        found = _by_sink[sink] = _made(made)
                    return found
        url = os.environ.get("VIVIDLY_TRACE_DATABASE_URL", "").strip() or None
        if url is None:
            raise ConfigurationError(
                "prompts: no SQL store: pass url= or engine=, configure() a SQL sink, or set "
                "VIVIDLY_TRACE_DATABASE_URL"
            )
    where = spool_key(parse_url(url))
    with _lock:
        found = _by_url.get(where)
        if found is None:
            found = _by_url[where] = _made(PromptRegistry(url, ttl=_ttl))
        return found


def get(
    key: str,
    *,
    user_id: str | int | None = None,
    label: str | None = None,
    version: str | None = None,
    fallback: str | None = None,
    url: str | None = None,
    engine: Engine | None = None,
) -> Prompt:
    """The prompt ``key`` to use now, from the cache or the store.

    Which version: ``version=``; else ``label=``; else the key's rollout, sticky per user
    (``choose_variant(key, user_id, weights)``; without ``user_id`` the user bound by
    :func:`vividly_trace.context`, else a weighted random choice), with ``ab_group``
    ``"control"`` or ``"treatment"``; else the version labelled ``production``; else the
    latest. Inside a logged call the call records the prompt's version and group.

    Args:
        key: the prompt (template) key.
        user_id: the unit of the rollout's sticky assignment.
        label: a label (``push(labels=...)``), e.g. ``"production"``.
        version: a version, exactly.
        fallback: the text to serve (as a :class:`Prompt` with ``is_fallback``) when the
            store cannot be read and nothing is cached, or it holds no such prompt.
        url, engine: the store (default: see :func:`registry`).

    Raises:
        PromptUnavailableError: the store cannot be read, nothing is cached, no fallback.
        PromptNotFoundError: no such key, version or label, and no fallback.
        ConfigurationError: bad arguments; no store at all and no fallback.

    .. versionadded:: 0.4.0
    """
    try:
        found = registry(url, engine=engine)
    except ConfigurationError as exc:
        if fallback is None or not isinstance(fallback, str):
            raise
        warn_limited("prompts_no_store", "vividly_trace prompts: %s; serving the fallback", exc)
        with _lock:
            _no_store["fallbacks"] += 1
        return Prompt(key=key, version=None, ab_group=None, text=fallback, is_fallback=True)
    return found.get(key, user_id=user_id, label=label, version=version, fallback=fallback)


def push(
    key: str,
    text: str,
    *,
    version: str,
    model: str | None = None,
    config: Mapping[str, Any] | None = None,
    labels: Any = (),
    url: str | None = None,
    engine: Engine | None = None,
) -> bool:
    """Store ``text`` as ``version`` of the prompt ``key``.

    A version is immutable: pushing it again with the same text, model and config only
    moves ``labels`` to it; with another one it is an error. The text uses
    ``{{ name }}`` placeholders (:meth:`Prompt.render`). Each of ``labels`` (e.g.
    ``["production"]``) now points to this version. This process's cache of the key is
    dropped; other processes see the version within their TTL.

    Returns:
        True when the version was stored now, False when it was there already.

    Raises:
        ConfigurationError: bad arguments, or the version holds another text already.
        PromptUnavailableError: the store cannot be written.

    .. versionadded:: 0.4.0
    """
    return registry(url, engine=engine).push(
        key, text, version=version, model=model, config=config, labels=labels
    )


def rollout(
    key: str,
    weights: Mapping[str, float],
    *,
    control: str,
    url: str | None = None,
    engine: Engine | None = None,
) -> dict[str, float]:
    """Serve the versions of ``key`` by weight, e.g. ``{"v3": 0.5, "v4": 0.5}``, with
    ``control`` the version the others are compared with (``compare_ab`` uses it as its
    default control). The weights are checked as :func:`vividly_trace.choose_variant`
    checks them; every version must have been pushed. Replaces an earlier rollout; a user
    keeps their version as long as the weights do not move it (see ``choose_variant``).

    Returns:
        The stored weights.

    Raises:
        ConfigurationError: bad weights, a control not among them, a version never pushed.
        PromptUnavailableError: the store cannot be written.

    .. versionadded:: 0.4.0
    """
    return registry(url, engine=engine).rollout(key, weights, control=control)


def snapshot(key: str, *, url: str | None = None, engine: Engine | None = None) -> Snapshot:
    """The versions (oldest first), labels and rollout of ``key``, read now.

    Raises:
        PromptUnavailableError: the store cannot be read.

    .. versionadded:: 0.4.0
    """
    return registry(url, engine=engine).snapshot(key)


def list_keys(*, url: str | None = None, engine: Engine | None = None) -> list[str]:
    """The keys with at least one pushed version, by name, read now.

    .. versionadded:: 0.4.0
    """
    return registry(url, engine=engine).list_keys()


def stats() -> dict[str, int]:
    """The cache counters, summed over this process's registries (see
    :meth:`PromptRegistry.stats`); ``fallbacks`` includes those served with no store.

    .. versionadded:: 0.4.0
    """
    with _lock:
        total = dict(_no_store)
        registries = list(_all)
    for one in registries:
        for name, n in one.stats().items():
            total[name] += n
    return total


def set_cache_ttl(seconds: float) -> None:
    """The TTL of every registry made from now on by the module functions (default 60 s);
    the cache is cleared.

    .. versionadded:: 0.4.0
    """
    global _ttl
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0:
        raise ConfigurationError(f"prompts.set_cache_ttl(): seconds >= 0, got {seconds!r}")
    _ttl = float(seconds)
    clear_cache()


def clear_cache() -> None:
    """Forget every registry, its cached prompts and counters (tests; after a restore).

    .. versionadded:: 0.4.0
    """
    with _lock:
        registries = list(_all)
        _by_url.clear()
        _by_engine.clear()
        _by_sink.clear()
        _all.clear()
        for name in _no_store:
            _no_store[name] = 0
    for one in registries:
        one.close()
