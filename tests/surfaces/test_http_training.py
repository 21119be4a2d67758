"""The training-table routes over HTTP as the ObjectiveAI SDK calls them: an OpenAI-style
client (``client.post`` / ``client.delete`` with a bearer key) marks and unmarks, and the
answers, statuses and headers of HTTP.md, on a real ``qllm serve``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from registry.client import Client
from registry.registry import Registry
from tests.support.data import ROOT
from tests.support.serving import Served

VECTORS: dict[str, Any] = json.loads(
    (ROOT / "tests" / "fixtures" / "training_table_vectors.json").read_text("utf-8")
)
MODEL = VECTORS["names"]["model"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    where = tmp_path_factory.mktemp("served_training")
    server = Served(where / "registry.db", where / "server.log")
    yield server
    assert server.stop() == 0


@pytest.fixture(scope="module")
def tokens(served: Served) -> dict[str, str]:
    """alice recorded the worked example's completions; bob has a token too."""
    with Registry(served.path) as reg:
        alice, bob = reg.create_token("alice"), reg.create_token("bob")
    with Client(served.url, token=alice) as client:
        for key in ("model", "sibling_model", "static_model"):
            client.register_model(VECTORS[key])
        assert client.record_completions([c["record"] for c in VECTORS["completions"]]) == 7
    return {"alice": alice, "bob": bob}


def sdk(served: Served, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.url, api_key=key, max_retries=0)


def test_the_sdk_marks_and_unmarks_with_its_own_calls(
    served: Served, tokens: dict[str, str]
) -> None:
    client = sdk(served, tokens["alice"])
    for completion in VECTORS["completions"]:
        if completion["mark"] is None:
            continue
        done = client.post(
            f"/query/completions/{completion['record']['id']}/training_table",
            body={"correct_confidence_id": completion["mark"]},
            cast_to=object,
        )
        assert done == {}
    with Client(served.url) as reader:
        for query in VECTORS["queries"]:
            got = reader.weights(
                query["query_model"], query["embedding"], query["response_format_hash"]
            )
            assert got == query["expected"]
    assert client.delete("/query/completions/c4/training_table", cast_to=object) == {}
    with Client(served.url) as reader:
        assert "correct_confidence_id" not in reader.get_completion("c4")
    client.post(
        "/query/completions/c4/training_table", body={"correct_confidence_id": "C"}, cast_to=object
    )


def test_the_sdk_sees_the_errors_it_expects(served: Served, tokens: dict[str, str]) -> None:
    bob = sdk(served, tokens["bob"])
    with pytest.raises(openai.AuthenticationError) as refused:
        bob.post(
            "/query/completions/c1/training_table",
            body={"correct_confidence_id": "B"},
            cast_to=object,
        )
    assert refused.value.status_code == 401
    assert isinstance(refused.value.body, dict)
    assert refused.value.body["type"] == "authorization_error"
    assert "another user" in refused.value.body["message"]
    with pytest.raises(openai.AuthenticationError):
        bob.delete("/query/completions/c1/training_table", cast_to=object)
    with pytest.raises(openai.AuthenticationError):
        sdk(served, "sk-placeholder").delete("/query/completions/c1/training_table", cast_to=object)
    alice = sdk(served, tokens["alice"])
    with pytest.raises(openai.NotFoundError):
        alice.post(
            "/query/completions/nope/training_table",
            body={"correct_confidence_id": "A"},
            cast_to=object,
        )
    with pytest.raises(openai.BadRequestError, match="/correct_confidence_id: must be a non-empty"):
        alice.post(
            "/query/completions/c1/training_table",
            body={"correct_confidence_id": ""},
            cast_to=object,
        )
    with pytest.raises(openai.BadRequestError, match="/correct: unknown key"):
        alice.post("/query/completions/c1/training_table", body={"correct": "A"}, cast_to=object)
    with Client(served.url) as reader:
        assert reader.get_completion("c1")["correct_confidence_id"] == "A"


def test_routes_answer_as_http_md_says(served: Served, tokens: dict[str, str]) -> None:
    url = served.url
    headers = {"Authorization": f"Bearer {tokens['alice']}"}
    record = {k: v for k, v in VECTORS["completions"][0]["record"].items() if k != "id"}
    replay = httpx.put(f"{url}/query/completions/c1", json=record, headers=headers)
    assert replay.status_code == 200
    assert replay.json() == {"written": 0}
    conflict = httpx.put(
        f"{url}/query/completions/c1", json={**record, "response_format_hash": "x"}, headers=headers
    )
    assert conflict.status_code == 409
    assert conflict.headers["x-should-retry"] == "false"
    assert conflict.json()["errors"] == [
        {"path": "/id", "message": "was recorded before with different content"}
    ]
    unknown_model = httpx.put(
        f"{url}/query/completions/new", json={**record, "query_model": "0" * 22}, headers=headers
    )
    assert unknown_model.status_code == 400
    assert unknown_model.json()["errors"][0]["path"] == "/query_model"
    wrong = httpx.put(f"{url}/query/completions/new", json={**record, "id": "new"}, headers=headers)
    assert wrong.status_code == 400
    assert httpx.get(f"{url}/query/completions/new").status_code == 404
    got = httpx.get(f"{url}/query/completions/c1", params={"embedding": "true"})
    assert got.status_code == 200
    assert got.headers["content-type"] == "application/json; charset=utf-8"
    assert got.json()["embedding"] == [1.0, 0.0, 0.0]
    assert httpx.get(f"{url}/query/completions/c1", params={"embedding": "yes"}).status_code == 400
    weights = httpx.post(f"{url}/query_models/{MODEL}/weights", json={"embedding": [1, 0, 0]})
    assert weights.status_code == 200
    assert list(weights.json()) == ["models", "query_model", "rows"]
    assert httpx.post(f"{url}/query_models/abc/weights", json={"embedding": [1]}).status_code == 400
    missing = httpx.post(f"{url}/query_models/{'0' * 22}/weights", json={"embedding": [1]})
    assert missing.status_code == 404
    nan = httpx.post(
        f"{url}/query_models/{MODEL}/weights",
        content=b'{"embedding": [NaN, 1]}',
        headers={"Content-Type": "application/json"},
    )
    assert nan.status_code == 400
    assert nan.json()["errors"] == [
        {"path": "/embedding/0", "message": "must be a number, not nan"}
    ]
    not_json = httpx.post(f"{url}/query_models/{MODEL}/weights", content=b"[1]")
    assert not_json.status_code == 415
    other = httpx.patch(f"{url}/query/completions/c1/training_table")
    assert other.status_code == 405
    assert set(other.headers["allow"].split(", ")) == {"POST", "DELETE"}
    batch = httpx.post(
        f"{url}/query/completions", json=[{**record, "id": "n1", "embedding": [0, 0]}]
    )
    assert batch.status_code == 400
    assert batch.json()["errors"][0]["path"] == "/0/embedding"
