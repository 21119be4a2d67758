"""Shared fixtures: every test gets real SQLite files under its own tmp_path."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

import registry
from registry.registry import Registry
from tests.support.data import body
from tests.support.servers import AdminClient, Servers


@pytest.fixture
def db_path(tmp_path: Path, surface: str, request: pytest.FixtureRequest) -> Path:
    """Where a test's registry file lives (not created yet; over HTTP, its server's file)."""
    if surface == "http":
        served: tuple[int, str, Path] = request.getfixturevalue("served_file")
        return served[2]
    return tmp_path / "registry.db"


@pytest.fixture
def location(surface: str, request: pytest.FixtureRequest) -> str:
    """Where the test's ``reg`` keeps its data: a file, or a fresh PostgreSQL database."""
    if surface == "postgres":
        return str(request.getfixturevalue("pg_location"))
    return str(request.getfixturevalue("db_path"))


@pytest.fixture
def served_file(request: pytest.FixtureRequest) -> Iterator[tuple[int, str, Path]]:
    """A server on a fresh file, stopped after the test."""
    servers: Servers = request.getfixturevalue("servers")
    served = servers.take()
    yield served
    servers.stop(served[0])


# --- one behaviour suite, two surfaces ---------------------------------------------------
#
# A module marked ``pytest.mark.surfaces`` runs each test that uses ``reg`` twice: on a
# `Registry` (library) and on a `Client` talking to a real server process on the same
# kind of fresh file (http). A test that needs the file's internals carries
# ``pytest.mark.library_only(reason)``.


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "surfaces: run the reg tests on the library, on HTTP and on PostgreSQL"
    )
    config.addinivalue_line(
        "markers", "alone(reason): measures time; no other test runs meanwhile (pytest -n)"
    )
    config.addinivalue_line("markers", "library_only(reason): needs Registry internals")
    config.addinivalue_line("markers", "backends: run the reg tests on SQLite and PostgreSQL")
    config.addinivalue_line(
        "markers", "sqlite_only(reason): needs the SQLite file (its internals, modes or WAL)"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "reg" not in metafunc.fixturenames:
        return
    marked = metafunc.definition.get_closest_marker
    if marked("surfaces") is None and marked("backends") is not None:
        if marked("sqlite_only") is None:  # the library on both backends, no HTTP
            metafunc.parametrize("surface", ["library", "postgres"])
        return
    if marked("surfaces") is None:
        return
    # library: a Registry on a SQLite file; http: a Client over a server on one;
    # postgres: a Registry on a fresh PostgreSQL database (the same behaviour, to the byte).
    surfaces = ["library"]
    if marked("library_only") is None:
        surfaces.append("http")
    if marked("sqlite_only") is None:
        surfaces.append("postgres")
    if len(surfaces) > 1:
        metafunc.parametrize("surface", surfaces)


# --- running in parallel (pytest-xdist: `make test` runs ``pytest -n``) ---------------------
#
# Each worker is a process with its own session fixtures: its own server zygote, its own
# PostgreSQL (tests/support/pg.py), its own tmp_path_factory folder. What they share is the
# machine: a test run beside others is slower by a varying amount.

# No hypothesis deadline anywhere: a deadline measures the machine's load, not the code
# (the modules that set their own settings already said so one by one). The example
# database (.hypothesis/) is shared by the workers; it writes each entry to a temporary
# file renamed into place, and each test's entries are written by the one worker running it.
settings.register_profile("qllm", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("qllm")


@contextlib.contextmanager
def _room(folder: Path, *, alone: bool) -> Iterator[None]:
    """Hold the run's room: shared by ordinary tests, alone for an ``alone`` test.

    Two flock(2)ed files in a folder all workers of one run share. Every test holds
    ``room`` shared; an ``alone`` test holds it exclusive, so it waits for the tests
    under way to end and none starts until it is done. Entering passes the
    ``turnstile`` first, which a waiting ``alone`` test keeps: without it, workers
    taking turns with the shared lock could keep it forever.
    """
    with (folder / "turnstile").open("ab") as turnstile, (folder / "room").open("ab") as room:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        try:
            fcntl.flock(room, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        finally:
            if not alone:
                fcntl.flock(turnstile, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(room, fcntl.LOCK_UN)
            if alone:
                fcntl.flock(turnstile, fcntl.LOCK_UN)


# An id made with ids=repr from an object without a repr of its own holds its address.
ADDRESS = re.compile(r" at 0x[0-9a-f]+>")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Every worker collects the tests and must find the same ids: an address differs from
    # process to process. Such a test needs an id of its own (pytest.param(..., id=...)).
    unstable = [item.nodeid for item in items if ADDRESS.search(item.nodeid)]
    if unstable:
        raise pytest.UsageError(
            "these test ids hold an object's address, which differs from process to process;"
            " give them an id (pytest.param(..., id=...)):\n  " + "\n  ".join(unstable)
        )
    if "PYTEST_XDIST_WORKER" in os.environ:
        # The alone tests go last in a worker's share (`make test` runs them after the
        # others, in a second, serial run). An alone test waits for the tests under way
        # to end; at the start those include the longest of all (bench, crash tests).
        items.sort(key=_alone)  # stable: the others keep their order


def _alone(item: pytest.Item | None) -> bool:
    return item is not None and item.get_closest_marker("alone") is not None


_held: list[contextlib.ExitStack] = []  # this worker's hold on the room, while a test runs


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Run an ``alone`` test (setup, call, teardown) with no other worker's test running."""
    basetemp = item.config.option.basetemp
    if "PYTEST_XDIST_WORKER" not in os.environ or not basetemp:
        return (yield)  # one process: every test runs alone already
    if not _held:  # else the previous test was alone too, and kept the room for this one
        hold = contextlib.ExitStack()
        # Each worker's basetemp is <the run's basetemp>/<worker id>: the parent is the run's.
        hold.enter_context(_room(Path(basetemp).parent, alone=_alone(item)))
        _held.append(hold)
    try:
        return (yield)
    finally:
        if not (_alone(item) and _alone(nextitem)):
            _held.pop().close()


@pytest.fixture
def surface(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "library"))


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    started = Servers(tmp_path_factory.mktemp("servers"))
    yield started
    started.close()


@pytest.fixture
def reg(surface: str, db_path: Path, request: pytest.FixtureRequest) -> Iterator[Registry]:
    """A fresh registry on a real file: the library itself, or a Client over a live server."""
    if surface == "library":
        with Registry(db_path) as opened:
            yield opened
        return
    if surface == "postgres":
        with Registry(request.getfixturevalue("location")) as opened:
            yield opened
        return
    _, url, path = request.getfixturevalue("served_file")
    client = AdminClient(url, path)
    try:
        yield client  # type: ignore[misc]
    finally:
        client.close()


@pytest.fixture
def llm(reg: Registry) -> registry.QueryLlm:
    """One registered Query LLM."""
    return reg.register(body())


@pytest.fixture
def filled(db_path: Path) -> tuple[Path, str, str]:
    """A closed registry file with a Query LLM, a token and one event: path, name, token."""
    with Registry(db_path) as reg:
        name = reg.register(body()).name
        token = reg.create_token("alice")
        reg.record_usage(name, token=token, request_id="r1", chat_prompt_tokens=7)
    return db_path, name, token


# A real PostgreSQL, per session: the `postgres` and `pg_location` fixtures.
from tests.support.pg import Postgres, pg_location, postgres, report_header  # noqa: E402, F401


def pytest_report_header() -> str:
    return report_header()
