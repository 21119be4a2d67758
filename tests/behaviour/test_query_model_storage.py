"""Query Models on real files (QUERY_MODEL.md sections 4-7): registering with members,
usage recorded for a model, its statistics, list and count, and the upgrade to m003."""

from __future__ import annotations

import sqlite3
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import registry
from registry import times
from registry.registry import Registry
from tests.support.behaviour import Reg
from tests.support.data import COUNTERS, ROOT, ZERO_METADATA, body
from tests.support.workers import rollups_agree, rollups_match

# each reg test runs on the library (SQLite), over HTTP and on PostgreSQL
pytestmark = pytest.mark.surfaces

STATIC = {"type": "static"}
TABLE = {"type": "training_table", "embeddings_model": "openai/text-embedding-3-small", "top": 5}
MEMBERS = [body(), body(temperature=0.5), body(id="a/b")]
MODEL = {"models": MEMBERS, "weight": STATIC}
RELEASE1 = ROOT / "tests" / "fixtures" / "release1_registry.sql"


def names_of(raws: list[dict[str, Any]]) -> list[str]:
    return [registry.validate(raw).name for raw in raws]


@pytest.fixture
def model(reg: Reg) -> registry.QueryModel:
    return reg.register_model(MODEL)


def test_register_stores_the_model_and_its_members(reg: Reg) -> None:
    token = reg.create_token("alice")
    model = reg.register_model(MODEL, token=token)
    assert reg.get_model(model.name) == registry.dump_model(model)
    for name in names_of(MEMBERS):
        got = reg.get(name, metadata=True)
        assert got["user_id"] == "alice"
    meta = reg.get_model(model.name, metadata=True)
    assert meta["user_id"] == "alice"
    assert times.parse(meta["created"]) <= times.now()
    assert {k: meta[k] for k in COUNTERS} == ZERO_METADATA
    assert reg.count() == 3
    assert reg.count_models() == 1


def test_registering_again_changes_nothing(reg: Reg) -> None:
    first = reg.register_model(MODEL, token=reg.create_token("alice"))
    before = reg.get_model(first.name, metadata=True)
    again = reg.register_model(
        {"models": list(reversed(MEMBERS)), "weight": STATIC}, token=reg.create_token("bob")
    )
    assert again.name == first.name
    assert reg.get_model(first.name, metadata=True) == before
    assert reg.count_models() == 1
    assert reg.db.execute("SELECT COUNT(*) FROM query_model_members").fetchone() == (3,)


def test_member_registered_before_keeps_its_first_registration(reg: Reg) -> None:
    llm = reg.register(MEMBERS[1], token=reg.create_token("bob"))
    reg.register_model(MODEL, token=reg.create_token("alice"))
    assert reg.get(llm.name, metadata=True)["user_id"] == "bob"


def test_duplicates_are_stored_in_order(reg: Reg) -> None:
    model = reg.register_model({"models": [MEMBERS[0], MEMBERS[1], MEMBERS[0]], "weight": STATIC})
    got = reg.get_model(model.name)
    assert [m["index"] for m in got["models"]] == [0, 1, 2]
    assert [m["name"] for m in got["models"]] == [m.name for m in model.members]
    assert len({m["name"] for m in got["models"]}) == 2


def test_training_table_model_round_trips(reg: Reg) -> None:
    tt = {"type": "training_table", "base_weight": 1, "min_weight": 0, "max_weight": 2}
    raw = {
        "models": [
            body(weight=tt),
            body(weight=tt | {"base_weight": 2}),
            body(id="x/y", weight=tt),
        ],
        "weight": TABLE,
    }
    model = reg.register_model(raw)
    got = reg.get_model(model.name)
    assert got == registry.dump_model(model)
    assert got["training_table_name"] == model.training_table_name
    assert sorted(m["training_table_index"] for m in got["models"]) == [0, 0, 1]


def test_invalid_model_writes_nothing(reg: Reg) -> None:
    with pytest.raises(registry.ValidationError):
        reg.register_model({"models": [body(), body(temperature=5)], "weight": STATIC})
    with pytest.raises(registry.AuthenticationError):
        reg.register_model(MODEL, token="not-a-token")
    assert reg.count() == 0
    assert reg.count_models() == 0


def test_failure_inside_the_transaction_leaves_nothing(db_path: Path) -> None:
    """A write that fails after the members went in (here: the model row refused by a
    trigger) rolls back the members too: all or nothing."""
    with Registry(db_path) as reg:
        reg.db.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON query_models"
            " BEGIN SELECT RAISE(ABORT, 'no'); END"
        )
        with pytest.raises(registry.StorageError):
            reg.register_model(MODEL)
        assert reg.count() == 0
        assert reg.count_models() == 0


def test_get_model_errors(reg: Reg, model: registry.QueryModel) -> None:
    missing = registry.validate(body(id="q/q")).name
    with pytest.raises(registry.NotFoundError) as caught:
        reg.get_model(missing)
    assert str(caught.value) == f"no Query Model named {missing}"  # not "Query LLM"
    with pytest.raises(registry.ValidationError):
        reg.get_model("short")
    with pytest.raises(registry.AuthorizationError):
        reg.get_model(model.name, metadata=True, me=True)
    reg.get_model(model.name, me=True)  # without metadata, me is ignored
    with pytest.raises(registry.ValidationError):
        reg.get_model(model.name, metadata=True, start="2026-01-02", end="2026-01-01")


# --- usage for a model -------------------------------------------------------------------


def test_usage_for_a_model_counts_for_model_and_member(
    reg: Reg, model: registry.QueryModel
) -> None:
    a, b, c = names_of(MEMBERS)
    reg.record_usage(a, query_model=model.name, chat_cost="0.1", chat_prompt_tokens=3)
    reg.record_usage(b, query_model=model.name, chat_cost="0.2")
    reg.record_usage(a, chat_cost="1")  # not for the model
    got = reg.get_model(model.name, metadata=True)
    assert got["requests"] == 2
    assert got["chat_cost"] == Decimal("0.3")
    assert got["chat_prompt_tokens"] == 3
    assert reg.get(a, metadata=True)["requests"] == 2
    assert reg.get(a, metadata=True)["chat_cost"] == Decimal("1.1")
    assert reg.get(c, metadata=True)["requests"] == 0


def test_event_for_a_model_without_that_member_is_refused(
    reg: Reg, model: registry.QueryModel
) -> None:
    outsider = reg.register(body(id="out/sider")).name
    a = names_of(MEMBERS)[0]
    with pytest.raises(registry.ValidationError) as caught:
        reg.record_usage(outsider, query_model=model.name)
    assert caught.value.errors[0][0] == "/query_model"
    unknown = registry.validate(body(id="no/model")).name
    with pytest.raises(registry.ValidationError) as caught:
        reg.record_usage(a, query_model=unknown)
    assert caught.value.errors[0][0] == "/query_model"
    with pytest.raises(registry.ValidationError) as caught:
        reg.record_usage(a, query_model="bad")
    assert caught.value.errors[0][0] == "/query_model"
    events = [{"name": a, "query_model": model.name}] * 3 + [
        {"name": outsider, "query_model": model.name}
    ]
    with pytest.raises(registry.ValidationError) as caught:
        reg.record_usage_many(events)
    assert caught.value.errors[0][0] == "/3/query_model"
    assert reg.db.execute("SELECT COUNT(*) FROM usage_events").fetchone() == (0,)
    assert reg.db.execute("SELECT COUNT(*) FROM usage_totals").fetchone() == (0,)


def test_membership_checked_past_the_first_chunk(reg: Reg, model: registry.QueryModel) -> None:
    from registry.events import CHUNK

    outsider = reg.register(body(id="out/sider")).name
    a = names_of(MEMBERS)[0]
    events = [{"name": a, "query_model": model.name}] * (CHUNK + 5)
    events[CHUNK + 3] = {"name": outsider, "query_model": model.name}
    with pytest.raises(registry.ValidationError) as caught:
        reg.record_usage_many(events)
    assert caught.value.errors[0][0] == f"/{CHUNK + 3}/query_model"
    assert reg.db.execute("SELECT COUNT(*) FROM usage_events").fetchone() == (0,)


def test_idempotency_compares_query_model(reg: Reg, model: registry.QueryModel) -> None:
    a = names_of(MEMBERS)[0]
    other = reg.register_model({"models": [MEMBERS[0]], "weight": STATIC}).name
    assert reg.record_usage(a, request_id="r1", query_model=model.name, chat_prompt_tokens=1) == 1
    assert reg.record_usage(a, request_id="r1", query_model=model.name, chat_prompt_tokens=1) == 0
    for changed in (None, other):
        with pytest.raises(registry.ConflictError):
            reg.record_usage(a, request_id="r1", query_model=changed, chat_prompt_tokens=1)
    assert reg.record_usage(a, request_id="r2", chat_prompt_tokens=1) == 1
    assert reg.record_usage(a, request_id="r2", chat_prompt_tokens=1) == 0
    with pytest.raises(registry.ConflictError):
        reg.record_usage(a, request_id="r2", query_model=model.name, chat_prompt_tokens=1)
    assert reg.get_model(model.name, metadata=True)["requests"] == 1
    assert reg.get(a, metadata=True)["requests"] == 2
    assert rollups_match(reg)


# --- statistics against brute force --------------------------------------------------------

BASE = times.parse("2026-11-01T00:00:00Z")
HOUR = 3_600_000_000


def brute(
    path: Path, model: str, user: str | None, start: int | None, end: int | None
) -> dict[str, Any]:
    sql = (
        "SELECT COUNT(*), COALESCE(SUM(chat_completion_tokens), 0),"
        " COALESCE(SUM(chat_prompt_tokens), 0), COALESCE(SUM(chat_cost), 0),"
        " COALESCE(SUM(embedding_completion_tokens), 0),"
        " COALESCE(SUM(embedding_prompt_tokens), 0), COALESCE(SUM(embedding_cost), 0)"
        " FROM usage_events WHERE query_model = ?"
    )
    params: list[Any] = [model]
    if user is not None:
        sql += " AND user_id = ?"
        params.append(user)
    if start is not None:
        sql += " AND at >= ?"
        params.append(start)
    if end is not None:
        sql += " AND at < ?"
        params.append(end)
    conn = sqlite3.connect(path)
    row = conn.execute(sql, params).fetchone()
    conn.close()
    return {
        k: (Decimal(v) / 10**9 if k.endswith("_cost") else v)
        for k, v in zip(COUNTERS, row, strict=True)
    }


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], dict[str, str]]:
    """Two models sharing members, events from two users (some for no model) over three days."""
    path = tmp_path_factory.mktemp("busy") / "registry.db"
    import random

    rng = random.Random(3)
    with Registry(path) as reg:
        tokens = {"alice": reg.create_token("alice"), "bob": reg.create_token("bob")}
        one = reg.register_model(MODEL, token=tokens["alice"])
        two = reg.register_model({"models": MEMBERS[1:], "weight": STATIC}, token=tokens["bob"])
        three = reg.register_model({"models": [body(id="c/d")], "weight": STATIC})
        for user, token in tokens.items():
            events = []
            for i in range(400):
                model = rng.choice([one, two, None])
                member = rng.choice((model or one).members).name
                events.append(
                    {
                        "name": member,
                        "at": times.render(BASE + rng.randrange(72 * HOUR)),
                        "chat_prompt_tokens": rng.randrange(100),
                        "embedding_completion_tokens": rng.randrange(5),
                        "chat_cost": f"0.{rng.randrange(10**9):09d}",
                        "query_model": model.name if model else None,
                        "request_id": f"{user}-{i}",
                    }
                )
            reg.record_usage_many(events, token=token)
    return path, [one.name, two.name, three.name], tokens


_moment = st.one_of(st.none(), st.integers(-2 * HOUR, 75 * HOUR).map(lambda m: BASE + m))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.integers(0, 2), st.sampled_from([None, "alice", "bob"]), _moment, _moment)
def test_model_totals_equal_brute_force(
    busy: tuple[Path, list[str], dict[str, str]],
    which: int,
    user: str | None,
    start: int | None,
    end: int | None,
) -> None:
    path, models, tokens = busy
    if start is not None and end is not None and start > end:
        start, end = end, start
    with Registry(path, readonly=True) as reg:
        got = reg.get_model(
            models[which],
            metadata=True,
            me=user is not None,
            token=tokens[user] if user else None,
            start=None if start is None else times.render(start),
            end=None if end is None else times.render(end),
        )
    assert {k: got[k] for k in COUNTERS} == brute(path, models[which], user, start, end)


def test_list_and_count_models(busy: tuple[Path, list[str], dict[str, str]]) -> None:
    path, models, tokens = busy
    one, two, three = models
    with Registry(path, readonly=True) as reg:
        assert reg.count_models() == 3
        assert reg.list_models() == [three, two, one]  # newest first
        assert reg.list_models(count=1, offset=1) == [two]
        assert reg.list_models(offset=3) == []
        stats = {m: reg.get_model(m, metadata=True) for m in models}
        keys = {
            "requests": lambda s: s["requests"],
            "tokens": lambda s: sum(s[k] for k in COUNTERS if k.endswith("_tokens")),
            "prompt_tokens": lambda s: s["chat_prompt_tokens"] + s["embedding_prompt_tokens"],
            "completion_tokens": lambda s: (
                s["chat_completion_tokens"] + s["embedding_completion_tokens"]
            ),
            "cost": lambda s: s["chat_cost"] + s["embedding_cost"],
        }
        for sort, key in keys.items():
            expected = sorted(models, key=lambda m, key=key: (-key(stats[m]), m))  # type: ignore[misc]
            assert reg.list_models(sort=sort) == expected
        window = (times.render(BASE + 30 * HOUR + 17), times.render(BASE + 40 * HOUR - 5))
        by_window = sorted(
            models,
            key=lambda m: (
                -brute(path, m, None, times.parse(window[0]), times.parse(window[1]))["requests"],
                m,
            ),
        )
        assert reg.list_models(sort="requests", start=window[0], end=window[1]) == by_window
        # me: registered by the caller, or used by the caller
        assert sorted(reg.list_models(me=True, token=tokens["alice"])) == sorted([one, two])
        assert reg.count_models(me=True, token=tokens["alice"]) == 2
        with pytest.raises(registry.ValidationError):
            reg.list_models(sort="name")
        with pytest.raises(registry.AuthorizationError):
            reg.count_models(me=True)


def test_member_statistics_count_every_event(busy: tuple[Path, list[str], dict[str, str]]) -> None:
    path, _, _ = busy
    conn = sqlite3.connect(path)
    expected = dict(
        conn.execute("SELECT name, COUNT(*) FROM usage_events GROUP BY name").fetchall()
    )
    conn.close()
    with Registry(path, readonly=True) as reg:
        for name, count in expected.items():
            assert reg.get(name, metadata=True)["requests"] == count


def test_rollups_rebuilt_equal_incremental(
    tmp_path: Path, busy: tuple[Path, list[str], dict[str, str]]
) -> None:
    path, models, _ = busy
    assert rollups_agree(path)
    copy = tmp_path / "copy.db"
    src = sqlite3.connect(path)
    dst = sqlite3.connect(copy)
    src.backup(dst)
    src.close()
    dst.close()
    with Registry(copy) as reg:
        before = [reg.get_model(m, metadata=True) for m in models]
        reg.db.execute("DELETE FROM usage_totals")
        reg.rebuild_rollups()
        assert [reg.get_model(m, metadata=True) for m in models] == before
    assert rollups_agree(copy)


def test_concurrent_writers_for_a_model(db_path: Path) -> None:
    with Registry(db_path) as reg:
        model = reg.register_model(MODEL)
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            with Registry(db_path) as mine:
                for i in range(20):
                    mine.record_usage_many(
                        [
                            {
                                "name": m.name,
                                "query_model": model.name,
                                "chat_cost": "0.001",
                                "request_id": f"{worker}-{i}-{j}",
                            }
                            for j, m in enumerate(model.members)
                        ]
                    )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with Registry(db_path) as reg:
        got = reg.get_model(model.name, metadata=True)
        assert got["requests"] == 4 * 20 * 3
        assert got["chat_cost"] == Decimal("0.24")
        assert got == reg.get_model(model.name, metadata=True) | brute(
            db_path, model.name, None, None, None
        )
    assert rollups_agree(db_path)


def test_views(reg: Reg, model: registry.QueryModel) -> None:
    a = names_of(MEMBERS)[0]
    reg.record_usage(a, query_model=model.name, chat_cost="0.5")
    stats = reg.db.execute(
        "SELECT name, members, requests, chat_cost FROM query_model_stats"
    ).fetchall()
    assert stats == [(model.name, 3, 1, 0.5)]
    members = reg.db.execute(
        "SELECT position, name FROM query_model_member_llms WHERE query_model = ?"
        " ORDER BY position",
        [model.name],
    ).fetchall()
    assert members == list(enumerate(m.name for m in model.members))


# --- upgrade ------------------------------------------------------------------------------


def test_release1_file_upgrades_keeping_every_row_and_statistic(tmp_path: Path) -> None:
    """A file written by the release before Query Models opens, migrates to m003 and answers
    every Query LLM statistic as before; its events have no query_model."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(RELEASE1.read_text(encoding="utf-8"))
    tables = ("users", "tokens", "query_llms", "usage_events")
    before = {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in tables}
    names = [n for (n,) in conn.execute("SELECT name FROM query_llms")]
    assert [n for (n,) in conn.execute("SELECT name FROM _sqlite_migrations ORDER BY id")] == [
        "m001_initial",
        "m002_rollups",
    ]
    conn.close()
    windows = [(None, None), ("2026-11-03T05:30:00Z", "2026-11-20T00:00:00Z"), ("2026-11-10", None)]
    expected = {}
    for name in names:
        for start, end in windows:
            c = sqlite3.connect(path)
            sql = (
                "SELECT COUNT(*), COALESCE(SUM(chat_prompt_tokens), 0), COALESCE(SUM(chat_cost), 0)"
                " FROM usage_events WHERE name = ?"
            )
            params: list[Any] = [name]
            if start:
                sql += " AND at >= ?"
                params.append(times.parse(start))
            if end:
                sql += " AND at < ?"
                params.append(times.parse(end))
            expected[name, start, end] = c.execute(sql, params).fetchone()
            c.close()
    with Registry(path) as reg:
        for (name, start, end), (requests, prompt, cost) in expected.items():
            got = reg.get(name, metadata=True, start=start, end=end)
            assert (got["requests"], got["chat_prompt_tokens"], got["chat_cost"]) == (
                requests,
                prompt,
                Decimal(cost) / 10**9,
            )
        assert reg.count_models() == 0
        member = {k: v for k, v in reg.get(names[0]).items() if k != "name"}
        model = reg.register_model({"models": [member], "weight": STATIC})
        reg.record_usage(names[0], query_model=model.name)
    conn = sqlite3.connect(path)
    after = {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in tables}
    conn.close()
    assert after["usage_events"][:-1] == [(*row, None) for row in before["usage_events"]]
    for t in tables[:3]:
        assert after[t] == before[t]
    assert rollups_agree(path)
