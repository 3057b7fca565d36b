"""Capture for ``google-genai``: its request-level methods, so that every request counts,
also each one automatic function calling sends inside one ``generate_content``.

``Models._generate_content`` / ``_generate_content_stream`` (and their ``AsyncModels``
twins) are what ``generate_content``, ``generate_content_stream`` and chats call, once per
request. ``Models._embed_content`` is what ``embed_content`` calls, once per call (one
``batchEmbedContents`` request on the Gemini API, for one content or many): operation
``embed_content``. ``Caches.create`` (and ``AsyncCaches.create``) sends its request itself:
operation ``caches.create`` (``caches.get`` / ``update`` / ``delete`` bill nothing and are
not recorded). The modules are never imported here: each patch runs when the application
imports its module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._capture import async_request, async_stream, sync_request, sync_stream

__all__ = ["patch", "patch_caches"]


_MODEL = "model"  # the request methods take keyword arguments only: kwargs["model"]


def patch(module: Any, wrap: Callable[[Any, str, Any], None]) -> None:
    """Wrap the request methods of ``google.genai.models`` (those this version has)."""
    for cls, request, stream in (
        (getattr(module, "Models", None), sync_request, sync_stream),
        (getattr(module, "AsyncModels", None), async_request, async_stream),
    ):
        if cls is None:
            continue
        wrap(cls, "_generate_content", request(_MODEL))
        wrap(cls, "_generate_content_stream", stream(_MODEL))
        wrap(cls, "_embed_content", request(_MODEL, operation="embed_content"))


def patch_caches(module: Any, wrap: Callable[[Any, str, Any], None]) -> None:
    """Wrap ``create`` of ``google.genai.caches``' ``Caches`` and ``AsyncCaches``."""
    for cls, request in (
        (getattr(module, "Caches", None), sync_request),
        (getattr(module, "AsyncCaches", None), async_request),
    ):
        if cls is not None:
            wrap(cls, "create", request(_MODEL, operation="caches.create"))
