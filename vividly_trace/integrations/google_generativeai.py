"""Capture for the older ``google-generativeai`` client: ``GenerativeModel.generate_content``
and ``generate_content_async`` (``ChatSession`` turns go through them, once each).

Streams (``stream=True``) are not captured: the client returns one response object that
fills in as it is iterated, while the chunks it yields are new objects, so a stream is
recorded as before, from the chunks a decorated generator yields or hands to
``record_response``. The module is never imported here: the patch runs when the
application imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._capture import async_request, sync_request

__all__ = ["patch"]


def _model(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    name = getattr(instance, "model_name", None)
    if isinstance(name, str) and name.startswith("models/"):
        return name[len("models/") :]
    return name


def _streamed(kwargs: dict[str, Any]) -> bool:
    return bool(kwargs.get("stream"))  # keyword-only in GenerativeModel


def patch(module: Any, wrap: Callable[[Any, str, Any], None]) -> None:
    """Wrap ``GenerativeModel``'s request methods in ``google.generativeai.generative_models``."""
    cls = getattr(module, "GenerativeModel", None)
    if cls is None:
        return
    wrap(cls, "generate_content", sync_request(_model, _streamed))
    wrap(cls, "generate_content_async", async_request(_model, _streamed))
