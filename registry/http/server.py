"""The server around the app: uvicorn, configured so that no client can hurt it.

uvicorn 0.54 bounds the size of a request head (h11: 16 KiB) and the idle time
between two requests of a connection (``timeout_keep_alive``), but nothing else
about time: a connection that sends half a request head, or none, is kept for ever.
The body's time is bounded in the app (`registry.http.middleware.Body`); the head's
can only be bounded here, in the protocol that parses it. So `Protocol` is uvicorn's
h11 protocol plus:

- a deadline for the request head (`request_timeout`, from the connection's start or
  the first byte of a later request): a partial head is answered 408 and closed, a
  connection that sent nothing is closed;
- the answers of the HTTP parser as JSON, in the API's error shape (414 for a request
  line too long, 431 for a head too large, 400 otherwise), never plain text;
- a shutdown that answers what it has started reading: a request under way, or whose
  bytes have begun to arrive, is answered with ``Connection: close``; an idle
  connection is kept `SHUTDOWN_GRACE` seconds, so a request already on its way is
  answered too, then closed.

`Workers` is uvicorn's process supervisor, except that at shutdown it closes its own
copy of the listening socket before it stops the workers (its copy kept the port
accepting connections that no worker would ever read, and they were reset).
`serve` binds the port itself, so that a port in use is a clear error.
"""

from __future__ import annotations

import asyncio
import copy
import errno
import logging
import os
import socket
from typing import Any

import h11
import uvicorn
from uvicorn.config import LOGGING_CONFIG, Config
from uvicorn.protocols.http.h11_impl import STATUS_PHRASES, H11Protocol, RequestResponseCycle
from uvicorn.supervisors.multiprocess import Multiprocess

from registry.errors import RegistryError
from registry.http.limits import HEAD_LIMIT, SHUTDOWN_GRACE, SHUTDOWN_TIMEOUT, request_timeout
from registry.http.middleware import CLOSE, too_long
from registry.http.wire import log, render

_starting = logging.getLogger("uvicorn.error")


class CannotListen(RegistryError):
    """The server cannot listen where it was asked to (a port in use, an address that is
    not this machine's)."""


def _raw_error(status: int, message: str) -> bytes:
    """A whole JSON error response, for a request that never reached the app."""
    body = render(
        {"code": status, "message": message, "error": {"code": status, "message": message}}
    )
    data = body.encode()
    head = (
        f"HTTP/1.1 {status} {STATUS_PHRASES[status].decode()}\r\n"
        "content-type: application/json; charset=utf-8\r\n"
        f"content-length: {len(data)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + data


def _close_after(cycle: RequestResponseCycle) -> None:
    """Answer ``cycle``'s request, then close its connection (saying so in the answer)."""
    cycle.keep_alive = False
    if not cycle.response_started:
        cycle.default_headers = [*cycle.default_headers, CLOSE]


class Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for the request head, JSON answers from the
    parser, and a shutdown that answers every request it has begun to read."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_deadline: asyncio.TimerHandle | None = None
        self._stopping = False
        self._timeout = request_timeout()
        # Made for a connection just accepted (`connection_made` comes next, at once):
        # its first request head is due from now.
        self._wait_for_head(self._timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def _wait_for_head(self, seconds: float) -> None:
        self._stop_waiting()
        self._head_deadline = self.loop.call_later(seconds, self._head_late)

    def _stop_waiting(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _receiving_head(self) -> bool:
        """Bytes of a request have arrived, and not yet its whole head."""
        return self.conn.their_state is h11.IDLE and bool(self.conn.trailing_data[0])

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a request head is complete: its request runs
            self._stop_waiting()
            if self._stopping:
                _close_after(self.cycle)
        if self._head_deadline is None and self._receiving_head():
            self._wait_for_head(self._timeout)  # the first byte of a later request

    def _head_late(self) -> None:
        self._head_deadline = None
        transport: asyncio.Transport | None = self.transport
        if transport is None or transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        if self._receiving_head():
            log.info("(a request head, incomplete) 408 after %g s", self._timeout)
            self.transport.write(
                _raw_error(408, f"the request head did not arrive within {self._timeout:g} s")
            )
        self.transport.close()  # else idle: nothing was asked, nothing to answer

    def send_400_response(self, msg: str) -> None:
        """What the parser refuses, answered in JSON: the request line or head too long
        (h11 stops at `HEAD_LIMIT` bytes), or a request that is not HTTP."""
        pending = self.conn.trailing_data[0]
        end = pending.find(b"\n")
        line = len(pending) if end < 0 else end + 1
        refused = too_long(line, len(pending)) if len(pending) > HEAD_LIMIT else None
        status, message = refused or (400, "this is not an HTTP/1.1 request")
        log.info("(a request the parser refused) %d", status)
        self._stop_waiting()
        self.transport.write(_raw_error(status, message))
        self.transport.close()

    def shutdown(self) -> None:
        self._stopping = True
        if self.cycle is not None and not self.cycle.response_complete:
            _close_after(self.cycle)  # under way: answered, then closed
        elif not self._receiving_head():
            # Idle: a request may be on its way already, sent as the server stopped. It
            # gets a moment to arrive (then it is answered, with Connection: close).
            self._wait_for_head(SHUTDOWN_GRACE)
        # else a request head is arriving: it has its deadline, and `handle_events` marks
        # its request to close the connection once answered.


class Server(uvicorn.Server):
    """uvicorn's server, saying where it listens once it does (it says nothing when it is
    handed a socket, as `serve` does)."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and sockets:
            running(sockets[0])


def running(sock: socket.socket) -> None:
    host, port = sock.getsockname()[:2]
    where = f"[{host}]" if ":" in host else host
    _starting.info("Uvicorn running on http://%s:%d (Press CTRL+C to quit)", where, port)


class Workers(Multiprocess):
    """uvicorn's supervisor of worker processes, which lets the last worker close the
    listening socket: its own copy is closed before the workers are told to stop."""

    def run(self) -> None:
        _starting.info("Started parent process [%d]", os.getpid())
        self.init_processes()
        for process in self.processes:
            process.wait_until_ready(60, self.should_exit)
        running(self.sockets[0])
        while not self.should_exit.wait(0.5):
            self.handle_signals()
            self.keep_subprocess_alive()
        # While this process holds the socket, the kernel goes on accepting connections
        # for it after the last worker stopped reading them; closed first, the socket
        # stops listening when the last worker's copy closes, and a late client is
        # refused (nothing sent) instead of reset (its request sent, never answered).
        for sock in self.sockets:
            sock.close()
        self.terminate_all()
        self.join_all()


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host`` and ``port``; `CannotListen` saying why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise CannotListen(
                f"port {port} on {host} is taken by another program: choose another with --port"
            ) from None
        reason = exc.strerror or str(exc)
        raise CannotListen(f"cannot listen on {host} port {port}: {reason}") from None
    sock.set_inheritable(True)
    return sock


def logging_config(level: str) -> dict[str, Any]:
    """uvicorn's logging, plus the server's own lines (`registry.http.wire.log`) and the
    PostgreSQL pool's warnings on stderr: applied in every worker process too."""
    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["qllm"] = {"format": "%(asctime)s %(message)s"}
    config["handlers"]["qllm"] = {
        "formatter": "qllm",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
    }
    config["loggers"]["qllm"] = {"handlers": ["qllm"], "level": level.upper(), "propagate": False}
    # The PostgreSQL pool's reconnection warnings, which a library user does not see
    # unasked (`registry.store.postgres.store`), belong in a server's log.
    config["loggers"]["psycopg.pool"] = {
        "handlers": ["qllm"],
        "level": "WARNING",
        "propagate": False,
    }
    return config


def config(
    app: Any,
    *,
    workers: int = 1,
    log_level: str = "info",
    factory: bool = False,
    shutdown_timeout: int = SHUTDOWN_TIMEOUT,
) -> Config:
    """The uvicorn configuration of every server of this package: `qllm serve` and tests."""
    return Config(
        app,
        factory=factory,
        workers=workers,
        http=Protocol,
        lifespan="on",
        access_log=False,  # our own line per request leaves the query string out
        log_level=log_level,
        log_config=logging_config(log_level),
        h11_max_incomplete_event_size=HEAD_LIMIT,
        timeout_graceful_shutdown=shutdown_timeout,
    )


def serve(
    sock: socket.socket,
    workers: int,
    shutdown_timeout: int = SHUTDOWN_TIMEOUT,
    factory: str = "registry.http.app:create_app",
) -> None:
    """Serve the app that ``factory`` (``module:function``) makes, on ``sock``: by default
    `create_app`, on the registry named in the environment."""
    settings = config(factory, workers=workers, factory=True, shutdown_timeout=shutdown_timeout)
    if workers > 1:
        Workers(settings, sockets=[sock]).run()
    else:
        Server(settings).run(sockets=[sock])
