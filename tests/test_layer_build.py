"""The RecsysLayer's build (layers/recsys/Makefile, build_layer.py): the lock is what the tests run with, and the
stripped layer still runs the pipeline's code."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy
import pyarrow

from tests.test_package_size import BUILD_LAYER

ROOT = Path(__file__).resolve().parents[1]


def test_the_lock_is_the_dev_venvs_closure_without_the_runtimes_packages() -> None:
    assert BUILD_LAYER.LOCK.read_text() == BUILD_LAYER.lock_text(), "requirements changed: run `make lock`"
    pinned = {line.split("==")[0] for line in BUILD_LAYER.LOCK.read_text().splitlines() if "==" in line}
    assert {"pyarrow", "numpy", "pydantic", "aws-lambda-powertools", "aws-xray-sdk"} <= pinned
    assert not pinned & BUILD_LAYER.RUNTIME_PROVIDED  # no second botocore next to the runtime's


def test_the_stripped_pyarrow_and_numpy_run_the_pipeline_and_the_api(tmp_path: Path) -> None:
    """This venv's pyarrow and numpy, stripped as the layer build strips them, shadow the installed ones in a
    subprocess that runs the compute, publish and API tests."""
    layer = tmp_path / "python"
    for package in (pyarrow, numpy):
        source = Path(package.__file__).parent
        for folder in (source, source.with_name(f"{source.name}.libs")):  # numpy.libs: its bundled OpenBLAS
            if folder.is_dir():
                shutil.copytree(folder, layer / folder.name, symlinks=True)
    removed = dict(BUILD_LAYER.strip(layer))
    assert any("flight" in path for path in removed) and any("libarrow_s3" in path for path in removed)
    assert sum(removed.values()) > 40 * 2**20  # tens of MB the functions never load
    check = (
        "import pyarrow, numpy, pyarrow.parquet, pyarrow.json, pyarrow.csv, pyarrow.compute, pyarrow.fs; "
        f"assert pyarrow.__file__.startswith({str(layer)!r}) and numpy.__file__.startswith({str(layer)!r})"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(layer), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", check], env=env, check=True, cwd=ROOT)
    tests = ["tests/compute", "tests/publish/test_publish.py", "tests/serve/test_api.py", "tests/ingest"]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-m", "not slow", "-p", "no:cacheprovider", *tests],
        env=env, cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
