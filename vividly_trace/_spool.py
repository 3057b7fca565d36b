"""A durable local spool per sink: JSON lines, fsync'd per batch, bounded, replayable.

Layout: ``<spool_dir>/<sink name>/<pid>.jsonl``, one file per writing process, so processes
never interleave lines. Every access takes an exclusive ``flock`` on the file; a replay
(by any process, or ``vividly-trace spool replay``) reads a whole file under that lock, sends
it, and truncates the file only after the sink accepted it. A torn last line (the process was
killed mid-write) is skipped and counted as corrupt, never fatal.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from ._record import PromptExecution

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["Spool", "default_spool_dir"]


def default_spool_dir() -> Path:
    """``$VIVIDLY_TRACE_SPOOL_DIR``, else ``$XDG_CACHE_HOME/vividly_trace/spool``."""
    env = os.environ.get("VIVIDLY_TRACE_SPOOL_DIR")
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "vividly_trace" / "spool"


@contextmanager
def _locked(path: Path, mode: str) -> Iterator[int]:
    fd = os.open(path, mode_flags(mode), 0o600)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        # Unlock explicitly, not just by closing: the lock belongs to the open file, and a
        # process forked meanwhile holds a copy of this descriptor, which would keep the
        # lock (and block every replay of this file) for as long as that child lives.
        if fcntl is not None:
            with suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # replayed and removed by another process meanwhile
        return 0.0


def mode_flags(mode: str) -> int:
    if mode == "append":
        return os.O_WRONLY | os.O_APPEND | os.O_CREAT
    return os.O_RDWR


class Spool:
    """The spool of one sink.

    .. versionadded:: 0.1.0
    """

    def __init__(self, directory: Path, sink_name: str, max_bytes: int) -> None:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in sink_name) or "sink"
        self.directory = Path(directory) / safe
        self.max_bytes = max_bytes
        self.corrupt_lines = 0

    @property
    def own_file(self) -> Path:
        return self.directory / f"{os.getpid()}.jsonl"

    def files(self) -> list[Path]:
        """Spool files of this sink, from every process, oldest first."""
        try:
            found = [p for p in self.directory.glob("*.jsonl") if p.is_file()]
        except OSError:
            return []
        return sorted(found, key=lambda p: (_mtime(p), p.name))

    def size(self) -> int:
        total = 0
        for p in self.files():
            with suppress(OSError):
                total += p.stat().st_size
        return total

    def pending(self) -> bool:
        """True when any spool file of this sink holds data."""
        for p in self.files():
            try:
                if p.stat().st_size > 0:
                    return True
            except OSError:
                continue
        return False

    def append(self, records: Sequence[PromptExecution]) -> bool:
        """Write ``records`` durably; False when the size cap would be exceeded.

        Raises ``OSError`` (disk full, permissions) to the caller, which counts the loss.
        """
        data = "".join(
            json.dumps(r.to_exact_dict(), ensure_ascii=False, separators=(",", ":")) + "\n"
            for r in records
        ).encode("utf-8")
        if self.size() + len(data) > self.max_bytes:
            return False
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.own_file
        while True:
            with _locked(path, "append") as fd:
                if os.fstat(fd).st_nlink == 0:  # unlinked by a replayer meanwhile: reopen
                    continue
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
                return True

    def replay(
        self, write: Callable[[Sequence[PromptExecution]], object], batch_size: int
    ) -> tuple[int, int]:
        """Send spooled records through ``write`` in batches.

        Returns ``(replayed, corrupt)``. Stops at the first failing batch, keeping what was
        not sent; raises that failure after saving the remainder.
        """
        replayed = corrupt = 0
        try:
            for path in self.files():
                try:
                    ctx = _locked(path, "rw")
                    fd = ctx.__enter__()
                except FileNotFoundError:
                    continue
                try:
                    with os.fdopen(os.dup(fd), "rb") as fh:
                        lines = fh.read().splitlines()
                    records: list[PromptExecution] = []
                    for line in lines:
                        if not line.strip():
                            continue
                        try:
                            records.append(PromptExecution.from_dict(json.loads(line)))
                        except Exception:  # torn or foreign line: not JSON, not a record
                            corrupt += 1
                    sent = 0
                    try:
                        while sent < len(records):
                            batch = records[sent : sent + batch_size]
                            write(batch)
                            sent += len(batch)
                            replayed += len(batch)
                    finally:
                        self._keep_rest(fd, path, records[sent:])
                finally:
                    ctx.__exit__(None, None, None)
        finally:
            # The unreadable lines are gone from the file now, even when a write failed.
            self.corrupt_lines += corrupt
        return replayed, corrupt

    def _keep_rest(self, fd: int, path: Path, rest: Sequence[PromptExecution]) -> None:
        if not rest:
            os.unlink(path)
            return
        data = "".join(
            json.dumps(r.to_exact_dict(), ensure_ascii=False, separators=(",", ":")) + "\n"
            for r in rest
        ).encode("utf-8")
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
