"""Writer processes for the PostgreSQL reliability tests (`test_pg_reliability.py`).

Run as a script: ``python tests/support/pg_writers.py COMMAND 'JSON-PARAMETERS'``; prints one
JSON object and exits 0 (a traceback and a non-zero exit otherwise). A writer sends
requests one after another, each made of events whose ``request_id`` says what they
are, so that two writers sending the same id send the same event. A request that
fails is sent again, unchanged, until it is acknowledged: what the writer reports is
what it was TOLD was written (its acknowledgements), and how each attempt ended.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1])]  # the checkout (`registry`, `tests`), as a script

import httpx  # noqa: E402

Params = dict[str, Any]
BATCH_EVERY = 4  # every 4th request is a batch...
BATCH_SIZE = 12  # ...of this many events
SHARED_EVERY = 3  # every 3rd event id is shared with the writer's partner


# Imports kept light (httpx, and `registry` only for a library writer): eight of these
# start at once on a loaded machine, and the start is most of their time.


def number_of(request_id: str) -> int:
    """The event number behind a request_id (stable across processes, unlike hash())."""
    return int.from_bytes(hashlib.sha256(request_id.encode()).digest()[:4], "big")


def event(name: str, n: int, request_id: str) -> dict[str, Any]:
    """Event number ``n``, all its amounts made from ``n``: the tests recompute every sum."""
    return {
        "name": name,
        "at": f"2026-11-{1 + n % 20:02d}T{n % 24:02d}:{n % 60:02d}:{n % 59:02d}.{n % 10**6:06d}Z",
        "request_id": request_id,
        "chat_prompt_tokens": n % 1000,
        "chat_completion_tokens": n % 13,
        "chat_cost": f"0.{n % 10**9:09d}",
        "embedding_prompt_tokens": n % 5,
        "embedding_completion_tokens": 0,
        "embedding_cost": f"{n % 1000}.{(n * 7919) % 10**9:09d}",
    }


def request(worker: int, pair: int, k: int, names: list[str]) -> list[dict[str, Any]]:
    """Request ``k`` of ``worker``: one event, or a batch; some ids shared with its partner."""
    size = BATCH_SIZE if k % BATCH_EVERY == BATCH_EVERY - 1 else 1
    events = []
    for i in range(size):
        own = f"w{worker}-{k}-{i}"
        request_id = f"p{pair}-{k}-{i}" if (k + i) % SHARED_EVERY == 0 else own
        n = number_of(request_id)
        events.append(event(names[n % len(names)], n, request_id))
    return events


class Log:
    """How each attempt ended, the acknowledgements, and the slowest failed attempt."""

    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()
        self.acks: list[tuple[list[str], int]] = []
        self.bad: list[str] = []
        self.slowest_failure = 0.0

    def failed(self, outcome: str, seconds: float, detail: str = "") -> None:
        self.outcomes[outcome] += 1
        self.slowest_failure = max(self.slowest_failure, seconds)
        if detail:
            self.bad.append(f"{outcome}: {detail}"[:500])

    def result(self) -> dict[str, Any]:
        return {
            "outcomes": dict(self.outcomes),
            "acks": self.acks,
            "bad": self.bad[:20],
            "slowest_failure": self.slowest_failure,
        }


def http_sender(p: Params, log: Log) -> Callable[[list[dict[str, Any]], int], int | None]:
    """POST /usage through the servers in turn; the count written, or None after a failure."""
    clients = [httpx.Client(base_url=url, timeout=p["http_timeout"]) for url in p["urls"]]

    def send(events: list[dict[str, Any]], attempt: int) -> int | None:
        client = clients[attempt % len(clients)]
        body = events[0] if len(events) == 1 else events
        started = time.monotonic()
        try:
            response = client.post("/usage", json=body)
        except httpx.TimeoutException as exc:  # a hang: the server never answered in time
            log.failed("timeout", time.monotonic() - started, repr(exc))
            return None
        except httpx.TransportError as exc:  # the server process is gone
            log.failed("transport", time.monotonic() - started, repr(exc))
            return None
        seconds = time.monotonic() - started
        if response.status_code == 200:
            log.outcomes["200"] += 1
            return int(response.json()["written"])
        try:
            data = response.json()
            described = data["code"] == data["error"]["code"] == response.status_code
            described = described and bool(data["message"])
        except (ValueError, KeyError, TypeError):
            described = False
        if response.status_code == 503 and described and "Retry-After" in response.headers:
            log.failed("503", seconds)
        else:
            log.failed(str(response.status_code), seconds, response.text)
        return None

    return send


def library_sender(p: Params, log: Log) -> Callable[[list[dict[str, Any]], int], int | None]:
    """`Registry.record_usage` or `record_usage_many` on the database itself."""
    import registry  # only library writers pay for it

    reg = registry.Registry(p["db"], timeout=p["timeout"])

    def send(events: list[dict[str, Any]], attempt: int) -> int | None:
        started = time.monotonic()
        try:
            if len(events) == 1:
                one = dict(events[0])
                return reg.record_usage(one.pop("name"), **one)
            return reg.record_usage_many(events)
        except registry.StorageError as exc:
            log.failed(type(exc).__name__, time.monotonic() - started)
            return None
        except Exception as exc:
            log.failed(type(exc).__name__, time.monotonic() - started, str(exc))
            return None

    return send


def write(p: Params) -> Any:
    """Send requests until ``requests`` are acknowledged, or until the ``stop`` file exists.

    With ``progress``: after each acknowledgement, their number in ``{progress}/acked-W``.
    """
    log = Log()
    send = (http_sender if p["surface"] == "http" else library_sender)(p, log)
    stop = Path(p["stop"]) if p.get("stop") else None
    progress = Path(p["progress"]) if p.get("progress") else None
    worker = p["worker"]
    k = 0
    while k < p.get("requests", 10**9) and not (stop and stop.exists()):
        events = request(worker, p["pair"], k, p["names"])
        attempt = 0
        deadline = time.monotonic() + p.get("give_up", 60)
        while (written := send(events, worker + attempt)) is None:
            attempt += 1
            if time.monotonic() > deadline:
                raise TimeoutError(f"request {k} never acknowledged: {log.result()}")
            time.sleep(0.05)
        log.acks.append(([str(e["request_id"]) for e in events], written))
        k += 1
        if progress is not None:  # written whole, then renamed: never read half-written
            (progress / f".acked-{worker}").write_text(str(k))
            (progress / f".acked-{worker}").replace(progress / f"acked-{worker}")
    return log.result()


def slow_upload(p: Params) -> Any:
    """POST a JSON Lines batch that stops half-way: ``marker`` is touched, then it waits
    (to be killed) with the upload unfinished."""

    def lines() -> Any:
        for i in range(p["total"]):
            if i == p["total"] // 2:
                Path(p["marker"]).touch()
                time.sleep(120)
            one = event(p["name"], i, f"{p['tag']}-{i}")
            yield (json.dumps(one) + "\n").encode()

    headers = {"Content-Type": "application/x-ndjson"}
    httpx.post(p["url"] + "/usage", content=lines(), headers=headers, timeout=200)
    return {"finished": True}  # never reached: the test kills it


class _Connection:
    """One keep-alive HTTP/1.1 connection, spoken by hand: the load generator must cost the
    cores far less than the servers it measures (httpx takes about 1 ms a request)."""

    def __init__(self, url: str, token: str, timeout: float) -> None:
        host, _, port = url.removeprefix("http://").partition(":")
        self.address = (host, int(port))
        self.head = (
            f"POST /usage HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\nContent-Length: "
        ).encode()
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.buffer = b""

    def post(self, body: bytes) -> tuple[int, bytes]:
        """Status and body of one POST; `OSError` if the connection fails (then closed)."""
        try:
            if self.sock is None:
                self.sock = socket.create_connection(self.address, timeout=self.timeout)
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.buffer = b""
            self.sock.sendall(self.head + str(len(body)).encode() + b"\r\n\r\n" + body)
            while b"\r\n\r\n" not in self.buffer:
                self._read()
            head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            status = int(lines[0].split()[1])
            length = 0
            for line in lines[1:]:
                key, _, value = line.partition(b":")
                if key.strip().lower() == b"content-length":
                    length = int(value)
            while len(self.buffer) < length:
                self._read()
            answer, self.buffer = self.buffer[:length], self.buffer[length:]
            return status, answer
        except (OSError, ValueError, IndexError):
            self.close()
            raise OSError("connection failed") from None

    def _read(self) -> None:
        assert self.sock is not None
        data = self.sock.recv(65536)
        if not data:
            raise OSError("closed by the server")
        self.buffer += data

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def post(p: Params) -> Any:
    """The group-commit load (``tests/support/pg_load.py``): ``connections`` threads, each a client
    on a keep-alive connection to ``url`` as the user of ``tokens[its number % 4]``. From
    the moment the ``go`` file exists, for ``seconds``, each posts requests of 1 to 3
    events, named by their request_ids as in `request`, with no ``at`` (the current
    hour). A request that fails is sent again until acknowledged; what was
    acknowledged, and how each attempt ended, is reported."""
    log = Log()
    lock = threading.Lock()
    go = Path(p["go"])

    def client(number: int) -> None:
        who = p["first"] + number
        conn = _Connection(p["url"], p["tokens"][who % len(p["tokens"])], p["http_timeout"])
        while not go.exists():
            time.sleep(0.01)
        deadline = time.monotonic() + p["seconds"]
        k = 0
        while time.monotonic() < deadline:
            events = []
            for i in range(1 + k % 3):
                request_id = f"{p['tag']}-c{who}-{k}-{i}"
                n = number_of(request_id)
                one = event(p["names"][n % len(p["names"])], n, request_id)
                del one["at"]
                events.append(one)
            body = json.dumps(events[0] if len(events) == 1 else events).encode()
            while True:
                started = time.monotonic()
                try:
                    status, answer = conn.post(body)
                except OSError as exc:
                    with lock:
                        log.failed("transport", time.monotonic() - started, str(exc))
                    time.sleep(0.05)
                    continue
                with lock:
                    if status == 200:
                        log.outcomes["200"] += 1
                        ids = [str(e["request_id"]) for e in events]
                        log.acks.append((ids, int(json.loads(answer)["written"])))
                        break
                    log.failed(str(status), time.monotonic() - started)
                time.sleep(0.05)
            k += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(p["connections"])]
    for thread in threads:
        thread.start()
    go.with_name(f"{go.name}-ready-{p['first']}").touch()
    for thread in threads:
        thread.join()
    return log.result()


COMMANDS: dict[str, Callable[[Params], Any]] = {
    "write": write,
    "slow-upload": slow_upload,
    "post": post,
}


def main() -> None:
    command, params = sys.argv[1], json.loads(sys.argv[2])
    result = COMMANDS[command](params)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    os._exit(0)  # a library writer's pool threads need not be waited for


if __name__ == "__main__":
    main()
