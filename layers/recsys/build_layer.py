"""Build helpers of the RecsysLayer: the lock file, and what `sam build` leaves out of the layer.

    python layers/recsys/build_layer.py lock          # requirements.lock from the dev venv (make lock)
    python layers/recsys/build_layer.py strip DIR     # delete what the functions never load (sam build does this)

`sam build` runs this folder's Makefile (BuildMethod: makefile): pip installs requirements.lock for arm64/python3.12
without dependency resolution (the lock lists the whole closure, so nothing else comes in: no second botocore next
to the runtime's), copies the recsys package, then strips. The lock pins the versions the dev venv runs the tests
with (`make venv` installs with it as a constraint), so what ships is what was tested.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata as md
import re
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements.txt"
LOCK = HERE / "requirements.lock"

# Provided by the python3.12 Lambda runtime (boto3 and its dependencies): never bundled.
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer", "jmespath", "urllib3", "python-dateutil", "six"})

# Paths (relative to the layer's python/ folder, fnmatch patterns) that no function loads, with why.
STRIP = {
    # Arrow Flight RPC: pyarrow.flight only.
    "pyarrow/libarrow_flight.so*": "Arrow Flight (pyarrow.flight is never imported)",
    "pyarrow/libarrow_python_flight.so*": "Arrow Flight",
    "pyarrow/_flight.*.so": "Arrow Flight",
    # pyarrow's own filesystems: the store talks to S3 through boto3; pyarrow.fs tolerates their absence.
    "pyarrow/libarrow_s3.so*": "pyarrow's S3 filesystem (the store uses boto3)",
    "pyarrow/_s3fs.*.so": "pyarrow's S3 filesystem",
    "pyarrow/_gcsfs.*.so": "pyarrow's GCS filesystem",
    "pyarrow/_azurefs.*.so": "pyarrow's Azure filesystem",
    "pyarrow/_hdfs.*.so": "pyarrow's HDFS filesystem",
    "pyarrow/_orc.*.so": "ORC files",
    "pyarrow/_dataset_orc.*.so": "ORC files",
    "pyarrow/_pyarrow_cpp_tests.*.so": "pyarrow's C++ tests",
    # Link-time names of libraries whose SONAME file (.so.NNNN) stays: the loader never opens these.
    "pyarrow/libarrow_python.so": "a build-time alias of libarrow_python.so.NNNN",
    "pyarrow/libarrow_python.so.*.*.*": "a build-time alias of libarrow_python.so.NNNN",
    "pyarrow/libarrow_python_parquet_encryption.so": "a build-time alias",
    "pyarrow/libarrow_python_parquet_encryption.so.*.*.*": "a build-time alias",
    # Sources, headers and tests.
    "pyarrow/include": "C++ headers",
    "pyarrow/src": "C++ sources",
    "pyarrow/tests": "pyarrow's tests",
    "pyarrow/*.pxd": "Cython declarations",
    "pyarrow/*.pxi": "Cython sources",
    "pyarrow/*.pyx": "Cython sources",
    "pyarrow/includes": "Cython declarations",
    "numpy/*/tests": "numpy's tests",
    "numpy/tests": "numpy's tests",
    "numpy/_core/include": "C headers",
    "numpy/f2py": "Fortran wrappers (f2py)",
    "*/__pycache__": "bytecode of the build machine's Python",
}


def _closure() -> dict[str, str]:
    """{distribution: installed version} of requirements.txt's dependency closure, minus the runtime's."""
    from packaging.requirements import Requirement

    def canonical(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    lines = (line.split("#", 1)[0].strip() for line in REQUIREMENTS.read_text().splitlines())
    queue = [Requirement(line) for line in lines if line]
    environment = {"python_version": "3.12", "platform_machine": "aarch64", "sys_platform": "linux", "extra": ""}
    found: dict[str, str] = {}
    while queue:
        requirement = queue.pop()
        name = canonical(requirement.name)
        if name in RUNTIME_PROVIDED or name in found:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate(environment):
            continue
        found[name] = md.version(name)
        # A dependency's marker names the extra that brings it (psycopg[binary] -> psycopg-binary).
        extras = ("", *requirement.extras)
        for dependency in (Requirement(text) for text in md.requires(name) or []):
            marker = dependency.marker
            if marker is None or any(marker.evaluate({**environment, "extra": extra}) for extra in extras):
                dependency.marker = None
                queue.append(dependency)
    return dict(sorted(found.items()))


def lock_text() -> str:
    header = (
        "# The RecsysLayer's exact contents: requirements.txt's closure as the dev venv has it (make lock), minus the\n"
        "# packages the Lambda runtime provides. sam build installs these with --no-deps (layers/recsys/Makefile).\n"
    )
    return header + "".join(f"{name}=={version}\n" for name, version in _closure().items())


def strip(root: Path) -> list[tuple[str, int]]:
    """Delete STRIP's paths under `root` (the layer's python/ folder); return (path, bytes) of what went."""
    removed = []
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts)):
        relative = path.relative_to(root).as_posix()
        if not path.exists() or not any(fnmatch.fnmatch(relative, pattern) for pattern in STRIP):
            continue
        if path.is_dir() and not path.is_symlink():
            size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            shutil.rmtree(path)
        else:
            size = path.stat().st_size
            path.unlink()
        removed.append((relative, size))
    return removed


def main(argv: list[str]) -> int:
    if argv[:1] == ["lock"]:
        LOCK.write_text(lock_text())
        print(f"wrote {LOCK}")
        return 0
    if argv[:1] == ["strip"] and len(argv) == 2:
        removed = strip(Path(argv[1]))
        print(f"stripped {len(removed)} paths, {sum(size for _, size in removed) / 2**20:.1f} MB")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
