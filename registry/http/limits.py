"""What one request may cost a server process: bytes, time, threads. Every bound of the
server is here, so that docs/http.md has one place to point at.

A client that breaks one is answered with an error (413, 408, 414, 431) or, where no
answer can be made, its connection is closed; either way it never holds memory,
a thread or a connection beyond these.
"""

from __future__ import annotations

import os

from registry.framing import MAX_TEXT, MiB

# --- sizes --------------------------------------------------------------------------------

BODY_LIMIT = 1 * MiB  # a Query LLM or Query Model body
USAGE_LIMIT = 256 * MiB  # a POST /usage body (an event, an array or JSON Lines)
# A POST /query/completions body (an array of completions, read whole: its embeddings
# are most of it, some 600 completions of 1,536 numbers). Larger batches: the library or
# `qllm completion record`, which read them a chunk at a time.
COMPLETIONS_LIMIT = 16 * MiB
# The limit of each route that takes a body more than BODY_LIMIT may carry.
LIMITS = {"/usage": USAGE_LIMIT, "/query/completions": COMPLETIONS_LIMIT}
EVENT_TEXT = MAX_TEXT  # one JSON Lines line, one array element, or a body of one event
# The request line and headers together (h11's own bound, kept), and the request line
# alone (method, URL, version): a request head is a few hundred bytes; GET /usage with
# 250 `name` fields stays below both. Over them: 431, and 414 for the request line.
HEAD_LIMIT = 16 * 1024
LINE_LIMIT = 8 * 1024

# --- time ---------------------------------------------------------------------------------

REQUEST_TIMEOUT = 20.0  # seconds; `qllm serve --request-timeout` (env QLLM_REQUEST_TIMEOUT)
# A body must keep arriving: after the first REQUEST_TIMEOUT seconds of waiting for it,
# each MIN_BODY_RATE bytes received earn one more second (a slow but steady upload is
# never cut; a stalled or trickling one is). Time the server itself spends not reading
# (validating, or waiting for its writer) is not counted against the client.
MIN_BODY_RATE = 16 * 1024  # bytes per second
# After SIGTERM: an idle keep-alive connection is kept this long, so that a request
# already on its way is still answered (with `Connection: close`); then it is closed.
SHUTDOWN_GRACE = 1.0
# Then the requests under way get this long to be answered; past it, one still under way
# is cancelled and answered 503. `qllm serve --shutdown-timeout`.
SHUTDOWN_TIMEOUT = 30

# --- threads ------------------------------------------------------------------------------

# Array and JSON Lines bodies validated at once per server process, each by a worker
# thread of its own as it streams in; more wait, their bodies' reading paused. (A body
# of one event is read whole, at most EVENT_TEXT, and goes to Starlette's thread pool.)
UPLOADS = 32
# Pieces of one body in flight between the event loop and its worker thread (each at
# most a read of the socket, ~256 KiB): a body never takes more memory than this.
FEED_PIECES = 16


def request_timeout() -> float:
    """`REQUEST_TIMEOUT`, or what ``qllm serve --request-timeout`` put in the environment."""
    text = os.environ.get("QLLM_REQUEST_TIMEOUT", "")
    try:
        value = float(text)
    except ValueError:
        return REQUEST_TIMEOUT
    return value if value > 0 else REQUEST_TIMEOUT
