"""The sample outputs of the README and docs/, made by running them.

Every ```console block of a page is a shell session: ``$ command`` lines, each followed
by what it prints (stdout, then stderr). A page's blocks run as one session, in order,
in an empty folder that holds ``examples/`` (the repository's), with ``QLLM_DB`` naming a
copy of the demo's registry (`build_demo`: the example Query LLMs and Query Models, and
the week of usage of alice and bob, as ``make demo`` makes it) and no ``QLLM_TOKEN``. So
the figures are the ones ``make demo`` shows. ``export NAME="$(command)"`` keeps a value
for the steps after it. In an expected line, ``...`` stands for any text (a time of
registration, a path); a line that is only ``...`` for any number of lines.

    python -m tests.support.samples --write README.md docs/cli.md

rewrites the outputs of the steps that no longer match with what they print now (then
put back the ``...`` of times that change).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from registry.events import EventLines
from registry.registry import Registry
from tests.support.data import ROOT

QLLM = Path(sys.executable).with_name("qllm")
BLOCK = re.compile(r"```console\n(.*?)```", re.S)
# ``export NAME="$(command)"``: a value kept for the steps after it, as a shell session does.
EXPORT = re.compile(r'export (\w+)="\$\((.*)\)"')
EXAMPLES = ROOT / "examples"


def build_demo(path: Path) -> None:
    """The registry ``make demo`` fills, without its HTTP request and with its tokens
    still valid: Query LLMs and Query Models registered by alice, then alice's and bob's
    usage."""
    with Registry(path) as reg:
        alice, bob = reg.create_token("alice"), reg.create_token("bob")
        for body in sorted((EXAMPLES / "query-llms").glob("*.json")):
            reg.register(_json(body), token=alice)
        for body in sorted((EXAMPLES / "query-models").glob("*.json")):
            reg.register_model(_json(body), token=alice)
        for user, token in (("alice", alice), ("bob", bob)):
            with (EXAMPLES / f"usage-{user}.jsonl").open("rb") as lines:
                reg.record_usage_many(EventLines(lines), token=token)


def _json(path: Path) -> object:
    from registry import jsonin

    return jsonin.loads(path.read_bytes())


def steps(text: str) -> list[tuple[str, str]]:
    """The ``(command, expected output)`` of every console block of ``text``, in order."""
    found = []
    for block in BLOCK.findall(text):
        for step in re.split(r"^\$ ", block, flags=re.M)[1:]:
            command, _, expected = step.partition("\n")
            found.append((command, expected))
    return found


def matches(expected: str, actual: str) -> bool:
    """Line by line; ``...`` in a line matches any text, a line of ``...`` any lines."""
    pattern = ""
    for line in expected.splitlines():
        if line.strip() == "...":
            pattern += r"(?:[^\n]*\n)*?"
        else:
            pattern += ".*".join(re.escape(part) for part in line.split("...")) + r"\n"
    text = actual if actual.endswith("\n") or not actual else actual + "\n"
    return re.fullmatch(pattern, text) is not None


def environment(folder: Path, template: Path) -> dict[str, str]:
    """The session's environment: ``qllm`` on the path, the demo's registry, no token."""
    (folder / "examples").symlink_to(EXAMPLES)
    shutil.copyfile(template, folder / "demo.db")
    env = {**os.environ, "PATH": f"{QLLM.parent}{os.pathsep}{os.environ['PATH']}"}
    for name in ("QLLM_TOKEN", "XDG_DATA_HOME", "NO_COLOR"):
        env.pop(name, None)
    env.update(QLLM_DB=str(folder / "demo.db"), COLUMNS="80", HOME=str(folder))
    return env


def session(text: str, folder: Path, template: Path) -> Iterator[tuple[str, str, str]]:
    """Run the console steps of ``text``: ``(command, expected, printed)`` each."""
    env = environment(folder, template)
    for command, expected in steps(text):
        exported = EXPORT.fullmatch(command.strip())
        if exported:
            name, inner = exported.groups()
            value = subprocess.run(
                inner, shell=True, cwd=folder, env=env, capture_output=True, text=True,
                timeout=60, check=True,
            ).stdout.strip()  # fmt: skip
            env[name] = value
            yield command, expected, ""
            continue
        done = subprocess.run(
            command,
            shell=True,
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        yield command, expected, done.stdout + done.stderr


def first_word(command: str) -> str:
    return shlex.split(command)[0]


def write(page: Path, template: Path) -> int:
    """Rewrite the steps of ``page`` that do not match with what they print; how many."""
    text = page.read_text(encoding="utf-8")
    changed = 0
    at = 0  # where the next step is looked for: a command may be given twice
    with tempfile.TemporaryDirectory() as folder:
        for command, expected, printed in session(text, Path(folder), template):
            old = f"$ {command}\n{expected}"
            at = text.index(old, at)
            if EXPORT.fullmatch(command.strip()) or matches(expected, printed):
                at += len(old)
                continue
            shown = printed if printed.endswith("\n") or not printed else printed + "\n"
            text = text[:at] + f"$ {command}\n{shown}" + text[at + len(old) :]
            at += len(f"$ {command}\n{shown}")
            changed += 1
    page.write_text(text, encoding="utf-8")
    return changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", required=True)
    parser.add_argument("pages", nargs="+", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        template = Path(folder) / "demo.db"
        build_demo(template)
        for page in args.pages:
            print(f"{page}: {write(page, template)} outputs rewritten")


if __name__ == "__main__":
    main()
