"""Crash injection: `recsys run` killed with SIGKILL at random points, then run again (`make test-slow`).

What must hold after every kill: the current pointer is absent or names a complete manifest (it parses and every
artifact it names exists), and the next run, started at once, succeeds and publishes what an uninterrupted run
publishes. The killed run's lease does not make it wait: its process is gone.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recsys.publish.service import read_pointer
from recsys.store import FileSystemStore
from recsys_tools.local.runner import LocalPipeline
from tests.conftest import ROOT, SAMPLE_CATALOG, SAMPLE_RAW

pytestmark = pytest.mark.slow

RUN = {"tenant": "demo", "surface": "home", "start": "2026-01-01", "end": "2026-01-07"}
KILLS = 8


def recsys_run(store: FileSystemStore) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "recsys_tools.cli",
            "run",
            "--tenant",
            RUN["tenant"],
            "--surface",
            RUN["surface"],
            "--start",
            RUN["start"],
            "--end",
            RUN["end"],
            "--raw",
            str(SAMPLE_RAW),
            "--catalog",
            str(SAMPLE_CATALOG),
            "--store",
            store.uri,
            "--quiet",
            "--json",
        ],  # fmt: skip
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def assert_pointer_is_whole(store: FileSystemStore) -> None:
    pointer = read_pointer(store, "demo", "home")  # raises if the pointer is torn
    if pointer is not None:
        missing = [uri for uri in pointer.manifest.current.values() if not store.exists(store.key_of(uri))]
        assert not missing, f"the pointer names missing artifacts {missing}"


def test_a_run_killed_at_any_point_leaves_a_whole_pointer_and_the_rerun_converges(tmp_path: Path) -> None:
    clean = FileSystemStore(tmp_path / "clean")
    with LocalPipeline({"RECSYS_STORE": clean.uri}) as pipeline:
        uninterrupted = pipeline.run({**RUN, "raw": str(SAMPLE_RAW), "catalog": str(SAMPLE_CATALOG)})
    expected = uninterrupted.output["published"]["manifest_version"]

    store = FileSystemStore(tmp_path / "crashed")
    chance = random.Random(20261204)
    for _ in range(KILLS):
        victim = recsys_run(store)
        time.sleep(chance.uniform(0.5, 6.0))  # start-up, plan, ingest, compute or publish
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        assert_pointer_is_whole(store)

        started = time.monotonic()
        rerun = recsys_run(store)
        stdout, stderr = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, stderr
        assert json.loads(stdout)["published"]["manifest_version"] == expected
        assert time.monotonic() - started < 60, "the rerun waited for the killed run's lease"
        assert_pointer_is_whole(store)
    # A killed writer's temp file stays in the store's .tmp/ until it is stale: never beside the objects.
    objects = {
        p.relative_to(store.root).as_posix()
        for p in store.root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(store.root).parts)
    }
    assert objects == set(store.list(""))
    assert all(key.split("/")[0] in ("canonical", "partials", "artifacts", "registry") for key in objects)
