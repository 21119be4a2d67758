"""The dashboard at ``GET /``: one self-contained HTML page of a registry's usage.

`gather` asks the library (`RegistryApi`) for what the page shows; `render` is a pure
function of that to HTML, and `data` the same as JSON. The page: a summary of the
window, stacked bar charts of cost and requests per bucket (`registry.render.charts`),
a legend that is also the table of who spent what when the chart is stacked by a group,
and the Query LLMs and Query Models with their totals, each linked to its own page
(`registry.render.items`). Every table has its CSV (`registry.render.tables`).

The query (USAGE_SERIES.md's fields: ``from``, ``to``, ``bucket``, ``group_by``,
``name``, ``query_model``, ``me``) filters everything on the page alike; a bad one is
shown back in the form beside its problems (`registry.render.window`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from attrs import frozen

from registry import series as buckets
from registry import times
from registry.api import RegistryApi
from registry.errors import NotFoundError
from registry.query import measure
from registry.render import charts, labels, numbers, tables, window
from registry.render.page import GROUP_NAMES, Form, document, form, window_query
from registry.render.tables import Cell, Column, Table
from registry.render.window import Query

MAX_ROWS = 1000  # Query LLMs (and Query Models) listed, largest cost over the window first
KINDS = ("cost", "requests")  # the charts, in this order


@frozen
class Dashboard:
    """What the page shows: the query as typed and as answered, the problems of the
    typed one, the series, the labels of its groups, and the two tables' rows (response
    bodies with their counters over the window)."""

    form: Form
    query: Query
    errors: Sequence[tuple[str, str]]
    series: Sequence[Mapping[str, Any]]
    labels: labels.Labels
    llms: Sequence[Mapping[str, Any]]
    models: Sequence[Mapping[str, Any]]


def gather(registry: RegistryApi, typed: Form | None = None, token: str | None = None) -> Dashboard:
    """The dashboard's data from ``registry``: by default everyone's usage over the last
    30 days, as the API shows it without a token."""
    typed = typed or Form()
    query, series, errors = window.resolve(registry, typed, token)
    at: dict[str, Any] = {
        "start": query.start,
        "end": query.end,
        "me": query.me,
        "token": query.token,
    }
    # Which rows: the filters' own, else the largest by cost over the window.
    if query.query_model is not None:
        try:
            members = registry.get_model(query.query_model)["models"]
        except NotFoundError:
            members = []
        names = list(dict.fromkeys(m["name"] for m in members))
        if query.names is not None:
            names = [n for n in names if n in query.names]
        model_names = [query.query_model]
    else:
        names = (
            list(query.names)
            if query.names is not None
            else registry.list(count=MAX_ROWS, sort="cost", **at)
        )
        model_names = registry.list_models(count=MAX_ROWS, sort="cost", **at)
    llms = _read(registry.get, names, at)
    models = _read(registry.get_model, model_names, at)
    # A filter the statistics cannot express: a Query LLM's usage for one Query Model,
    # a Query Model's usage by some Query LLMs. Those totals come from the series.
    if query.query_model is not None:
        llms = _with_totals(llms, window.totals_by(registry, query, "name"))
    if query.names is not None:
        models = _with_totals(models, window.totals_by(registry, query, "query_model"))
    llms = sorted(llms, key=_largest)
    models = sorted(models, key=_largest)
    known = {b["name"]: b for b in (*llms, *models)}
    return Dashboard(
        typed, query, errors, series, labels.gather(registry, series, known), llms, models
    )


def _read(get: Any, names: Sequence[str], at: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each name's response body with its statistics over the window; a name in a filter
    that is not registered has none, and no row."""
    found = []
    for name in names:
        try:
            found.append(get(name, metadata=True, **at))
        except NotFoundError:
            continue
    return found


def _with_totals(
    bodies: Sequence[dict[str, Any]], sums: Mapping[str | None, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    zero = dict.fromkeys(labels.COUNTERS, 0)
    return [{**body, **sums.get(body["name"], zero)} for body in bodies]


def _largest(body: Mapping[str, Any]) -> tuple[Any, ...]:
    """Largest cost first, then most requests; ties by name, as `list` breaks them."""
    return (-measure(body, "cost"), -body["requests"], body["name"])


def page(registry: RegistryApi, typed: Form, token: str | None = None) -> str:
    return render(gather(registry, typed, token))


def as_json(board: Dashboard) -> dict[str, Any]:
    query = board.query
    return {
        "from": query.start,
        "to": query.end,
        "bucket": query.bucket,
        "group_by": list(query.group_by),
        "name": None if query.names is None else list(query.names),
        "query_model": query.query_model,
        "me": query.me,
        "errors": [{"path": path, "message": message} for path, message in board.errors],
        "labels": {key: dict(values) for key, values in board.labels.items()},
        "query_llms": list(board.llms),
        "query_models": list(board.models),
        "data": list(board.series),
    }


# --- the page ----------------------------------------------------------------------------


def render(board: Dashboard, root: str = "") -> str:
    """The whole page as HTML; ``root`` is the relative path to the server's root, where
    the Query LLM and Query Model pages are (``query-llm/NAME``)."""
    query = board.query
    link = window_query(query.start, query.end, query.bucket)
    body = [
        "<h1>Usage</h1>",
        summary(query, board.series, _filters(board, root, link)),
        form(board.form, query.start, query.end, board.errors, filters=True),
        usage(board.series, query, board.labels, root, link),
        f"<h2>Query LLMs <small>({len(board.llms)}; {_whose(query)} in the window)</small></h2>",
        tables.html(llm_table(board.llms, root, link)),
        f"<h2>Query Models <small>({len(board.models)}; {_whose(query)} recorded for them"
        " in the window)</small></h2>",
        tables.html(model_table(board.models, root, link)),
    ]
    return document("Query LLM Registry: usage", "\n".join(body), root or "./")


def _whose(query: Query) -> str:
    return "your usage" if query.me else "usage"


def _filters(board: Dashboard, root: str, link: str) -> list[str]:
    """The filters in words (HTML), each naming what it keeps by its readable id."""
    query = board.query
    said = []
    by_name = {b["name"]: b for b in board.llms}
    for name in query.names or ():
        text = labels.llm(by_name[name]) if name in by_name else name
        said.append(
            f'Query LLM <a href="{escape(item_href(root, "llm", name, link))}">{escape(text)}</a>'
        )
    if query.query_model is not None:
        found = [b for b in board.models if b["name"] == query.query_model]
        text = labels.model(found[0]) if found else query.query_model
        href = item_href(root, "model", query.query_model, link)
        said.append(f'Query Model <a href="{escape(href)}">{escape(text)}</a>')
    if query.me:
        said.append("your own usage")
    return said


def summary(query: Query, series: Sequence[Mapping[str, Any]], filters: Sequence[str]) -> str:
    """The window and its totals in a sentence; the totals carry their exact values."""
    total = window.summed(series)
    cost = measure(total, "cost")
    tokens = measure(total, "tokens")
    only = f" Only {'; '.join(filters)}." if filters else ""
    first = charts.full_date(query.start, "day")
    last = charts.full_date(query.end, "day")
    return (
        f'<p class="summary">From <time datetime="{escape(query.start)}">{escape(first)}</time>'
        f' to <time datetime="{escape(query.end)}">{escape(last)}</time> (UTC, the end not'
        f" included), per {escape(query.bucket)}:"
        f' <strong id="total-requests" data-value="{total["requests"]}">'
        f"{numbers.shown(total['requests'])}</strong> requests,"
        f' <strong id="total-tokens" data-value="{tokens}">{numbers.shown(tokens)}</strong>'
        f' tokens, <strong id="total-cost" data-value="{escape(tables.exact(cost))}"'
        f' title="{escape(tables.exact(cost))}">{escape(numbers.shown(cost))}</strong>'
        f" credits.{only}</p>"
    )


def usage(
    series: Sequence[Mapping[str, Any]],
    query: Query,
    names: labels.Labels,
    root: str,
    link: str,
) -> str:
    """The charts, the note on partial buckets, the legend of groups and the series' CSV:
    everything about usage over time; shared by every page."""
    slots = charts.Slots.of(series, names)
    keys = [k for k in buckets.GROUPS if k in query.group_by]  # in the results' order
    by = ", ".join(GROUP_NAMES.get(k, k) for k in keys)
    parts = []
    for kind in KINDS:
        unit = " (credits)" if kind == "cost" else ""
        stacked = f" <small>stacked by {escape(by)}</small>" if keys else ""
        parts.append(f"<h2>{kind.capitalize()} per {escape(query.bucket)}{unit}{stacked}</h2>")
        parts.append(charts.stacked(kind, series, query.bucket, names, slots))
    if any(
        buckets.is_partial(times.parse(b["start"]), times.parse(b["end"]), query.bucket)
        for b in series
    ):
        parts.append(
            f'<p class="note" id="partial-note">* A partial {escape(query.bucket)} (lighter'
            " bars): the window holds only part of it, so it covers less time than the"
            " others.</p>"
        )
    if keys:
        parts.append(
            f"<h3>By {escape(by)} <small>(the legend; totals over the window)</small></h3>"
        )
        parts.append(tables.html(group_table(series, keys, names, slots, root, link)))
    parts.append(tables.link(series_table(series, keys, names), "usage per bucket"))
    return "\n".join(parts)


def item_href(root: str, kind: str, name: str, link: str) -> str:
    """The page of a Query LLM (``kind`` llm) or a Query Model (model), in this window."""
    return f"{root}query-{kind}/{name}{link}"


# --- the tables --------------------------------------------------------------------------

USAGE_COLUMNS = (Column("requests", "count"), Column("tokens", "count"), Column("cost", "cost"))


def usage_cells(row: Mapping[str, Any]) -> list[Cell]:
    return [
        Cell(row["requests"]),
        Cell(measure(row, "tokens")),
        Cell(measure(row, "cost")),
    ]


def llm_table(llms: Sequence[Mapping[str, Any]], root: str, link: str) -> Table:
    """Query LLMs led by their upstream id (a link to their page) and mode."""
    columns = [Column("Query LLM"), Column("mode", "tag"), Column("name", "name"), *USAGE_COLUMNS]
    rows = [
        [
            Cell(llm.get("id", ""), href=item_href(root, "llm", llm["name"], link)),
            Cell(llm.get("mode", "")),
            Cell(llm["name"], text=labels.short(llm["name"])),
            *usage_cells(llm),
        ]
        for llm in llms
    ]
    names = [llm["name"] for llm in llms]
    return Table("query-llms", columns, rows, empty="none registered", names=names)


def model_table(models: Sequence[Mapping[str, Any]], root: str, link: str) -> Table:
    """Query Models led by their members' ids (a link to their page)."""
    columns = [
        Column("Query Model"),
        Column("members", "count"),
        Column("name", "name"),
        *USAGE_COLUMNS,
    ]
    rows = [
        [
            Cell(labels.model(model), href=item_href(root, "model", model["name"], link)),
            Cell(len(model.get("models", ()))),
            Cell(model["name"], text=labels.short(model["name"])),
            *usage_cells(model),
        ]
        for model in models
    ]
    names = [model["name"] for model in models]
    return Table("query-models", columns, rows, empty="none registered", names=names)


def group_table(
    series: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    names: labels.Labels,
    slots: charts.Slots,
    root: str,
    link: str,
) -> Table:
    """The chart's legend as a table: each group's colour, readable label and totals over
    the window, largest cost first (the order of the colours)."""
    sums: dict[str, dict[str, Any]] = {}
    first: dict[str, Mapping[str, Any]] = {}
    for bucket in series:
        for row in bucket["results"]:
            group = labels.of(row, keys, names)
            first.setdefault(group, row)
            into = sums.setdefault(group, dict.fromkeys(labels.COUNTERS, 0))
            for counter in labels.COUNTERS:
                into[counter] += row[counter]
    title = " / ".join(GROUP_NAMES.get(k, k) for k in keys)
    rows = []
    for group in slots.order:
        row = first[group]
        href = None
        if len(keys) == 1 and keys[0] in ("name", "query_model") and row[keys[0]] is not None:
            kind = "llm" if keys[0] == "name" else "model"
            href = item_href(root, kind, row[keys[0]], link)
        rows.append(
            [Cell(group, href=href, swatch=slots.of_group(group)), *usage_cells(sums[group])]
        )
    return Table("groups", [Column(title), *USAGE_COLUMNS], rows, empty="no usage")


def series_table(
    series: Sequence[Mapping[str, Any]], keys: Sequence[str], names: labels.Labels
) -> Table:
    """The series as rows (a bucket and a group each), for its CSV: keys as they are
    (names in full) with their readable labels, every counter exact."""
    columns = [
        Column("start"),
        Column("end"),
        *(Column(k) for k in keys),
        *([Column("group")] if keys else []),
        *(Column(c, "count") for c in labels.COUNTERS),
    ]
    rows = []
    for bucket in series:
        for row in bucket["results"]:
            rows.append(
                [
                    Cell(bucket["start"]),
                    Cell(bucket["end"]),
                    *(Cell(row[k]) for k in keys),
                    *([Cell(labels.of(row, keys, names))] if keys else []),
                    *(Cell(row[c]) for c in labels.COUNTERS),
                ]
            )
    return Table("usage", columns, rows)
