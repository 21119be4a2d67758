"""A NUL in a ``request_id`` (issue 19, item 13), against a real ``qllm serve`` on the real
PostgreSQL of tests/support/pg.py: PostgreSQL cannot store a NUL in text, so such an event
once failed the whole group commit it shared, and up to 49 of 300 correct events sent at
the same moment got a 503 and were never stored. Now it is a 400 at ``/request_id``,
refused in validation before any transaction, and every neighbour is stored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from registry.registry import Registry
from tests.support.data import body
from tests.support.serving import Served

JSON = {"Content-Type": "application/json"}
EVENTS = 300
BAD = 137  # the event whose request_id holds a NUL


@pytest.fixture
def served_pg(pg_location: str, tmp_path: Path) -> Iterator[tuple[Served, str]]:
    with Registry(pg_location) as reg:
        name = reg.register(body()).name
    server = Served(pg_location, tmp_path / "server.log")
    yield server, name
    assert server.stop() == 0
    assert "Traceback" not in server.log.read_text()


def test_a_nul_request_id_fails_alone(served_pg: tuple[Served, str], pg_location: str) -> None:
    served, name = served_pg

    def send(number: int) -> tuple[int, dict[str, object]]:
        request_id = f"alone-{number}" + ("\x00" if number == BAD else "")
        event = {"name": name, "request_id": request_id, "chat_prompt_tokens": 1}
        response = http.post("/usage", content=json.dumps(event).encode(), headers=JSON)
        return response.status_code, response.json()

    limits = httpx.Limits(max_connections=64)
    with (
        httpx.Client(base_url=served.url, limits=limits, timeout=60) as http,
        ThreadPoolExecutor(48) as pool,
    ):
        answers = list(pool.map(send, range(EVENTS)))
    status, bad = answers[BAD]
    assert status == 400
    assert bad["errors"] == [
        {"path": "/request_id", "message": "must not contain control characters"}
    ]
    others = [answer for number, answer in enumerate(answers) if number != BAD]
    assert others == [(200, {"written": 1})] * (EVENTS - 1)
    with Registry(pg_location) as reg:
        assert reg.get(name, metadata=True)["requests"] == EVENTS - 1
        (stored,) = reg.db.execute("SELECT COUNT(*) FROM usage_events").fetchone()
    assert stored == EVENTS - 1
