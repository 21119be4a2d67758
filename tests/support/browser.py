"""Headless Chromium for tests: the DOM a page renders to, and screenshots of it.

Debian's ``chromium`` runs with a throw-away profile and nothing that talks to
the network on its own: as a command (`dump_dom`, `screenshot`), or driven by
playwright (`browser`), which sizes the window, clicks and reads the live DOM.
Pages are served over real HTTP by a ``python -m http.server`` subprocess
(`served`); a live ``qllm serve`` is used the same way, by URL.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
TIMEOUT = 60


def chromium() -> str | None:
    """The path of the browser, or None where it is not installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _run(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    browser = chromium()
    if browser is None:
        raise RuntimeError("chromium is not installed (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory(prefix="qllm-chromium-") as profile:
        return subprocess.run(
            [browser, *FLAGS, f"--user-data-dir={profile}", *extra, url],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=True,
        )


def dump_dom(url: str) -> str:
    """The DOM after the page's scripts ran, serialized as HTML."""
    return _run(url, "--dump-dom").stdout


def screenshot(url: str, path: Path, width: int = 1200, height: int = 1000) -> Path:
    """A PNG of the page's first ``width`` x ``height`` pixels."""
    _run(url, f"--screenshot={path}", f"--window-size={width},{height}")
    return path


@contextlib.contextmanager
def served(directory: Path) -> Iterator[str]:
    """``directory`` over HTTP on a free local port: its base URL, while the block runs."""
    # Port 0: the server binds a port the kernel picks and says which, so no other
    # process (a parallel test worker, say) can take it between choice and bind.
    server = subprocess.Popen(
        [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1"],
        cwd=directory,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        # "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
        banner = server.stdout.readline()
        found = re.search(r" port (\d+) ", banner)
        if found is None:
            raise RuntimeError(f"http.server did not start: {banner!r}")
        server.stdout.close()  # it logs requests to stderr; nothing more to read here
        yield f"http://127.0.0.1:{found[1]}/"
    finally:
        server.terminate()
        server.wait(timeout=10)


class Dom(HTMLParser):
    """The elements of a dumped DOM in document order: tag, attributes, text, ancestors' ids."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str], list[str], set[str]]] = []
        self._open: list[int] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        above = {self.elements[i][1].get("id", "") for i in self._open}
        self.elements.append((tag, {k: v or "" for k, v in attrs}, [], above))
        if tag not in ("meta", "input", "br", "link", "img", "line"):
            self._open.append(len(self.elements) - 1)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        above = {self.elements[i][1].get("id", "") for i in self._open}
        self.elements.append((tag, {k: v or "" for k, v in attrs}, [], above))

    def handle_endtag(self, tag: str) -> None:
        for position in range(len(self._open) - 1, -1, -1):
            if self.elements[self._open[position]][0] == tag:
                del self._open[position:]
                return

    def handle_data(self, data: str) -> None:
        for index in self._open:
            self.elements[index][2].append(data)

    def find(self, tag: str, inside: str | None = None) -> list[tuple[dict[str, str], str]]:
        """Elements named ``tag`` (within the element whose id is ``inside``): attributes, text."""
        return [
            (attrs, "".join(text))
            for t, attrs, text, above in self.elements
            if t == tag and (inside is None or inside in above)
        ]


@contextlib.contextmanager
def browser() -> Iterator[Any]:
    """Debian's chromium driven by playwright (a ``playwright.sync_api.Browser``): no
    browser is downloaded (``playwright install`` is never run), the system's is used."""
    from playwright.sync_api import sync_playwright

    path = chromium()
    if path is None:
        raise RuntimeError("chromium is not installed (apt-get install -y chromium)")
    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()
