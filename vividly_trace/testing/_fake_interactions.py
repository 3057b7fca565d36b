"""The Interactions API of the fake Gemini (``client.interactions`` of ``google-genai``).

:class:`~vividly_trace.testing.fake_gemini.FakeGeminiServer` routes every
``/{version}/interactions...`` request here. Each ``create`` takes the
:class:`~vividly_trace.testing.fake_gemini.Scenario` that answers it from the server
(``_next_scenario``), so the queue, the default and scenario matching work as for
``generateContent``; its token counts, text, ``error_status``, ``stream_chunks``,
``stream_error_after``, ``delay_s`` and ``hang_s`` apply. Endpoints:

* ``POST .../interactions``: a model (``model``) or agent (``agent``) interaction. Answered
  as one JSON ``Interaction``; with ``"stream": true`` as Server-Sent Events
  (``event: <type>`` / ``data: {json}``): ``interaction.created``, ``step.start``,
  ``stream_chunks`` ``step.delta`` text events, ``step.stop``, ``interaction.completed``
  (with the usage); with ``stream_error_after`` an ``error`` event after that many deltas.
  With ``"background": true`` the answer has status ``in_progress`` and no usage; the
  interaction completes on a later ``get`` (see :class:`FakeInteractions`).
* ``GET .../interactions/{id}`` (``?stream=true`` for events): the stored interaction.
  Gets do not consume scenarios.
* ``POST .../interactions/{id}/cancel`` and ``DELETE .../interactions/{id}``.

The usage (``Interaction.usage``) is built from the scenario with the API's semantics:
``total_input_tokens`` = ``prompt_tokens`` (its cached part included),
``total_output_tokens`` = ``candidates_tokens`` (thoughts apart, in
``total_thought_tokens``), ``total_cached_tokens``, ``total_tool_use_tokens``,
``total_tokens``; ``audio_prompt_tokens`` / ``cached_audio_tokens`` give
``input_tokens_by_modality`` / ``cached_tokens_by_modality``. The status comes from
``Scenario.finish_reason``: an interaction status (``"failed"``, ``"cancelled"``,
``"requires_action"``, ``"incomplete"``, ``"budget_exceeded"``...) is used as is,
``MAX_TOKENS`` gives ``incomplete``, a ``block_reason`` gives ``failed``, anything else
``completed``. A model interaction names its model (``model_version`` or the requested
one); an agent interaction names one only when ``model_version`` is set.

The client retries 408, 409, 429 and 5xx up to 4 times with a backoff from 0.5 s (unlike
``generate_content``): build it with :func:`interactions_client` (no retries) for tests of
errors.
"""

from __future__ import annotations

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

__all__ = ["FakeInteractions", "handles", "interactions", "interactions_client", "serve"]

_PATH_RE = re.compile(
    r"^/(?P<version>v1|v1beta|v1alpha)/interactions"
    r"(?:/(?P<id>[^/:]+)(?:/(?P<action>cancel))?)?$"
)
STATUSES = frozenset(
    {
        "in_progress",
        "requires_action",
        "completed",
        "failed",
        "cancelled",
        "incomplete",
        "budget_exceeded",
        "queued",
        "idle",
        "requires_continuation",
    }
)
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


@dataclass
class StoredInteraction:
    """An interaction the fake created, as ``get`` answers it."""

    id: str
    scenario: Scenario
    model: str | None
    agent: str | None
    status: str  # what a get answers now
    final_status: str  # what it becomes once done
    background: bool
    created_at: float  # time.monotonic() of the create
    created: str  # ISO 8601, as the API writes it
    polls: int = 0  # gets answered while in progress


@dataclass
class FakeInteractions:
    """The Interactions state of one fake server: the stored interactions and when a
    background one completes.

    A background interaction answers ``in_progress`` to its create and to the first
    ``polls_until_done - 1`` gets, then ``completed`` (or the scenario's final status);
    with ``done_after_s`` set it completes that many seconds after its create instead.
    """

    polls_until_done: int = 2
    done_after_s: float | None = None
    stored: dict[str, StoredInteraction] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def get(self, interaction_id: str) -> StoredInteraction | None:
        """The stored interaction ``interaction_id``, or None."""
        with self._lock:
            return self.stored.get(interaction_id)


_states: weakref.WeakKeyDictionary[Any, FakeInteractions] = weakref.WeakKeyDictionary()
_states_lock = threading.Lock()


def interactions(server: FakeGeminiServer) -> FakeInteractions:
    """The Interactions state of ``server`` (created on first use)."""
    with _states_lock:
        state = _states.get(server)
        if state is None:
            state = _states[server] = FakeInteractions()
        return state


def interactions_client(server: FakeGeminiServer, api_key: str = "fake-key") -> Any:
    """A ``google.genai.Client`` pointed at ``server`` that does not retry (one attempt)."""
    from google import genai
    from google.genai import types

    return genai.Client(
        vertexai=False,
        api_key=api_key,
        http_options=types.HttpOptions(
            base_url=server.url,
            api_version="v1beta",
            retry_options=types.HttpRetryOptions(attempts=1),
        ),
    )


def handles(path: str) -> bool:
    """True for a path of the Interactions API."""
    return _PATH_RE.match(path) is not None


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


def _send(handler: LocalRequestHandler, status: int, obj: Any) -> None:
    handler.answer(status, "application/json; charset=UTF-8", _dumps(obj))


def _error(handler: LocalRequestHandler, status: int, message: str) -> None:
    # The client's error schema (``errors.CreateInteractionClientErrorData``) has a string
    # ``code``: a numeric one would fail its validation (it still raises, less precisely).
    code = _STATUS_NAMES.get(status, "UNKNOWN")
    _send(handler, status, {"error": {"code": code, "message": message}})


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _final_status(scenario: Scenario) -> str:
    if scenario.block_reason is not None:
        return "failed"
    reason = scenario.finish_reason
    if reason in STATUSES:
        return reason
    return "incomplete" if reason == "MAX_TOKENS" else "completed"


def _usage(scenario: Scenario) -> dict[str, Any]:
    """``Interaction.usage`` from the scenario's counts."""
    blocked = scenario.block_reason is not None
    output = 0 if blocked else scenario.candidates_tokens
    thoughts = None if blocked else scenario.thoughts_tokens
    usage: dict[str, Any] = {
        "total_input_tokens": scenario.prompt_tokens,
        "total_output_tokens": output,
    }
    if thoughts is not None:
        usage["total_thought_tokens"] = thoughts
    if scenario.cached_tokens is not None:
        usage["total_cached_tokens"] = scenario.cached_tokens
    if scenario.tool_use_prompt_tokens is not None:
        usage["total_tool_use_tokens"] = scenario.tool_use_prompt_tokens
    total = scenario.total_tokens
    if total is None:
        total = (
            scenario.prompt_tokens
            + output
            + (thoughts or 0)
            + (scenario.tool_use_prompt_tokens or 0)
        )
    usage["total_tokens"] = total
    if scenario.omit_prompt_tokens:
        del usage["total_input_tokens"], usage["total_tokens"]
    if scenario.audio_prompt_tokens is not None:
        usage["input_tokens_by_modality"] = [
            {"modality": "text", "tokens": scenario.prompt_tokens - scenario.audio_prompt_tokens},
            {"modality": "audio", "tokens": scenario.audio_prompt_tokens},
        ]
    if scenario.cached_audio_tokens is not None:
        cached = [{"modality": "audio", "tokens": scenario.cached_audio_tokens}]
        text = (scenario.cached_tokens or 0) - scenario.cached_audio_tokens
        if text > 0:
            cached.insert(0, {"modality": "text", "tokens": text})
        usage["cached_tokens_by_modality"] = cached
    if output:
        usage["output_tokens_by_modality"] = [{"modality": "text", "tokens": output}]
    return usage


def _model_fields(stored: StoredInteraction) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if stored.agent is not None:
        fields["agent"] = stored.agent
        if stored.scenario.model_version:
            fields["model"] = stored.scenario.model_version
    elif stored.model is not None:
        fields["model"] = stored.scenario.model_version or stored.model
    return fields


def _interaction(stored: StoredInteraction, status: str) -> dict[str, Any]:
    """The ``Interaction`` JSON for ``stored`` in ``status``."""
    scenario = stored.scenario
    body: dict[str, Any] = {
        "id": stored.id,
        "object": "interaction",
        "status": status,
        **_model_fields(stored),
        "created": stored.created,
        "updated": _now_iso(),
    }
    if status in ("in_progress", "queued", "idle"):
        body["steps"] = []
        return body
    if scenario.block_reason is not None:
        body["steps"] = []
        body["errors"] = [{"code": scenario.block_reason, "message": "prompt blocked"}]
    else:
        body["steps"] = [
            {"type": "model_output", "content": [{"type": "text", "text": scenario.text}]}
        ]
        if status == "failed":
            body["errors"] = [{"code": "INTERNAL", "message": scenario.error_message}]
    body["usage"] = _usage(scenario)
    return body


def _lifecycle(stored: StoredInteraction, status: str, usage: bool) -> dict[str, Any]:
    """The partial interaction of ``interaction.created`` / ``interaction.completed``."""
    body: dict[str, Any] = {
        "id": stored.id,
        "status": status,
        "object": "interaction",
        **_model_fields(stored),
        "created": stored.created,
    }
    if usage:
        body["usage"] = _usage(stored.scenario)
    return body


def _split_text(text: str, n: int) -> list[str]:
    return [text[len(text) * i // n : len(text) * (i + 1) // n] for i in range(n)]


def _events(stored: StoredInteraction) -> list[dict[str, Any]]:
    """The SSE events of a streamed interaction, up to and with its completion."""
    scenario = stored.scenario
    events: list[dict[str, Any]] = [
        {
            "event_type": "interaction.created",
            "interaction": _lifecycle(stored, "in_progress", False),
        }
    ]
    if scenario.block_reason is None:
        events.append(
            {
                "event_type": "step.start",
                "index": 0,
                "step": {"type": "model_output", "content": []},
            }
        )
        for piece in _split_text(scenario.text, max(1, scenario.stream_chunks)):
            events.append(
                {"event_type": "step.delta", "index": 0, "delta": {"type": "text", "text": piece}}
            )
        events.append({"event_type": "step.stop", "index": 0})
    events.append(
        {
            "event_type": "interaction.completed",
            "interaction": _lifecycle(stored, stored.final_status, True),
        }
    )
    for i, event in enumerate(events):
        event["event_id"] = f"{stored.id}-e{i}"
    return events


def _stream(
    server: FakeGeminiServer,
    handler: LocalRequestHandler,
    stored: StoredInteraction,
    after: str | None = None,
) -> None:
    events = _events(stored)
    if after is not None:
        ids = [e["event_id"] for e in events]
        events = events[ids.index(after) + 1 :] if after in ids else events
    fail_after = stored.scenario.stream_error_after
    if fail_after is not None:
        deltas = 0
        cut = len(events)
        for i, event in enumerate(events):
            if event["event_type"] == "step.delta":
                if deltas == fail_after:
                    cut = i
                    break
                deltas += 1
        events = events[:cut]
        events.append(
            {
                "event_type": "error",
                "error": {"code": "INTERNAL", "message": stored.scenario.error_message},
            }
        )
    handler.wfile.write(
        handler.head(200, [("Content-Type", "text/event-stream"), ("Transfer-Encoding", "chunked")])
    )
    for event in events:
        handler.write_chunk(
            b"event: " + event["event_type"].encode() + b"\r\ndata: " + _dumps(event) + b"\r\n\r\n"
        )
    handler.write_chunk(b"", last=True)
    state = interactions(server)
    with state._lock:
        if fail_after is None:
            stored.status = stored.final_status
        else:
            stored.status = "failed"


def _record(
    server: FakeGeminiServer,
    handler: LocalRequestHandler,
    path: str,
    query: dict[str, str],
    body: Any,
    model: str | None,
    stream: bool,
) -> None:
    with server._lock:
        server.requests.append(
            {
                "method": handler.command,
                "path": path,
                "query": query,
                "model": model,
                "stream": stream,
                "body": body,
                "headers": {k.lower(): v for k, v in handler.headers.items()},
            }
        )


def serve(
    server: FakeGeminiServer,
    handler: LocalRequestHandler,
    path: str,
    query: dict[str, str],
    body: Any,
) -> None:
    """Answer one request to ``/{version}/interactions...``."""
    match = _PATH_RE.match(path)
    assert match is not None  # the caller checked handles(path)
    interaction_id = match.group("id")
    action = match.group("action")
    state = interactions(server)
    if interaction_id is None:
        payload = body if isinstance(body, dict) else {}
        model = payload.get("model") if isinstance(payload.get("model"), str) else None
        stream = payload.get("stream") is True
        _record(server, handler, path, query, body, model, stream)
        if handler.command != "POST":
            _error(handler, 404, f"{handler.command} {path} is not found")
            return
        _create(server, state, handler, payload, model, stream)
        return
    with state._lock:
        stored = state.stored.get(interaction_id)
    stream = query.get("stream") == "true"
    _record(server, handler, path, query, body, stored.model if stored else None, stream)
    if stored is None:
        _error(handler, 404, f"interaction {interaction_id} is not found")
        return
    if handler.command == "GET" and action is None:
        _get(server, state, handler, stored, stream, query.get("last_event_id"))
    elif handler.command == "POST" and action == "cancel":
        with state._lock:
            if stored.status in ("in_progress", "queued"):
                stored.status = stored.final_status = "cancelled"
        _send(handler, 200, _interaction(stored, stored.status))
    elif handler.command == "DELETE" and action is None:
        with state._lock:
            state.stored.pop(interaction_id, None)
        _send(handler, 200, {})
    else:
        _error(handler, 404, f"{handler.command} {path} is not found")


def _create(
    server: FakeGeminiServer,
    state: FakeInteractions,
    handler: LocalRequestHandler,
    payload: dict[str, Any],
    model: str | None,
    stream: bool,
) -> None:
    scenario = server._next_scenario(model, payload)
    if scenario.hang_s > 0:
        server._stopping.wait(scenario.hang_s)
        handler.close_connection = True
        return
    if scenario.delay_s > 0 and server._stopping.wait(scenario.delay_s):
        handler.close_connection = True
        return
    mid_stream_error = stream and scenario.stream_error_after is not None
    if scenario.error_status is not None and not mid_stream_error:
        _error(handler, scenario.error_status, scenario.error_message)
        return
    agent = payload.get("agent") if isinstance(payload.get("agent"), str) else None
    with server._lock:
        interaction_id = f"interaction-{next(server._ids)}"
    background = payload.get("background") is True
    final = _final_status(scenario)
    stored = StoredInteraction(
        id=interaction_id,
        scenario=scenario,
        model=model,
        agent=agent,
        status="in_progress" if background and not stream else final,
        final_status=final,
        background=background,
        created_at=time.monotonic(),
        created=_now_iso(),
    )
    with state._lock:
        state.stored[interaction_id] = stored
    if stream:
        _stream(server, handler, stored)
    else:
        _send(handler, 200, _interaction(stored, stored.status))


def _get(
    server: FakeGeminiServer,
    state: FakeInteractions,
    handler: LocalRequestHandler,
    stored: StoredInteraction,
    stream: bool,
    last_event_id: str | None,
) -> None:
    with state._lock:
        if stored.status == "in_progress" and stored.background:
            stored.polls += 1
            if state.done_after_s is not None:
                done = time.monotonic() - stored.created_at >= state.done_after_s
            else:
                done = stored.polls >= state.polls_until_done
            if done:
                stored.status = stored.final_status
        status = stored.status
    if stream:
        _stream(server, handler, stored, after=last_event_id)
    else:
        _send(handler, 200, _interaction(stored, status))
