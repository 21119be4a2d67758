"""A ranking of Query LLMs or Query Models (``qllm top``, ``qllm list --format table``):
one row each, led by what people know them by, with their totals over a window.

A `tables.Table`, like the dashboard's tables, so that its CSV is the dashboard's CSV
(every value exact, formula-like cells made inert) and the terminal shows it with
`registry.render.text.grid`. The bodies come from library calls (`get` with metadata).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from registry.query import MEASURES, measure
from registry.render import labels
from registry.render.dashboard import USAGE_COLUMNS, usage_cells
from registry.render.tables import Cell, Column, Table

SHOWN = ("requests", "tokens", "cost")  # the usage columns of every ranking


def table(
    bodies: Sequence[Mapping[str, Any]],
    *,
    models: bool,
    by: str | None = None,
    first: int = 1,
    total: Decimal | int | None = None,
    created: bool = False,
) -> Table:
    """Rows numbered from ``first``; ``by``: a measure shown too when it is not among
    `SHOWN`; ``total``: the window's total of ``by``, of which each row's share is shown;
    ``created``: when each was registered."""
    extra = [by] if by is not None and by not in SHOWN else []
    lead = (
        [Column("members"), Column("weight", "tag")]
        if models
        else [Column("id"), Column("mode", "tag")]
    )
    columns = [
        Column("rank", "count"),
        *lead,
        Column("name", "name"),
        *([Column("created")] if created else []),
        *USAGE_COLUMNS,
        *(Column(m, "cost" if m == "cost" else "count") for m in extra),
        *([Column("share", "share")] if total is not None else []),
    ]
    rows = []
    for rank, body in enumerate(bodies, start=first):
        who = (
            [Cell(labels.members(body)), Cell(labels.weight(body))]
            if models
            else [Cell(body.get("id", "")), Cell(body.get("mode", ""))]
        )
        rows.append(
            [
                Cell(rank),
                *who,
                Cell(body["name"], text=labels.short(body["name"])),
                *([Cell(body["created"])] if created else []),
                *usage_cells(body),
                *(Cell(measure(body, m)) for m in extra),
                *([Cell(share(measure(body, by or "cost"), total))] if total is not None else []),
            ]
        )
    kind = "query-models" if models else "query-llms"
    return Table(kind, columns, rows, empty="no usage", names=[b["name"] for b in bodies])


def share(value: Decimal | int, total: Decimal | int) -> Decimal:
    """``value``'s part of ``total`` as a fraction rounded to four decimals (0 of 0 is 0)."""
    if not total:
        return Decimal(0)
    return (Decimal(value) / Decimal(total)).quantize(Decimal("0.0001"))


def objects(table: Table) -> list[dict[str, Any]]:
    """The rows as JSON objects keyed by column, every value exact (``name`` in full)."""
    return [
        {column.title: cell.value for column, cell in zip(table.columns, row, strict=True)}
        for row in table.rows
    ]


assert set(SHOWN) <= set(MEASURES)
