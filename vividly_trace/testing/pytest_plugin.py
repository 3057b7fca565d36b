"""The pytest plugin (extra ``pytest``; registered through the ``pytest11`` entry point, so
installing the extra is all it takes): fixtures for testing an application that calls Gemini.

- ``fake_gemini``: a running :class:`~vividly_trace.testing.fake_gemini.FakeGeminiServer`
  (one per test session, its scenarios and request log emptied for each test), with the
  Google clients pointed at it: a ``google.genai.Client()`` the application builds during
  the test talks to the fake (``GOOGLE_GEMINI_BASE_URL`` and ``GEMINI_API_KEY`` are set for
  the test), and google-generativeai is configured for it when installed.
- ``vividly_records``: the records of the logged calls the test makes, written synchronously
  (:func:`~vividly_trace.testing.capture_records`), so a test asserts on them right after the
  call.
- ``@pytest.mark.vividly_budget(max_usd)``: the test fails when the Gemini calls it made cost
  more than ``max_usd`` in all, or when any of them has an unknown cost (an unknown cost is
  never taken as $0). It uses ``vividly_records`` (requested or not).

::

    @pytest.mark.vividly_budget("0.001")
    def test_extract_intent(fake_gemini, vividly_records):
        fake_gemini.enqueue(Scenario(text='{"intent": "book"}', prompt_tokens=120))
        assert my_service.extract_intent("a table for two") == {"intent": "book"}
        assert vividly_records.only().input_token_count == 120
"""

from __future__ import annotations

import contextlib
import importlib
import warnings
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

import pytest

from ._capture import CapturedRecords, capture_records

__all__ = ["budget_of", "fake_gemini", "vividly_records"]

_MARKER = "vividly_budget"


def pytest_configure(config: pytest.Config) -> None:
    """Declare the marker (``--strict-markers`` accepts it)."""
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(max_usd): fail the test when its Gemini calls cost more than max_usd in "
        "all, or when a cost is unknown (vividly_trace)",
    )


@pytest.fixture(scope="session")
def _vividly_fake_gemini_server() -> Iterator[Any]:
    from .fake_gemini import FakeGeminiServer

    with FakeGeminiServer() as server:
        yield server


@pytest.fixture
def fake_gemini(_vividly_fake_gemini_server: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fake Gemini API on 127.0.0.1, empty for this test, the Google clients pointed at it."""
    server = _vividly_fake_gemini_server
    server.reset()
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.url)
    monkeypatch.setenv("GEMINI_API_KEY", "fake-key")
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)  # it would win over GEMINI_API_KEY
    monkeypatch.delenv("GOOGLE_GENAI_USE_VERTEXAI", raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # google-generativeai's deprecation notice
        with contextlib.suppress(ImportError):
            importlib.import_module("google.generativeai")
            server.configure_generativeai()
    return server


def budget_of(item: pytest.Item) -> Decimal | None:
    """The ``max_usd`` of a test's ``vividly_budget`` marker, or None without one.

    Raises:
        pytest.UsageError: the marker's argument is not a non-negative amount.
    """
    marker = item.get_closest_marker(_MARKER)
    if marker is None:
        return None
    args = marker.args or tuple(marker.kwargs.get(k) for k in ("max_usd",) if k in marker.kwargs)
    if (
        len(args) != 1
        or isinstance(args[0], bool)
        or not isinstance(args[0], str | int | float | Decimal)
    ):
        raise pytest.UsageError(
            f"{item.nodeid}: @pytest.mark.{_MARKER}(max_usd) takes one amount in USD, "
            f'e.g. "0.01"; got {marker.args!r} {marker.kwargs!r}'
        )
    try:
        limit = Decimal(str(args[0]))
    except InvalidOperation:
        limit = Decimal("NaN")
    if not limit.is_finite() or limit < 0:
        raise pytest.UsageError(f"{item.nodeid}: {_MARKER}: max_usd must be >= 0, got {args[0]!r}")
    return limit


@pytest.fixture
def vividly_records(request: pytest.FixtureRequest) -> Iterator[CapturedRecords]:
    """The records of the logged calls this test makes, in the order the calls ended."""
    with capture_records() as records:
        request.node.stash[_records_key] = records
        yield records


_records_key = pytest.StashKey[CapturedRecords]()
_budget_key = pytest.StashKey[Decimal]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """After a test body that passed, its budget (a failure of the test, not an error)."""
    result = yield
    limit = item.stash.get(_budget_key, None)
    records = item.stash.get(_records_key, None)
    if limit is not None and records is not None:
        _check_budget(records, limit)
    return result


def _check_budget(records: CapturedRecords, limit: Decimal) -> None:
    unknown = [r.template_key for r in records if r.cost_usd is None]
    if unknown:
        pytest.fail(
            f"vividly_budget: {len(unknown)} of {len(records)} calls have an unknown cost "
            f"(no usage or no price): {sorted(set(unknown))}",
            pytrace=False,
        )
    total = sum((r.cost_usd for r in records if r.cost_usd is not None), Decimal(0))
    if total > limit:
        by_key: dict[str, Decimal] = {}
        for r in records:
            if r.cost_usd is not None:
                by_key[r.template_key] = by_key.get(r.template_key, Decimal(0)) + r.cost_usd
        ranked = sorted(by_key.items(), key=lambda kv: -kv[1])
        detail = ", ".join(f"{key} ${cost}" for key, cost in ranked)
        pytest.fail(
            f"vividly_budget: the test's Gemini calls cost ${total}, over the budget of "
            f"${limit} ({detail})",
            pytrace=False,
        )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Check every ``vividly_budget`` marker (a bad one stops the run at collection, with
    its test named); a test with one gets ``vividly_records`` even unasked."""
    for item in items:
        limit = budget_of(item)
        if limit is None:
            continue
        item.stash[_budget_key] = limit
        names = getattr(item, "fixturenames", None)
        if isinstance(names, list) and "vividly_records" not in names:
            names.insert(0, "vividly_records")
