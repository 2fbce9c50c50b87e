"""Ranking is a pure package: it imports nothing from the API (`recsys.serve`) and does no I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import recsys.ranking

PACKAGE = Path(recsys.ranking.__file__).parent
FORBIDDEN = ("recsys.serve", "recsys.store", "recsys.publish", "recsys.compute", "boto3", "pyarrow", "fastapi")


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_ranking_imports_neither_the_api_nor_io():
    modules = sorted(PACKAGE.glob("*.py"))
    assert len(modules) > 5
    for module in modules:
        bad = {name for name in imports(module) if name.startswith(FORBIDDEN)}
        assert not bad, f"{module.name} imports {sorted(bad)}"
