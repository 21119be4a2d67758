"""A table of the dashboard, as HTML and as the CSV file a link on it downloads.

One `Table` is both: the page shows it (numbers rounded for reading, aligned on the
decimal point, the exact value in the cell's title and ``data-value``), and its CSV
holds the same rows and columns with every digit. The CSV travels inside the page as a
``data:`` URL on a ``download`` link: the page fetches nothing (its CSP allows no
connection), and a page written to a file by ``qllm usage series --format html`` works
the same. Every string is escaped for where it lands: HTML text, attributes, the URL,
and the CSV (a cell starting ``= + - @`` would be a formula in a spreadsheet).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from decimal import Decimal
from html import escape
from typing import Any
from urllib.parse import quote

from attrs import field, frozen

from registry.render import numbers

# A spreadsheet runs a cell starting with one of these as a formula (OWASP: CSV injection).
FORMULA = ("=", "+", "-", "@", "\t", "\r")
NUMBERS = ("count", "cost", "share")  # the kinds aligned to the right
MAX_FRACTION = 12  # the widest fraction (point and digits) the style sheet has a class for


@frozen
class Column:
    """``kind``: ``text`` (cut to one line, the full text on hover: a table's lead),
    ``tag`` (a short word, never cut), ``name`` (a hash, shown by its first characters),
    ``count`` (an integer), ``cost`` (a `Decimal`) or ``share`` (a fraction, shown as a
    percentage)."""

    title: str
    kind: str = "text"


@frozen
class Cell:
    """``value`` is exact: the CSV cell and the sort key. ``text`` is shown instead of it
    (a text column); ``href`` makes it a link; ``swatch`` puts a group's colour before it."""

    value: Any
    text: str | None = None
    href: str | None = None
    swatch: int | None = None


@frozen
class Table:
    id: str
    columns: Sequence[Column]
    rows: Sequence[Sequence[Cell]] = field(factory=list)
    empty: str = "none"  # said in the one row of an empty table
    # The name of what each row is about (a Query LLM's...), as ``data-name`` on its row.
    names: Sequence[str] = ()


def exact(value: Any) -> str:
    """A cell's exact text: the CSV's, and the ``data-value`` the sorting script reads."""
    if value is None:
        return ""
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        return numbers.exact(value)
    return str(value)


def html(table: Table) -> str:
    """The table in a box that scrolls sideways on its own, with a CSV link above it."""
    fractions = [_fraction_width(table, i) for i in range(len(table.columns))]
    head = "".join(
        f'<th class="{c.kind}" data-type="{"num" if c.kind in NUMBERS else "text"}">'
        f'<button type="button">{escape(c.title)}</button></th>'
        for c in table.columns
    )
    names: list[str | None] = [*table.names] or [None] * len(table.rows)
    rows = [
        ("<tr>" if name is None else f'<tr data-name="{escape(name)}">')
        + "".join(
            _cell(column, cell, width)
            for column, cell, width in zip(table.columns, row, fractions, strict=True)
        )
        + "</tr>"
        for row, name in zip(table.rows, names, strict=True)
    ]
    body = "".join(rows) or (
        f'<tr class="empty"><td colspan="{len(table.columns)}">{escape(table.empty)}</td></tr>'
    )
    return (
        link(table, "this table") + f'<div class="scroll"><table id="{table.id}" class="sortable">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def link(table: Table, what: str) -> str:
    """A link that downloads ``table`` as CSV (``id`` ``TABLE-csv``, file ``TABLE.csv``)."""
    return (
        f'<p class="export"><a class="csv" id="{table.id}-csv" download="{table.id}.csv"'
        f' href="{escape(data_url(table))}">CSV of {escape(what)}</a></p>'
    )


def shown(column: Column, cell: Cell) -> str:
    """A cell as a person reads it: numbers rounded (`numbers.shown`), a share as a
    percentage, a text column's ``text`` when it has one."""
    if column.kind == "share":
        return numbers.percent(cell.value)
    if column.kind in NUMBERS:
        return numbers.shown(cell.value)
    return exact(cell.value) if cell.text is None else cell.text


def _fraction_width(table: Table, index: int) -> int:
    """The widest fraction (``.372``) shown in a cost column: every cell's fraction gets
    that width, so the points line up."""
    if table.columns[index].kind != "cost":
        return 0
    widths = [len(numbers.point(numbers.shown(row[index].value))[1]) for row in table.rows]
    return min(max(widths, default=0), MAX_FRACTION)


def _cell(column: Column, cell: Cell, fraction: int) -> str:
    value = exact(cell.value)
    attributes = f' data-value="{escape(value)}"'
    if column.kind in ("count", "share"):
        return f'<td class="num"{attributes}>{escape(shown(column, cell))}</td>'
    if column.kind == "cost":
        whole, part = numbers.point(numbers.shown(cell.value))
        return (
            f'<td class="num"{attributes} title="{escape(value)}">{escape(whole)}'
            f'<span class="f f{fraction}">{escape(part)}</span></td>'
        )
    text = value if cell.text is None else cell.text
    swatch = "" if cell.swatch is None else f'<i class="sw g{cell.swatch}"></i>'
    if column.kind == "name":
        inner = f'<code title="{escape(value)}">{escape(text)}</code>'
    elif cell.href is not None:
        inner = (
            f'<a class="cut" href="{escape(cell.href)}" title="{escape(value)}">{escape(text)}</a>'
        )
    else:
        inner = f'<span class="cut" title="{escape(value)}">{escape(text)}</span>'
    return f'<td class="{column.kind}"{attributes}>{swatch}{inner}</td>'


def csv_text(table: Table) -> str:
    """The table as CSV (RFC 4180, CRLF line ends), every value exact."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(_inert(c.title) for c in table.columns)
    for row in table.rows:
        writer.writerow(_inert(exact(cell.value)) for cell in row)
    return out.getvalue()


def _inert(text: str) -> str:
    """A cell a spreadsheet shows as text: one starting like a formula gets a ``'``."""
    return "'" + text if text.startswith(FORMULA) else text


def data_url(table: Table) -> str:
    """The CSV as a ``data:`` URL, every byte but the unreserved ones percent-encoded."""
    return "data:text/csv;charset=utf-8," + quote(csv_text(table), safe="")
