"""``make bench``: training tables, on SQLite and PostgreSQL, each figure beside its limit
measured in the same run.

- Warm ``weights`` over 100,000 marked rows of 1,536 dimensions with ``top`` 100, against
  numpy's exact search over the same float32 matrix held in memory (one matrix product
  divided by the row norms, ``argpartition``, the per-member means of the chosen rows):
  goal at most 2x its time. The cold first call (the rows read into memory) is reported,
  and the peak resident memory of the process that made the calls, against the matrix's
  size: goal at most 1.5x.
- ``record_completions`` of 20,000 completions given as Python lists of floats, against a
  raw loop doing the necessary work by hand (numpy turns each list into float32 bytes,
  one ``executemany`` inserts them in one transaction at the registry's durability):
  goal at least 0.5x its speed; and against the bare ``executemany`` of rows prepared
  beforehand: goal at least 0.3x.

    python bench/training_bench.py             # the sizes above (a few minutes)
    python bench/training_bench.py --quick     # small sizes, to check the script works
    python bench/training_bench.py --engines   # also sqlite-vec's exact search (needs
                                               # pip install apsw sqlite-vec)

The weights run in a process of their own (this script with ``--weigh``), so that its
peak memory is only theirs. PostgreSQL is a server of its own (durable defaults), or
``--dsn URL``; ``--no-postgres`` skips it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import platform
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from registry import nearest, times  # noqa: E402
from registry import weights as rules  # noqa: E402
from registry.completions import FLOAT32, votes_text  # noqa: E402
from registry.model import Vote  # noqa: E402
from registry.registry import Registry  # noqa: E402
from registry.store.training import INSERT_COMPLETION  # noqa: E402

MEMBERS: list[dict[str, Any]] = [
    {"id": "openai/gpt-4o", "mode": "select_thinking"},
    {"id": "openai/gpt-4o", "mode": "select_thinking", "temperature": 0.5},
    {"id": "anthropic/claude-sonnet-4", "mode": "select_thinking"},
    {"id": "deepseek/deepseek-r1", "mode": "select_thinking"},
]


def model_body(top: int) -> dict[str, Any]:
    weight = {"type": "training_table", "base_weight": 1, "min_weight": 0.5, "max_weight": 2}
    return {
        "models": [{**m, "weight": weight} for m in MEMBERS],
        "weight": {"type": "training_table", "embeddings_model": "e/m", "top": top},
    }


VOTES: list[dict[str, Any]] = [
    {"index": 0, "confidence_id": "A"},
    {"index": 1, "confidence_id": "B"},
    {"index": 2, "confidence_id": {"A": 0.75, "B": 0.25}},
]


def row(*cells: str) -> None:
    print("| " + " | ".join(cells) + " |", flush=True)


# --- places to measure in -----------------------------------------------------------------------


class Places:
    """Fresh registries: SQLite files in a temporary folder, or PostgreSQL databases."""

    def __init__(self, backend: str, folder: Path, pg: Any) -> None:
        self.backend = backend
        self.folder = folder
        self.pg = pg
        self.made = 0

    def fresh(self) -> str:
        self.made += 1
        if self.backend == "sqlite":
            return str(self.folder / f"r{self.made}.db")
        return str(self.pg.dsn(self.pg.create()))


# --- recording ------------------------------------------------------------------------------------


def record_rows(
    lists: Sequence[Any], model: str, table: str | None, tag: str, prepared: bool
) -> list[tuple[Any, ...]]:
    votes = votes_text(Vote(index=v["index"], confidence_id=v["confidence_id"]) for v in VOTES)
    now = times.now()
    return [
        (
            f"{tag}-{i}",
            model,
            table,
            "",
            len(vector) // 4 if prepared else len(vector),
            vector if prepared else np.asarray(vector, dtype=FLOAT32).tobytes(),
            votes,
            now,
            None,
            now,
        )
        for i, vector in enumerate(lists)
    ]


def raw_insert(location: str, rows: list[tuple[Any, ...]]) -> None:
    """One executemany of the registry's insert in one transaction, at its durability."""
    if location.startswith("postgresql"):
        import psycopg  # noqa: PLC0415

        with psycopg.connect(location) as conn, conn.cursor() as cur:
            cur.executemany(INSERT_COMPLETION.replace("?", "%s"), rows)
        return
    lite = sqlite3.connect(location, isolation_level=None)
    lite.execute("PRAGMA synchronous = FULL")  # the registry's (WAL is the file's already)
    lite.execute("BEGIN IMMEDIATE")
    lite.executemany(INSERT_COMPLETION, rows)
    lite.execute("COMMIT")
    lite.close()


def recording(places: Places, count: int, dims: int, rounds: int) -> list[tuple[str, ...]]:
    rng = np.random.default_rng(1)
    lists: list[list[float]] = rng.standard_normal((count, dims)).tolist()
    blobs = [np.asarray(v, dtype=FLOAT32).tobytes() for v in lists]
    ours, raw, bare = [], [], []
    for number in range(rounds):
        locations = []
        for _ in range(3):
            location = places.fresh()
            with Registry(location) as reg:
                model = reg.register_model(model_body(10))
            locations.append(location)
        name, table = model.name, model.training_table_name
        batch = [
            {"id": f"o{number}-{i}", "query_model": name, "embedding": v, "votes": VOTES}
            for i, v in enumerate(lists)
        ]
        with Registry(locations[0]) as reg:
            started = time.perf_counter()
            assert reg.record_completions(batch) == count
            ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        raw_insert(locations[1], record_rows(lists, name, table, f"r{number}", prepared=False))
        raw.append(time.perf_counter() - started)
        rows = record_rows(blobs, name, table, f"b{number}", prepared=True)
        started = time.perf_counter()
        raw_insert(locations[2], rows)
        bare.append(time.perf_counter() - started)
    mine, loop, floor = min(ours), min(raw), min(bare)
    return [
        (
            f"record_completions, {count:,} x {dims:,} (lists of floats) vs a raw loop",
            f"{count / mine:,.0f}/s",
            f"{count / loop:,.0f}/s",
            f"{loop / mine:.2f}x",
            ">= 0.5x",
        ),
        (
            f"record_completions, {count:,} x {dims:,} vs bare executemany of prepared rows",
            f"{count / mine:,.0f}/s",
            f"{count / floor:,.0f}/s",
            f"{floor / mine:.2f}x",
            ">= 0.3x",
        ),
    ]


# --- weights --------------------------------------------------------------------------------------


def populate(location: str, rows: int, dims: int, top: int) -> str:
    """A registry whose model's training table holds ``rows`` marked rows (written straight
    into the tables, in chunks: recording is measured on its own)."""
    with Registry(location) as reg:
        model = reg.register_model(model_body(top))
        body = reg.get_model(model.name)
    ensemble = rules.Ensemble.of(body)
    scores = rules.row_scores(ensemble, VOTES, "A").tobytes()
    votes = votes_text(Vote(index=v["index"], confidence_id=v["confidence_id"]) for v in VOTES)
    table = model.training_table_name
    rng = np.random.default_rng(2)
    now = times.now()
    chunk = 5_000
    for start in range(0, rows, chunk):
        size = min(chunk, rows - start)
        matrix = rng.standard_normal((size, dims), dtype=np.float32)
        completions = [
            (
                f"w{start + i:07d}",
                model.name,
                table,
                "",
                dims,
                matrix[i].tobytes(),
                votes,
                now,
                None,
                now,
            )
            for i in range(size)
        ]
        marks = [
            (f"w{start + i:07d}", table, "", dims, "A", scores, start + i + 1, now)
            for i in range(size)
        ]
        with Registry(location) as reg:

            def write(tx: Any, completions: Any = completions, marks: Any = marks) -> None:
                tx.conn.executemany(INSERT_COMPLETION, completions)
                tx.conn.executemany(
                    "INSERT INTO completion_marks (completion, training_table_name,"
                    " response_format_hash, dimensions, correct_confidence_id, scores, seq,"
                    " marked) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    marks,
                )

            reg.store.run(write, write=True)

    def versioned(tx: Any) -> None:
        tx.conn.execute(
            "INSERT INTO training_tables (name, version, unmarks) VALUES (?, ?, 0)", [table, rows]
        )

    with Registry(location) as reg:
        reg.store.run(versioned, write=True)
    return model.name


def weigh(location: str, model: str, dims: int, top: int, calls: int) -> dict[str, Any]:
    """In this process (``--weigh``): the cold call, then warm calls alternated with numpy's
    search over the same matrix; peak memory read before the baseline's first call."""
    rng = np.random.default_rng(3)
    queries = [rng.standard_normal(dims).astype(np.float32).tolist() for _ in range(calls)]
    with Registry(location) as reg:
        started = time.perf_counter()
        first = reg.weights(model, queries[0])
        cold = time.perf_counter() - started
        peak = high_water()
        table = next(iter(nearest.TABLES._tables.values()))
        view = table.view
        matrix, norms, scores = view.matrix[: view.n], view.norms, view.scores
        ensemble = rules.Ensemble.of(reg.get_model(model))
        warm, base = [], []
        for query in queries:
            started = time.perf_counter()
            reg.weights(model, query)
            warm.append(time.perf_counter() - started)
            started = time.perf_counter()
            numpy_search(matrix, norms, scores, ensemble, query, top)
            base.append(time.perf_counter() - started)
        peak_after = high_water()
    return {
        "cold": cold,
        "warm": statistics.median(warm),
        "numpy": statistics.median(base),
        "peak": peak,
        "peak_with_baseline": peak_after,
        "matrix": matrix.nbytes,
        "rows": first["rows"],
    }


def high_water() -> int:
    """This process's peak resident memory, in bytes: Linux's VmHWM, which starts anew at
    exec (``ru_maxrss`` does not: a child started by a big parent reports the parent's)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def numpy_search(
    matrix: Any, norms: Any, scores: Any, ensemble: rules.Ensemble, query: list[float], top: int
) -> list[float]:
    """The limit: numpy's exact search over the float32 matrix in memory, and the means."""
    q = np.asarray(query, dtype=np.float32)
    similarity = (matrix @ (q / np.linalg.norm(q))) / norms
    chosen = np.argpartition(-similarity, top - 1)[:top]
    means = np.nanmean(scores[chosen], axis=0)
    return [
        m.weight["min_weight"]
        + (m.weight["max_weight"] - m.weight["min_weight"]) * means[m.table_index]
        for m in ensemble.members
        if m.table_index is not None
    ]


def weights_rows(
    places: Places, rows: int, dims: int, top: int, calls: int
) -> list[tuple[str, ...]]:
    location = places.fresh()
    model = populate(location, rows, dims, top)
    done = subprocess.run(
        [sys.executable, __file__, "--weigh", location, model, str(dims), str(top), str(calls)],
        capture_output=True,
        text=True,
        check=True,
    )
    got = json.loads(done.stdout)
    assert got["rows"] == min(top, rows)
    mb = 2**20
    return [
        (
            f"warm weights, {rows:,} rows x {dims:,}, top {top} vs numpy's search in memory",
            f"{got['warm'] * 1000:.1f} ms",
            f"{got['numpy'] * 1000:.1f} ms",
            f"{got['warm'] / got['numpy']:.2f}x",
            "<= 2x",
        ),
        (
            "cold first weights (the rows read into memory)",
            f"{got['cold']:.2f} s",
            "",
            "",
            "reported",
        ),
        (
            "peak resident memory of the weighing process vs the float32 matrix",
            f"{got['peak'] / mb:,.0f} MB",
            f"{got['matrix'] / mb:,.0f} MB",
            f"{got['peak'] / got['matrix']:.2f}x",
            "<= 1.5x",
        ),
    ]


# --- the engines compared (sqlite-vec needs a sqlite3 that loads extensions) --------------------


def engines(rows: int, dims: int, top: int, folder: Path) -> None:
    try:
        apsw = importlib.import_module("apsw")
        sqlite_vec = importlib.import_module("sqlite_vec")
    except ImportError:
        print("engines: skipped (pip install apsw sqlite-vec to compare)")
        return
    rng = np.random.default_rng(4)
    matrix = rng.standard_normal((rows, dims), dtype=np.float32)
    query = rng.standard_normal(dims, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1)
    conn = apsw.Connection(str(folder / "vec.db"))
    conn.enable_load_extension(True)
    conn.load_extension(sqlite_vec.loadable_path())
    conn.execute(f"CREATE VIRTUAL TABLE v USING vec0(e float[{dims}] distance_metric=cosine)")
    conn.execute("CREATE TABLE b (id INTEGER PRIMARY KEY, e BLOB)")
    with conn:
        for i in range(rows):
            conn.execute("INSERT INTO v (rowid, e) VALUES (?, ?)", (i + 1, matrix[i].tobytes()))
            conn.execute("INSERT INTO b VALUES (?, ?)", (i + 1, matrix[i].tobytes()))

    def numpy_top() -> Any:
        similarity = (matrix @ (query / np.linalg.norm(query))) / norms
        return np.argpartition(-similarity, top - 1)[:top]

    def vec0() -> Any:
        sql = "SELECT rowid FROM v WHERE e MATCH ? AND k = ?"
        return list(conn.execute(sql, (query.tobytes(), top)))

    def scalar() -> Any:
        sql = "SELECT id FROM b ORDER BY vec_distance_cosine(e, ?) LIMIT ?"
        return list(conn.execute(sql, (query.tobytes(), top)))

    for label, fn in (
        ("numpy float32 product", numpy_top),
        ("sqlite-vec vec0 (exact)", vec0),
        ("sqlite-vec vec_distance_cosine", scalar),
    ):
        fn()
        row(
            f"engine: {label}, {rows:,} x {dims:,}, top {top}",
            f"{best(fn) * 1000:.0f} ms",
            "",
            "",
            "",
        )


def best(fn: Callable[[], Any], runs: int = 5) -> float:
    times_ = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times_.append(time.perf_counter() - started)
    return statistics.median(times_)


@contextlib.contextmanager
def postgres(dsn: str | None) -> Iterator[Any]:
    from tests.support.pg import scratch  # noqa: PLC0415

    with scratch(dsn) as pg:
        yield pg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: check the script runs")
    parser.add_argument("--dsn", help="a PostgreSQL server to use (databases made and dropped)")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--engines", action="store_true", help="compare sqlite-vec too")
    parser.add_argument("--weigh", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.weigh:
        location, model, dims, top, calls = args.weigh
        print(json.dumps(weigh(location, model, int(dims), int(top), int(calls))))
        return
    rows, dims, top, batch, rounds, calls = (
        (2_000, 64, 20, 500, 1, 5) if args.quick else (100_000, 1_536, 100, 20_000, 3, 21)
    )
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}")
    row("measurement", "backend", "qllm", "limit", "ratio", "goal")
    row("---", "---", "---", "---", "---", "---")
    backends = ["sqlite"] + ([] if args.no_postgres else ["postgres"])
    with tempfile.TemporaryDirectory() as folder:
        for backend in backends:
            with postgres(args.dsn) if backend == "postgres" else contextlib.nullcontext() as pg:
                places = Places(backend, Path(folder), pg)
                label = "SQLite" if backend == "sqlite" else "PostgreSQL"
                for what, *cells in weights_rows(places, rows, dims, top, calls):
                    row(what, label, *cells)
                for what, *cells in recording(places, batch, dims, rounds):
                    row(what, label, *cells)
        if args.engines:
            engines(rows, dims, top, Path(folder))


if __name__ == "__main__":
    main()
