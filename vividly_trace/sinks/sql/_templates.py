"""Templates of one SQL sink: argument checks, lookup and registration, the id cache."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..._record import PromptExecution
from ..._safety import warn_limited
from ...exceptions import ConfigurationError
from ._rows import Dialect, TemplateKey
from .schema import prompt_templates

__all__ = ["Templates"]


def _key_text(key: TemplateKey) -> str:
    name, version, group = key
    return f"{name!r} (version={version!r}, ab_group={group!r})"


class Templates:
    """The template ids one sink knows, and the statements that find or create them.

    Thread-safe; the cache is only filled from the database and emptied by :meth:`forget`.
    """

    def __init__(self, engine: Engine, dialect: Dialect, sink_name: str) -> None:
        self._engine = engine
        self._dialect = dialect
        self._sink_name = sink_name
        self._ids: dict[TemplateKey, int] = {}
        self._lock = threading.Lock()
        self._warned_keys: set[TemplateKey] = set()

    def checked(
        self,
        key: str,
        version: str | None,
        ab_group: str | None,
        text: str | None,
        model: str | None,
    ) -> tuple[TemplateKey, str | None, str | None]:
        """The template key, text and model of a registration, as the database stores them.

        Raises:
            ConfigurationError: ``key`` is not a non-empty string, or another is no string.
        """
        if not isinstance(key, str) or not key.strip():
            raise ConfigurationError("register_template: key must be a non-empty string")
        for label, value in (
            ("version", version),
            ("ab_group", ab_group),
            ("text", text),
            ("model", model),
        ):
            if value is not None and not isinstance(value, str):
                raise ConfigurationError(f"register_template: {label} must be a string")
        clean = self._dialect.clean_text
        key = clean(key)
        version, ab_group, text, model = (
            None if v is None else clean(v) for v in (version, ab_group, text, model)
        )
        return (key, version or None, ab_group or None), text, model

    def register(self, key: TemplateKey, text: str | None, model: str | None) -> int:
        """Create the template ``key`` when missing, replace a given text or model; its id."""
        t = prompt_templates
        with self._engine.begin() as conn:
            self._insert(conn, {key: model}, text=text)
            if text is not None or model is not None:
                conn.execute(
                    sa.update(t)
                    .where(self._key_clause([key]))
                    .values(
                        template_text=sa.func.coalesce(
                            sa.bindparam("t_text", text, sa.Text), t.c.template_text
                        ),
                        model=sa.func.coalesce(sa.bindparam("t_model", model, sa.Text), t.c.model),
                        is_active=True,
                    )
                )
            found = self._select(conn, [key])
        template_id = found[key]
        with self._lock:
            self._ids[key] = template_id
        return template_id

    def resolve(
        self, keyed: Iterable[tuple[PromptExecution, TemplateKey]], strict: bool
    ) -> dict[TemplateKey, int]:
        """The ids of the records' templates; unknown ones are created unless ``strict``
        (then they are missing from the result, with a warning)."""
        cache = self._ids
        missing: dict[TemplateKey, str | None] = {}
        for record, key in keyed:
            if key not in cache and key not in missing:
                missing[key] = record.model
        if not missing:
            return cache
        # Own short transaction, committed before the batch: other writers wait on a new
        # template's unique-index entry only for this long.
        with self._engine.begin() as conn:
            found = self._select(conn, list(missing))
            if not strict:
                new = {k: m for k, m in missing.items() if k not in found}
                if new:
                    self._insert(conn, new)
                    found.update(self._select(conn, list(new)))
        with self._lock:
            cache.update(found)
            resolved = dict(cache)
        for key in missing:
            if key not in found:
                self._warn_unknown(key)
        return resolved

    def forget(self) -> None:
        """Look every id up again next time (the database may have been recreated)."""
        with self._lock:
            self._ids.clear()

    def renew_lock(self) -> None:
        """In a forked child: a parent thread may have held the lock at the fork."""
        self._lock = threading.Lock()

    @staticmethod
    def _key_clause(keys: Sequence[TemplateKey]) -> sa.ColumnElement[bool]:
        t = prompt_templates
        # The literal '' (not a bound parameter) makes these match the unique index's
        # expressions, so the lookup uses that index.
        empty: sa.ColumnElement[str] = sa.literal_column("''", sa.Text)
        return sa.tuple_(
            t.c.name,
            sa.func.coalesce(t.c.version, empty),
            sa.func.coalesce(t.c.ab_test_group, empty),
        ).in_([(name, version or "", group or "") for name, version, group in keys])

    def _select(self, conn: Connection, keys: Sequence[TemplateKey]) -> dict[TemplateKey, int]:
        t = prompt_templates
        found: dict[TemplateKey, int] = {}
        for start in range(0, len(keys), 200):
            chunk = keys[start : start + 200]
            result = conn.execute(
                sa.select(t.c.id, t.c.name, t.c.version, t.c.ab_test_group).where(
                    self._key_clause(chunk)
                )
            )
            for tid, name, version, group in result:
                found[(name, version or None, group or None)] = int(tid)
        return found

    def _insert(
        self, conn: Connection, keys: Mapping[TemplateKey, str | None], text: str | None = None
    ) -> None:
        # Sorted, so that concurrent writers take the unique-index locks in one order.
        ordered = sorted(keys, key=lambda k: (k[0], k[1] or "", k[2] or ""))
        rows: list[dict[str, Any]] = [
            {
                "name": k[0],
                "version": k[1],
                "ab_test_group": k[2],
                "model": keys[k],
                "template_text": text,
            }
            for k in ordered
        ]
        conn.execute(self._dialect.insert_or_ignore(prompt_templates), rows)

    def _warn_unknown(self, key: TemplateKey) -> None:
        if len(self._warned_keys) < 1000:
            self._warned_keys.add(key)
            limit_key = f"sql_unknown_template:{self._sink_name}:{key!r}"[:300]
        else:
            limit_key = f"sql_unknown_template:{self._sink_name}"
        warn_limited(
            limit_key,
            "vividly_trace sink %r: template %s is not registered and strict_templates is on; "
            "its records are not written (register it with register_template())",
            self._sink_name,
            _key_text(key),
        )
