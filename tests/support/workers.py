"""Worker processes for the reliability tests, and the helpers the tests use to run them.

Run as a script: ``python tests/support/workers.py COMMAND 'JSON-PARAMETERS'``. Each command
prints one JSON object on stdout and exits 0; any error is a traceback on
stderr and a non-zero exit, which the tests treat as a failure. Imported by
the tests (``from tests.support.workers import ...``) for the parent side: starting
workers, the start barrier, and the checks on a registry file.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1])]  # the checkout (`registry`, `tests`), as a script

from sqlite_utils import Database  # noqa: E402

import registry  # noqa: E402
from registry import times  # noqa: E402
from registry.store.sqlite import migration_set  # noqa: E402
from tests.support.data import AMOUNTS, COUNTERS  # noqa: E402

BASE = times.parse("2026-11-01T00:00:00Z")
HOUR = 3_600_000_000
HOURS = 30  # events are spread over this many hours from BASE
PROMPT_TOKENS = 7  # every event has exactly this many chat prompt tokens...
CHAT_COST = "0.000000123"  # ...and this chat cost, so sums are multiples of requests
Params = dict[str, Any]


def all_migrations() -> list[str]:
    """The names of the registry's migrations, in order (all pending on an empty database)."""
    return [migration.name for migration in migration_set().pending(Database(memory=True))]


# --- events ---------------------------------------------------------------------------------


def event(name: str, n: int, request_id: str | None = None) -> dict[str, Any]:
    """Usage event number ``n``: deterministic, so the tests can recompute every sum."""
    at = BASE + (n % HOURS) * HOUR + (n * 7919) % HOUR
    return {
        "name": name,
        "at": times.render(at),
        "request_id": request_id,
        "chat_prompt_tokens": PROMPT_TOKENS,
        "chat_completion_tokens": n % 13,
        "chat_cost": CHAT_COST,
        "embedding_prompt_tokens": n % 5,
        "embedding_completion_tokens": 0,
        "embedding_cost": f"{n % 1000}.{(n * 7919) % 10**9:09d}",
    }


def sums(events: list[dict[str, Any]]) -> dict[str, Any]:
    """What `Registry.get(metadata=True)` should report for ``events``: exact sums."""
    result: dict[str, Any] = dict.fromkeys(COUNTERS, 0)
    result["chat_cost"] = Decimal(0)
    result["embedding_cost"] = Decimal(0)
    for one in events:
        result["requests"] += 1
        for key in AMOUNTS:
            value = one.get(key, 0)
            result[key] += Decimal(value) if key.endswith("_cost") else value
    return result


def single_ids(worker: int, own: int, pair: int, shared: int) -> list[str]:
    """The request_ids a single-event writer records: its own, and every 5th a shared one."""
    ids = []
    shared_ids = [f"pair{pair}-{j}" for j in range(shared)]
    for i in range(own):
        ids.append(f"single{worker}-{i}")
        if i % 5 == 0 and shared_ids:
            ids.append(shared_ids.pop(0))
    return ids + shared_ids


def number_of(request_id: str) -> int:
    """The event number behind a request_id (stable across processes, unlike hash())."""
    return int.from_bytes(hashlib.sha256(request_id.encode()).digest()[:4], "big")


# Each batch has one event in each of these, with one embedding completion token each (no
# other event has any): so in a consistent snapshot of a window that holds a partial hour
# and whole hours, such as WINDOW, the window's embedding_completion_tokens is even.
PAIRED = ("2026-11-01T05:45:00Z", "2026-11-01T12:00:00Z")
WINDOW = ("2026-11-01T05:30:00Z", "2026-11-02T03:15:00.5Z")


def batch_events(name: str, tag: str, size: int) -> list[dict[str, Any]]:
    """One batch: every even event has a request_id, every odd one none (unless ``shared``)."""
    shared = tag.startswith("shared")
    result = []
    for i in range(size):
        request_id = f"{tag}-{i}" if shared or i % 2 == 0 else None
        one = event(name, number_of(f"{tag}-{i}"), request_id)
        if i < len(PAIRED):
            one["at"] = PAIRED[i]
            one["embedding_completion_tokens"] = 1
        result.append(one)
    return result


# --- the start barrier -----------------------------------------------------------------------


def wait_for_go(folder: str, tag: str) -> None:
    """Say this worker is ready, then wait until the test says go (so all start together)."""
    Path(folder, f"ready-{tag}").touch()
    deadline = time.monotonic() + 120
    go = Path(folder, "go")
    while not go.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("no go")
        time.sleep(0.001)


def release(folder: Path, workers: int, procs: list[subprocess.Popen[str]]) -> None:
    """Wait until ``workers`` workers are ready, then let them all go at once."""
    deadline = time.monotonic() + 120
    while len(list(folder.glob("ready-*"))) < workers:
        for proc in procs:
            if proc.poll() is not None:
                _, err = proc.communicate()
                raise AssertionError(f"a worker ended before the start: {err}")
        if time.monotonic() > deadline:
            raise AssertionError("workers never got ready")
        time.sleep(0.005)
    (folder / "go").touch()


# --- the parent side --------------------------------------------------------------------------


def spawn(command: str, params: Params) -> subprocess.Popen[str]:
    """Start ``python tests/support/workers.py command params`` in the background."""
    return subprocess.Popen(
        [sys.executable, str(HERE / "workers.py"), command, json.dumps(params)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> Any:
    """The JSON a worker printed; fails if it failed or wrote anything to stderr."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"worker failed ({proc.returncode}): {err}"
    assert err == "", f"worker wrote to stderr: {err}"
    return json.loads(out)


def run(command: str, params: Params, timeout: float = 120) -> Any:
    """Run a worker to its end; its JSON output."""
    return finish(spawn(command, params), timeout)


def integrity(path: Path) -> str:
    """``PRAGMA integrity_check`` of the file, through a fresh connection."""
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


_SUMS = (
    "COUNT(*), SUM(chat_completion_tokens), SUM(chat_prompt_tokens), SUM(chat_cost),"
    " SUM(embedding_completion_tokens), SUM(embedding_prompt_tokens), SUM(embedding_cost)"
)


# What each rollup table must hold, computed from usage_events alone; files migrated
# before m003_query_models have no query_model in their events or rollups.
def _brute_force(with_models: bool) -> dict[str, str]:
    model = ", COALESCE(query_model, '')" if with_models else ""
    hourly = "1, 2, 3, 4" if with_models else "1, 2, 3"
    totals = "1, 2, 3" if with_models else "1, 2"
    return {
        "usage_hourly": "SELECT name, at - at % 3600000000, COALESCE(user_id, '')"
        + f"{model}, {_SUMS} FROM usage_events GROUP BY {hourly} ORDER BY {hourly}",
        "usage_totals": f"SELECT name, COALESCE(user_id, ''){model}, {_SUMS}"
        + f" FROM usage_events GROUP BY {totals} ORDER BY {totals}",
    }


def _with_models(conn: sqlite3.Connection) -> bool:
    return any(row[1] == "query_model" for row in conn.execute("PRAGMA table_info(usage_events)"))


def rollups(conn: sqlite3.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every rollup table the file has, sorted by its key."""
    tables = [
        name
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if name in ("usage_hourly", "usage_totals")
    ]
    assert "usage_hourly" in tables
    keys = {"usage_hourly": 3, "usage_totals": 2}
    extra = _with_models(conn)
    return {
        t: conn.execute(
            f"SELECT * FROM {t} ORDER BY "
            + ", ".join(str(i) for i in range(1, keys[t] + extra + 1))
        ).fetchall()
        for t in tables
    }


def brute_force_rollups(conn: sqlite3.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """What the file's rollup tables must hold, computed from usage_events alone."""
    queries = _brute_force(_with_models(conn))
    return {table: conn.execute(queries[table]).fetchall() for table in rollups(conn)}


def rollups_match(reg: Any) -> bool:
    """Whether the rollups of an open registry (SQLite or PostgreSQL) equal a rebuild."""
    keys = {"usage_hourly": "1, 2, 3, 4", "usage_totals": "1, 2, 3"}
    queries = _brute_force(True)
    return all(
        [tuple(r) for r in reg.db.execute(f"SELECT * FROM {t} ORDER BY {k}").fetchall()]
        == [tuple(r) for r in reg.db.execute(queries[t]).fetchall()]
        for t, k in keys.items()
    )


def rollups_agree(path: Path) -> bool:
    """Whether the rollups are exactly the events added up (read through a fresh connection)."""
    conn = sqlite3.connect(path)
    try:
        return rollups(conn) == brute_force_rollups(conn)
    finally:
        conn.close()


def row_counts(path: Path) -> dict[str, int]:
    """Rows in every table of the file."""
    conn = sqlite3.connect(path)
    try:
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        return {t: conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}
    finally:
        conn.close()


def digests(path: Path) -> dict[str, str]:
    """SHA-256 of the file and of its -wal, when there is one."""
    result = {}
    for suffix in ("", "-wal"):
        file = Path(str(path) + suffix)
        if file.exists():
            result[suffix or "db"] = hashlib.sha256(file.read_bytes()).hexdigest()
    return result


EMPTY = hashlib.sha256(b"").hexdigest()


def unchanged(path: Path, before: dict[str, str]) -> bool:
    """Whether the file and its -wal still have the ``before`` digests.

    A -wal that was not there before may be there now, empty: a readonly (``mode=ro``)
    connection opens one and cannot remove it. An empty WAL holds nothing.
    """
    after = digests(path)
    if "-wal" not in before and after.get("-wal") == EMPTY:
        del after["-wal"]
    return after == before


# --- the commands --------------------------------------------------------------------------

# The writers prove that nothing is lost or doubled, not how long a writer waits: SQLite's
# busy handler is not fair, and beside the rest of the suite (pytest -n, fsyncs on two
# cores) one writer can wait behind the others past the default 10 s.
WRITER_TIMEOUT = 60.0


def record_single(p: Params) -> Any:
    """Record events one call each; report which request_ids were new and which repeats."""
    reg = registry.Registry(p["db"], timeout=WRITER_TIMEOUT)
    ids = single_ids(p["worker"], p["own"], p["pair"], p["shared"])
    wait_for_go(p["go"], f"single{p['worker']}")
    written, repeated = [], []
    for request_id in ids:
        one = event(p["name"], number_of(request_id), request_id)
        del one["name"]
        if reg.record_usage(p["name"], token=p["token"], **one):
            written.append(request_id)
        else:
            repeated.append(request_id)
    reg.close()
    return {"written": written, "repeated": repeated}


def record_batches(p: Params) -> Any:
    """Record batches with `record_usage_many`; report how many events of each were new."""
    reg = registry.Registry(p["db"], timeout=WRITER_TIMEOUT)
    wait_for_go(p["go"], f"batch{p['worker']}")
    result = {}
    for number, tag in enumerate(p["tags"]):
        name = p["names"][number % len(p["names"])]
        result[tag] = reg.record_usage_many(batch_events(name, tag, p["size"]), token=p["token"])
    reg.close()
    return result


def read_loop(p: Params) -> Any:
    """Read statistics until told to stop; report every inconsistent snapshot seen."""
    reg = registry.Registry(p["db"], readonly=True)
    queries: list[dict[str, Any]] = [{}, {"start": WINDOW[0], "end": WINDOW[1]}]
    last = [0] * len(queries)
    seen: set[int] = set()
    violations: list[str] = []
    reads = 0
    wait_for_go(p["go"], f"reader{p['worker']}")
    stop = Path(p["stop"])
    while not stop.exists() and len(violations) < 20:
        for i, query in enumerate(queries):
            got = reg.get(p["name"], metadata=True, **query)
            reads += 1
            requests = got["requests"]
            if requests < last[i]:
                violations.append(f"query {i}: requests went back from {last[i]} to {requests}")
            if got["chat_prompt_tokens"] != PROMPT_TOKENS * requests:
                violations.append(f"query {i}: {got['chat_prompt_tokens']} prompt tokens")
            if got["chat_cost"] != Decimal(CHAT_COST) * requests:
                violations.append(f"query {i}: chat cost {got['chat_cost']} for {requests}")
            if got["embedding_completion_tokens"] % 2:  # half a batch: a torn read
                violations.append(f"query {i}: {got['embedding_completion_tokens']} paired")
            last[i] = requests
            if i == 0:
                seen.add(requests)
    reg.close()
    return {"reads": reads, "distinct": len(seen), "violations": violations}


def crash_batch(p: Params) -> Any:
    """Record one big generated batch and get killed (SIGKILL) at the point ``kill`` says.

    ``kill``: an event index (killed when the generator reaches it), ``"end"`` (after
    the last event, before the commit), ``"committed"`` (after the commit, before
    close), or null (not killed here: it writes ``marker`` when it starts, for a
    kill from outside).
    """
    reg = registry.Registry(p["db"])
    kill = p["kill"]

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    def events() -> Iterator[dict[str, Any]]:
        for i in range(p["total"]):
            if i == kill:
                die()
            if i == 0 and p.get("marker"):
                Path(p["marker"]).touch()
            yield event(p["name"], i, f"{p['tag']}-{i}")
        if kill == "end":
            die()

    written = reg.record_usage_many(events())
    if kill == "committed":
        die()
    reg.close()
    return {"written": written}


def open_race(p: Params) -> Any:
    """Round after round, open (so create and migrate) a new file at the same moment as others."""
    for round_ in p["rounds"]:
        wait_for_go(round_["go"], p["tag"])
        with registry.Registry(round_["db"]) as reg:
            if p.get("body"):
                reg.register(p["body"])
    return {"ok": True}


def open_file(p: Params) -> Any:
    """Say it is about to open the file (``marker``), then open it: so migrate it if need be."""
    Path(p["marker"]).touch()
    with registry.Registry(p["db"]):
        pass
    return {"opened": True}


def hold_lock(p: Params) -> Any:
    """Take the write lock (``BEGIN IMMEDIATE`` or ``EXCLUSIVE``) and hold it until released."""
    conn = sqlite3.connect(p["db"], isolation_level=None)
    conn.execute(f"BEGIN {p['mode']}")
    if p.get("name"):  # an uncommitted write that nobody may see
        conn.execute(
            "INSERT INTO usage_events (name, at, chat_prompt_tokens) VALUES (?, ?, 1)",
            [p["name"], BASE],
        )
    Path(p["ready"]).touch()
    deadline = time.monotonic() + 60
    while not Path(p["release"]).exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    conn.execute("ROLLBACK")
    conn.close()
    return {"held": True}


def _attempt(call: Callable[[], Any]) -> dict[str, Any]:
    try:
        return {"result": call()}
    except Exception as exc:
        return {"error": type(exc).__name__, "message": str(exc)}


def file_too_big(p: Params) -> Any:
    """Record a big batch while no file may grow past a limit (RLIMIT_FSIZE), then without."""
    reg = registry.Registry(p["db"])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    sizes = [os.path.getsize(f) for f in (p["db"], p["db"] + "-wal") if os.path.exists(f)]
    resource.setrlimit(resource.RLIMIT_FSIZE, (max(sizes) + p["room"], hard))
    events = (event(p["name"], i, f"{p['tag']}-{i}") for i in range(p["total"]))
    limited = _attempt(lambda: reg.record_usage_many(events))
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    after = _attempt(lambda: reg.record_usage(p["name"], **p["small"]))
    reg.close()
    return {"limited": limited, "after": after}


COMMANDS: dict[str, Callable[[Params], Any]] = {
    "record-single": record_single,
    "record-batches": record_batches,
    "read-loop": read_loop,
    "crash-batch": crash_batch,
    "open-race": open_race,
    "open": open_file,
    "hold-lock": hold_lock,
    "file-too-big": file_too_big,
}


def main() -> None:
    command, params = sys.argv[1], json.loads(sys.argv[2])
    print(json.dumps(COMMANDS[command](params)))


if __name__ == "__main__":
    main()
