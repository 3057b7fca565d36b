"""A fake Gemini HTTP server that the real ``google-genai`` and ``google-generativeai``
clients can talk to.

The server listens on 127.0.0.1 (standard library only: ``ThreadingHTTPServer`` in a
daemon thread, HTTP/1.1 keep-alive, Nagle disabled) and answers the Gemini Developer
API endpoints with canned :class:`Scenario` responses::

    from vividly_trace.testing.fake_gemini import FakeGeminiServer, Scenario

    with FakeGeminiServer() as fake:
        fake.enqueue(Scenario(text="hello", prompt_tokens=12, candidates_tokens=3))
        client = fake.genai_client()
        response = client.models.generate_content(model="gemini-2.5-flash", contents="hi")
        assert response.text == "hello"
        assert fake.requests[0]["model"] == "gemini-2.5-flash"

Endpoints (``v1``, ``v1beta`` and ``v1alpha``; ``models/`` or ``tunedModels/``, also under
Vertex AI's ``projects/P/locations/L/publishers/google/``: see
:meth:`FakeGeminiServer.vertex_client`):

* ``POST .../models/{m}:generateContent`` - one JSON response.
* ``POST .../models/{m}:streamGenerateContent?alt=sse`` - Server-Sent Events
  (``data: {json}\\r\\n\\r\\n``), as used by ``google-genai``.
* ``POST .../models/{m}:streamGenerateContent`` without ``alt=sse`` - a streamed JSON
  array (``[{...},\\r\\n{...}]``), as used by ``google-generativeai`` (``transport="rest"``).
* ``POST .../models/{m}:countTokens`` - ``{"totalTokens": prompt_tokens}``.
* ``POST .../models/{m}:batchEmbedContents`` (what google-genai's ``models.embed_content``
  calls on the Gemini API, for one content or many) and ``POST .../models/{m}:embedContent``
  (one content; google-generativeai) - embeddings, see "Embeddings" below.
* ``POST .../cachedContents``, ``GET`` / ``PATCH`` / ``DELETE .../cachedContents/{id}``,
  ``GET .../cachedContents`` - context caches, see :mod:`._fake_caches`.
* anything else - HTTP 404 with a Gemini-style JSON error body.

Each request to a model endpoint (and each cache creation) consumes one :class:`Scenario`,
chosen by :meth:`FakeGeminiServer._next_scenario`: first a scenario queued for requests that
match it (``enqueue(s, model=..., prompt_contains=...)``, used once), then a standing rule
(``when(s, model=..., prompt_contains=...)``, answers every matching request), then the plain
FIFO queue (``enqueue(s)``), then :attr:`FakeGeminiServer.default`. Matching makes
concurrent tests deterministic: each test's requests get its own answers whatever the order
in which they arrive. Streamed bodies use chunked transfer encoding; every other body has a
``Content-Length``, so connections are reused.

Service tier: google-genai sends ``GenerateContentConfig(service_tier="flex")`` as
``"serviceTier": "flex"`` at the top of the request body (values ``flex``, ``standard``,
``priority``, ``unspecified``); each recorded request has it under ``"service_tier"``. The
Gemini API reports the tier that served a request in the ``x-gemini-service-tier`` response
header (``standard`` after a graceful downgrade of ``priority``); google-genai 3.6.1 has no
tier field on ``GenerateContentResponse`` (``usage_metadata.traffic_type`` is Vertex AI only),
so it is read as ``response.sdk_http_response.headers["x-gemini-service-tier"]``. The fake
sends that header on ``generateContent`` / ``streamGenerateContent`` answers: the
scenario's ``service_tier`` if set (to play a downgrade), else the requested tier, else none.
``Scenario.traffic_type`` adds Vertex AI's ``usageMetadata.trafficType`` (google-genai reads
it as ``usage_metadata.traffic_type``), e.g. ``PROVISIONED_THROUGHPUT``.

Embeddings: one ``{"values": [...]}`` per content, in request order, deterministic for a
given text (unit length; the size is the request's ``outputDimensionality``, else
``Scenario.embedding_dimensions``, else 3072 as gemini-embedding-001), and a
``usageMetadata`` shaped as the Gemini API's ``EmbeddingUsageMetadata``:
``{"promptTokenCount": prompt_tokens, "promptTokenDetails": [{"modality": "TEXT",
"tokenCount": ...}]}`` (AUDIO split out with ``audio_prompt_tokens``): input tokens for the
whole batch, no output or total count (``omit_prompt_tokens=True`` leaves ``usageMetadata``
out, as older answers came). google-genai 3.6.1 reads it into
``EmbedContentResponse.usage_metadata.prompt_token_count``; its own field for the details is
``prompt_tokens_details``, so ``promptTokenDetails`` is dropped by the client.

Enums are written as names (``"STOP"``), or as integers when the query string asks for
``enum-encoding=int`` (``google-generativeai`` always sends ``$alt=json;enum-encoding=int``):
``finishReason`` STOP=1, MAX_TOKENS=2, SAFETY=3, RECITATION=4, OTHER=5, ...;
``blockReason`` SAFETY=1, OTHER=2, BLOCKLIST=3, PROHIBITED_CONTENT=4, IMAGE_SAFETY=5;
``modality`` TEXT=1, IMAGE=2, VIDEO=3, AUDIO=4, DOCUMENT=5 (values from the
``google.ai.generativelanguage`` protos).

What callers must know about the clients
----------------------------------------

``google-genai`` (use :meth:`FakeGeminiServer.genai_client`):

* it never retries unless ``HttpOptions(retry_options=...)`` is given, so every error
  status is raised at once: 4xx as ``google.genai.errors.ClientError``, 5xx as
  ``google.genai.errors.ServerError``, with ``.code`` equal to the HTTP status.
* a mid-stream failure (``Scenario.stream_error_after``) is sent as an SSE error event
  ``data: {"error": {"code": 500, ...}}``; the client raises ``ServerError`` (``.code``
  500, or ``Scenario.error_status`` if set) from the iterator after the chunks before it
  were yielded, in both the sync and the async client.

``google-generativeai`` (use :meth:`FakeGeminiServer.configure_generativeai`, then
create ``GenerativeModel`` objects; a model keeps the client it first used):

* the default retry policy of ``generate_content`` / ``stream_generate_content`` only
  retries HTTP 503 (``ServiceUnavailable``), for up to 600 s: do not answer 503 to it
  in tests, or pass ``request_options={"retry": None}`` (then 503 is raised at once as
  ``google.api_core.exceptions.ServiceUnavailable``). 400, 429 and 500 are not retried
  and raise ``google.api_core.exceptions.BadRequest`` / ``TooManyRequests`` /
  ``InternalServerError`` with ``.code`` equal to the HTTP status, both with and
  without ``stream=True``.
* ``client_options={"api_endpoint": "http://127.0.0.1:PORT"}`` works as is: the REST
  transport keeps an explicit ``http://`` scheme (without a scheme it would use https).
* its stream parser turns an ``{"error": ...}`` element of the JSON array into an empty
  chunk without raising, so a mid-stream failure is produced by dropping the connection
  before the end of the chunked body; the client raises
  ``requests.exceptions.ChunkedEncodingError`` (not a ``google.api_core`` exception)
  while iterating. ``generate_content(stream=True)``
  reads the first chunk eagerly, so with ``stream_error_after=0`` the error is raised by
  ``generate_content`` itself.
* its v1beta protos (google-ai-generativelanguage 0.6.x) only know ``promptTokenCount``,
  ``cachedContentTokenCount``, ``candidatesTokenCount`` and ``totalTokenCount``; the
  other usage fields are silently dropped by the client.

``Scenario.hang_s`` keeps the connection silent and then closes it without an answer
(use it with a client timeout shorter than ``hang_s``); :meth:`FakeGeminiServer.stop`
interrupts pending ``delay_s`` / ``hang_s`` waits and closes kept-alive connections.

Run ``python -m vividly_trace.testing.fake_gemini --port N`` to serve in the foreground
(for benchmarks in another process); it prints ``listening on http://127.0.0.1:N`` and
stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import itertools
import json
import math
import random
import re
import signal
import socket
import sys
import threading
import zlib
from collections import deque
from dataclasses import dataclass
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from . import _fake_caches, _fake_interactions
from ._http import BaseLocalServer, LocalRequestHandler

__all__ = ["FakeGeminiServer", "Match", "Rule", "Scenario", "main", "prompt_text"]

_FINISH_REASONS = {
    "FINISH_REASON_UNSPECIFIED": 0,
    "STOP": 1,
    "MAX_TOKENS": 2,
    "SAFETY": 3,
    "RECITATION": 4,
    "OTHER": 5,
    "LANGUAGE": 6,
    "BLOCKLIST": 7,
    "PROHIBITED_CONTENT": 8,
    "SPII": 9,
    "MALFORMED_FUNCTION_CALL": 10,
    "IMAGE_SAFETY": 11,
}
_BLOCK_REASONS = {
    "BLOCK_REASON_UNSPECIFIED": 0,
    "SAFETY": 1,
    "OTHER": 2,
    "BLOCKLIST": 3,
    "PROHIBITED_CONTENT": 4,
    "IMAGE_SAFETY": 5,
}
_MODALITIES = {
    "MODALITY_UNSPECIFIED": 0,
    "TEXT": 1,
    "IMAGE": 2,
    "VIDEO": 3,
    "AUDIO": 4,
    "DOCUMENT": 5,
}
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_PATH_RE = re.compile(
    r"^/(?P<version>v1|v1beta|v1alpha)/(?:projects/[^/]+/locations/[^/]+/)?"
    r"(?:publishers/google/)?(?:models|tunedModels)/(?P<model>[^/:]+)"
    r":(?P<method>generateContent|streamGenerateContent|countTokens|batchEmbedContents"
    r"|embedContent)$"
)


@dataclass
class Scenario:
    """What the fake answers for one request.

    Token counts follow the Gemini API: ``prompt_tokens`` includes ``cached_tokens``, and
    the default ``total_tokens`` is prompt + candidates + thoughts + tool-use prompt.
    Optional counts left at ``None`` are omitted from ``usageMetadata``.

    For a blocked prompt (``block_reason`` set) the answer has ``promptFeedback`` and a
    ``usageMetadata`` without candidate or thoughts tokens, and no ``candidates``.

    ``error_status`` makes the request fail with that HTTP status and a Gemini-style
    error body. For a streaming request with ``stream_error_after`` set, the failure
    comes after that many chunks instead (code ``error_status or 500``): an SSE error
    event for ``alt=sse`` streams, a dropped connection for JSON-array streams.
    ``stream_error_after`` is ignored by non-streaming requests.

    ``function_call=(name, args)`` answers with a ``functionCall`` part instead of text (what
    google-genai's automatic function calling answers by calling the function and sending
    its result in a second request).

    For an embedding request ``prompt_tokens`` is the batch's ``promptTokenCount``; for a
    cache creation it is the cache's ``usageMetadata.totalTokenCount``.
    """

    text: str = "ok"
    prompt_tokens: int = 10  # promptTokenCount (includes cached)
    # True: usageMetadata without promptTokenCount and totalTokenCount, as real answers for
    # file-URI inputs come (only candidatesTokenCount and thoughtsTokenCount).
    omit_prompt_tokens: bool = False
    candidates_tokens: int = 5
    thoughts_tokens: int | None = None
    cached_tokens: int | None = None
    tool_use_prompt_tokens: int | None = None
    audio_prompt_tokens: int | None = None  # adds promptTokensDetails with AUDIO + TEXT split
    image_prompt_tokens: int | None = None  # promptTokensDetails: IMAGE (TEXT the rest)
    video_prompt_tokens: int | None = None  # promptTokensDetails: VIDEO (TEXT the rest)
    image_output_tokens: int | None = None  # candidatesTokensDetails: IMAGE (TEXT the rest)
    audio_output_tokens: int | None = None  # candidatesTokensDetails: AUDIO (TEXT the rest)
    # Grounding with Google Search: the candidate's groundingMetadata.webSearchQueries.
    search_queries: tuple[str, ...] | None = None
    cached_audio_tokens: int | None = None  # adds cacheTokensDetails: AUDIO (+ TEXT rest)
    total_tokens: int | None = None  # default: prompt + candidates + thoughts + tool_use
    model_version: str | None = None  # default: the model from the URL
    finish_reason: str = "STOP"  # e.g. "SAFETY"
    block_reason: str | None = None  # if set: promptFeedback.blockReason, no candidates
    error_status: int | None = None  # e.g. 400, 429, 500: answer an error with this status
    error_message: str = "fake error"
    stream_chunks: int = 3  # number of chunks for a streaming request (text split across them)
    usage_on_every_chunk: bool = False  # True: cumulative usage on every chunk; False: last only
    stream_error_after: int | None = None  # for streams: fail after this many chunks
    function_call: tuple[str, dict[str, Any]] | None = None  # answer a call: (name, args)
    delay_s: float = 0.0  # sleep before answering
    hang_s: float = 0.0  # stay silent this long, then close the connection without answering
    chunk_delay_s: float = 0.0  # streams: sleep this long before each chunk after the first
    # The tier reported in the x-gemini-service-tier header (e.g. "standard" for a downgraded
    # priority request); None: the tier the request asked for, if any.
    service_tier: str | None = None
    # Vertex AI's usageMetadata.trafficType (e.g. "ON_DEMAND", "ON_DEMAND_FLEX",
    # "PROVISIONED_THROUGHPUT"); None: omitted, as the Gemini API does.
    traffic_type: str | None = None
    # Embedding size when the request names no outputDimensionality (None: 3072).
    embedding_dimensions: int | None = None


def _enum(value: str, table: dict[str, int], as_int: bool) -> str | int:
    if as_int and value in table:
        return table[value]
    return value


def _error_body(status: int, message: str) -> dict[str, Any]:
    return {
        "error": {
            "code": status,
            "message": message,
            "status": _STATUS_NAMES.get(status, "UNKNOWN"),
        }
    }


def _usage(
    scenario: Scenario,
    candidates: int | None,
    thoughts: int | None,
    total: int | None,
    enum_int: bool,
) -> dict[str, Any]:
    """Build ``usageMetadata``; ``candidates``/``thoughts`` None means omitted."""
    usage: dict[str, Any] = {"promptTokenCount": scenario.prompt_tokens}
    if candidates is not None:
        usage["candidatesTokenCount"] = candidates
    if scenario.cached_tokens is not None:
        usage["cachedContentTokenCount"] = scenario.cached_tokens
    if thoughts is not None:
        usage["thoughtsTokenCount"] = thoughts
    if scenario.tool_use_prompt_tokens is not None:
        usage["toolUsePromptTokenCount"] = scenario.tool_use_prompt_tokens
    if total is None:
        total = (
            scenario.prompt_tokens
            + (candidates or 0)
            + (thoughts or 0)
            + (scenario.tool_use_prompt_tokens or 0)
        )
    usage["totalTokenCount"] = total
    if scenario.traffic_type is not None:
        usage["trafficType"] = scenario.traffic_type
    if scenario.omit_prompt_tokens:
        del usage["promptTokenCount"], usage["totalTokenCount"]
    given = _details(
        scenario.prompt_tokens,
        enum_int,
        AUDIO=scenario.audio_prompt_tokens,
        IMAGE=scenario.image_prompt_tokens,
        VIDEO=scenario.video_prompt_tokens,
    )
    if given is not None:
        usage["promptTokensDetails"] = given
    answered = _details(
        candidates or 0,
        enum_int,
        IMAGE=scenario.image_output_tokens,
        AUDIO=scenario.audio_output_tokens,
    )
    if answered is not None and candidates is not None:
        usage["candidatesTokensDetails"] = answered
    if scenario.cached_audio_tokens is not None:
        details = [
            {
                "modality": _enum("AUDIO", _MODALITIES, enum_int),
                "tokenCount": scenario.cached_audio_tokens,
            }
        ]
        text = (scenario.cached_tokens or 0) - scenario.cached_audio_tokens
        if text > 0:
            details.insert(
                0, {"modality": _enum("TEXT", _MODALITIES, enum_int), "tokenCount": text}
            )
        usage["cacheTokensDetails"] = details
    return usage


def _details(total: int, enum_int: bool, **counts: int | None) -> list[dict[str, Any]] | None:
    """A ``*TokensDetails`` list: TEXT (the rest of ``total``) and each modality given."""
    given = {k: v for k, v in counts.items() if v is not None}
    if not given:
        return None
    out = [
        {
            "modality": _enum("TEXT", _MODALITIES, enum_int),
            "tokenCount": total - sum(given.values()),
        }
    ]
    out += [
        {"modality": _enum(name, _MODALITIES, enum_int), "tokenCount": count}
        for name, count in given.items()
    ]
    return out


def _grounded(candidate: dict[str, Any], scenario: Scenario) -> dict[str, Any]:
    if scenario.search_queries is not None:
        candidate["groundingMetadata"] = {"webSearchQueries": list(scenario.search_queries)}
    return candidate


def _split_text(text: str, n: int) -> list[str]:
    return [text[len(text) * i // n : len(text) * (i + 1) // n] for i in range(n)]


def _blocked_response(
    scenario: Scenario, model: str, response_id: str, enum_int: bool
) -> dict[str, Any]:
    assert scenario.block_reason is not None
    return {
        "promptFeedback": {"blockReason": _enum(scenario.block_reason, _BLOCK_REASONS, enum_int)},
        "usageMetadata": _usage(scenario, None, None, None, enum_int),
        "modelVersion": scenario.model_version or model,
        "responseId": response_id,
    }


def _part(scenario: Scenario) -> dict[str, Any]:
    if scenario.function_call is not None:
        name, args = scenario.function_call
        return {"functionCall": {"name": name, "args": dict(args)}}
    return {"text": scenario.text}


def _full_response(
    scenario: Scenario, model: str, response_id: str, enum_int: bool
) -> dict[str, Any]:
    if scenario.block_reason is not None:
        return _blocked_response(scenario, model, response_id, enum_int)
    return {
        "candidates": [
            _grounded(
                {
                    "content": {"parts": [_part(scenario)], "role": "model"},
                    "finishReason": _enum(scenario.finish_reason, _FINISH_REASONS, enum_int),
                    "index": 0,
                },
                scenario,
            )
        ],
        "usageMetadata": _usage(
            scenario,
            scenario.candidates_tokens,
            scenario.thoughts_tokens,
            scenario.total_tokens,
            enum_int,
        ),
        "modelVersion": scenario.model_version or model,
        "responseId": response_id,
    }


def _stream_responses(
    scenario: Scenario, model: str, response_id: str, enum_int: bool
) -> list[dict[str, Any]]:
    """The chunks of a streamed answer (without any mid-stream error)."""
    if scenario.block_reason is not None:
        return [_blocked_response(scenario, model, response_id, enum_int)]
    n = max(1, scenario.stream_chunks)
    pieces = _split_text(scenario.text, n)
    full_cands = scenario.candidates_tokens
    full_thoughts = scenario.thoughts_tokens
    chunks: list[dict[str, Any]] = []
    for i, piece in enumerate(pieces):
        last = i == n - 1
        candidate: dict[str, Any] = {
            "content": {"parts": [{"text": piece}], "role": "model"},
            "index": 0,
        }
        if last:
            candidate["finishReason"] = _enum(scenario.finish_reason, _FINISH_REASONS, enum_int)
            _grounded(candidate, scenario)
        chunk: dict[str, Any] = {"candidates": [candidate]}
        if last or scenario.usage_on_every_chunk:
            cands = full_cands * (i + 1) // n
            thoughts = None if full_thoughts is None else full_thoughts * (i + 1) // n
            total = None
            if scenario.total_tokens is not None:
                total = scenario.total_tokens - (full_cands - cands)
                total -= (full_thoughts or 0) - (thoughts or 0)
            chunk["usageMetadata"] = _usage(scenario, cands, thoughts, total, enum_int)
        chunk["modelVersion"] = scenario.model_version or model
        chunk["responseId"] = response_id
        chunks.append(chunk)
    return chunks


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


def _send_json(
    handler: LocalRequestHandler,
    status: int,
    obj: Any,
    headers: list[tuple[str, str]] | None = None,
) -> None:
    handler.answer(status, "application/json; charset=UTF-8", _dumps(obj), headers)


_PROMPT_KEYS = frozenset({"text", "input", "systemInstruction", "system_instruction"})


def prompt_text(body: Any) -> str:
    """All the text a request body sends, joined by newlines: every string under a ``text``
    key (contents and their history, the system instruction, embedding requests, cached
    contents) and ``input`` / system instruction given as plain strings (Interactions)."""
    out: list[str] = []
    stack = [body]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in reversed(node.items()):
                if isinstance(value, str):
                    if key in _PROMPT_KEYS:
                        out.append(value)
                else:
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(reversed(node))
    return "\n".join(out)


def _bare_model(model: Any) -> str | None:
    """``models/gemini-2.5-flash`` -> ``gemini-2.5-flash`` (None for anything not a str)."""
    if not isinstance(model, str):
        return None
    return model.removeprefix("models/").removeprefix("tunedModels/")


@dataclass(frozen=True)
class Match:
    """Which requests a scenario is for: ``model`` (the requested model, with or without
    ``models/``) and ``prompt_contains`` (a substring of :func:`prompt_text` of the body);
    a request matches when it satisfies every condition given."""

    model: str | None = None
    prompt_contains: str | None = None

    def __post_init__(self) -> None:
        if self.model is None and self.prompt_contains is None:
            raise ValueError("a Match needs model= or prompt_contains=")
        for name in ("model", "prompt_contains"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"{name} must be a non-empty str, got {value!r}")

    def matches(self, model: str | None, text: str | None) -> bool:
        """True when a request for ``model`` sending ``text`` satisfies every condition."""
        if self.model is not None and _bare_model(self.model) != model:
            return False
        return self.prompt_contains is None or (text is not None and self.prompt_contains in text)


@dataclass(frozen=True, eq=False)
class Rule:
    """A standing answer: ``scenario`` for every request that ``match`` accepts (see
    :meth:`FakeGeminiServer.when`)."""

    match: Match
    scenario: Scenario


def _served_tier(requested: Any, scenario: Scenario) -> str | None:
    """The tier the x-gemini-service-tier header reports (None: no header)."""
    tier = scenario.service_tier if scenario.service_tier is not None else requested
    if not isinstance(tier, str) or not tier:
        return None
    tier = tier.lower().removeprefix("service_tier_")
    return "standard" if tier == "unspecified" else tier


def _embedding(text: str, size: int) -> list[float]:
    """A unit vector of ``size`` values, the same for the same text."""
    rng = random.Random(zlib.crc32(text.encode("utf-8", "surrogatepass")))
    values = [rng.uniform(-1.0, 1.0) for _ in range(size)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 7) for v in values]


def _embed_usage(scenario: Scenario, enum_int: bool) -> dict[str, Any]:
    """``EmbeddingUsageMetadata`` as the Gemini API writes it: prompt tokens and their
    modalities; no output or total count."""
    audio = scenario.audio_prompt_tokens
    details = [
        {
            "modality": _enum("TEXT", _MODALITIES, enum_int),
            "tokenCount": scenario.prompt_tokens - (audio or 0),
        }
    ]
    if audio is not None:
        details.append({"modality": _enum("AUDIO", _MODALITIES, enum_int), "tokenCount": audio})
    return {"promptTokenCount": scenario.prompt_tokens, "promptTokenDetails": details}


def _embed_response(scenario: Scenario, body: Any, batch: bool, enum_int: bool) -> dict[str, Any]:
    """The answer to ``batchEmbedContents`` (``batch``) or ``embedContent``."""
    payload = body if isinstance(body, dict) else {}
    requests = payload.get("requests") if batch else [payload]
    if not isinstance(requests, list):
        requests = []
    embeddings = []
    for request in requests:
        request = request if isinstance(request, dict) else {}
        size = request.get("outputDimensionality")
        if type(size) is not int or size <= 0:
            size = scenario.embedding_dimensions or _EMBEDDING_SIZE
        embeddings.append({"values": _embedding(prompt_text(request.get("content")), size)})
    answer: dict[str, Any] = {"embeddings": embeddings} if batch else {"embedding": embeddings[0]}
    if not scenario.omit_prompt_tokens:
        answer["usageMetadata"] = _embed_usage(scenario, enum_int)
    return answer


_EMBEDDING_SIZE = 3072  # gemini-embedding-001's default output dimensionality


class _Handler(LocalRequestHandler):
    server_version = "FakeGemini/1.0"

    def do_PATCH(self) -> None:
        """Serve a PATCH request (answered 404 like any unknown endpoint)."""
        self.owner._serve(self)


class FakeGeminiServer(BaseLocalServer):
    """A fake Gemini API server on a local port, running in a daemon thread.

    Use it as a context manager (``with FakeGeminiServer() as fake: ...``) or call
    :meth:`start` and :meth:`stop`. Queue answers with :meth:`enqueue` (for any request,
    or for those of one model or prompt) and set standing ones with :meth:`when`; requests
    nothing else answers get :attr:`default`. Every received request is appended to
    :attr:`requests` as a dict with the keys ``method``, ``path``, ``query`` (dict of
    the last value of each parameter), ``model`` (e.g. ``"gemini-2.5-flash"``, None for
    unknown paths), ``stream`` (bool), ``body`` (parsed JSON or None), ``headers``
    (dict with lower-cased names) and ``service_tier`` (the body's ``serviceTier``, or None).
    """

    _thread_name = "fake-gemini"
    _handler_class = _Handler
    _join_handlers = True  # stop() waits for the handler threads, as it always has

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Prepare a server for ``host``:``port`` (port 0: pick a free port on start)."""
        super().__init__(host, port)
        self.default: Scenario = Scenario()
        self.requests: list[dict[str, Any]] = []
        self._queue: deque[Scenario] = deque()
        self._matched: list[tuple[Match, Scenario]] = []  # queued for matching requests
        self._rules: list[Rule] = []
        self._ids = itertools.count(1)

    # -- scenarios --------------------------------------------------------------------

    def enqueue(
        self,
        *scenarios: Scenario,
        model: str | None = None,
        prompt_contains: str | None = None,
    ) -> None:
        """Queue answers; each model request consumes one, first in first out.

        With ``model`` and/or ``prompt_contains``, the answers are only for requests to that
        model (``"gemini-2.5-pro"`` or ``"models/gemini-2.5-pro"``) whose text contains that
        substring (any text of the body: prompt, history, system instruction, embedding
        contents); they are used before the plain queue and before :meth:`when` rules::

            fake.enqueue(Scenario(text="pro"), model="gemini-2.5-pro")
            fake.enqueue(Scenario(error_status=429), prompt_contains="order #7")

        Raises ``ValueError`` for an empty model or substring.
        """
        if model is None and prompt_contains is None:
            with self._lock:
                self._queue.extend(scenarios)
            return
        match = Match(model, prompt_contains)
        with self._lock:
            self._matched.extend((match, scenario) for scenario in scenarios)

    def when(
        self,
        scenario: Scenario,
        *,
        model: str | None = None,
        prompt_contains: str | None = None,
    ) -> Rule:
        """Answer every request to ``model`` and/or whose text contains ``prompt_contains``
        with ``scenario``, until :meth:`remove_rule` or :meth:`reset`. The first rule added
        that matches wins; answers queued with :meth:`enqueue` for matching requests come
        first, the plain queue after::

            fake.when(Scenario(prompt_tokens=8), model="gemini-embedding-001")

        Raises ``ValueError`` without a condition (use :meth:`set_default` then).
        """
        rule = Rule(Match(model, prompt_contains), scenario)
        with self._lock:
            self._rules.append(rule)
        return rule

    def remove_rule(self, rule: Rule) -> None:
        """Stop answering with a rule from :meth:`when` (no error if it is gone)."""
        with self._lock:
            self._rules = [r for r in self._rules if r is not rule]

    def set_default(self, scenario: Scenario) -> None:
        """Set the answer used when the queue is empty."""
        with self._lock:
            self.default = scenario

    def reset(self) -> None:
        """Forget queued answers and received requests; restore the default scenario."""
        with self._lock:
            self._queue.clear()
            self._matched.clear()
            self._rules.clear()
            self.requests.clear()
            self.default = Scenario()
        _fake_caches.caches(self).clear()

    # -- client helpers -------------------------------------------------------------

    @property
    def interactions(self) -> _fake_interactions.FakeInteractions:
        """The Interactions API's settings and state (``polls_until_done``, ``done_after_s``...)."""
        return _fake_interactions.interactions(self)

    def interactions_client(self, api_key: str = "fake-key") -> Any:
        """A ``google.genai.Client`` pointed at this server that does not retry (the
        Interactions client otherwise retries 429 and 5xx four times, with backoff)."""
        return _fake_interactions.interactions_client(self, api_key)

    def genai_client(self, api_key: str = "fake-key") -> Any:
        """Build a ``google.genai.Client`` (Gemini Developer API) pointed at this server."""
        from google import genai
        from google.genai import types

        return genai.Client(
            vertexai=False,
            api_key=api_key,
            http_options=types.HttpOptions(base_url=self.url, api_version="v1beta"),
        )

    def vertex_client(self, project: str = "fake-project", location: str = "us-central1") -> Any:
        """Build a ``google.genai.Client`` for Vertex AI (``vertexai=True``) pointed at this
        server: requests go to ``/v1/projects/P/locations/L/publishers/google/models/M:...``,
        with a static OAuth token (nothing is refreshed, nothing leaves 127.0.0.1)."""
        from google import genai
        from google.genai import types
        from google.oauth2.credentials import Credentials

        return genai.Client(
            vertexai=True,
            project=project,
            location=location,
            credentials=Credentials(token="fake-token"),  # type: ignore[no-untyped-call]
            http_options=types.HttpOptions(base_url=self.url, api_version="v1"),
        )

    def configure_generativeai(self, api_key: str = "fake-key") -> None:
        """Point ``google.generativeai`` (REST transport) at this server.

        This calls ``google.generativeai.configure``, which is global: ``GenerativeModel``
        objects created afterwards use this server.
        """
        generativeai: Any = importlib.import_module("google.generativeai")
        generativeai.configure(
            api_key=api_key,
            transport="rest",
            client_options={"api_endpoint": self.url},
        )

    # -- request handling (handler threads) ---------------------------------------------

    def _serve(self, handler: LocalRequestHandler) -> None:
        split = urlsplit(handler.path)
        raw_query = split.query
        query = {k: v[-1] for k, v in parse_qs(raw_query, keep_blank_values=True).items()}
        try:
            raw_body = handler.read_body()
        except (ValueError, OSError, EOFError, zlib.error):
            handler.close_connection = True
            _send_json(handler, 400, _error_body(400, "unreadable request body"))
            return
        body: Any = None
        if raw_body:
            try:
                body = json.loads(raw_body)
            except ValueError:
                body = None
        if _fake_interactions.handles(split.path):
            _fake_interactions.serve(self, handler, split.path, query, body)
            return
        match = _PATH_RE.match(split.path)
        model = unquote(match.group("model")) if match else None
        if match is None and _fake_caches.handles(split.path):
            _fake_caches.serve(self, handler, split.path, query, body)
            return
        rpc = match.group("method") if match else None
        stream = rpc == "streamGenerateContent"
        tier = body.get("serviceTier") if isinstance(body, dict) else None
        with self._lock:
            self.requests.append(
                {
                    "method": handler.command,
                    "path": split.path,
                    "query": query,
                    "model": model,
                    "stream": stream,
                    "body": body,
                    "headers": {k.lower(): v for k, v in handler.headers.items()},
                    "service_tier": tier,
                }
            )
        if match is None or model is None or handler.command != "POST":
            message = f"{handler.command} {split.path} is not found"
            _send_json(handler, 404, _error_body(404, message))
            return

        scenario = self._next_scenario(model, body)
        if scenario.hang_s > 0:
            self._stopping.wait(scenario.hang_s)
            handler.close_connection = True
            return
        if scenario.delay_s > 0 and self._stopping.wait(scenario.delay_s):
            handler.close_connection = True
            return

        enum_int = "enum-encoding=int" in unquote(raw_query)
        mid_stream_error = stream and scenario.stream_error_after is not None
        if scenario.error_status is not None and not mid_stream_error:
            _send_json(
                handler,
                scenario.error_status,
                _error_body(scenario.error_status, scenario.error_message),
            )
            return
        with self._lock:
            response_id = f"fake-{next(self._ids)}"
        served = _served_tier(tier, scenario)
        tier_header = [("x-gemini-service-tier", served)] if served is not None else []
        if rpc == "countTokens":
            _send_json(handler, 200, {"totalTokens": scenario.prompt_tokens})
        elif rpc in ("batchEmbedContents", "embedContent"):
            batch = rpc == "batchEmbedContents"
            _send_json(handler, 200, _embed_response(scenario, body, batch, enum_int))
        elif rpc == "generateContent":
            response = _full_response(scenario, model, response_id, enum_int)
            _send_json(handler, 200, response, tier_header)
        else:
            sse = query.get("alt") == "sse"
            self._stream(handler, scenario, model, response_id, enum_int, sse, tier_header)

    def _next_scenario(self, model: str | None, body: Any) -> Scenario:
        """The scenario that answers a request for ``model`` with this JSON ``body``: the
        first one queued for matching requests (used up), else the first matching rule,
        else the next of the plain queue, else the default."""
        bare = _bare_model(model)
        text: str | None = None
        with self._lock:
            if self._matched or self._rules:
                for i, (match, scenario) in enumerate(self._matched):
                    if match.prompt_contains is not None and text is None:
                        text = prompt_text(body)
                    if match.matches(bare, text):
                        del self._matched[i]
                        return scenario
                for rule in self._rules:
                    if rule.match.prompt_contains is not None and text is None:
                        text = prompt_text(body)
                    if rule.match.matches(bare, text):
                        return rule.scenario
            return self._queue.popleft() if self._queue else self.default

    def _stream(
        self,
        handler: LocalRequestHandler,
        scenario: Scenario,
        model: str,
        response_id: str,
        enum_int: bool,
        sse: bool,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        chunks = _stream_responses(scenario, model, response_id, enum_int)
        fail_after = scenario.stream_error_after
        if fail_after is not None:
            chunks = chunks[: max(0, fail_after)]
        content_type = "text/event-stream" if sse else "application/json; charset=UTF-8"
        handler.wfile.write(
            handler.head(
                200,
                [
                    ("Content-Type", content_type),
                    ("Transfer-Encoding", "chunked"),
                    *(headers or ()),
                ],
            )
        )
        for i, chunk in enumerate(chunks):
            if i and scenario.chunk_delay_s > 0 and self._stopping.wait(scenario.chunk_delay_s):
                handler.close_connection = True  # stop() came: end without the rest
                return
            data = _dumps(chunk)
            if sse:
                handler.write_chunk(b"data: " + data + b"\r\n\r\n")
            else:
                handler.write_chunk((b"[" if i == 0 else b",\r\n") + data)
        if fail_after is None:
            if sse:
                handler.write_chunk(b"", last=True)
            else:
                handler.write_chunk(b"]" if chunks else b"[]", last=True)
            return
        if sse:
            status = scenario.error_status or 500
            error = _dumps(_error_body(status, scenario.error_message))
            handler.write_chunk(b"data: " + error + b"\r\n\r\n", last=True)
        else:
            # The JSON-array parser of google-api-core ignores error objects: drop the
            # connection before the end of the chunked body so the client raises.
            handler.close_connection = True
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)


def main(argv: list[str] | None = None) -> int:
    """Run a fake Gemini server in the foreground until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(
        prog="python -m vividly_trace.testing.fake_gemini",
        description="Serve a fake Gemini API until SIGTERM/SIGINT.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: pick a free port")
    parser.add_argument("--text", default=Scenario.text, help="default answer text")
    parser.add_argument("--delay-s", type=float, default=0.0, help="delay of every answer")
    parser.add_argument("--stream-chunks", type=int, default=Scenario.stream_chunks)
    args = parser.parse_args(argv)

    server = FakeGeminiServer(args.host, args.port)
    server.set_default(
        Scenario(text=args.text, delay_s=args.delay_s, stream_chunks=args.stream_chunks)
    )
    done = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous: dict[signal.Signals, Any] = {}
    server.start()
    try:
        if in_main_thread:
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, _on_signal)
        print(f"listening on {server.url}", flush=True)
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
