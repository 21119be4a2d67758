"""Many HTTP clients against one or two ``qllm serve`` on one PostgreSQL database: the load
of the group-commit tests (``test_pg_reliability.py``) and of ``bench/pg_serve.py``.

Each client is a thread of a ``tests/support/pg_writers.py post`` process, on a keep-alive
connection of its own: it posts 1 to 3 events a request, as one of a few users (a
token each), to a few Query LLMs, every event in the current hour (as live traffic
writes: all clients add to the same hourly and all-time rollup rows), each with a
request_id of its own; a request that fails is sent again until it is acknowledged.
All clients start together and post for the same number of seconds; `run` returns
what each process was acknowledged, and the servers' throughput.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
from attrs import frozen

from tests.support import serving

HERE = Path(__file__).resolve().parent


class Served:
    """``qllm serve --db URL`` in a subprocess, polled on /health; its log in a file.

    Started at once; `wait` learns its port (`serving`: it binds one itself) and
    waits for /health, so that two servers start side by side."""

    port: int
    url: str

    def __init__(self, location: str, log: Path, timeout: float, extra: Sequence[str] = ()) -> None:
        self.log = log
        self.process = serving.start(["--db", location, "--timeout", str(timeout), *extra], log)

    def wait(self) -> Served:
        self.port = serving.port_of(self.process, self.log)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.url + "/health").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(self.log.read_text())
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@frozen
class Load:
    """What a run of `run` did: each client's report, and how many requests were answered
    200 in the time all clients were posting."""

    results: list[dict[str, Any]]
    seconds: float

    @property
    def answered(self) -> int:
        return sum(len(result["acks"]) for result in self.results)

    @property
    def per_second(self) -> float:
        return self.answered / self.seconds


@contextlib.contextmanager
def servers(
    location: str, work: Path, count: int = 1, *, workers: int = 1, timeout: float = 10.0
) -> Iterator[list[str]]:
    """The URLs of ``count`` servers on ``location`` (``workers`` processes each), stopped
    after the block."""
    extra = ["--workers", str(workers)] if workers > 1 else []
    started = [Served(location, work / f"server{n}.log", timeout, extra) for n in range(count)]
    try:
        yield [server.wait().url for server in started]
    finally:
        for server in started:
            server.stop()


def post(
    urls: list[str],
    work: Path,
    *,
    names: list[str],
    tokens: list[str],
    clients: int = 24,
    processes: int = 4,
    seconds: float = 10.0,
    tag: str = "load",
) -> Load:
    """``clients`` clients (threads of ``processes`` processes, spread over ``urls``) post
    for ``seconds``; ``tag`` starts every request_id."""
    go = work / f"{tag}-go"
    common = {"names": names, "tokens": tokens, "seconds": seconds, "go": str(go)}
    common |= {"http_timeout": 60, "tag": tag}
    share = [clients // processes + (p < clients % processes) for p in range(processes)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(HERE / "pg_writers.py"), "post", json.dumps(
                common | {"url": urls[p % len(urls)], "connections": share[p],
                          "first": sum(share[:p])})],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for p in range(processes)
    ]  # fmt: skip
    # Every client process is up (its imports done) before the clock starts for all.
    deadline = time.monotonic() + 120
    while len(list(work.glob(f"{go.name}-ready-*"))) < processes:
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"a client ended early: {proc.communicate()[1]}")
        if time.monotonic() > deadline:
            raise RuntimeError("the clients did not start")
        time.sleep(0.05)
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=seconds + 120)
        if proc.returncode != 0:
            raise RuntimeError(f"a client failed ({proc.returncode}): {err}")
        results.append(json.loads(out))
    return Load(results, seconds)


def run(
    location: str,
    work: Path,
    *,
    names: list[str],
    tokens: list[str],
    count: int = 1,
    workers: int = 1,
    clients: int = 24,
    seconds: float = 10.0,
    timeout: float = 10.0,
) -> Load:
    """`post` through ``count`` new servers (``workers`` processes each), stopped after."""
    with servers(location, work, count, workers=workers, timeout=timeout) as urls:
        return post(urls, work, names=names, tokens=tokens, clients=clients, seconds=seconds)
