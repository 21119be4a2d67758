"""What every page of the dashboard shares: the document around it, its style sheet and
script (inline: the CSP lets a page load nothing), the query form, and links between
pages.

The form shows back what was typed, even when it was wrong, beside the list of what was
wrong with it; only the data shown falls back to the default window. Dates are
``<input type=date>``; a value a date input cannot hold (a full RFC 3339 time, or a typo)
is shown in a text input instead, so nothing typed is lost.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date
from html import escape
from urllib.parse import urlencode

from attrs import frozen

from registry import series as buckets

DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# The group_by keys, in the order `registry.series.GROUPS` sorts them, as the form says them.
GROUP_NAMES = {
    "user_id": "user",
    "model": "model (upstream id)",
    "name": "Query LLM",
    "query_model": "Query Model",
}


@frozen
class Form:
    """A page's query as typed: strings, kept to be shown back in the form."""

    start: str = ""
    end: str = ""
    bucket: str = ""
    group_by: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    query_model: str = ""
    me: str = ""

    @classmethod
    def of(cls, fields: Mapping[str, Sequence[str]]) -> Form:
        """From query fields (each a list of the values given). Lists come as GET /usage
        takes them: repeated (``name=a&name=b``), bracketed (``name[]=a``) and, for
        ``group_by``, separated by commas; an empty value is no value."""

        def values(key: str) -> list[str]:
            return [v for v in (*fields.get(key, ()), *fields.get(f"{key}[]", ())) if v]

        def one(key: str) -> str:
            found = values(key)
            return found[0] if found else ""

        groups = [part.strip() for v in values("group_by") for part in v.split(",")]
        return cls(
            start=one("from"),
            end=one("to"),
            bucket=one("bucket"),
            group_by=tuple(dict.fromkeys(g for g in groups if g)),
            names=tuple(dict.fromkeys(values("name"))),
            query_model=one("query_model"),
            me=one("me"),
        )


def window_query(start: str, end: str, bucket: str, **more: str) -> str:
    """``?from=...&to=...&bucket=...``: the window a link keeps."""
    fields = {"from": start, "to": end, "bucket": bucket, **more}
    return "?" + urlencode({k: v for k, v in fields.items() if v})


def short_date(text: str) -> str:
    """A window bound as the form shows it: a bare date for a midnight, else as given."""
    return text[:10] if text.endswith("T00:00:00Z") and DATE.fullmatch(text[:10]) else text


def _bad(flag: bool) -> str:
    """The attributes of a field the query's problems name."""
    return ' aria-invalid="true" class="bad"' if flag else ""


def _is_date(value: str) -> bool:
    """Whether a date input can hold ``value``: it empties one that is no real day."""
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return bool(DATE.fullmatch(value))


def _time_input(name: str, label: str, value: str, bad: bool) -> str:
    kind = "date" if not value or _is_date(value) else "text"
    invalid = _bad(bad)
    return (
        f'<label>{escape(label)} <input type="{kind}" name="{name}" id="field-{name}"'
        f' value="{escape(value)}"{invalid}></label>'
    )


def form(
    typed: Form,
    shown_start: str,
    shown_end: str,
    errors: Sequence[tuple[str, str]],
    *,
    filters: bool,
) -> str:
    """The query form: the window, the bucket, what to stack by, and (``filters``, on the
    dashboard) the Query LLM and Query Model filters; then the problems, if any."""
    bad = {path.split("/")[1] if path.count("/") else path for path, _ in errors}
    start = typed.start or short_date(shown_start)
    end = typed.end or short_date(shown_end)
    chosen = typed.bucket or "day"
    options = "".join(
        f'<option value="{escape(w)}"{" selected" if w == chosen else ""}>{escape(w)}</option>'
        for w in buckets.BUCKETS
    )
    if chosen not in buckets.BUCKETS:  # keep what was typed, selected, beside its error
        options += f'<option value="{escape(chosen)}" selected>{escape(chosen)}</option>'
    groups = "".join(
        f'<label class="check"><input type="checkbox" name="group_by" value="{key}"'
        f"{' checked' if key in typed.group_by else ''}> {escape(title)}</label>"
        for key, title in GROUP_NAMES.items()
    )
    unknown = [g for g in typed.group_by if g not in GROUP_NAMES]
    groups += "".join(
        f'<label class="check bad"><input type="checkbox" name="group_by"'
        f' value="{escape(g)}" checked> {escape(g)}</label>'
        for g in unknown
    )
    parts = [
        _time_input("from", "from", start, "from" in bad),
        _time_input("to", "to (not included)", end, "to" in bad),
        f'<label>per <select name="bucket" id="field-bucket"{_bad("bucket" in bad)}>'
        f"{options}</select></label>",
        f"<fieldset{_bad('group_by' in bad)}><legend>stack by</legend>{groups}</fieldset>",
    ]
    if filters:
        for name in typed.names or ("",):
            parts.append(
                f'<label>Query LLM <input name="name" value="{escape(name)}" size="24"'
                f' placeholder="any name"{_bad("name" in bad)}></label>'
            )
        parts.append(
            f'<label>Query Model <input name="query_model" value="{escape(typed.query_model)}"'
            f' size="24" placeholder="any name"{_bad("query_model" in bad)}></label>'
        )
    if typed.me:
        parts.append(f'<input type="hidden" name="me" value="{escape(typed.me)}">')
    problems = "".join(
        f"<li><code>{escape(path or '/')}</code> {escape(message)}</li>" for path, message in errors
    )
    said = (
        f'<div class="errors" role="alert"><ul id="errors">{problems}</ul>'
        "<p>The data below is the default query's: the last 30 days, per day.</p></div>"
        if errors
        else ""
    )
    return (
        f'<form method="get" action="" class="query">{"".join(parts)}'
        f'<button type="submit">Show</button></form>{said}'
    )


def document(title: str, body: str, root: str) -> str:
    """A whole page: ``root`` is the relative way back to the dashboard (``./`` or ``../``)."""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<header><p class="brand"><a href="{escape(root)}">Query LLM Registry</a></p></header>
<main>
{body}
</main>
<script>{SCRIPT}</script>
</body>
</html>
"""


# Colours for up to eight groups and the grey of "others", told apart by most people
# with a colour vision deficiency too (Tableau 10's first eight).
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#76b7b2",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c9c9c",
)
_GROUPS = "".join(f".g{i}{{fill:{c};background:{c}}}" for i, c in enumerate(PALETTE))
# A cost column's fraction gets the width of its widest (tables.MAX_FRACTION).
_FRACTIONS = "".join(f".f{i}{{width:{i}ch}}" for i in range(13))
# Dates under a chart: tier t's labels fit from the t-th width of `charts.TIERS` on.
_TIERS = (
    ".date{display:none}.date.t0{display:inline}"
    "@container chart (min-width:420px){.date.t0{display:none}.date.t1{display:inline}}"
    "@container chart (min-width:600px){.date.t1{display:none}.date.t2{display:inline}}"
    "@container chart (min-width:800px){.date.t2{display:none}.date.t3{display:inline}}"
    "@container chart (min-width:1000px){.date.t3{display:none}.date.t4{display:inline}}"
)

STYLE = (
    """
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:0 12px 2em;
color:#1d1d1f;background:#fff}
header{padding:.6em 0;border-bottom:1px solid #ddd;margin-bottom:.6em}
.brand{margin:0;font-weight:600}.brand a{color:inherit;text-decoration:none}
h1{font-size:1.35em;margin:.3em 0;overflow-wrap:anywhere}
h2{font-size:1.1em;margin:1.4em 0 .4em}h2 small{font-weight:400;color:#666}
a{color:#1f5fa8}
form.query{display:flex;flex-wrap:wrap;gap:.5em 1em;align-items:end;margin:.4em 0}
form.query label{white-space:nowrap}
fieldset{border:0;padding:0;margin:0;display:flex;flex-wrap:wrap;gap:0 .8em;min-width:0}
legend{float:left;margin-right:.5em;padding:0}
input,select,button{font:inherit;max-width:100%}
input[type=text],input:not([type]){width:15em}
.bad{outline:2px solid #c00;outline-offset:1px}label.check.bad{outline:0;color:#a00}
.errors{border-left:4px solid #c00;background:#fff3f3;padding:.3em .8em;margin:.5em 0}
.errors ul{margin:.2em 0;padding-left:1.2em;color:#a00}.errors p{margin:.2em 0}
.summary{margin:.6em 0}.summary strong{font-variant-numeric:tabular-nums}
.note{color:#555;font-size:.9em}
figure.chart{margin:.3em 0 1em;container:chart/inline-size}
.chart .row{display:flex;align-items:flex-start}
.chart svg{display:block;overflow:visible}.chart svg.plot{flex:1 1 0;min-width:0;width:100%}
.tick{font-size:12px;fill:#555;text-anchor:end;font-variant-numeric:tabular-nums}
.date{font-size:12px;fill:#444;text-anchor:middle;white-space:nowrap}
.grid{stroke:#e3e3e3}.base{stroke:#888}
.hit{fill:transparent}.bucket:hover .hit{fill:#0000000d}
.partial .s{fill-opacity:.45}.none{fill:#777;text-anchor:middle;font-size:13px}
.legend{margin:.2em 0 .8em}
.sw{display:inline-block;width:.8em;height:.8em;border-radius:2px;margin-right:.4em;
vertical-align:-.05em;flex:none}
.export{margin:.2em 0;text-align:right;font-size:.9em}
.scroll{overflow-x:auto;max-width:100%;border:1px solid #eee}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{border-bottom:1px solid #e6e6e6;padding:.3em .55em;text-align:left;vertical-align:top}
th.count,th.cost,td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
td.text{max-width:0;width:40%;min-width:9em}td.tag,td.name{white-space:nowrap}
td.text .cut{display:block;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
td.text .sw+.cut{display:inline-block;max-width:calc(100% - 1.3em);vertical-align:bottom}
.f{display:inline-block;text-align:left}
th button{all:unset;cursor:pointer;font-weight:600;white-space:nowrap}
th[aria-sort=descending] button::after{content:" \\2193"}
th[aria-sort=ascending] button::after{content:" \\2191"}
code{font-size:13px}
dl.totals{display:grid;grid-template-columns:max-content max-content;gap:.1em 1.2em}
dl.totals dt{color:#555}dl.totals dd{margin:0;text-align:right;font-variant-numeric:tabular-nums}
pre.body{background:#f6f6f6;padding:.6em;white-space:pre-wrap;overflow-wrap:anywhere;
font-size:13px;max-width:100%}
.name{overflow-wrap:anywhere}
"""
    + _GROUPS
    + _FRACTIONS
    + _TIERS
)

# Sorts a table by the clicked column; numbers by their exact data-value.
SCRIPT = """
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
