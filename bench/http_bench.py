"""HTTP figures: the server under wrk on loopback, as ratios to the same server's trivial routes.

Usage: python bench/http_bench.py [--events N] [--seconds S] [--connections C] [--lines L]

- ``GET /query_llms/{name}?metadata=true&from=..&to=..`` on a file of N events, against
  ``GET /health`` under the same load;
- ``POST /usage`` of one event per request, against a trivial POST route that only parses
  the JSON body and answers, with events per commit and p99, for 1 and 2 workers;
- ``POST /usage`` of an L-line JSON Lines body, against ``qllm usage import`` of the same
  file, with the server's peak RSS; and, while it streams in, the longest wait of a
  single-event ``POST /usage`` (one every 0.1 s), against the same POSTs to the idle
  server just before.

The app served is ``create_app(...)`` plus two bench-only routes (the trivial POST, and the
writer's commit counters), served as ``qllm serve`` serves (`registry.http.server`); the
product never ships those routes. wrk comes from Debian's package, installed here when
missing (as root); without it the bench says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from registry.registry import Registry

BODY = {"id": "openai/gpt-4o", "mode": "generate", "weight": {"type": "static", "weight": 1}}
HERE = Path(__file__).resolve().parent
WINDOW = "metadata=true&from=2026-11-03T05:30:00Z&to=2026-11-20T12:00:00Z"


# --- the app the bench serves: the product's, plus two routes of its own -------------------


def bench_app() -> Any:
    """``create_app`` on ``$QLLM_DB`` plus ``POST /bench/echo`` and ``GET /bench/writer``."""
    from starlette.requests import Request  # noqa: PLC0415 - the server extra, bench only
    from starlette.responses import JSONResponse, Response  # noqa: PLC0415

    from registry.http import create_app  # noqa: PLC0415

    app = create_app(os.environ["QLLM_DB"])

    async def echo(request: Request) -> Response:
        json.loads(await request.body())
        return JSONResponse({"ok": True})

    async def writer(request: Request) -> Response:
        w = request.app.state.service.writer
        return JSONResponse({"pid": os.getpid(), "groups": w.groups, "requests": w.requests})

    app.router.add_route("/bench/echo", echo, methods=["POST"])
    app.router.add_route("/bench/writer", writer, methods=["GET"])
    return app


def serve(workers: int) -> None:
    """`bench_app` as `qllm serve` serves its app (its protocol, limits, workers), on a
    loopback port the system chooses; run in the server's process (``--serve``)."""
    from registry.http import server  # noqa: PLC0415 - the server extra, bench only

    sys.path.insert(0, str(HERE))  # the workers import `http_bench:bench_app` from here
    server.serve(server.bind("127.0.0.1", 0), workers, factory="http_bench:bench_app")


# The server's start line names the port it bound: no port is chosen in advance (a port
# bound and released here could be taken before the server binds it).
LISTENING = re.compile(rb"Uvicorn running on https?://\S+:(\d+) ")
# Its line for a commit that held the write lock over a second (registry.http.writer).
COMMIT = re.compile(rb"\(writer\) (\d+) events of (\d+) requests in one commit: .* held ([\d.]+) s")


class Server:
    """`bench_app` served as `qllm serve` serves, on a loopback port of its own."""

    def __init__(self, path: Path, workers: int) -> None:
        command = [sys.executable, str(HERE / "http_bench.py"), "--serve", str(workers)]
        env = {**os.environ, "QLLM_DB": str(path)}
        self.log = path.with_name(f"server-{workers}.log")
        with self.log.open("wb") as err:  # the child has its own copy of the descriptor
            self.process = subprocess.Popen(command, env=env, stderr=err)
        while (found := LISTENING.search(self.log.read_bytes())) is None:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server did not start:\n{self.log.read_text()}")
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{int(found[1])}"
        httpx.get(self.url + "/health").raise_for_status()

    def writer(self) -> dict[int, tuple[int, int]]:
        """Commits and requests per worker: new connections until every worker answered."""
        seen: dict[int, tuple[int, int]] = {}
        for _ in range(40):
            figures = httpx.get(self.url + "/bench/writer").json()
            seen[figures["pid"]] = (figures["groups"], figures["requests"])
        return seen

    def long_commits(self) -> list[tuple[int, float]]:
        """(events, seconds the write lock was held) of each commit over a second."""
        found = COMMIT.findall(self.log.read_bytes())
        return [(int(events), float(held)) for events, _, held in found]

    def peak_rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        kb = re.search(r"VmHWM:\s+(\d+) kB", status).group(1)  # type: ignore[union-attr]
        return int(kb) / 1024

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait()


# --- wrk ------------------------------------------------------------------------------------


def ensure_wrk() -> bool:
    if shutil.which("wrk") is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False)
    return shutil.which("wrk") is not None


def post_script(folder: Path, body: str, name: str) -> Path:
    script = folder / f"{name}.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    return script


def wrk(url: str, seconds: int, connections: int, script: Path | None = None) -> dict[str, float]:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)

    def percentile(p: str) -> float:
        value, unit = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)", out, re.M).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return {
        "rps": rate,
        "p50_ms": percentile("50"),
        "p99_ms": percentile("99"),
        "errors": float(non_2xx.group(1)) if non_2xx else 0.0,
    }


def line(label: str, figures: dict[str, float], base: dict[str, float], unit: str) -> str:
    return (
        f"  {label:34} {figures['rps']:8.0f} {unit}  {figures['rps'] / base['rps']:5.2f}x"
        f"  p50 {figures['p50_ms']:6.1f} ms  p99 {figures['p99_ms']:6.1f} ms"
        f"  non-2xx {figures['errors']:.0f}"
    )


# --- the three benches ----------------------------------------------------------------------


def fill(path: Path, events: int) -> str:
    with Registry(path) as reg:
        name = reg.register(BODY).name
        reg.record_usage_many(
            {
                "name": name,
                "at": f"2026-11-{1 + i % 28:02d}T{i % 24:02d}:00:00Z",
                "chat_cost": "0.001",
                "chat_prompt_tokens": i % 100,
            }
            for i in range(events)
        )
    return name


def reads_and_writes(
    path: Path, name: str, folder: Path, workers: int, args: argparse.Namespace
) -> None:
    event = json.dumps({"name": name, "chat_prompt_tokens": 1, "chat_cost": 0.0001})
    script = post_script(folder, event, "post")
    server = Server(path, workers)
    try:
        seconds, connections = args.seconds, args.connections
        health = wrk(server.url + "/health", seconds, connections)
        get = wrk(f"{server.url}/query_llms/{name}?{WINDOW}", seconds, connections)
        echo = wrk(server.url + "/bench/echo", seconds, connections, script)
        before = server.writer()
        post = wrk(server.url + "/usage", seconds, connections, script)
        after = server.writer()
    finally:
        server.stop()
    groups = sum(after[p][0] - before.get(p, (0, 0))[0] for p in after)
    requests = sum(after[p][1] - before.get(p, (0, 0))[1] for p in after)
    print(f"HTTP, {workers} worker(s), {connections} connections, {args.events} events in file:")
    print(line("GET /health", health, health, "req/s"))
    print(line("GET /query_llms/{name}?metadata..", get, health, "req/s"))
    print(line("POST /bench/echo (parse, answer)", echo, echo, "req/s"))
    print(line("POST /usage (1 event)", post, echo, "ev/s "))
    print(f"  events per commit: {requests / max(groups, 1):.1f} ({requests} in {groups} commits)")


def jsonl(folder: Path, lines: int) -> None:
    base = folder / "jsonl-base.db"
    name = fill(base, 0)
    data = folder / "events.jsonl"
    with data.open("w") as out:
        for i in range(lines):
            event = {
                "name": name,
                "at": f"2026-11-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00Z",
                "request_id": f"r{i}",
                "chat_prompt_tokens": i % 1000,
                "chat_completion_tokens": i % 300,
                "chat_cost": "0.000123",
            }
            out.write(json.dumps(event) + "\n")
    cli = folder / "cli.db"
    shutil.copy(base, cli)
    qllm = str(Path(sys.executable).with_name("qllm"))
    started = time.perf_counter()
    command = [qllm, "usage", "import", str(data), "--db", str(cli)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cli_seconds = time.perf_counter() - started
    served = folder / "served.db"
    shutil.copy(base, served)
    server = Server(served, 1)
    try:
        # The raw baseline: the same POSTs to the idle server.
        idle = max(wait for _, wait in probe_waits(server.url, name, 50))
        upload: list[float] = []
        uploader = threading.Thread(target=lambda: upload.append(post_file(server.url, data)))
        started = time.perf_counter()
        uploader.start()
        waits = probe_waits(server.url, name, None, until=uploader)  # until it is answered
        uploader.join()
        http_seconds = upload[0]
        rss = server.peak_rss_mb()
        commits = [held for events, held in server.long_commits() if events >= lines]
    finally:
        server.stop()
    cli_rate, http_rate = lines / cli_seconds, lines / http_seconds
    print(f"POST /usage of a {lines}-line JSON Lines body ({data.stat().st_size / 2**20:.0f} MiB):")
    print(f"  qllm usage import            {cli_rate:9.0f} ev/s  {cli_seconds:5.1f} s")
    print(
        f"  POST /usage (x-ndjson)       {http_rate:9.0f} ev/s  {http_seconds:5.1f} s"
        f"  {http_rate / cli_rate:5.2f}x  peak server RSS {rss:.0f} MB"
    )
    # The upload's own commit holds the write lock for seconds: the single events that
    # arrive meanwhile wait for it (docs/http.md); the others are the figure that counts.
    held = commits[0] if commits else 0.0
    lock_ends = started + http_seconds
    before = [w for at, w in waits if at + w < lock_ends - held - 0.05]
    during = [w for at, w in waits if at + w >= lock_ends - held - 0.05]
    print(
        f"  single-event POST /usage meanwhile: longest wait {max(before, default=0):.3f} s"
        f" of {len(before)} while it was sent and parsed (idle server: {idle:.3f} s,"
        f" {max(before, default=0) / idle:.1f}x); its commit held the write lock"
        f" {held:.1f} s, and {len(during)} waited for it (longest {max(during, default=0):.1f} s)"
    )


def post_file(url: str, data: Path) -> float:
    """Seconds to POST ``data`` as JSON Lines and be answered 200."""
    started = time.perf_counter()
    with data.open("rb") as body:
        response = httpx.post(
            url + "/usage",
            content=body,
            headers={"Content-Type": "application/x-ndjson"},
            timeout=600,
        )
    response.raise_for_status()
    return time.perf_counter() - started


def probe_waits(
    url: str, name: str, count: int | None, until: threading.Thread | None = None
) -> list[tuple[float, float]]:
    """(sent at, seconds answered in) of single-event POSTs, one every 0.1 s: ``count`` of
    them, or as long as ``until`` runs."""
    waits: list[tuple[float, float]] = []
    with httpx.Client(base_url=url, timeout=600) as http:
        while (count is not None and len(waits) < count) or (until and until.is_alive()):
            sent = time.perf_counter()
            http.post("/usage", json={"name": name, "chat_prompt_tokens": 1}).raise_for_status()
            waits.append((sent, time.perf_counter() - sent))
            time.sleep(0.1)
    return waits


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:  # the server process of `Server`
        serve(int(sys.argv[2]))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    if not ensure_wrk():
        print("wrk is not installed (apt-get install wrk): no HTTP figures")
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = folder / "bench.db"
        name = fill(path, args.events)
        for workers in args.workers:
            reads_and_writes(path, name, folder, workers, args)
        if args.lines:
            jsonl(folder, args.lines)


if __name__ == "__main__":
    main()
