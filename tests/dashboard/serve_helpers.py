"""``vividly-trace serve`` as a child process (the real console script) on a free port."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.cli.cli_helpers import cli_env, entry_point


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(url: str, *args: str, log: Path, **env: str) -> Iterator[str]:
    """Run ``vividly-trace serve --url URL --port P ARGS``; yield its base URL once it
    answers (any status), stop it on exit."""
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(entry_point()), "serve", "--url", url, "--port", str(port), *args],
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
            env=cli_env(**env),
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, log.read_text()
                try:
                    httpx.get(base + "/favicon.ico")
                    break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "serve did not start"
                time.sleep(0.1)
            yield base
        finally:
            proc.terminate()
            proc.wait(20)
