"""Context caches of the fake Gemini (``client.caches`` of ``google-genai``).

:class:`~vividly_trace.testing.fake_gemini.FakeGeminiServer` routes every
``/{version}/cachedContents...`` request here. Endpoints, as google-genai 3.6.1 calls them
on the Gemini API:

* ``POST .../cachedContents`` (``caches.create``): body ``{"model": "models/...",
  "contents": [...], "systemInstruction": ..., "ttl": "300s" | "expireTime": ...,
  "displayName": ...}``. It takes the :class:`~vividly_trace.testing.fake_gemini.Scenario`
  that answers it from the server (``_next_scenario``: queue, rules, matching by model or
  prompt, default); ``error_status``, ``delay_s`` and ``hang_s`` apply. The answer is the
  ``CachedContent`` resource: ``name`` (``cachedContents/...``), ``model``, ``displayName``
  (if given), ``createTime``, ``updateTime``, ``expireTime`` (now + ``ttl``; one hour, the
  API's default, when neither ``ttl`` nor ``expireTime`` is given) and
  ``usageMetadata: {"totalTokenCount": prompt_tokens}``: the tokens the cache holds, the
  only usage the Gemini API reports for a cache (``omit_prompt_tokens=True`` leaves it out).
  The contents are input only: never answered back.
* ``GET .../cachedContents/{id}`` (``caches.get``), ``PATCH`` (``caches.update``: a new
  ``ttl`` or ``expireTime``), ``DELETE`` (``caches.delete``: ``{}``): these consume no
  scenario. A cache that does not exist, was deleted or has expired is answered 403
  ``PERMISSION_DENIED`` "CachedContent not found (or permission denied)", as the API does.
* ``GET .../cachedContents`` (``caches.list``): ``{"cachedContents": [...]}``.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._http import LocalRequestHandler
    from .fake_gemini import FakeGeminiServer, Scenario

__all__ = ["FakeCaches", "caches", "handles", "serve"]

_PATH_RE = re.compile(r"^/(?P<version>v1|v1beta|v1alpha)/cachedContents(?:/(?P<id>[^/:]+))?$")
_TTL_RE = re.compile(r"^(?P<seconds>\d+(?:\.\d+)?)s$")
_DEFAULT_TTL_S = 3600.0
_NOT_FOUND = "CachedContent not found (or permission denied)"
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


@dataclass
class FakeCaches:
    """The context caches of one fake server: resource name -> the resource as answered
    (``expireTime`` included), with its expiry as a ``time.time()`` value."""

    stored: dict[str, dict[str, Any]] = field(default_factory=dict)
    expires: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def get(self, name: str) -> dict[str, Any] | None:
        """The live cache ``name`` (``cachedContents/...``), or None (absent or expired)."""
        with self._lock:
            return self._live(name)

    def clear(self) -> None:
        """Forget every cache."""
        with self._lock:
            self.stored.clear()
            self.expires.clear()

    def _live(self, name: str) -> dict[str, Any] | None:
        resource = self.stored.get(name)
        if resource is not None and self.expires[name] <= time.time():
            del self.stored[name], self.expires[name]  # expired: the API deletes it
            return None
        return resource


_states: weakref.WeakKeyDictionary[Any, FakeCaches] = weakref.WeakKeyDictionary()
_states_lock = threading.Lock()


def caches(server: FakeGeminiServer) -> FakeCaches:
    """The context-cache state of ``server`` (created on first use)."""
    with _states_lock:
        state = _states.get(server)
        if state is None:
            state = _states[server] = FakeCaches()
        return state


def handles(path: str) -> bool:
    """True for the paths this module answers."""
    return _PATH_RE.match(path) is not None


def _timestamp(when: float) -> str:
    """RFC 3339 in UTC with microseconds, as the API writes times."""
    moment = _dt.datetime.fromtimestamp(when, _dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _expiry(payload: dict[str, Any], now: float) -> float | None:
    """When a cache asked for with ``payload`` expires (None: unreadable)."""
    ttl = payload.get("ttl")
    if isinstance(ttl, str):
        found = _TTL_RE.match(ttl)
        return now + float(found.group("seconds")) if found else None
    expire = payload.get("expireTime")
    if isinstance(expire, str):
        try:
            moment = _dt.datetime.fromisoformat(expire.replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=_dt.timezone.utc)
        return moment.timestamp()
    return now + _DEFAULT_TTL_S


def _send(handler: LocalRequestHandler, status: int, obj: Any) -> None:
    body = json.dumps(obj, separators=(",", ":")).encode("utf-8")
    handler.answer(status, "application/json; charset=UTF-8", body)


def _error(handler: LocalRequestHandler, status: int, message: str) -> None:
    name = _STATUS_NAMES.get(status, "UNKNOWN")
    _send(handler, status, {"error": {"code": status, "message": message, "status": name}})


def serve(
    server: FakeGeminiServer,
    handler: LocalRequestHandler,
    path: str,
    query: dict[str, str],
    body: Any,
) -> None:
    """Answer one request to ``/{version}/cachedContents...``."""
    match = _PATH_RE.match(path)
    assert match is not None  # the caller checked handles(path)
    cache_id = match.group("id")
    payload = body if isinstance(body, dict) else {}
    state = caches(server)
    name = f"cachedContents/{cache_id}" if cache_id is not None else None
    model = payload.get("model") if name is None else None
    if model is None and name is not None:
        stored = state.get(name)
        model = stored.get("model") if stored is not None else None
    bare = model.removeprefix("models/") if isinstance(model, str) else None
    with server._lock:
        server.requests.append(
            {
                "method": handler.command,
                "path": path,
                "query": query,
                "model": bare,
                "stream": False,
                "body": body,
                "headers": {k.lower(): v for k, v in handler.headers.items()},
                "service_tier": None,
            }
        )
    command = handler.command
    if name is None and command == "POST":
        _create(server, state, handler, payload, model)
    elif name is None and command == "GET":
        with state._lock:
            live = [r for n in list(state.stored) if (r := state._live(n)) is not None]
        _send(handler, 200, {"cachedContents": live} if live else {})
    elif name is not None and command in ("GET", "PATCH", "DELETE"):
        _one(state, handler, name, command, payload)
    else:
        _error(handler, 404, f"{command} {path} is not found")


def _held(server: FakeGeminiServer, handler: LocalRequestHandler, scenario: Scenario) -> bool:
    """Apply ``hang_s`` / ``delay_s``; True when the connection is to be closed unanswered."""
    if scenario.hang_s > 0:
        server._stopping.wait(scenario.hang_s)
        handler.close_connection = True
        return True
    if scenario.delay_s > 0 and server._stopping.wait(scenario.delay_s):
        handler.close_connection = True
        return True
    return False


def _create(
    server: FakeGeminiServer,
    state: FakeCaches,
    handler: LocalRequestHandler,
    payload: dict[str, Any],
    model: Any,
) -> None:
    if not isinstance(model, str) or not model:
        _error(handler, 400, "* CreateCachedContentRequest.cached_content.model: required")
        return
    scenario = server._next_scenario(model, payload)
    if _held(server, handler, scenario):
        return
    if scenario.error_status is not None:
        _error(handler, scenario.error_status, scenario.error_message)
        return
    now = time.time()
    expires = _expiry(payload, now)
    if expires is None:
        _error(handler, 400, "invalid ttl or expireTime")
        return
    with server._lock:
        name = f"cachedContents/fake-cache-{next(server._ids)}"
    resource: dict[str, Any] = {"name": name, "model": model}
    if isinstance(payload.get("displayName"), str):
        resource["displayName"] = payload["displayName"]
    resource["createTime"] = resource["updateTime"] = _timestamp(now)
    resource["expireTime"] = _timestamp(expires)
    if not scenario.omit_prompt_tokens:
        resource["usageMetadata"] = {"totalTokenCount": scenario.prompt_tokens}
    with state._lock:
        state.stored[name] = resource
        state.expires[name] = expires
    _send(handler, 200, resource)


def _one(
    state: FakeCaches,
    handler: LocalRequestHandler,
    name: str,
    command: str,
    payload: dict[str, Any],
) -> None:
    """Get, update or delete the cache ``name``."""
    with state._lock:
        resource = state._live(name)
        if resource is None:
            answer: Any = None
        elif command == "DELETE":
            del state.stored[name], state.expires[name]
            answer = {}
        elif command == "PATCH":
            now = time.time()
            expires = _expiry(payload, now) if payload else None
            if expires is None:
                answer = False
            else:
                resource = state.stored[name] = {
                    **resource,
                    "updateTime": _timestamp(now),
                    "expireTime": _timestamp(expires),
                }
                state.expires[name] = expires
                answer = resource
        else:
            answer = resource
    if answer is None:
        _error(handler, 403, _NOT_FOUND)
    elif answer is False:
        _error(handler, 400, "invalid ttl or expireTime")
    else:
        _send(handler, 200, answer)
