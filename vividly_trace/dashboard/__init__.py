"""A local, read-only web dashboard over the SQL store (``vividly-trace serve``).

::

    from vividly_trace.dashboard import create_app

    app = create_app("sqlite:///vividly_trace.db", token="s3cret")   # any ASGI server

Pages are rendered on the server (Jinja2, autoescaped) with inline SVG charts and one small
script shipped in the package (live refresh): nothing is fetched from the network. Every
page has a JSON twin under ``/api/``. The store is opened read-only (SQLite ``mode=ro``,
PostgreSQL ``default_transaction_read_only``) and only ``GET`` is served.

Needs the ``dashboard`` extra: ``pip install 'vividly-trace[dashboard]'``.

.. versionadded:: 0.2.0
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._app import create_app
    from ._engine import read_only_engine

__all__ = ["create_app", "read_only_engine"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from ._app import create_app

        return create_app
    if name == "read_only_engine":
        from ._engine import read_only_engine

        return read_only_engine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
