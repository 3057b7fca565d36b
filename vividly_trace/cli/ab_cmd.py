"""``vividly-trace ab TEMPLATE``: the A/B comparison of one template's variants.

Exit codes: 0 done; 2 a bad option value (an unknown metric or control), a bad URL, an
unreachable database or missing tables, as one line on stderr (``vividly-trace: error:
...``). ``--json`` prints the comparison as one JSON object on stdout.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from decimal import Decimal
from typing import Any

import click

from .report_cmd import _TIME_HELP, _URL_HELP, _guarded, _stdout, _url

__all__ = ["register"]


def _jsonable(value: Any) -> Any:
    """JSON types only: exact decimals as text, times in ISO 8601, infinite or NaN floats
    (a zero-variance Welch test) as null."""
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, _dt.datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@click.command("ab")
@click.argument("template")
@click.option(
    "--control",
    default=None,
    help="The variant the others are tested against (e.g. v3/A, v3 or A); default: the "
    "rollout's control, else the first version registered or pushed, else the lowest version.",
)
@click.option(
    "--metric",
    default="success",
    show_default=True,
    help="success (rate), cost (mean USD per priced call), latency (mean ms) or "
    "score:NAME[@SOURCE] (mean of a numeric or boolean score).",
)
@click.option(
    "--include-infra-errors",
    is_flag=True,
    help="Count infrastructure failures (HTTP 408/429/5xx, timeouts, cancellations) in the "
    "success rate (default: left out, so an outage does not decide an experiment).",
)
@click.option("--url", default=None, help=_URL_HELP)
@click.option(
    "--since",
    default="all",
    show_default=True,
    help=f"Start of the window ({_TIME_HELP}); 'all' for the whole experiment.",
)
@click.option("--until", default=None, help="End of the window, exclusive (default: now).")
@click.option(
    "--min-samples",
    default=30,
    show_default=True,
    type=click.IntRange(1),
    help="Values per variant before a verdict.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def ab(
    template: str,
    control: str | None,
    metric: str,
    include_infra_errors: bool,
    url: str | None,
    since: str,
    until: str | None,
    min_samples: int,
    as_json: bool,
) -> None:
    """Compare TEMPLATE's variants against the control on one metric.

    Each challenger gets two verdicts: the fixed-horizon test (two-proportion z for the
    success rate, Welch t for cost and latency), valid only when read once at a horizon
    fixed in advance; and a sequential one (mixture SPRT), valid however often it is read,
    so checking every day does not inflate false positives.
    """
    from ..analytics import compare_ab
    from ..analytics._terminal import print_ab

    result = _guarded(
        lambda: compare_ab(
            _url(url),
            template,
            since=None if since.strip().lower() == "all" else since,
            until=until,
            control=control,
            metric=_metric_name(metric),
            include_infra_errors=include_infra_errors,
            min_samples=min_samples,
        )
    )
    if as_json:
        click.echo(json.dumps(_jsonable(result.to_dict()), indent=2, allow_nan=False))
        return
    print_ab(result, _stdout())


def register(cli: Any) -> None:
    """Add ``ab`` to the command line."""
    cli.add_command(ab)


def _metric_name(metric: str) -> str:
    """The metric's kind is case-insensitive; a score's name is kept as given."""
    kind, sep, rest = metric.strip().partition(":")
    return f"{kind.lower()}{sep}{rest}"
