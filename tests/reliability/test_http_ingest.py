"""Large ``POST /usage`` bodies against a real ``qllm serve``: other writers keep being
answered while one streams in, and the server's memory stays that of a few pieces.

The server's peak memory is its ``VmHWM`` (the high-water mark of its resident set)."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from registry.client import Client
from tests.support.data import body
from tests.support.serving import QLLM, Served

MB = 1_000_000
RSS_LIMIT = 300 * 1024 * 1024  # bytes


def peak_rss(pid: int) -> int:
    """The highest resident set the process has had so far, in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"VmHWM:\s+(\d+) kB", status)
    assert found is not None
    print(f"server peak RSS: {int(found[1]) / 1024:.0f} MiB")
    return int(found[1]) * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, str]]:
    where = tmp_path_factory.mktemp("ingest")
    served = Served(where / "registry.db", where / "server.log")
    with Client(served.url) as client:
        name = client.register(body()).name
    yield served, name
    assert served.stop() == 0


def pieces(total: int, piece: bytes, head: bytes = b"", tail: bytes = b"") -> Iterator[bytes]:
    """``head``, then ``piece`` repeated up to ``total`` bytes (in 1 MB sends), then ``tail``."""
    yield head
    block = piece * max(1, MB // len(piece))
    sent = 0
    while sent < total:
        yield block
        sent += len(block)
    yield tail


def test_an_array_of_250_mb_streams_in_bounded_memory(server: tuple[Served, str]) -> None:
    """250 MB of events in one array: all recorded, the server never near 300 MB."""
    served, name = server
    # Events padded with whitespace to 10 kB each: 25,000 of them make 250 MB.
    padding = b" " * 10_000

    def events() -> Iterator[bytes]:
        yield b"["
        for i in range(25_000):
            yield b'%s{"name": "%s",%s"request_id": "big-%d"}' % (
                b"," if i else b"",
                name.encode(),
                padding,
                i,
            )
        yield b"]"

    response = httpx.post(
        served.url + "/usage",
        content=events(),
        headers={"Content-Type": "application/json"},
        timeout=300,
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"written": 25_000}
    assert peak_rss(served.process.pid) < RSS_LIMIT


def test_an_array_element_of_100_mb_is_refused_at_its_index(server: tuple[Served, str]) -> None:
    served, name = server
    head = b'[{"name": "%s"}, {"name": "%s", "request_id": "' % (name.encode(), name.encode())
    response = httpx.post(
        served.url + "/usage",
        content=pieces(100 * MB, b"x" * 1000, head, b'"}]'),
        headers={"Content-Type": "application/json"},
        timeout=300,
    )
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"path": "/1", "message": "is over the limit of 1 MiB for one element"}
    ]
    assert peak_rss(served.process.pid) < RSS_LIMIT


def test_a_json_lines_line_of_100_mb_is_refused_at_its_line(server: tuple[Served, str]) -> None:
    served, name = server
    good = b'{"name": "%s"}\n' % name.encode()
    response = httpx.post(
        served.url + "/usage",
        content=pieces(100 * MB, b"x" * 1000, good + b"\n" + good + b'{"name": "', b'"}\n'),
        headers={"Content-Type": "application/x-ndjson"},
        timeout=300,
    )
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"path": "/4", "message": "is over the limit of 1 MiB for one line"}
    ]
    assert peak_rss(served.process.pid) < RSS_LIMIT


def test_a_single_event_body_over_1_mib_is_refused(server: tuple[Served, str]) -> None:
    served, name = server
    response = httpx.post(
        served.url + "/usage",
        content=b'{"name": "%s", "request_id": "%s"}' % (name.encode(), b"x" * (2 * MB)),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["path"] == "/"
    assert "1 MiB for one usage event" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[", "the array is not closed"),
        (b'[{"name": "x"}] [', "more text after the array"),
        (b"[1,,2]", None),
    ],
    ids=["unclosed", "trailing", "empty element"],
)
def test_malformed_arrays_are_400s(
    server: tuple[Served, str], content: bytes, message: str | None
) -> None:
    served, _ = server
    response = httpx.post(
        served.url + "/usage", content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    errors = response.json()["errors"]
    if message is None:  # a problem of the element at its index; the others' own problems too
        assert "/1" in [e["path"] for e in errors]
    else:
        assert errors[0]["path"] == "/"
        assert message in errors[0]["message"]


LARGE_EVENTS = 750_000
# The server's line for a commit that held the write lock over a second (registry.http.writer).
_COMMIT = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) \(writer\) (\d+) events .* held ([\d.]+) s$",
    re.MULTILINE,
)


def commits(log: Path) -> list[tuple[float, float, int]]:
    """The long commits the server logged: (start, end) in time.time() terms, and events."""
    found = []
    for stamp, ms, events, held in _COMMIT.findall(log.read_text()):
        end = time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) + int(ms) / 1000
        found.append((end - float(held), end, int(events)))
    return found


@pytest.mark.alone("measures how long other writers wait during a 60 MB upload")
@pytest.mark.parametrize("kind", ["application/x-ndjson", "application/json"])
def test_writers_are_answered_while_a_60_mb_upload_is_sent_and_parsed(
    tmp_path: Path, kind: str
) -> None:
    """While 750,000 events (60 MB) are sent and parsed, single events are answered in under
    1 s and `qllm usage record --timeout 2` (another process) succeeds. Only the upload's
    own commit, which holds the write lock for seconds, makes them wait (docs/http.md)."""
    served = Served(tmp_path / "registry.db", tmp_path / "server.log")
    try:
        with Client(served.url) as client:
            name = client.register(body()).name
        template = '{"name":"NAME","request_id":"upload-%07d","chat_prompt_tokens":3}'
        template = template.replace("NAME", name)
        ndjson = kind == "application/x-ndjson"

        def upload() -> Iterator[bytes]:
            yield b"" if ndjson else b"["
            for start in range(0, LARGE_EVENTS, 5000):
                lines = (template % i for i in range(start, start + 5000))
                if ndjson:
                    yield ("\n".join(lines) + "\n").encode()
                else:
                    yield (("," if start else "") + ",".join(lines)).encode()
            yield b"" if ndjson else b"]"

        answer: list[httpx.Response] = []
        uploader = threading.Thread(
            target=lambda: answer.append(
                httpx.post(
                    served.url + "/usage",
                    content=upload(),
                    headers={"Content-Type": kind},
                    timeout=600,
                )
            )
        )
        began = time.time()
        uploader.start()
        probes: list[tuple[float, float]] = []  # (sent, answered), time.time()
        recorded: subprocess.CompletedProcess[str] | None = None
        with httpx.Client(base_url=served.url, timeout=60) as http:
            while uploader.is_alive():
                sent = time.time()
                response = http.post(
                    "/usage", json={"name": name, "request_id": f"one-{len(probes)}"}
                )
                probes.append((sent, time.time()))
                assert response.json() == {"written": 1}
                if recorded is None and time.time() - began > 2:
                    command = [QLLM, "usage", "record", name, "--db", str(served.path)]
                    recorded = subprocess.run(
                        [*command, "--timeout", "2", "--request-id", "cli-1"],
                        capture_output=True,
                        text=True,
                        check=False,
                    )
                time.sleep(0.1)
        uploader.join()
        assert answer[0].status_code == 200, answer[0].text
        assert answer[0].json() == {"written": LARGE_EVENTS}
        [(start, end, _)] = [c for c in commits(served.log) if c[2] >= LARGE_EVENTS]
        # Allow for the log's clock reading (a millisecond) and the probe's own round trip.
        during = [(a, b) for a, b in probes if b > start - 0.05 and a < end + 0.05]
        before = [b - a for a, b in probes if (a, b) not in during]
        print(
            f"{kind}: {len(before)} single events while the upload was sent and parsed"
            f" ({start - began:.1f} s), the longest wait {max(before):.3f} s; the upload's"
            f" commit held the lock {end - start:.2f} s, {len(during)} waited for it,"
            f" the longest {max((b - a for a, b in during), default=0):.2f} s"
        )
        assert recorded is not None
        assert recorded.returncode == 0, recorded.stderr
        assert len(before) > 10
        assert max(before) < 1.0
        with Client(served.url) as client:
            assert client.get(name, metadata=True)["requests"] == LARGE_EVENTS + len(probes) + 1
    finally:
        assert served.stop() == 0
