"""The README's examples run as written."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests.support import samples
from tests.support.data import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
QLLM = Path(sys.executable).with_name("qllm")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.S)


def test_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Python examples run in order, their asserts included, in an empty directory."""
    monkeypatch.chdir(tmp_path)
    code = blocks("python")
    assert len(code) == 3  # Query LLMs, Query Models, then training tables
    exec(compile("\n".join(code), "README.md", "exec"), {})
    assert (tmp_path / "usage.db").is_file()


@pytest.fixture(scope="module")
def demo_registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The registry ``make demo`` fills: the one every sample output is made on."""
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    samples.build_demo(path)
    return path


PAGES = [
    ROOT / "README.md",
    *(
        p
        for p in sorted((ROOT / "docs").glob("*.md"))
        if samples.steps(p.read_text(encoding="utf-8"))
    ),
]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_console_examples_print_what_they_show(
    page: Path, tmp_path: Path, demo_registry: Path
) -> None:
    """Each command of a page's console examples (one session, in order, on the demo's
    registry) prints exactly the output shown under it (`tests.support.samples`)."""
    text = page.read_text(encoding="utf-8")
    ran = 0
    for command, expected, shown in samples.session(text, tmp_path, demo_registry):
        assert samples.first_word(command) in ("qllm", "export"), command
        assert samples.matches(expected, shown), f"$ {command}\n{shown}"
        assert "Traceback" not in shown
        ran += 1
    assert ran >= (10 if page.name == "README.md" else 1)


def test_every_sample_output_in_the_docs_is_a_console_session() -> None:
    """No page shows a command's output in a block the test does not run."""
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        for block in re.findall(r"```(?:text|sh|bash)?\n(.*?)```", text, re.S):
            assert not re.search(r"^\$ qllm ", block, re.M), (page.name, block[:80])
