"""Time-ordered execution ids (UUIDv7, RFC 9562), cheap to make on the hot path.

The hot path only takes ``next(counter)``; the id string is built later from the call's
wall-clock nanoseconds, that sequence number and a per-process random prefix, so building it
twice (from two sink workers) gives the same id.
"""

from __future__ import annotations

import itertools
import os

from ._lifecycle import on_fork

__all__ = ["format_uuid7", "new_execution_id", "next_sequence"]

_state: list[int] = [0]
_suffix: list[str] = [""]
next_sequence = itertools.count().__next__


def _reseed() -> None:
    rand = int.from_bytes(os.urandom(4), "big") >> 2  # 30 random bits per process
    _state[0] = rand
    # The variant and the random bits are fixed per process: format them once.
    _suffix[0] = "-%04x-%04x" % (0x8000 | (rand >> 16), rand & 0xFFFF)  # noqa: UP031


_reseed()
on_fork(_reseed)


_last_prefix: list[tuple[int, str]] = [(-1, "")]


def format_uuid7(wall_ns: int, seq: int) -> str:
    """UUIDv7 text from a unix time in ns and a per-process sequence number.

    Layout: 48-bit unix ms | version 7 | 12 bits of sub-millisecond time | variant |
    30 random bits fixed per process | 32-bit sequence.
    """
    ms, rest = divmod(wall_ns, 1_000_000)
    # The millisecond part is shared by every record of the same millisecond (a busy
    # worker formats hundreds per ms): keep the last one. Racing threads at worst both
    # format it; each (ms, text) pair is consistent.
    last = _last_prefix[0]
    if last[0] == ms:
        prefix = last[1]
    else:
        prefix = "%08x-%04x-" % ((ms >> 16) & 0xFFFFFFFF, ms & 0xFFFF)  # noqa: UP031
        _last_prefix[0] = (ms, prefix)
    return "%s%04x%s%08x" % (  # noqa: UP031 - the fastest formatting here
        prefix,
        0x7000 | ((rest * 4096) // 1_000_000),
        _suffix[0],
        seq & 0xFFFFFFFF,
    )


def new_execution_id() -> str:
    """A new UUIDv7 execution id."""
    import time

    return format_uuid7(time.time_ns(), next_sequence())
