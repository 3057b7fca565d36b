"""``vividly-trace alerts check``: evaluate alert rules against the store (for cron).

Exit codes: 0 nothing fired, 1 an alert fired in this run (each alert fires once per
window, so a cron job reports it once), 2 a configuration error (bad rules file, URL,
webhook, unreachable store), with one line on stderr.
"""

from __future__ import annotations

import json
import os
from typing import Any, NoReturn

import click

__all__ = ["register"]


def _fail(message: str) -> NoReturn:
    click.echo(f"vividly-trace: error: {message}", err=True)
    raise SystemExit(2)


@click.group("alerts")
def alerts() -> None:
    """Alert rules and budgets over the SQL store."""


@alerts.command("check")
@click.option("--url", default=None, help="Database URL (default: $VIVIDLY_TRACE_DATABASE_URL).")
@click.option("--rules", "rules_file", required=True, help="The rules file (TOML).")
@click.option(
    "--webhook",
    default=None,
    help="Webhook URL for the alerts (Slack-compatible); default $VIVIDLY_TRACE_ALERTS_WEBHOOK.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the firings as JSON.")
def alerts_check(url: str | None, rules_file: str, webhook: str | None, as_json: bool) -> None:
    """Check the rules once: notify new alerts, retry undelivered ones; exit 1 if one fired."""
    from ..alerts import load_rules
    from ..alerts._evaluator import check_once
    from ..analytics._store import StoreError, default_url
    from ..exceptions import ConfigurationError

    hook = webhook or os.environ.get("VIVIDLY_TRACE_ALERTS_WEBHOOK") or None
    try:
        rules = load_rules(rules_file)
        firings = check_once(url or default_url(), rules, webhook=hook)
    except (ConfigurationError, StoreError) as exc:
        _fail(str(exc))
    new = [f for f in firings if f.new]
    if as_json:
        click.echo(json.dumps([f.to_dict() for f in firings], indent=2))
    else:
        for f in firings:
            state = "FIRED" if f.new else "still over threshold (already notified)"
            click.echo(f"{state}: {f.message}")
        if not firings:
            click.echo(f"ok: {len(rules)} rules, nothing over threshold")
    raise SystemExit(1 if new else 0)


def register(cli: Any) -> None:
    """Add the ``alerts`` group to the command line."""
    cli.add_command(alerts)
