"""A seeded data set for the analytics tests, and the answers computed from it by hand.

The records are built here, in Python (with ``tests.factories.make_record``), and written
through the real SQLSink (migrations, triggers); the expected answers are computed from the
same Python list with the standard library (``statistics.quantiles``, ``Decimal`` sums),
never with the code under test.
"""

from __future__ import annotations

import datetime as dt
import random
import statistics
import uuid
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from tests.factories import make_record
from vividly_trace import PromptExecution

UTC = dt.timezone.utc
START = dt.datetime(2026, 3, 2, tzinfo=UTC)  # a Monday; three UTC days of data
DAYS = 3
# Prices per token used to make costs with many decimals (up to 12).
IN_PRICE = Decimal("0.000000300")
OUT_PRICE = Decimal("0.0000025")
ODD_COST = Decimal("0.000123456789")

QUOTA = (
    "429 RESOURCE_EXHAUSTED. {'error': {'code': 429, 'message': 'Resource has been "
    "exhausted (e.g. check quota).', 'status': 'RESOURCE_EXHAUSTED'}}"
)
QUOTA_PATTERN = "429 RESOURCE_EXHAUSTED: Resource has been exhausted (e.g. check quota)."
TIMEOUT_PATTERN = "timeout after <n>s (request <id>)"
JSON_PATTERN = "model answer is not valid JSON: Expecting value: line <n> column <n> (char <n>)"
UPSTREAM_PATTERN = "upstream <uuid> failed with status 503 at <time>"

# (template, version, group, calls, failure rate, latency median ms)
TEMPLATES = (
    ("nlu", "v1", "A", 130, 0.16, 40.0),
    ("nlu", "v2", "B", 120, 0.04, 55.0),
    ("clarify", None, None, 70, 0.10, 80.0),
    ("scripts", "v1", None, 40, 0.05, 900.0),
)


def _failure(rng: random.Random, i: int) -> tuple[str, str, int | None]:
    kind = i % 4
    if kind == 0:
        return "ClientError", QUOTA, 429
    if kind == 1:
        seconds = rng.uniform(5, 60)
        return (
            "TimeoutError",
            f"timeout after {seconds:.1f}s (request req_{rng.randint(10000, 99999)})",
            None,
        )
    if kind == 2:
        column = rng.randint(1, 40)
        return (
            "NLUParseError",
            f"model answer is not valid JSON: Expecting value: line 1 column {column} "
            f"(char {column - 1})",
            None,
        )
    upstream = uuid.UUID(int=rng.getrandbits(128))
    at = START + dt.timedelta(seconds=rng.randint(0, 86400))
    return (
        "ServerError",
        f"upstream {upstream} failed with status 503 at {at.strftime('%Y-%m-%dT%H:%M:%SZ')}",
        503,
    )


def make_records(seed: int = 20260302) -> list[PromptExecution]:
    """About 360 records over three UTC days, with edge cases at midnight."""
    rng = random.Random(seed)
    records: list[PromptExecution] = []
    n = 0
    for template, version, group, calls, failure_rate, median in TEMPLATES:
        failures = 0
        for i in range(calls):
            n += 1
            if i == 0:
                when = (
                    START + dt.timedelta(days=1) - dt.timedelta(microseconds=1)
                )  # 23:59:59.999999
            elif i == 1:
                when = START + dt.timedelta(days=1)  # 00:00:00 the next UTC day
            else:
                when = START + dt.timedelta(seconds=rng.uniform(0, DAYS * 86400 - 1))
            failed = rng.random() < failure_rate
            inp = rng.randint(20, 4000)
            out = rng.randint(5, 900)
            model = "gemini-2.5-flash"
            if i % 17 == 5:
                cost: Decimal | None = None  # an unknown model: no price
                model = "in-house-model"
            elif i % 23 == 7:
                cost = ODD_COST
            else:
                cost = inp * IN_PRICE + out * OUT_PRICE
            latency = round(median * rng.lognormvariate(0, 0.5), 3)
            if i % 11 == 3:
                latency = round(median, 3)  # ties
            error_type = error_message = None
            status = None
            if failed:
                error_type, error_message, status = _failure(rng, failures)
                failures += 1
                if error_type == "ClientError":  # rejected before any token was used
                    inp = out = 0
                    cost = None if cost is None else Decimal(0)
            records.append(
                make_record(
                    template,
                    execution_id=f"{n:08x}-0000-7000-8000-{rng.getrandbits(48):012x}",
                    template_version=version,
                    ab_test_group=group,
                    success=not failed,
                    response_time_ms=latency,
                    started_at=when,
                    model=model,
                    provider="gemini",
                    input_token_count=inp,
                    output_token_count=out,
                    total_token_count=inp + out,
                    cost_usd=cost,
                    pricing_version="test-prices" if cost is not None else None,
                    error_type=error_type,
                    error_message=error_message,
                    http_status=status,
                )
            )
    return records


# -- the answers, by hand -------------------------------------------------------------------


def expected_cost_by_day(records: Sequence[PromptExecution]) -> dict[tuple[dt.date, str], Any]:
    """(UTC day, template) -> [executions, priced, cost, input tokens, output tokens]."""
    out: dict[tuple[dt.date, str], list[Any]] = defaultdict(lambda: [0, 0, Decimal(0), 0, 0])
    for r in records:
        entry = out[(r.started_at.astimezone(UTC).date(), r.template_key)]
        entry[0] += 1
        if r.cost_usd is not None:
            entry[1] += 1
            entry[2] += r.cost_usd
        entry[3] += r.input_token_count or 0
        entry[4] += r.output_token_count or 0
    return dict(out)


def latencies(
    records: Sequence[PromptExecution], by_version: bool = False
) -> dict[tuple[str, str | None, str | None], list[float]]:
    """Group key -> the latencies, sorted."""
    out: dict[tuple[str, str | None, str | None], list[float]] = defaultdict(list)
    for r in records:
        key = (
            (r.template_key, r.template_version, r.ab_test_group)
            if by_version
            else (
                r.template_key,
                None,
                None,
            )
        )
        out[key].append(r.response_time_ms)
    return {k: sorted(v) for k, v in out.items()}


def expected_percentile(values: list[float], fraction: float) -> float:
    """The inclusive (PERCENTILE_CONT) percentile from ``statistics.quantiles``."""
    if fraction == 0.0:
        return min(values)
    if fraction == 1.0:
        return max(values)
    cuts = statistics.quantiles(values, n=1000, method="inclusive")
    return cuts[round(fraction * 1000) - 1]
