"""The result rows of the analytics queries: frozen dataclasses with ``to_dict()``."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

__all__ = [
    "DailyCost",
    "ErrorPattern",
    "ExecutionRow",
    "LatencyPercentiles",
    "ModelCost",
    "SessionRow",
    "TemplateSummary",
    "UserCost",
    "variant_label",
]


def variant_label(version: str | None, ab_group: str | None) -> str:
    """How a variant is named in reports: ``"v3/A"``, ``"v3"``, ``"A"`` or ``"(none)"``.

    .. versionadded:: 0.1.0
    """
    if version and ab_group:
        return f"{version}/{ab_group}"
    return version or ab_group or "(none)"


def _percentile_key(fraction: float) -> str:
    """Column name of a percentile: ``p50_ms``, ``p95_ms``, ``p99.9_ms``."""
    return f"p{fraction * 100:g}_ms"


@dataclass(frozen=True, slots=True)
class DailyCost:
    """Cost of one template (and model, with ``by_model=True``) on one UTC day.

    ``cost_usd`` sums the executions that have a cost; ``priced_executions`` says how many
    did (an unknown model leaves the cost empty). With ``by_model=True`` the row is one
    model's share of the template: its counts are of Gemini requests (see
    :class:`ModelCost`), so that a function calling two models is split between them.

    With ``rollup=True``, ``rolled_up_cost_usd`` adds to each execution's cost that of
    the logged calls nested in it (through ``parent_execution_id``, at any depth),
    ``rolled_up_executions`` counts the executions so summed (the template's own ones
    included) and ``rolled_up_unpriced`` those of them without a cost. ``cost_usd`` stays
    the template's own cost, so summing it over rows still gives the bill; the rolled-up
    sums count a nested call in its own row and in each of its ancestors'. ``None``
    without ``rollup``.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.3.0 ``rolled_up_*``; ``by_model`` rows from the request rows.
    """

    day: _dt.date
    template: str
    model: str | None
    executions: int
    priced_executions: int
    cost_usd: Decimal
    input_tokens: int
    output_tokens: int
    rolled_up_cost_usd: Decimal | None = None
    rolled_up_executions: int | None = None
    rolled_up_unpriced: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The row as a flat dict."""
        return {
            "day": self.day,
            "template": self.template,
            "model": self.model,
            "executions": self.executions,
            "priced_executions": self.priced_executions,
            "cost_usd": self.cost_usd,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "rolled_up_cost_usd": self.rolled_up_cost_usd,
            "rolled_up_executions": self.rolled_up_executions,
            "rolled_up_unpriced": self.rolled_up_unpriced,
        }


@dataclass(frozen=True, slots=True)
class ModelCost:
    """Cost, tokens and calls of one model on one UTC day (and template, with
    ``by_template=True``), from the Gemini requests themselves.

    A call is one Gemini request (a ``prompt_requests`` row, failed ones included), on
    the day it started, priced at its own model; an execution without request rows (a
    :func:`~vividly_trace.log_prompt_execution` record, a store written before schema
    revision 0003) is one call of its own ``model``. ``model`` is the requested model
    (else the one the answer named; ``None`` when neither is known). ``cost_usd`` sums the
    calls that have a cost, ``priced_calls`` says how many do (a failed request usually
    has none), ``failed_calls`` how many failed.

    .. versionadded:: 0.3.0
    """

    day: _dt.date
    model: str | None
    template: str | None
    calls: int
    priced_calls: int
    failed_calls: int
    cost_usd: Decimal
    input_tokens: int
    output_tokens: int

    @property
    def unpriced_calls(self) -> int:
        """Calls without a cost."""
        return self.calls - self.priced_calls

    def to_dict(self) -> dict[str, Any]:
        """The row as a flat dict."""
        return {
            "day": self.day,
            "model": self.model,
            "template": self.template,
            "calls": self.calls,
            "priced_calls": self.priced_calls,
            "failed_calls": self.failed_calls,
            "cost_usd": self.cost_usd,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
        }


@dataclass(frozen=True, slots=True)
class LatencyPercentiles:
    """Latency of one template (or template variant) in milliseconds.

    ``percentiles`` maps each requested fraction (0.95) to its value; ``p50_ms``,
    ``p95_ms`` and ``p99_ms`` read it. ``version`` and ``ab_group`` are ``None`` unless
    the query was made with ``by_version=True``.

    .. versionadded:: 0.1.0
    """

    template: str
    version: str | None
    ab_group: str | None
    executions: int
    mean_ms: float
    percentiles: Mapping[float, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """``template`` or ``template v3/A``."""
        if self.version is None and self.ab_group is None:
            return self.template
        return f"{self.template} {variant_label(self.version, self.ab_group)}"

    def percentile(self, fraction: float) -> float | None:
        """The value for ``fraction`` (e.g. 0.95), if it was requested."""
        return self.percentiles.get(fraction)

    @property
    def p50_ms(self) -> float | None:
        """The median."""
        return self.percentiles.get(0.5)

    @property
    def p95_ms(self) -> float | None:
        """The 95th percentile."""
        return self.percentiles.get(0.95)

    @property
    def p99_ms(self) -> float | None:
        """The 99th percentile."""
        return self.percentiles.get(0.99)

    def to_dict(self) -> dict[str, Any]:
        """The row as a flat dict, one ``pNN_ms`` column per percentile."""
        out: dict[str, Any] = {
            "template": self.template,
            "version": self.version,
            "ab_group": self.ab_group,
            "executions": self.executions,
            "mean_ms": self.mean_ms,
        }
        for fraction, value in sorted(self.percentiles.items()):
            out[_percentile_key(fraction)] = value
        return out


@dataclass(frozen=True, slots=True)
class TemplateSummary:
    """Executions, success and error rates, cost and tokens of a template (or variant).

    ``cost_usd`` sums the executions that have a cost: ``unpriced_executions`` says how many
    have none (``cost_usd`` NULL: an unknown model, no usage reported), so a ``cost_usd`` of 0
    with every execution unpriced means "unknown", not "free". ``no_usage_executions``
    counts the executions with neither an input nor an output token count.

    .. versionadded:: 0.1.0
    """

    template: str
    version: str | None
    ab_group: str | None
    executions: int
    successes: int
    failures: int
    cost_usd: Decimal
    input_tokens: int
    output_tokens: int
    first_seen: _dt.datetime
    last_seen: _dt.datetime
    no_usage_executions: int = 0
    unpriced_executions: int = 0

    @property
    def priced_executions(self) -> int:
        """Executions that have a cost."""
        return self.executions - self.unpriced_executions

    @property
    def success_rate(self) -> float:
        """Successes / executions."""
        return self.successes / self.executions if self.executions else 0.0

    @property
    def error_rate(self) -> float:
        """Failures / executions."""
        return self.failures / self.executions if self.executions else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The row as a flat dict (with the rates)."""
        return {
            "template": self.template,
            "version": self.version,
            "ab_group": self.ab_group,
            "executions": self.executions,
            "successes": self.successes,
            "failures": self.failures,
            "success_rate": self.success_rate,
            "error_rate": self.error_rate,
            "cost_usd": self.cost_usd,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "no_usage_executions": self.no_usage_executions,
            "unpriced_executions": self.unpriced_executions,
        }


@dataclass(frozen=True, slots=True)
class ErrorPattern:
    """One kind of failure of one template: the normalised message and how often it occurred.

    ``share`` is the fraction of the template's failures (in the window) with this pattern;
    ``example`` is the latest raw message.

    .. versionadded:: 0.1.0
    """

    template: str
    error_type: str | None
    http_status: int | None
    pattern: str
    count: int
    share: float
    first_seen: _dt.datetime
    last_seen: _dt.datetime
    example: str | None

    def to_dict(self) -> dict[str, Any]:
        """The row as a flat dict."""
        return {
            "template": self.template,
            "error_type": self.error_type,
            "http_status": self.http_status,
            "pattern": self.pattern,
            "count": self.count,
            "share": self.share,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "example": self.example,
        }


@dataclass(frozen=True, slots=True)
class ExecutionRow:
    """One stored execution, as ``vividly-trace tail`` shows it.

    .. versionadded:: 0.1.0
    """

    id: str
    executed_at: _dt.datetime
    template: str
    version: str | None
    ab_group: str | None
    model: str | None
    success: bool
    response_time_ms: float
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: Decimal | None
    error_type: str | None
    error_message: str | None
    http_status: int | None
    streamed: bool

    def to_dict(self) -> dict[str, Any]:
        """The row as a flat dict."""
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class UserCost:
    """Cost, tokens and calls of one user (the ``user_id`` that
    :func:`vividly_trace.context` or the middleware bound) over a time window.

    A call is one execution (a ``prompt_executions`` row). ``user_id`` is ``None`` for the
    calls made outside any context, so that summing ``cost_usd`` over the rows gives the
    bill. ``cost_usd`` sums the calls that have a cost, ``priced_calls`` says how many do:
    a user whose calls are all unpriced has an unknown cost, not a cost of 0.

    .. versionadded:: 0.3.0
    """

    user_id: str | None
    calls: int
    priced_calls: int
    failed_calls: int
    cost_usd: Decimal
    input_tokens: int
    output_tokens: int
    sessions: int
    first_seen: _dt.datetime
    last_seen: _dt.datetime

    @property
    def unpriced_calls(self) -> int:
        """Calls without a cost."""
        return self.calls - self.priced_calls

    @property
    def known_cost_usd(self) -> Decimal | None:
        """``cost_usd``, or ``None`` when no call has a cost (unknown, never 0)."""
        return self.cost_usd if self.priced_calls else None

    def to_dict(self) -> dict[str, Any]:
        """The row as a flat dict (``cost_usd`` is ``None`` when unknown)."""
        return {
            "user_id": self.user_id,
            "calls": self.calls,
            "priced_calls": self.priced_calls,
            "unpriced_calls": self.unpriced_calls,
            "failed_calls": self.failed_calls,
            "cost_usd": self.known_cost_usd,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "sessions": self.sessions,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
        }


@dataclass(frozen=True, slots=True)
class SessionRow:
    """One session (a ``session_id`` bound by :func:`vividly_trace.context` or the
    middleware): its calls, cost, first and last call, and the templates it used.

    ``first_seen`` and ``last_seen`` are the start times of its first and last call;
    ``duration`` is the time between them (0 for a one-call session). ``user_id`` is the
    session's user (the smallest when calls of one session carry different users; ``None``
    when none carries one). Costs as in :class:`UserCost`.

    .. versionadded:: 0.3.0
    """

    session_id: str
    user_id: str | None
    calls: int
    priced_calls: int
    failed_calls: int
    cost_usd: Decimal
    input_tokens: int
    output_tokens: int
    first_seen: _dt.datetime
    last_seen: _dt.datetime
    templates: tuple[str, ...] = ()

    @property
    def unpriced_calls(self) -> int:
        """Calls without a cost."""
        return self.calls - self.priced_calls

    @property
    def known_cost_usd(self) -> Decimal | None:
        """``cost_usd``, or ``None`` when no call has a cost (unknown, never 0)."""
        return self.cost_usd if self.priced_calls else None

    @property
    def duration(self) -> _dt.timedelta:
        """From the first call's start to the last call's start."""
        return self.last_seen - self.first_seen

    def to_dict(self) -> dict[str, Any]:
        """The row as a flat dict (``duration_s`` in seconds, ``templates`` comma-joined)."""
        return {
            "session_id": self.session_id,
            "user_id": self.user_id,
            "calls": self.calls,
            "priced_calls": self.priced_calls,
            "unpriced_calls": self.unpriced_calls,
            "failed_calls": self.failed_calls,
            "cost_usd": self.known_cost_usd,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "duration_s": self.duration.total_seconds(),
            "templates": ", ".join(self.templates),
        }
