"""The layers of docs/architecture.md, read from the code's own imports: rules import only
rules, the two databases' packages never import each other, stores apply no rule of
events, and no surface imports a database's package."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.data import ROOT

PACKAGE = ROOT / "registry"
# The rules layer: the modules at the top of the package that hold no SQL and no surface.
RULES = {
    "errors",
    "model",
    "naming",
    "times",
    "ids",
    "credits",
    "hooks",
    "_convert",
    "events",
    "query",
    "series",
    "auth",
    "location",
    "schema",
    "api",
    "framing",
    "completions",
    "weights",
    "nearest",
    "jsonin",
    "when",
    "extras",
}
SURFACES = (
    "registry.registry",
    "registry.client",
    "registry.copy",
    "registry.cli",
    "registry.http",
)
BACKENDS = ("registry.store.sqlite", "registry.store.postgres")


def module_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> Iterator[str]:
    """Every module ``path`` imports (at any depth of its code: late imports too)."""
    here = module_of(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


MODULES = {module_of(path): path for path in PACKAGE.rglob("*.py")}


def under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("module", sorted(f"registry.{m}" for m in RULES))
def test_rules_import_only_rules(module: str) -> None:
    allowed = tuple(f"registry.{m}" for m in RULES)
    found = {
        name
        for name in imports(MODULES[module])
        if name.startswith("registry.") and not under(name, allowed)
    }
    assert found == set()


@pytest.mark.parametrize(("package", "other"), [BACKENDS, BACKENDS[::-1]])
def test_the_two_databases_never_import_each_other(package: str, other: str) -> None:
    for module, path in MODULES.items():
        if under(module, (package,)):
            assert not any(under(name, (other,)) for name in imports(path)), module


@pytest.mark.parametrize("module", sorted(m for m in MODULES if under(m, SURFACES)))
def test_no_surface_imports_a_database_package(module: str) -> None:
    assert not any(under(name, BACKENDS) for name in imports(MODULES[module]))


@pytest.mark.parametrize("module", sorted(m for m in MODULES if under(m, ("registry.store",))))
def test_stores_apply_no_rule_of_events(module: str) -> None:
    """Stores receive validated rows: they never call the field rules or the event reader."""
    rules = ("registry.hooks", "registry.events.row_of", "registry.events.validated")
    assert not any(under(name, rules) for name in imports(MODULES[module]))


def test_the_postgresql_transaction_is_no_sqlite_transaction() -> None:
    """Both backends' transactions stand on the neutral base, neither on the other."""
    from registry.store.postgres.tx import PostgresTx
    from registry.store.sql import SqlTx
    from registry.store.sqlite.tx import SqliteTx

    assert issubclass(PostgresTx, SqlTx)
    assert issubclass(SqliteTx, SqlTx)
    assert not issubclass(PostgresTx, SqliteTx)
    assert not issubclass(SqliteTx, PostgresTx)


def test_the_measures_are_defined_once() -> None:
    """Sorts, chart metrics and the OpenAPI document are made from `query.MEASURES`."""
    from registry.http import openapi
    from registry.http.app import ROUTES
    from registry.query import MAX_PAGE, MEASURES, SORTS
    from registry.render import text

    assert ("created", *MEASURES) == SORTS
    assert set(text.METRICS) <= set(MEASURES)
    operation = openapi.document(ROUTES)["paths"]["/query_models"]["get"]
    page = {p["name"]: p["schema"] for p in operation["parameters"]}
    assert page["sort"]["enum"] == list(SORTS)
    assert page["count"]["maximum"] == MAX_PAGE


def test_numpy_is_loaded_only_by_the_training_tables(tmp_path: Path) -> None:
    """numpy costs every process that loads it about 11 MB and a tenth of a second: a
    command that registers a body and records usage never loads it; a weight does."""
    probe = """
import sys
import registry.cli
static = {"type": "static", "weight": 1}
sys.stdin = open(sys.argv[2])
sys.argv = ["qllm", "register", "-", "--db", sys.argv[1]]
try:
    registry.cli.main()
except SystemExit as exit:
    assert exit.code in (0, None), exit.code
print("numpy" in sys.modules)
reg = registry.Registry(sys.argv[-1])
member = {"id": "a/b", "mode": "generate", "weight": static}
model = reg.register_model({"models": [member], "weight": {"type": "static"}})
reg.weights(model.name, [0.5, 0.5])
print("numpy" in sys.modules)
"""
    body = tmp_path / "body.json"
    static = {"type": "static", "weight": 1}
    body.write_text(json.dumps({"id": "openai/gpt-4o", "mode": "generate", "weight": static}))
    done = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path / "r.db"), str(body)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert done.stdout.split()[-2:] == ["False", "True"]
