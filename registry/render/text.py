"""A usage series as text for a terminal: an aligned table, or a bar chart.

Pure functions of the ``data`` list that `Registry.usage_series` returns; the
command line only picks one and prints it. The chart draws one line per
bucket, bars stacked by group with a legend, in plain Unicode block
characters, so it reads the same in a terminal, a pipe or a log file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from registry.model import AMOUNTS
from registry.query import measure

# What a chart can measure (`registry.query.MEASURES`).
METRICS = ("cost", "requests", "tokens")
# One fill per group, darkest first; groups past the last share it as "other".
FILLS = ("█", "▓", "▒", "░", "#", "=", "+", ":")
EIGHTHS = " ▏▎▍▌▋▊▉█"  # partial blocks, for a single series' bar ends
NONE_LABEL = {"user_id": "(no user)", "query_model": "(no Query Model)"}


def group_keys(data: Sequence[dict[str, Any]]) -> list[str]:
    """The group_by keys the results carry, in their order."""
    for bucket in data:
        for row in bucket["results"]:
            return [k for k in row if k not in ("requests", *AMOUNTS)]
    return []


def label(row: dict[str, Any], keys: Sequence[str]) -> str:
    """A group's label: its keys' values, a missing user or Query Model spelt out."""
    parts = [str(row[k]) if row[k] is not None else NONE_LABEL.get(k, "(none)") for k in keys]
    return " / ".join(parts) or "all"


def bucket_label(start: str, bucket: str) -> str:
    """A bucket's start as short text: 2026-11-01 13:00, 2026-11-01, 2026-11."""
    if bucket == "hour":
        return f"{start[:10]} {start[11:16]}"
    if bucket == "month":
        return start[:7]
    return start[:10]


def _number(value: Decimal | int) -> str:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value else "0"
    return f"{value:,}"


def table(data: Sequence[dict[str, Any]], bucket: str) -> str:
    """An aligned text table: one line per bucket and group (an empty bucket: one line of 0s)."""
    keys = group_keys(data)
    head = ["start", *keys, "requests", "prompt_tokens", "completion_tokens", "cost"]
    lines: list[list[str]] = [head]
    for b in data:
        rows = b["results"] or [None]
        for row in rows:
            start = bucket_label(b["start"], bucket)
            if row is None:
                lines.append([start, *("" for _ in keys), "0", "0", "0", "0"])
                continue
            lines.append(
                [
                    start,
                    *(label(row, [k]) for k in keys),
                    _number(row["requests"]),
                    _number(measure(row, "prompt_tokens")),
                    _number(measure(row, "completion_tokens")),
                    _number(measure(row, "cost")),
                ]
            )
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


def chart(data: Sequence[dict[str, Any]], bucket: str, metric: str, width: int) -> str:
    """A horizontal bar chart, one line per bucket, ``width`` columns wide at most."""
    width = max(40, width)
    keys = group_keys(data)
    per_group: dict[str, Decimal | int] = {}
    for b in data:
        for row in b["results"]:
            name = label(row, keys)
            per_group[name] = per_group.get(name, 0) + measure(row, metric)
    # The largest groups get their own fill; the rest share the last one.
    ranked = sorted(per_group, key=lambda g: (-per_group[g], g))
    own = ranked if len(ranked) <= len(FILLS) else ranked[: len(FILLS) - 1]
    fill_of: Callable[[str], str] = lambda g: FILLS[own.index(g)] if g in own else FILLS[-1]  # noqa: E731

    stacks: list[list[tuple[str, Decimal | int]]] = []
    for b in data:
        stack: dict[str, Decimal | int] = {}
        for row in b["results"]:
            fill = fill_of(label(row, keys))
            stack[fill] = stack.get(fill, 0) + measure(row, metric)
        stacks.append(sorted(stack.items(), key=lambda item: FILLS.index(item[0])))
    totals = [sum((v for _, v in s), Decimal(0) if metric == "cost" else 0) for s in stacks]
    labels = [bucket_label(b["start"], bucket) for b in data]
    values = [_number(t) for t in totals]
    label_width = max((len(x) for x in labels), default=0)
    value_width = max((len(x) for x in values), default=1)
    bar_width = max(10, width - label_width - value_width - 4)
    top = max(totals, default=0)
    single = len(per_group) <= 1

    title = {"cost": "cost (credits)", "requests": "requests", "tokens": "tokens"}[metric]
    if data:  # the window, [from, to), in UTC
        title += f" per {bucket}, {data[0]['start'][:16]} to {data[-1]['end'][:16]} UTC"
    lines = [title[:width]]
    for text, value, pile, total in zip(labels, values, stacks, totals, strict=True):
        bar = _bar(pile, total, top, bar_width, single)
        lines.append(
            f"{text.ljust(label_width)} │{bar.ljust(bar_width)} {value.rjust(value_width)}"
        )
    if not single or keys:
        lines.append("")
        lines.append(f"  by {', '.join(keys)}:" if keys else "")
        for group in own:
            lines.append(f"  {fill_of(group)} {group}"[:width])
        if len(ranked) > len(own):
            lines.append(f"  {FILLS[-1]} {len(ranked) - len(own)} others")
    return "\n".join(lines)


def _bar(
    stack: list[tuple[str, Decimal | int]], total: Any, top: Any, width: int, single: bool
) -> str:
    if not top or not total:
        return ""
    if single:  # one series: eighth blocks give the bar's end a finer step
        eighths = int(Decimal(total) * width * 8 / Decimal(top))
        return "█" * (eighths // 8) + (EIGHTHS[eighths % 8] if eighths % 8 else "")
    out = []
    done = 0  # columns drawn so far; each segment ends at its rounded running total
    running = Decimal(0)
    for fill, value in stack:
        running += Decimal(value)
        end = round(running * width / Decimal(top))
        out.append(fill * (end - done))
        done = end
    return "".join(out)
