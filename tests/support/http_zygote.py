"""Serves test registries fast: imports the server once, then forks one per file.

A real uvicorn server process per test, at the price of a fork: the parent
reads a file path per line on stdin, binds a free loopback port, forks a
child that serves that file with `registry.http.create_app`, and answers
``<pid> <port>``. Tests stop a child with SIGTERM.
"""

from __future__ import annotations

import os
import signal
import socket
import sys

from registry.http import create_app, server


def serve(path: str, sock: socket.socket) -> None:
    # The configuration of `qllm serve` (its protocol, limits and shutdown), on one file.
    server.Server(server.config(create_app(path), log_level="warning")).run(sockets=[sock])


def main() -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    for line in sys.stdin:
        path = line.strip()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)  # connections wait in the backlog until the child accepts
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            sys.stdin.close()
            code = 0
            try:
                serve(path, sock)
            except BaseException:
                code = 1
            os._exit(code)
        sys.stdout.write(f"{pid} {sock.getsockname()[1]}\n")
        sys.stdout.flush()
        sock.close()


if __name__ == "__main__":
    main()
