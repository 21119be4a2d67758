"""The page of one Query LLM (``/query-llm/NAME``) and of one Query Model
(``/query-model/NAME``): who it is, its totals over the window, its usage over time
(stacked as the query asks), its body, and for a Query Model its members.

A Query Model's members table has one place for more columns per member: ``weights``
(`ModelPage.weights`), a mapping from member name to a value, shown as a "weight"
column when given. Training tables (per-member dynamic weights) will fill it from the
library; nothing else on the page needs to change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any, Protocol, runtime_checkable

from attrs import frozen

from registry.api import RegistryApi
from registry.errors import NotFoundError, ValidationError
from registry.query import measure, named
from registry.render import dashboard, labels, numbers, tables, window
from registry.render.page import Form, document, form, window_query
from registry.render.tables import Cell, Column, Table
from registry.render.window import Query

ROOT = "../"  # from /query-llm/NAME back to the server's root


@frozen
class LlmPage:
    form: Form
    query: Query
    errors: Sequence[tuple[str, str]]
    body: Mapping[str, Any]  # the response body with its statistics over the window
    series: Sequence[Mapping[str, Any]]
    labels: labels.Labels


@frozen
class ModelPage:
    form: Form
    query: Query
    errors: Sequence[tuple[str, str]]
    body: Mapping[str, Any]
    series: Sequence[Mapping[str, Any]]
    labels: labels.Labels
    members: Sequence[Mapping[str, Any]]  # one per distinct member: body, count, counters
    # Training tables: member name -> its weight for the table as a whole, shown beside
    # each member, and how many rows the table holds.
    weights: Mapping[str, Any] | None = None
    training_rows: int | None = None


@runtime_checkable
class Summaries(Protocol):
    """A registry that can sum up a Query Model's training table (`Registry` can; a
    `Client` has no route for it, and its pages show no weights)."""

    def training_summary(self, query_model: str, token: str | None = None) -> dict[str, Any]: ...


def gather_llm(registry: RegistryApi, name: str, typed: Form, token: str | None = None) -> LlmPage:
    """A Query LLM's page; `NotFoundError` or `ValidationError` when there is none."""
    named(name, "Query LLM")  # a name of the wrong shape: refused before any read
    registry.get(name)  # not found: raised before any usage is read
    query, series, errors = window.resolve(registry, typed, token, names=(name,))
    body = registry.get(
        name, metadata=True, start=query.start, end=query.end, me=query.me, token=query.token
    )
    return LlmPage(
        typed, query, errors, body, series, labels.gather(registry, series, {name: body})
    )


def gather_model(
    registry: RegistryApi,
    name: str,
    typed: Form,
    token: str | None = None,
    weights: Mapping[str, Any] | None = None,
) -> ModelPage:
    """A Query Model's page, its members' totals being the usage recorded for it."""
    named(name, "Query Model")
    registry.get_model(name)
    query, series, errors = window.resolve(registry, typed, token, query_model=name)
    body = registry.get_model(
        name, metadata=True, start=query.start, end=query.end, me=query.me, token=query.token
    )
    sums = window.totals_by(registry, query, "name")
    members: dict[str, dict[str, Any]] = {}
    for member in body["models"]:
        if member["name"] in members:
            members[member["name"]]["count"] += 1
            continue
        zero = dict.fromkeys(labels.COUNTERS, 0)
        members[member["name"]] = {
            "body": member,
            "count": 1,
            **sums.get(member["name"], zero),
        }
    known = {m: v["body"] for m, v in members.items()} | {name: body}
    rows = None
    trained = body["weight"]["type"] == "training_table"
    if weights is None and trained and isinstance(registry, Summaries):
        summary = registry.training_summary(name, token=query.token)
        rows = summary["rows"]
        weights = {body["models"][m["index"]]["name"]: m["weight"] for m in summary["models"]}
    return ModelPage(
        typed,
        query,
        errors,
        body,
        series,
        labels.gather(registry, series, known),
        sorted(members.values(), key=lambda m: (-measure(m, "cost"), m["body"]["name"])),
        weights,
        rows,
    )


# --- JSON ------------------------------------------------------------------------------------


def _query_json(query: Query, errors: Sequence[tuple[str, str]]) -> dict[str, Any]:
    return {
        "from": query.start,
        "to": query.end,
        "bucket": query.bucket,
        "group_by": list(query.group_by),
        "me": query.me,
        "errors": [{"path": path, "message": message} for path, message in errors],
    }


def llm_json(page: LlmPage) -> dict[str, Any]:
    return {
        **_query_json(page.query, page.errors),
        "query_llm": dict(page.body),
        "labels": {key: dict(values) for key, values in page.labels.items()},
        "data": list(page.series),
    }


def model_json(page: ModelPage) -> dict[str, Any]:
    members = [
        {"name": m["body"]["name"], "count": m["count"], **window.counters(m)} for m in page.members
    ]
    return {
        **_query_json(page.query, page.errors),
        "query_model": dict(page.body),
        "members": members,
        "weights": None if page.weights is None else dict(page.weights),
        "training_rows": page.training_rows,
        "labels": {key: dict(values) for key, values in page.labels.items()},
        "data": list(page.series),
    }


# --- HTML ------------------------------------------------------------------------------------


def _totals(body: Mapping[str, Any]) -> str:
    """The statistics over the window, each with its exact value on hover."""
    rows = [
        ("requests", body["requests"]),
        ("prompt tokens", measure(body, "prompt_tokens")),
        ("completion tokens", measure(body, "completion_tokens")),
        ("chat cost", body["chat_cost"]),
        ("embedding cost", body["embedding_cost"]),
        ("cost", measure(body, "cost")),
    ]
    cells = "".join(
        f'<dt>{escape(title)}</dt><dd data-key="{escape(title)}"'
        f' data-value="{escape(tables.exact(value))}" title="{escape(tables.exact(value))}">'
        f"{escape(numbers.shown(value))}</dd>"
        for title, value in rows
    )
    return f'<dl class="totals" id="totals">{cells}</dl>'


def _shown_body(body: Mapping[str, Any]) -> str:
    """The body as registered (no statistics), as indented JSON text."""
    plain = {
        k: v
        for k, v in body.items()
        if k not in labels.COUNTERS and k not in ("created", "user_id")
    }
    text = json.dumps(plain, indent=2, ensure_ascii=False)
    return f'<pre class="body" id="body">{escape(text)}</pre>'


def _about(body: Mapping[str, Any]) -> str:
    user = body.get("user_id")
    by = f" by <code>{escape(user)}</code>" if user else ""
    return (
        f'<p class="name">Name <code id="name">{escape(body["name"])}</code>;'
        f" registered {escape(str(body.get('created', ''))[:19].replace('T', ' '))} UTC{by}.</p>"
    )


def _page(kind: str, title: str, page: LlmPage | ModelPage, middle: list[str]) -> str:
    """An item's page: its title, name, summary, form, totals and usage over time, then
    ``middle`` (what only this kind of item has), its body and the way back."""
    body, query = page.body, page.query
    link = window_query(query.start, query.end, query.bucket)
    parts = [
        f'<h1 id="title">{kind} <span class="cut">{escape(title)}</span></h1>',
        _about(body),
        dashboard.summary(query, page.series, []),
        form(page.form, query.start, query.end, page.errors, filters=False),
        f"<h2>Totals over the window</h2>{_totals(body)}",
        dashboard.usage(page.series, query, page.labels, ROOT, link),
        *middle,
        f"<h2>Body</h2>{_shown_body(body)}",
        f'<p><a href="{escape(ROOT + link)}">All usage in this window</a></p>',
    ]
    return document(f"{kind} {title}", "\n".join(parts), ROOT)


def render_llm(page: LlmPage) -> str:
    return _page("Query LLM", labels.llm(page.body), page, [])


def member_table(page: ModelPage, link: str) -> Table:
    """The members, one row per distinct Query LLM; the ``weights`` hook adds a column."""
    columns = [
        Column("Query LLM"),
        Column("mode", "tag"),
        Column("name", "name"),
        Column("times", "count"),
        *dashboard.USAGE_COLUMNS,
    ]
    if page.weights is not None:
        columns.insert(4, Column("weight"))
    rows = []
    for member in page.members:
        llm = member["body"]
        cells = [
            Cell(llm.get("id", ""), href=dashboard.item_href(ROOT, "llm", llm["name"], link)),
            Cell(llm.get("mode", "")),
            Cell(llm["name"], text=labels.short(llm["name"])),
            Cell(member["count"]),
            Cell(member["requests"]),
            Cell(measure(member, "tokens")),
            Cell(measure(member, "cost")),
        ]
        if page.weights is not None:
            cells.insert(4, Cell(page.weights.get(llm["name"])))
        rows.append(cells)
    return Table("members", columns, rows, names=[m["body"]["name"] for m in page.members])


def render_model(page: ModelPage) -> str:
    query = page.query
    link = window_query(query.start, query.end, query.bucket)
    middle = [
        f"<h2>Members <small>({len(page.body['models'])}; usage recorded for this Query Model"
        " in the window)</small></h2>",
        tables.html(member_table(page, link)),
        _training(page),
    ]
    return _page("Query Model", labels.model(page.body), page, middle)


def _training(page: ModelPage) -> str:
    """What the members' weight column means, for a training-table Query Model."""
    if page.training_rows is None:
        return ""
    rows = page.training_rows
    return (
        f'<p id="training">Its training table holds <span id="training-rows">{rows:,}</span>'
        f" marked row{'' if rows == 1 else 's'}. A member's weight here is its weight for the"
        " table as a whole (from its mean score over every row); for a prompt, the"
        " registry weighs the nearest rows only (<code>POST /query_models/{name}/weights"
        "</code>).</p>"
    )


def missing(error: NotFoundError | ValidationError, kind: str) -> str:
    """The page for a name that is not registered, or not a name: it says so, and leads
    back to the dashboard."""
    said = str(error) if isinstance(error, NotFoundError) else "; ".join(error.lines())
    body = (
        f"<h1>No such {escape(kind)}</h1>"
        f'<div class="errors" role="alert"><p id="errors">{escape(said)}</p></div>'
        f'<p><a href="{ROOT}">Back to the dashboard</a></p>'
    )
    return document(f"No such {kind}", body, ROOT)
