"""The spool on its own: destination keys, concurrent replayers, a record that keeps failing."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.factories import make_record, record_id
from vividly_trace import PromptExecution
from vividly_trace._spool import Spool, SpoolReplayFailed, destination_key

#: Half an emoji (an unpaired surrogate) in every record: it must spool and replay as it is.
HALF_EMOJI = {"text": "emoji cut in half: \ud83d"}


class TestKeys:
    """Spools are keyed by destination."""

    def test_same_name_other_destination(self, tmp_path: Path) -> None:
        """Two sinks named alike but writing elsewhere get separate spools."""

        class Sink:
            def __init__(self, key: str) -> None:
                self.spool_key = key

        a = Spool(tmp_path, "sql", 1 << 20, destination_key(Sink("postgresql://a/db")))
        b = Spool(tmp_path, "sql", 1 << 20, destination_key(Sink("postgresql://b/db")))
        assert a.directory != b.directory
        assert a.append([make_record(n=1, metadata=HALF_EMOJI)])
        assert not b.pending()
        assert destination_key(Sink("x")) == destination_key(Sink("x"))


class TestReplay:
    """Replays."""

    def test_unpaired_surrogates_are_kept(self, tmp_path: Path) -> None:
        """Text that is not valid UTF-8 (half an emoji) still spools and replays."""
        spool = Spool(tmp_path, "s", 1 << 20)
        assert spool.append([make_record(n=1, metadata=HALF_EMOJI)])
        got: list[PromptExecution] = []
        assert spool.replay(got.extend, 10) == (1, 0)
        assert got[0].execution_id == record_id(1)

    def test_two_replayers_send_each_record_once(self, tmp_path: Path) -> None:
        """Two processes (here threads with their own Spool) replaying at once: no duplicate."""
        spool = Spool(tmp_path, "s", 1 << 30)
        for chunk in range(10):
            batch = [make_record(n=chunk * 50 + i, metadata=HALF_EMOJI) for i in range(50)]
            assert spool.append(batch)
        sent: list[str] = []
        lock = threading.Lock()
        start = threading.Barrier(2)

        def write(batch: Sequence[PromptExecution]) -> None:
            with lock:
                sent.extend(r.execution_id for r in batch)

        def replayer() -> None:
            start.wait()
            Spool(tmp_path, "s", 1 << 30).replay(write, 7)

        threads = [threading.Thread(target=replayer) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(sent) == 500
        assert len(set(sent)) == 500
        assert not spool.pending()

    def test_a_record_that_keeps_failing_does_not_hold_back_the_rest(self, tmp_path: Path) -> None:
        """The failing record stays in the spool; the others go through."""
        spool = Spool(tmp_path, "s", 1 << 20)
        assert spool.append([make_record(n=i, metadata=HALF_EMOJI) for i in range(10)])
        sent: list[str] = []

        def write(batch: Sequence[PromptExecution]) -> None:
            if any(r.execution_id == record_id(3) for r in batch):
                raise ValueError("refused")
            sent.extend(r.execution_id for r in batch)

        assert spool.replay(write, 4) == (9, 0)
        assert sorted(sent) == sorted(record_id(i) for i in range(10) if i != 3)
        assert spool.pending()
        left: list[PromptExecution] = []
        spool.replay(left.extend, 4)
        assert [r.execution_id for r in left] == [record_id(3)]

    def test_a_down_sink_keeps_everything(self, tmp_path: Path) -> None:
        """When nothing goes through, the replay fails and the spool is intact."""
        spool = Spool(tmp_path, "s", 1 << 20)
        assert spool.append([make_record(n=i, metadata=HALF_EMOJI) for i in range(5)])

        def write(batch: Sequence[PromptExecution]) -> None:
            raise ConnectionError("down")

        with pytest.raises(SpoolReplayFailed):
            spool.replay(write, 2)
        got: list[PromptExecution] = []
        spool.replay(got.extend, 10)
        assert len(got) == 5

    def test_replay_is_bounded(self, tmp_path: Path) -> None:
        """max_records limits one replay; the rest stays for the next."""
        spool = Spool(tmp_path, "s", 1 << 20)
        assert spool.append([make_record(n=i, metadata=HALF_EMOJI) for i in range(30)])
        first: list[PromptExecution] = []
        assert spool.replay(first.extend, 10, max_records=10)[0] == 10
        rest: list[PromptExecution] = []
        spool.replay(rest.extend, 10)
        assert len(first) + len(rest) == 30
        assert len({r.execution_id for r in first + rest}) == 30
