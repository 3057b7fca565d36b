"""JSON lines: one JSON object per record appended to a file (or a stream)."""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from .._record import PromptExecution
from ..exceptions import ConfigurationError

__all__ = ["JSONLinesSink", "encode_records"]


def encode_records(records: Sequence[PromptExecution]) -> str:
    """Encode records as JSON lines (``to_dict()`` of each, one per line)."""
    return "".join(
        json.dumps(r.to_dict(), ensure_ascii=False, allow_nan=False, separators=(",", ":")) + "\n"
        for r in records
    )


class JSONLinesSink:
    """Append one JSON object per record to ``path``, fsync'd once per batch.

    ``path="-"`` writes to standard output (plain JSON lines: for the format Cloud Logging's
    agent reads, use :class:`StructuredStdoutSink`).

    .. versionadded:: 0.1.0
    """

    def __init__(self, path: str | os.PathLike[str], *, name: str = "jsonl", fsync: bool = True):
        if not path:
            raise ConfigurationError("JSONLinesSink needs a path ('-' for stdout)")
        self.name = name
        self.fsync = fsync
        self._stream: IO[str] | None = None
        self._lock = threading.Lock()
        self._pid = os.getpid()
        if str(path) == "-":
            self.path: Path | None = None
        else:
            self.path = Path(path)
            parent = self.path.parent
            if not parent.exists():
                raise ConfigurationError(f"JSONLinesSink: directory {parent} does not exist")

    @property
    def spool_key(self) -> str:
        """The destination, for the spool: the file's absolute path (or stdout)."""
        return "-" if self.path is None else str(self.path.resolve())

    def write_batch(self, records: Sequence[PromptExecution]) -> None:
        """Append the batch; raises ``OSError`` on failure (the dispatcher retries)."""
        data = encode_records(records)
        if self._pid != os.getpid():  # forked while the parent's worker held the lock
            self._lock, self._pid = threading.Lock(), os.getpid()
        with self._lock:
            if self.path is None:
                stream = sys.stdout
                stream.write(data)
                stream.flush()
                return
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(data)
                fh.flush()
                if self.fsync:
                    os.fsync(fh.fileno())

    def close(self) -> None:
        """Nothing held open between batches."""
