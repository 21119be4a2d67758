"""`qllm serve` as a user meets it: a real server process, real clients, hostile input."""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jsonschema
import openai
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import registry
from registry.api import RegistryApi
from registry.cli import cli
from registry.client import Client
from registry.registry import Registry
from registry.schema import json_schema
from tests.support.data import body, load_vectors
from tests.support.serving import QLLM, Served


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    where = tmp_path_factory.mktemp("served")
    server = Served(where / "registry.db", where / "server.log")
    yield server
    assert server.stop() == 0


@pytest.fixture(scope="module")
def token(served: Served) -> str:
    with Registry(served.path) as reg:
        return reg.create_token("alice")


@pytest.fixture(scope="module")
def name(served: Served) -> str:
    with Client(served.url) as client:
        return client.register(body(temperature=0.5)).name


def post(url: str, content: bytes, content_type: str = "application/json") -> httpx.Response:
    return httpx.post(url, content=content, headers={"Content-Type": content_type})


# --- the surface ---------------------------------------------------------------------------


def test_registry_and_client_share_one_api(served: Served, tmp_path: Path) -> None:
    """mypy checks that both surfaces have every public method, with the same signatures."""
    apis: list[RegistryApi] = [Registry(tmp_path / "r.db"), registry.Client(served.url)]
    for api in apis:
        assert api.count() >= 0
        api.close()


def test_errors_are_json_with_both_shapes(served: Served) -> None:
    """Unknown routes and methods answer JSON with code, message and error, never plain text."""
    missing = httpx.get(served.url + "/nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/json; charset=utf-8"
    assert missing.json()["error"] == {"code": 404, "message": "no route GET /nope"}
    wrong = httpx.delete(served.url + "/query_llms")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET, HEAD, POST"  # every method of the path
    assert wrong.json()["code"] == 405


def test_validation_errors_list_every_problem(served: Served) -> None:
    response = httpx.post(served.url + "/query_llms", json=body(temperature=3, top_p=-1))
    assert response.status_code == 400
    data = response.json()
    assert [e["path"] for e in data["errors"]] == ["/temperature", "/top_p"]
    assert data["message"] == data["error"]["message"]
    assert data["message"].splitlines()[0].startswith("/temperature: ")


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"{", "application/json", 400),
        (b"\xff\xfe", "application/json", 400),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", 400),
        (b"{}", "text/plain", 415),
        (b"{}", "", 415),
        (b"a" * (1024 * 1024 + 1), "application/json", 413),
    ],
    ids=["truncated", "not utf-8", "deep", "text", "none", "over 1 MiB"],
)
def test_hostile_bodies(served: Served, content: bytes, content_type: str, status: int) -> None:
    response = post(served.url + "/query_llms", content, content_type)
    assert response.status_code == status
    assert response.json()["code"] == status
    assert "Traceback" not in response.text


def test_usage_over_the_limit_is_refused_before_it_is_read(served: Served) -> None:
    """A Content-Length over 256 MiB is answered 413 at once, the body never sent."""
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(
            b"POST /usage HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 300000000\r\n\r\n"
        )
        answer = b""
        while b'"code":413' not in answer and (chunk := sock.recv(65536)):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413")
    assert b'"code":413' in answer


def test_bad_authorization(served: Served, token: str) -> None:
    for header in ("Basic abc", f"Token {token}", "Bearer nope"):
        response = httpx.get(served.url + "/query_llms/count", headers={"Authorization": header})
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
    anonymous = httpx.get(served.url + "/query_llms/count", headers={"Authorization": "Bearer"})
    assert anonymous.status_code == 200
    assert (
        httpx.get(served.url + "/health", headers={"Authorization": "Basic x"}).status_code == 200
    )


def test_me_without_a_token_is_an_authorization_error(served: Served, name: str) -> None:
    with Client(served.url) as client, pytest.raises(registry.AuthorizationError):
        client.get(name, metadata=True, me=True)


def test_plus_decoded_as_space_says_so(served: Served, name: str) -> None:
    url = f"{served.url}/query_llms/{name}?metadata=true&from=2026-11-01T00:00:00+01:00"
    data = httpx.get(url).json()
    assert data["errors"][0]["path"] == "/from"
    assert "%2B" in data["errors"][0]["message"]
    encoded = f"{served.url}/query_llms/{name}?metadata=true&from=2026-11-01T00:00:00%2B01:00"
    assert httpx.get(encoded).status_code == 200


def test_name_in_path(served: Served) -> None:
    assert httpx.get(served.url + "/query_llms/abc").json()["errors"][0]["path"] == "/name"
    assert httpx.get(served.url + "/query_llms/" + "0" * 22).status_code == 404


def test_costs_are_exact_json_numbers(served: Served, name: str) -> None:
    with Client(served.url) as client:
        client.record_usage_many([{"name": name, "chat_cost": "0.1"}] * 10)
        client.record_usage(name, chat_cost=Decimal("0.0125"))
    text = httpx.get(f"{served.url}/query_llms/{name}?metadata=true").text
    data = json.loads(text, parse_float=Decimal)
    assert data["chat_cost"] >= Decimal("1.0125")
    assert "99999" not in text


def test_openapi_lists_every_route_and_the_generated_schemas(served: Served) -> None:
    document = httpx.get(served.url + "/openapi.json").json()
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) == {
        "/query_llms",
        "/query_llms/count",
        "/query_llms/{name}",
        "/query_models",
        "/query_models/count",
        "/query_models/{name}",
        "/usage",
        "/",
        "/health",
        "/openapi.json",
        "/query/completions",
        "/query/completions/{id}",
        "/query/completions/{id}/training_table",
        "/query_models/{name}/weights",
    }
    assert document["components"]["schemas"]["QueryLlm"]["additionalProperties"] is False
    models = document["components"]["schemas"]["QueryModel"]["properties"]["models"]
    assert models["items"] == {"$ref": "#/components/schemas/QueryLlm"}
    assert set(document["paths"]["/usage"]) == {"get", "post"}
    body_schema = document["paths"]["/query_models"]["post"]["requestBody"]
    assert body_schema["content"]["application/json"]["schema"]["$ref"].endswith("/QueryModel")


def test_every_valid_vector_fits_the_generated_schema() -> None:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    for vector in load_vectors()["valid"]:
        jsonschema.validate(vector["body"], schema, cls=jsonschema.Draft202012Validator)
        jsonschema.validate(vector["normalized"], schema, cls=jsonschema.Draft202012Validator)


def test_qllm_schema_prints_it() -> None:
    result = CliRunner().invoke(cli, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.output) == json.loads(json.dumps(json_schema()))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
FIELDS = st.sampled_from(["id", "mode", "weight", "temperature", "stop", "provider", "top_k"])


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    payload=st.dictionaries(FIELDS, JSON, max_size=5) | JSON,
    query=st.dictionaries(st.sampled_from(["metadata", "me", "from", "to"]), st.text(max_size=6)),
)
def test_no_input_is_a_defect(served: Served, payload: Any, query: dict[str, str]) -> None:
    """Generated bodies and query fields never get a 500 (or a traceback)."""
    with httpx.Client(base_url=served.url) as http:
        for method, path in (("POST", "/query_llms"), ("POST", "/usage")):
            content = json.dumps(payload).encode()
            response = http.request(
                method,
                path,
                params=query,
                content=content,
                headers={"Content-Type": "application/json"},
            )
            assert response.status_code < 500, response.text
        got = http.get("/query_llms", params=query)
        assert got.status_code < 500, got.text


# --- POST /usage -----------------------------------------------------------------------------


def test_json_lines_errors_name_the_line(served: Served, name: str) -> None:
    good = json.dumps({"name": name}).encode()
    lines = b"\n".join([good, b"", good, b'{"name": "%s", "chat_cost": -1}' % name.encode()])
    data = post(served.url + "/usage", lines, "application/x-ndjson").json()
    assert data["errors"] == [{"path": "/4/chat_cost", "message": data["errors"][0]["message"]}]
    broken = post(served.url + "/usage", good + b"\nnope\n", "application/x-ndjson").json()
    assert broken["errors"][0]["path"] == "/2"
    unknown = post(served.url + "/usage", b'[{"name": "' + b"0" * 22 + b'"}]').json()
    assert unknown["code"] == 400
    assert unknown["errors"][0]["path"] == "/0/name"


def test_json_lines_streamed_from_a_generator(served: Served, name: str) -> None:
    def lines() -> Iterator[bytes]:
        for i in range(5000):
            yield json.dumps({"name": name, "request_id": f"stream-{i}"}).encode() + b"\n"

    response = httpx.post(
        served.url + "/usage", content=lines(), headers={"Content-Type": "application/x-ndjson"}
    )
    assert response.json() == {"written": 5000}


def test_group_commit_a_bad_request_fails_alone(served: Served, name: str) -> None:
    """Many concurrent requests, one bad: the bad one is a 400, the others all counted."""
    with Client(served.url) as client:
        before = client.get(name, metadata=True)["chat_prompt_tokens"]

    http = httpx.Client(base_url=served.url, limits=httpx.Limits(max_connections=64))

    def send(i: int) -> int:
        event = {"name": name, "chat_prompt_tokens": 1, "request_id": f"group-{i}"}
        if i == 17:
            event["chat_prompt_tokens"] = -1
        return http.post("/usage", json=[event, event]).status_code

    with http, ThreadPoolExecutor(32) as pool:
        statuses = list(pool.map(send, range(64)))
    assert statuses.count(400) == 1
    assert statuses[17] == 400
    assert statuses.count(200) == 63
    with Client(served.url) as client:
        assert client.get(name, metadata=True)["chat_prompt_tokens"] == before + 63


# --- the OpenAI client, as the ObjectiveAI SDK uses it -------------------------------------------


def test_openai_client_calls_and_errors(served: Served, name: str, token: str) -> None:
    client = openai.OpenAI(base_url=served.url, api_key=token, max_retries=0)
    got = client.get(f"/query_llms/{name}", cast_to=object, options={"params": {"metadata": True}})
    assert isinstance(got, dict)
    assert got["name"] == name
    registered = client.post("/query_llms", body=body(top_k=3), cast_to=object)
    assert isinstance(registered, dict)
    with pytest.raises(openai.BadRequestError, match="/name: must be a Query LLM name"):
        client.get("/query_llms/abc", cast_to=object)
    with pytest.raises(openai.NotFoundError, match="no Query LLM named"):
        client.get("/query_llms/" + "0" * 22, cast_to=object)
    event = {"name": name, "request_id": "openai-1", "chat_prompt_tokens": 1}
    assert client.post("/usage", body=event, cast_to=object) == {"written": 1}
    with pytest.raises(openai.ConflictError, match="recorded before"):
        client.post("/usage", body={**event, "chat_prompt_tokens": 2}, cast_to=object)
    placeholder = openai.OpenAI(base_url=served.url, api_key="sk-placeholder", max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="unknown token"):
        placeholder.get("/query_llms/count", cast_to=object)
    anonymous = placeholder.get(
        "/query_llms/count",
        cast_to=object,
        options={"headers": {"Authorization": openai.Omit()}},
    )
    assert isinstance(anonymous, dict)
    assert anonymous["count"] >= 1


# --- the process ------------------------------------------------------------------------------


def test_sigterm_answers_the_requests_in_flight(tmp_path: Path) -> None:
    """SIGTERM while uploads are committing: each one answered 200 is in the file; exit 0."""
    server = Served(tmp_path / "registry.db", tmp_path / "server.log")
    with Client(server.url) as client:
        name = client.register(body()).name
    answers: list[int] = []

    def upload(i: int) -> None:
        events = "".join(
            json.dumps({"name": name, "request_id": f"{i}-{j}"}) + "\n" for j in range(3000)
        )
        try:
            response = httpx.post(
                server.url + "/usage",
                content=events.encode(),
                headers={"Content-Type": "application/x-ndjson"},
                timeout=60,
            )
            if response.status_code == 200:
                answers.append(response.json()["written"])
        except httpx.TransportError:
            pass  # not answered: may or may not be written, but never half

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    assert server.stop() == 0
    for thread in threads:
        thread.join()
    assert answers, "no request was in flight"
    with Registry(tmp_path / "registry.db") as reg:
        requests = reg.get(name, metadata=True)["requests"]
    assert requests >= sum(answers)
    assert requests % 3000 == 0  # whole requests only
    log = (tmp_path / "server.log").read_text()
    assert "POST /usage 200" in log
    assert "Traceback" not in log


def test_log_lines_never_show_query_or_token(served: Served, token: str, name: str) -> None:
    secret = "s3cret-value"
    httpx.get(
        f"{served.url}/query_llms/{name}?metadata=true&to={secret}",
        headers={"Authorization": f"Bearer {token}"},
    )
    time.sleep(0.2)
    log = served.log.read_text()
    assert f"GET /query_llms/{name} 400" in log
    assert secret not in log
    assert token not in log


def test_serve_binds_loopback_by_default() -> None:
    help_text = CliRunner().invoke(cli, ["serve", "--help"]).output
    assert "127.0.0.1" in help_text


def test_locked_file_is_a_503_with_retry_after(tmp_path: Path) -> None:
    """Another process holds the write lock past --timeout: 503, Retry-After, nothing written."""
    server = Served(tmp_path / "registry.db", tmp_path / "server.log", "--timeout", "0.2")
    try:
        with Client(server.url) as client:
            name = client.register(body()).name
        holder = sqlite3.connect(tmp_path / "registry.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            response = httpx.post(server.url + "/usage", json={"name": name})
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert "locked" in response.json()["message"]
        assert str(tmp_path) not in response.text  # the server's file is its own business
        with Client(server.url) as client:
            assert client.get(name, metadata=True)["requests"] == 0
    finally:
        assert server.stop() == 0


def test_sigkill_during_group_commits_keeps_every_acknowledged_request(tmp_path: Path) -> None:
    """Killed mid-ingest: each request answered 200 is in the file, none is there in part."""
    server = Served(tmp_path / "registry.db", tmp_path / "server.log")
    with Client(server.url) as client:
        name = client.register(body()).name
    acknowledged: list[int] = []

    def upload(i: int) -> None:
        events = [{"name": name, "request_id": f"{i}-{j}"} for j in range(50)]
        try:
            if httpx.post(server.url + "/usage", json=events, timeout=30).status_code == 200:
                acknowledged.append(i)
        except httpx.TransportError:
            pass

    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(upload, i) for i in range(200)]
        time.sleep(0.5)
        # On a loaded machine nothing may be answered yet: kill only once something was, so the
        # test checks acknowledged requests rather than timing (bounded: 30 s).
        deadline = time.monotonic() + 30
        while not acknowledged and time.monotonic() < deadline:
            time.sleep(0.01)
        server.process.kill()
        for future in futures:
            future.result()
    server.process.wait()
    with Registry(tmp_path / "registry.db") as reg:
        kept = {rid for (rid,) in reg.db.execute("SELECT request_id FROM usage_events")}
    assert acknowledged
    for i in acknowledged:
        assert f"{i}-0" in kept
    requests = {rid.partition("-")[0] for rid in kept}
    for i in requests:
        assert all(f"{i}-{j}" in kept for j in range(50))


# --- hostile text in keys, paths and headers ------------------------------------------------

LONE_SURROGATE_KEY = '"\\ud800": 1'  # JSON text: a key that is half a UTF-16 pair


@pytest.mark.parametrize(
    ("path", "content", "content_type"),
    [
        ("/query_llms", '{"id": "openai/gpt-4o", ' + LONE_SURROGATE_KEY + "}", "application/json"),
        ("/query_models", "{" + LONE_SURROGATE_KEY + "}", "application/json"),
        ("/usage", "{" + LONE_SURROGATE_KEY + "}", "application/json"),
        ("/usage", "[{" + LONE_SURROGATE_KEY + "}]", "application/json"),
        ("/usage", "{" + LONE_SURROGATE_KEY + "}\n", "application/x-ndjson"),
    ],
    ids=["query_llms", "query_models", "usage event", "usage array", "usage json lines"],
)
def test_a_lone_surrogate_key_is_a_400_never_a_500(
    served: Served, path: str, content: str, content_type: str
) -> None:
    """A key that cannot be written as UTF-8 is refused at its path; the answer and the log
    write it escaped (both used to fail to encode it: a 500 and two tracebacks)."""
    response = post(served.url + path, content.encode(), content_type)
    assert response.status_code == 400, response.text
    assert response.json()["errors"]
    time.sleep(0.2)
    assert "Traceback" not in served.log.read_text()


def test_logged_paths_cannot_forge_lines_or_reach_the_terminal(served: Served) -> None:
    """The access log writes the decoded path escaped: no second line, no escape sequence."""
    forged = "2026-11-25 08:48:53,120 GET /query_llms/x 200 1.0ms"
    httpx.get(f"{served.url}/query_llms/abc%0A{forged.replace(' ', '%20')}%1b[31mred%E2%80%AEx")
    time.sleep(0.2)
    log = served.log.read_text()
    assert "\x1b" not in log
    assert "\u202e" not in log
    assert not any(line.startswith(forged) for line in log.splitlines())
    assert "GET /query_llms/abc\\n2026-11-25" in log
    assert "\\x1b[31mred\\u202ex 404" in log  # a path of two more segments: no route


def test_an_empty_authorization_header_means_no_token(served: Served) -> None:
    for header in ("", "Bearer"):
        response = httpx.get(served.url + "/query_llms/count", headers={"Authorization": header})
        assert response.status_code == 200, (header, response.text)


def test_two_authorization_headers_are_refused(served: Served, token: str) -> None:
    headers = httpx.Headers([("Authorization", f"Bearer {token}"), ("Authorization", "Bearer x")])
    response = httpx.get(served.url + "/query_llms/count", headers=headers)
    assert response.status_code == 400
    assert response.json()["message"] == "send one Authorization header, not 2"


def test_every_method_of_a_path_is_allowed_in_405s(served: Served) -> None:
    assert httpx.put(served.url + "/usage").headers["allow"] == "GET, HEAD, POST"
    assert httpx.delete(served.url + "/query_models").headers["allow"] == "GET, HEAD, POST"
    assert httpx.post(served.url + "/health").headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    ("accept", "kind"),
    [
        ("application/json;q=0, text/html", "text/html"),
        ("text/html;q=0.5, application/json", "application/json"),
        ("application/json, text/html", "application/json"),
        ("text/html, application/json", "text/html"),
        ("application/*", "application/json"),
        ("application/json;q=0.9, */*;q=1", "text/html"),
        ("*/*", "text/html"),
        ("", "text/html"),
    ],
)
def test_the_dashboard_reads_accept_q_values(served: Served, accept: str, kind: str) -> None:
    response = httpx.get(served.url + "/", headers={"Accept": accept})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(kind)
    assert response.headers["vary"] == "Accept"


@pytest.mark.parametrize(
    ("request_head", "status"),
    [
        (b"GET /query_llms/" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431),
        (b"\x16\x03\x01 not http at all\r\n\r\n", 400),
    ],
    ids=["long url", "long header", "not http"],
)
def test_what_the_parser_refuses_is_answered_in_json(
    served: Served, request_head: bytes, status: int
) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(request_head)
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                answer += chunk
    head, _, content = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d" % status), answer[:200]
    assert b"content-type: application/json" in head.lower()
    data = json.loads(content)
    assert data["code"] == status
    assert data["error"]["code"] == status


def test_a_plus_in_a_series_time_is_the_only_problem_said(served: Served) -> None:
    """`from=...+01:00` (a '+' that the URL turns into a space): that, and nothing caused by
    the field's absence (a window from 1970 had too many day buckets)."""
    response = httpx.get(served.url + "/usage?from=2026-11-01T00:00:00+01:00")
    assert response.status_code == 400
    assert [e["path"] for e in response.json()["errors"]] == ["/from"]
    both = httpx.get(served.url + "/usage?from=2026-11-01T00:00:00+01:00&to=x+y&bucket=year")
    assert [e["path"] for e in both.json()["errors"]] == ["/bucket", "/from", "/to"]
    to = httpx.get(served.url + "/usage?from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00+01:00")
    assert [e["path"] for e in to.json()["errors"]] == ["/to"]


def test_a_busy_port_is_said_with_the_way_out(served: Served) -> None:
    result = subprocess.run(
        [QLLM, "serve", "--port", str(served.port), "--db", str(served.path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 5  # cannot be used, as a locked file
    assert f"port {served.port} on 127.0.0.1 is taken" in result.stderr
    assert "--port" in result.stderr
    assert "Errno" not in result.stderr
    assert "Traceback" not in result.stderr


def test_a_database_error_shows_no_part_of_its_url(pg_location: str, tmp_path: Path) -> None:
    """A 503 from PostgreSQL says the database is unavailable; its URL (user, host, port,
    database) is in the server's log only."""
    import psycopg

    server = Served(pg_location, tmp_path / "server.log", "--timeout", "0.5")
    try:
        with Client(server.url) as client:
            name = client.register(body()).name
        with psycopg.connect(pg_location, autocommit=True) as holder:
            holder.execute("BEGIN")
            holder.execute("LOCK TABLE usage_events IN ACCESS EXCLUSIVE MODE")
            response = httpx.post(server.url + "/usage", json={"name": name}, timeout=30)
            holder.execute("ROLLBACK")
    finally:
        assert server.stop() == 0
    assert response.status_code == 503
    assert response.json()["message"].startswith("the database is unavailable")
    url = urlsplit(pg_location)
    for part in (url.hostname, str(url.port), url.username, url.path.strip("/")):
        assert part
        assert part not in response.text
    assert url.path.strip("/") in server.log.read_text()
