"""``vividly-trace pricing``: show the price table, its dates and its sources.

The table is laid out for an 80-column terminal (or a log file): one row per model with the
plain prices, a second row for the prices above a prompt-size tier, the as-of date with a
footnote number, and the sources and other details as footnotes below the table.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from ..exceptions import ConfigurationError
from ..pricing import FIELD_ORDER, ModelPrice, PricingTable

__all__ = ["register"]

#: A catalogue older than this many days is stale: `vividly-trace pricing` warns.
STALE_AFTER_DAYS = 60

_PRICE_COLUMNS = FIELD_ORDER


def _price(value: Decimal | None) -> str:
    if value is None:
        return "-"
    text = f"{value:f}"
    if "." in text:
        text = text.rstrip("0")
        whole, _, frac = text.partition(".")
        text = f"{whole}.{frac.ljust(2, '0')}"
    return text


def _modal_rates(model: ModelPrice) -> str:
    """A model's own image / video / audio-output rates and grounding fee, as text."""
    parts = [
        f"{label} {_price(getattr(model, field))}"
        for field, label in (
            ("image_input", "image in"),
            ("video_input", "video in"),
            ("image_output", "image out"),
            ("audio_output", "audio out"),
        )
        if getattr(model, field) is not None
    ]
    if model.grounding_per_1k is not None:
        unit = "grounded prompts" if model.grounding_unit == "prompt" else "search queries"
        parts.append(f"grounding {_price(model.grounding_per_1k)} per 1,000 {unit}")
    return ", ".join(parts)


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

    def rates(p: ModelPrice) -> dict[str, Any]:
        return {c: value(getattr(p, c)) for c in _PRICE_COLUMNS}

    def price(p: ModelPrice) -> dict[str, Any]:
        out = rates(p)
        if p.changes:
            out["changes"] = [{"from": start, **rates(q)} for start, q in p.changes]
        return out

    return json.dumps(
        {
            "version": table.version,
            "date": table.date,
            "models": {
                name: {
                    **price(p),
                    "tiers": {tier: price(q) for tier, q in p.tiers},
                    "aliases": list(p.aliases),
                    "as_of": p.as_of,
                    "source": p.source,
                    "secondary_source": p.secondary_source,
                    "note": p.note,
                }
                for name, p in sorted(table.models.items())
            },
        },
        indent=2,
    )


def _order(item: tuple[str, ModelPrice]) -> tuple[bool, str]:
    name, price = item
    return price.secondary_source, name


def _periods(price: ModelPrice, label: str) -> list[tuple[str, ModelPrice]]:
    """(row label, price) for the price and each of its changes."""
    rows = [(label, price)]
    rows += [(f"{label} from {start}".strip(), later) for start, later in price.changes]
    return rows


@click.group("pricing", invoke_without_command=True)
@click.option("--file", "path", type=click.Path(dir_okay=False), help="A TOML/JSON price table.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def pricing(ctx: click.Context, path: str | None, as_json: bool) -> None:
    """Show the price table (USD per 1M tokens) with each model's as-of date and source.

    Thinking tokens are billed at the output price; cached input at the cached price; a
    tiered model bills the whole request at the higher prices when the prompt is over the
    tier. A later price period ("from DATE") applies to requests started on or after that
    UTC day; service tiers (batch, flex, priority) have rows of their own.
    """
    if ctx.invoked_subcommand is not None:
        return
    table = _load(path)
    age = table.age_days()
    if age is not None and age > STALE_AFTER_DAYS:
        click.echo(
            f"vividly-trace: warning: the price catalogue is {age} days old (of {table.date}); "
            "prices may have changed: refresh a local copy with `vividly-trace pricing "
            "update` (extra 'pricing') or upgrade vividly-trace",
            err=True,
        )
    if as_json:
        click.echo(_as_json(table))
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table

    sources: list[tuple[str, str]] = []
    secondary: set[int] = set()

    def footnote(price: ModelPrice) -> str:
        source = (price.source or "(no source given)", price.as_of or "?")
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
    view.add_column("src", no_wrap=True)
    cached_audio: list[str] = []
    modal: list[str] = []
    notes: list[str] = []
    for name, model in sorted(table.models.items(), key=_order):
        first = True
        for label, price in [
            *_periods(model, ""),
            *(row for tier, t in model.tiers for row in _periods(t, tier)),
        ]:
            view.add_row(
                name if first else f"  {label}",
                _price(price.input),
                _price(price.output),
                _price(price.cached_input),
                _price(price.audio_input),
                footnote(model) if first else "",
                style=None if first else "dim",
            )
            first = False
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
        if model.cached_audio_input is not None:
            cached_audio.append(f"{name} {_price(model.cached_audio_input)}")
        own = _modal_rates(model)
        if own:
            modal.append(f"{name}: {own}")
        if model.note:
            notes.append(f"{name}: {model.note}")
    console = Console(highlight=False)
    if table.date is not None:
        console.print(f"Catalogue of {table.date} ({age} days old).")
    else:
        console.print("Catalogue undated.")
    console.print(view)
    console.print()
    console.print("Thinking tokens are billed as output. '-': no separate price (the input")
    console.print("price applies), or no price for that tier. A service tier a model has no")
    console.print("row for is not priced (cost left empty).")
    if cached_audio:
        console.print("Cached audio input: " + "; ".join(cached_audio) + ".", markup=False)
    if modal:
        console.print()
        console.print("Other modalities and grounding (list prices, before free allowances):")
        for line in modal:
            console.print(f"  {line}", markup=False)
    if notes:
        console.print()
        console.print("Curated:")
        for note in notes:
            console.print(f"  {note}", markup=False)
    console.print()
    console.print("Sources:")
    for number, (source, as_of) in enumerate(sources, start=1):
        note = ""
        if number in secondary and "secondary" not in source.lower():
            note = " (secondary source, not an official price list)"
        console.print(f"  [{number}] {source}, as of {as_of}{note}", markup=False)


def _compiled(command: str, date: Any = None) -> str:
    """The compiled table's text, or exit 2 with one line (no genai-prices, bad data)."""
    from ..pricing import _compile

    try:
        return _compile.compile_table(date=date)
    except ImportError:
        click.echo(
            f"vividly-trace: error: pricing {command} needs the 'pricing' extra: "
            "pip install 'vividly-trace[pricing]'",
            err=True,
        )
        raise SystemExit(2) from None
    except ConfigurationError as exc:
        click.echo(f"vividly-trace: error: {' '.join(str(exc).split())}", err=True)
        raise SystemExit(2) from None


@pricing.command("compile")
@click.option(
    "--check",
    is_flag=True,
    help="Write nothing: exit 1 when the packaged table differs from what compiling gives.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    help="Write here instead of the packaged data/gemini.toml.",
)
def compile_cmd(check: bool, output: str | None) -> None:
    """Regenerate the packaged price table from the installed genai-prices and the
    project's curated overrides (a maintainer's command; needs the 'pricing' extra)."""
    from ..pricing import _compile

    text = _compiled("compile")
    target = Path(output) if output else _compile.packaged_path()
    if check:
        current = target.read_text("utf-8") if target.exists() else ""
        if current != text:
            import difflib

            diff = difflib.unified_diff(
                current.splitlines(), text.splitlines(), str(target), "compiled", lineterm=""
            )
            click.echo("\n".join(list(diff)[:60]))
            click.echo(f"{target} is not what compiling gives: run vividly-trace pricing compile")
            raise SystemExit(1)
        click.echo(f"{target} is up to date (genai-prices {_compile.genai_prices_version()})")
        return
    target.write_text(text, "utf-8")
    click.echo(f"wrote {target} (genai-prices {_compile.genai_prices_version()})")


@pricing.command("update")
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    default="vividly_trace_prices.toml",
    show_default=True,
    help="Where to write the refreshed table.",
)
def update_cmd(output: str) -> None:
    """Refresh a local copy of the price table from the installed genai-prices (upgrade it
    first: pip install -U genai-prices) and the packaged curated overrides, dated today.
    Use it with configure(pricing="FILE"): its models replace the packaged ones."""
    import datetime as dt

    text = _compiled("update", dt.datetime.now(dt.timezone.utc).date())
    target = Path(output)
    try:
        target.write_text(text, "utf-8")
    except OSError as exc:
        click.echo(f"vividly-trace: error: cannot write {target}: {exc}", err=True)
        raise SystemExit(2) from None
    version = PricingTable.from_file(target).version
    click.echo(f"wrote {target} ({version}); use it with configure(pricing={str(target)!r})")


def register(cli: Any) -> None:
    """Add the command to the group."""
    cli.add_command(pricing)
