"""Deployment size: every function plus all of its layers must stay under Lambda's 250 MB unzipped limit.

The estimate adds, per function: its code folder, and for each layer its folder plus the installed size of its
requirements.txt and their dependency closure, as `sam build` would bundle them (each layer gets its full closure,
so a distribution needed by two layers counts twice, as it does on Lambda). Sizes come from this venv's installed
distributions (importlib.metadata RECORD files, without __pycache__). Packages the Lambda runtime already provides
(boto3 & co.) are left out.

Caveat: this venv is x86_64 CPython 3.11, Lambda runs arm64 CPython 3.12, and the wheels differ (mostly the shared
libraries of pyarrow and numpy). The x86_64 ones are the larger, so the estimate errs high: measured 2026-11 with
pyarrow 26 / numpy 2.4, RecommendFunction = 239 MB here vs 218 MB in an arm64 `sam build`. `make package-size` builds
with `sam build` and measures .aws-sam/build exactly (`python -m tests.test_package_size .aws-sam/build` prints
those sizes); it is not part of `make test` (it needs a python3.12 and downloads the arm64 wheels).
"""

from __future__ import annotations

import fnmatch
import importlib.metadata as md
import importlib.util
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

from tests.test_template import _CfnLoader

ROOT = Path(__file__).resolve().parents[1]
MB = 1024 * 1024
# Lambda's limit on a function's unzipped code plus all its layers: 250 MB (262,144,000 bytes).
LIMIT = 262_144_000


def _load_build_layer() -> Any:
    spec = importlib.util.spec_from_file_location("build_layer", ROOT / "layers" / "recsys" / "build_layer.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUILD_LAYER = _load_build_layer()


# Provided by the python3.12 Lambda runtime, so not counted: the RecsysLayer's build installs its lock without them
# (layers/recsys/Makefile). A closure that reaches them is reported (ApiLayer's python3.12 build method would still
# bundle what its requirements pull in).
RUNTIME_PROVIDED = BUILD_LAYER.RUNTIME_PROVIDED

# Markers are evaluated for the Lambda target, not this venv.
TARGET_ENV = {
    "python_version": "3.12",
    "python_full_version": "3.12.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "platform_machine": "aarch64",
    "platform_system": "Linux",
    "sys_platform": "linux",
    "os_name": "posix",
}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _tree_size(path: Path) -> int:
    """Bytes of the files under `path`, without bytecode caches (sam build copies sources, not __pycache__)."""
    if not path.exists():
        return 0
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in filenames:
            if not name.endswith(".pyc"):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def _stripped(file: Path | md.PackagePath) -> bool:
    """True for a file the layer build deletes (build_layer.STRIP: the file or one of its folders matches)."""
    parts = Path(str(file)).parts
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    return any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes for pattern in BUILD_LAYER.STRIP)


def _dist_size(dist: md.Distribution) -> int:
    """Installed bytes of one distribution: its RECORD files inside site-packages, without bytecode and without
    what the layer build strips."""
    total = 0
    for file in dist.files or ():
        if "__pycache__" in file.parts or file.suffix == ".pyc" or file.parts[:1] == ("..",) or _stripped(file):
            continue  # bytecode is generated at install time; "../" entries are console scripts in bin/
        located = Path(str(file.locate()))
        if located.is_file():
            total += located.stat().st_size
    return total


def _requirements(path: Path) -> list[Requirement]:
    if not path.is_file():
        return []
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith("-")]


@dataclass
class Closure:
    """A requirements file's installed dependency closure, as sam build would bundle it."""

    sizes: dict[str, int] = field(default_factory=dict)  # canonical name -> installed bytes
    excluded: set[str] = field(default_factory=set)  # runtime-provided names the closure reached
    missing: set[str] = field(default_factory=set)  # not installed in this venv: cannot be measured

    @property
    def total(self) -> int:
        return sum(self.sizes.values())


def closure(requirements: list[Requirement]) -> Closure:
    out = Closure()
    queue: list[tuple[Requirement, str]] = [(req, "") for req in requirements]
    seen_extras: set[tuple[str, str]] = set()
    while queue:
        req, extra = queue.pop()
        if req.marker is not None and not req.marker.evaluate({**TARGET_ENV, "extra": extra}):
            continue
        name = canonical(req.name)
        if name in RUNTIME_PROVIDED:
            out.excluded.add(name)
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            out.missing.add(name)
            continue
        wanted = {""} | {canonical(e) for e in req.extras}
        new = {e for e in wanted if (name, e) not in seen_extras}
        if not new:
            continue
        seen_extras.update((name, e) for e in new)
        out.sizes.setdefault(name, _dist_size(dist))
        for spec in dist.requires or ():
            dep = Requirement(spec)
            queue.extend((dep, e) for e in new)
    return out


@dataclass
class Part:
    label: str
    size: int
    closure: Closure | None = None


@dataclass
class FunctionSize:
    name: str
    parts: list[Part]

    @property
    def total(self) -> int:
        return sum(p.size for p in self.parts)

    def report(self, limit: int = LIMIT) -> str:
        lines = [
            f"{self.name}: {self.total / MB:.1f} MB of {limit / MB:.0f} MB (margin {(limit - self.total) / MB:.1f} MB)"
        ]
        for part in self.parts:
            lines.append(f"  {part.label:<34} {part.size / MB:8.1f} MB")
            if part.closure and part.closure.sizes:
                top = sorted(part.closure.sizes.items(), key=lambda kv: -kv[1])[:4]
                lines.append("    largest: " + ", ".join(f"{name} {size / MB:.1f}" for name, size in top))
            if part.closure and part.closure.excluded:
                lines.append(f"    runtime-provided, not counted: {', '.join(sorted(part.closure.excluded))}")
        seen: dict[str, int] = {}
        for part in self.parts:
            for name in part.closure.sizes if part.closure else ():
                seen[name] = seen.get(name, 0) + 1
        twice = sorted(name for name, count in seen.items() if count > 1)
        if twice:
            wasted = sum(
                next(p.closure.sizes[n] for p in self.parts if p.closure and n in p.closure.sizes) for n in twice
            )
            lines.append(f"  in more than one layer ({wasted / MB:.1f} MB counted twice): {', '.join(twice)}")
        return "\n".join(lines)


def load_template(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


def functions_of(template: dict[str, Any]) -> list[str]:
    return sorted(k for k, v in template["Resources"].items() if v["Type"] == "AWS::Serverless::Function")


def layers_of(template: dict[str, Any], fn: str) -> list[str]:
    """Layer resource names of a function: Globals' list, then the function's own (SAM appends them)."""
    props = template["Resources"][fn].get("Properties", {})
    refs = [*template.get("Globals", {}).get("Function", {}).get("Layers", []), *props.get("Layers", [])]
    # Short form (!Ref) in the source template, long form (Ref:) in the one sam build writes.
    return [ref.get("!Ref", ref.get("Ref")) for ref in refs if isinstance(ref, dict) and {"!Ref", "Ref"} & set(ref)]


def estimate(template: dict[str, Any], base: Path, fn: str, *, built: bool = False) -> FunctionSize:
    """Size of `fn` with its layers. Sources + installed closures; with `built`, the folders as sam build left them."""
    resources = template["Resources"]
    code = base / resources[fn]["Properties"]["CodeUri"]
    parts = []
    deps = None if built else closure(_requirements(code / "requirements.txt"))
    parts.append(Part(f"{fn} code", _tree_size(code) + (deps.total if deps else 0), deps))
    for layer in layers_of(template, fn):
        content = base / resources[layer]["Properties"]["ContentUri"]
        if built:
            parts.append(Part(f"{layer}", _tree_size(content)))
            continue
        deps = closure(_requirements(content / "requirements.txt"))
        parts.append(Part(f"{layer} sources", _tree_size(content)))
        parts.append(Part(f"{layer} requirements", deps.total, deps))
    return FunctionSize(fn, parts)


TEMPLATE = load_template(ROOT / "template.yaml")


@pytest.mark.parametrize("fn", functions_of(TEMPLATE))
def test_function_and_layers_fit_lambdas_unzipped_limit(fn: str) -> None:
    size = estimate(TEMPLATE, ROOT, fn)
    missing = sorted(name for part in size.parts if part.closure for name in part.closure.missing)
    assert not missing, f"{fn}: {missing} not installed in this venv, so its size cannot be measured (pip install -e .)"
    report = size.report()
    print("\n" + report)
    assert size.total < LIMIT, f"{fn} is over Lambda's 250 MB unzipped limit:\n{report}"


def test_api_layer_is_only_on_the_recommend_function() -> None:
    # FastAPI in every pipeline function would eat the margin pyarrow leaves for no use.
    with_api = {fn for fn in functions_of(TEMPLATE) if "ApiLayer" in layers_of(TEMPLATE, fn)}
    assert with_api == {"RecommendFunction"}


def main(argv: list[str]) -> int:
    """`python -m tests.test_package_size [BUILD_DIR]`: print each function's size (built, if BUILD_DIR is given)."""
    build = Path(argv[0]) if argv else None
    template = load_template(build / "template.yaml") if build else TEMPLATE
    over = False
    for fn in functions_of(template):
        size = estimate(template, build or ROOT, fn, built=build is not None)
        print(size.report())
        over |= size.total >= LIMIT
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
