"""The exact nearest-row search of training tables: numpy over a float32 matrix kept in
memory per training table, format and embedding length, shared by the whole process.

The similarity of a row ``a`` to a query ``q`` is their cosine, computed in float64 from
the stored float32 values (each product exact; sums by numpy's pairwise summation, which
gives one row the same bits wherever it sits): `cosines`. Rows are ranked by similarity,
largest first, ties by id (code point order, which is ASCII order for ASCII ids).

Measured before choosing (README, "Training tables"): over 100,000 rows of 1,536
dimensions, numpy's float32 matrix product finds the nearest 100 in about 30 ms, where
sqlite-vec's exact ``vec0`` search takes about 410 ms and its scalar function 440 ms;
sqlite-vec also needs a ``sqlite3`` that loads extensions (not every Python's does), and
PostgreSQL without pgvector has no such search at all. So both backends keep the
embeddings as plain float32 bytes and search them here.

How it stays exact and fast (`search`): one float32 product of the matrix with the
query gives every row's similarity within a proven bound (`tolerance`); only the rows
that bound cannot place, those near the ``top``-th, are computed again in float64 and
ranked by (similarity, id). Rows whose norm is outside [2**-60, 2**60] (where float32
could underflow or overflow) are always computed in float64.

The cache (`Tables`) holds one `Table` per (location, training table, format, length),
loaded on first use and kept in step with the database: each training table has a
version in the database, bumped by every mark and unmark; a call reads it (one small
query) and, if it moved, reads only the rows marked since (or reloads after an unmark).
Another process's marks are seen the same way.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from attrs import frozen

from registry.completions import FLOAT32
from registry.weights import SCORES

F64 = np.float64
Vector = np.ndarray[Any, np.dtype[np.float64]]
Matrix32 = np.ndarray[Any, np.dtype[np.float32]]
Positions = np.ndarray[Any, np.dtype[np.intp]]
# (completion id, float32 embedding bytes, float64 scores bytes, seq)
Row = tuple[str, bytes, bytes, int]

_BLOCK = 512  # rows computed in float64 at a time: a few MB of temporaries, whatever the table
_WILD = (2.0**-60, 2.0**60)  # norms outside this are never trusted to float32


def cosines(rows: Matrix32, norms: Vector, query: Vector, query_norm: float) -> Vector:
    """The similarity of each row to ``query`` (float64 values of the float32 numbers)."""
    out = np.empty(len(rows), dtype=F64)
    for start in range(0, len(rows), _BLOCK):
        block = rows[start : start + _BLOCK].astype(F64)
        out[start : start + len(block)] = (block * query).sum(axis=1)
    similarity: Vector = out / (norms * query_norm)
    return similarity


def norms_of(rows: Matrix32) -> Vector:
    out = np.empty(len(rows), dtype=F64)
    for start in range(0, len(rows), _BLOCK):
        block = rows[start : start + _BLOCK].astype(F64)
        out[start : start + len(block)] = np.sqrt((block * block).sum(axis=1))
    return out


def tolerance(dimensions: int) -> float:
    """A bound on how far a float32 product's similarity is from `cosines`' value.

    A float32 dot product of n terms is off by at most n*u/(1-n*u) of the sum of the
    absolute products (any order of summation, u = 2**-24), which for unit vectors is at
    most 1; rounding the query to a float32 unit vector and dividing add a few u, and
    float64 a few 2**-53 * n. Twice their sum, for margin."""
    return (dimensions + 16) * 2.0**-23 + (dimensions + 16) * 2.0**-50


@frozen
class View:
    """What a search reads, replaced whole when rows are added: a search under way keeps
    the view it began with."""

    n: int
    matrix: Matrix32
    norms: Vector
    wild: Positions
    scores: np.ndarray[Any, np.dtype[np.float64]]


class Table:
    """The marked rows of one training table, format and embedding length, in memory.

    ``matrix[:n]`` holds the float32 embeddings (room beyond ``n`` is reserved but not
    touched, so it costs no memory until rows are added), ``norms`` their float64
    norms, ``scores`` each row's score per training_table_index, ``ids`` the completion
    ids, ``version`` and ``unmarks`` the database's counters it is in step with."""

    def __init__(self, dimensions: int, tables: int, capacity: int) -> None:
        self.dimensions = dimensions
        self.tables = tables
        self.n = 0
        self.matrix: Matrix32 = np.empty((max(capacity, 16), dimensions), dtype=FLOAT32)
        self.ids: list[str] = []  # appended to only: an id below a view's n never changes
        self.slots: dict[str, int] = {}
        self.view = View(
            0,
            self.matrix,
            np.empty(0, dtype=F64),
            np.empty(0, dtype=np.intp),
            np.empty((0, tables), dtype=SCORES),
        )
        self.version = 0
        self.unmarks = 0

    @property
    def nbytes(self) -> int:
        return self.n * (self.dimensions * 4 + 8 + self.tables * 8 + 100)

    @classmethod
    def load(
        cls,
        dimensions: int,
        tables: int,
        count: int,
        rows: Iterable[Row],
        version: int,
        unmarks: int,
    ) -> Table:
        """A table of ``rows`` (about ``count`` of them: the room reserved)."""
        table = cls(dimensions, tables, count + count // 8 + 64)
        table.add(rows)
        table.version, table.unmarks = version, unmarks
        return table

    def add(self, rows: Iterable[Row]) -> None:
        """Add new rows, and new scores for rows held (a re-mark), in place."""
        first = self.n
        scores: list[bytes] = []
        changed: dict[int, bytes] = {}
        for completion, embedding, row_scores, _ in rows:
            slot = self.slots.get(completion)
            if slot is not None:
                changed[slot] = row_scores
                continue
            if self.n == len(self.matrix):
                self._grow()
            self.matrix[self.n] = np.frombuffer(embedding, dtype=FLOAT32)
            self.slots[completion] = self.n
            self.ids.append(completion)
            scores.append(row_scores)
            self.n += 1
        old = self.view
        new = self.matrix[first : self.n]
        added = np.frombuffer(b"".join(scores), dtype=SCORES).reshape(len(scores), self.tables)
        all_scores = np.concatenate([old.scores, added])
        for slot, row_scores in changed.items():
            all_scores[slot] = np.frombuffer(row_scores, dtype=SCORES)
        norms = norms_of(new)
        wild = np.flatnonzero((norms < _WILD[0]) | (norms > _WILD[1])) + first
        self.view = View(
            self.n,
            self.matrix,
            np.concatenate([old.norms, norms]),
            np.concatenate([old.wild, wild]),
            all_scores,
        )

    def _grow(self) -> None:
        bigger = np.empty((len(self.matrix) + len(self.matrix) // 4 + 64, self.dimensions), FLOAT32)
        bigger[: self.n] = self.matrix[: self.n]
        self.matrix = bigger

    def nearest(self, query: bytes, top: int) -> np.ndarray[Any, np.dtype[np.float64]]:
        """The scores of the ``top`` nearest rows (one row each, in rank order)."""
        view = self.view
        return view.scores[self.search(view, query, top)]

    def search(self, view: View, query: bytes, top: int) -> Positions:
        """The positions of the ``top`` nearest rows, in rank order, exactly (see the
        module's text)."""
        n = view.n
        matrix, norms, wild = view.matrix[:n], view.norms, view.wild
        q = np.frombuffer(query, dtype=FLOAT32).astype(F64)
        q_norm = float(np.sqrt((q * q).sum()))
        if n <= top:
            candidates: Positions = np.arange(n, dtype=np.intp)
            return self._ranked(candidates, matrix, norms, q, q_norm, top)
        q = np.frombuffer(query, dtype=FLOAT32).astype(F64)
        q_norm = float(np.sqrt((q * q).sum()))
        unit = (q / q_norm).astype(FLOAT32)
        rough = (matrix @ unit).astype(F64) / norms
        if len(wild):
            rough[wild] = -np.inf  # placed below, exactly
        cut = np.partition(rough, n - top)[n - top]  # the top-th largest
        candidates = np.flatnonzero(rough >= cut - 2 * tolerance(self.dimensions))
        if len(wild):
            candidates = np.union1d(candidates, wild)
        return self._ranked(candidates, matrix, norms, q, q_norm, top)

    def _ranked(
        self,
        candidates: Positions,
        matrix: Matrix32,
        norms: Vector,
        q: Vector,
        q_norm: float,
        top: int,
    ) -> Positions:
        exact = cosines(matrix[candidates], norms[candidates], q, q_norm)
        ids = self.ids
        order = sorted(range(len(candidates)), key=lambda i: (-exact[i], ids[candidates[i]]))
        ranked: Positions = candidates[np.array(order[:top], dtype=np.intp)]
        return ranked


class Tables:
    """The process's `Table`s, least recently used dropped past ``budget`` bytes."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._tables: OrderedDict[tuple[str, ...], Table] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[tuple[str, ...], threading.Lock] = {}

    def get(
        self,
        key: tuple[str, ...],
        version: int,
        unmarks: int,
        load: Callable[[], Table],
        since: Callable[[int], Iterable[Row]],
    ) -> Table:
        """The table of ``key`` in step with ``version`` and ``unmarks``: as held, brought
        up to date with ``since(version held)`` (rows marked since), or ``load()``ed anew."""
        with self._lock:
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:  # one thread loads a table; the others wait and use it
            with self._lock:
                table = self._tables.get(key)
                if table is not None:
                    self._tables.move_to_end(key)
            if table is not None and table.unmarks == unmarks and table.version == version:
                return table
            if table is not None and table.unmarks == unmarks and table.version < version:
                table.add(since(table.version))
                table.version = version
            else:
                with self._lock:
                    self._tables.pop(key, None)  # freed before its successor is read
                table = None
                table = load()
            with self._lock:
                self._tables[key] = table
                self._evict()
            return table

    def _evict(self) -> None:
        held = sum(t.nbytes for t in self._tables.values())
        while held > self.budget and len(self._tables) > 1:
            _, dropped = self._tables.popitem(last=False)
            held -= dropped.nbytes

    def clear(self) -> None:
        with self._lock:
            self._tables.clear()


# How many bytes of training tables a process keeps in memory (QLLM_TRAINING_CACHE_MB):
# past it, the least recently used tables are dropped and read again when next asked for.
TABLES = Tables(int(os.environ.get("QLLM_TRAINING_CACHE_MB") or 4096) * 2**20)
