"""Process lifecycle: the one fork registry, the exit hook and the SIGTERM handler.

Every module or object with per-process state (locks, threads, connections, random seeds)
registers here with :func:`on_fork`; a single ``os.register_at_fork`` runs the callbacks in
the child, in registration order, each failing alone. Bound methods are held weakly, so an
object that registers does not live for ever because of it.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
import weakref
from collections.abc import Callable
from types import MethodType
from typing import Any

__all__ = ["install_exit_hook", "install_sigterm_handler", "on_fork", "run_fork_callbacks"]

_logger = logging.getLogger("vividly_trace")
_callbacks: list[Callable[[], Callable[[], Any] | None]] = []
_exit_hooks: list[Callable[[], None]] = []


def on_fork(callback: Callable[[], Any]) -> None:
    """Run ``callback()`` in every child process forked from now on.

    A bound method is referenced weakly: once its object is gone, it is forgotten.
    """
    ref: Callable[[], Callable[[], Any] | None]
    if isinstance(callback, MethodType):
        ref = weakref.WeakMethod(callback)
    else:

        def ref(callback: Callable[[], Any] = callback) -> Callable[[], Any]:
            return callback

    _callbacks.append(ref)


def run_fork_callbacks() -> None:
    """Run the registered callbacks (in a forked child; tests call it directly)."""
    global _lock
    _lock = threading.Lock()  # a parent thread may have held it at the fork
    alive = []
    for ref in list(_callbacks):
        callback = ref()
        if callback is None:
            continue
        alive.append(ref)
        try:
            callback()
        except Exception as exc:  # one broken callback must not keep the others from running
            _logger.warning("vividly_trace: after fork: %r", exc)
    _callbacks[:] = alive


_lock = threading.Lock()


def install_exit_hook(hook: Callable[[], None]) -> None:
    """Call ``hook()`` at interpreter exit (once per hook, however often installed)."""
    with _lock:
        if hook in _exit_hooks:
            return
        _exit_hooks.append(hook)
    atexit.register(hook)


def install_sigterm_handler(hook: Callable[[], None]) -> None:
    """On SIGTERM, run ``hook()`` (a flush), then die of SIGTERM as the default would.

    Installed only from the main thread and only while SIGTERM has its default disposition,
    so an application's own handler always wins.
    """
    if threading.current_thread() is not threading.main_thread():
        return

    def on_sigterm(signum: int, frame: object) -> None:
        try:
            hook()
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    try:
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, on_sigterm)
    except (ValueError, OSError, AttributeError):  # no signals here (e.g. embedded)
        return


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=run_fork_callbacks)
