"""Connections that misbehave, and a server that stops under load: a real ``qllm serve``,
raw sockets and keep-alive clients.

A request may take `--request-timeout` seconds to arrive (its head; its body, then at
a minimum rate): past it, it is answered 408 and its connection closed. On SIGTERM every
request the server has begun to read is answered, and every connection is closed
cleanly: a client sees an answer, or a refused connection (nothing sent), never a reset
of a request it sent.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from registry.client import Client
from registry.registry import Registry
from tests.support.data import body
from tests.support.serving import Served

HALF_HEAD = b"POST /usage HTTP/1.1\r\nHost: x\r\nContent-Ty"
HALF_BODY = (
    b"POST /usage HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b'Content-Length: 1000\r\n\r\n{"name": '
)


def read_all(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection (or ``timeout``)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        data += b"<still open>"
    except ConnectionResetError:
        data += b"<reset>"
    return data


@pytest.fixture
def quick(tmp_path: Path) -> Iterator[Served]:
    """A server whose requests have one second to arrive."""
    served = Served(tmp_path / "registry.db", tmp_path / "server.log", "--request-timeout", "1")
    try:
        yield served
    finally:
        if served.process.poll() is None:
            served.stop()


def test_partial_requests_are_answered_408_and_closed(quick: Served) -> None:
    """Half a head, half a body, or nothing at all: none holds its connection."""
    address = ("127.0.0.1", quick.port)
    held: list[tuple[str, socket.socket]] = []
    for kind, sent in [("head", HALF_HEAD), ("body", HALF_BODY), ("idle", b"")] * 70:
        sock = socket.create_connection(address)
        sock.sendall(sent)
        held.append((kind, sock))
    began = time.monotonic()
    assert httpx.get(quick.url + "/health", timeout=5).status_code == 200  # still served
    answers: dict[str, set[bytes]] = {kind: set() for kind in ("head", "body", "idle")}
    for kind, sock in held:
        with sock:
            data = read_all(sock, 15)
        answers[kind].add(data.split(b"\r\n", 1)[0] if data.startswith(b"HTTP") else data)
        if kind != "idle":
            assert b'"code":408' in data, data
            assert b"connection: close" in data.lower(), data
    assert answers == {
        "head": {b"HTTP/1.1 408 Request Timeout"},
        "body": {b"HTTP/1.1 408 Request Timeout"},
        "idle": {b""},  # nothing asked, nothing answered: closed
    }
    assert time.monotonic() - began < 10
    assert quick.stop() == 0
    log = quick.log.read_text()
    assert "POST /usage 408" in log
    assert "(a request head, incomplete) 408" in log
    assert "Traceback" not in log
    assert " 500 " not in log


def test_sigterm_answers_a_request_whose_body_stalled(quick: Served) -> None:
    """SIGTERM while a body is half sent: the request is answered (408) within its time,
    the server exits at once after, and the log says what happened, with no traceback."""
    with socket.create_connection(("127.0.0.1", quick.port)) as sock:
        sock.sendall(HALF_BODY)
        time.sleep(0.3)
        began = time.monotonic()
        quick.process.terminate()
        data = read_all(sock, 15)
    assert data.startswith(b"HTTP/1.1 408"), data
    assert quick.process.wait(timeout=15) == 0
    assert time.monotonic() - began < 5
    log = quick.log.read_text()
    assert "POST /usage 408" in log
    assert "Traceback" not in log
    assert " 500 " not in log


@pytest.mark.parametrize(
    ("every", "answer"),
    [(12_000, b"HTTP/1.1 200"), (1_000, b"HTTP/1.1 408")],
    ids=["40 kB/s: read to its end", "3 kB/s: cut"],
)
def test_a_body_must_keep_up_the_minimum_rate(quick: Served, every: int, answer: bytes) -> None:
    """A body sent in pieces every 0.3 s for 3 s, three times the request timeout: at
    40 kB/s (over 16 KiB/s) it is read to its end; at 3 kB/s it is answered 408."""
    with Client(quick.url) as client:
        name = client.register(body()).name
    line = json.dumps({"name": name, "chat_prompt_tokens": 1}).encode() + b"\n"
    payload = line * (every * 10 // len(line) + 1)
    head = (
        b"POST /usage HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n"
        b"Content-Length: %d\r\n\r\n" % len(payload)
    )
    with socket.create_connection(("127.0.0.1", quick.port)) as sock:
        sock.sendall(head)
        try:
            for at in range(0, len(payload), every):
                time.sleep(0.3)
                sock.sendall(payload[at : at + every])
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered and closed before the end (what a too slow body gets)
        data = read_all(sock, 10)
    assert data.startswith(answer), data


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_under_load_answers_every_request_sent(tmp_path: Path, workers: int) -> None:
    """Eight keep-alive clients write as fast as they can while the server is stopped: each
    request is answered 200 (and stored), or its connection is refused before anything is
    sent; none is reset or left unanswered."""
    served = Served(tmp_path / "registry.db", tmp_path / "server.log", "--workers", str(workers))
    with Client(served.url) as client:
        name = client.register(body()).name
    answered: list[str] = []
    refused: list[int] = []
    broken: list[str] = []

    def write(k: int) -> None:
        with httpx.Client(base_url=served.url, timeout=60) as http:
            for i in range(1_000_000):
                request_id = f"{k}-{i}"
                try:
                    response = http.post("/usage", json={"name": name, "request_id": request_id})
                except httpx.ConnectError:  # the server no longer listens: nothing was sent
                    refused.append(k)
                    return
                except httpx.TransportError as exc:  # a request sent and not answered
                    broken.append(f"{request_id}: {exc!r}")
                    return
                assert response.status_code == 200, response.text
                answered.append(request_id)

    clients = [threading.Thread(target=write, args=(k,)) for k in range(8)]
    for thread in clients:
        thread.start()
    deadline = time.monotonic() + 30
    while len(answered) < 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert served.stop() == 0
    for thread in clients:
        thread.join(timeout=60)
    assert not broken, broken
    assert sorted(refused) == list(range(8))
    with Registry(served.path) as reg:
        stored = {rid for (rid,) in reg.db.execute("SELECT request_id FROM usage_events")}
    assert stored == set(answered)
    log = served.log.read_text()
    assert "Traceback" not in log


def test_a_request_still_under_way_when_the_stop_gives_up_is_answered_503(
    tmp_path: Path,
) -> None:
    """A steady upload that would take longer than `--shutdown-timeout`: cancelled when the
    time is up, answered 503 (not reset, not a plain-text 500), logged as cancelled."""
    served = Served(tmp_path / "registry.db", tmp_path / "server.log", "--shutdown-timeout", "1")
    with Client(served.url) as client:
        name = client.register(body()).name
    line = json.dumps({"name": name, "chat_prompt_tokens": 1}).encode() + b"\n"
    head = (
        b"POST /usage HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n"
        b"Content-Length: %d\r\n\r\n" % (len(line) * 100_000)
    )
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.sendall(head)
        for _ in range(5):  # 40 kB/s: steady, and far from done when the stop gives up
            sock.sendall(line * (8000 // len(line)))
            time.sleep(0.2)
        served.process.terminate()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for _ in range(30):
                sock.sendall(line * (8000 // len(line)))
                time.sleep(0.2)
        data = read_all(sock, 10)
    assert served.process.wait(timeout=30) == 0
    assert data.startswith(b"HTTP/1.1 503"), data
    assert b"the server stopped before answering" in data
    log = served.log.read_text()
    assert "POST /usage 503, cancelled: the server stopped before answering" in log
    assert "Traceback" not in log
    with Registry(served.path) as reg:
        assert reg.get(name, metadata=True)["requests"] == 0  # all or nothing: nothing
