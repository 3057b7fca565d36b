"""``vividly-trace prompts list | show | push | rollout | diff``: prompts in the SQL store.

Exit codes: 0 done; 2 a bad argument (an unknown key, version or label, a version pushed
before with another text, bad weights), a bad URL, an unreachable database or missing
tables, as one line on stderr (``vividly-trace: error: ...``).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, TypeVar

import click

from .report_cmd import _URL_HELP, _fail, _stdout, _url

__all__ = ["register"]

T = TypeVar("T")


def _guarded(action: Callable[[], T]) -> T:
    """Run ``action``; known failures become one line on stderr and exit status 2."""
    from ..analytics import StoreError
    from ..exceptions import ConfigurationError, MissingExtraError
    from ..prompts import PromptError

    try:
        return action()
    except (StoreError, ConfigurationError, MissingExtraError, PromptError) as exc:
        _fail(str(exc))
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        _fail(f"{exc.strerror or exc}{where}")


@contextmanager
def _reading(url: str | None) -> Iterator[Any]:
    """A registry over an existing store, which it never creates or migrates."""
    from ..analytics._store import open_store
    from ..prompts import PromptRegistry

    with ExitStack() as stack:
        engine = _guarded(lambda: stack.enter_context(open_store(_url(url))))
        registry = PromptRegistry(engine=engine, ttl=0, prepare=lambda: None)
        try:
            yield registry
        finally:
            registry.close()


@contextmanager
def _writing(url: str | None) -> Iterator[Any]:
    """A registry that creates or upgrades the store first, as the SQL sink does."""
    from ..prompts import PromptRegistry

    registry = _guarded(lambda: PromptRegistry(_url(url), ttl=0))
    try:
        yield registry
    finally:
        registry.close()


def _rollout_text(snapshot: Any) -> str:
    if not snapshot.weights:
        return ""
    total = sum(snapshot.weights.values())
    parts = [f"{v} {w / total:.0%}" for v, w in snapshot.weights.items()]
    return f"{' / '.join(parts)} (control {snapshot.control})"


def _snapshot_dict(snapshot: Any) -> dict[str, Any]:
    return {
        "key": snapshot.key,
        "versions": [
            {
                "version": v.version,
                "model": v.model,
                "config": dict(v.config),
                "created_at": v.created_at.isoformat() if v.created_at else None,
                "text": v.text,
            }
            for v in snapshot.versions.values()
        ],
        "labels": snapshot.labels,
        "rollout": (
            None
            if not snapshot.weights
            else {"weights": snapshot.weights, "control": snapshot.control}
        ),
    }


@click.group("prompts")
def prompts() -> None:
    """Prompts served from the SQL store: versions, labels and rollouts."""


@prompts.command("list")
@click.option("--url", default=None, help=_URL_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the prompts as JSON.")
def prompts_list(url: str | None, as_json: bool) -> None:
    """Every prompt key with its versions, labels and rollout."""
    from rich.table import Table

    with _reading(url) as registry:
        snapshots = _guarded(lambda: [registry.snapshot(k) for k in registry.list_keys()])
    if as_json:
        click.echo(json.dumps([_snapshot_dict(s) for s in snapshots], indent=2))
        return
    if not snapshots:
        click.echo("no prompts in the store (vividly-trace prompts push KEY FILE --version V)")
        return
    table = Table(show_edge=False)
    for column in ("key", "versions", "latest", "labels", "rollout"):
        table.add_column(column, overflow="fold")
    for s in snapshots:
        latest = s.latest
        table.add_row(
            s.key,
            str(len(s.versions)),
            latest.version if latest is not None else "",
            ", ".join(f"{label}={v}" for label, v in sorted(s.labels.items())),
            _rollout_text(s),
        )
    _stdout().print(table)


@prompts.command("show")
@click.argument("key")
@click.option("--version", default=None, help="This version (default: what get() serves).")
@click.option("--label", default=None, help="The version with this label.")
@click.option("--user", "user_id", default=None, help="The version the rollout gives this user.")
@click.option("--url", default=None, help=_URL_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the prompt as JSON.")
def prompts_show(
    key: str,
    version: str | None,
    label: str | None,
    user_id: str | None,
    url: str | None,
    as_json: bool,
) -> None:
    """The version of KEY that get() serves (or the one asked for), with its text."""
    with _reading(url) as registry:
        prompt = _guarded(lambda: registry.get(key, user_id=user_id, label=label, version=version))
        snapshot = _guarded(lambda: registry.snapshot(key))
    labels = sorted(name for name, v in snapshot.labels.items() if v == prompt.version)
    if as_json:
        out = {
            "key": prompt.key,
            "version": prompt.version,
            "ab_group": prompt.ab_group,
            "model": prompt.model,
            "config": dict(prompt.config),
            "labels": labels,
            "variables": sorted(prompt.variables),
            "text": prompt.text,
        }
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(f"{prompt.key} version {prompt.version}")
    if prompt.ab_group:
        click.echo(f"  group: {prompt.ab_group} ({_rollout_text(snapshot)})")
    if labels:
        click.echo(f"  labels: {', '.join(labels)}")
    if prompt.model:
        click.echo(f"  model: {prompt.model}")
    if prompt.config:
        click.echo(f"  config: {json.dumps(dict(prompt.config), sort_keys=True)}")
    if prompt.variables:
        click.echo(f"  variables: {', '.join(sorted(prompt.variables))}")
    click.echo("")
    click.echo(prompt.text)


@prompts.command("push")
@click.argument("key")
@click.argument("file", type=click.File("r", encoding="utf-8"), default="-")
@click.option("--version", required=True, help="The version's name, e.g. v4.")
@click.option("--model", default=None, help="The model this version is meant for.")
@click.option("--config", "config_json", default=None, help="A JSON object stored with it.")
@click.option("--label", "labels", multiple=True, help="Point this label at it (repeatable).")
@click.option("--url", default=None, help=_URL_HELP)
def prompts_push(
    key: str,
    file: Any,
    version: str,
    model: str | None,
    config_json: str | None,
    labels: tuple[str, ...],
    url: str | None,
) -> None:
    """Store the text in FILE (default: stdin) as VERSION of KEY."""
    config = None
    if config_json is not None:
        try:
            config = json.loads(config_json)
        except ValueError as exc:
            _fail(f"--config is not JSON: {exc}")
    text = file.read()
    with _writing(url) as registry:
        created = _guarded(
            lambda: registry.push(
                key, text, version=version, model=model, config=config, labels=labels
            )
        )
    moved = f"; labels {', '.join(labels)} -> {version}" if labels else ""
    state = "pushed" if created else "already there, unchanged"
    click.echo(f"{key} version {version}: {state}{moved}")


def _weights(pairs: tuple[str, ...]) -> dict[str, float]:
    weights: dict[str, float] = {}
    for pair in pairs:
        version, sep, weight = pair.rpartition("=")
        try:
            if not sep or not version:
                raise ValueError(pair)
            weights[version] = float(weight)
        except ValueError:
            _fail(f"weights are VERSION=WEIGHT (e.g. v3=0.5), got {pair!r}")
    return weights


@prompts.command("rollout")
@click.argument("key")
@click.argument("weights", nargs=-1, required=True)
@click.option("--control", required=True, help="The version the others are compared with.")
@click.option("--url", default=None, help=_URL_HELP)
def prompts_rollout(key: str, weights: tuple[str, ...], control: str, url: str | None) -> None:
    """Serve KEY's versions by weight: WEIGHTS are VERSION=WEIGHT, e.g. v3=0.5 v4=0.5."""
    parsed = _weights(weights)
    with _writing(url) as registry:
        _guarded(lambda: registry.rollout(key, parsed, control=control))
        snapshot = _guarded(lambda: registry.snapshot(key))
    click.echo(f"{key}: {_rollout_text(snapshot)}")


@prompts.command("diff")
@click.argument("key")
@click.argument("old")
@click.argument("new")
@click.option("--url", default=None, help=_URL_HELP)
def prompts_diff(key: str, old: str, new: str, url: str | None) -> None:
    """A unified diff of the texts of versions OLD and NEW of KEY (and their settings)."""
    with _reading(url) as registry:
        a = _guarded(lambda: registry.get(key, version=old))
        b = _guarded(lambda: registry.get(key, version=new))
    lines = list(
        difflib.unified_diff(
            a.text.splitlines(keepends=True),
            b.text.splitlines(keepends=True),
            fromfile=f"{key} {old}",
            tofile=f"{key} {new}",
        )
    )
    for name in ("model", "config"):
        before, after = getattr(a, name), getattr(b, name)
        if before != after:
            lines.append(f"{name}: {before!r} -> {after!r}\n")
    if not lines:
        click.echo(f"{key}: {old} and {new} are the same")
        return
    for line in lines:
        click.echo(line, nl=not line.endswith("\n"))


def register(cli: Any) -> None:
    """Add the ``prompts`` group to the command line."""
    cli.add_command(prompts)
