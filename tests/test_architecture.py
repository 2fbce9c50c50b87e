"""The import graph of the runtime (layers/recsys) and the tooling (tools/recsys_tools): no cycles, no module imports
a layer above its own, so the runtime never imports the tooling, and the runtime imports no distribution that its
Lambda layers do not ship.

Every `import recsys...` counts, at module level or inside a function. Run alone with
`.venv/bin/pytest tests/test_architecture.py`; docs/explanation/architecture.md draws the layers.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import sys
from collections import defaultdict
from fnmatch import fnmatch
from pathlib import Path

from tests.test_package_size import RUNTIME_PROVIDED, _requirements, canonical, closure

ROOT = Path(__file__).resolve().parents[1]
RUNTIME_ROOT = ROOT / "layers" / "recsys"  # the Lambda layer's source: what the functions import
TOOLING_ROOT = ROOT / "tools"  # the CLI, the local runner, the generator, offline evaluation
PACKAGE_ROOTS = (RUNTIME_ROOT, TOOLING_ROOT)
OURS = ("recsys", "recsys_tools")

# Bottom to top. A module may import its own layer and the layers below it; the first pattern it matches places it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("recsys", "recsys.contract*", "recsys.days", "recsys.errors", "recsys.paths", "recsys.tables",
                    "recsys.settings", "recsys.store*", "recsys.database*")),
    ("raw events", ("recsys.events*",)),
    ("stages", ("recsys.ingest*", "recsys.validate*", "recsys.compute*")),
    ("publish", ("recsys.publish*",)),
    ("retention", ("recsys.retention*",)),  # gc and forget-user: read manifests as rollback does
    ("ranking", ("recsys.ranking*",)),
    ("serving", ("recsys.serve*",)),
    ("quality gate", ("recsys.evaluation*",)),
    ("pipeline", ("recsys.pipeline*",)),
    ("tooling", ("recsys_tools*",)),  # tools/: never in the Lambda layer
]  # fmt: skip


def module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(roots: tuple[Path, ...] = PACKAGE_ROOTS) -> dict[str, Path]:
    """Every module of the packages under `roots` (build scripts next to them, like build_layer.py, are not)."""
    return {
        module_name(root, path): path
        for root in roots
        for package in root.iterdir()
        if (package / "__init__.py").is_file()
        for path in package.rglob("*.py")
    }


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The recsys modules `name` imports (a `from package import module` names the module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] in OURS}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            if base.split(".")[0] not in OURS:
                continue
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return found - {name}


def layer_of(name: str) -> int:
    for index, (_, patterns) in enumerate(LAYERS):
        if any(fnmatch(name, pattern) for pattern in patterns):
            return index
    raise AssertionError(f"{name} is in no layer: add it to LAYERS in tests/test_architecture.py")


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(name, path, set(found)) & set(found) for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_every_module_has_a_layer() -> None:
    for name in modules():
        layer_of(name)


def test_there_is_no_import_cycle() -> None:
    assert cycles(graph()) == []


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = defaultdict(list)
    for name, targets in graph().items():
        for target in sorted(targets):
            if layer_of(target) > layer_of(name):
                upward[name].append(f"{target} ({LAYERS[layer_of(target)][0]})")
    assert not upward, "upward imports:\n" + "\n".join(
        f"  {name} ({LAYERS[layer_of(name)][0]}) -> {', '.join(targets)}" for name, targets in sorted(upward.items())
    )


def test_the_checker_sees_an_upward_import_and_a_cycle() -> None:
    edges = {"recsys.days": {"recsys.serve.app"}, "recsys.serve.app": {"recsys.days"}}
    assert cycles(edges) == [["recsys.days", "recsys.serve.app"]]
    assert layer_of("recsys.serve.app") > layer_of("recsys.days")


def test_the_runtime_never_imports_the_tooling() -> None:
    runtime = modules((RUNTIME_ROOT,))
    assert runtime and all(name.split(".")[0] == "recsys" for name in runtime)
    offending = {name: sorted(t for t in targets if t.startswith("recsys_tools")) for name, targets in graph().items()}
    assert not {name: targets for name, targets in offending.items() if name in runtime and targets}


def third_party_imports(path: Path) -> set[str]:
    """Top-level names of the non-standard-library, non-project modules `path` imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - set(OURS) - {"__future__"}


def test_the_runtime_imports_only_what_its_layers_ship() -> None:
    """moto, matplotlib, uvicorn and the like belong to the `tools` extra: a runtime import of one would fail on AWS."""
    requirements = [
        *_requirements(ROOT / "layers/recsys/requirements.txt"),
        *_requirements(ROOT / "layers/api/requirements.txt"),
    ]
    shipped = set(closure(requirements).sizes) | RUNTIME_PROVIDED
    distributions = md.packages_distributions()
    unshipped = defaultdict(set)
    for name, path in modules((RUNTIME_ROOT,)).items():
        for top in third_party_imports(path):
            if not {canonical(dist) for dist in distributions.get(top, [top])} & shipped:
                unshipped[top].add(name)
    assert not unshipped, f"imported by the runtime but not in a layer's requirements.txt: {dict(unshipped)}"
    assert third_party_imports(TOOLING_ROOT / "recsys_tools/local/runner.py") >= {"moto"}  # the check sees imports
