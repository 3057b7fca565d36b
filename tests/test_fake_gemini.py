"""The fake Gemini server against the real google-genai and google-generativeai clients."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vividly_trace.testing.fake_gemini import FakeGeminiServer, Scenario

MODEL = "gemini-2.5-flash"
ROOT = Path(__file__).resolve().parents[1]

RICH = Scenario(
    text="hello from the fake",
    prompt_tokens=10,
    candidates_tokens=13,
    thoughts_tokens=12,
    cached_tokens=4,
    tool_use_prompt_tokens=5,
    audio_prompt_tokens=2,
    total_tokens=35,
    model_version="gemini-2.5-flash-001",
)


@pytest.fixture
def fake() -> Iterator[FakeGeminiServer]:
    with FakeGeminiServer() as server:
        yield server


def _raw_post(server: FakeGeminiServer, path: str, body: Any = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request(
            "POST",
            path,
            body=json.dumps(body if body is not None else {}),
            headers={"Content-Type": "application/json"},
        )
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# -- the server on its own ---------------------------------------------------------------


def test_module_imports_no_google_package() -> None:
    code = (
        "import sys, vividly_trace.testing.fake_gemini\n"
        "bad = [m for m in sys.modules if m.startswith('google.')]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_raw_http_shapes_and_records(fake: FakeGeminiServer) -> None:
    fake.enqueue(RICH)
    status, raw = _raw_post(fake, f"/v1beta/models/{MODEL}:generateContent", {"contents": []})
    assert status == 200
    data = json.loads(raw)
    assert data["candidates"][0]["content"]["parts"][0]["text"] == RICH.text
    assert data["candidates"][0]["finishReason"] == "STOP"
    assert data["usageMetadata"] == {
        "promptTokenCount": 10,
        "candidatesTokenCount": 13,
        "cachedContentTokenCount": 4,
        "thoughtsTokenCount": 12,
        "toolUsePromptTokenCount": 5,
        "totalTokenCount": 35,
        "promptTokensDetails": [
            {"modality": "TEXT", "tokenCount": 8},
            {"modality": "AUDIO", "tokenCount": 2},
        ],
    }
    assert data["modelVersion"] == "gemini-2.5-flash-001"

    # enum-encoding=int turns every enum into its proto number
    fake.enqueue(RICH)
    status, raw = _raw_post(
        fake, f"/v1beta/models/{MODEL}:generateContent?%24alt=json%3Benum-encoding%3Dint"
    )
    data = json.loads(raw)
    assert data["candidates"][0]["finishReason"] == 1
    assert [d["modality"] for d in data["usageMetadata"]["promptTokensDetails"]] == [1, 4]
    fake.enqueue(Scenario(block_reason="SAFETY"))
    _, raw = _raw_post(fake, f"/v1beta/models/{MODEL}:generateContent?$alt=json;enum-encoding=int")
    assert json.loads(raw)["promptFeedback"] == {"blockReason": 1}

    status, raw = _raw_post(fake, f"/v1beta/models/{MODEL}:countTokens")
    assert (status, json.loads(raw)) == (200, {"totalTokens": 10})

    status, raw = _raw_post(fake, "/v1beta/nothing/here")
    assert status == 404
    assert json.loads(raw)["error"]["status"] == "NOT_FOUND"

    rec = fake.requests[0]
    assert rec["method"] == "POST"
    assert rec["path"] == f"/v1beta/models/{MODEL}:generateContent"
    assert rec["model"] == MODEL
    assert rec["stream"] is False
    assert rec["body"] == {"contents": []}
    assert rec["headers"]["content-type"] == "application/json"
    assert fake.requests[1]["query"] == {"$alt": "json;enum-encoding=int"}
    assert fake.requests[-1]["model"] is None


def test_keep_alive_is_fast(fake: FakeGeminiServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
    try:
        start = time.perf_counter()
        for _ in range(20):
            conn.request("POST", f"/v1beta/models/{MODEL}:generateContent", body=b"{}")
            response = conn.getresponse()
            assert response.status == 200
            response.read()
        # one connection, no Nagle/delayed-ACK stalls (~40 ms each otherwise)
        assert time.perf_counter() - start < 0.4
    finally:
        conn.close()


def test_queue_then_default(fake: FakeGeminiServer) -> None:
    fake.set_default(Scenario(text="default"))
    fake.enqueue(Scenario(text="first"), Scenario(text="second"))
    texts = []
    for _ in range(3):
        _, raw = _raw_post(fake, f"/v1beta/models/{MODEL}:generateContent")
        texts.append(json.loads(raw)["candidates"][0]["content"]["parts"][0]["text"])
    assert texts == ["first", "second", "default"]


def test_hang_closes_without_answer_and_stop_is_prompt() -> None:
    server = FakeGeminiServer().start()
    server.enqueue(Scenario(hang_s=0.2), Scenario(hang_s=30))
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("POST", f"/v1beta/models/{MODEL}:generateContent", body=b"{}")
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        conn.getresponse()
    conn.close()
    # stop() interrupts a pending hang and closes the connection
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("POST", f"/v1beta/models/{MODEL}:generateContent", body=b"{}")
    time.sleep(0.05)
    start = time.perf_counter()
    server.stop()
    assert time.perf_counter() - start < 1.5
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        conn.getresponse()
    conn.close()


def test_main_runs_in_another_process() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "vividly_trace.testing.fake_gemini", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("POST", f"/v1beta/models/{MODEL}:generateContent", body=b"{}")
        assert conn.getresponse().status == 200
        conn.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert proc.stderr is not None
        assert proc.stderr.read() == ""  # no per-request logging
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- google-genai ------------------------------------------------------------------------


@pytest.fixture
def genai_client(fake: FakeGeminiServer) -> Any:
    pytest.importorskip("google.genai")
    return fake.genai_client()


def _check_rich_usage(usage: Any) -> None:
    assert usage.prompt_token_count == 10
    assert usage.candidates_token_count == 13
    assert usage.thoughts_token_count == 12
    assert usage.cached_content_token_count == 4
    assert usage.tool_use_prompt_token_count == 5
    assert usage.total_token_count == 35
    details = {d.modality.value: d.token_count for d in usage.prompt_tokens_details}
    assert details == {"TEXT": 8, "AUDIO": 2}


def test_genai_sync(fake: FakeGeminiServer, genai_client: Any) -> None:
    fake.enqueue(RICH)
    response = genai_client.models.generate_content(model=MODEL, contents="hi")
    assert response.text == RICH.text
    _check_rich_usage(response.usage_metadata)
    assert response.model_version == "gemini-2.5-flash-001"
    assert response.candidates[0].finish_reason.value == "STOP"
    assert [(r["model"], r["stream"]) for r in fake.requests] == [(MODEL, False)]
    assert fake.requests[0]["body"]["contents"][0]["parts"][0]["text"] == "hi"
    assert fake.requests[0]["headers"]["x-goog-api-key"] == "fake-key"


def test_genai_default_model_version_and_finish_reason(
    fake: FakeGeminiServer, genai_client: Any
) -> None:
    fake.enqueue(Scenario(finish_reason="SAFETY", text=""))
    response = genai_client.models.generate_content(model="gemini-2.0-flash", contents="hi")
    assert response.model_version == "gemini-2.0-flash"
    assert response.candidates[0].finish_reason.value == "SAFETY"
    assert response.usage_metadata.total_token_count == 15


async def test_genai_async(fake: FakeGeminiServer, genai_client: Any) -> None:
    fake.enqueue(RICH)
    response = await genai_client.aio.models.generate_content(model=MODEL, contents="hi")
    assert response.text == RICH.text
    _check_rich_usage(response.usage_metadata)


def test_genai_stream_usage_on_last_chunk(fake: FakeGeminiServer, genai_client: Any) -> None:
    fake.enqueue(Scenario(text="abcdefghijkl", stream_chunks=4, candidates_tokens=8))
    chunks = list(genai_client.models.generate_content_stream(model=MODEL, contents="hi"))
    assert len(chunks) == 4
    assert "".join(c.text for c in chunks) == "abcdefghijkl"
    assert [c.usage_metadata is None for c in chunks] == [True, True, True, False]
    assert chunks[-1].usage_metadata.candidates_token_count == 8
    assert chunks[-1].usage_metadata.total_token_count == 18
    assert chunks[-1].candidates[0].finish_reason.value == "STOP"
    assert chunks[0].candidates[0].finish_reason is None
    assert [(r["model"], r["stream"], r["query"]) for r in fake.requests] == [
        (MODEL, True, {"alt": "sse"})
    ]


def test_genai_stream_cumulative_usage(fake: FakeGeminiServer, genai_client: Any) -> None:
    fake.enqueue(
        Scenario(
            text="abcdef",
            stream_chunks=3,
            candidates_tokens=9,
            thoughts_tokens=6,
            usage_on_every_chunk=True,
        )
    )
    chunks = list(genai_client.models.generate_content_stream(model=MODEL, contents="hi"))
    usages = [c.usage_metadata for c in chunks]
    assert [u.prompt_token_count for u in usages] == [10, 10, 10]
    assert [u.candidates_token_count for u in usages] == [3, 6, 9]
    assert [u.thoughts_token_count for u in usages] == [2, 4, 6]
    assert [u.total_token_count for u in usages] == [15, 20, 25]


async def test_genai_async_stream(fake: FakeGeminiServer, genai_client: Any) -> None:
    fake.enqueue(RICH)
    stream = await genai_client.aio.models.generate_content_stream(model=MODEL, contents="hi")
    chunks = [chunk async for chunk in stream]
    assert len(chunks) == 3
    assert "".join(c.text for c in chunks) == RICH.text
    _check_rich_usage(chunks[-1].usage_metadata)


@pytest.mark.parametrize(
    ("status", "error_name"), [(400, "ClientError"), (429, "ClientError"), (500, "ServerError")]
)
def test_genai_errors(
    fake: FakeGeminiServer, genai_client: Any, status: int, error_name: str
) -> None:
    from google.genai import errors

    error_cls = getattr(errors, error_name)
    fake.enqueue(Scenario(error_status=status, error_message="nope"))
    with pytest.raises(error_cls) as info:
        genai_client.models.generate_content(model=MODEL, contents="hi")
    assert info.value.code == status
    assert info.value.message == "nope"
    fake.enqueue(Scenario(error_status=status))
    with pytest.raises(error_cls) as info:
        for _ in genai_client.models.generate_content_stream(model=MODEL, contents="hi"):
            pass
    assert info.value.code == status
    assert len(fake.requests) == 2  # no retries


async def test_genai_async_error(fake: FakeGeminiServer, genai_client: Any) -> None:
    from google.genai import errors

    fake.enqueue(Scenario(error_status=429))
    with pytest.raises(errors.ClientError) as info:
        await genai_client.aio.models.generate_content(model=MODEL, contents="hi")
    assert info.value.code == 429
    assert info.value.status == "RESOURCE_EXHAUSTED"


def test_genai_blocked_prompt(fake: FakeGeminiServer, genai_client: Any) -> None:
    fake.enqueue(Scenario(block_reason="SAFETY", prompt_tokens=7))
    response = genai_client.models.generate_content(model=MODEL, contents="hi")
    assert response.prompt_feedback.block_reason.value == "SAFETY"
    assert not response.candidates
    assert response.usage_metadata.prompt_token_count == 7
    assert response.usage_metadata.candidates_token_count is None
    fake.enqueue(Scenario(block_reason="SAFETY"))
    chunks = list(genai_client.models.generate_content_stream(model=MODEL, contents="hi"))
    assert len(chunks) == 1
    assert chunks[0].prompt_feedback.block_reason.value == "SAFETY"


def test_genai_error_mid_stream(fake: FakeGeminiServer, genai_client: Any) -> None:
    from google.genai import errors

    fake.enqueue(Scenario(text="abcdefghi", stream_chunks=3, stream_error_after=2))
    received = []
    with pytest.raises(errors.ServerError) as info:
        for chunk in genai_client.models.generate_content_stream(model=MODEL, contents="hi"):
            received.append(chunk.text)
    assert received == ["abc", "def"]
    assert info.value.code == 500


async def test_genai_async_error_mid_stream(fake: FakeGeminiServer, genai_client: Any) -> None:
    from google.genai import errors

    fake.enqueue(Scenario(text="abcdefghi", stream_error_after=1, error_status=503))
    received = []
    stream = await genai_client.aio.models.generate_content_stream(model=MODEL, contents="hi")
    with pytest.raises(errors.ServerError) as info:
        async for chunk in stream:
            received.append(chunk.text)
    assert received == ["abc"]
    assert info.value.code == 503


def test_genai_client_timeout_on_hang(fake: FakeGeminiServer) -> None:
    pytest.importorskip("google.genai")
    from google import genai
    from google.genai import types

    client = genai.Client(
        vertexai=False,
        api_key="k",
        http_options=types.HttpOptions(base_url=fake.url, api_version="v1beta", timeout=200),
    )
    fake.enqueue(Scenario(hang_s=1.0))
    start = time.perf_counter()
    with pytest.raises(Exception, match=r"(?i)timed? ?out"):
        client.models.generate_content(model=MODEL, contents="hi")
    assert time.perf_counter() - start < 0.9


def test_genai_delay(fake: FakeGeminiServer, genai_client: Any) -> None:
    fake.enqueue(Scenario(delay_s=0.2))
    start = time.perf_counter()
    genai_client.models.generate_content(model=MODEL, contents="hi")
    assert time.perf_counter() - start >= 0.2


# -- scenario matching, chunk delay, service tier ------------------------------------------


def _answer_text(raw: bytes) -> str:
    return str(json.loads(raw)["candidates"][0]["content"]["parts"][0]["text"])


def _prompt(text: str) -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}]}


def test_enqueue_for_a_model_or_prompt_before_the_fifo(fake: FakeGeminiServer) -> None:
    """Answers queued for a model or a prompt go to matching requests only, once each."""
    fake.set_default(Scenario(text="default"))
    fake.enqueue(Scenario(text="fifo"))
    fake.enqueue(Scenario(text="pro"), model="models/gemini-2.5-pro")
    fake.enqueue(Scenario(text="order"), prompt_contains="order #7")
    fake.enqueue(Scenario(text="both"), model=MODEL, prompt_contains="refund")
    asked = [
        ("gemini-2.5-pro", "hello"),  # pro
        (MODEL, "about order #7 please"),  # order
        ("gemini-2.5-pro", "refund"),  # not MODEL: the FIFO
        (MODEL, "refund now"),  # both
        ("gemini-2.5-pro", "hello"),  # pro used up, FIFO used up: default
    ]
    texts = [
        _answer_text(_raw_post(fake, f"/v1beta/models/{m}:generateContent", _prompt(p))[1])
        for m, p in asked
    ]
    assert texts == ["pro", "order", "fifo", "both", "default"]


def test_when_rule_answers_every_match_until_removed(fake: FakeGeminiServer) -> None:
    """A rule answers all its matching requests; queued matches and removal come first."""
    rule = fake.when(Scenario(text="rule"), model="gemini-2.5-pro")
    fake.enqueue(Scenario(text="once"), model="gemini-2.5-pro")
    fake.enqueue(Scenario(text="fifo"))
    path = "/v1beta/models/gemini-2.5-pro:generateContent"
    texts = [_answer_text(_raw_post(fake, path, _prompt("x"))[1]) for _ in range(3)]
    assert texts == ["once", "rule", "rule"]
    fake.remove_rule(rule)
    assert _answer_text(_raw_post(fake, path, _prompt("x"))[1]) == "fifo"
    fake.remove_rule(rule)  # gone already: no error


def test_matching_reads_system_instruction_and_history(fake: FakeGeminiServer) -> None:
    """prompt_contains looks at every text of the body, not only the last turn."""
    fake.when(Scenario(text="support"), prompt_contains="You are support")
    body = {
        "systemInstruction": {"parts": [{"text": "You are support."}]},
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
    }
    _, raw = _raw_post(fake, f"/v1beta/models/{MODEL}:generateContent", body)
    assert _answer_text(raw) == "support"
    _, raw = _raw_post(fake, f"/v1beta/models/{MODEL}:generateContent", _prompt("hi"))
    assert _answer_text(raw) == "ok"  # no system instruction: the default


def test_match_needs_a_condition(fake: FakeGeminiServer) -> None:
    """A rule without condition or with an empty one is refused at once."""
    with pytest.raises(ValueError, match="model= or prompt_contains="):
        fake.when(Scenario())
    with pytest.raises(ValueError, match="non-empty"):
        fake.enqueue(Scenario(), prompt_contains="")


def test_concurrent_requests_get_their_matched_answers(
    fake: FakeGeminiServer, genai_client: Any
) -> None:
    """Requests in any order from many threads each get the answer queued for them."""
    from concurrent.futures import ThreadPoolExecutor

    for i in range(12):
        fake.enqueue(
            Scenario(text=f"answer {i}", candidates_tokens=i + 1), prompt_contains=f"q{i}:"
        )

    def ask(i: int) -> tuple[str, int]:
        response = genai_client.models.generate_content(model=MODEL, contents=f"q{i}: go")
        return response.text, response.usage_metadata.candidates_token_count

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(ask, reversed(range(12))))
    assert results == [(f"answer {i}", i + 1) for i in reversed(range(12))]


def test_chunk_delay_spaces_the_chunks(fake: FakeGeminiServer, genai_client: Any) -> None:
    """Each chunk after the first is sent chunk_delay_s after the one before it: the last
    one cannot arrive before two delays have passed (a causal bound, whatever the load; the
    gap between two arrivals is not, since the client may read a chunk late)."""
    fake.enqueue(Scenario(text="abcdef", stream_chunks=3, chunk_delay_s=0.15))
    start = time.perf_counter()
    arrivals = []
    for chunk in genai_client.models.generate_content_stream(model=MODEL, contents="hi"):
        arrivals.append(time.perf_counter())
        assert chunk.text
    assert len(arrivals) == 3
    assert arrivals[-1] - start >= 0.30, arrivals


async def test_chunk_delay_async_stream(fake: FakeGeminiServer, genai_client: Any) -> None:
    """The async client sees the same spacing."""
    fake.enqueue(Scenario(text="abcd", stream_chunks=2, chunk_delay_s=0.15))
    start = time.perf_counter()
    stream = await genai_client.aio.models.generate_content_stream(model=MODEL, contents="hi")
    texts = [chunk.text async for chunk in stream]
    assert texts == ["ab", "cd"]
    assert time.perf_counter() - start >= 0.15


def test_service_tier_recorded_and_echoed(fake: FakeGeminiServer, genai_client: Any) -> None:
    """The requested tier is recorded; the served one comes back in x-gemini-service-tier."""
    from google.genai import types

    flex = types.GenerateContentConfig(service_tier="flex")
    response = genai_client.models.generate_content(model=MODEL, contents="hi", config=flex)
    assert fake.requests[-1]["service_tier"] == "flex"
    assert fake.requests[-1]["body"]["serviceTier"] == "flex"
    assert response.sdk_http_response.headers["x-gemini-service-tier"] == "flex"

    fake.enqueue(Scenario(service_tier="standard"))  # a priority request downgraded
    priority = types.GenerateContentConfig(service_tier=types.ServiceTier.PRIORITY)
    response = genai_client.models.generate_content(model=MODEL, contents="hi", config=priority)
    assert fake.requests[-1]["service_tier"] == "priority"
    assert response.sdk_http_response.headers["x-gemini-service-tier"] == "standard"

    response = genai_client.models.generate_content(model=MODEL, contents="hi")
    assert fake.requests[-1]["service_tier"] is None
    assert "x-gemini-service-tier" not in response.sdk_http_response.headers


def test_service_tier_on_a_stream(fake: FakeGeminiServer, genai_client: Any) -> None:
    """A streamed answer carries the header too."""
    from google.genai import types

    config = types.GenerateContentConfig(service_tier="priority")
    chunks = list(
        genai_client.models.generate_content_stream(model=MODEL, contents="hi", config=config)
    )
    assert fake.requests[-1]["service_tier"] == "priority"
    assert chunks[0].sdk_http_response.headers["x-gemini-service-tier"] == "priority"


# -- embeddings --------------------------------------------------------------------------

EMBED = "gemini-embedding-001"


def test_embed_content_through_google_genai(fake: FakeGeminiServer, genai_client: Any) -> None:
    """embed_content calls batchEmbedContents; one vector per content; prompt tokens only."""
    fake.enqueue(Scenario(prompt_tokens=9))
    response = genai_client.models.embed_content(
        model=EMBED, contents=["first text", "second text"], config={"output_dimensionality": 8}
    )
    request = fake.requests[-1]
    assert request["path"] == f"/v1beta/models/{EMBED}:batchEmbedContents"
    assert request["model"] == EMBED
    assert [r["outputDimensionality"] for r in request["body"]["requests"]] == [8, 8]
    assert len(response.embeddings) == 2
    first, second = (e.values for e in response.embeddings)
    assert len(first) == len(second) == 8
    assert all(isinstance(v, float) for v in first)
    assert sum(v * v for v in first) == pytest.approx(1.0, abs=1e-5)
    assert first != second
    assert response.usage_metadata.prompt_token_count == 9
    assert response.usage_metadata.total_token_count is None  # the API reports none
    # the same text embeds to the same vector; the default size is 3072
    again = genai_client.models.embed_content(model=EMBED, contents="first text")
    assert len(again.embeddings[0].values) == 3072
    assert again.embeddings[0].values[:8] != first  # another size, another vector
    same = genai_client.models.embed_content(
        model=EMBED, contents="first text", config={"output_dimensionality": 8}
    )
    assert same.embeddings[0].values == first


async def test_embed_content_async(fake: FakeGeminiServer, genai_client: Any) -> None:
    """The aio twin calls the same endpoint."""
    fake.enqueue(Scenario(prompt_tokens=4, embedding_dimensions=16))
    response = await genai_client.aio.models.embed_content(model=EMBED, contents="hello")
    assert len(response.embeddings[0].values) == 16
    assert response.usage_metadata.prompt_token_count == 4
    assert fake.requests[-1]["path"].endswith(":batchEmbedContents")


def test_embed_usage_metadata_raw_shape(fake: FakeGeminiServer) -> None:
    """The wire shape is EmbeddingUsageMetadata: promptTokenCount and promptTokenDetails."""
    fake.enqueue(Scenario(prompt_tokens=12, audio_prompt_tokens=5))
    body = {"requests": [{"model": f"models/{EMBED}", "content": {"parts": [{"text": "a"}]}}]}
    status, raw = _raw_post(fake, f"/v1beta/models/{EMBED}:batchEmbedContents", body)
    assert status == 200
    answer = json.loads(raw)
    assert answer["usageMetadata"] == {
        "promptTokenCount": 12,
        "promptTokenDetails": [
            {"modality": "TEXT", "tokenCount": 7},
            {"modality": "AUDIO", "tokenCount": 5},
        ],
    }
    fake.enqueue(Scenario(prompt_tokens=3, embedding_dimensions=2))
    single = {"model": f"models/{EMBED}", "content": {"parts": [{"text": "a"}]}}
    status, raw = _raw_post(fake, f"/v1beta/models/{EMBED}:embedContent", single)
    answer = json.loads(raw)
    assert status == 200
    assert len(answer["embedding"]["values"]) == 2
    assert answer["usageMetadata"]["promptTokenCount"] == 3


def test_embed_without_usage_and_errors(fake: FakeGeminiServer, genai_client: Any) -> None:
    """omit_prompt_tokens leaves usageMetadata out; error_status fails the request."""
    from google.genai import errors

    fake.enqueue(Scenario(omit_prompt_tokens=True))
    response = genai_client.models.embed_content(model=EMBED, contents="x")
    assert response.usage_metadata is None
    fake.enqueue(Scenario(error_status=429, error_message="quota"), model=EMBED)
    with pytest.raises(errors.ClientError) as info:
        genai_client.models.embed_content(model=EMBED, contents="x")
    assert (info.value.code, info.value.status) == (429, "RESOURCE_EXHAUSTED")


# -- context caches ----------------------------------------------------------------------


def test_caches_create_get_update_list_delete(fake: FakeGeminiServer, genai_client: Any) -> None:
    """The cache lifecycle through google-genai's caches.* with totalTokenCount as usage."""
    from google.genai import errors, types

    fake.enqueue(Scenario(prompt_tokens=4096), prompt_contains="the long manual")
    before = time.time()
    cache = genai_client.caches.create(
        model=MODEL,
        config=types.CreateCachedContentConfig(
            contents=["the long manual"],
            system_instruction="be brief",
            ttl="300s",
            display_name="manual",
        ),
    )
    created = fake.requests[-1]
    assert (created["method"], created["path"], created["model"]) == (
        "POST",
        "/v1beta/cachedContents",
        MODEL,
    )
    assert created["body"]["ttl"] == "300s"
    assert cache.name.startswith("cachedContents/")
    assert cache.model == f"models/{MODEL}"
    assert cache.display_name == "manual"
    assert cache.usage_metadata.total_token_count == 4096
    assert before + 299 <= cache.expire_time.timestamp() <= time.time() + 301

    fake.enqueue(Scenario(error_status=500))  # for the next creation, not for get/update
    got = genai_client.caches.get(name=cache.name)
    assert (got.name, got.usage_metadata.total_token_count) == (cache.name, 4096)
    updated = genai_client.caches.update(name=cache.name, config={"ttl": "600s"})
    assert updated.expire_time.timestamp() >= before + 599
    assert [c.name for c in genai_client.caches.list()] == [cache.name]
    assert [r["method"] for r in fake.requests] == ["POST", "GET", "PATCH", "GET"]
    genai_client.caches.delete(name=cache.name)
    assert fake.requests[-1]["method"] == "DELETE"
    with pytest.raises(errors.ClientError) as info:
        genai_client.caches.get(name=cache.name)
    assert (info.value.code, info.value.status) == (403, "PERMISSION_DENIED")
    assert "CachedContent not found" in info.value.message
    with pytest.raises(errors.ServerError):  # the queued scenario was still there
        genai_client.caches.create(model=MODEL, config={"contents": ["x"]})


async def test_caches_async_and_expiry(fake: FakeGeminiServer, genai_client: Any) -> None:
    """The aio twin; an expired cache is gone; default TTL one hour."""
    from google.genai import errors

    fake.enqueue(Scenario(prompt_tokens=2048))
    cache = await genai_client.aio.caches.create(
        model="gemini-2.5-pro", config={"contents": ["x"], "ttl": "0.2s"}
    )
    assert cache.usage_metadata.total_token_count == 2048
    assert fake.requests[-1]["model"] == "gemini-2.5-pro"
    await genai_client.aio.caches.get(name=cache.name)
    time.sleep(0.25)
    with pytest.raises(errors.ClientError) as info:
        await genai_client.aio.caches.get(name=cache.name)
    assert info.value.code == 403
    hour = await genai_client.aio.caches.create(model=MODEL, config={"contents": ["x"]})
    assert hour.expire_time.timestamp() == pytest.approx(time.time() + 3600, abs=5)


def test_caches_create_errors_and_missing_usage(fake: FakeGeminiServer, genai_client: Any) -> None:
    """error_status fails a creation; omit_prompt_tokens answers without usageMetadata."""
    from google.genai import errors

    fake.enqueue(Scenario(error_status=400, error_message="too few tokens"), model=MODEL)
    with pytest.raises(errors.ClientError) as info:
        genai_client.caches.create(model=MODEL, config={"contents": ["x"]})
    assert (info.value.code, info.value.message) == (400, "too few tokens")
    fake.enqueue(Scenario(omit_prompt_tokens=True))
    cache = genai_client.caches.create(model=MODEL, config={"contents": ["x"]})
    assert cache.usage_metadata is None
    fake.reset()
    with pytest.raises(errors.ClientError):
        genai_client.caches.get(name=cache.name)  # reset() forgets caches too


# -- google-generativeai (transport="rest") -----------------------------------------------


@pytest.fixture
def old_genai(fake: FakeGeminiServer) -> Any:
    module = pytest.importorskip("google.generativeai")
    fake.configure_generativeai()
    return module


def test_generativeai_sync(fake: FakeGeminiServer, old_genai: Any) -> None:
    fake.enqueue(RICH)
    response = old_genai.GenerativeModel(MODEL).generate_content("hi")
    assert response.text == RICH.text
    usage = response.usage_metadata
    # the 0.6.x v1beta protos only know these four counts
    assert usage.prompt_token_count == 10
    assert usage.candidates_token_count == 13
    assert usage.cached_content_token_count == 4
    assert usage.total_token_count == 35
    assert response.candidates[0].finish_reason == 1  # STOP
    rec = fake.requests[0]
    assert (rec["model"], rec["stream"]) == (MODEL, False)
    assert rec["query"] == {"$alt": "json;enum-encoding=int"}
    assert rec["headers"]["x-goog-api-key"] == "fake-key"


def test_generativeai_finish_reason_safety(fake: FakeGeminiServer, old_genai: Any) -> None:
    fake.enqueue(Scenario(finish_reason="SAFETY"))
    response = old_genai.GenerativeModel(MODEL).generate_content("hi")
    assert response.candidates[0].finish_reason == 3  # SAFETY


def test_generativeai_stream(fake: FakeGeminiServer, old_genai: Any) -> None:
    fake.enqueue(Scenario(text="abcdefghi", stream_chunks=3, candidates_tokens=7))
    response = old_genai.GenerativeModel(MODEL).generate_content("hi", stream=True)
    chunks = list(response)
    assert [c.text for c in chunks] == ["abc", "def", "ghi"]
    assert response.text == "abcdefghi"
    assert response.usage_metadata.candidates_token_count == 7
    assert response.usage_metadata.total_token_count == 17
    assert [(r["model"], r["stream"]) for r in fake.requests] == [(MODEL, True)]
    assert fake.requests[0]["query"] == {"$alt": "json;enum-encoding=int"}


def test_generativeai_stream_cumulative_usage(fake: FakeGeminiServer, old_genai: Any) -> None:
    fake.enqueue(Scenario(text="ok", stream_chunks=2, usage_on_every_chunk=True))
    chunks = list(old_genai.GenerativeModel(MODEL).generate_content("hi", stream=True))
    assert [c.usage_metadata.candidates_token_count for c in chunks] == [2, 5]


@pytest.mark.parametrize(
    ("status", "error_name"),
    [(400, "BadRequest"), (429, "TooManyRequests"), (500, "InternalServerError")],
)
def test_generativeai_errors(
    fake: FakeGeminiServer, old_genai: Any, status: int, error_name: str
) -> None:
    from google.api_core import exceptions

    error_cls = getattr(exceptions, error_name)
    model = old_genai.GenerativeModel(MODEL)
    fake.enqueue(Scenario(error_status=status, error_message="nope"))
    with pytest.raises(error_cls) as info:
        model.generate_content("hi")
    assert info.value.code == status
    # api_core prefixes the message with "POST <url>: "
    assert info.value.message.endswith(": nope")
    fake.enqueue(Scenario(error_status=status))
    with pytest.raises(error_cls) as info:
        model.generate_content("hi", stream=True)
    assert info.value.code == status
    assert len(fake.requests) == 2  # not retried by default


def test_generativeai_503_without_retry(fake: FakeGeminiServer, old_genai: Any) -> None:
    from google.api_core import exceptions

    fake.enqueue(Scenario(error_status=503))
    with pytest.raises(exceptions.ServiceUnavailable) as info:
        old_genai.GenerativeModel(MODEL).generate_content("hi", request_options={"retry": None})
    assert info.value.code == 503
    assert len(fake.requests) == 1


def test_generativeai_blocked_prompt(fake: FakeGeminiServer, old_genai: Any) -> None:
    fake.enqueue(Scenario(block_reason="SAFETY", prompt_tokens=7))
    response = old_genai.GenerativeModel(MODEL).generate_content("hi")
    assert response.prompt_feedback.block_reason == 1  # SAFETY
    assert len(response.candidates) == 0
    assert response.usage_metadata.prompt_token_count == 7
    assert response.usage_metadata.total_token_count == 7


def test_generativeai_error_mid_stream(fake: FakeGeminiServer, old_genai: Any) -> None:
    import requests

    fake.enqueue(Scenario(text="abcdefghi", stream_chunks=3, stream_error_after=2))
    received = []
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for chunk in old_genai.GenerativeModel(MODEL).generate_content("hi", stream=True):
            received.append(chunk.text)
    assert received == ["abc", "def"]
    # the connection pool recovers
    response = old_genai.GenerativeModel(MODEL).generate_content("hi")
    assert response.text == "ok"


def test_generativeai_count_tokens(fake: FakeGeminiServer, old_genai: Any) -> None:
    fake.enqueue(Scenario(prompt_tokens=42))
    assert old_genai.GenerativeModel(MODEL).count_tokens("hi").total_tokens == 42


def test_concurrent_requests_are_all_answered_and_recorded(fake: FakeGeminiServer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def worker(i: int) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
        try:
            for _ in range(10):
                conn.request("POST", f"/v1beta/models/m{i}:generateContent", body=b"{}")
                response = conn.getresponse()
                response.read()
                assert response.status == 200
            return i
        finally:
            conn.close()

    with ThreadPoolExecutor(max_workers=16) as pool:
        assert sorted(pool.map(worker, range(16))) == list(range(16))
    assert len(fake.requests) == 160
    assert {r["model"] for r in fake.requests} == {f"m{i}" for i in range(16)}


def test_genai_kept_alive_connection_is_closed_by_stop() -> None:
    pytest.importorskip("google.genai")
    try:  # google-genai >= 2 uses the httpx2 fork, older versions httpx
        import httpx2 as httpx_module
    except ImportError:
        import httpx as httpx_module

    server = FakeGeminiServer().start()
    client = server.genai_client()
    assert client.models.generate_content(model=MODEL, contents="hi").text == "ok"
    server.stop()
    with pytest.raises(httpx_module.TransportError):
        client.models.generate_content(model=MODEL, contents="hi")


def test_client_going_away_is_not_logged(
    fake: FakeGeminiServer, capfd: pytest.CaptureFixture[str]
) -> None:
    fake.enqueue(Scenario(text="x" * 5000, stream_chunks=200, delay_s=0.1))
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
    conn.request("POST", f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse", body=b"{}")
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()  # reset: the server's writes fail
    time.sleep(0.3)
    _, raw = _raw_post(fake, f"/v1beta/models/{MODEL}:generateContent")
    assert json.loads(raw)["candidates"]
    assert capfd.readouterr().err == ""
