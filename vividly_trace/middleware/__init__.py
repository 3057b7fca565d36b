"""Web middleware that binds each request's id and, through a callback the application
gives, its user and session (:func:`vividly_trace.context`) to the logged calls it makes.

- :class:`~vividly_trace.middleware.asgi.VividlyTraceMiddleware`: ASGI (FastAPI, Starlette,
  Django's ASGI handler).
- :class:`~vividly_trace.middleware.wsgi.VividlyTraceWSGIMiddleware`: WSGI (Flask, Django).

Neither needs an extra: they speak the ASGI / WSGI protocols with the standard library.
"""

from __future__ import annotations

from .asgi import VividlyTraceMiddleware
from .wsgi import VividlyTraceWSGIMiddleware

__all__ = ["VividlyTraceMiddleware", "VividlyTraceWSGIMiddleware"]
