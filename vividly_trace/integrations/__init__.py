"""Client capture: wrappers around the Google clients' request methods, so that every Gemini
request is recorded whatever the user's function returns or yields.

:func:`install` is called by :func:`vividly_trace.configure` (``capture_clients=True``, the
default) and :func:`uninstall` by :func:`vividly_trace.reset`. The wrappers are applied
through wrapt's post-import hooks, so the order of ``import google.genai`` and
``configure()`` does not matter; installing twice patches once.

Captured: google-genai's ``Models`` / ``AsyncModels`` request methods (``generate_content``,
``generate_content_stream``, chats, automatic function calling, ``embed_content``),
``caches.create`` (sync and async), the Interactions API's
``create`` / ``get`` / ``cancel`` (sync, async, streamed, background: see
:mod:`.google_genai_interactions` for how a background interaction is counted), and
google-generativeai's ``GenerativeModel.generate_content`` / ``generate_content_async``
(``ChatSession`` and ``stream=True`` too).

A request made inside a logged call is attached to the innermost one (its tokens summed,
each request priced at its own model, when the record is built); one made outside any is
recorded on its own, under the calling function's ``module:qualname``, unless
``configure(capture_unlogged=False)``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

import wrapt

from .._safety import internal_error, logger
from . import google_genai, google_genai_interactions, google_generativeai

__all__ = ["install", "installed", "uninstall"]

_lock = threading.RLock()  # the hook runs inside install() when the module is loaded
_installed = False
_hooked: set[str] = set()
# (owner, attribute, the owner's own attribute before patching, our wrapper): what
# uninstall() restores, where our wrapper is still the one in place.
_patched: list[tuple[Any, str, Any, Any]] = []

#: module -> the function that patches it (``patch(module, wrap)``).
_TARGETS: dict[str, Callable[[Any, Callable[[Any, str, Any], None]], None]] = {
    "google.genai.models": google_genai.patch,
    "google.genai.caches": google_genai.patch_caches,
    "google.genai._gaos.interactions": google_genai_interactions.patch,
    "google.generativeai.generative_models": google_generativeai.patch,
}


def installed() -> bool:
    """True while client capture is installed."""
    return _installed


def install() -> None:
    """Patch the Google clients now (those imported) or when they are imported."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
        for name in _TARGETS:
            if name not in _hooked:
                _hooked.add(name)
                # Runs at once when the module is already imported; else on its import.
                wrapt.register_post_import_hook(_on_import, name)
            elif name in sys.modules:
                _patch(sys.modules[name])


def uninstall() -> None:
    """Put back every patched method (the hooks stay registered but do nothing)."""
    global _installed
    with _lock:
        _installed = False
        while _patched:
            owner, attribute, original, ours = _patched.pop()
            if owner.__dict__.get(attribute) is ours:
                setattr(owner, attribute, original)
            else:  # another instrumentation wrapped ours since: leave its wrapper in place
                logger.warning(
                    "vividly_trace: %s.%s was wrapped again by someone else; client capture "
                    "stays under that wrapper (it passes calls through while not configured)",
                    getattr(owner, "__qualname__", owner),
                    attribute,
                )


def _on_import(module: Any) -> None:
    # Runs inside the application's ``import google.genai``: it must never make that fail.
    try:
        with _lock:
            if _installed:
                _patch(module)
    except Exception as exc:
        internal_error(
            "capture_install",
            exc,
            "vividly_trace could not capture %r: %r",
            getattr(module, "__name__", module),
            exc,
        )


def _patch(module: Any) -> None:
    patch = _TARGETS.get(getattr(module, "__name__", ""))
    if patch is not None:
        patch(module, _wrap)


def _wrap(owner: Any, attribute: str, wrapper: Any) -> None:
    """Wrap ``owner.attribute`` with ``wrapper`` (once), remembering what to restore. Another
    instrumentation's wrapper there (OpenLLMetry, OpenInference...) is wrapped in turn."""
    if any(o is owner and a == attribute for o, a, _, _ in _patched):
        return
    original = owner.__dict__.get(attribute)
    if original is None:
        return
    wrapt.wrap_function_wrapper(owner, attribute, wrapper)
    _patched.append((owner, attribute, original, owner.__dict__.get(attribute)))
