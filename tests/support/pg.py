"""A real PostgreSQL for the tests, started once per session (imported by conftest).

``$QLLM_TEST_PG`` (a libpq URL to a server where we may create databases)
is used when set. Otherwise the session starts its own PostgreSQL (``initdb``
and ``pg_ctl`` from ``PATH`` or ``/usr/lib/postgresql/*/bin``) in a temporary
directory, on a free port of 127.0.0.1, with its socket in that directory,
and stops it at the end. PostgreSQL refuses to run as root, so as root it
runs as the ``postgres`` user (``runuser``). When neither is possible, the
tests that need it are skipped with the reason; under ``QLLM_REQUIRE_PG=1``
(CI) the run stops instead: CI never skips them silently.

The server is per session; each test gets a fresh database cloned from a
migrated template (``CREATE DATABASE ... TEMPLATE``), dropped afterwards.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import pwd
import random
import shutil
import socket
import subprocess
import tempfile
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn

import pytest

REQUIRE = os.environ.get("QLLM_REQUIRE_PG") == "1"
USER = "postgres"  # the system user the server runs as, when we are root
# Settings for a throwaway test server. fsync=off is safe against a crash of
# the server (the OS still has the data) though not of the machine; commits
# stay synchronous, so a server killed mid-run loses nothing acknowledged.
TEST_SETTINGS = {
    "fsync": "off",
    "full_page_writes": "off",
    "deadlock_timeout": "100ms",  # deadlock tests need not wait the default 1 s
    "max_connections": "200",
}


def find_program(name: str) -> Path | None:
    """A PostgreSQL program from PATH, else from Debian's versioned directories (newest)."""
    found = shutil.which(name)
    if found:
        return Path(found)
    candidates = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
        key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0,
    )
    return candidates[-1] if candidates else None


def _ephemeral_low() -> int:
    """The first port the kernel hands out for ``bind(0)`` and outgoing connections."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port() -> int:
    """A loopback port free now, for a server that must be told its port number.

    Such a server binds after we let go, so another process could take the port
    in between. Ports are drawn at random from below the ephemeral range: the
    kernel's ``bind(0)`` and outgoing connections (our own servers, clients,
    other pytest workers) never take one there, and two workers drawing the same
    one of ~17,000 at the same moment is unlikely; `Server.start` retries if so.
    """
    low = _ephemeral_low()
    for _ in range(100):
        port = random.randrange(max(1024, low - 17000), low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use (or lingering in TIME_WAIT): draw another
            return port
    raise RuntimeError("no free loopback port below the ephemeral range")


class Server:
    """A PostgreSQL cluster of our own, in a temporary directory."""

    def __init__(self, base: Path, port: int, bindir: Path, as_postgres: list[str]) -> None:
        self.base = base
        self.data = base / "data"
        self.log = base / "server.log"
        self.port = port
        self.bindir = bindir
        self.as_postgres = as_postgres
        self.running = False

    @classmethod
    def start(cls, settings: Mapping[str, str] = TEST_SETTINGS) -> Server:
        """initdb and start a new cluster; `RuntimeError` with the reason if it cannot."""
        initdb = find_program("initdb")
        if initdb is None:
            raise RuntimeError("PostgreSQL is not installed (no initdb on PATH or in /usr/lib)")
        as_postgres: list[str] = []
        base = Path(tempfile.mkdtemp(prefix="qllm-pg-"))
        if os.geteuid() == 0:  # the server refuses root: run it as the postgres user
            try:
                account = pwd.getpwnam(USER)
            except KeyError:
                shutil.rmtree(base)
                raise RuntimeError(f"running as root and there is no {USER!r} user") from None
            os.chown(base, account.pw_uid, account.pw_gid)
            as_postgres = ["runuser", "-u", USER, "--"]
        server = cls(base, free_port(), initdb.parent, as_postgres)
        try:
            server._run(
                "initdb", "-D", str(server.data), "-A", "trust", "-U", "postgres",
                "-E", "UTF8", "--locale=C", "--no-sync",
            )  # fmt: skip
            for attempt in itertools.count(1):
                try:
                    server._start(settings)
                    break
                except RuntimeError:
                    # The port was free when drawn; another process (a parallel
                    # worker's server, say) may have bound it since. Draw again.
                    if attempt == 3 or not server._lost_port():
                        raise
                    server.port = free_port()
        except RuntimeError:
            server.stop()
            raise
        server.running = True
        atexit.register(server.stop)  # also when the session ends badly
        return server

    def _start(self, settings: Mapping[str, str]) -> None:
        options = " ".join(
            [f"-p {self.port}", f"-k {self.base}", "-c listen_addresses=127.0.0.1"]
            + [f"-c {key}={value}" for key, value in settings.items()]
        )
        self.log.unlink(missing_ok=True)  # so that _lost_port reads this attempt's log only
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
            "-o", options, "start",
        )  # fmt: skip

    def _lost_port(self) -> bool:
        """Whether the last start failed because the port was taken."""
        log = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "Address already in use" in log

    def _run(self, program: str, *args: str) -> None:
        command = [*self.as_postgres, str(self.bindir / program), *args]
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{program} failed: {done.stderr.strip()}\n{log}".strip())

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def pg_ctl(self, *args: str) -> None:
        """Run ``pg_ctl`` on this cluster (``restart -m immediate`` in crash tests)."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", *args)

    def stop(self) -> None:
        if self.running:
            self.running = False
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.pg_ctl("-m", "fast", "stop")
        shutil.rmtree(self.base, ignore_errors=True)


class Postgres:
    """What the ``postgres`` fixture gives: a server, a migrated template, fresh databases."""

    def __init__(self, admin_dsn: str, server: Server | None) -> None:
        import psycopg

        self.admin_dsn = admin_dsn
        self.server = server
        self._names = (f"t_{os.getpid()}_{n}" for n in itertools.count())
        self._made: list[str] = []
        with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5) as conn:
            self.version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        self.template = self.create(migrated=False)
        from registry.store.postgres import migrate

        with psycopg.connect(self.dsn(self.template), autocommit=True) as conn:
            migrate.migrate(conn, self.template)

    def dsn(self, dbname: str) -> str:
        """The URL of database ``dbname`` on this server: a location `Registry` takes."""
        parts = urllib.parse.urlsplit(self.admin_dsn)
        return urllib.parse.urlunsplit(parts._replace(path="/" + dbname))

    def admin(self) -> Any:
        """An autocommit connection to the server's maintenance database."""
        import psycopg

        return psycopg.connect(self.admin_dsn, autocommit=True)

    def create(self, *, migrated: bool = True) -> str:
        """A new database: a clone of the migrated template, or empty (from template0)."""
        name = next(self._names)
        template = self.template if migrated else "template0"
        with self.admin() as conn:
            # WAL_LOG (PostgreSQL 15's default) copies a small database without
            # the two checkpoints of FILE_COPY.
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY wal_log')
        self._made.append(name)
        return name

    def drop(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        with contextlib.suppress(ValueError):
            self._made.remove(name)

    def close(self) -> None:
        for name in reversed(self._made):  # the template last: clones depend on nothing
            with contextlib.suppress(Exception):
                self.drop(name)


@contextlib.contextmanager
def scratch(dsn: str | None, settings: Mapping[str, str] = TEST_SETTINGS) -> Iterator[Postgres]:
    """A `Postgres` outside pytest (the benches): on ``dsn``, or on a server of its own started
    with ``settings`` for the block; its databases are dropped, its server stopped, after."""
    server = None
    if dsn is None:
        server = Server.start(settings)
        dsn = server.dsn()
    try:
        pg = Postgres(dsn, server)
        try:
            yield pg
        finally:
            pg.close()
    finally:
        if server is not None:
            server.stop()


def import_psycopg() -> Any:
    """psycopg, for a test module that needs it at import: skipped without it, unless required."""
    if REQUIRE:
        import psycopg

        return psycopg
    return pytest.importorskip("psycopg", reason="psycopg is not installed")


def _stop_run(message: str) -> NoReturn:
    """End the run, saying why; under pytest -n, fail every test that needs PostgreSQL.

    In a pytest-xdist worker, `pytest.exit` becomes an INTERNALERROR of the controller
    that hides ``message``; a failed session fixture fails each test using it with
    ``message`` instead (pytest keeps the failure: nothing is started twice).
    """
    if "PYTEST_XDIST_WORKER" in os.environ:
        pytest.fail(message, pytrace=False)
    pytest.exit(message, returncode=1)


def _unavailable(reason: str) -> NoReturn:
    if REQUIRE:
        _stop_run(f"QLLM_REQUIRE_PG=1 but no PostgreSQL: {reason}")
    pytest.skip(f"no PostgreSQL: {reason} (set QLLM_TEST_PG, or install postgresql)")


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """The session's PostgreSQL: ``$QLLM_TEST_PG``, or a server of our own."""
    try:
        import psycopg
    except ImportError:
        _unavailable("psycopg is not installed (pip install -e '.[dev]')")
    server = None
    dsn = os.environ.get("QLLM_TEST_PG")
    if dsn is not None and not dsn.startswith(("postgresql://", "postgres://")):
        _stop_run("QLLM_TEST_PG must be a postgresql:// URL")
    if dsn is None:
        try:
            server = Server.start()
        except RuntimeError as exc:
            _unavailable(str(exc))
        dsn = server.dsn()
    try:
        pg = Postgres(dsn, server)
    except psycopg.Error as exc:
        if server is not None:
            server.stop()
        # As psycopg's own suite does: a server that fails ends the run, not a test at a time.
        _stop_run(f"cannot use PostgreSQL at {dsn}: {exc}")
    try:
        yield pg
    finally:
        pg.close()
        if server is not None:
            server.stop()


@pytest.fixture
def pg_location(postgres: Postgres) -> Iterator[str]:
    """The URL of a fresh, migrated database, dropped after the test."""
    name = postgres.create()
    yield postgres.dsn(name)
    postgres.drop(name)


def report_header() -> str:
    """What ``pytest_report_header`` shows: which PostgreSQL the tests will use."""
    dsn = os.environ.get("QLLM_TEST_PG")
    if dsn:
        try:
            import psycopg

            with psycopg.connect(dsn, connect_timeout=3) as conn:
                row = conn.execute("SHOW server_version").fetchone()
            return f"postgresql: {row[0] if row else '?'} (QLLM_TEST_PG)"
        except Exception as exc:
            return f"postgresql: QLLM_TEST_PG does not answer: {str(exc).strip()}"
    program = find_program("postgres")
    if program is None:
        required = " (QLLM_REQUIRE_PG=1: the run will stop)" if REQUIRE else ", tests skipped"
        return f"postgresql: not installed{required}"
    version = subprocess.run(
        [str(program), "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return f"postgresql: {version} from {program.parent}, started on first use"
