"""The outcomes an A/B comparison can test: one small object per metric.

A :class:`Metric` says which rows count (``conditions``), the value each row contributes
(``value``) and the kind of test that fits it: ``"proportion"`` (a rate: Wilson interval,
two-proportion z-test) or ``"mean"`` (an average: t interval, Welch t-test). Adding a metric
is adding one entry to :func:`resolve_metric`.

Infrastructure errors (left out of ``success`` unless ``include_infra_errors=True``) are the
failed executions whose stored ``http_status`` is 408, 429 or 500-599, or whose stored
``error_type`` (the exception's class name, see ``vividly_trace._errors``) is one of
:data:`INFRA_ERROR_TYPES`: timeouts and cancellations. Any other failure counts against the
variant.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ..exceptions import ConfigurationError
from ._sql import executions_table

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement, FromClause

__all__ = [
    "INFRA_ERROR_TYPES",
    "INFRA_HTTP_STATUSES",
    "METRICS",
    "SCORE_PREFIX",
    "Metric",
    "infra_error_condition",
    "resolve_metric",
]

INFRA_HTTP_STATUSES = (408, 429)
"""HTTP statuses (besides 500-599) that make a failure an infrastructure error."""

INFRA_ERROR_TYPES = (
    "TimeoutError",
    "CancelledError",
    "ReadTimeout",
    "ConnectTimeout",
    "WriteTimeout",
    "PoolTimeout",
    "TimeoutException",
    "DeadlineExceeded",
    "ServiceUnavailable",
    "ResourceExhausted",
    "TooManyRequests",
)
"""``error_type`` values (exception class names) that make a failure an infrastructure
error: timeouts of asyncio / httpx / google-api-core, cancellation, quota and unavailability."""

METRICS = ("success", "cost", "latency", "score:NAME")
"""The metric names :func:`resolve_metric` knows (``score:NAME``: any score name)."""

SCORE_PREFIX = "score:"


@dataclass(frozen=True, slots=True)
class Metric:
    """One outcome: its name, the kind of test, the value per row and the rows that count.

    ``higher_is_better`` orders the verdict (a cheaper or faster challenger is "better").

    .. versionadded:: 0.3.0
    """

    name: str
    kind: Literal["proportion", "mean"]
    higher_is_better: bool
    value: Callable[[], ColumnElement[float]]
    conditions: Callable[[], list[ColumnElement[bool]]]
    unit: str = ""
    source: Callable[[], FromClause] | None = None
    """What the metric's rows are read from, when not ``prompt_executions`` alone (a score
    metric: the executions joined to their scores)."""


def infra_error_condition() -> ColumnElement[bool]:
    """The rows that failed for an infrastructure reason (see the module docstring)."""
    from sqlalchemy import and_, func, or_

    e = executions_table().c
    # COALESCE: a NULL status or type must give FALSE, not NULL (NOT NULL would drop the row).
    status = func.coalesce(e.http_status, 0)
    return and_(
        e.success.is_(False),
        or_(
            status.in_(INFRA_HTTP_STATUSES),
            status.between(500, 599),
            func.coalesce(e.error_type, "").in_(INFRA_ERROR_TYPES),
        ),
    )


def _success_value() -> ColumnElement[float]:
    from sqlalchemy import case

    return case((executions_table().c.success.is_(True), 1.0), else_=0.0)


def _cost_value() -> ColumnElement[float]:
    from ..sinks.sql.schema import money_as_float

    return money_as_float(executions_table().c.cost_usd)


def _latency_value() -> ColumnElement[float]:
    return executions_table().c.response_time_ms


def _score_metric(spec: str) -> Metric:
    """``score:NAME`` (the ``user`` source) or ``score:NAME@SOURCE``: the mean of that
    numeric or boolean score (1 / 0) over the executions that have it (Welch t-test)."""
    from sqlalchemy import Double, type_coerce

    from ._scores import scores_table

    name, _, source = spec[len(SCORE_PREFIX) :].partition("@")
    source = source or "user"
    if not name or not source:
        raise ConfigurationError(
            f"A/B metric {spec!r}: write score:NAME or score:NAME@SOURCE (a non-empty name)"
        )
    s = scores_table().c

    def conditions() -> list[ColumnElement[bool]]:
        return [s.name == name, s.source == source, s.data_type != "categorical"]

    def joined() -> FromClause:
        return executions_table().join(scores_table(), s.execution_id == executions_table().c.id)

    return Metric(
        spec,
        "mean",
        True,
        lambda: type_coerce(s.value_number, Double),
        conditions,
        source=joined,
    )


def resolve_metric(name: str, *, include_infra_errors: bool = False) -> Metric:
    """The :class:`Metric` called ``name`` (``"success"``, ``"cost"``, ``"latency"``,
    ``"score:NAME"`` or ``"score:NAME@SOURCE"``: a numeric or boolean score, higher is
    better, of the ``user`` source unless another is named).

    Raises:
        ConfigurationError: an unknown metric.

    .. versionadded:: 0.3.0
    """
    if name == "success":
        from sqlalchemy import not_

        def conditions() -> list[ColumnElement[bool]]:
            return [] if include_infra_errors else [not_(infra_error_condition())]

        return Metric("success", "proportion", True, _success_value, conditions)
    if name == "cost":
        return Metric(
            "cost",
            "mean",
            False,
            _cost_value,
            lambda: [executions_table().c.cost_usd.is_not(None)],
            "USD",
        )
    if name == "latency":
        return Metric("latency", "mean", False, _latency_value, lambda: [], "ms")
    if isinstance(name, str) and name.startswith(SCORE_PREFIX):
        return _score_metric(name)
    raise ConfigurationError(f"unknown A/B metric {name!r} (known: {', '.join(METRICS)})")
