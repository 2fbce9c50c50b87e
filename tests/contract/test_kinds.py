"""The kind registry: the built-in entries agree with their modules and the reader, and the registry and the
stages that read it import nothing above them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from recsys.compute import BUILTIN_MODULES
from recsys.contract.kinds import BUILTIN_KINDS, KINDS
from recsys.serve.reader.loading import FORMS, ROW_GROUP_FORM
from recsys.settings import Settings

PACKAGE = Path(__file__).resolve().parents[2] / "layers" / "recsys" / "recsys"


def test_every_built_in_kind_is_registered_by_its_module_in_order() -> None:
    assert [kind.name for kind in KINDS][: len(BUILTIN_KINDS)] == list(BUILTIN_KINDS)
    assert Settings().kinds == list(BUILTIN_KINDS)
    for name, module in BUILTIN_MODULES.items():
        entry = KINDS.get(name)
        assert entry is module.ENTRY and entry.schema is module.SCHEMA
        assert entry.key_column == entry.schema.names[0]
        assert entry.form in FORMS or entry.form == ROW_GROUP_FORM
    signals = {kind.signal for kind in KINDS if kind.name in BUILTIN_KINDS}
    assert signals == {"pop", "cooc", "implicit", "session", "content", "knn"}


def _imports(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module == "recsys":  # from recsys import paths
            modules.update(f"recsys.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return {module for module in modules if module.startswith("recsys")}


@pytest.mark.parametrize(
    ("folder", "allowed"),
    [
        ("contract", ("recsys.contract", "recsys.days", "recsys.tables")),
        (
            "compute",
            (
                "recsys.compute",
                "recsys.contract",
                "recsys.days",
                "recsys.tables",
                "recsys.paths",
                "recsys.errors",
                "recsys.settings",
                "recsys.store",
                "recsys.events",
            ),
        ),
    ],
)
def test_the_registry_and_compute_import_nothing_above_them(folder: str, allowed: tuple[str, ...]) -> None:
    upward = {
        f"{path.name}: {module}"
        for path in sorted((PACKAGE / folder).glob("*.py"))
        for module in _imports(path)
        if not any(module == prefix or module.startswith(prefix + ".") for prefix in allowed)
    }
    assert not upward


def test_each_signal_reads_the_kind_whose_entry_names_it() -> None:
    """Ranking keeps its own signal -> kind map (it imports no registry); the registry's `signal` fields must agree."""
    from recsys.ranking.types import KIND

    declared = {KINDS.get(name).signal: name for name in BUILTIN_KINDS if KINDS.get(name).signal}
    assert declared == KIND
