"""GenAI metrics through the application's MeterProvider (the real OpenTelemetry SDK with an
in-memory reader), from calls made with the real google-genai client: one data point per
Gemini request, tokens by type, duration, time to first chunk and cost."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from google.genai import errors as genai_errors
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import vividly_trace
from tests.factories import usd
from vividly_trace import log_prompt_execution, logged_prompt
from vividly_trace.sinks import OpenTelemetryMetricsSink, sink_from_spec
from vividly_trace.testing.fake_gemini import Scenario

FLASH = "gemini-2.5-flash"
PRO = "gemini-2.5-pro"


def points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    out: dict[str, list[Any]] = {}
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            assert scope.scope.name == "vividly_trace"
            for metric in scope.metrics:
                out.setdefault(metric.name, []).extend(metric.data.data_points)
    return out


def by(points_: list[Any], **attrs: Any) -> list[Any]:
    return [p for p in points_ if all(p.attributes.get(k) == v for k, v in attrs.items())]


@pytest.fixture(name="reader")
def _reader() -> Iterator[InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    vividly_trace.configure(sinks=[OpenTelemetryMetricsSink(provider)], sync=True, spool_dir=False)
    yield reader
    provider.shutdown()


def test_two_models_one_call(gemini: Any, client: Any, reader: InMemoryMetricReader) -> None:
    gemini.enqueue(
        Scenario(text="draft", prompt_tokens=1000, candidates_tokens=300),
        Scenario(text="final", prompt_tokens=400, candidates_tokens=50),
    )

    @logged_prompt("script_generation")
    def write_script(topic: str) -> str:
        draft = client.models.generate_content(model=FLASH, contents=topic).text
        return str(client.models.generate_content(model=PRO, contents=draft).text)

    write_script("rain")
    got = points(reader)
    tokens = got["gen_ai.client.token.usage"]
    common = {
        "gen_ai.operation.name": "generate_content",
        "gen_ai.provider.name": "gcp.gemini",
        "vividly.template_key": "script_generation",
    }
    (flash_in,) = by(
        tokens, **common, **{"gen_ai.request.model": FLASH, "gen_ai.token.type": "input"}
    )
    (pro_out,) = by(tokens, **{"gen_ai.request.model": PRO, "gen_ai.token.type": "output"})
    assert (flash_in.sum, flash_in.count, pro_out.sum) == (1000, 1, 50)
    durations = got["gen_ai.client.operation.duration"]
    assert sorted(p.attributes["gen_ai.request.model"] for p in durations) == [FLASH, PRO]
    assert all(0 < p.sum < 10 and p.count == 1 for p in durations)
    costs = got["gen_ai.client.operation.cost"]
    (pro_cost,) = by(costs, **{"gen_ai.request.model": PRO})
    assert pro_cost.sum == pytest.approx(float(usd((400, "1.25"), (50, "10.00"))))
    assert pro_cost.attributes["gen_ai.usage.cost.currency"] == "USD"
    assert "gen_ai.client.operation.time_to_first_chunk" not in got


def test_streams_failures_and_unknown_cost(
    gemini: Any, client: Any, reader: InMemoryMetricReader
) -> None:
    gemini.enqueue(
        Scenario(text="a b c", prompt_tokens=9, candidates_tokens=3, delay_s=0.05),
        Scenario(error_status=429),
    )

    @logged_prompt("story")
    def story() -> Iterator[str]:
        for chunk in client.models.generate_content_stream(model=FLASH, contents="x"):
            yield chunk.text or ""

    @logged_prompt("fails")
    def fails() -> None:
        client.models.generate_content(model=FLASH, contents="x")

    assert "".join(story()) == "a b c"
    with pytest.raises(genai_errors.ClientError):
        fails()
    log_prompt_execution("manual", True, 120.0, input_token_count=7)  # no model: no cost
    got = points(reader)
    (first_chunk,) = got["gen_ai.client.operation.time_to_first_chunk"]
    assert first_chunk.attributes["vividly.template_key"] == "story"
    assert 0.05 <= first_chunk.sum < 5
    (failed,) = by(got["gen_ai.client.operation.duration"], **{"vividly.template_key": "fails"})
    assert failed.attributes["error.type"] == "ClientError"
    (manual,) = by(got["gen_ai.client.operation.duration"], **{"vividly.template_key": "manual"})
    assert manual.sum == pytest.approx(0.12)
    assert not by(got["gen_ai.client.operation.cost"], **{"vividly.template_key": "manual"})
    assert not by(got["gen_ai.client.token.usage"], **{"vividly.template_key": "fails"})


def test_from_the_environment_spec() -> None:
    assert isinstance(sink_from_spec("otel_metrics"), OpenTelemetryMetricsSink)
