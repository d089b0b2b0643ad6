"""The code's shape, where a reader relies on it: entry points (views, the API, the admins) open
no transactions of their own; the services they call open what they need."""

from __future__ import annotations

import ast

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
