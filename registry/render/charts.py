"""Stacked bar charts of a usage series, as inline SVG drawn on the server.

One bar per bucket, one segment per group (its colour from `Slots`), a y axis with
round ticks and gridlines, dates under the bars, and each bucket's values on hover
(an SVG ``<title>``, which browsers show as a tooltip: no script needed).

The chart scales with the page without squashing its text: the SVGs have no
``viewBox``, so a unit is a CSS pixel and text keeps its size; the bars are placed in
percentages of the width, and heights in pixels. Which dates are written depends on the
room: every label carries the classes of the widths it fits (``t0`` ... ``t4``) and the
style sheet shows, in a container query, only those of the chart's own width.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from html import escape
from typing import Any

from attrs import frozen

from registry import series as buckets
from registry import times
from registry.query import measure
from registry.render import numbers
from registry.render.labels import Labels, keys_of
from registry.render.labels import of as group_label

PLOT_HEIGHT = 200  # pixels of bars
TOP, BOTTOM = 8, 24  # room above the highest tick, and below the bars for the dates
AXIS_WIDTH = 60  # the y axis' own SVG, left of the bars
COLOURS = 8  # groups with a colour of their own; the rest share the grey of "others"
OTHERS = COLOURS  # their slot
# Chart widths (the container's, in CSS pixels) from which a tier's labels are shown;
# ``room`` is the width the bars have there at the least.
TIERS = ((0, 300), (420, 360), (600, 540), (800, 740), (1000, 940))
CHAR = 7.0  # pixels per character of a 12px label, a little over the average
UNITS = {"cost": "credits", "requests": "requests", "tokens": "tokens"}
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@frozen
class Slots:
    """Which colour each group gets, the same in every chart and legend of a page: the
    largest groups by cost (then by requests, then by label) first."""

    order: Sequence[str]

    @classmethod
    def of(cls, data: Sequence[Mapping[str, Any]], labels: Labels) -> Slots:
        keys = keys_of(data)
        totals: dict[str, tuple[Decimal, int]] = {}
        for b in data:
            for row in b["results"]:
                name = group_label(row, keys, labels)
                cost, requests = totals.get(name, (Decimal(0), 0))
                totals[name] = (cost + Decimal(measure(row, "cost")), requests + row["requests"])
        ranked = sorted(totals, key=lambda g: (-totals[g][0], -totals[g][1], g))
        return cls(ranked)

    def of_group(self, group: str) -> int:
        at = self.order.index(group) if group in self.order else OTHERS
        return min(at, OTHERS)


def ticks(top: Decimal | int, whole: bool) -> list[Decimal]:
    """Round gridline values from 0 past ``top``: about four steps of 1, 2, 2.5 or 5
    times a power of ten (whole numbers only, for counts)."""
    if top <= 0:
        return [Decimal(0), Decimal(1)]
    raw = Decimal(top) / 4
    base = Decimal(1).scaleb(raw.adjusted())
    step = base * 10
    for factor in ("1", "2", "2.5", "5", "10"):
        candidate = base * Decimal(factor)
        if candidate >= raw and (not whole or candidate == candidate.to_integral_value()):
            step = candidate
            break
    if whole:
        step = max(step, Decimal(1))
    count = math.ceil(Decimal(top) / step)
    return [step * i for i in range(count + 1)]


def date_label(start: str, bucket: str) -> str:
    """A bucket's start as people write dates: ``1 Nov``, ``13:00``, ``Nov 2026``."""
    moment = buckets.parse_rendered(start)
    if bucket == "month":
        return f"{MONTHS[moment.month - 1]} {moment.year}"
    day = f"{moment.day} {MONTHS[moment.month - 1]}"
    if bucket == "hour" and (moment.hour or moment.minute):
        return f"{moment.hour:02}:{moment.minute:02}"
    return day


def full_date(text: str, bucket: str) -> str:
    """A bucket bound for a tooltip: ``1 Nov 2026`` or ``1 Nov 2026 13:00``."""
    moment: datetime = buckets.parse_rendered(text)
    day = f"{moment.day} {MONTHS[moment.month - 1]} {moment.year}"
    if bucket == "hour" or moment.hour or moment.minute or moment.second:
        day += f" {moment.hour:02}:{moment.minute:02}"
    return day


def _tiers(labels: Sequence[str]) -> list[int]:
    """For each tier, every how many buckets a date is written so that none overlap."""
    count = max(len(labels), 1)
    widest = max((len(x) for x in labels), default=1) * CHAR + 10
    steps = []
    for _, room in TIERS:
        step = 1
        while math.ceil(count / step) * widest > room:
            step += 1
        steps.append(step)
    return steps


def stacked(
    kind: str,
    data: Sequence[Mapping[str, Any]],
    bucket: str,
    labels: Labels,
    slots: Slots,
) -> str:
    """The chart of measure ``kind`` (``cost``, ``requests``, ``tokens``) as HTML: a
    ``<figure id="chart-KIND">`` holding the y axis and the bars."""
    keys = keys_of(data)
    whole = kind != "cost"
    zero: Decimal | int = 0 if whole else Decimal(0)
    totals = [sum((measure(r, kind) for r in b["results"]), zero) for b in data]
    marks = ticks(max(totals, default=zero), whole)
    top = marks[-1]
    scale = Decimal(PLOT_HEIGHT) / top
    base = TOP + PLOT_HEIGHT
    height = base + BOTTOM
    count = max(len(data), 1)
    step = 100 / count  # percent of the width per bucket

    def y_of(value: Decimal | int) -> float:
        return float(base - Decimal(value) * scale)

    axis = [
        f'<text x="{AXIS_WIDTH - 6}" y="{y_of(m) + 4:.2f}" class="tick">'
        f"{escape(numbers.shown(m if not whole else int(m)))}</text>"
        for m in marks
    ]
    grid = [
        f'<line x1="0" x2="100%" y1="{y_of(m):.2f}" y2="{y_of(m):.2f}"'
        f' class="{"base" if not m else "grid"}"/>'
        for m in marks
    ]
    unit = UNITS[kind]
    bars: list[str] = []
    dates = [date_label(b["start"], bucket) for b in data]
    steps = _tiers(dates)
    texts: list[str] = []
    for i, (b, total) in enumerate(zip(data, totals, strict=True)):
        partial = buckets.is_partial(times.parse(b["start"]), times.parse(b["end"]), bucket)
        x = i * step
        segments: list[str] = []
        lines = [
            f"{full_date(b['start'], bucket)} to {full_date(b['end'], bucket)}"
            + (f" (partial {bucket})" if partial else ""),
            f"total: {numbers.exact(total)} {unit}",
        ]
        running: Decimal | int = zero
        rows = sorted(
            b["results"],
            key=lambda r: (
                slots.of_group(group_label(r, keys, labels)),
                group_label(r, keys, labels),
            ),
        )
        for row in rows:
            value = measure(row, kind)
            group = group_label(row, keys, labels)
            if keys:
                lines.append(f"{group}: {numbers.exact(value)}")
            if not value:
                continue
            y_top, y_bottom = y_of(running + value), y_of(running)
            running += value
            segments.append(
                f'<rect class="s g{slots.of_group(group)}" x="{x + step * 0.1:.4f}%"'
                f' width="{step * 0.8:.4f}%" y="{y_top:.2f}" height="{y_bottom - y_top:.2f}"'
                f' data-group="{escape(group)}" data-value="{escape(numbers.exact(value))}"/>'
            )
        tooltip = "\n".join(lines)
        bars.append(
            f'<g class="bucket{" partial" if partial else ""}"'
            f' data-start="{escape(b["start"])}" data-end="{escape(b["end"])}"'
            f' data-total="{escape(numbers.exact(total))}"><title>{escape(tooltip)}</title>'
            f'<rect class="hit" x="{x:.4f}%" width="{step:.4f}%" y="0" height="{base}"/>'
            + "".join(segments)
            + "</g>"
        )
        shown_in = " ".join(f"t{t}" for t, every in enumerate(steps) if i % every == 0)
        if shown_in:
            texts.append(
                f'<text class="date {shown_in}" x="{x + step / 2:.4f}%" y="{base + 16}">'
                f"{escape(dates[i])}{'*' if partial else ''}</text>"
            )
    empty = (
        "" if data else f'<text x="50%" y="{base / 2}" class="none">no buckets in the window</text>'
    )
    return (
        f'<figure class="chart" id="chart-{kind}" data-top="{escape(numbers.exact(top))}">'
        f'<div class="row"><svg class="axis" width="{AXIS_WIDTH}" height="{height}"'
        f' xmlns="http://www.w3.org/2000/svg" aria-hidden="true">{"".join(axis)}</svg>'
        f'<svg class="plot" height="{height}" xmlns="http://www.w3.org/2000/svg" role="img"'
        f' aria-label="{escape(unit)} per {escape(bucket)}">'
        + "".join(grid)
        + "".join(bars)
        + "".join(texts)
        + empty
        + "</svg></div></figure>"
    )
