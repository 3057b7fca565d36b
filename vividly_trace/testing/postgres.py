"""A throwaway PostgreSQL server for tests and benchmarks (Debian's ``postgresql`` package).

::

    server = PostgresServer(tmp_path)
    server.start()                      # initdb on first start, then pg_ctl start
    url = server.create_database()      # postgresql+psycopg://postgres@127.0.0.1:PORT/db_...
    server.kill()                       # crash it (pg_ctl -m immediate)
    server.start()                      # same data directory, same port: crash recovery
    server.stop()

The server listens on 127.0.0.1 only (and on a Unix socket inside its directory), trusts
every local connection (``initdb -A trust -U postgres``) and never touches a system cluster.
PostgreSQL refuses to run as root; when this process is root, the binaries run as the
``postgres`` user (``runuser``), and the data goes to a fresh directory that user can reach
when ``base_dir`` sits under a directory closed to it (pytest's ``/tmp/pytest-of-root`` is
mode 0700). That directory is removed at interpreter exit.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

__all__ = [
    "DEFAULT_SETTINGS",
    "PostgresServer",
    "PostgresServerError",
    "create_database",
    "find_pg_bin",
]

_SERVICE_USER = "postgres"

DEFAULT_SETTINGS: dict[str, str] = {"fsync": "off", "full_page_writes": "off"}
"""Settings of a throwaway server: no fsync, so starting, creating databases and stopping
are fast. Commits still reach the operating system before they are acknowledged
(``synchronous_commit`` stays on), so a server crash (:meth:`PostgresServer.kill`) loses
nothing; only an operating-system crash could. Pass ``{"fsync": "on",
"full_page_writes": "on"}`` to measure a durable server."""
_names = itertools.count(1)


class PostgresServerError(RuntimeError):
    """The server could not be installed, initialised, started or stopped."""


def create_database(server: PostgresServer | str, prefix: str = "db") -> str:
    """A fresh empty database on ``server``: a :class:`PostgresServer`, or the URL of a server
    run elsewhere (``VIVIDLY_TRACE_TEST_PG_URL``-style, SQLAlchemy). Returns its URL."""
    if not isinstance(server, str):
        return server.create_database()
    import sqlalchemy as sa

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    if not name.replace("_", "").isalnum():
        raise ValueError(f"database name must be alphanumeric/underscore, got {name!r}")
    engine = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        engine.dispose()
    return sa.engine.make_url(server).set(database=name).render_as_string(hide_password=False)


def find_pg_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/*/bin`` holding ``initdb`` and ``pg_ctl``, if any."""
    found: list[tuple[int, Path]] = []
    for candidate in glob.glob("/usr/lib/postgresql/*/bin"):
        path = Path(candidate)
        if (path / "initdb").exists() and (path / "pg_ctl").exists():
            try:
                found.append((int(path.parent.name.split(".")[0]), path))
            except ValueError:
                found.append((0, path))
    if not found:
        return None
    return max(found)[1]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


class PostgresServer:
    """A PostgreSQL server in its own directory, on 127.0.0.1.

    Args:
        base_dir: where the data directory, the Unix socket and the log go.
        port: TCP port; ``None`` picks a free one (kept across restarts).
        settings: server settings (``-c name=value``) over :data:`DEFAULT_SETTINGS`.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        base_dir: Path | str,
        port: int | None = None,
        *,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.base_dir = Path(base_dir).resolve()
        self._port = port
        self._port_fixed = port is not None
        self.settings = {**DEFAULT_SETTINGS, **(settings or {})}
        self._bin: Path | None = None
        self._run_as = _SERVICE_USER if _is_root() else None
        self._home: Path | None = None
        self._owned_home = False
        self._paused = False

    # -- facts ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The TCP port (chosen on first use when none was given)."""
        if self._port is None:
            self._port = _free_port()
        return self._port

    @property
    def home(self) -> Path:
        """The directory holding ``data/``, the socket and ``postgres.log``."""
        if self._home is None:
            self._home = self._choose_home()
        return self._home

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        return self.home / "data"

    @property
    def log_path(self) -> Path:
        """The server log."""
        return self.home / "postgres.log"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``postgres`` database."""
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        """SQLAlchemy URL of ``database`` on this server."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def pid(self) -> int | None:
        """The postmaster's pid, from ``postmaster.pid`` (``None`` when not running)."""
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
            pid = int(first)
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return pid

    def is_running(self) -> bool:
        """True when ``pg_ctl status`` says the server runs."""
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        result = self._run([self._tool("pg_ctl"), "-D", str(self.data_dir), "status"], check=False)
        return result.returncode == 0

    # -- lifecycle -----------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> PostgresServer:
        """Initialise the cluster on first use, then start the server and wait until it is up.

        Starting a running server does nothing; starting after :meth:`stop` or :meth:`kill`
        reuses the data directory and port (after a kill PostgreSQL runs crash recovery).
        """
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        if self.is_running():
            return self
        attempts = 1 if self._port_fixed else 3
        for attempt in range(attempts):
            try:
                self._pg_ctl_start(timeout)
                return self
            except PostgresServerError:
                if attempt + 1 == attempts or not self._port_taken():
                    raise
                self._port = _free_port()  # lost a race for the port: pick another
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Stop cleanly (``pg_ctl -m fast``); nothing happens when it is not running."""
        self._stop("fast", timeout)

    def kill(self, timeout: float = 60.0) -> None:
        """Stop abruptly (``pg_ctl -m immediate``), as a crash would: no checkpoint."""
        self._stop("immediate", timeout)

    def restart(self, timeout: float = 60.0) -> PostgresServer:
        """Stop (fast) and start again on the same data directory and port."""
        self.stop(timeout)
        return self.start(timeout)

    def pause(self) -> None:
        """Freeze the server (``SIGSTOP`` to the postmaster and all its backends).

        Connections stay open but nothing answers: a stalled database, not a refused one.
        """
        for pid in self._server_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """Undo :meth:`pause`."""
        for pid in self._server_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self._paused = False

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (a fresh name when ``name`` is None); return its URL."""
        if name is None:
            name = f"db_{next(_names)}_{uuid.uuid4().hex[:8]}"
        if not name.replace("_", "").isalnum():
            raise ValueError(f"database name must be alphanumeric/underscore, got {name!r}")
        try:
            import psycopg
        except ImportError:
            self._run(
                [
                    self._tool("createdb"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    "postgres",
                    name,
                ],
                check=True,
            )
        else:
            with psycopg.connect(
                host="127.0.0.1",
                port=self.port,
                user="postgres",
                dbname="postgres",
                autocommit=True,
                connect_timeout=10,
            ) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def remove(self) -> None:
        """Stop the server (immediate) and delete its directory."""
        if self._paused:
            self.resume()
        with contextlib.suppress(PostgresServerError):
            if self.is_running():
                self.kill()
        home = self.home
        shutil.rmtree(self.data_dir, ignore_errors=True)
        if self._owned_home:
            shutil.rmtree(home, ignore_errors=True)
            (self.base_dir / "LOCATION").unlink(missing_ok=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._paused:
            self.resume()
        self.stop()

    def __repr__(self) -> str:
        return f"PostgresServer(port={self._port}, data_dir={str(self.data_dir)!r})"

    # -- internals -----------------------------------------------------------------------
    def _choose_home(self) -> Path:
        # A cluster made earlier by another PostgresServer on the same base_dir: reuse it.
        if (self.base_dir / "data" / "PG_VERSION").exists():
            return self.base_dir
        try:
            earlier = Path((self.base_dir / "LOCATION").read_text().strip())
        except OSError:
            earlier = None
        if earlier is not None and (earlier / "data" / "PG_VERSION").exists():
            self._owned_home = True
            return earlier
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if self._run_as is None or self._reachable(self.base_dir):
            if self._run_as is not None:
                shutil.chown(self.base_dir, self._run_as, self._run_as)
            return self.base_dir
        home = Path(tempfile.mkdtemp(prefix="vividly_trace_pg_"))
        shutil.chown(home, self._run_as, self._run_as)
        self._owned_home = True
        (self.base_dir / "LOCATION").write_text(f"{home}\n")
        atexit.register(self.remove)
        return home

    def _reachable(self, path: Path) -> bool:
        """Whether the service user could write in ``path`` once it owns it."""
        for parent in path.parents:
            mode = parent.stat().st_mode
            if not mode & 0o001:  # "others" may not traverse this ancestor
                return False
        return True

    def _bin_dir(self) -> Path:
        if self._bin is not None:
            return self._bin
        found = find_pg_bin()
        if found is None:
            if not _is_root():
                raise PostgresServerError(
                    "PostgreSQL binaries not found under /usr/lib/postgresql/*/bin; install "
                    "the 'postgresql' package (apt-get install -y postgresql)"
                )
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            result = subprocess.run(
                ["apt-get", "install", "-y", "--no-install-recommends", "postgresql"],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                check=False,
            )
            if result.returncode != 0:
                subprocess.run(
                    ["apt-get", "update"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env=env,
                    check=False,
                )
                result = subprocess.run(
                    ["apt-get", "install", "-y", "--no-install-recommends", "postgresql"],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    env=env,
                    check=False,
                )
            found = find_pg_bin()
            if found is None:
                tail = result.stdout.decode("utf-8", "replace")[-2000:]
                raise PostgresServerError(f"apt-get install postgresql failed:\n{tail}")
        self._bin = found
        return found

    def _tool(self, name: str) -> str:
        return str(self._bin_dir() / name)

    def _run(
        self, argv: Sequence[str], *, check: bool, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        if self._run_as is not None:
            argv = ["runuser", "-u", self._run_as, "--", *argv]
        # Output goes to a file, never a pipe: the server forked by "pg_ctl start" would
        # inherit the pipe and keep it open, and reading it would never end.
        with tempfile.TemporaryFile("w+") as out:
            env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
            env.pop("PGDATA", None)
            try:
                proc = subprocess.run(
                    list(argv),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    cwd="/",
                    timeout=timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise PostgresServerError(f"{argv[-1]!r}... timed out after {timeout}s") from exc
            out.seek(0)
            output = out.read()
        result = subprocess.CompletedProcess(argv, proc.returncode, output, "")
        if check and result.returncode != 0:
            raise PostgresServerError(
                f"{' '.join(argv)} exited with {result.returncode}:\n{output[-3000:]}"
            )
        return result

    def _initdb(self) -> None:
        home = self.home
        if self._run_as is not None:
            shutil.chown(home, self._run_as, self._run_as)
        self._run(
            [
                self._tool("initdb"),
                "-D",
                str(self.data_dir),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            check=True,
        )

    def _pg_ctl_start(self, timeout: float) -> None:
        options = [
            f"-p {self.port}",
            f"-k {self.home}",
            "-c listen_addresses=127.0.0.1",
            *(f"-c {k}={v}" for k, v in self.settings.items()),
        ]
        self._run(
            [
                self._tool("pg_ctl"),
                "-D",
                str(self.data_dir),
                "-o",
                " ".join(options),
                "-l",
                str(self.log_path),
                "-w",
                "-t",
                str(int(timeout)),
                "start",
            ],
            check=False,
            timeout=timeout + 30,
        )
        if not self._wait_ready(timeout):
            raise PostgresServerError(
                f"PostgreSQL did not start on port {self.port}; log tail:\n{self._log_tail()}"
            )

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self._run(
                [
                    self._tool("pg_isready"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    "postgres",
                    "-t",
                    "2",
                ],
                check=False,
            )
            if result.returncode == 0:
                return True
            if self.pid is None:
                return False
            time.sleep(0.1)
        return False

    def _port_taken(self) -> bool:
        return "could not bind" in self._log_tail() or "Address already in use" in self._log_tail()

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"

    def _stop(self, mode: str, timeout: float) -> None:
        if not (self.data_dir / "PG_VERSION").exists():
            return
        if self._paused:
            self.resume()
        if not self.is_running():
            return
        self._run(
            [
                self._tool("pg_ctl"),
                "-D",
                str(self.data_dir),
                "-m",
                mode,
                "-w",
                "-t",
                str(int(timeout)),
                "stop",
            ],
            check=True,
            timeout=timeout + 30,
        )

    def _server_pids(self) -> list[int]:
        root = self.pid
        if root is None:
            return []
        pids = [root]
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == root:  # fields[1] is the parent pid
                pids.append(int(entry))
        return pids
