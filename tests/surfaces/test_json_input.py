"""Issue 19's input items where a user meets them: the ``qllm`` command line (in process,
and as real subprocesses where signals, argv bytes or the environment matter) and a real
``qllm serve``. One reader of JSON input, so that each rule holds on every surface: repeated
keys (item 8), integers too long for ``int()`` (item 6), JSON-number costs read exactly
(item 7), keys that are not Unicode (item 14), every problem of an import reported in one
form (item 22); and the command line's own items (5, 11, 12, 21)."""

from __future__ import annotations

import http.server
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

import registry
from registry.events import EventLines
from registry.registry import Registry
from tests.support.cli import fails, ok, run
from tests.support.data import body
from tests.support.serving import Served

QLLM = str(Path(sys.executable).with_name("qllm"))
NAME = registry.validate(body()).name
MODEL = {"models": [body(), body(id="b")], "weight": {"type": "static"}}
BIG = "9" * 5000  # Python's int() refuses more than 4300 digits
REPEATED = '{"id": "m", "mode": "generate", "provider": {"sort": "price", "sort": "latency"},'
REPEATED += ' "weight": {"type": "static", "weight": 1}}'
SURROGATE_KEY = (
    '{"\\ud800": 1, "id": "m", "mode": "generate", "weight": {"type": "static", "weight": 1}}'
)


@pytest.fixture(autouse=True)
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    for variable in ("QLLM_DB", "QLLM_TOKEN", "XDG_DATA_HOME"):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = tmp_path / "registry.db"
    with Registry(path) as reg:
        reg.register(body())
    return str(path)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    where = tmp_path_factory.mktemp("served")
    server = Served(where / "registry.db", where / "server.log")
    with registry.Client(server.url) as client:
        client.register(body())
    yield server
    assert server.stop() == 0
    assert "Traceback" not in server.log.read_text()  # no input was a defect


def post(served: Served, path: str, content: bytes | str, kind: str = "application/json") -> Any:
    response = httpx.post(
        served.url + path,
        content=content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content,
        headers={"Content-Type": kind},
    )
    return response.status_code, response.json()


def events(db: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT request_id, chat_cost, embedding_cost FROM usage_events"
        ).fetchall()


# --- repeated keys (item 8) -------------------------------------------------------------------


def test_repeated_keys_are_refused_by_every_command(tmp_path: Path, db: str) -> None:
    """``{"provider": {"sort": "price", "sort": "latency"}}`` registered ``latency``."""
    assert fails(["validate", "-"], 1, input=REPEATED) == ["/provider/sort: duplicate key"]
    assert fails(["register", "-", "--db", db], 1, input=REPEATED) == [
        "/provider/sort: duplicate key"
    ]
    model = json.dumps(MODEL)[:-1] + ', "weight": {"type": "static"}}'
    assert fails(["model", "validate", "-"], 1, input=model) == ["/weight: duplicate key"]
    lines = tmp_path / "events.jsonl"
    lines.write_text(
        json.dumps({"name": NAME})
        + "\n"
        + f'{{"name": "{NAME}", "chat_cost": 1, "chat_cost": 2}}\n'
    )
    assert fails(["usage", "import", str(lines), "--db", db], 1) == [
        "line 2: /chat_cost: duplicate key"
    ]
    with Registry(db) as reg:
        assert reg.count() == 1
    assert events(db) == []


def test_repeated_keys_are_refused_on_every_route(served: Served) -> None:
    assert post(served, "/query_llms", REPEATED)[1]["errors"] == [
        {"path": "/provider/sort", "message": "duplicate key"}
    ]
    event = f'{{"name": "{NAME}", "at": null, "at": "2026-01-01T00:00:00Z"}}'
    for path, content, kind in [
        ("/usage", event, "application/json"),
        ("/usage", f"[{event}]", "application/json"),
        ("/usage", f"{event}\n", "application/x-ndjson"),
    ]:
        status, answer = post(served, path, content, kind)
        assert status == 400
        where = "" if content == event else ("/0" if content.startswith("[") else "/1")
        assert answer["errors"] == [{"path": f"{where}/at", "message": "duplicate key"}]


# --- integers too long for int() (item 6) -----------------------------------------------------


def test_integers_too_long_for_int_are_out_of_range_on_every_command(
    tmp_path: Path, db: str
) -> None:
    """They ended in Python's int_max_str_digits message; now the field's range, at its path."""
    text = json.dumps(body()).replace('"weight": 1', f'"weight": {BIG}')
    expected = ["/weight/weight: must be greater than 0 and at most 1000000"]
    assert fails(["validate", "-"], 1, input=text) == expected
    assert fails(["register", "-", "--db", db], 1, input=text) == expected
    lines = tmp_path / "events.jsonl"
    lines.write_text(f'{{"name": "{NAME}", "chat_prompt_tokens": {BIG}, "chat_cost": {BIG}}}\n')
    assert fails(["usage", "import", str(lines), "--db", db], 1) == [
        "line 1: /chat_cost: must be between 0 and 1000000 credits",
        "line 1: /chat_prompt_tokens: must be between 0 and 1000000000000",
    ]


def test_integers_too_long_for_int_are_out_of_range_on_every_route(served: Served) -> None:
    text = json.dumps(body()).replace('"weight": 1', f'"weight": {BIG}')
    assert post(served, "/query_llms", text)[1]["errors"] == [
        {"path": "/weight/weight", "message": "must be greater than 0 and at most 1000000"}
    ]
    event = f'{{"name": "{NAME}", "chat_prompt_tokens": {BIG}}}'
    for content, kind, where in [
        (event, "application/json", ""),
        (f"[{event}]", "application/json", "/0"),
        (event, "application/x-ndjson", "/1"),
    ]:
        assert post(served, "/usage", content, kind)[1]["errors"] == [
            {
                "path": f"{where}/chat_prompt_tokens",
                "message": "must be between 0 and 1000000000000",
            }
        ]


# --- JSON-number costs (item 7) -----------------------------------------------------------------

EXACT = [("0.12345678949999999999", "0.123456789"), ("0.0000000035", "0.000000004")]


def test_json_number_costs_are_rounded_once_by_the_import(tmp_path: Path, db: str) -> None:
    """``0.12345678949999999999`` is 123456789 nano-credits, not its float's 123456790."""
    lines = tmp_path / "events.jsonl"
    lines.write_text(
        "".join(
            f'{{"name": "{NAME}", "request_id": "r{i}", "chat_cost": {text}, "embedding_cost": {text}}}\n'  # noqa: E501
            for i, (text, _) in enumerate(EXACT)
        )
    )
    assert ok(["usage", "import", str(lines), "--db", db]) == {"read": 2, "written": 2}
    assert sorted(events(db)) == [("r0", 123_456_789, 123_456_789), ("r1", 4, 4)]


def test_json_number_costs_are_rounded_once_on_every_route(served: Served) -> None:
    with registry.Client(served.url) as client:
        name = client.register(body(id="exact")).name
        for number, (text, _) in enumerate(EXACT):
            event = f'{{"name": "{name}", "request_id": "x{number}-%s", "chat_cost": {text}}}'
            assert post(served, "/usage", event % "object")[1] == {"written": 1}
            assert post(served, "/usage", "[" + event % "array" + "]")[1] == {"written": 1}
            ndjson = event % "lines" + "\n"
            assert post(served, "/usage", ndjson, "application/x-ndjson")[1] == {"written": 1}
        total = client.get(name, metadata=True)["chat_cost"]
    assert total == 3 * sum(Decimal(expected) for _, expected in EXACT)


# --- keys that are not Unicode (item 14) --------------------------------------------------------


def test_a_lone_surrogate_key_is_a_400_on_every_route(served: Served) -> None:
    """It was a 500 with two tracebacks: the path of the error could not be encoded."""
    model = SURROGATE_KEY.replace('{"\\ud800": 1, ', '{"models": [{"\\ud800": 1}], "weight": {}, ')
    event = f'{{"\\udfff": 1, "name": "{NAME}"}}'
    for path, content, kind, where in [
        ("/query_llms", SURROGATE_KEY, "application/json", "/\\ud800"),
        ("/query_models", model, "application/json", "/models/0/\\ud800"),
        ("/usage", event, "application/json", "/\\udfff"),
        ("/usage", f"[{event}]", "application/json", "/0/\\udfff"),
        ("/usage", f"{event}\n", "application/x-ndjson", "/1/\\udfff"),
    ]:
        status, answer = post(served, path, content, kind)
        assert status == 400, (path, answer)
        assert answer["errors"][0] == {
            "path": where,
            "message": "key is not Unicode text (it holds a lone surrogate)",
        }


def test_a_lone_surrogate_key_is_one_clean_line_on_the_command_line(db: str) -> None:
    line = "/\\ud800: key is not Unicode text (it holds a lone surrogate)"
    assert fails(["validate", "-"], 1, input=SURROGATE_KEY) == [line]
    assert fails(["register", "-", "--db", db], 1, input=SURROGATE_KEY) == [line]


# --- every problem, in order, in one form (item 22) -------------------------------------------


def test_an_import_reports_every_problem_in_order_in_one_form(tmp_path: Path, db: str) -> None:
    """Line 3 that is not JSON no longer hides line 2's unknown key; each line says
    ``line N: [path: ]message``, an unregistered name too."""
    lines = tmp_path / "events.jsonl"
    lines.write_text(
        "\n".join(
            [
                json.dumps({"name": NAME}),
                json.dumps({"nam": NAME}),
                "not json",
                "",
                json.dumps({"name": NAME, "at": "2026-01-01T24:00:00Z"}),
            ]
        )
        + "\n"
    )
    assert fails(["usage", "import", str(lines), "--db", db], 1) == [
        "line 2: /nam: unknown key (did you mean 'name'?)",
        "line 2: /name: is required",
        "line 3: is not valid JSON: Expecting value: line 1 column 1 (char 0)",
        "line 5: /at: is not a valid date-time (hours are 00 to 23): '2026-01-01T24:00:00Z'",
    ]
    lines.write_text(json.dumps({"name": NAME}) + "\n" + json.dumps({"name": "0" * 22}) + "\n")
    assert fails(["usage", "import", str(lines), "--db", db], 3) == [
        f"line 2: /name: no Query LLM named {'0' * 22}"
    ]
    assert events(db) == []


def test_json_lines_over_http_report_every_problem_in_order(served: Served) -> None:
    content = "\n".join([json.dumps({"name": NAME}), json.dumps({"nam": NAME}), "not json"])
    status, answer = post(served, "/usage", content, "application/x-ndjson")
    assert status == 400
    assert [(e["path"], e["message"]) for e in answer["errors"]] == [
        ("/2/nam", "unknown key (did you mean 'name'?)"),
        ("/2/name", "is required"),
        ("/3", "is not valid JSON: Expecting value: line 1 column 1 (char 0)"),
    ]


# --- read commands create nothing (item 21) ---------------------------------------------------


@pytest.mark.parametrize("form", ["json", "table", "chart", "html"])
def test_usage_series_on_a_missing_file_creates_nothing(tmp_path: Path, form: str) -> None:
    """``--db typo.db`` created the file, printed zeros and exited 0."""
    typo = tmp_path / "typo.db"
    args = ["usage", "series", "--from", "2026-11-01", "--db", str(typo), "--format", form]
    (line,) = fails(args, 5)
    assert line.startswith(f"no registry at {typo}")
    assert not typo.exists()
    assert list(tmp_path.iterdir()) == []


# --- validate | register, and help (item 12) ----------------------------------------------------


def test_validate_output_pipes_into_register(tmp_path: Path, db: str) -> None:
    """``qllm validate FILE | qllm register -`` failed with ``/name: unknown key``."""
    path = tmp_path / "body.json"
    training = {"type": "training_table", "base_weight": 2, "min_weight": 1, "max_weight": 3}
    path.write_text(json.dumps(body(id="piped", weight=training)))
    printed = run(["validate", str(path)]).stdout
    assert ok(["register", "-", "--db", db], input=printed) == json.loads(printed)
    path.write_text(json.dumps(MODEL))
    printed = run(["model", "validate", str(path)]).stdout
    assert ok(["model", "register", "-", "--db", db], input=printed) == json.loads(printed)
    edited = json.loads(printed)
    edited["models"][0]["name"] = edited["models"][1]["name"]
    (line,) = fails(["model", "register", "-", "--db", db], 1, input=json.dumps(edited))
    assert line.startswith("/models/0/name: must be ")


@pytest.mark.parametrize("group", [[], ["model"]], ids=["llm", "model"])
def test_get_help_says_the_window_counts_only_with_metadata(group: list[str]) -> None:
    text = " ".join(run([*group, "get", "--help"]).stdout.split())
    options = [" --me ", " --from TIME ", " --to TIME ", " --last DURATION ", " --db FILE "]
    for option, following in itertools.pairwise(options):
        help_text = text.split(option, 1)[1].split(following, 1)[0]
        assert help_text.endswith("Ignored without --metadata."), option


# --- the smaller ones (item 11) ----------------------------------------------------------------


@pytest.mark.parametrize("timeout", ["0", "-1", "nan", "inf", "-inf", "1e300"])
def test_timeout_must_be_a_positive_finite_number(db: str, timeout: str) -> None:
    for args in (["count"], ["usage", "record", NAME], ["token", "create", "ann"]):
        assert fails([*args, "--db", db, "--timeout", timeout], 1) == [
            "--timeout: must be a number of seconds, more than 0 and at most 1000000"
        ]
    assert events(db) == []


def test_a_db_path_that_is_a_symlink_loop_or_not_utf8_is_a_clean_error(tmp_path: Path) -> None:
    """Each gave a traceback; now one line and exit 5, for reads and writes, nothing made."""
    loop = tmp_path / "loop.db"
    loop.symlink_to(loop)
    assert fails(["usage", "record", NAME, "--db", str(loop)], 5) == [
        f"cannot open {loop}: a loop of symbolic links"
    ]
    assert fails(["count", "--db", str(loop)], 5)
    folder = os.fsencode(tmp_path)
    for args in (["count"], ["token", "create", "ann"], ["usage", "import", "-"]):
        done = subprocess.run(
            [QLLM.encode(), *(a.encode() for a in args), b"--db", folder + b"/\xff.db"],
            input=b"",
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 5, done.stderr
        assert done.stderr.decode().endswith(
            "\\udcff.db: the location is not UTF-8 text; rename the file\n"
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loop.db"]


def test_a_file_of_blank_lines_is_read_in_bounded_memory(tmp_path: Path) -> None:
    """Blank lines are remembered by run, not one by one: 4 million of them (a real file)
    leave nothing behind, and one run between two events costs one entry."""
    path = tmp_path / "blank.jsonl"
    with path.open("wb") as out:
        for _ in range(40):
            out.write(b"\n" * 50_000 + b"   \n" * 50_000)
    tracemalloc.start()
    try:
        with path.open("rb") as lines:
            reader = EventLines(lines)
            assert list(reader) == []
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000
    assert (len(reader._after), len(reader._blanks)) == (0, 0)
    with path.open("ab") as out:
        out.write(json.dumps({"name": NAME}).encode() + b"\n")
    with path.open("rb") as lines:
        reader = EventLines(lines)
        assert len(list(reader)) == 1
        assert reader.line_of(0) == 4_000_001
        assert (len(reader._after), len(reader._blanks)) == (1, 1)


def test_ctrl_c_during_an_import_exits_130_and_writes_nothing(db: str) -> None:
    """SIGINT while an import reads its events: one line, status 130, no event written."""
    process = subprocess.Popen(
        [QLLM, "usage", "import", "-", "--db", db],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdin is not None
    for number in range(3000):  # more than a chunk: some events are validated and spooled
        process.stdin.write(json.dumps({"name": NAME, "request_id": f"c{number}"}).encode() + b"\n")
    process.stdin.flush()
    time.sleep(1.5)  # it is reading, waiting for more
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert out == b""
    assert err.decode().splitlines() == [
        "interrupted: the write under way, if any, was rolled back"
    ]
    assert events(db) == []


# --- the Client reads only a qllm server's answers (item 15) -----------------------------------


class _Other(http.server.BaseHTTPRequestHandler):
    """Some other web server: a page, or JSON that is not what the route answers with."""

    def do_GET(self) -> None:
        page = self.path.startswith("/page")
        text = b"<html>a dashboard</html>" if page else b'{"message": "hello", "data": 5}'
        self.send_response(200)
        self.send_header("Content-Type", "text/html" if page else "application/json")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def other_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Other)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("prefix", ["/page", "/json"])
def test_an_answer_that_is_not_a_qllm_servers_is_an_error(other_server: str, prefix: str) -> None:
    """``get("..")`` once returned the dashboard's HTML as ``{"message": ...}``: a page, or
    JSON without what the route answers with, is a `StorageError` naming the URL."""
    with registry.Client(other_server + prefix) as client:
        calls: list[Callable[[], Any]] = [
            client.health,
            client.count,
            client.list,
            lambda: client.get(NAME),
            lambda: client.usage_series("2026-11-01", "2026-11-02"),
            lambda: client.record_usage(NAME),
        ]
        for call in calls:
            with pytest.raises(registry.StorageError, match="did not answer as a qllm server"):
                call()


def test_token_revoke_takes_the_token_from_stdin_or_the_environment(db: str) -> None:
    """The README keeps tokens off command lines (item 12): ``qllm token revoke`` reads
    ``$QLLM_TOKEN``, or stdin with ``-``."""
    first = ok(["token", "create", "ann", "--db", db])["token"]
    second = ok(["token", "create", "bob", "--db", db])["token"]
    assert ok(["token", "revoke", "-", "--db", db], input=first + "\n")["revoked"] is True
    assert ok(["token", "revoke", "--db", db], env={"QLLM_TOKEN": second})["revoked"] is True
    for token in (first, second):
        assert fails(["count", "--me", "--db", db], 4, env={"QLLM_TOKEN": token}) == [
            "token was revoked"
        ]
    assert fails(["token", "revoke", "--db", db], 1)[-1].startswith("Error: give the token")
