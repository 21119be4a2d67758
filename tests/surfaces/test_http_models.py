"""Query Models, usage over time and the dashboard over HTTP: a real `qllm serve`, real clients."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest

import registry
from registry.client import Client
from registry.registry import Registry
from tests.support.data import body
from tests.support.serving import Served

STATIC = {"type": "static"}
MEMBERS = [body(), body(temperature=0.5), body(id="a/b")]
MODEL = {"models": MEMBERS, "weight": STATIC}
WINDOW = {"from": "2026-11-01T00:00:00Z", "to": "2026-11-04T00:00:00Z"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    where = tmp_path_factory.mktemp("served_models")
    server = Served(where / "registry.db", where / "server.log")
    yield server
    assert server.stop() == 0


@pytest.fixture(scope="module")
def stocked(served: Served) -> dict[str, Any]:
    """A model of three members, alice's token, and events over three days (some for the model)."""
    with Registry(served.path) as reg:
        token = reg.create_token("alice")
    with Client(served.url) as client:
        model = client.register_model(MODEL, token=token)
        names = [m.name for m in model.members]
        events = [
            {
                "name": names[i % 3],
                "at": f"2026-11-0{1 + i % 3}T{i % 24:02d}:15:00Z",
                "chat_prompt_tokens": i,
                "chat_cost": f"0.0{i % 10}5",
                "query_model": model.name if i % 2 else None,
                "request_id": f"stocked-{i}",
            }
            for i in range(30)
        ]
        client.record_usage_many(events[:20], token=token)
        client.record_usage_many(events[20:])
    return {"model": model.name, "names": names, "token": token}


def get(served: Served, path: str, **params: Any) -> httpx.Response:
    return httpx.get(served.url + path, params=params)


# --- Query Model routes --------------------------------------------------------------------


def test_query_model_routes(served: Served, stocked: dict[str, Any]) -> None:
    model = stocked["model"]
    posted = httpx.post(served.url + "/query_models", json=MODEL)
    assert posted.status_code == 200
    assert posted.headers["content-type"] == "application/json; charset=utf-8"
    assert posted.json() == registry.dump_model(registry.validate_model(MODEL))
    got = get(served, f"/query_models/{model}", metadata="true", **WINDOW).json()
    with Registry(served.path, readonly=True) as reg:
        expected = reg.get_model(model, metadata=True, start=WINDOW["from"], end=WINDOW["to"])
        assert got == json.loads(json.dumps(expected, default=float))
        assert get(served, "/query_models").json() == {"data": reg.list_models()}
    assert got["requests"] == 15
    assert get(served, "/query_models/count").json() == {"count": 1}
    assert get(served, "/query_models/count", me="true").status_code == 401
    bad = get(served, "/query_models/short")
    assert (bad.status_code, bad.json()["errors"][0]["path"]) == (400, "/name")
    assert get(served, "/query_models/" + "0" * 22).status_code == 404
    refused = httpx.post(served.url + "/query_models", json={"models": [], "weight": STATIC})
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["path"] == "/models"
    assert httpx.delete(served.url + "/query_models").status_code == 405


def test_query_model_in_usage_bodies_is_refused_at_its_path(
    served: Served, stocked: dict[str, Any]
) -> None:
    model, names = stocked["model"], stocked["names"]
    with Client(served.url) as client:
        outsider = client.register(body(id="out/sider")).name
    before = get(served, f"/query_models/{model}", metadata="true").json()["requests"]
    one = httpx.post(served.url + "/usage", json={"name": outsider, "query_model": model})
    assert one.status_code == 400
    assert [e["path"] for e in one.json()["errors"]] == ["/query_model"]
    events = [{"name": names[0], "query_model": model}] * 3 + [
        {"name": outsider, "query_model": model}
    ]
    array = httpx.post(served.url + "/usage", json=events)
    assert [e["path"] for e in array.json()["errors"]] == ["/3/query_model"]
    lines = "\n".join(json.dumps(e) for e in events[:2]) + "\n\n" + json.dumps(events[3]) + "\n"
    ndjson = httpx.post(
        served.url + "/usage",
        content=lines.encode(),
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert ndjson.status_code == 400
    assert [e["path"] for e in ndjson.json()["errors"]] == ["/4/query_model"]  # 1-based, blank kept
    unknown = httpx.post(served.url + "/usage", json={"name": names[0], "query_model": outsider})
    assert unknown.json()["errors"][0] == {
        "path": "/query_model",
        "message": f"{outsider} is not a registered Query Model",
    }
    after = get(served, f"/query_models/{model}", metadata="true").json()["requests"]
    assert after == before
    written = httpx.post(served.url + "/usage", json={"name": names[1], "query_model": model})
    assert written.json() == {"written": 1}
    assert get(served, f"/query_models/{model}", metadata="true").json()["requests"] == before + 1


def test_openai_client_registers_a_query_model(served: Served, stocked: dict[str, Any]) -> None:
    client = openai.OpenAI(base_url=served.url, api_key=stocked["token"], max_retries=0)
    got = client.post(
        "/query_models", body={"models": MEMBERS[:2], "weight": STATIC}, cast_to=object
    )
    assert isinstance(got, dict)
    assert [m["index"] for m in got["models"]] == [0, 1]
    with pytest.raises(openai.BadRequestError, match="/models: "):
        client.post("/query_models", body={"models": [], "weight": STATIC}, cast_to=object)
    series = client.get(
        "/usage",
        cast_to=object,
        options={"params": {**WINDOW, "group_by": ["name"], "name": stocked["names"][:1]}},
    )
    assert isinstance(series, dict)
    assert {r["name"] for b in series["data"] for r in b["results"]} == {stocked["names"][0]}


# --- GET /usage ----------------------------------------------------------------------------


def test_usage_series_lists_in_three_forms(served: Served, stocked: dict[str, Any]) -> None:
    names = stocked["names"]
    with Registry(served.path, readonly=True) as reg:
        expected = reg.usage_series(
            WINDOW["from"], WINDOW["to"], group_by=["name", "user_id"], names=names[:2]
        )
    expected_json = json.loads(json.dumps({"data": expected}, default=float))
    base = served.url + "/usage?from=2026-11-01T00:00:00Z&to=2026-11-04T00:00:00Z"
    forms = [
        f"&group_by=name&group_by=user_id&name={names[0]}&name={names[1]}",
        f"&group_by[]=name&group_by[]=user_id&name[]={names[0]}&name[]={names[1]}",
        f"&group_by=user_id,name&name={names[1]}&name[]={names[0]}",
        f"&group_by=name%2Cuser_id&group_by[]=name&name={names[0]}&name[]={names[1]}",
    ]
    for form in forms:
        response = httpx.get(base + form)
        assert response.status_code == 200, response.text
        assert response.json() == expected_json
    assert sum(r["requests"] for b in expected for r in b["results"]) == 20


def test_usage_series_errors(served: Served, stocked: dict[str, Any]) -> None:
    def paths(**params: Any) -> list[str]:
        response = get(served, "/usage", **params)
        assert response.status_code == 400, response.text
        return [e["path"] for e in response.json()["errors"]]

    assert paths() == ["/from"]
    assert paths(**WINDOW, bucket="minute", group_by="name,colour") == ["/bucket", "/group_by"]
    assert paths(**WINDOW, name="nope") == ["/name"]
    assert paths(**WINDOW, query_model="nope") == ["/query_model"]
    assert paths(**{"from": "2026-11-01T00:00:00 01:00", "bucket": "minute"}) == [
        "/bucket",
        "/from",
    ]
    too_many = get(served, "/usage", **{"from": "2026-01-01", "to": "2026-03-01", "bucket": "hour"})
    assert "bucket=day" in too_many.json()["message"]
    assert get(served, "/usage", **WINDOW, me="true").status_code == 401
    mine = httpx.get(
        served.url + "/usage",
        params={**WINDOW, "me": "true"},
        headers={"Authorization": f"Bearer {stocked['token']}"},
    )
    assert sum(r["requests"] for b in mine.json()["data"] for r in b["results"]) == 20


def test_client_usage_series_equals_the_library(served: Served, stocked: dict[str, Any]) -> None:
    query: dict[str, Any] = {
        "start": WINDOW["from"],
        "end": WINDOW["to"],
        "bucket": "hour",
        "group_by": ("query_model", "user_id"),
        "query_model": stocked["model"],
    }
    with Registry(served.path, readonly=True) as reg, Client(served.url) as client:
        assert client.usage_series(**query) == reg.usage_series(**query)
        day = client.usage_series(WINDOW["from"], WINDOW["to"], names=stocked["names"][2])
        assert day == reg.usage_series(WINDOW["from"], WINDOW["to"], names=[stocked["names"][2]])
        costs = [r["chat_cost"] for b in day for r in b["results"]]
        assert costs
        assert all(isinstance(cost, Decimal) for cost in costs)


# --- the dashboard -------------------------------------------------------------------------


def test_dashboard_html_with_a_strict_policy(served: Served, stocked: dict[str, Any]) -> None:
    page = get(served, "/", **WINDOW)
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'unsafe-inline'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert f'<tr data-name="{stocked["model"]}">' in page.text
    browser = httpx.get(
        served.url + "/",
        headers={"Accept": "text/html,application/xhtml+xml,application/json;q=0.9,*/*;q=0.8"},
    )
    assert browser.headers["content-type"].startswith("text/html")


def test_dashboard_as_json(served: Served, stocked: dict[str, Any]) -> None:
    by_query = get(served, "/", format="json", **WINDOW)
    by_accept = httpx.get(served.url + "/", params=WINDOW, headers={"Accept": "application/json"})
    assert by_query.headers["content-type"] == "application/json; charset=utf-8"
    assert by_query.json() == by_accept.json()
    data = by_query.json()
    assert (data["from"], data["to"], data["bucket"]) == (WINDOW["from"], WINDOW["to"], "day")
    with Registry(served.path, readonly=True) as reg:
        model = reg.get_model(
            stocked["model"], metadata=True, start=WINDOW["from"], end=WINDOW["to"]
        )
        series = reg.usage_series(WINDOW["from"], WINDOW["to"])
    shown = {m["name"]: m for m in data["query_models"]}
    assert shown[stocked["model"]] == json.loads(json.dumps(model, default=float))
    assert data["data"] == json.loads(json.dumps(series, default=float))
    assert {llm["name"] for llm in data["query_llms"]} >= set(stocked["names"])
    bad = get(served, "/", format="json", bucket="minute").json()
    assert bad["errors"][0]["path"] == "/bucket"  # shown, with the default window's data
    assert bad["bucket"] == "day"
