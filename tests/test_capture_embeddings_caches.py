"""Client capture of ``models.embed_content`` and ``caches.create`` (and their ``aio``
twins), with the real google-genai client against the fake Gemini, through functions that
return parsed results (a list of floats, a cache name).

Expected costs are computed by hand, USD per 1M tokens: gemini-embedding-001 input 0.15,
gemini-embedding-2 input 0.20 (genai-prices 0.2.3, see pricing-sources.md); gemini-2.5-flash
input 0.30, cached input 0.03, output 2.50 (the official page). A cache creation bills no
tokens (storage is billed per token-hour of TTL, outside a per-request record): cost 0.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from tests.factories import usd
from vividly_trace import logged_prompt
from vividly_trace.testing import CapturedRecords
from vividly_trace.testing.fake_gemini import Scenario

genai = pytest.importorskip("google.genai")
from google.genai import errors as genai_errors  # noqa: E402
from google.genai import types as genai_types  # noqa: E402

EMBED = "gemini-embedding-001"
EMBED2 = "gemini-embedding-2"
FLASH = "gemini-2.5-flash"


class TestEmbeddings:
    def test_parsed_vectors(self, gemini: Any, client: Any, records: CapturedRecords) -> None:
        """A service returning a list of floats is recorded with its input tokens and the
        embedding model's input price; no output tokens."""
        gemini.enqueue(Scenario(prompt_tokens=1234), model=EMBED)

        @logged_prompt("doc_embedding")
        def embed(texts: list[str]) -> list[list[float]]:
            response = client.models.embed_content(
                model=EMBED, contents=texts, config={"output_dimensionality": 8}
            )
            return [list(e.values) for e in response.embeddings]

        vectors = embed(["first", "second"])
        assert [len(v) for v in vectors] == [8, 8]
        assert all(isinstance(x, float) for x in vectors[0])
        rec = records.only()
        assert (rec.template_key, rec.success, rec.model) == ("doc_embedding", True, EMBED)
        assert (rec.input_token_count, rec.output_token_count, rec.total_token_count) == (
            1234,
            0,
            1234,
        )
        assert rec.cost_usd == usd((1234, "0.15")) == Decimal("0.0001851")
        (request,) = rec.requests
        assert (request.operation, request.model, request.success) == ("embed_content", EMBED, True)
        assert (request.input_token_count, request.output_token_count) == (1234, 0)
        assert request.cost_usd == rec.cost_usd

    async def test_aio_embed_and_generate_in_one_function(
        self, gemini: Any, client: Any, records: CapturedRecords
    ) -> None:
        """An embedding and a generation in one async function: two operations, two
        RequestRecords, tokens summed and each priced at its own model."""
        gemini.enqueue(Scenario(prompt_tokens=900), model=EMBED2)
        gemini.enqueue(Scenario(text="Paris", prompt_tokens=60, candidates_tokens=3), model=FLASH)

        @logged_prompt("rag_answer")
        async def answer(question: str) -> str:
            query = await client.aio.models.embed_content(model=EMBED2, contents=question)
            assert len(query.embeddings[0].values) == 3072
            response = await client.aio.models.generate_content(model=FLASH, contents=question)
            return str(response.text)

        assert await answer("capital of France?") == "Paris"
        rec = records.only()
        embedding, generation = rec.requests
        assert (embedding.operation, embedding.model) == ("embed_content", EMBED2)
        assert (embedding.input_token_count, embedding.output_token_count) == (900, 0)
        assert embedding.cost_usd == usd((900, "0.20"))
        assert (generation.operation, generation.model) == ("generate_content", FLASH)
        assert generation.cost_usd == usd((60, "0.30"), (3, "2.50"))
        assert (rec.input_token_count, rec.output_token_count) == (960, 3)
        assert rec.cost_usd == usd((900, "0.20"), (60, "0.30"), (3, "2.50"))
        assert rec.cost_usd == Decimal("0.0002055")
        assert rec.model == EMBED2  # the first request's model names the record

    def test_unlogged_embed_under_its_callers_name(
        self, gemini: Any, client: Any, records: CapturedRecords
    ) -> None:
        """An embed call outside any logged call is a record of its own, named after the
        function that made it."""
        gemini.enqueue(Scenario(prompt_tokens=40))

        def index_document(text: str) -> list[float]:
            response = client.models.embed_content(model=EMBED, contents=text)
            return list(response.embeddings[0].values)

        assert len(index_document("some text")) == 3072
        rec = records.only()
        assert rec.template_key == (
            f"{__name__}:TestEmbeddings.test_unlogged_embed_under_its_callers_name"
            ".<locals>.index_document"
        )
        assert (rec.model, rec.input_token_count, rec.output_token_count) == (EMBED, 40, 0)
        assert rec.cost_usd == usd((40, "0.15"))
        assert [r.operation for r in rec.requests] == ["embed_content"]

    async def test_unlogged_aio_embed(
        self, gemini: Any, client: Any, records: CapturedRecords
    ) -> None:
        """The aio twin outside any logged call, too."""
        gemini.enqueue(Scenario(prompt_tokens=5))

        async def embed_query(text: str) -> int:
            response = await client.aio.models.embed_content(model=EMBED, contents=text)
            return len(response.embeddings)

        assert await embed_query("q") == 1
        rec = records.only()
        assert rec.template_key.endswith("test_unlogged_aio_embed.<locals>.embed_query")
        assert (rec.input_token_count, rec.cost_usd) == (5, usd((5, "0.15")))

    def test_failing_embed_is_a_failure(
        self, gemini: Any, client: Any, records: CapturedRecords
    ) -> None:
        """A 429 raised through a parsed-result function: failed, HTTP status kept, no
        tokens and no cost (the request was not billed)."""
        gemini.enqueue(Scenario(error_status=429, error_message="quota exceeded"))

        @logged_prompt("doc_embedding")
        def embed(text: str) -> list[float]:
            return list(
                client.models.embed_content(model=EMBED, contents=text).embeddings[0].values
            )

        with pytest.raises(genai_errors.ClientError):
            embed("x")
        rec = records.only()
        assert (rec.success, rec.http_status, rec.error_type) == (False, 429, "ClientError")
        assert "quota exceeded" in (rec.error_message or "")
        assert (rec.input_token_count, rec.cost_usd) == (None, None)
        (request,) = rec.requests
        assert (request.operation, request.success, request.http_status) == (
            "embed_content",
            False,
            429,
        )

    async def test_failing_aio_embed_caught_by_the_function(
        self, gemini: Any, client: Any, records: CapturedRecords
    ) -> None:
        """The function catches the 429 and returns a fallback: still a failure."""
        gemini.enqueue(Scenario(error_status=429))

        @logged_prompt("doc_embedding")
        async def embed_or_empty(text: str) -> list[float]:
            try:
                response = await client.aio.models.embed_content(model=EMBED, contents=text)
            except genai_errors.ClientError:
                return []
            return list(response.embeddings[0].values)

        assert await embed_or_empty("x") == []
        rec = records.only()
        assert (rec.success, rec.http_status) == (False, 429)

    def test_answer_without_usage_is_unknown_not_zero(
        self, gemini: Any, client: Any, records: CapturedRecords
    ) -> None:
        """An embedding answer without usageMetadata leaves tokens and cost unknown."""
        gemini.enqueue(Scenario(omit_prompt_tokens=True))

        @logged_prompt("doc_embedding")
        def embed(text: str) -> int:
            return len(client.models.embed_content(model=EMBED, contents=text).embeddings)

        assert embed("x") == 1
        rec = records.only()
        assert rec.success is True
        assert (rec.input_token_count, rec.output_token_count, rec.cost_usd) == (None, None, None)
        (request,) = rec.requests  # captured: the answer itself had no counts
        assert (request.operation, request.input_token_count) == ("embed_content", None)


class TestCaches:
    def test_create_returns_the_name(
        self, gemini: Any, client: Any, records: CapturedRecords
    ) -> None:
        """A function returning the cache's name: its tokens recorded as input, cost 0."""
        gemini.enqueue(Scenario(prompt_tokens=32_768), prompt_contains="the manual")

        @logged_prompt("cache_manual")
        def cache_manual(text: str) -> str:
            cache = client.caches.create(
                model=FLASH,
                config=genai_types.CreateCachedContentConfig(contents=[text], ttl="600s"),
            )
            return str(cache.name)

        name = cache_manual("the manual, all of it")
        assert name.startswith("cachedContents/")
        rec = records.only()
        assert (rec.template_key, rec.success, rec.model) == ("cache_manual", True, FLASH)
        assert (rec.input_token_count, rec.output_token_count, rec.total_token_count) == (
            32_768,
            0,
            32_768,
        )
        assert rec.cost_usd == Decimal(0)
        assert rec.pricing_version is not None  # a price was applied: 0, not unknown
        assert rec.response_model == FLASH
        (request,) = rec.requests
        assert (request.operation, request.input_token_count, request.cost_usd) == (
            "caches.create",
            32_768,
            Decimal(0),
        )

    async def test_aio_create_then_generate_with_the_cache(
        self, gemini: Any, client: Any, records: CapturedRecords
    ) -> None:
        """Create a cache, then read it in a generation: the creation costs nothing, the
        generation bills its cached tokens at the cached rate."""
        gemini.enqueue(Scenario(prompt_tokens=4096), model=FLASH, prompt_contains="policy")
        gemini.enqueue(
            Scenario(text="42 days", prompt_tokens=4106, cached_tokens=4096, candidates_tokens=3),
            model=FLASH,
        )

        @logged_prompt("policy_answer")
        async def ask(question: str) -> str:
            cache = await client.aio.caches.create(
                model=FLASH, config={"contents": ["the policy text"], "ttl": "300s"}
            )
            response = await client.aio.models.generate_content(
                model=FLASH,
                contents=question,
                config=genai_types.GenerateContentConfig(cached_content=cache.name),
            )
            return str(response.text)

        assert await ask("how long?") == "42 days"
        rec = records.only()
        creation, generation = rec.requests
        assert (creation.operation, creation.input_token_count, creation.cost_usd) == (
            "caches.create",
            4096,
            Decimal(0),
        )
        assert generation.operation == "generate_content"
        assert generation.cost_usd == usd((10, "0.30"), (4096, "0.03"), (3, "2.50"))
        assert (rec.input_token_count, rec.output_token_count) == (4096 + 4106, 3)
        assert rec.cost_usd == usd((10, "0.30"), (4096, "0.03"), (3, "2.50"))
        assert gemini.requests[-1]["body"]["cachedContent"].startswith("cachedContents/")

    def test_unlogged_create_under_its_callers_name(
        self, gemini: Any, client: Any, records: CapturedRecords
    ) -> None:
        """A cache created outside any logged call is recorded under its caller's key."""
        gemini.enqueue(Scenario(prompt_tokens=2048))

        def warm_cache() -> str:
            return str(client.caches.create(model=FLASH, config={"contents": ["x"]}).name)

        warm_cache()
        rec = records.only()
        assert rec.template_key.endswith(
            "TestCaches.test_unlogged_create_under_its_callers_name.<locals>.warm_cache"
        )
        assert (rec.input_token_count, rec.cost_usd) == (2048, Decimal(0))

    def test_get_and_delete_are_not_recorded(
        self, gemini: Any, client: Any, records: CapturedRecords
    ) -> None:
        """Only the creation is a billed request; get and delete leave no record."""
        gemini.enqueue(Scenario(prompt_tokens=1024))
        name = client.caches.create(model=FLASH, config={"contents": ["x"]}).name
        client.caches.get(name=name)
        client.caches.delete(name=name)
        assert [r.requests[0].operation for r in records] == ["caches.create"]

    def test_failing_create_is_a_failure(
        self, gemini: Any, client: Any, records: CapturedRecords
    ) -> None:
        """A refused creation (400) is a failed record with its status."""
        gemini.enqueue(Scenario(error_status=400, error_message="too few tokens to cache"))

        @logged_prompt("cache_manual")
        def cache_manual() -> str:
            return str(client.caches.create(model=FLASH, config={"contents": ["x"]}).name)

        with pytest.raises(genai_errors.ClientError):
            cache_manual()
        rec = records.only()
        assert (rec.success, rec.http_status, rec.cost_usd) == (False, 400, None)
        assert rec.requests[0].operation == "caches.create"

    def test_creations_from_concurrent_tasks(
        self, gemini: Any, client: Any, records: CapturedRecords
    ) -> None:
        """Concurrent creations, each answered by prompt: each record has its own count."""
        for n in (1024, 2048, 4096):
            gemini.enqueue(Scenario(prompt_tokens=n), prompt_contains=f"doc-{n}")

        @logged_prompt("cache_doc")
        async def cache_doc(n: int) -> str:
            cache = await client.aio.caches.create(model=FLASH, config={"contents": [f"doc-{n}"]})
            return str(cache.name)

        async def main() -> list[str]:
            return list(await asyncio.gather(*(cache_doc(n) for n in (4096, 1024, 2048))))

        assert len(set(asyncio.run(main()))) == 3
        assert sorted(r.input_token_count or 0 for r in records) == [1024, 2048, 4096]
        assert all(r.cost_usd == 0 for r in records)


class TestExtractionAndPrices:
    """The extractors on google-genai's own response types, and the prices behind them."""

    def test_embedding_response(self) -> None:
        """Prompt tokens are the input, 0 output; audio from prompt_tokens_details."""
        from vividly_trace.usage import Usage, extract

        response = genai_types.EmbedContentResponse(
            embeddings=[genai_types.ContentEmbedding(values=[0.1, 0.2])],
            usage_metadata=genai_types.UsageMetadata(
                prompt_token_count=30,
                prompt_tokens_details=[
                    genai_types.ModalityTokenCount(modality="TEXT", token_count=10),
                    genai_types.ModalityTokenCount(modality="AUDIO", token_count=20),
                ],
            ),
        )
        info = extract(response)
        assert info.usage == Usage(30, 0, 30, audio_input_tokens=20)
        assert (info.provider, info.response_model, info.block_reason) == ("gemini", None, None)
        bare = genai_types.EmbedContentResponse(embeddings=[])
        assert extract(bare).usage.is_empty

    def test_cached_content(self) -> None:
        """totalTokenCount is the input; the model loses its ``models/`` prefix."""
        from vividly_trace.usage import Usage, extract

        cache = genai_types.CachedContent(
            name="cachedContents/x",
            model="models/gemini-2.5-pro",
            usage_metadata=genai_types.CachedContentUsageMetadata(total_token_count=5000),
        )
        info = extract(cache)
        assert (info.usage, info.response_model) == (Usage(5000, 0, 5000), "gemini-2.5-pro")
        assert extract(genai_types.CachedContent(name="cachedContents/x")).usage.is_empty

    def test_embedding_prices_and_the_cache_rule(self) -> None:
        """Embedding models bill input only (audio at its own rate on gemini-embedding-2);
        a cache creation costs 0 with known tokens, unknown without."""
        from vividly_trace.pricing import PricingTable
        from vividly_trace.usage import EMPTY_USAGE, Usage

        table = PricingTable.default()
        assert table.resolve("models/gemini-embedding-001") is table.models[EMBED]
        assert table.request_cost("embed_content", EMBED, Usage(2_000_000, 0, 2_000_000)) == (
            Decimal("0.30")
        )
        audio = Usage(1000, 0, 1000, audio_input_tokens=400)
        assert table.request_cost("embed_content", EMBED2, audio) == usd(
            (600, "0.20"), (400, "6.50")
        )
        tokens = Usage(100_000, 0, 100_000)
        assert table.request_cost("caches.create", "gemini-2.5-pro", tokens) == Decimal(0)
        assert table.request_cost("caches.create", "no-such-model", tokens) == Decimal(0)
        assert table.request_cost("caches.create", FLASH, EMPTY_USAGE) is None
        assert table.request_cost("generate_content", FLASH, tokens) == usd((100_000, "0.30"))
