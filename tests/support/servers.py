"""Real ``qllm serve`` processes for the behaviour suite's HTTP surface, forked from one
pre-imported parent (`tests/support/http_zygote.py`), and the client the suite uses on them."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from sqlite_utils import Database

from registry.client import Client
from registry.registry import Registry
from tests.support.data import ROOT


class Servers:
    """Real server processes, forked from one pre-imported parent, one per test.

    The next test's server is started (and its fresh file migrated) while the
    current test runs, so a test rarely waits for one.
    """

    def __init__(self, where: Path) -> None:
        self._where = where
        self._log = (where / "servers.log").open("ab")
        self._zygote = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "support" / "http_zygote.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=ROOT,
            text=True,
        )
        self._started = 0
        self._next: tuple[int, str, Path] | None = None

    def _spawn(self) -> tuple[int, str, Path]:
        assert self._zygote.stdin is not None
        assert self._zygote.stdout is not None
        self._started += 1
        folder = self._where / f"s{self._started}"
        folder.mkdir()
        path = folder / "registry.db"
        self._zygote.stdin.write(f"{path}\n")
        self._zygote.stdin.flush()
        pid, port = self._zygote.stdout.readline().split()
        return int(pid), f"http://127.0.0.1:{port}", path

    def take(self) -> tuple[int, str, Path]:
        """A server on a fresh file: its pid, base URL and file."""
        ready = self._next or self._spawn()
        self._next = self._spawn()
        return ready

    @staticmethod
    def stop(pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)

    def close(self) -> None:
        if self._next is not None:
            self.stop(self._next[0])
        self._zygote.terminate()
        self._zygote.wait()
        self._log.close()


class AdminClient(Client):
    """A `Client` plus the library-only token commands, run on the served file directly.

    Tokens are created and revoked only through the library and the command line,
    never over HTTP; the behaviour tests need them on both surfaces.
    """

    def __init__(self, url: str, path: Path) -> None:
        super().__init__(url)
        self.path = path
        self.health()  # the server has created and migrated the file: now look at it
        # The tests' window on the file the server writes, as `Registry.db` is on the
        # library side; autocommit, so it never holds a lock the server waits for.
        self.db = Database(sqlite3.connect(path, isolation_level=None))

    def close(self) -> None:
        self.db.close()
        super().close()

    def rebuild_rollups(self) -> dict[str, int]:
        with Registry(self.path) as admin:
            return admin.rebuild_rollups()

    def create_token(self, user_id: str) -> str:
        with Registry(self.path) as admin:
            return admin.create_token(user_id)

    def revoke_token(self, token: str) -> None:
        with Registry(self.path) as admin:
            admin.revoke_token(token)
