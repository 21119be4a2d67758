"""The dashboard: rendered here, and served by a live ``qllm serve`` to headless Chromium
(driven by playwright), at a phone's width (390 px), a laptop's (1280 px) and a wide
screen's (2,600 px). Every number the browser shows is compared with the library's
answer to the same query on the same file."""

from __future__ import annotations

import itertools
import json
import re
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry import Registry
from registry.query import measure
from registry.render import charts, dashboard, labels, numbers, tables
from registry.render.page import Form
from tests.support.browser import browser, chromium
from tests.support.cli import run
from tests.support.data import AMOUNTS, ROOT, body
from tests.support.servers import Servers

STATIC = {"type": "static"}
HOSTILE_ID = "evil/<script>document.title='pwned'</script>"
HOSTILE_IMG = "\"'><img/src=x/onerror=document.title='pwned'>"
FORMULA_ID = "=SUM(A1:A9)"  # a spreadsheet would run it
LONG_ID = "vendor/" + "a" * 249  # a legal id: 256 characters, no white space
HOSTILE_USER = "<b>mallory</b>"
FORMULA_USER = "@sum(1+1)"
WINDOW = {"from": "2026-11-01", "to": "2026-11-15"}
QUERY = "?from=2026-11-01&to=2026-11-15"
GROUPED = QUERY + "&group_by=user_id"
WIDTHS = (390, 1280)
DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def live(servers: Servers) -> Iterator[tuple[Registry, dict[str, Any], str]]:
    """A live ``qllm serve`` on a filled file: the registry on that file, what was
    registered, and the server's URL."""
    _, url, path = served = servers.take()
    try:
        with Registry(path) as reg:
            yield reg, _fill(reg), url
    finally:
        servers.stop(served[0])


def _fill(reg: Registry) -> dict[str, Any]:
    """Five Query LLMs (hostile, formula-like and 256-character ids among them), two Query
    Models of them, and two weeks of uneven usage by three users and anonymous callers,
    some of it recorded for a Query Model. Every time is fixed: pages of this window
    are the same on every run (the screenshots change only when the page does)."""
    ids = ["openai/gpt-4o", "meta/llama", HOSTILE_ID, HOSTILE_IMG, FORMULA_ID, LONG_ID]
    names = [reg.register(body(id=i)).name for i in ids]
    pair = reg.register_model({"models": [body(), body(id="meta/llama")], "weight": STATIC})
    everyone = reg.register_model(
        {"models": [body(id=HOSTILE_ID), body(), body()], "weight": STATIC}
    )
    tokens = [reg.create_token(u) for u in ("alice", HOSTILE_USER, FORMULA_USER)]
    per_user: list[list[dict[str, Any]]] = [[], [], [], []]
    for day in range(1, 15):
        for i in range(day % 4):  # 1, 2, 3, 0, 1, 2, 3, 0 ... events a day
            name = names[(day + i) % len(names)]
            model = pair if name in {m.name for m in pair.members} else everyone
            event = {
                "name": name,
                "at": f"2026-11-{day:02}T{10 + i}:30:00Z",
                "chat_prompt_tokens": 100 * day,
                "chat_completion_tokens": 7 * i,
                "chat_cost": f"0.{day:02}5{i}",
                "embedding_cost": "0.000000001",
                "query_model": model.name if name in {m.name for m in model.members} else None,
            }
            per_user[(day + 2 * i) % 4].append(event)
    for token, events in zip([*tokens, None], per_user, strict=True):
        reg.record_usage_many(events, token=token)
    return {"names": names, "models": [pair.name, everyone.name]}


# --- rendered here ------------------------------------------------------------------------


def test_every_user_string_is_escaped(live: tuple[Registry, dict[str, Any], str]) -> None:
    reg = live[0]
    typed = Form(start="<b>2026", end=WINDOW["to"], group_by=("user_id", "name"))
    html = dashboard.page(reg, typed)
    assert "<script>document" not in html
    assert "<img/src" not in html
    assert "<b>mallory" not in html
    assert html.count("<script>") == 1  # the page's own sorting script
    assert "evil/&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in html
    assert 'value="&lt;b&gt;2026"' in html  # what was typed, shown back as text
    assert '<ul id="errors"><li><code>/from</code>' in html


def test_csv_cells_never_start_a_formula() -> None:
    table = tables.Table(
        "t",
        [tables.Column("id"), tables.Column("cost", "cost")],
        [
            [tables.Cell(text), tables.Cell(Decimal("0.5"))]
            for text in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", 'plain, "quoted"')
        ],
    )
    lines = tables.csv_text(table).split("\r\n")
    assert lines[:7] == [
        "id,cost",
        "'=1+1,0.5",
        "'+1,0.5",
        "'-1,0.5",
        "'@SUM(A1),0.5",
        "'\tx,0.5",
        '"plain, ""quoted""",0.5',
    ]
    url = tables.data_url(table)
    assert url.startswith("data:text/csv;charset=utf-8,")
    assert urllib.parse.unquote(url.split(",", 1)[1]) == tables.csv_text(table)
    assert not re.search(r"[\"'<> ]", url)  # nothing an attribute or a tag could be cut by


def test_self_contained(live: tuple[Registry, dict[str, Any], str]) -> None:
    html = dashboard.page(live[0], Form(WINDOW["from"], WINDOW["to"], group_by=("name",)))
    # Tags only: an id's own "<img/src=" is in the page, as the escaped text it is.
    assert not re.search(r"<link|<img|@import|url\(|<[^>]*\ssrc=|<iframe|<object", html)
    for href in re.findall(r'href="([^"]*)"', html):
        assert href.startswith(("query-llm/", "query-model/", "data:text/csv", "./")), href
    # The only absolute URL is the SVG namespace, which is a name, not a fetch.
    assert set(re.findall(r"https?://[^\"' ]+", html)) == {"http://www.w3.org/2000/svg"}


def test_default_window_is_the_last_30_days(reg: Registry) -> None:
    board = dashboard.gather(reg)
    assert len(board.series) == 30
    assert board.series[-1]["end"] == board.query.end
    assert board.query.end.endswith("T00:00:00Z")
    html = dashboard.render(board)
    assert html.count('<g class="bucket') == 60  # cost and requests, one bar per day each
    assert 'id="query-llms"' in html  # an empty registry: empty tables, not an error


def test_partial_buckets_are_marked(live: tuple[Registry, dict[str, Any], str]) -> None:
    html = dashboard.page(live[0], Form("2026-11-01", "2026-11-12T12:00:00Z", "week"))
    # Sunday 2026-11-01 is the tail of a week, Monday 11-09 to the window's end the
    # start of one: both partial; the week of 11-02 is whole.
    starts = re.findall(r'<g class="bucket( partial)?" data-start="([^"]+)"', html)
    assert starts[:3] == [
        (" partial", "2026-11-01T00:00:00Z"),
        ("", "2026-11-02T00:00:00Z"),
        (" partial", "2026-11-09T00:00:00Z"),
    ]
    assert 'id="partial-note"' in html
    assert ">1 Nov*</text>" in html
    whole = dashboard.page(live[0], Form("2026-11-02", "2026-11-09", "week"))
    assert "bucket partial" not in whole
    assert "partial-note" not in whole


def test_a_bad_query_keeps_what_was_typed(live: tuple[Registry, dict[str, Any], str]) -> None:
    typed = Form(
        start="2026-11-31",
        end="2026-11-15T00:00:00+01:00",
        bucket="minute",
        group_by=("user_id", "colour"),
        names=("not-a-name",),
    )
    board = dashboard.gather(live[0], typed)
    paths = {path for path, _ in board.errors}
    assert {"/from", "/bucket", "/group_by", "/name"} <= paths
    html = dashboard.render(board)
    assert '<input type="text" name="from" id="field-from" value="2026-11-31"' in html
    assert 'value="2026-11-15T00:00:00+01:00"' in html  # no date input can hold a time
    assert '<option value="minute" selected>' in html
    assert 'value="colour" checked' in html
    assert 'value="user_id" checked' in html
    assert 'name="name" value="not-a-name"' in html
    assert board.query.bucket == "day"  # the data shown: the default's
    assert len(board.series) == 30


def test_ticks_are_round_numbers() -> None:
    assert charts.ticks(Decimal("2.26"), whole=False) == [0, 1, 2, 3]
    assert charts.ticks(Decimal("0.7"), whole=False)[-1] == Decimal("0.8")
    assert charts.ticks(3, whole=True) == [0, 1, 2, 3]
    assert charts.ticks(7, whole=True) == [0, 2, 4, 6, 8]
    assert charts.ticks(0, whole=True) == [0, 1]
    assert charts.ticks(Decimal("0.000000012"), whole=False)[1] == Decimal("0.000000005")


def test_numbers_read_as_people_read_them() -> None:
    assert numbers.shown(Decimal("3.37226491")) == "3.372"
    assert numbers.shown(Decimal("1234.5678")) == "1,234.57"
    assert numbers.shown(Decimal("0.000000001")) == "0.000000001"
    assert numbers.shown(Decimal("12.50")) == "12.5"
    assert numbers.shown(1234567) == "1,234,567"
    assert numbers.aligned(["3.372", "12", "0.5"]) == [" 3.372", "12    ", " 0.5  "]


# --- the same page over HTTP: JSON, headers, and the command line's file --------------------


def test_every_page_is_also_json(live: tuple[Registry, dict[str, Any], str]) -> None:
    reg, made, url = live
    home = _json(httpx.get(url + "/", params={**WINDOW, "group_by": "name", "format": "json"}))
    series = reg.usage_series(WINDOW["from"], WINDOW["to"], group_by=["name"])
    assert _exact(home["data"]) == _exact(series)
    assert home["labels"]["name"][made["names"][0]].startswith("openai/gpt-4o (generate) ")
    name = made["names"][1]
    page = httpx.get(f"{url}/query-llm/{name}", params={**WINDOW, "format": "json"})
    assert page.status_code == 200
    got = _json(page)
    expected = reg.get(name, metadata=True, start=WINDOW["from"], end=WINDOW["to"])
    assert _exact(got["query_llm"]) == _exact(expected)
    assert _exact(got["data"]) == _exact(
        reg.usage_series(WINDOW["from"], WINDOW["to"], names=[name])
    )
    model = _json(httpx.get(f"{url}/query-model/{made['models'][1]}", params={"format": "json"}))
    counts = {m["name"]: m["count"] for m in model["members"]}
    assert counts == {made["names"][0]: 2, made["names"][2]: 1}  # openai/gpt-4o twice
    assert model["weights"] is None  # the hook training tables fill
    missing = httpx.get(f"{url}/query-llm/{'A' * 22}", params={"format": "json"})
    assert missing.status_code == 404
    assert missing.json()["code"] == 404


def _json(response: httpx.Response) -> Any:
    """A JSON answer with its numbers exact."""
    return json.loads(response.text, parse_float=Decimal)


def _exact(value: Any) -> Any:
    """``value`` with every number a Decimal, to compare the server's JSON with the
    library's answer exactly."""
    if isinstance(value, dict):
        return {k: _exact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_exact(v) for v in value]
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return Decimal(value)
    return value


def test_the_command_line_writes_the_served_page(
    live: tuple[Registry, dict[str, Any], str],
) -> None:
    reg, made, url = live
    name = made["names"][0]
    args = {"group_by": "user_id", "name": name, "bucket": "week"}
    served = httpx.get(url + "/", params={**WINDOW, **args}).text
    written = run(
        [
            "usage", "series", "--db", reg.location, "--from", WINDOW["from"],
            "--to", WINDOW["to"], "--bucket", "week", "--group-by", "user_id",
            "--name", name, "--format", "html",
        ]
    )  # fmt: skip
    assert written.exit_code == 0, written.stderr
    assert written.stdout == served
    assert "stacked by user" in served
    assert f'href="query-llm/{name}?from=2026-11-01' in served


# --- in a real browser --------------------------------------------------------------------

needs_chromium = pytest.mark.skipif(
    chromium() is None,
    reason="chromium is not installed here (Debian: apt-get install -y chromium; .ci/run does)",
)


@pytest.fixture(scope="module")
def chrome() -> Iterator[Any]:
    if chromium() is None:
        pytest.skip("chromium is not installed here (Debian: apt-get install -y chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright comes with the dev extra")
    with browser() as launched:
        yield launched


def rows(page: Any, table: str) -> list[list[dict[str, str]]]:
    """Each body row of table ``#table`` on ``page``: its cells' shown text, data-value,
    title (the cell's, or its text's: the full value of a cut one), the href of a link
    in it, and the row's data-name."""
    result: list[list[dict[str, str]]] = page.eval_on_selector_all(
        f"#{table} tbody tr",
        """rows => rows.map(r => Array.from(r.cells).map(c => ({
            text: c.innerText.trim(), value: c.dataset.value || "",
            title: c.getAttribute("title") || (c.querySelector("[title]") || {}).title || "",
            href: (c.querySelector("a") || {}).href || "",
            row: r.dataset.name || ""})))""",
    )
    return result


class Visit:
    """One page in a fresh browser context: every request it made, and its console."""

    def __init__(self, chrome: Any, url: str, width: int) -> None:
        self.context = chrome.new_context(viewport={"width": width, "height": 900})
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.console: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("console", lambda message: self.console.append(message.text))
        self.page.on("pageerror", lambda error: self.console.append(str(error)))
        self.response = self.page.goto(url)

    def rows(self, table: str) -> list[list[dict[str, str]]]:
        return rows(self.page, table)

    def overflow(self) -> int:
        """How many pixels the page is wider than the window (0: none)."""
        width: int = self.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        return width

    def close(self) -> None:
        self.context.close()


def _shown(value: Decimal | int, cell: Mapping[str, str]) -> None:
    """A cell shows ``value`` rounded for reading, and holds it exactly."""
    assert cell["text"].replace("\u2009", "") == numbers.shown(value), cell
    assert cell["value"] == numbers.exact(value), cell


def _sum(data: Sequence[Mapping[str, Any]], keep: Any) -> dict[str, Any]:
    """The counters of a series' results that ``keep`` keeps, added up."""
    total: dict[str, Any] = {}
    for bucket in data:
        for row in bucket["results"]:
            if keep(row):
                for key in ("requests", *AMOUNTS):
                    total[key] = total.get(key, 0) + row[key]
    return total


def _check_usage_cells(cells: Sequence[Mapping[str, str]], counters: Mapping[str, Any]) -> None:
    _shown(int(counters["requests"]), cells[0])
    _shown(int(measure(counters, "tokens")), cells[1])
    _shown(Decimal(measure(counters, "cost")), cells[2])
    assert cells[2]["title"] == numbers.exact(Decimal(measure(counters, "cost")))


@needs_chromium
@pytest.mark.parametrize("width", [*WIDTHS, 2600])
def test_no_horizontal_overflow_and_long_ids_stay_in_their_box(
    live: tuple[Registry, dict[str, Any], str], chrome: Any, width: int
) -> None:
    url = live[2]
    for path in ("/" + GROUPED + ",name", f"/query-model/{live[1]['models'][1]}{QUERY}"):
        visit = Visit(chrome, url + path, width)
        try:
            assert visit.overflow() <= 0, path
            # The 256-character id is cut, its full value on hover, and the numbers
            # beside it stay on screen: inside the table's box, which fits the window.
            boxes = visit.page.eval_on_selector_all(
                ".scroll",
                "bs => bs.map(b => [b.scrollWidth, b.clientWidth,"
                " b.getBoundingClientRect().right])",
            )
            for scroll_width, client_width, right in boxes:
                assert right <= width
                if width >= 1280:
                    assert scroll_width <= client_width, path  # nothing to scroll to
            if path.startswith("/?"):
                long = visit.page.locator(f'#query-llms a[title="{LONG_ID}"]')
                assert long.count() == 1
                cost = visit.page.locator(f'#query-llms tr:has(a[title="{LONG_ID}"]) td:last-child')
                box = cost.bounding_box()
                assert box is not None
                if width >= 1280:
                    assert box["x"] + box["width"] <= width
            # Chart text is never squashed: its font is the size the style sheet says.
            sizes = visit.page.eval_on_selector_all(
                "svg text", "ts => ts.map(t => getComputedStyle(t).fontSize)"
            )
            assert set(sizes) <= {"12px", "13px"}
            assert visit.page.locator("svg[preserveAspectRatio]").count() == 0
            # Dates under the bars: more than the two ends, none overlapping another.
            for chart in ("chart-cost", "chart-requests"):
                dates = visit.page.eval_on_selector_all(
                    f"#{chart} text.date",
                    """ts => ts.filter(t => getComputedStyle(t).display !== "none").map(t => {
                        const b = t.getBoundingClientRect(); return [b.left, b.right]; })""",
                )
                assert len(dates) >= 3, (chart, width)
                for (_, right), (left, _) in itertools.pairwise(dates):
                    assert right < left, (chart, width, dates)
        finally:
            visit.close()


@needs_chromium
@pytest.mark.parametrize("width", WIDTHS)
def test_every_number_equals_the_librarys(
    live: tuple[Registry, dict[str, Any], str], chrome: Any, width: int
) -> None:
    reg, made, url = live
    visit = Visit(chrome, url + "/" + GROUPED, width)
    try:
        at: dict[str, Any] = {"start": WINDOW["from"], "end": WINDOW["to"]}
        series = reg.usage_series(WINDOW["from"], WINDOW["to"], group_by=["user_id"])
        # The charts: a bar per bucket, a segment per user, each its exact value.
        for kind in ("cost", "requests"):
            bars = visit.page.eval_on_selector_all(
                f"#chart-{kind} g.bucket",
                """gs => gs.map(g => ({start: g.dataset.start, total: g.dataset.total,
                    title: g.querySelector("title").textContent,
                    parts: Array.from(g.querySelectorAll("rect.s")).map(
                        r => [r.dataset.group, r.dataset.value])}))""",
            )
            assert [b["start"] for b in bars] == [s["start"] for s in series]
            for bar, bucket in zip(bars, series, strict=True):
                values = {
                    labels.of(r, ["user_id"], {}): measure(r, kind)
                    for r in bucket["results"]
                    if measure(r, kind)
                }
                total = sum(values.values(), Decimal(0) if kind == "cost" else 0)
                assert bar["total"] == numbers.exact(total)
                assert {g: Decimal(v) for g, v in bar["parts"]} == values
                for group, value in values.items():
                    assert f"{group}: {numbers.exact(value)}" in bar["title"]  # on hover
            # The y axis: round ticks from 0 to the chart's top, a gridline at each.
            ticks = [
                Decimal(t.replace(",", ""))
                for t in visit.page.eval_on_selector_all(
                    f"#chart-{kind} text.tick", "ts => ts.map(t => t.textContent)"
                )
            ]
            top = Decimal(visit.page.get_attribute(f"#chart-{kind}", "data-top") or "")
            assert ticks[0] == 0
            assert ticks[-1] == top >= max(Decimal(b["total"]) for b in bars)
            assert ticks == sorted(ticks)
            assert len({b - a for a, b in itertools.pairwise(ticks)}) == 1  # evenly spaced
            lines = visit.page.locator(f"#chart-{kind} line").count()
            assert lines == len(ticks)
        # The legend: who spent what, each user's totals over the window.
        groups = {row[0]["text"]: row[1:] for row in visit.rows("groups")}
        users = {None: "(no user)", "alice": "alice"} | {u: u for u in (HOSTILE_USER, FORMULA_USER)}
        assert set(groups) == set(users.values())
        monthly = reg.usage_series(**at, bucket="month", group_by=["user_id"])
        for user, shown in users.items():
            _check_usage_cells(groups[shown], _sum(monthly, lambda r, u=user: r["user_id"] == u))
        # The Query LLMs and Query Models: their statistics over the window.
        llms = visit.rows("query-llms")
        assert {row[0]["row"] for row in llms} == set(made["names"])
        for row in llms:
            got = reg.get(row[0]["row"], metadata=True, **at)
            assert row[0]["title"] == got["id"]
            assert row[1]["text"] == got["mode"]
            assert row[2]["value"] == got["name"]
            _check_usage_cells(row[3:], got)
        models = visit.rows("query-models")
        assert {row[0]["row"] for row in models} == set(made["models"])
        for row in models:
            got = reg.get_model(row[0]["row"], metadata=True, **at)
            assert row[0]["title"] == labels.model(got)
            _shown(len(got["models"]), row[1])
            _check_usage_cells(row[3:], got)
        whole = _sum(reg.usage_series(**at, bucket="month"), lambda r: True)
        assert visit.page.get_attribute("#total-requests", "data-value") == str(whole["requests"])
        assert visit.page.inner_text("#total-cost") == numbers.shown(measure(whole, "cost"))
        # Costs line up on their decimal point.
        points = visit.page.eval_on_selector_all(
            "#query-llms td.num[title] .f",
            "fs => fs.map(f => Math.round(f.getBoundingClientRect().left))",
        )
        assert len(set(points)) == 1
    finally:
        visit.close()


@needs_chromium
def test_links_lead_to_each_items_page(
    live: tuple[Registry, dict[str, Any], str], chrome: Any
) -> None:
    reg, _, url = live
    visit = Visit(chrome, url + "/" + QUERY, 1280)
    at: dict[str, Any] = {"start": WINDOW["from"], "end": WINDOW["to"]}
    try:
        for table, read, title in (
            ("query-llms", reg.get, labels.llm),
            ("query-models", reg.get_model, labels.model),
        ):
            for row in visit.rows(table):
                page = visit.context.new_page()
                try:
                    answer = page.goto(row[0]["href"])
                    assert answer is not None
                    assert answer.status == 200
                    got = read(row[0]["row"], metadata=True, **at)
                    assert page.inner_text("#title").endswith(title(got))
                    assert page.inner_text("#name") == got["name"]
                    shown = page.eval_on_selector_all(
                        "#totals dd", "ds => ds.map(d => [d.dataset.key, d.dataset.value])"
                    )
                    assert dict(shown)["requests"] == str(got["requests"])
                    assert Decimal(dict(shown)["cost"]) == measure(got, "cost")
                    assert json.loads(page.inner_text("#body"))["name"] == got["name"]
                    if table == "query-models":  # its members, each linked to its page
                        members = {m[0]["row"]: m for m in rows(page, "members")}
                        assert set(members) == {m["name"] for m in got["models"]}
                        for member in members.values():
                            assert "/query-llm/" in member[0]["href"]
                    page.click("text=All usage in this window")
                    assert page.url == f"{url}/{QUERY}&bucket=day"
                finally:
                    page.close()
        missing = visit.context.new_page()
        answer = missing.goto(f"{url}/query-llm/{'A' * 22}")
        assert answer is not None
        assert answer.status == 404
        assert "no Query LLM named" in missing.inner_text("#errors")
    finally:
        visit.close()


@needs_chromium
@pytest.mark.parametrize("width", WIDTHS)
def test_hostile_ids_are_inert_and_nothing_is_fetched(
    live: tuple[Registry, dict[str, Any], str], chrome: Any, width: int
) -> None:
    url = live[2]
    for path in ("/" + GROUPED + ",name,query_model", f"/query-model/{live[1]['models'][1]}"):
        visit = Visit(chrome, url + path, width)
        try:
            assert visit.response is not None
            policy = visit.response.headers["content-security-policy"]
            assert "default-src 'none'" in policy
            assert visit.page.title().startswith("Query")  # no script of an id ran
            assert visit.page.locator("img").count() == 0
            assert visit.page.locator("script").count() == 1
            assert visit.requests == [url + path]  # the page itself, nothing else
            assert visit.console == []  # no CSP violation: nothing even tried
        finally:
            visit.close()
    visit = Visit(chrome, url + "/" + GROUPED, 1280)
    try:
        cells = [row[0]["title"] for row in visit.rows("query-llms")]
        assert HOSTILE_ID in cells
        assert HOSTILE_IMG in cells
        assert HOSTILE_USER in [row[0]["text"] for row in visit.rows("groups")]
    finally:
        visit.close()


@needs_chromium
def test_csv_downloads_what_is_shown(
    live: tuple[Registry, dict[str, Any], str], chrome: Any, tmp_path: Path
) -> None:
    reg, made, url = live
    context = chrome.new_context(accept_downloads=True)
    page = context.new_page()
    try:
        page.goto(url + "/" + GROUPED)
        with page.expect_download() as caught:
            page.click("#query-llms-csv")
        saved = tmp_path / "query-llms.csv"
        caught.value.save_as(saved)
        text = saved.read_bytes().decode("utf-8")
        lines = text.split("\r\n")
        assert lines[0] == "Query LLM,mode,name,requests,tokens,cost"
        import csv as reader

        rows = list(reader.reader(lines[1:-1]))
        assert {r[2] for r in rows} == set(made["names"])
        for row in rows:
            got = reg.get(row[2], metadata=True, start=WINDOW["from"], end=WINDOW["to"])
            expected_id = "'" + got["id"] if got["id"].startswith("=") else got["id"]
            assert row[0] == expected_id  # a formula is made text
            assert Decimal(row[5]) == measure(got, "cost")  # every digit
        with page.expect_download() as caught:
            page.click("#groups-csv")
        caught.value.save_as(saved)
        users = [r[0] for r in reader.reader(saved.read_bytes().decode().split("\r\n")[1:-1])]
        assert "'@sum(1+1)" in users
    finally:
        context.close()


@needs_chromium
def test_the_form_keeps_what_was_typed(
    live: tuple[Registry, dict[str, Any], str], chrome: Any
) -> None:
    url = live[2]
    visit = Visit(chrome, url + "/" + QUERY, 390)
    try:
        assert visit.page.get_attribute("#field-from", "type") == "date"
        visit.page.fill("#field-from", "2026-11-20")  # later than "to": refused
        visit.page.check("input[value=model]")
        visit.page.click("button[type=submit]")
        visit.page.wait_for_load_state()
        assert "/from" in visit.page.inner_text("#errors")
        assert visit.page.input_value("#field-from") == "2026-11-20"
        assert visit.page.input_value("#field-to") == "2026-11-15"
        assert visit.page.is_checked("input[value=model]")
        assert visit.overflow() <= 0
    finally:
        visit.close()


@needs_chromium
@pytest.mark.parametrize("width", WIDTHS)
def test_screenshots_in_docs(
    live: tuple[Registry, dict[str, Any], str], chrome: Any, width: int
) -> None:
    """The screenshots docs/ shows, taken of the page these tests check."""
    visit = Visit(chrome, live[2] + "/" + GROUPED, width)
    try:
        assert visit.overflow() <= 0
        png = visit.page.screenshot(full_page=True)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        target = DOCS / f"dashboard-{width}.png"
        if not target.exists() or target.read_bytes() != png:
            target.write_bytes(png)
    finally:
        visit.close()


def test_a_training_table_model_page_shows_its_rows_and_weights(servers: Servers) -> None:
    """For a training-table Query Model, the page (HTML and JSON) says how many rows its
    table holds and each member's weight for the table as a whole: the library's
    `training_summary`, which moves away from the base weights as marks are added."""
    from tests.behaviour.test_training import VECTORS, stocked

    _, url, path = served = servers.take()
    try:
        with Registry(path) as reg:
            stocked(reg)
            model = VECTORS["names"]["model"]
            summary = reg.training_summary(model)
        page = _json(httpx.get(f"{url}/query-model/{model}", params={"format": "json"}))
        html = httpx.get(f"{url}/query-model/{model}").text
    finally:
        servers.stop(served[0])
    members = page["query_model"]["models"]
    expected = {members[m["index"]]["name"]: m["weight"] for m in summary["models"]}
    assert summary["rows"] > 0
    assert page["training_rows"] == summary["rows"]
    assert {name: float(w) for name, w in page["weights"].items()} == expected
    base = {m["name"]: m["weight"]["base_weight"] for m in members}
    assert expected != base  # the marks moved them
    assert f'<span id="training-rows">{summary["rows"]:,}</span>' in html
    assert page["query_model"]["weight"]["type"] == "training_table"
