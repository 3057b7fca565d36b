"""``vividly-trace serve``: the local, read-only web dashboard (extra ``dashboard``)."""

from __future__ import annotations

import ipaddress
import os

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
def serve(url: str | None, host: str, port: int, token: str | None, refresh: float) -> None:
    """Serve the read-only dashboard: overview, templates, executions, users, /api/ JSON.

    Binds 127.0.0.1 unless --host says otherwise; binding another address needs a token.
    The store is opened read-only and only GET is answered.
    """
    from .report_cmd import _fail, _guarded, _url

    token = token or os.environ.get(TOKEN_ENV) or None
    if not _loopback(host) and not token:
        _fail(f"--host {host} is reachable from other machines: set --token or ${TOKEN_ENV}")
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
    uvicorn.run(app, host=host, port=port, log_level="warning")


def register(cli: click.Group) -> None:
    """Add ``serve`` to the command line."""
    cli.add_command(serve)
