"""``vividly-trace pricing``: show the price table and its dates."""

from __future__ import annotations

from typing import Any

import click

from ..exceptions import ConfigurationError
from ..pricing import PricingTable

__all__ = ["register"]


def _fmt(value: Any) -> str:
    return "" if value is None else str(value)


@click.command("pricing")
@click.option("--file", "path", type=click.Path(dir_okay=False), help="A TOML/JSON price table.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def pricing(path: str | None, as_json: bool) -> None:
    """Show the price table (USD per 1M tokens) with each model's as-of date and source."""
    try:
        table = PricingTable.from_file(path) if path else PricingTable.default()
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    columns = (
        "input",
        "output",
        "cached_input",
        "audio_input",
        "tier_threshold",
        "input_above",
        "output_above",
        "cached_input_above",
    )
    if as_json:
        import json

        out = {
            "version": table.version,
            "models": {
                name: {
                    **{c: _fmt(getattr(p, c)) or None for c in columns},
                    "as_of": p.as_of,
                    "source": p.source,
                }
                for name, p in sorted(table.models.items())
            },
        }
        click.echo(json.dumps(out, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    view = Table(title=f"Price table {table.version} (USD per 1M tokens)")
    view.add_column("model")
    for c in columns:
        view.add_column(c, justify="right")
    view.add_column("as of")
    view.add_column("source")
    for name, p in sorted(table.models.items()):
        view.add_row(name, *(_fmt(getattr(p, c)) for c in columns), _fmt(p.as_of), _fmt(p.source))
    Console().print(view)


def register(cli: Any) -> None:
    """Add the command to the group."""
    cli.add_command(pricing)
