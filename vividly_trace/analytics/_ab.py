"""A/B comparison of a template's variants (version / A/B group), with verdicts.

For each variant: executions, success rate with its Wilson confidence interval, mean and
p95 latency, mean cost and cost per success; for each challenger, a two-sided
two-proportion z-test of its success rate against the baseline's, and a verdict, both
structured (:class:`ABVerdict`, whose ``direction`` is an :class:`ABDirection`) and as a
sentence for people:

- ``INSUFFICIENT_DATA``, ``"not enough data"``, when the challenger or the baseline has
  fewer than ``min_samples`` executions (default :data:`MIN_SAMPLES`, 30: below that the
  normal approximation behind the z-test is not trustworthy and a "significant" result is
  mostly noise);
- ``BETTER`` / ``WORSE``, ``"<label> better at 95%"`` / ``"<label> worse at 95%"``, when
  the p-value is below ``1 - confidence``;
- ``NO_DIFFERENCE``, ``"no significant difference"``, otherwise.

With three or more variants each challenger is tested against the baseline on its own (no
correction for multiple comparisons): read a lone "better at 95%" among many with care.
"""

from __future__ import annotations

import datetime as _dt
import enum
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..exceptions import ConfigurationError
from ._queries import latency_percentiles
from ._rows import variant_label
from ._sql import as_time, cost_sum, cost_value, executions_table, sort_key, window_conditions
from ._stats import two_proportion_z_test, wilson_interval, z_for_confidence
from ._store import ResultList, StoreSource, TimeBound, open_store, rows_to_dataframe

__all__ = ["MIN_SAMPLES", "ABComparison", "ABDirection", "ABVariant", "ABVerdict", "compare_ab"]

MIN_SAMPLES = 30
"""Default minimum executions per variant before a verdict is given."""


class ABDirection(enum.Enum):
    """How a challenger compares with the baseline on the verdict's metric.

    .. versionadded:: 0.2.0
    """

    BETTER = "better"
    """Significantly higher success rate than the baseline."""
    WORSE = "worse"
    """Significantly lower success rate than the baseline."""
    NO_DIFFERENCE = "no difference"
    """Enough data, and the difference is not significant."""
    INSUFFICIENT_DATA = "insufficient data"
    """Too few executions (challenger or baseline) to judge."""


@dataclass(frozen=True, slots=True)
class ABVerdict:
    """The verdict on one challenger against the baseline, for programs.

    ``baseline`` and ``challenger`` are variant labels (``"v3/A"``); ``metric`` is the
    compared quantity (``"success_rate"``); ``difference`` is the challenger's value minus
    the baseline's; ``z`` and ``p_value`` are the two-sided two-proportion z-test the
    direction rests on (``None`` when it could not be computed). ``direction`` is
    :attr:`~ABDirection.BETTER` or :attr:`~ABDirection.WORSE` when ``p_value < 1 -
    confidence`` and both variants have at least ``min_samples`` executions. ``text`` is
    the same verdict as a sentence.

    .. versionadded:: 0.2.0
    """

    baseline: str
    challenger: str
    direction: ABDirection
    metric: str
    difference: float
    z: float | None
    p_value: float | None
    confidence: float
    min_samples: int
    baseline_executions: int
    challenger_executions: int

    @property
    def significant(self) -> bool:
        """Whether the challenger is significantly better or worse."""
        return self.direction in (ABDirection.BETTER, ABDirection.WORSE)

    @property
    def text(self) -> str:
        """The verdict for people: ``"v4/B better at 95%"``, ``"no significant difference"``,
        ``"not enough data (under 30 calls per variant)"``."""
        if self.direction is ABDirection.INSUFFICIENT_DATA:
            if min(self.baseline_executions, self.challenger_executions) < self.min_samples:
                return f"not enough data (under {self.min_samples} calls per variant)"
            return "not enough data"
        if self.direction is ABDirection.NO_DIFFERENCE:
            return "no significant difference"
        return f"{self.challenger} {self.direction.value} at {self.confidence * 100:g}%"


@dataclass(frozen=True, slots=True)
class ABVariant:
    """One variant of an A/B comparison, with its test against the baseline.

    ``difference`` is this variant's success rate minus the baseline's (a fraction;
    ``None`` for the baseline), ``z`` and ``p_value`` the two-proportion z-test of that
    difference (``None`` for the baseline). ``cost_per_success_usd`` is the total cost of
    all its calls (failures cost tokens too) divided by its successes. ``outcome`` is the
    structured verdict (``None`` for the baseline) and ``verdict`` its sentence
    (``"baseline"`` for the baseline).

    .. versionadded:: 0.1.0
    """

    label: str
    version: str | None
    ab_group: str | None
    executions: int
    successes: int
    success_rate: float
    ci_low: float | None
    ci_high: float | None
    mean_latency_ms: float
    p95_latency_ms: float | None
    total_cost_usd: Decimal
    priced_executions: int
    mean_cost_usd: Decimal | None
    cost_per_success_usd: Decimal | None
    first_seen: _dt.datetime
    is_baseline: bool
    difference: float | None
    z: float | None
    p_value: float | None
    verdict: str
    outcome: ABVerdict | None

    def to_dict(self) -> dict[str, Any]:
        """The variant as a flat dict (the outcome as its ``direction`` value)."""
        out = {name: getattr(self, name) for name in self.__slots__ if name != "outcome"}
        out["direction"] = None if self.outcome is None else self.outcome.direction.value
        return out


@dataclass(frozen=True, slots=True)
class ABComparison:
    """The A/B comparison of one template: its variants (baseline first) and a summary.

    .. versionadded:: 0.1.0
    """

    template: str
    baseline: str
    confidence: float
    min_samples: int
    variants: ResultList[ABVariant] = field(default_factory=ResultList)
    summary: str = ""

    def variant(self, label: str) -> ABVariant:
        """The variant called ``label`` (``"v4/B"``, or its version or group alone).

        Raises:
            KeyError: no such variant.
        """
        for v in self.variants:
            if label in (v.label, v.version, v.ab_group):
                return v
        raise KeyError(label)

    @property
    def verdicts(self) -> list[ABVerdict]:
        """The structured verdict of each challenger, in the order of ``variants``."""
        return [v.outcome for v in self.variants if v.outcome is not None]

    def to_dataframe(self) -> Any:
        """The variants as a pandas DataFrame (one row each, baseline first)."""
        return rows_to_dataframe(self.variants)


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def _money(value: Decimal | None) -> str:
    return "unknown" if value is None else f"${value:.6f}"


def _judge(
    base: dict[str, Any],
    challenger: dict[str, Any],
    test: tuple[float, float] | None,
    confidence: float,
    min_samples: int,
) -> ABVerdict:
    if challenger["n"] < min_samples or base["n"] < min_samples or test is None:
        direction = ABDirection.INSUFFICIENT_DATA
    elif test[1] < 1.0 - confidence:
        direction = ABDirection.BETTER if test[0] > 0 else ABDirection.WORSE
    else:
        direction = ABDirection.NO_DIFFERENCE
    return ABVerdict(
        baseline=base["label"],
        challenger=challenger["label"],
        direction=direction,
        metric="success_rate",
        difference=challenger["ok"] / challenger["n"] - base["ok"] / base["n"],
        z=None if test is None else test[0],
        p_value=None if test is None else test[1],
        confidence=confidence,
        min_samples=min_samples,
        baseline_executions=base["n"],
        challenger_executions=challenger["n"],
    )


def _pick_baseline(rows: list[dict[str, Any]], baseline: str | None) -> dict[str, Any]:
    if baseline is None:
        # The oldest variant is the incumbent: the one that was running first.
        return min(rows, key=lambda r: (r["first_seen"], sort_key(r["version"], r["ab_group"])))
    matches = [r for r in rows if baseline == r["label"]]
    if not matches:
        matches = [r for r in rows if baseline in (r["version"], r["ab_group"])]
    if len(matches) != 1:
        known = ", ".join(r["label"] for r in rows)
        reason = "is ambiguous" if matches else "matches no variant"
        raise ConfigurationError(f"baseline {baseline!r} {reason} (variants: {known})")
    return matches[0]


def compare_ab(
    source: StoreSource,
    template: str,
    *,
    since: TimeBound = None,
    until: TimeBound = None,
    baseline: str | None = None,
    confidence: float = 0.95,
    min_samples: int = MIN_SAMPLES,
) -> ABComparison:
    """Compare the variants (version / A/B group) of ``template``: the original design's A/B
    query, with confidence intervals, a significance test and a verdict.

    Args:
        source: database URL or SQLAlchemy Engine.
        template: the template key.
        since, until: the time window (``since`` inclusive, ``until`` exclusive).
        baseline: the variant the others are tested against, by label (``"v3/A"``),
            version or group; default: the oldest variant (earliest first execution).
        confidence: confidence level of the intervals and the test (default 0.95).
        min_samples: executions a variant (and the baseline) needs before a verdict
            (default 30).

    Returns:
        An :class:`ABComparison` whose ``variants`` start with the baseline, then the
        others by label. A template with no executions in the window has no variants.

    Raises:
        StoreError: the store cannot be used. ConfigurationError: bad arguments (also an
        unknown baseline).

    .. versionadded:: 0.1.0
    """
    from sqlalchemy import case, func, select

    z_for_confidence(confidence)  # validates
    if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 1:
        raise ConfigurationError(f"min_samples must be a positive int, got {min_samples!r}")
    if not isinstance(template, str) or not template:
        raise ConfigurationError(f"template must be a non-empty string, got {template!r}")
    e = executions_table().c
    with open_store(source) as engine:
        keys = [e.template_version, e.template_ab_test_group]
        query = (
            select(
                *keys,
                func.count().label("n"),
                func.sum(case((e.success.is_(True), 1), else_=0)).label("ok"),
                func.avg(e.response_time_ms).label("mean_ms"),
                func.count(e.cost_usd).label("priced"),
                cost_sum(engine).label("cost"),
                func.min(e.executed_at).label("first_seen"),
            )
            .where(*window_conditions(engine, since, until, template))
            .group_by(*keys)
        )
        with engine.connect() as conn:
            rows = [
                {
                    "version": r.template_version,
                    "ab_group": r.template_ab_test_group,
                    "label": variant_label(r.template_version, r.template_ab_test_group),
                    "n": int(r.n),
                    "ok": int(r.ok),
                    "priced": int(r.priced),
                    "cost": cost_value(engine, r.cost),
                    "first_seen": as_time(r.first_seen),
                }
                for r in conn.execute(query)
            ]
        latency = {
            (row.version, row.ab_group): row
            for row in latency_percentiles(
                engine,
                since=since,
                until=until,
                template=template,
                by_version=True,
                percentiles=(0.95,),
            )
        }
    if not rows:
        return ABComparison(
            template=template,
            baseline="",
            confidence=confidence,
            min_samples=min_samples,
            variants=ResultList(),
            summary=f"{template}: no executions in this window",
        )
    base = _pick_baseline(rows, baseline)
    ordered = [
        base,
        *sorted(
            (r for r in rows if r is not base),
            key=lambda r: sort_key(r["version"], r["ab_group"]),
        ),
    ]
    variants: ResultList[ABVariant] = ResultList()
    for r in ordered:
        is_base = r is base
        lat = latency[(r["version"], r["ab_group"])]
        test = None if is_base else two_proportion_z_test(base["ok"], base["n"], r["ok"], r["n"])
        outcome = None if is_base else _judge(base, r, test, confidence, min_samples)
        interval = wilson_interval(r["ok"], r["n"], confidence)
        variants.append(
            ABVariant(
                label=r["label"],
                version=r["version"],
                ab_group=r["ab_group"],
                executions=r["n"],
                successes=r["ok"],
                success_rate=r["ok"] / r["n"],
                ci_low=interval[0] if interval else None,
                ci_high=interval[1] if interval else None,
                mean_latency_ms=lat.mean_ms,
                p95_latency_ms=lat.p95_ms,
                total_cost_usd=r["cost"],
                priced_executions=r["priced"],
                mean_cost_usd=r["cost"] / r["priced"] if r["priced"] else None,
                cost_per_success_usd=r["cost"] / r["ok"] if r["ok"] and r["priced"] else None,
                first_seen=r["first_seen"],
                is_baseline=is_base,
                difference=None if outcome is None else outcome.difference,
                z=None if test is None else test[0],
                p_value=None if test is None else test[1],
                verdict="baseline" if outcome is None else outcome.text,
                outcome=outcome,
            )
        )
    return ABComparison(
        template=template,
        baseline=base["label"],
        confidence=confidence,
        min_samples=min_samples,
        variants=variants,
        summary=_summary(template, variants),
    )


def _summary(template: str, variants: list[ABVariant]) -> str:
    base = variants[0]
    if len(variants) == 1:
        return f"{template}: only one variant ({base.label}), nothing to compare"
    lines = []
    for v in variants[1:]:
        line = (
            f"{template}: {v.verdict} (vs {base.label}); success {_pct(v.success_rate)} vs "
            f"{_pct(base.success_rate)}"
        )
        if v.p_value is not None:
            line += f", p={v.p_value:.3g}"
        if v.cost_per_success_usd is not None and base.cost_per_success_usd:
            change = v.cost_per_success_usd / base.cost_per_success_usd - 1
            line += (
                f"; cost per success {_money(v.cost_per_success_usd)} vs "
                f"{_money(base.cost_per_success_usd)} ({change * 100:+.0f}%)"
            )
        lines.append(line)
    return "\n".join(lines)
