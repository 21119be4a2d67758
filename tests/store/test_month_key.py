"""The month of a series on both backends: the SQL of `month_key` against Python's
`registry.series.month_index`, over every year from 1970 to 9999, month edges included
(PostgreSQL's went through a float and misplaced the last microseconds of a month from
the 2250s on)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry import times
from registry.series import month_index
from registry.store.sqlite.tx import SqliteTx
from tests.support.pg import import_psycopg

psycopg = import_psycopg()

from registry.store.postgres.tx import PostgresTx  # noqa: E402


def _first_of(year: int, month: int) -> int:
    return times.micros(datetime(year, month, 1, tzinfo=UTC))


# A month's first microsecond, the one before it and the one after, in every year; and any
# microsecond of the range.
_EDGES = st.builds(
    lambda year, month, step: max(0, min(times.LAST, _first_of(year, month) + step)),
    st.integers(1970, 9999),
    st.integers(1, 12),
    st.sampled_from([-1, 0, 1]),
)
_MOMENTS = st.lists(_EDGES | st.integers(0, times.LAST), min_size=1, max_size=40)
# What the issue found: the last microsecond of January 2300 keyed as February.
_FOUND = [times.parse("2300-01-31T23:59:59.999999Z"), times.parse("2255-07-31T23:59:59.999999Z")]


@pytest.fixture(scope="module")
def keyed(postgres: object) -> Iterator[dict[str, object]]:
    """Functions from microseconds to month keys computed by each backend's SQL."""
    location = postgres.dsn("postgres")  # type: ignore[attr-defined]
    with psycopg.connect(location, autocommit=True) as pg:
        lite = sqlite3.connect(":memory:")

        def by_postgres(moments: list[int]) -> list[int]:
            tx = PostgresTx(pg)  # its SQL runs through `Portable`, as in a series
            sql = f"SELECT {tx.month_key('v')} FROM unnest(CAST(? AS BIGINT[])) AS t(v)"
            return [int(key) for (key,) in tx.conn.execute(sql, [moments])]

        def by_sqlite(moments: list[int]) -> list[int]:
            rows = ", ".join("(?)" for _ in moments)
            sql = f"WITH t(v) AS (VALUES {rows}) SELECT {SqliteTx(lite).month_key('v')} FROM t"
            return [int(key) for (key,) in lite.execute(sql, moments)]

        yield {"postgres": by_postgres, "sqlite": by_sqlite}
        lite.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_months_the_issue_found(keyed: dict[str, object], backend: str) -> None:
    compute = keyed[backend]
    assert compute(_FOUND) == [month_index(at) for at in _FOUND]  # type: ignore[operator]


@settings(max_examples=200, deadline=None)
@given(moments=_MOMENTS)
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_month_key_is_pythons(keyed: dict[str, object], backend: str, moments: list[int]) -> None:
    compute = keyed[backend]
    assert compute(moments) == [month_index(at) for at in moments]  # type: ignore[operator]
