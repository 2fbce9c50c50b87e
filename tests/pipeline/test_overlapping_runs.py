"""Overlapping runs of one tenant/surface with different raw data, as real processes on one file store.

The consistency rule (docs/explanation/reliability.md): every published manifest equals what one run with one
consistent input publishes on its own, and every canonical partition agrees with its ingest report.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recsys import paths
from recsys.days import Window
from recsys.ingest.service import load_report
from recsys.publish.service import history, read_pointer
from recsys.store import FileSystemStore
from recsys.tables import from_parquet
from recsys_tools.local.runner import LocalPipeline
from tests.conftest import ROOT, SAMPLE_CATALOG, SAMPLE_RAW

pytestmark = pytest.mark.slow  # two `recsys run` processes, twice: in `make test`, not in `make unit`

WINDOW = Window.model_validate({"start": "2026-01-01", "end": "2026-01-07"})


def thinned_copy(source: Path, target: Path) -> Path:
    """The sample raw data with every third line left out: a different, equally valid input."""
    for file in source.rglob("*.jsonl"):
        lines = file.read_text().splitlines(keepends=True)
        copy = target / file.relative_to(source)
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text("".join(line for n, line in enumerate(lines) if n % 3))
    return target


def run_arguments(store: FileSystemStore, raw: Path) -> list[str]:
    return [
        "run", "--tenant", "demo", "--surface", "home", "--store", store.uri,
        "--start", str(WINDOW.start), "--end", str(WINDOW.end),
        "--raw", str(raw), "--catalog", str(SAMPLE_CATALOG), "--quiet", "--json",
    ]  # fmt: skip


def clean_version(store: FileSystemStore, raw: Path) -> str:
    with LocalPipeline({"RECSYS_STORE": store.uri}) as pipeline:
        run = pipeline.run(
            {
                "tenant": "demo",
                "surface": "home",
                "start": str(WINDOW.start),
                "end": str(WINDOW.end),
                "raw": str(raw),
                "catalog": str(SAMPLE_CATALOG),
            }  # fmt: skip
        )
    assert run.status == "SUCCEEDED", run.message
    return run.output["published"]["manifest_version"]


def test_overlapping_runs_each_publish_what_their_own_input_gives(tmp_path: Path) -> None:
    inputs = {"a": SAMPLE_RAW, "b": thinned_copy(SAMPLE_RAW, tmp_path / "raw-b")}
    clean = {name: clean_version(FileSystemStore(tmp_path / f"clean-{name}"), raw) for name, raw in inputs.items()}
    assert clean["a"] != clean["b"]

    shared = FileSystemStore(tmp_path / "shared")
    for first, second, stagger in (("a", "b", 0.0), ("b", "a", 1.5)):
        runs = {}
        for name in (first, second):
            runs[name] = subprocess.Popen(
                [sys.executable, "-m", "recsys_tools.cli", *run_arguments(shared, inputs[name])],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            time.sleep(stagger)  # the second run's ingest lands in the middle of the first run's steps
        for name, run in runs.items():
            stdout, stderr = run.communicate(timeout=240)
            assert run.returncode == 0, stderr
            output = json.loads(stdout)
            assert output["published"]["manifest_version"] == clean[name], f"run {name} built a mix of inputs"
            assert output["published"]["decision"] in ("moved", "unchanged")

        published = {manifest.manifest_version for manifest in history(shared, "demo", "home")}
        assert published <= set(clean.values()), "a manifest was built from a mix of both inputs"
        assert read_pointer(shared, "demo", "home").manifest.manifest_version in clean.values()
        for day in WINDOW.days:
            report = load_report(shared, "demo", "home", day)
            partition = from_parquet(shared.get(paths.canonical_events("demo", "home", day)).data)
            assert partition.num_rows == report.accepted, f"{day}: the partition disagrees with its report"
            assert shared.head(paths.canonical_events("demo", "home", day)) == report.canonical_etag
