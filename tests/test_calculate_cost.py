"""``calculate_gemini_cost``: the original design's helper, and its error for an unknown
model, which names the closest priced models."""

from __future__ import annotations

import re

import pytest

import vividly_trace
from vividly_trace import PricingTable, calculate_gemini_cost

TABLE = PricingTable(
    {
        "gemini-2.5-flash": {"input": "0.30", "output": "2.50"},
        "gemini-2.5-flash-lite": {"input": "0.10", "output": "0.40"},
        "gemini-2.5-pro": {"input": "1.25", "output": "10.00"},
        "in-house-alpha": {"input": "1", "output": "1"},
        "in-house-beta": {"input": "1", "output": "1"},
    },
    version="test-table",
)


@pytest.fixture(autouse=True)
def _table() -> None:
    vividly_trace.configure(sinks=[], sync=True, spool_dir=False, pricing=TABLE)


def named(message: str) -> list[str]:
    """The model names the error offers, in its order."""
    _, sep, tail = message.partition("; the closest known models: ")
    assert sep, message
    return re.findall(r"'([^']*)'", tail)


def test_a_known_model_keeps_its_signature_and_result() -> None:
    """Cost as a float, from the configured table (the original design's signature)."""
    cost = calculate_gemini_cost({"input_tokens": 1_000_000, "output_tokens": 1_000_000})
    assert cost == pytest.approx(2.80) and type(cost) is float
    assert calculate_gemini_cost({"input_tokens": 1_000_000}, "models/in-house-beta") == 1.0


@pytest.mark.parametrize(
    ("model", "first"),
    [
        ("gemini-2.5-flahs", "gemini-2.5-flash"),  # a typo
        ("models/gemini-25-pro", "gemini-2.5-pro"),  # a prefix and a missing dot
        ("models/gemini-2.5-flash-lit-preview-09-2099", "gemini-2.5-flash-lite"),
        ("in-house-alpah", "in-house-alpha"),
    ],
)
def test_an_unknown_model_names_the_closest_known_ones(model: str, first: str) -> None:
    """A ValueError naming the model, the table and (best first) up to three priced models."""
    with pytest.raises(ValueError, match="no price for model") as info:
        calculate_gemini_cost({"input_tokens": 10, "output_tokens": 5}, model)
    message = str(info.value)
    assert repr(model) in message and "'test-table'" in message
    offered = named(message)
    assert offered[0] == first and len(offered) == 3
    assert set(offered) <= set(TABLE.models)


def test_a_name_like_none_still_gets_suggestions() -> None:
    """Even a name unlike any is answered with the nearest three, never a bare refusal."""
    with pytest.raises(ValueError) as info:
        calculate_gemini_cost({"input_tokens": 10}, "gpt-4o")
    assert len(named(str(info.value))) == 3


def test_a_huge_name_is_compared_by_its_start() -> None:
    """A megabyte of model name is refused with suggestions, its start compared."""
    with pytest.raises(ValueError) as info:
        calculate_gemini_cost({"input_tokens": 10}, "in-house-alpah" + "x" * 1_000_000)
    message = str(info.value)
    assert len(message) < 2_000
    assert named(message)[0] == "in-house-alpha"
