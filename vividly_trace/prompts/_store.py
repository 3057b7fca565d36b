"""Prompts in the SQL store: a key's versions, labels and rollout as one snapshot, and the
statements that push a version and set a rollout.

A version is a ``prompt_templates`` row of the key with a version, a ``template_text`` and
no A/B group (what ``register_template(key, version=..., text=...)`` stores, too); its
labels and rollout are the key's ``prompt_deployments`` row (revision 0010).
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .._assign import validated_weights
from ..exceptions import ConfigurationError
from ..sinks.sql._rows import DIALECTS
from ..sinks.sql.schema import prompt_deployments, prompt_templates

__all__ = [
    "Snapshot",
    "StoredVersion",
    "check_key",
    "check_labels",
    "list_keys",
    "load_snapshot",
    "push_version",
    "set_labels",
    "set_rollout",
]

_UTC = _dt.timezone.utc


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """One pushed version of a prompt."""

    version: str
    text: str
    model: str | None
    config: Mapping[str, Any]
    created_at: _dt.datetime | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the store holds for one key: its versions (oldest first), labels and rollout.

    No versions: the key is unknown.
    """

    key: str
    versions: dict[str, StoredVersion] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    weights: dict[str, float] | None = None
    control: str | None = None

    @property
    def latest(self) -> StoredVersion | None:
        """The version pushed last."""
        return next(reversed(self.versions.values()), None)


def _text(caller: str, name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{caller}: {name} must be a non-empty string, got {value!r}")
    if "\x00" in value:
        raise ConfigurationError(f"{caller}: {name} must not contain NUL characters")
    return str.__str__(value)


def check_key(caller: str, key: Any) -> str:
    """``key`` as a prompt key.

    Raises:
        ConfigurationError: not a non-empty string (or one holding NUL).
    """
    return _text(caller, "key", key)


def check_labels(caller: str, labels: Any) -> tuple[str, ...]:
    """``labels`` as a tuple of label names.

    Raises:
        ConfigurationError: a single string, or an item that is no non-empty string.
    """
    if isinstance(labels, str) or not isinstance(labels, Iterable):
        raise ConfigurationError(
            f"{caller}: labels must be a list of strings (e.g. labels=['production']), "
            f"got {labels!r}"
        )
    return tuple(dict.fromkeys(_text(caller, "a label", label) for label in labels))


def _config(caller: str, config: Any) -> dict[str, Any] | None:
    if config is None:
        return None
    if not isinstance(config, Mapping):
        raise ConfigurationError(f"{caller}: config must be a mapping, got {config!r}")
    try:
        value: dict[str, Any] = json.loads(json.dumps(dict(config), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"{caller}: config must be JSON-safe ({exc})") from None
    return value or None


def _json_value(value: Any) -> Any:
    """A JSON column's value (SQLite may hand back text)."""
    return json.loads(value) if isinstance(value, str) else value


def _as_utc(value: Any) -> _dt.datetime | None:
    if isinstance(value, _dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=_UTC)
    return None


def load_snapshot(conn: Connection, key: str) -> Snapshot:
    """The key's versions, labels and rollout, in one query."""
    t, d = prompt_templates.c, prompt_deployments.c
    query = (
        sa.select(
            t.version,
            t.template_text,
            t.model,
            t.config,
            t.created_at,
            d.labels,
            d.weights,
            d.control,
        )
        .select_from(
            prompt_templates.outerjoin(prompt_deployments, prompt_deployments.c.name == t.name)
        )
        .where(
            t.name == key,
            t.version.is_not(None),
            t.ab_test_group.is_(None),
            t.template_text.is_not(None),
        )
        .order_by(t.created_at, t.id)
    )
    versions: dict[str, StoredVersion] = {}
    labels: dict[str, str] = {}
    weights: dict[str, float] | None = None
    control: str | None = None
    for row in conn.execute(query):
        versions[row.version] = StoredVersion(
            version=row.version,
            text=row.template_text,
            model=row.model,
            config=_json_value(row.config) or {},
            created_at=_as_utc(row.created_at),
        )
        labels = dict(_json_value(row.labels) or {})
        raw = _json_value(row.weights)
        weights = {str(k): float(v) for k, v in raw.items()} if raw else None
        control = row.control
    return Snapshot(key, versions, labels, weights, control)


def list_keys(conn: Connection) -> list[str]:
    """Every key with at least one pushed version, in name order."""
    t = prompt_templates.c
    query = (
        sa.select(t.name)
        .where(t.version.is_not(None), t.ab_test_group.is_(None), t.template_text.is_not(None))
        .group_by(t.name)
        .order_by(t.name)
    )
    return [str(name) for name in conn.execute(query).scalars()]


def _deployment_row(conn: Connection, key: str) -> Any:
    """The key's ``prompt_deployments`` row, created when missing, locked for the rest of
    the transaction (PostgreSQL ``FOR UPDATE``; SQLite's write lock covers it)."""
    dialect = DIALECTS[conn.dialect.name]
    now = _dt.datetime.now(_UTC)
    conn.execute(
        dialect.insert_or_ignore(prompt_deployments),
        [{"name": key, "labels": {}, "weights": None, "control": None, "updated_at": now}],
    )
    d = prompt_deployments.c
    return conn.execute(
        sa.select(d.labels, d.weights, d.control).where(d.name == key).with_for_update()
    ).one()


def set_labels(conn: Connection, key: str, version: str, labels: tuple[str, ...]) -> None:
    """Point each of ``labels`` at ``version`` (moving it from another version)."""
    if not labels:
        return
    row = _deployment_row(conn, key)
    current = dict(_json_value(row.labels) or {})
    current.update(dict.fromkeys(labels, version))
    d = prompt_deployments.c
    conn.execute(
        sa.update(prompt_deployments)
        .where(d.name == key)
        .values(labels=current, updated_at=_dt.datetime.now(_UTC))
    )


def push_version(
    conn: Connection,
    key: str,
    text: Any,
    version: Any,
    model: Any,
    config: Any,
    labels: Any,
) -> bool:
    """Store ``version`` of ``key`` (checked); True when it is new, False when the very
    same version was pushed before.

    Raises:
        ConfigurationError: bad arguments, or the version holds another text, model or
            config already (versions are immutable: push a new one).
    """
    caller = "prompts.push()"
    text = _text(caller, "text", text)
    version = _text(caller, "version", version)
    if model is not None:
        model = _text(caller, "model", model)
    config_value = _config(caller, config)
    label_names = check_labels(caller, labels)
    t = prompt_templates.c
    where = (t.name == key, t.version == version, t.ab_test_group.is_(None))
    columns = (t.id, t.template_text, t.model, t.config)
    existing = conn.execute(sa.select(*columns).where(*where).with_for_update()).first()
    created = existing is None
    if existing is None:
        dialect = DIALECTS[conn.dialect.name]
        row = {
            "name": key,
            "version": version,
            "ab_test_group": None,
            "model": model,
            "template_text": text,
            "config": config_value,
        }
        conn.execute(dialect.insert_or_ignore(prompt_templates), [row])
        existing = conn.execute(sa.select(*columns).where(*where).with_for_update()).one()
    if existing.template_text is None:
        # A row the SQL sink made on first use of the version: it gets its text now.
        conn.execute(
            sa.update(prompt_templates)
            .where(t.id == existing.id)
            .values(template_text=text, model=model, config=config_value, is_active=True)
        )
        created = True
    elif (existing.template_text, existing.model, _json_value(existing.config) or None) != (
        text,
        model,
        config_value,
    ):
        raise ConfigurationError(
            f"prompts.push(): version {version!r} of {key!r} holds another text, model or "
            "config already; versions are immutable: push a new version"
        )
    set_labels(conn, key, version, label_names)
    return created


def set_rollout(conn: Connection, key: str, weights: Any, control: Any) -> dict[str, float]:
    """Store the rollout of ``key``: ``weights`` (version -> weight) and ``control``.

    Raises:
        ConfigurationError: bad weights (as ``choose_variant`` checks them), a control not
            among them, or a version never pushed.
    """
    caller = f"prompts.rollout({key!r})"
    try:
        items = validated_weights(weights)
    except ConfigurationError as exc:
        raise ConfigurationError(
            f"{caller}: {str(exc).removeprefix('choose_variant(): ')}"
        ) from None
    clean = dict(items)
    control = _text(caller, "control", control)
    if control not in clean:
        raise ConfigurationError(f"{caller}: the control {control!r} is not among the weights")
    known = set(load_snapshot(conn, key).versions)
    unknown = sorted(set(clean) - known)
    if unknown:
        raise ConfigurationError(
            f"{caller}: versions never pushed: {', '.join(map(repr, unknown))}"
            f" (pushed: {', '.join(map(repr, sorted(known))) or 'none'})"
        )
    _deployment_row(conn, key)
    d = prompt_deployments.c
    conn.execute(
        sa.update(prompt_deployments)
        .where(d.name == key)
        .values(weights=clean, control=control, updated_at=_dt.datetime.now(_UTC))
    )
    return clean
