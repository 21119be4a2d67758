"""The project's docs stand alone: their links resolve, they point at nothing outside the
repository, and their Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.support.data import ROOT

DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
# The pages the contract is written in: each must exist, be linked from the index, and
# the index from the README.
CONTRACT = (
    "query-llm.md",
    "usage.md",
    "query-model.md",
    "http.md",
    "usage-series.md",
    "training-tables.md",
)

# [text](target) and ![alt](target); the target ends at white space or ")".
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def links(page: Path) -> list[str]:
    text = page.read_text(encoding="utf-8")
    # Code is not prose: a "[x](y)" inside a code block or span is not a link.
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    return LINK.findall(text)


def relative(target: str) -> bool:
    return not re.match(r"[a-z][a-z0-9+.-]*:", target, re.I) and not target.startswith("#")


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for the headings of ``page``."""
    found = set()
    for heading in re.findall(r"^#+\s+(.*)$", page.read_text(encoding="utf-8"), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_at_files_that_exist(page: Path) -> None:
    targets = [t for t in links(page) if relative(t)]
    assert targets or page.name == "postgres.md", f"{page.name} links nowhere"
    for target in targets:
        path, _, anchor = unquote(target).partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists(), f"{page.name}: {target} does not exist"
        assert file.is_relative_to(ROOT.resolve()), f"{page.name}: {target} leaves the repository"
        if anchor and file.suffix == ".md":
            assert anchor in anchors(file), f"{page.name}: no heading #{anchor} in {file.name}"


def test_the_contract_pages_are_linked_from_the_index_and_the_readme() -> None:
    index = {unquote(t) for t in links(DOCS / "README.md")}
    readme = {unquote(t) for t in links(ROOT / "README.md")}
    for name in (*CONTRACT, "postgres.md"):
        assert (DOCS / name).is_file()
        assert name in index, f"docs/README.md does not link {name}"
        assert f"docs/{name}" in readme, f"README.md does not link docs/{name}"
    assert "docs/README.md" in readme


# The team's working notes are not part of the project: no page may send a reader there.
FOREIGN = re.compile(r"\.\./shared|shared folder|the team's|/work/|/home/", re.I)
# Their file names are upper case; the docs' own pages are lower case (http.md).
FOREIGN_FILES = re.compile(r"\b(?:QUERY_LLM|QUERY_MODEL|USAGE_SERIES|HTTP|NOTES|STYLE)\.md\b")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_page_points_outside_the_repository(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    found = [m.group(0) for pattern in (FOREIGN, FOREIGN_FILES) for m in pattern.finditer(text)]
    assert not found, f"{page.name} mentions {found}"


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.S)


@pytest.mark.parametrize("name", CONTRACT)
def test_python_examples_run(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each page's Python blocks run in order, their asserts included, in an empty
    directory (blocks that are not meant to run are marked ``text``)."""
    monkeypatch.chdir(tmp_path)
    for number, code in enumerate(python_blocks(DOCS / name)):
        exec(compile(code, f"{name} block {number}", "exec"), {})


def test_the_query_llm_page_has_runnable_examples() -> None:
    assert len(python_blocks(DOCS / "query-llm.md")) >= 2


# Statements the docs once made about PostgreSQL that measurements proved false (issue 19,
# item 31) or that its release made stale; each is now said as measured. None may come
# back unmeasured.
DISPROVED = (
    "the same answers, to the byte",  # a NUL request_id; retries under concurrency
    "passwords are never repeated",  # libpq quoted them until URLs were read strictly
    "so concurrent writers do not deadlock",  # group commits did, across processes
    "about 200 bytes an event",  # the batch is spooled, as on SQLite
    "one every half second, all succeeded",  # 2 of 58 failed during a 1M SQLite import
    "under construction",  # PostgreSQL is a backend like the other (issue 21, item 4)
)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_no_disproved_statement_is_made(page: Path) -> None:
    text = " ".join(page.read_text(encoding="utf-8").split())
    found = [claim for claim in DISPROVED if claim in text]
    assert not found, found


def test_scaling_names_the_first_limit_and_the_pooler() -> None:
    """docs/scaling.md names the first limit of one server and says what a pooler such as
    PgBouncer does with the startup options qllm sends."""
    text = " ".join((DOCS / "scaling.md").read_text(encoding="utf-8").split())
    assert "current hour's rollup rows" in text
    assert "PgBouncer" in text
    assert "lock_timeout" in text


# A token given as a command-line argument: ``--token X`` or ``qllm token revoke X`` (any
# user of the machine reads a process's arguments in ps); the environment is private.
TOKEN_ARGUMENT = re.compile(r"--token[ =][^\s`)]|token revoke (?!-|\[|\s|`|--)\S")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_page_passes_a_token_as_an_argument(page: Path) -> None:
    """The docs show tokens in ``$QLLM_TOKEN`` (or stdin), never on a command line
    (issue 19, item 12), and say why."""
    text = page.read_text(encoding="utf-8")
    assert not TOKEN_ARGUMENT.findall(text), page.name
    if page == ROOT / "README.md":
        assert "QLLM_TOKEN" in text
        assert "`ps`" in text
