"""A durable local spool per sink: JSON lines, fsync'd per batch, bounded, replayable.

Layout: ``<spool_dir>/<sink name>-<destination key>/<pid>.jsonl``. The destination key (a
short hash of what the sink writes to: database URL, project and log, file path; see
:func:`destination_key`) keeps the spools of two applications that both name their sink
``sql`` apart, so a record is never replayed into another application's database. One file
per writing process, so processes never interleave lines.

Every access takes an exclusive ``flock`` on the file. A replay (by any process, or
``vividly-trace spool replay``) reads a file under that lock, sends what it holds, and then
rewrites the file with what was not sent (or truncates it): files are never unlinked while
in use, so two replayers cannot both send a record, nor delete one appended meanwhile. A
torn last line (the process was killed mid-write) is skipped and counted as corrupt, never
fatal.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from ._record import PromptExecution

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["Spool", "default_spool_dir", "destination_key"]


def destination_key(sink: object) -> str:
    """A short stable key of where ``sink`` writes (its ``spool_key``, else its type)."""
    import hashlib

    key = getattr(sink, "spool_key", None)
    if not isinstance(key, str) or not key:
        key = f"{type(sink).__module__}.{type(sink).__qualname__}"
    return hashlib.sha256(key.encode("utf-8", "backslashreplace")).hexdigest()[:12]


def encode_lines(records: Sequence[PromptExecution]) -> bytes:
    """JSON lines of records, exact (``to_exact_dict``); never fails on odd text."""
    return "".join(
        json.dumps(r.to_exact_dict(), ensure_ascii=False, separators=(",", ":")) + "\n"
        for r in records
    ).encode("utf-8", "backslashreplace")


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

    def __init__(
        self,
        directory: Path,
        sink_name: str,
        max_bytes: int,
        key: str | None = None,
        decode: Callable[[dict[str, Any]], Any] = PromptExecution.from_dict,
    ) -> None:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in sink_name) or "sink"
        if key:
            safe = f"{safe}-{key}"
        self.directory = Path(directory) / safe
        self.max_bytes = max_bytes
        self.decode = decode  # a line's dict -> what was spooled (records, or scores)
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
        All or nothing: a write that fails part-way (the disk filled up) is cut off again,
        so that no record is both counted as lost and replayed, and no torn line is left in
        the middle of the file for the next append.
        """
        data = encode_lines(records)
        if self.size() + len(data) > self.max_bytes:
            return False
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.own_file
        while True:
            with _locked(path, "append") as fd:
                if os.fstat(fd).st_nlink == 0:  # unlinked by a replayer meanwhile: reopen
                    continue
                start = os.fstat(fd).st_size  # under the lock: nobody else appends now
                try:
                    view = memoryview(data)
                    while view:
                        written = os.write(fd, view)
                        view = view[written:]
                    os.fsync(fd)
                except BaseException:
                    with suppress(OSError):
                        os.ftruncate(fd, start)
                    raise
                return True

    def replay(
        self,
        write: Callable[[Sequence[PromptExecution]], object],
        batch_size: int,
        max_records: int | None = None,
    ) -> tuple[int, int]:
        """Send spooled records through ``write`` in batches.

        Returns ``(replayed, corrupt)``. A batch that fails is retried record by record, so
        one record the sink keeps refusing does not hold back the others (it stays in the
        spool). Stops after about ``max_records`` records (the rest waits for the next
        replay) or when the sink fails a single record for another reason, and raises that
        failure after saving what was not sent.
        """
        replayed = corrupt = 0
        try:
            for path in self.files():
                if max_records is not None and replayed >= max_records:
                    break
                try:
                    ctx = _locked(path, "rw")
                    fd = ctx.__enter__()
                except FileNotFoundError:
                    continue
                try:
                    if os.fstat(fd).st_nlink == 0:  # removed by a cleanup meanwhile
                        continue
                    with os.fdopen(os.dup(fd), "rb") as fh:
                        fh.seek(0)
                        lines = fh.read().splitlines()
                    # Lines are parsed a batch at a time, as they are sent: a bounded replay
                    # of a large spool must not decode (and re-encode) all of it each time,
                    # or replaying a backlog costs the square of its size and the worker
                    # falls behind the application. Lines not reached are kept as they are.
                    pos = 0  # the next line to read
                    kept: list[PromptExecution] = []
                    current: Sequence[PromptExecution] = ()
                    try:
                        while pos < len(lines):
                            if max_records is not None and replayed >= max_records:
                                break
                            batch: list[PromptExecution] = []
                            while pos < len(lines) and len(batch) < batch_size:
                                line = lines[pos]
                                pos += 1
                                if not line.strip():
                                    continue
                                try:
                                    batch.append(self.decode(json.loads(line)))
                                except Exception:  # torn or foreign line: not a record
                                    corrupt += 1
                            if not batch:
                                continue
                            current = batch
                            try:
                                write(current)
                                failed: list[PromptExecution] = []
                            except Exception:
                                if len(current) == 1:
                                    raise
                                failed = _one_by_one(write, current)
                            kept.extend(failed)
                            replayed += len(current) - len(failed)
                            current = ()
                    finally:
                        # What failed goes to the end, so the next replay starts elsewhere.
                        unread = [line for line in lines[pos:] if line.strip()]
                        self._keep_rest(fd, [*kept, *current], unread)
                        if not unread and not kept and not current:
                            _remove_if_orphaned(path, fd)
                finally:
                    ctx.__exit__(None, None, None)
        finally:
            # The unreadable lines are gone from the file now, even when a write failed.
            self.corrupt_lines += corrupt
        return replayed, corrupt

    def _keep_rest(
        self, fd: int, rest: Sequence[PromptExecution], unread: Sequence[bytes] = ()
    ) -> None:
        """Rewrite the file: the ``unread`` lines as they were, then ``rest``."""
        data = b"".join(line + b"\n" for line in unread)
        if rest:
            data += encode_lines(rest)
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)


def _remove_if_orphaned(path: Path, fd: int) -> None:
    """Remove an emptied spool file whose writer process is gone (called under its lock).

    A live writer's file is only emptied, never removed. A dead writer's file has no writer
    left (file names are per pid, and a writer re-opens a file found unlinked).
    """
    try:
        pid = int(path.stem)
    except ValueError:
        return
    if pid == os.getpid():
        return
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        with suppress(OSError):
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                os.unlink(path)
    except OSError:  # exists, owned by another user: alive
        return


def _one_by_one(
    write: Callable[[Sequence[PromptExecution]], object], batch: Sequence[PromptExecution]
) -> list[PromptExecution]:
    """Write a failed batch record by record; return the records that still fail.

    Raises :class:`SpoolReplayFailed` when the first few records all fail: the sink is
    down, not refusing one record, and trying every record alone would only wait longer.
    """
    failed: list[PromptExecution] = []
    written = 0
    for record in batch:
        try:
            write([record])
        except Exception:
            failed.append(record)
            if not written and len(failed) >= _SINGLES_BEFORE_GIVING_UP:
                raise SpoolReplayFailed(len(batch)) from None
        else:
            written += 1
    if not written:
        raise SpoolReplayFailed(len(batch))
    return failed


_SINGLES_BEFORE_GIVING_UP = 3


class SpoolReplayFailed(Exception):
    """A replay batch failed record by record too: the sink is not accepting writes."""
