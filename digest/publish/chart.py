"""The paper page's chart: upvotes over time, or rank over time when upvotes are unknown (real
page captures have none). Pure: sightings in, SVG coordinates and labels out; no scripts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from digest.models import Sighting

WIDTH, HEIGHT = 600, 200
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 16, 36  # room for the axis labels


@dataclass(frozen=True, slots=True)
class Point:
    x: float
    y: float
    value: int
    date: str  # `03-12`, under the x axis


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    points: tuple[Point, ...]
    polyline: str
    y_label: str  # `Upvotes` or `Rank (1 = top)`
    label: str  # what a screen reader says
    plot: tuple[float, float, float, float]  # left, top, right, bottom of the plot area


def history_chart(sightings: Sequence[Sighting]) -> Chart | None:
    """Upvotes over the sightings that have them (two or more), else rank over all of them
    (1 at the top); None when there are fewer than two points."""
    known = [s for s in sightings if s.upvotes is not None]
    by_upvotes = len(known) >= 2
    shown = known if by_upvotes else list(sightings)
    if len(shown) < 2:
        return None
    values = [(s.upvotes or 0) if by_upvotes else s.rank for s in shown]
    low, high = min(values), max(values)
    span = (high - low) or 1
    right, bottom = WIDTH - RIGHT, HEIGHT - BOTTOM
    step = (right - LEFT) / (len(values) - 1)

    def y(value: int) -> float:
        share = (value - low) / span
        if not by_upvotes:
            share = 1 - share  # rank 1 is the top of the page, so the top of the chart
        return bottom - share * (bottom - TOP)

    points = tuple(Point(round(LEFT + i * step, 1), round(y(v), 1), v, f"{s.captured_at:%m-%d}")
                   for i, (v, s) in enumerate(zip(values, shown, strict=True)))
    label = (f"Upvotes over {len(values)} sightings (max {high})" if by_upvotes
             else f"Rank over {len(values)} sightings (best {low}, latest {values[-1]})")
    return Chart(width=WIDTH, height=HEIGHT, points=points,
                 polyline=" ".join(f"{p.x},{p.y}" for p in points),
                 y_label="Upvotes" if by_upvotes else "Rank (1 = top)", label=label,
                 plot=(LEFT, TOP, right, bottom))
