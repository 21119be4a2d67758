"""A usage series as text for a terminal: an aligned table, or a bar chart.

Pure functions of the ``data`` list that `Registry.usage_series` returns; the
command line only picks one and prints it. The chart draws one line per
bucket, bars stacked by group with a legend, in plain Unicode block
characters, so it reads the same in a terminal, a pipe or a log file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from registry import series as buckets
from registry import times
from registry.query import MEASURES, measure
from registry.render import numbers
from registry.render.labels import Labels, keys_of
from registry.render.labels import of as group_label
from registry.render.tables import NUMBERS, Table, shown

# What a chart can measure: every measure (`registry.query.MEASURES`).
METRICS = tuple(MEASURES)
# One fill per group, darkest first; groups past the last share it as "other".
FILLS = ("█", "▓", "▒", "░", "#", "=", "+", ":")
# On a colour terminal, one ANSI colour per fill instead (blue, yellow, green, red,
# magenta, cyan, bright blue; grey for the groups that share the last).
COLOURS = ("34", "33", "32", "31", "35", "36", "94", "90")
EIGHTHS = " ▏▎▍▌▋▊▉█"  # partial blocks, for a single series' bar ends


def label(row: dict[str, Any], keys: Sequence[str]) -> str:
    """A group's label from its keys' values alone (the table's cells)."""
    return group_label(row, keys, {})


def bucket_label(start: str, bucket: str) -> str:
    """A bucket's start as short text: 2026-11-01 13:00, 2026-11-01, 2026-11."""
    if bucket == "hour":
        return f"{start[:10]} {start[11:16]}"
    if bucket == "month":
        return start[:7]
    return start[:10]


def table(data: Sequence[dict[str, Any]], bucket: str) -> str:
    """An aligned text table: one line per bucket and group (an empty bucket: one line of
    0s). Every digit is shown (`numbers.exact`): this is the exact view; costs are
    aligned on their decimal point, counts on their last digit."""
    keys = keys_of(data)
    head = ["start", *keys, "requests", "prompt_tokens", "completion_tokens", "cost"]
    lines: list[list[str]] = []
    for b in data:
        start = bucket_label(b["start"], bucket)
        for row in b["results"] or [None]:
            if row is None:
                lines.append([start, *("" for _ in keys), "0", "0", "0", "0"])
                continue
            lines.append(
                [
                    start,
                    *(label(row, [k]) for k in keys),
                    f"{row['requests']:,}",
                    f"{measure(row, 'prompt_tokens'):,}",
                    f"{measure(row, 'completion_tokens'):,}",
                    numbers.exact(measure(row, "cost")),
                ]
            )
    costs = numbers.aligned([line[-1] for line in lines])
    lines = [head, *([*line[:-1], cost] for line, cost in zip(lines, costs, strict=True))]
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    numeric = range(1 + len(keys), len(head))
    out = []
    for line in lines:
        cells = [
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
            for i, cell in enumerate(line)
        ]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def grid(table: Table) -> str:
    """A `tables.Table` as aligned text for a terminal: numbers rounded for reading
    (`tables.shown`) and right-aligned, costs lined up on their decimal point, a hash by
    its first characters; the table's ``empty`` text when it has no rows."""
    columns = table.columns
    cells = [
        [shown(column, cell) for column, cell in zip(columns, row, strict=True)]
        for row in table.rows
    ]
    for i, column in enumerate(columns):
        if column.kind == "cost":
            for row, text in zip(cells, numbers.aligned([row[i] for row in cells]), strict=True):
                row[i] = text
    lines = [[c.title for c in columns], *cells]
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    out = [
        "  ".join(
            cell.rjust(widths[i]) if columns[i].kind in NUMBERS else cell.ljust(widths[i])
            for i, cell in enumerate(line)
        ).rstrip()
        for line in lines
    ]
    if not table.rows:
        out.append(f"({table.empty})")
    return "\n".join(out)


def use_colour(choice: str, is_terminal: bool, environ: Mapping[str, str]) -> bool:
    """Whether to colour: ``always``, ``never``, or (``auto``) on a terminal that shows
    colour, unless ``NO_COLOR`` is set to anything but the empty string (no-color.org: a
    user's explicit ``--color always`` still wins over it)."""
    if choice != "auto":
        return choice == "always"
    if environ.get("NO_COLOR", ""):
        return False
    return is_terminal and environ.get("TERM", "") not in ("", "dumb")


def _paint(text: str, colour: str | None) -> str:
    return f"\x1b[{colour}m{text}\x1b[0m" if colour and text else text


def partial_marks(data: Sequence[dict[str, Any]], bucket: str) -> list[bool]:
    """Which buckets the window clipped (`registry.series.is_partial`)."""
    return [
        buckets.is_partial(times.parse(b["start"]), times.parse(b["end"]), bucket) for b in data
    ]


def chart(
    data: Sequence[dict[str, Any]],
    bucket: str,
    metric: str,
    width: int,
    labels: Labels | None = None,
    colour: bool = False,
) -> str:
    """A horizontal bar chart, one line per bucket, ``width`` columns wide at most.

    ``labels`` names the groups (`registry.render.labels.gather`: a Query LLM by its id
    and mode, not its hash); ``colour`` draws each group in its own ANSI colour, in full
    blocks, instead of in shades. Values are rounded for reading (`numbers.shown`) and
    aligned on the decimal point; a bucket the window clipped is marked ``*``.
    """
    width = max(40, width)
    labels = labels or {}
    keys = keys_of(data)
    per_group: dict[str, Decimal | int] = {}
    for b in data:
        for row in b["results"]:
            name = group_label(row, keys, labels)
            per_group[name] = per_group.get(name, 0) + measure(row, metric)
    # The largest groups get their own fill; the rest share the last one.
    ranked = sorted(per_group, key=lambda g: (-per_group[g], g))
    own = ranked if len(ranked) <= len(FILLS) else ranked[: len(FILLS) - 1]
    slot: Callable[[str], int] = lambda g: own.index(g) if g in own else len(FILLS) - 1  # noqa: E731

    stacks: list[list[tuple[int, Decimal | int]]] = []
    for b in data:
        stack: dict[int, Decimal | int] = {}
        for row in b["results"]:
            at = slot(group_label(row, keys, labels))
            stack[at] = stack.get(at, 0) + measure(row, metric)
        stacks.append(sorted(stack.items()))
    zero: Decimal | int = Decimal(0) if metric == "cost" else 0
    totals = [sum((v for _, v in s), zero) for s in stacks]
    partial = partial_marks(data, bucket)
    marks = ["*" if p else " " for p in partial]
    texts = [bucket_label(b["start"], bucket) for b in data]
    values = numbers.aligned([numbers.shown(t) for t in totals])
    label_width = max((len(x) for x in texts), default=0)
    value_width = max((len(x) for x in values), default=1)
    bar_width = max(10, width - label_width - value_width - 5)
    top = max(totals, default=0)
    single = len(per_group) <= 1
    fills = ("█",) * len(FILLS) if colour else FILLS
    colours = COLOURS if colour else (None,) * len(FILLS)

    title = {"cost": "cost (credits)"}.get(metric, metric.replace("_", " "))
    if data:  # the window, [from, to), in UTC
        title += f" per {bucket}, {data[0]['start'][:16]} to {data[-1]['end'][:16]} UTC"
    lines = [title[:width]]
    for text, mark, value, pile, total in zip(texts, marks, values, stacks, totals, strict=True):
        drawn, length = _bar(pile, total, top, bar_width, single, fills, colours)
        lines.append(f"{text.ljust(label_width)}{mark}│{drawn}{' ' * (bar_width - length)} {value}")
    if not single or keys:
        lines.extend(_legend(keys, own, ranked, per_group, width, fills, colours))
    clipped = [(b, p) for b, p in zip(data, partial, strict=True) if p]
    if clipped:
        lines.append("")
        for b, _ in clipped:
            held = f"{b['start'][:10]} {b['start'][11:16]} to {b['end'][:10]} {b['end'][11:16]}"
            note = f"  * partial {bucket}: the window holds {held} of it"
            lines.append(note[:width])
    return "\n".join(line.rstrip() for line in lines)


def _legend(
    keys: Sequence[str],
    own: Sequence[str],
    ranked: Sequence[str],
    per_group: Mapping[str, Decimal | int],
    width: int,
    fills: Sequence[str],
    colours: Sequence[str | None],
) -> list[str]:
    """The groups with their fills and totals, largest first; the rest as "N others"."""
    lines = ["", f"  by {', '.join(keys)}:" if keys else ""]
    rows = [(own.index(g), g, per_group[g]) for g in own]
    if len(ranked) > len(own):
        rest = sum((per_group[g] for g in ranked[len(own) :]), Decimal(0))
        rows.append((len(FILLS) - 1, f"{len(ranked) - len(own)} others", rest))
    sums = numbers.aligned([numbers.shown(v) for _, _, v in rows])
    room = max(8, width - 4 - len(sums[0]) - 2) if sums else width
    names = [_cut(g, room) for _, g, _ in rows]
    name_width = max((len(n) for n in names), default=0)
    for (at, _, _), name, total in zip(rows, names, sums, strict=True):
        lines.append(f"  {_paint(fills[at], colours[at])} {name.ljust(name_width)}  {total}")
    return lines


def _cut(text: str, room: int) -> str:
    """``text`` in ``room`` columns at most, an ellipsis where it was cut."""
    return text if len(text) <= room else text[: room - 1] + "…"


def _bar(
    stack: list[tuple[int, Decimal | int]],
    total: Any,
    top: Any,
    width: int,
    single: bool,
    fills: Sequence[str],
    colours: Sequence[str | None],
) -> tuple[str, int]:
    """A bucket's bar and how many columns it takes (its colours take none)."""
    if not top or not total:
        return "", 0
    if single:  # one series: eighth blocks give the bar's end a finer step
        eighths = int(Decimal(total) * width * 8 / Decimal(top))
        bar = "█" * (eighths // 8) + (EIGHTHS[eighths % 8] if eighths % 8 else "")
        return _paint(bar, colours[0]), len(bar)
    out = []
    done = 0  # columns drawn so far; each segment ends at its rounded running total
    running = Decimal(0)
    for at, value in stack:
        running += Decimal(value)
        end = round(running * width / Decimal(top))
        out.append(_paint(fills[at] * (end - done), colours[at]))
        done = end
    return "".join(out), done
