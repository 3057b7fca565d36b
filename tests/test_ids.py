"""Execution ids: valid, time-ordered UUIDv7 text, whatever order they are formatted in."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from vividly_trace._ids import _state, format_uuid7

WALL_NS = st.integers(min_value=0, max_value=(2**48 - 1) * 1_000_000 + 999_999)


@given(st.lists(st.tuples(WALL_NS, st.integers(0, 2**40)), min_size=1, max_size=30), st.data())
def test_fields_decode_back(calls: list[tuple[int, int]], data: st.DataObject) -> None:
    """Each id carries its own millisecond, sub-ms fraction and sequence, also when ids of
    the same and of different milliseconds are formatted interleaved (the ms cache)."""
    same_ms = data.draw(st.integers(0, 999_999))
    calls = [*calls, (calls[0][0] - calls[0][0] % 1_000_000 + same_ms, 7)]
    for wall_ns, seq in calls:
        text = format_uuid7(wall_ns, seq)
        u = uuid.UUID(text)
        assert str(u) == text
        assert u.version == 7
        assert u.variant == uuid.RFC_4122
        ms, rest = divmod(wall_ns, 1_000_000)
        assert u.int >> 80 == ms
        assert (u.int >> 64) & 0xFFF == rest * 4096 // 1_000_000
        assert (u.int >> 32) & 0x3FFFFFFF == _state[0]  # the per-process random bits
        assert u.int & 0xFFFFFFFF == seq & 0xFFFFFFFF


def test_time_ordered() -> None:
    """Later times sort later as text, across and within milliseconds."""
    times = [1_700_000_000_000_000_000 + k * 250_000 for k in range(20)]
    ids = [format_uuid7(t, 0) for t in reversed(times)]
    assert sorted(ids) == [format_uuid7(t, 0) for t in times]
