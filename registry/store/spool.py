"""Validated usage rows waiting for the write lock: what every store writes events from.

`Registry` validates a batch (`registry.events`) before any transaction and
puts its chunks here; the store then writes them in one short transaction,
and may read them again if that transaction has to run again. A small batch
stays a list in memory; past `IN_MEMORY_ROWS` rows its chunks go to a
``marshal`` spool (in memory up to `SPOOL_IN_MEMORY` bytes, then an anonymous
temporary file), so memory stays flat however long the batch is.

As chunks are added, their sums per rollup row are added up too (`Deltas`,
the Python twin of ``registry.store.sql.hours_of``): the hourly rollup rows
the batch will add to, keyed ``(name, hour, user, query_model)``. A store
that writes every row adds these into the rollups. Past
`MAX_DELTAS` rollup rows held in memory, the sums so far go to a file of their
own as one run and a new run starts: rollup upserts add, so a store adds run
after run and the rollups come out the same, while memory stays flat however
many rollup rows a batch touches. (Summing them again from the written events
instead cost a 200,000-event batch 1.5 s more under the write lock.)
"""

from __future__ import annotations

import marshal
import tempfile
from collections.abc import Iterator
from types import TracebackType
from typing import IO, Any, Self

from registry.events import Chunk, Row
from registry.query import ANONYMOUS, HOUR, NO_MODEL

IN_MEMORY_ROWS = 2_000  # rows kept as Python lists (one chunk) before the spool is used
SPOOL_IN_MEMORY = 32 * 2**20  # bytes of marshalled chunks kept in memory, then a file
MAX_DELTAS = 50_000  # rollup rows summed in memory at most (then a run is spilled)

# (name, hour, user ('' for none), query_model ('' for none)) -> [requests, *amounts]
Deltas = dict[tuple[str, int, str, str], list[int]]


def add_deltas(deltas: Deltas, rows: list[Row]) -> None:
    """Add ``rows`` into the hourly rollup rows they fall in."""
    for name, user, at, _, a, b, c, d, e, f, model in rows:
        key = (
            name,
            at - at % HOUR,
            ANONYMOUS if user is None else user,
            NO_MODEL if model is None else model,
        )
        total = deltas.get(key)
        if total is None:
            deltas[key] = [1, a, b, c, d, e, f]
        else:
            total[0] += 1
            total[1] += a
            total[2] += b
            total[3] += c
            total[4] += d
            total[5] += e
            total[6] += f


# A run of sums as the rows both rollups add: ``usage_hourly``'s
# ``[name, hour, user, query_model, requests, *amounts]`` and ``usage_totals``'s
# ``[name, user, query_model, requests, *amounts]``. Not sorted: SQLite, their only
# reader, has one writer at a time, so no order of row locks is to be kept, and sorting
# the keys cost more (4,700 instructions an event of a realistic batch) than it saved.
Run = tuple[list[list[Any]], list[list[Any]]]


def rows_of(deltas: Deltas) -> Run:
    """The rollup rows of a run of sums, hourly then all-time."""
    hourly = [[*key, *sums] for key, sums in deltas.items()]
    totals = [[*key, *sums] for key, sums in totals_of(deltas).items()]
    return hourly, totals


def totals_of(deltas: Deltas) -> dict[tuple[str, str, str], list[int]]:
    """The all-time rollup rows ``(name, user, query_model)`` that ``deltas`` add to."""
    totals: dict[tuple[str, str, str], list[int]] = {}
    for (name, _, user, model), sums in deltas.items():
        total = totals.get((name, user, model))
        if total is None:
            totals[name, user, model] = sums.copy()
        else:
            for i, value in enumerate(sums):
                total[i] += value
    return totals


def _write(file: IO[bytes], data: bytes) -> None:
    """One record at the end of a spool file: its length, then its bytes."""
    file.write(len(data).to_bytes(8, "little"))
    file.write(data)


def _records(file: IO[bytes]) -> Iterator[bytes]:
    """The records of a spool file, from the first; the file is left at its end, where
    `_write` goes on."""
    file.seek(0)
    while size := file.read(8):
        yield file.read(int.from_bytes(size, "little"))
    file.seek(0, 2)


class Spool:
    """The validated chunks of one batch (``batch``: errors name each event's index) or of
    one event (``batch=False``), in order, readable as often as a store needs."""

    def __init__(self, *, batch: bool = True, sums: bool = True) -> None:
        self.batch = batch
        self.sums = sums  # whether to sum the rows into rollup rows as they come (`runs`)
        self.count = 0  # rows held
        self.deltas: Deltas = {}  # the run being summed
        self._held: list[Chunk] = []
        self._file: IO[bytes] | None = None
        self._runs: IO[bytes] | None = None  # the runs of sums spilled (see MAX_DELTAS)
        self._last: Run | None = None  # the last run, made rows by `seal`

    @classmethod
    def of(cls, chunks: list[Chunk], *, batch: bool = True) -> Spool:
        spool = cls(batch=batch)
        for chunk in chunks:
            spool.add(chunk)
        return spool

    def add(self, chunk: Chunk) -> None:
        if self._file is not None or self.count + len(chunk.rows) > IN_MEMORY_ROWS:
            if self._file is None:
                # Closed by `close` (a `Spool` is a context manager).
                self._file = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
                for held in self._held:
                    self._dump(held)
                self._held = []
            self._dump(chunk)
        else:
            self._held.append(chunk)
        self.count += len(chunk.rows)
        self._last = None
        if not self.sums:
            return
        add_deltas(self.deltas, chunk.rows)
        if len(self.deltas) > MAX_DELTAS:
            if self._runs is None:
                self._runs = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
            _write(self._runs, marshal.dumps(rows_of(self.deltas)))
            self.deltas = {}

    def _dump(self, chunk: Chunk) -> None:
        assert self._file is not None
        _write(self._file, marshal.dumps((chunk.rows, tuple(chunk.timeless), chunk.first)))

    def chunks(self) -> Iterator[Chunk]:
        """The chunks in the order they were added (again from the start at every call)."""
        if self._file is None:
            yield from self._held
            return
        for data in _records(self._file):
            # Only bytes that `_dump` wrote in this process, to a file no one else can open.
            rows, timeless, first = marshal.loads(data)  # noqa: S302
            yield Chunk(rows, frozenset(timeless), first)

    def seal(self) -> None:
        """The batch is whole: make its last run of sums rollup rows now, before the store
        takes its write lock (building them costs about as much as adding them)."""
        if self._last is None and self.sums:
            self._last = rows_of(self.deltas)

    def runs(self) -> Iterator[Run]:
        """What the batch adds to both rollups, in runs of at most `MAX_DELTAS` hourly rows:
        together, the sums of every row of the batch (a key may be in
        several runs: a rollup upsert adds). Only for a spool made with ``sums``."""
        assert self.sums, "a spool made without sums has no runs"
        if self._runs is not None:
            for data in _records(self._runs):
                hourly, totals = marshal.loads(data)  # noqa: S302 - bytes `add` wrote, as above
                yield hourly, totals
        self.seal()
        assert self._last is not None
        if self._last[0]:
            yield self._last

    def close(self) -> None:
        for file in (self._file, self._runs):
            if file is not None:
                file.close()
        self._file = self._runs = None
        self._held = []
        self._last = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
