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
that writes every row adds these in one statement, in key order; a batch
that touches more than `MAX_DELTAS` rollup rows keeps none in memory, and
the store sums what it wrote in SQL instead.
"""

from __future__ import annotations

import marshal
import tempfile
from collections.abc import Iterator
from types import TracebackType
from typing import IO, Self

from registry.events import Chunk, Row
from registry.query import ANONYMOUS, HOUR, NO_MODEL

IN_MEMORY_ROWS = 20_000  # rows kept as Python lists before the spool is used
SPOOL_IN_MEMORY = 32 * 2**20  # bytes of marshalled chunks kept in memory, then a file
MAX_DELTAS = 50_000  # rollup rows summed in memory at most

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


class Spool:
    """The validated chunks of one batch (``batch``: errors name each event's index) or of
    one event (``batch=False``), in order, readable as often as a store needs."""

    def __init__(self, *, batch: bool = True) -> None:
        self.batch = batch
        self.count = 0  # rows held
        self.deltas: Deltas | None = {}  # None: too many to hold (see MAX_DELTAS)
        self._held: list[Chunk] = []
        self._file: IO[bytes] | None = None

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
        if self.deltas is not None:
            add_deltas(self.deltas, chunk.rows)
            if len(self.deltas) > MAX_DELTAS:
                self.deltas = None

    def _dump(self, chunk: Chunk) -> None:
        assert self._file is not None
        data = marshal.dumps((chunk.rows, tuple(chunk.timeless), chunk.first))
        self._file.write(len(data).to_bytes(8, "little"))
        self._file.write(data)

    def chunks(self) -> Iterator[Chunk]:
        """The chunks in the order they were added (again from the start at every call)."""
        if self._file is None:
            yield from self._held
            return
        self._file.seek(0)
        while size := self._file.read(8):
            data = self._file.read(int.from_bytes(size, "little"))
            # Only bytes that `_dump` wrote in this process, to a file no one else can open.
            rows, timeless, first = marshal.loads(data)  # noqa: S302
            yield Chunk(rows, frozenset(timeless), first)
        self._file.seek(0, 2)  # back to the end, where `add` writes

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._held = []

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
