"""``qllm serve`` in a subprocess, on a port it binds itself.

A port chosen here (bound, released, then passed as ``--port N``) can be taken by
another process before the server binds it: a parallel test worker's server, or
any outgoing connection, which the kernel gives ports from the same range. So the
server is started with ``--port 0``: the kernel picks a free port at the server's
own bind, and uvicorn's start line names it ("Uvicorn running on
http://127.0.0.1:41234"), read here from the server's log. That line comes once
the socket listens and the app has started, with one worker or several.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

QLLM = str(Path(sys.executable).with_name("qllm"))
_LISTENING = re.compile(rb"Uvicorn running on https?://\S+:(\d+) ")


def start(args: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    """``qllm serve ARGS --port 0``, its log (stderr) written to ``log``."""
    with log.open("wb") as err:  # the child has its own copy of the descriptor
        return subprocess.Popen(
            [QLLM, "serve", *args, "--port", "0"], stdout=subprocess.DEVNULL, stderr=err
        )


def port_of(process: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> int:
    """The port ``process`` (from `start`) listens on, once its log says it listens.

    A server that exits or says nothing within ``timeout`` seconds is killed, and
    `RuntimeError` carries its log.
    """
    deadline = time.monotonic() + timeout
    while True:
        found = _LISTENING.search(log.read_bytes())
        if found is not None:
            return int(found[1])
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise RuntimeError(f"qllm serve did not start:\n{log.read_text()}")
        time.sleep(0.02)


class Served:
    """``qllm serve`` in a subprocess on a loopback port it binds itself (`serving`)."""

    def __init__(self, path: Path | str, log: Path, *args: str) -> None:
        self.path = path
        self.log = log
        self.process = start(["--db", str(path), *args], log)
        self.port = port_of(self.process, log)
        self.url = f"http://127.0.0.1:{self.port}"
        # It says it listens once the app has started: /health answers at once.
        assert httpx.get(self.url + "/health").json() == {"status": "ok"}

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)
