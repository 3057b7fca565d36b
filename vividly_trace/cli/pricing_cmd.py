"""``vividly-trace pricing``: show the price table, its dates and its sources.

The table is laid out for an 80-column terminal (or a log file): one row per model with the
plain prices, a second row for the prices above a prompt-size tier, the as-of date with a
footnote number, and the sources and other details as footnotes below the table.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import click

from ..exceptions import ConfigurationError
from ..pricing import ModelPrice, PricingTable

__all__ = ["register"]

_PRICE_COLUMNS = (
    "input",
    "output",
    "cached_input",
    "audio_input",
    "cached_audio_input",
    "tier_threshold",
    "input_above",
    "output_above",
    "cached_input_above",
    "max_prompt_tokens",
)


def _price(value: Decimal | None) -> str:
    if value is None:
        return "-"
    text = f"{value:f}"
    if "." in text:
        text = text.rstrip("0")
        whole, _, frac = text.partition(".")
        text = f"{whole}.{frac.ljust(2, '0')}"
    return text


def _tokens(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else f"{n:,}"


def _load(path: str | None) -> PricingTable:
    try:
        return PricingTable.from_file(path) if path else PricingTable.default()
    except ConfigurationError as exc:
        click.echo(f"vividly-trace: error: {' '.join(str(exc).split())}", err=True)
        raise SystemExit(2) from None


def _as_json(table: PricingTable) -> str:
    def value(v: Any) -> Any:
        return str(v) if isinstance(v, Decimal) else v

    return json.dumps(
        {
            "version": table.version,
            "models": {
                name: {
                    **{c: value(getattr(p, c)) for c in _PRICE_COLUMNS},
                    "as_of": p.as_of,
                    "source": p.source,
                    "secondary_source": p.secondary_source,
                }
                for name, p in sorted(table.models.items())
            },
        },
        indent=2,
    )


def _order(item: tuple[str, ModelPrice]) -> tuple[bool, str]:
    name, price = item
    return price.secondary_source, name


@click.command("pricing")
@click.option("--file", "path", type=click.Path(dir_okay=False), help="A TOML/JSON price table.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def pricing(path: str | None, as_json: bool) -> None:
    """Show the price table (USD per 1M tokens) with each model's as-of date and source.

    Thinking tokens are billed at the output price; cached input at the cached price; a
    tiered model bills the whole request at the higher prices when the prompt is over the
    tier.
    """
    table = _load(path)
    if as_json:
        click.echo(_as_json(table))
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table

    sources: list[str] = []
    secondary: set[int] = set()

    def footnote(price: ModelPrice) -> str:
        source = price.source or "(no source given)"
        if source not in sources:
            sources.append(source)
        number = sources.index(source) + 1
        if price.secondary_source:
            secondary.add(number)
        return f"[{number}]"

    view = Table(
        title=f"Price table {table.version}, USD per 1M tokens",
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
    )
    view.add_column("model", no_wrap=True)
    for name in ("input", "output", "cached", "audio"):
        view.add_column(name, justify="right", no_wrap=True)
    view.add_column("as of", no_wrap=True)
    cached_audio: list[str] = []
    for name, price in sorted(table.models.items(), key=_order):
        view.add_row(
            name,
            _price(price.input),
            _price(price.output),
            _price(price.cached_input),
            _price(price.audio_input),
            f"{price.as_of or '?'} {footnote(price)}",
        )
        if price.tier_threshold:
            view.add_row(
                f"  prompt > {_tokens(price.tier_threshold)} tokens",
                _price(price.input_above),
                _price(price.output_above),
                _price(price.cached_input_above),
                "",
                "",
                style="dim",
            )
        if price.max_prompt_tokens:
            view.add_row(
                f"  prompt > {_tokens(price.max_prompt_tokens)}: no price",
                "",
                "",
                "",
                "",
                "",
                style="dim",
            )
        if price.cached_audio_input is not None:
            cached_audio.append(f"{name} {_price(price.cached_audio_input)}")
    console = Console(highlight=False)
    console.print(view)
    console.print()
    console.print("Thinking tokens are billed as output. '-': no separate price (the input")
    console.print("price applies), or no price for that tier.")
    if cached_audio:
        console.print("Cached audio input: " + "; ".join(cached_audio) + ".")
    console.print()
    console.print("Sources:")
    for number, source in enumerate(sources, start=1):
        note = ""
        if number in secondary and "secondary" not in source.lower():
            note = " (secondary source, not an official price list)"
        console.print(f"  [{number}] {source}{note}", markup=False)


def register(cli: Any) -> None:
    """Add the command to the group."""
    cli.add_command(pricing)
