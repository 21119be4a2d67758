"""Large batches on PostgreSQL take a plain INSERT when their request_ids are new, and
fall back to ON CONFLICT when they are not: the same results either way (a real server)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from registry import times
from registry.errors import ConflictError
from registry.registry import Registry
from tests.support.pg import import_psycopg

psycopg = import_psycopg()

from registry.store.postgres import tx  # noqa: E402

BIG = tx._NEW_FROM + 50  # a batch that takes the plain INSERT


def events(name: str, count: int, prefix: str = "r") -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "at": f"2026-11-01T{i % 24:02d}:00:{i % 60:02d}Z",
            "request_id": f"{prefix}{i}",
            "chat_prompt_tokens": i,
            "chat_cost": f"0.00{i}",
        }
        for i in range(count)
    ]


def stored(location: str) -> int:
    with psycopg.connect(location) as conn:
        (count,) = conn.execute("SELECT COUNT(*) FROM usage_events").fetchone()
        return int(count)


@pytest.fixture
def reg(pg_location: str) -> Any:
    with Registry(pg_location) as reg:
        reg.name = reg.register(  # type: ignore[attr-defined]
            {"id": "big/1", "mode": "generate", "weight": {"type": "static", "weight": 1}}
        ).name
        yield reg  # reg.location is pg_location


def test_a_big_batch_skips_the_request_ids_stored_before(reg: Any) -> None:
    batch = events(reg.name, BIG)
    assert reg.record_usage_many(batch[::3]) == len(batch[::3])
    assert reg.record_usage_many(batch) == BIG - len(batch[::3])
    assert reg.get(reg.name, metadata=True)["requests"] == BIG == stored(reg.location)
    totals = reg.get(reg.name, metadata=True)
    reg.rebuild_rollups()
    assert reg.get(reg.name, metadata=True) == totals


def test_a_big_batch_refuses_a_request_id_stored_with_other_content(reg: Any) -> None:
    batch = events(reg.name, BIG)
    reg.record_usage_many([{**batch[7], "chat_prompt_tokens": 1000}, batch[9]])
    with pytest.raises(ConflictError) as caught:
        reg.record_usage_many(batch)
    assert [path for path, _ in caught.value.errors] == ["/7/request_id"]
    assert "chat_prompt_tokens was 1000, and is" in caught.value.errors[0][1]
    assert stored(reg.location) == 2  # nothing of the batch


def test_a_big_batch_with_a_request_id_twice_keeps_the_first(reg: Any) -> None:
    batch = events(reg.name, BIG)
    batch.append(dict(batch[3]))  # the same event again: kept once
    assert reg.record_usage_many(batch) == BIG
    with pytest.raises(ConflictError) as caught:
        reg.record_usage_many([*events(reg.name, BIG, "s"), {**batch[3], "chat_cost": "1"}])
    assert caught.value.errors[0][0] == f"/{BIG}/request_id"


def test_a_request_id_committed_by_another_writer_meanwhile(reg: Any) -> None:
    """The plain INSERT waits for the other writer's uncommitted event, fails on its
    commit, and the batch goes through ON CONFLICT in the same transaction."""
    batch = events(reg.name, BIG)
    other = psycopg.connect(reg.location)
    with other.transaction():
        first = batch[5]
        other.execute(
            "INSERT INTO usage_events (name, at, request_id, chat_prompt_tokens, chat_cost)"
            " VALUES (%s, %s, %s, 5, 5000000)",  # the same event as the batch's
            [reg.name, times.parse(first["at"]), first["request_id"]],
        )
        result: list[Any] = []
        writer = threading.Thread(target=lambda: result.append(reg.record_usage_many(batch)))
        writer.start()
        time.sleep(1.0)  # the batch is now waiting for this transaction
        assert writer.is_alive()
    writer.join(timeout=30)
    other.close()
    assert result == [BIG - 1]
    assert stored(reg.location) == BIG


def test_a_merge_asks_for_memory_by_its_size_within_bounds() -> None:
    sizes = [int(tx.work_mem(rows).removesuffix("MB")) for rows in range(0, 2_000_000, 997)]
    assert sizes == sorted(sizes)  # more rows, never less memory
    assert (tx.work_mem(0), tx.work_mem(4096), tx.work_mem(100_000)) == ("4MB", "4MB", "98MB")
    assert tx.work_mem(10**9) == "512MB"  # one merge never asks for more
