"""The dashboard at ``GET /``: one self-contained HTML page (USAGE_SERIES.md section 3).

`gather` reads what the API shows without a token (the Query LLMs and Query
Models with their totals over the window, and the series per bucket); `render` is a pure
function of that data to the page. No script, style or font comes from
elsewhere: the charts are SVG drawn here, one ``<rect>`` per bucket, and the
tables sort with a few lines of inline script (the page works without it,
sorted by cost). Every string a user chose is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from html import escape
from typing import Any

from attrs import frozen

from registry import series as buckets
from registry import times
from registry.api import RegistryApi as Registry
from registry.errors import ValidationError
from registry.model import AMOUNTS
from registry.query import measure

DAYS = 30  # the default window: the last 30 days, whole days in UTC
MAX_ROWS = 1000  # Query LLMs (and Query Models) listed, largest cost over the window first
COUNTERS = ("requests", *AMOUNTS)
CHART_WIDTH, CHART_HEIGHT = 900, 160


@frozen
class Dashboard:
    """What the page shows; ``errors`` are the query's problems, shown above the form."""

    start: str
    end: str
    bucket: str
    llms: Sequence[Mapping[str, Any]] = ()
    models: Sequence[Mapping[str, Any]] = ()
    series: Sequence[Mapping[str, Any]] = ()
    errors: Sequence[tuple[str, str]] = ()


def default_window() -> tuple[str, str]:
    """The last 30 days: from midnight UTC 29 days ago to the coming midnight."""
    end = buckets.following_boundary(times.now(), "day")
    start = end - DAYS * 86_400_000_000
    return buckets.render(start), buckets.render(end)


def gather(
    registry: Registry,
    start: str | None = None,
    end: str | None = None,
    bucket: str | None = None,
) -> Dashboard:
    """The dashboard's data from ``registry``, as an anonymous API caller would see it.

    A bad ``start``, ``end`` or ``bucket`` is not an error here: the page shows the
    problem beside the form, and the data of the default window.
    """
    default_start, default_end = default_window()
    start, end, bucket = start or default_start, end or default_end, bucket or "day"
    try:
        series = registry.usage_series(start, end, bucket)
    except ValidationError as exc:
        errors = exc.errors
        start, end, bucket = default_start, default_end, "day"
        series = registry.usage_series(start, end, bucket)
    else:
        errors = []
    names = registry.list(count=MAX_ROWS, sort="cost", start=start, end=end)
    llms = [registry.get(name, metadata=True, start=start, end=end) for name in names]
    ranked = registry.list_models(count=MAX_ROWS, sort="cost", start=start, end=end)
    models = [registry.get_model(name, metadata=True, start=start, end=end) for name in ranked]
    return Dashboard(start, end, bucket, llms, models, series, errors)


def _gather(registry: Registry, query: Mapping[str, str]) -> Dashboard:
    return gather(registry, query.get("from"), query.get("to"), query.get("bucket"))


def page(registry: Registry, query: Mapping[str, str]) -> str:
    """The page for a request's query parameters (``from``, ``to``, ``bucket``)."""
    return render(_gather(registry, query))


def data(registry: Registry, query: Mapping[str, str]) -> dict[str, Any]:
    """The same page as JSON: what it shows, with the API's own response bodies."""
    board = _gather(registry, query)
    return {
        "from": board.start,
        "to": board.end,
        "bucket": board.bucket,
        "errors": [{"path": path, "message": message} for path, message in board.errors],
        "query_llms": list(board.llms),
        "query_models": list(board.models),
        "data": list(board.series),
    }


# --- rendering -------------------------------------------------------------------------


def render(board: Dashboard) -> str:
    """The whole page as HTML text."""
    e = escape
    cost = [_cost(row) for b in board.series for row in b["results"]]
    requests = sum(int(r["requests"]) for b in board.series for r in b["results"])
    total_cost = sum(cost, Decimal(0))
    problems = "".join(f"<li>{e(path)}: {e(message)}</li>" for path, message in board.errors)
    options = "".join(
        f'<option value="{w}"{" selected" if w == board.bucket else ""}>{w}</option>'
        for w in buckets.BUCKETS
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Query LLM Registry: usage</title>
<style>{_STYLE}</style>
</head>
<body>
<header>
<h1>Query LLM Registry</h1>
<form method="get" action="">
<label>from <input name="from" value="{e(board.start)}" size="22"></label>
<label>to <input name="to" value="{e(board.end)}" size="22"></label>
<label>bucket <select name="bucket">{options}</select></label>
<button type="submit">Show</button>
</form>
{f'<ul class="errors">{problems}</ul>' if problems else ""}
<p class="window">From <time>{e(board.start)}</time> to <time>{e(board.end)}</time> (UTC),
per {e(board.bucket)}: <strong id="total-requests">{requests:,}</strong> requests,
<strong id="total-cost">{e(_text(total_cost))}</strong> credits.</p>
</header>
<main>
<section>
<h2>Cost per {e(board.bucket)} (credits)</h2>
{_chart("cost", board.series, _cost, board.bucket)}
<h2>Requests per {e(board.bucket)}</h2>
{_chart("requests", board.series, lambda r: int(r["requests"]), board.bucket)}
</section>
<section>
<h2>Query LLMs <small>({len(board.llms)}, usage in the window)</small></h2>
{_llm_table(board.llms)}
<h2>Query Models <small>({len(board.models)}, usage recorded for them in the window)</small></h2>
{_model_table(board.models)}
</section>
</main>
<script>{_SCRIPT}</script>
</body>
</html>
"""


def _cost(row: Mapping[str, Any]) -> Decimal:
    return Decimal(measure(row, "cost"))


def _tokens(row: Mapping[str, Any]) -> int:
    return int(measure(row, "tokens"))


def _text(value: Decimal | int) -> str:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value else "0"
    return f"{value:,}"


def _chart(kind: str, series: Sequence[Mapping[str, Any]], measure: Any, bucket: str) -> str:
    """A bar chart in SVG: one ``<rect>`` per bucket, its height proportional to its value."""
    values = [sum((measure(r) for r in b["results"]), measure_zero(kind)) for b in series]
    top = max(values, default=0) or 1
    count = max(len(series), 1)
    step = CHART_WIDTH / count
    gap = min(2.0, step / 4)
    bars: list[str] = []
    for b, value in zip(series, values, strict=True):
        i = len(bars)
        height = float(Decimal(value) * CHART_HEIGHT / Decimal(top))
        label = f"{buckets.render(times.parse(b['start']))}: {_text(value)}"
        bars.append(
            f'<rect class="bar" x="{i * step + gap / 2:.3f}" y="{CHART_HEIGHT - height:.3f}"'
            f' width="{step - gap:.3f}" height="{height:.3f}"'
            f' data-bucket="{escape(b["start"])}" data-end="{escape(b["end"])}"'
            f' data-value="{escape(_plain(value))}"><title>{escape(label)}</title></rect>'
        )
    first = escape(b_label(series[0]["start"], bucket)) if series else ""
    last = escape(b_label(series[-1]["start"], bucket)) if series else ""
    return (
        f'<svg class="chart" id="chart-{kind}" role="img" data-max="{escape(_plain(top))}"'
        f' viewBox="0 -14 {CHART_WIDTH} {CHART_HEIGHT + 30}" preserveAspectRatio="none"'
        f' xmlns="http://www.w3.org/2000/svg">'
        f'<text x="0" y="-3" class="axis">max {escape(_text(max(values, default=0)))}</text>'
        f'<line x1="0" y1="{CHART_HEIGHT}" x2="{CHART_WIDTH}" y2="{CHART_HEIGHT}" class="base"/>'
        + "".join(bars)
        + f'<text x="0" y="{CHART_HEIGHT + 14}" class="axis">{first}</text>'
        f'<text x="{CHART_WIDTH}" y="{CHART_HEIGHT + 14}" class="axis end">{last}</text>'
        "</svg>"
    )


def measure_zero(kind: str) -> Decimal | int:
    return Decimal(0) if kind == "cost" else 0


def b_label(start: str, bucket: str) -> str:
    if bucket == "hour":
        return f"{start[:10]} {start[11:16]}"
    return start[:7] if bucket == "month" else start[:10]


def _plain(value: Decimal | int) -> str:
    """A number for a data attribute: exact, no grouping."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value else "0"
    return str(value)


def _cell(value: Any, number: bool = False, shown: str | None = None) -> str:
    """A table cell; it carries its exact value for sorting (``data-value``)."""
    if number:
        return f'<td class="num" data-value="{escape(_plain(value))}">{escape(_text(value))}</td>'
    text = "" if value is None else str(value)
    return f'<td data-value="{escape(text)}">{escape(text if shown is None else shown)}</td>'


def _head(columns: Sequence[tuple[str, bool]]) -> str:
    cells = "".join(
        f'<th data-type="{"num" if number else "text"}"><button type="button">'
        f"{escape(title)}</button></th>"
        for title, number in columns
    )
    return f"<thead><tr>{cells}</tr></thead>"


# The columns every subject's table ends with: its creation day and its usage totals.
_USAGE_COLUMNS = [
    ("created", False),
    ("requests", True),
    ("tokens", True),
    ("chat_cost", True),
    ("embedding_cost", True),
    ("cost", True),
]


def _llm_table(llms: Sequence[Mapping[str, Any]]) -> str:
    columns = [("name", False), ("id", False), ("mode", False), *_USAGE_COLUMNS]
    rows = [_row(llm, [_cell(llm.get("id")), _cell(llm.get("mode"))]) for llm in llms]
    return _table("query-llms", columns, rows)


def _model_table(models: Sequence[Mapping[str, Any]]) -> str:
    columns = [("name", False), ("members", True), ("weight", False), *_USAGE_COLUMNS]
    rows = [
        _row(
            model,
            [
                _cell(len(model.get("models", ())), True),
                _cell(model.get("weight", {}).get("type")),
            ],
        )
        for model in models
    ]
    return _table("query-models", columns, rows)


def _row(item: Mapping[str, Any], own: list[str]) -> str:
    """One subject's row: its name, its ``own`` cells, then its creation day and usage."""
    counters = {k: item.get(k, 0) for k in COUNTERS}
    name = str(item.get("name", ""))
    cells = [
        f'<td data-value="{escape(name)}"><code>{escape(name)}</code></td>',
        *own,
        _cell(item.get("created"), shown=str(item.get("created") or "")[:10]),
        _cell(int(counters["requests"]), True),
        _cell(_tokens(counters), True),
        _cell(Decimal(counters["chat_cost"]), True),
        _cell(Decimal(counters["embedding_cost"]), True),
        _cell(_cost(counters), True),
    ]
    return f'<tr data-name="{escape(name)}">{"".join(cells)}</tr>'


def _table(table_id: str, columns: Sequence[tuple[str, bool]], rows: Sequence[str]) -> str:
    body = "".join(rows) or f'<tr><td colspan="{len(columns)}">none registered</td></tr>'
    return f'<table id="{table_id}" class="sortable">{_head(columns)}<tbody>{body}</tbody></table>'


_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:1em;color:#222}
h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.1em;margin:1.2em 0 .4em}
form label{margin-right:1em}input,select,button{font:inherit}
.errors{color:#a00}.chart{width:100%;height:200px;display:block;background:#fafafa}
.bar{fill:#3b6ea8}#chart-requests .bar{fill:#4f9a5c}.bar:hover{fill:#e08a1e}
.axis{font-size:11px;fill:#555}.axis.end{text-anchor:end}.base{stroke:#999}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #ddd;padding:.25em .5em;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
th button{all:unset;cursor:pointer;font-weight:600}th[aria-sort] button::after{content:" ↕"}
code{font-size:12px}
"""

# Sorts a table by the clicked column; numbers by their exact data-value.
_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, column) {
    th.querySelector("button").addEventListener("click", function () {
      var down = th.getAttribute("aria-sort") !== "descending";
      table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", down ? "descending" : "ascending");
      var number = th.dataset.type === "num";
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows).filter(function (r) {
        return r.cells.length > column;
      });
      rows.sort(function (a, b) {
        var x = a.cells[column].dataset.value, y = b.cells[column].dataset.value;
        var order = number ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
        return down ? -order : order;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""
