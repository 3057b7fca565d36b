"""``vividly-trace serve``: the local, read-only web dashboard (extra ``dashboard``)."""

from __future__ import annotations

import ipaddress
import os
import threading
from typing import Any

import click

__all__ = ["register"]

TOKEN_ENV = "VIVIDLY_TRACE_DASHBOARD_TOKEN"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command("serve")
@click.option("--url", default=None, help="Database URL (default: $VIVIDLY_TRACE_DATABASE_URL).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--token",
    default=None,
    help=f"Access token every request must carry (default: ${TOKEN_ENV}; none: open).",
)
@click.option(
    "--refresh",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds between live refreshes of a page (0: off).",
)
@click.option(
    "--rules",
    "rules_file",
    default=None,
    help="Alert rules file (TOML): checked every --alerts-every seconds while serving.",
)
@click.option(
    "--webhook",
    default=None,
    help="Webhook URL for the alerts (Slack-compatible); default $VIVIDLY_TRACE_ALERTS_WEBHOOK.",
)
@click.option(
    "--alerts-every",
    default=60.0,
    show_default=True,
    type=click.FloatRange(1),
    help="Seconds between two alert checks (with --rules).",
)
def serve(
    url: str | None,
    host: str,
    port: int,
    token: str | None,
    refresh: float,
    rules_file: str | None,
    webhook: str | None,
    alerts_every: float,
) -> None:
    """Serve the read-only dashboard: overview, templates, executions, users, /api/ JSON.

    Binds 127.0.0.1 unless --host says otherwise; binding another address needs a token.
    The store is opened read-only and only GET is answered. With --rules, the alert rules
    are checked against the store in a background thread while the dashboard runs, as
    ``alerts check`` would from cron (each alert fires once per window).
    """
    from .report_cmd import _fail, _guarded, _url

    token = token or os.environ.get(TOKEN_ENV) or None
    if not _loopback(host) and not token:
        _fail(f"--host {host} is reachable from other machines: set --token or ${TOKEN_ENV}")
    rules = _load_rules(rules_file) if rules_file else None
    try:
        import uvicorn

        from ..dashboard import create_app
    except ImportError as exc:
        _fail(
            f"{exc}"
            if "dashboard" in str(exc)
            else "serve needs the 'dashboard' extra: pip install 'vividly-trace[dashboard]'"
        )

    from ..dashboard._app import LOCAL_HOSTS

    if host in ("0.0.0.0", "::", ""):
        hosts: tuple[str, ...] = ("*",)  # any name the machine answers to; the token guards
    else:
        hosts = (*LOCAL_HOSTS, host)
    app = _guarded(
        lambda: create_app(_url(url), token=token, refresh_seconds=refresh, allowed_hosts=hosts)
    )
    shown = f"http://{host}:{port}/"
    click.echo(
        f"vividly-trace dashboard on {shown}{' (token required)' if token else ''}", err=True
    )
    stop = threading.Event()
    checker = None
    if rules:
        from ..alerts import run as run_alerts

        hook = webhook or os.environ.get("VIVIDLY_TRACE_ALERTS_WEBHOOK") or None
        checker = threading.Thread(
            target=run_alerts,
            args=(_url(url), rules),
            kwargs={"interval_s": alerts_every, "stop": stop, "webhook": hook},
            name="vividly-trace-alerts",
            daemon=True,
        )
        checker.start()
        click.echo(
            f"alerts: {len(rules)} rules checked every {alerts_every:g} s"
            f"{'' if hook else ' (no webhook: the log only)'}",
            err=True,
        )
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        stop.set()
        if checker is not None:
            checker.join(10)


def _load_rules(path: str) -> list[Any]:
    """The rules of ``--rules``, or exit 2 with the rules file's error."""
    from ..alerts import load_rules
    from ..exceptions import ConfigurationError
    from .report_cmd import _fail

    try:
        return list(load_rules(path))
    except ConfigurationError as exc:
        _fail(str(exc))


def register(cli: click.Group) -> None:
    """Add ``serve`` to the command line."""
    cli.add_command(serve)
