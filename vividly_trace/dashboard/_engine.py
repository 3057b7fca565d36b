"""The dashboard's engine: the store opened so that it cannot be written."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..analytics._store import StoreUnavailableError, StoreURLError, hide_password, normalise_url

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = ["read_only_engine"]


def read_only_engine(url: str) -> Engine:
    """An engine on ``url`` that refuses writes: SQLite opened with ``mode=ro``, PostgreSQL
    sessions with ``default_transaction_read_only=on``.

    Raises:
        StoreURLError: not a SQLite or PostgreSQL URL.
        StoreUnavailableError: the SQLite file does not exist (it is never created).
    """
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    shown = hide_password(url)
    try:
        parsed = normalise_url(make_url(url))
    except ArgumentError:
        raise StoreURLError(f"not a database URL: {shown!r}") from None
    backend = parsed.get_backend_name()
    kwargs: dict[str, Any] = {}
    if backend == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            raise StoreURLError(f"the dashboard needs a SQLite file, not {shown!r}")
        path = Path(database).resolve()
        if not path.is_file():
            raise StoreUnavailableError(f"no SQLite database at {path} (from {shown})")
        parsed = parsed.set(database=f"file:{path.as_uri()[len('file://') :]}?mode=ro")
        parsed = parsed.update_query_dict({"uri": "true"})
        kwargs["connect_args"] = {"timeout": 30.0}
    elif backend == "postgresql":
        connect_args: dict[str, Any] = {"options": "-c default_transaction_read_only=on"}
        if "connect_timeout" not in parsed.query:
            connect_args["connect_timeout"] = 10
        kwargs["connect_args"] = connect_args
    else:
        raise StoreURLError(f"the store is SQLite or PostgreSQL, not {backend!r} ({shown})")
    return create_engine(parsed, **kwargs)
