"""HTTP figures: ``qllm serve`` under wrk, as ratios to the same server's trivial /health route.

Usage: python bench/http_bench.py [--events N] [--seconds S] [--connections C]
Needs wrk (Debian package ``wrk``); without it, says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from registry.storage import Registry

BODY = {"id": "openai/gpt-4o", "mode": "generate", "weight": {"type": "static", "weight": 1}}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk): no HTTP figures")
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        with Registry(path) as reg:
            name = reg.register(BODY).name
            reg.record_usage_many(
                (
                    {
                        "name": name,
                        "at": f"2026-11-{1 + i % 28:02d}T{i % 24:02d}:00:00Z",
                        "chat_cost": "0.001",
                    }
                    for i in range(args.events)
                ),
            )
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        qllm = str(Path(sys.executable).with_name("qllm"))
        server = subprocess.Popen(
            [qllm, "serve", "--db", str(path), "--port", str(port), "--workers", str(args.workers)],
            stderr=subprocess.DEVNULL,
        )
        try:
            while True:
                try:
                    httpx.get(url + "/health")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            script = Path(tmp) / "post.lua"
            event = json.dumps({"name": name, "chat_prompt_tokens": 1, "chat_cost": 0.0001})
            script.write_text(
                'wrk.method = "POST"\n'
                f"wrk.body = {json.dumps(event)}\n"
                'wrk.headers["Content-Type"] = "application/json"\n'
            )
            window = "metadata=true&from=2026-11-03T05:30:00Z&to=2026-11-20T12:00:00Z"
            health = wrk(url + "/health", args.seconds, args.connections)
            get = wrk(f"{url}/query_llms/{name}?{window}", args.seconds, args.connections)
            post = wrk(url + "/usage", args.seconds, args.connections, script)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait()
    print(f"HTTP, {args.workers} worker(s), {args.connections} connections, {args.events} events:")
    for label, figures in (
        ("GET /health", health),
        ("GET /query_llms/{name}", get),
        ("POST /usage (1 event)", post),
    ):
        print(
            f"  {label:28} {figures['rps']:8.0f} req/s  {figures['rps'] / health['rps']:5.2f}x"
            f"  p50 {figures['p50_ms']:.1f} ms  p99 {figures['p99_ms']:.1f} ms"
            f"  non-2xx {figures['errors']:.0f}"
        )


if __name__ == "__main__":
    main()
