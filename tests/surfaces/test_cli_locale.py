"""Files and standard input are UTF-8 whatever the locale (issue 19, item 5), in real
``qllm`` processes: under ``LC_ALL=C`` with Python's UTF-8 mode off (so that its
preferred encoding is ASCII, as for any program that follows the C locale) and under a
Latin-1 locale, compiled for the test with ``localedef``. A body gets the same name as
under UTF-8, an import stores the same request ids, a leading BOM is ignored, and
``qllm validate FILE | qllm register -`` works in a pipe."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import registry
from tests.support.data import body

QLLM = str(Path(sys.executable).with_name("qllm"))
ID = "mistral/modèle-été-日本"  # Latin-1 cannot write the last two characters
REQUEST_ID = "requête-№1"


@pytest.fixture(scope="module")
def latin1(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a Latin-1 locale (en_US.ISO-8859-1), compiled into a folder."""
    if shutil.which("localedef") is None:
        pytest.skip("localedef (glibc) is needed to make a Latin-1 locale")
    folder = tmp_path_factory.mktemp("locales")
    made = subprocess.run(
        ["localedef", "-i", "en_US", "-f", "ISO-8859-1", str(folder / "en_US.ISO-8859-1")],
        check=False,
        capture_output=True,
        timeout=120,
    )
    if not (folder / "en_US.ISO-8859-1").is_dir():  # no locale sources installed
        pytest.skip(f"localedef could not make a Latin-1 locale: {made.stderr.decode()[-200:]}")
    return {"LOCPATH": str(folder), "LC_ALL": "en_US.ISO-8859-1", "PYTHONUTF8": "0"}


ASCII = {"LC_ALL": "C", "PYTHONUTF8": "0"}  # Python's preferred encoding is then ASCII


def qllm(
    args: list[str], locale: dict[str, str], stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG", "PYTHONIO"))}
    env.update(locale)
    return subprocess.run(
        [QLLM, *args], input=stdin, env=env, capture_output=True, timeout=60, check=False
    )


def preferred_encoding(locale: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG"))}
    code = "import locale; print(locale.getpreferredencoding(False))"
    out = subprocess.run(
        [sys.executable, "-c", code], env={**env, **locale}, capture_output=True, check=True
    )
    return out.stdout.decode().strip()


def locales(latin1: dict[str, str]) -> list[dict[str, str]]:
    assert preferred_encoding(latin1) == "ISO-8859-1"  # the locale really is Latin-1
    assert preferred_encoding(ASCII) in ("ANSI_X3.4-1968", "ascii", "US-ASCII")
    return [ASCII, latin1]


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"], ids=["plain", "bom"])
def test_validate_reads_utf8_whatever_the_locale(
    tmp_path: Path, latin1: dict[str, str], bom: bytes
) -> None:
    """The same body, as a file and on stdin, has the same name under every locale."""
    value = body(id=ID, stop=["fin", "終"])
    expected = registry.validate(value)
    path = tmp_path / "body.json"
    path.write_bytes(bom + json.dumps(value, ensure_ascii=False).encode())
    for locale in locales(latin1):
        runs = ((["validate", str(path)], None), (["validate", "-"], path.read_bytes()))
        for args, stdin in runs:
            done = qllm(args, locale, stdin)
            assert done.returncode == 0, (locale, done.stderr)
            printed = json.loads(done.stdout)  # JSON readable as UTF-8 (ASCII escapes) anywhere
            assert printed["name"] == expected.name, locale
            assert printed["id"] == ID


def test_validate_pipe_into_register_whatever_the_locale(
    tmp_path: Path, latin1: dict[str, str]
) -> None:
    """``qllm validate FILE | qllm register -``: what one prints, the other reads."""
    value = body(id=ID)
    path = tmp_path / "body.json"
    path.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")
    expected = registry.validate(value).name
    for number, locale in enumerate(locales(latin1)):
        db = tmp_path / f"registry-{number}.db"
        printed = qllm(["validate", str(path)], locale)
        assert printed.returncode == 0, printed.stderr
        stored = qllm(["register", "-", "--db", str(db)], locale, printed.stdout)
        assert stored.returncode == 0, stored.stderr
        assert json.loads(stored.stdout)["name"] == expected
        with registry.Registry(db) as reg:
            assert reg.get(expected)["id"] == ID


def test_usage_import_reads_utf8_whatever_the_locale(
    tmp_path: Path, latin1: dict[str, str]
) -> None:
    """An import stores the request ids written in the file, under every locale."""
    for number, locale in enumerate(locales(latin1)):
        db = tmp_path / f"registry-{number}.db"
        with registry.Registry(db) as reg:
            name = reg.register(body()).name
        lines = tmp_path / "events.jsonl"
        event = {"name": name, "request_id": REQUEST_ID, "chat_cost": "0.5"}
        lines.write_bytes(b"\xef\xbb\xbf" + json.dumps(event, ensure_ascii=False).encode() + b"\n")
        done = qllm(["usage", "import", str(lines), "--db", str(db)], locale)
        assert done.returncode == 0, (locale, done.stderr)
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT request_id FROM usage_events").fetchall() == [(REQUEST_ID,)]
