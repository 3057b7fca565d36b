"""Fixtures of the sink tests: local fake servers (records: ``tests.factories``).

(The loopback-only network guard, ``_loopback_only``, is in ``tests/conftest.py``.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(name="fake_logging")
def _fake_logging() -> Iterator[Any]:
    """A fresh fake Cloud Logging endpoint on 127.0.0.1."""
    from vividly_trace.testing.fake_logging import FakeLoggingServer

    with FakeLoggingServer() as server:
        yield server


@pytest.fixture(name="collector")
def _collector() -> Iterator[Any]:
    """A fresh OTLP/HTTP collector stub on 127.0.0.1."""
    pytest.importorskip("opentelemetry.proto")
    from vividly_trace.testing.otlp_collector import OTLPCollector

    with OTLPCollector() as server:
        yield server
