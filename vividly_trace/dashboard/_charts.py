"""Charts as geometry for inline SVG: the templates draw the shapes, so every label goes
through Jinja's autoescaping and nothing is fetched or run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = ["PALETTE", "Bar", "BarChart", "bar_chart"]

PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#76b7b2",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)

WIDTH = 900
HEIGHT = 260
LEFT = 80
BOTTOM = 40
TOP = 10


@dataclass(frozen=True)
class Bar:
    """One rectangle: position, size, colour and its tooltip text."""

    x: float
    y: float
    width: float
    height: float
    color: str
    title: str


@dataclass(frozen=True)
class BarChart:
    """A stacked bar chart: bars, x labels, y ticks and the legend."""

    width: int
    height: int
    bars: list[Bar] = field(default_factory=list)
    x_labels: list[tuple[float, str]] = field(default_factory=list)
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)
    empty: bool = True


def bar_chart(
    columns: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    *,
    label: Callable[[float], str] = str,
) -> BarChart:
    """Stacked bars: one column per entry of ``columns``, one stacked segment per series
    (``(name, values per column)``); ``label`` writes a value for the axis and tooltips."""
    totals = [sum(values[i] for _, values in series) for i in range(len(columns))]
    top = max(totals, default=0.0)
    if not columns or top <= 0:
        return BarChart(WIDTH, HEIGHT)
    plot_w = WIDTH - LEFT - 10
    plot_h = HEIGHT - TOP - BOTTOM
    step = plot_w / len(columns)
    bar_w = max(1.0, step * 0.7)
    colors = {name: PALETTE[i % len(PALETTE)] for i, (name, _) in enumerate(series)}
    bars: list[Bar] = []
    for i, column in enumerate(columns):
        base = 0.0
        for name, values in series:
            value = values[i]
            if value <= 0:
                continue
            h = value / top * plot_h
            y = TOP + plot_h - (base + h)
            bars.append(
                Bar(
                    x=round(LEFT + i * step + (step - bar_w) / 2, 2),
                    y=round(y, 2),
                    width=round(bar_w, 2),
                    height=round(h, 2),
                    color=colors[name],
                    title=f"{column} {name}: {label(value)}",
                )
            )
            base += h
    every = max(1, len(columns) // 12)
    x_labels = [
        (round(LEFT + i * step + step / 2, 2), c) for i, c in enumerate(columns) if i % every == 0
    ]
    y_ticks = [(round(TOP + plot_h - plot_h * k / 4, 2), label(top * k / 4)) for k in range(5)]
    return BarChart(
        WIDTH,
        HEIGHT,
        bars,
        x_labels,
        y_ticks,
        [(name, colors[name]) for name, _ in series],
        empty=False,
    )
