"""The code's shape, where a reader relies on it: entry points (views, the API, the admins) open
no transactions of their own; the services they call open what they need. Every dependency is
an import a reader, grep and mypy can see, and imports flow one way (deliveries → events,
webhooks; never back; no cycles inside the apps either)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import ROOT

# The modules a request enters through, in every app.
ENTRY_POINTS = sorted(
    path
    for pattern in ("*/views.py", "*/api.py", "*/admin.py")
    for path in ROOT.glob(pattern)
    if path.parts[-2] not in {".venv", "bench", "tests"}
)


def _names(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Attribute):
        return [node.attr]
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.ImportFrom):
        return [alias.name for alias in node.names]
    return []


def _transaction_uses(source: str) -> list[int]:
    """Lines that open a transaction: ``atomic`` named, called or imported in any form."""
    return [node.lineno for node in ast.walk(ast.parse(source)) if "atomic" in _names(node)]


def test_entry_points_are_found():
    names = {f"{path.parent.name}/{path.name}" for path in ENTRY_POINTS}
    assert {"dashboard/views.py", "deliveries/api.py", "deliveries/admin.py", "webhooks/api.py"} <= names


@pytest.mark.parametrize("path", ENTRY_POINTS, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_entry_point_opens_no_transaction_when_services_own_them(path):
    assert _transaction_uses(path.read_text()) == [], f"{path}: call a service that opens its own transaction"


# Apps that deliveries builds on; they must never import it back.
BELOW_DELIVERIES = ("events", "webhooks")
PROJECT_PACKAGES = ("dashboard", "deliveries", "events", "webhooks", "webhooks_project")


def _sources(package: str) -> list[Path]:
    return [path for path in (ROOT / package).rglob("*.py") if "migrations" not in path.parts]


def _imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in it (``from a import b``: a.b if that is a module)."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                is_module = (ROOT / submodule.replace(".", "/")).with_suffix(".py").exists()
                modules.add(submodule if is_module else node.module)
    return modules


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def test_events_and_webhooks_never_import_deliveries():
    offenders = [
        f"{path.relative_to(ROOT)} imports {module}"
        for package in BELOW_DELIVERIES
        for path in _sources(package)
        for module in _imported_modules(path)
        if module == "deliveries" or module.startswith("deliveries.")
    ]
    assert offenders == []


def test_no_project_module_is_reached_through_a_dotted_string():
    users = [
        str(path.relative_to(ROOT))
        for package in PROJECT_PACKAGES
        for path in _sources(package)
        if "import_string" in path.read_text(encoding="utf-8")
    ]
    assert users == []


def test_project_modules_import_each_other_without_cycles():
    """Imports flow one way inside the apps too: a call never goes back up into its caller."""
    graph = {_module_name(path): _imported_modules(path) for package in PROJECT_PACKAGES for path in _sources(package)}
    graph = {
        module: {name for name in imported if name in graph and name != module} for module, imported in graph.items()
    }
    finished: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError(" -> ".join([*path[path.index(module) :], module]))
        if module in finished:
            return
        for imported in sorted(graph[module]):
            visit(imported, [*path, module])
        finished.add(module)

    for module in sorted(graph):
        visit(module, [])
