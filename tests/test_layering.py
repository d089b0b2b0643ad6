"""How the apps depend on each other: every dependency is an import a reader, grep and mypy
can see, and imports flow one way (deliveries → events, webhooks; never back)."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

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
