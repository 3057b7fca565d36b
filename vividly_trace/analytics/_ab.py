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
from ._metrics import Metric, infra_error_condition, resolve_metric
from ._queries import latency_percentiles
from ._rows import variant_label
from ._sql import as_time, cost_sum, cost_value, executions_table, sort_key, window_conditions
from ._stats import (
    mixture_sprt,
    t_interval,
    two_proportion_z_test,
    welch_t_test,
    wilson_interval,
    z_for_confidence,
)
from ._store import ResultList, StoreSource, TimeBound, open_store, rows_to_dataframe

__all__ = ["MIN_SAMPLES", "ABComparison", "ABDirection", "ABVariant", "ABVerdict", "compare_ab"]

MIN_SAMPLES = 30
"""Default minimum executions per variant before a verdict is given."""


class ABDirection(enum.Enum):
    """How a challenger compares with the baseline on the verdict's metric.

    .. versionadded:: 0.2.0
    """

    BETTER = "better"
    """Significantly better than the control on the metric (a higher success rate, a lower
    cost or latency)."""
    WORSE = "worse"
    """Significantly worse than the control on the metric."""
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
    test: str = "two-proportion z"
    sequential_p_value: float | None = None
    sequential_direction: ABDirection = ABDirection.INSUFFICIENT_DATA

    def to_dict(self) -> dict[str, Any]:
        """The verdict as a dict: every field, the directions as their values, the sentences
        as ``text`` and ``sequential_text``.

        .. versionadded:: 0.3.0
        """
        out = {name: getattr(self, name) for name in self.__slots__}
        out["direction"] = self.direction.value
        out["sequential_direction"] = self.sequential_direction.value
        out["text"] = self.text
        out["sequential_text"] = self.sequential_text
        return out

    @property
    def sequential_text(self) -> str:
        """The always-valid (mSPRT) verdict for people: safe to read after every day."""
        if self.sequential_direction is ABDirection.INSUFFICIENT_DATA:
            return "not enough data"
        if self.sequential_direction is ABDirection.NO_DIFFERENCE:
            return "no difference yet"
        return f"{self.challenger} {self.sequential_direction.value} (always valid)"

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
    metric_executions: int = 0
    metric_value: float | None = None
    metric_ci_low: float | None = None
    metric_ci_high: float | None = None
    infra_errors: int = 0

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
    metric: str = "success"
    include_infra_errors: bool = False
    control_source: str = "declared"

    def variant(self, label: str) -> ABVariant:
        """The variant called ``label`` (``"v4/B"``, or its version or group alone).

        Raises:
            KeyError: no such variant.
        """
        for v in self.variants:
            if label in (v.label, v.version, v.ab_group):
                return v
        raise KeyError(label)

    def to_dict(self) -> dict[str, Any]:
        """The comparison as nested dicts (JSON-ready once decimals and times are turned
        into text): its fields (``baseline`` also as ``control``), and per variant
        :meth:`ABVariant.to_dict` with its verdict as :meth:`ABVerdict.to_dict` under
        ``"outcome"`` (``None`` for the control).

        .. versionadded:: 0.3.0
        """
        out = {name: getattr(self, name) for name in self.__slots__ if name != "variants"}
        out["control"] = self.baseline
        out["variants"] = [
            {**v.to_dict(), "outcome": None if v.outcome is None else v.outcome.to_dict()}
            for v in self.variants
        ]
        return out

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


TAU2_FRACTION = 0.01
"""The mSPRT's mixing variance as a fraction of the per-call variance: the sequential test is
tuned to detect differences of about a tenth of a standard deviation."""


def _moments(r: dict[str, Any]) -> tuple[float, float]:
    """(mean, sample variance) of the metric's values of a variant row."""
    n, total, squares = r["m_n"], r["m_sum"], r["m_sq"]
    if n == 0:
        return 0.0, 0.0
    mean = total / n
    var = (squares - n * mean * mean) / (n - 1) if n > 1 else 0.0
    return mean, max(var, 0.0)


def _fixed_test(
    metric: Metric, base: dict[str, Any], r: dict[str, Any]
) -> tuple[float, float] | None:
    if metric.kind == "proportion":
        return two_proportion_z_test(round(base["m_sum"]), base["m_n"], round(r["m_sum"]), r["m_n"])
    (ma, va), (mb, vb) = _moments(base), _moments(r)
    welch = welch_t_test(ma, va, base["m_n"], mb, vb, r["m_n"])
    return None if welch is None else (welch[0], welch[2])


def _sequential(
    metric: Metric, base: dict[str, Any], r: dict[str, Any], alpha: float
) -> tuple[float, bool] | None:
    na, nb = base["m_n"], r["m_n"]
    if na < 2 or nb < 2:
        return None
    (ma, va), (mb, vb) = _moments(base), _moments(r)
    if metric.kind == "proportion":
        pooled = (base["m_sum"] + r["m_sum"]) / (na + nb)
        unit = pooled * (1.0 - pooled)
        variance = unit * (1.0 / na + 1.0 / nb)
    else:
        unit = (va + vb) / 2.0
        variance = va / na + vb / nb
    return mixture_sprt(mb - ma, variance, TAU2_FRACTION * unit, alpha)


def _direction(metric: Metric, difference: float) -> ABDirection:
    up = difference > 0 if metric.higher_is_better else difference < 0
    return ABDirection.BETTER if up else ABDirection.WORSE


def _judge(
    metric: Metric,
    base: dict[str, Any],
    challenger: dict[str, Any],
    confidence: float,
    min_samples: int,
) -> ABVerdict:
    alpha = 1.0 - confidence
    test = _fixed_test(metric, base, challenger)
    sequential = _sequential(metric, base, challenger, alpha)
    difference = _moments(challenger)[0] - _moments(base)[0]
    few = min(challenger["m_n"], base["m_n"]) < min_samples
    if few or test is None:
        direction = ABDirection.INSUFFICIENT_DATA
    elif test[1] < alpha:
        direction = _direction(metric, difference)
    else:
        direction = ABDirection.NO_DIFFERENCE
    if few or sequential is None:
        seq_direction = ABDirection.INSUFFICIENT_DATA
    elif sequential[1]:
        seq_direction = _direction(metric, difference)
    else:
        seq_direction = ABDirection.NO_DIFFERENCE
    return ABVerdict(
        baseline=base["label"],
        challenger=challenger["label"],
        direction=direction,
        metric="success_rate" if metric.name == "success" else f"mean_{metric.name}",
        difference=difference,
        z=None if test is None else test[0],
        p_value=None if test is None else test[1],
        confidence=confidence,
        min_samples=min_samples,
        baseline_executions=base["m_n"],
        challenger_executions=challenger["m_n"],
        test="two-proportion z" if metric.kind == "proportion" else "Welch t",
        sequential_p_value=None if sequential is None else sequential[0],
        sequential_direction=seq_direction,
    )


def _match(rows: list[dict[str, Any]], wanted: str) -> list[dict[str, Any]]:
    matches = [r for r in rows if wanted == r["label"]]
    return matches or [r for r in rows if wanted in (r["version"], r["ab_group"])]


def _registered_control(engine: Any, template: str, rows: list[dict[str, Any]]) -> Any:
    """The variant of the earliest ``prompt_templates`` row of ``template`` (the first
    version registered or pushed), or ``None``.

    Rows stored with a text (``register_template(text=...)``, a pushed prompt) come before
    rows the SQL sink added on first use, which only record the first variant seen."""
    from sqlalchemy import inspect, select

    from ..sinks.sql.schema import prompt_templates

    if not inspect(engine).has_table("prompt_templates"):
        return None
    t = prompt_templates.c
    query = (
        select(t.version, t.ab_test_group)
        .where(t.name == template)
        .order_by(t.template_text.is_(None), t.created_at, t.id)
    )
    with engine.connect() as conn:
        for version, group in conn.execute(query):
            exact = [r for r in rows if (r["version"], r["ab_group"]) == (version, group)]
            loose = [r for r in rows if version is not None and r["version"] == version]
            found = exact or loose
            if len(found) == 1:
                return found[0]
    return None


def _rollout_control(engine: Any, template: str, rows: list[dict[str, Any]]) -> Any:
    """The variant of the control version that ``prompts.rollout(..., control=)`` declared
    for ``template`` (served as group ``control``), or ``None``."""
    from sqlalchemy import inspect, select

    from ..sinks.sql.schema import prompt_deployments

    if not inspect(engine).has_table("prompt_deployments"):
        return None
    d = prompt_deployments.c
    with engine.connect() as conn:
        version = conn.execute(select(d.control).where(d.name == template)).scalar()
    if version is None:
        return None
    for found in (
        [r for r in rows if (r["version"], r["ab_group"]) == (version, "control")],
        [r for r in rows if r["version"] == version],
    ):
        if len(found) == 1:
            return found[0]
    return None


def _pick_control(
    engine: Any, template: str, rows: list[dict[str, Any]], control: str | None
) -> tuple[dict[str, Any], str]:
    if control is not None:
        matches = _match(rows, control)
        if len(matches) != 1:
            known = ", ".join(sorted(r["label"] for r in rows))
            reason = "is ambiguous" if matches else "matches no variant"
            raise ConfigurationError(f"control {control!r} {reason} (variants: {known})")
        return matches[0], "declared"
    declared = _rollout_control(engine, template, rows)
    if declared is not None:
        return declared, "rollout control"
    registered = _registered_control(engine, template, rows)
    if registered is not None:
        return registered, "first registered"
    # Never registered: the lowest version (not whichever happened to be seen first).
    return min(rows, key=lambda r: sort_key(r["version"], r["ab_group"])), "lowest version"


def compare_ab(
    source: StoreSource,
    template: str,
    *,
    since: TimeBound = None,
    until: TimeBound = None,
    control: str | None = None,
    metric: str = "success",
    include_infra_errors: bool = False,
    baseline: str | None = None,
    confidence: float = 0.95,
    min_samples: int = MIN_SAMPLES,
) -> ABComparison:
    """Compare the variants (version / A/B group) of ``template`` against the control, on
    one metric, with an interval per variant, the fixed-horizon test that fits the metric
    and an always-valid sequential verdict.

    Args:
        source: database URL or SQLAlchemy Engine.
        template: the template key.
        since, until: the time window (``since`` inclusive, ``until`` exclusive).
        control: the variant the others are tested against, by label (``"v3/A"``),
            version or group. Default: the control of the key's rollout
            (``prompts.rollout(..., control=)``, ``control_source`` ``"rollout
            control"``), else the first version registered or pushed (the earliest
            ``prompt_templates`` row of the key), else, for a template never registered,
            the lowest version. Never "the first seen in executions".
        metric: ``"success"`` (rate: Wilson interval, two-proportion z-test),
            ``"cost"`` (mean USD per priced call) or ``"latency"`` (mean ms): t interval,
            Welch t-test. For cost and latency lower is better. ``"score:NAME"``
            (``"score:NAME@SOURCE"`` for a source other than ``user``): the mean of a
            numeric or boolean score (:func:`vividly_trace.score`; a boolean as 1 / 0)
            over the executions that have it, t interval, Welch t-test, higher is better.
        include_infra_errors: count infrastructure failures (HTTP 408, 429, 5xx,
            timeouts, cancellations; see :mod:`vividly_trace.analytics._metrics`) in the
            success rate. Default ``False``: they are left out, so an outage does not
            decide an experiment.
        baseline: the former name of ``control`` (still accepted).
        confidence: confidence level of the intervals and the tests (default 0.95).
        min_samples: values a variant (and the control) needs before a verdict
            (default 30).

    Returns:
        An :class:`ABComparison` whose ``variants`` start with the control, then the
        others by label. Each challenger's :class:`ABVerdict` carries the fixed-horizon
        verdict (``direction``, valid only if read once, at a horizon fixed in advance)
        and the sequential one (``sequential_direction``: a normal-mixture SPRT, valid
        however often it is checked).

    Raises:
        StoreError: the store cannot be used. ConfigurationError: bad arguments (also an
        unknown control or metric).

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.3.0 ``control``, ``metric``, ``include_infra_errors``, the
       sequential verdict; the default baseline is the first registered version.
    .. versionchanged:: 0.4.0 ``metric="score:NAME"``.
    """
    from sqlalchemy import case, func, select

    z_for_confidence(confidence)  # validates
    if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 1:
        raise ConfigurationError(f"min_samples must be a positive int, got {min_samples!r}")
    if not isinstance(template, str) or not template:
        raise ConfigurationError(f"template must be a non-empty string, got {template!r}")
    if control is not None and baseline is not None and control != baseline:
        raise ConfigurationError("give control= or baseline= (its former name), not both")
    control = control if control is not None else baseline
    chosen = resolve_metric(metric, include_infra_errors=include_infra_errors)
    e = executions_table().c
    with open_store(source) as engine:
        keys = [e.template_version, e.template_ab_test_group]
        window = window_conditions(engine, since, until, template)
        query = (
            select(
                *keys,
                func.count().label("n"),
                func.sum(case((e.success.is_(True), 1), else_=0)).label("ok"),
                func.sum(case((infra_error_condition(), 1), else_=0)).label("infra"),
                func.count(e.cost_usd).label("priced"),
                cost_sum(engine).label("cost"),
                func.min(e.executed_at).label("first_seen"),
            )
            .where(*window)
            .group_by(*keys)
        )
        value = chosen.value()
        metric_query = (
            select(
                *keys,
                func.count().label("m_n"),
                func.sum(value).label("m_sum"),
                func.sum(value * value).label("m_sq"),
            )
            .where(*window, *chosen.conditions())
            .group_by(*keys)
        )
        if chosen.source is not None:
            metric_query = metric_query.select_from(chosen.source())
        with engine.connect() as conn:
            rows = [
                {
                    "version": r.template_version,
                    "ab_group": r.template_ab_test_group,
                    "label": variant_label(r.template_version, r.template_ab_test_group),
                    "n": int(r.n),
                    "ok": int(r.ok),
                    "infra": int(r.infra or 0),
                    "priced": int(r.priced),
                    "cost": cost_value(engine, r.cost),
                    "first_seen": as_time(r.first_seen),
                    "m_n": 0,
                    "m_sum": 0.0,
                    "m_sq": 0.0,
                }
                for r in conn.execute(query)
            ]
            by_key = {(r["version"], r["ab_group"]): r for r in rows}
            for m in conn.execute(metric_query):
                row = by_key[(m.template_version, m.template_ab_test_group)]
                row.update(m_n=int(m.m_n), m_sum=float(m.m_sum or 0.0), m_sq=float(m.m_sq or 0.0))
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
                metric=chosen.name,
                include_infra_errors=include_infra_errors,
            )
        base, how = _pick_control(engine, template, rows, control)
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
        outcome = None if is_base else _judge(chosen, base, r, confidence, min_samples)
        success = wilson_interval(r["ok"], r["n"], confidence)
        mean, var = _moments(r)
        if chosen.kind == "proportion":
            ci = wilson_interval(round(r["m_sum"]), r["m_n"], confidence)
        else:
            ci = t_interval(mean, var, r["m_n"], confidence)
        variants.append(
            ABVariant(
                label=r["label"],
                version=r["version"],
                ab_group=r["ab_group"],
                executions=r["n"],
                successes=r["ok"],
                success_rate=r["ok"] / r["n"],
                ci_low=success[0] if success else None,
                ci_high=success[1] if success else None,
                mean_latency_ms=lat.mean_ms,
                p95_latency_ms=lat.p95_ms,
                total_cost_usd=r["cost"],
                priced_executions=r["priced"],
                mean_cost_usd=r["cost"] / r["priced"] if r["priced"] else None,
                cost_per_success_usd=r["cost"] / r["ok"] if r["ok"] and r["priced"] else None,
                first_seen=r["first_seen"],
                is_baseline=is_base,
                difference=None if outcome is None else outcome.difference,
                z=None if outcome is None else outcome.z,
                p_value=None if outcome is None else outcome.p_value,
                verdict="baseline" if outcome is None else outcome.text,
                outcome=outcome,
                metric_executions=r["m_n"],
                metric_value=mean if r["m_n"] else None,
                metric_ci_low=ci[0] if ci else None,
                metric_ci_high=ci[1] if ci else None,
                infra_errors=r["infra"],
            )
        )
    return ABComparison(
        template=template,
        baseline=base["label"],
        confidence=confidence,
        min_samples=min_samples,
        variants=variants,
        summary=_summary(template, chosen, variants),
        metric=chosen.name,
        include_infra_errors=include_infra_errors,
        control_source=how,
    )


def _value(metric: Metric, value: float | None) -> str:
    if value is None:
        return "n/a"
    if metric.kind == "proportion":
        return _pct(value)
    if not metric.unit:  # a score
        return f"{value:.3g}"
    return f"${value:.6f}" if metric.unit == "USD" else f"{value:.1f} {metric.unit}"


def _summary(template: str, metric: Metric, variants: list[ABVariant]) -> str:
    base = variants[0]
    if len(variants) == 1:
        return f"{template}: only one variant ({base.label}), nothing to compare"
    lines = []
    for v in variants[1:]:
        assert v.outcome is not None
        line = (
            f"{template}: {v.label} vs control {base.label} on {metric.name}: {v.verdict}; "
            f"{_value(metric, v.metric_value)} vs {_value(metric, base.metric_value)}"
        )
        if v.p_value is not None:
            line += f", p={v.p_value:.3g}"
        line += f"; sequential: {v.outcome.sequential_text}"
        if v.outcome.sequential_p_value is not None:
            line += f" (p={v.outcome.sequential_p_value:.3g})"
        if (
            metric.name == "success"
            and v.cost_per_success_usd is not None
            and (base.cost_per_success_usd)
        ):
            change = v.cost_per_success_usd / base.cost_per_success_usd - 1
            line += (
                f"; cost per success {_money(v.cost_per_success_usd)} vs "
                f"{_money(base.cost_per_success_usd)} ({change * 100:+.0f}%)"
            )
        lines.append(line)
    return "\n".join(lines)
