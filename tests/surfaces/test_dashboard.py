"""The dashboard page: rendered here, and served by a live ``qllm serve`` to headless Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from registry import Registry
from registry.render import dashboard
from tests.support.browser import Dom, chromium, dump_dom, screenshot
from tests.support.data import body
from tests.support.servers import Servers

STATIC = {"type": "static"}
HOSTILE_ID = "evil/<script>document.title='pwned'</script>"
WINDOW = {"from": "2026-11-01", "to": "2026-11-08"}
QUERY = "?from=2026-11-01&to=2026-11-08"


@pytest.fixture(scope="module")
def live(servers: Servers) -> Iterator[tuple[Registry, list[str], str]]:
    """A live ``qllm serve`` on a filled file: the registry on that file, its names, its URL."""
    _, url, path = served = servers.take()
    try:
        with Registry(path) as reg:
            yield (*_fill(reg), url)
    finally:
        servers.stop(served[0])


@pytest.fixture(scope="module")
def board_reg(live: tuple[Registry, list[str], str]) -> tuple[Registry, list[str]]:
    return live[0], live[1]


def _fill(reg: Registry) -> tuple[Registry, list[str]]:
    """Three Query LLMs (one with a hostile upstream id), two Query Models of them, and a
    week of uneven usage, some of it recorded for a Query Model."""
    names = [
        reg.register(body()).name,
        reg.register(body(id="meta/llama")).name,
        reg.register(body(id=HOSTILE_ID)).name,
    ]
    pair = reg.register_model({"models": [body(), body(id="meta/llama")], "weight": STATIC})
    everyone = reg.register_model({"models": [body(id=HOSTILE_ID), body()], "weight": STATIC})
    token = reg.create_token("alice")
    events = []
    for day in range(1, 8):
        for i in range(day % 4):  # 1, 2, 3, 0, 1, 2, 3 events a day
            name = names[(day + i) % 3]
            model = pair if name in {m.name for m in pair.members} and i else everyone
            events.append(
                {
                    "name": name,
                    "at": f"2026-11-0{day}T{10 + i}:30:00Z",
                    "chat_prompt_tokens": 100 * day,
                    "chat_cost": f"0.{day}5",
                    "embedding_cost": "0.000000001",
                    "query_model": model.name if name in {m.name for m in model.members} else None,
                }
            )
    reg.record_usage_many(events[::2], token=token)
    reg.record_usage_many(events[1::2])
    return reg, names


def test_every_user_string_is_escaped(board_reg: tuple[Registry, list[str]]) -> None:
    reg, _ = board_reg
    html = dashboard.page(reg, WINDOW | {"from": "<b>2026"})
    assert "<script>document" not in html
    assert html.count("<script>") == 1  # the page's own sorting script
    assert "evil/&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in html
    assert "&#x27;&lt;b&gt;2026&#x27;" in html  # a bad query is shown back as text
    assert '<ul class="errors"><li>/from' in html


def test_self_contained(board_reg: tuple[Registry, list[str]]) -> None:
    html = dashboard.page(board_reg[0], WINDOW)
    assert not re.search(r"<link|<img|@import|url\(|\bsrc=", html)
    assert re.findall(r'href="[^"]*"', html) == []
    # The only absolute URL is the SVG namespace, which is a name, not a fetch.
    assert set(re.findall(r"https?://[^\"' ]+", html)) == {"http://www.w3.org/2000/svg"}


def test_default_window_is_the_last_30_days(reg: Registry) -> None:
    board = dashboard.gather(reg)
    assert len(board.series) == 30
    assert board.series[-1]["end"] == board.end
    assert board.end.endswith("T00:00:00Z")
    html = dashboard.render(board)
    assert html.count('class="bar"') == 60  # cost and requests, one bar per day each


def test_week_buckets(board_reg: tuple[Registry, list[str]]) -> None:
    html = dashboard.page(board_reg[0], WINDOW | {"bucket": "week"})
    # Sunday 2026-11-01 is the tail of a week; Monday 11-02 to 11-08 is the next.
    assert re.findall(r'data-bucket="([^"]+)"', html)[:2] == [
        "2026-11-01T00:00:00Z",
        "2026-11-02T00:00:00Z",
    ]


# --- in a real browser --------------------------------------------------------------------

needs_chromium = pytest.mark.skipif(
    chromium() is None,
    reason="chromium is not installed here (Debian: apt-get install -y chromium; .ci/run does)",
)


@pytest.fixture(scope="module")
def rendered(live: tuple[Registry, list[str], str]) -> tuple[Dom, str]:
    """The page as Chromium rendered it from the live server's ``GET /``."""
    url = live[2] + "/" + QUERY
    return Dom(dump_dom(url)), url


@needs_chromium
@pytest.mark.parametrize("kind", ["cost", "requests"])
def test_one_bar_per_bucket_heights_proportional(
    board_reg: tuple[Registry, list[str]], rendered: tuple[Dom, str], kind: str
) -> None:
    reg, _ = board_reg
    dom, _ = rendered
    series = reg.usage_series(WINDOW["from"], WINDOW["to"])
    bars = dom.find("rect", inside=f"chart-{kind}")
    assert [b["data-bucket"] for b, _ in bars] == [s["start"] for s in series]
    expected = [
        sum(
            (
                Decimal(r["chat_cost"]) + Decimal(r["embedding_cost"])
                if kind == "cost"
                else Decimal(r["requests"])
                for r in s["results"]
            ),
            Decimal(0),
        )
        for s in series
    ]
    assert [Decimal(b["data-value"]) for b, _ in bars] == expected
    top = max(expected)
    for (attrs, _), value in zip(bars, expected, strict=True):
        ratio = float(value / top)
        assert abs(float(attrs["height"]) / dashboard.CHART_HEIGHT - ratio) < 1e-3
    assert float(bars[3][0]["height"]) == 0  # 2026-11-04 had no events: a bar of height 0


@needs_chromium
def test_table_totals_equal_the_metadata(
    board_reg: tuple[Registry, list[str]], rendered: tuple[Dom, str]
) -> None:
    reg, names = board_reg
    dom, _ = rendered
    rows = dom.find("tr", inside="query-llms")
    by_name: dict[str, list[str]] = {}
    for attrs, _ in rows:
        if "data-name" in attrs:
            by_name[attrs["data-name"]] = []
    cells = [
        (attrs, text)
        for attrs, text in dom.find("td", inside="query-llms")
        if "data-value" in attrs
    ]
    assert set(by_name) == set(names)
    per_row = 9
    assert len(cells) == per_row * len(names)
    for i in range(len(names)):
        row = cells[i * per_row : (i + 1) * per_row]
        name = row[0][0]["data-value"]
        got: dict[str, Any] = reg.get(name, metadata=True, start=WINDOW["from"], end=WINDOW["to"])
        assert int(row[4][0]["data-value"]) == got["requests"]
        tokens = sum(got[k] for k in got if k.endswith("_tokens"))
        assert int(row[5][0]["data-value"]) == tokens
        assert Decimal(row[6][0]["data-value"]) == got["chat_cost"]
        assert Decimal(row[7][0]["data-value"]) == got["embedding_cost"]
        assert Decimal(row[8][0]["data-value"]) == got["chat_cost"] + got["embedding_cost"]
    (total,) = [text for attrs, text in dom.find("strong") if attrs.get("id") == "total-requests"]
    assert int(total.replace(",", "")) == sum(
        reg.get(n, metadata=True, start=WINDOW["from"], end=WINDOW["to"])["requests"] for n in names
    )


@needs_chromium
def test_model_table_totals_equal_get_model(
    board_reg: tuple[Registry, list[str]], rendered: tuple[Dom, str]
) -> None:
    reg, _ = board_reg
    dom, _ = rendered
    models = reg.list_models()
    cells = [(a, t) for a, t in dom.find("td", inside="query-models") if "data-value" in a]
    per_row = 9
    assert len(cells) == per_row * len(models) == per_row * 2
    seen = set()
    for i in range(len(models)):
        row = cells[i * per_row : (i + 1) * per_row]
        name = row[0][0]["data-value"]
        seen.add(name)
        got = reg.get_model(name, metadata=True, start=WINDOW["from"], end=WINDOW["to"])
        assert got["requests"] > 0
        assert int(row[1][0]["data-value"]) == len(got["models"])
        assert int(row[4][0]["data-value"]) == got["requests"]
        assert int(row[5][0]["data-value"]) == sum(got[k] for k in got if k.endswith("_tokens"))
        assert Decimal(row[6][0]["data-value"]) == got["chat_cost"]
        assert Decimal(row[7][0]["data-value"]) == got["embedding_cost"]
        assert Decimal(row[8][0]["data-value"]) == got["chat_cost"] + got["embedding_cost"]
    assert seen == set(models)


@needs_chromium
def test_a_script_in_an_id_is_shown_as_text(rendered: tuple[Dom, str]) -> None:
    dom, _ = rendered
    title = dom.find("title")[0]  # the page's; the others are the bars' tooltips
    assert title[1] == "Query LLM Registry: usage"  # the id's script never ran
    assert len(dom.find("script")) == 1
    ids = [text for _, text in dom.find("td", inside="query-llms")]
    assert HOSTILE_ID in ids


@needs_chromium
def test_screenshot(live: tuple[Registry, list[str], str], tmp_path: Path) -> None:
    png = screenshot(live[2] + "/" + QUERY, tmp_path / "dashboard.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
