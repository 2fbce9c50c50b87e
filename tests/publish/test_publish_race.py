"""Proof: publishers in separate OS processes racing on one (tenant, surface) of a FileSystemStore lose no update
and never tear the pointer.

Each publisher publishes its own manifests (one distinct popularity artifact each) over the same window, so every
publish either moves the pointer or gives up with PointerConflict after CAS_ATTEMPTS lost races. A watcher process
parses the pointer continuously meanwhile. Then:
- 0 lost updates: the `moved` publishes form one chain. Walking back from the final pointer through the version
  each of them replaced reaches the seed version and visits every moved version exactly once (two winners over
  one version would fork the chain, and one of them would be missing from the walk);
- the pointer's own `previous_manifest_version` is that link, each time the watcher saw it, and at the end;
- 0 torn pointers: every read of the pointer parsed.
The store tests prove the primitive (tests/store/test_store_contract.py); this proves publish's use of it.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
from pathlib import Path

import pyarrow as pa

from recsys import paths
from recsys.compute import popularity
from recsys.compute.artifact import canonical_table, content_version, to_parquet
from recsys.contract.manifest import ArtifactRef, Manifest
from recsys.days import Window
from recsys.errors import PointerConflict
from recsys.publish.service import Decision, publish, read_pointer
from recsys.store import FileSystemStore

TENANT, SURFACE = "demo", "home"
WINDOW = Window(start=dt.date(2026, 1, 1), end=dt.date(2026, 1, 7))
PUBLISHERS = 4
ROUNDS = 30


def popularity_artifact(store: FileSystemStore, item_id: str) -> ArtifactRef:
    """A one-row popularity artifact of `item_id`, stored write-once as compute stores them."""
    table = canonical_table(
        pa.table({"item_id": [item_id], "score": [1.0], "count": [1], "rank": [1]}), popularity.SCHEMA
    )
    version = content_version(table, popularity.SCHEMA, canonical=True)
    data = to_parquet(table, popularity.SCHEMA, kind=popularity.KIND, canonical=True)
    key = paths.artifact(TENANT, SURFACE, popularity.KIND, version)
    store.create(key, data)
    return ArtifactRef(
        kind=popularity.KIND, version=version, uri=store.url(key), window=WINDOW, rows=1, keys=1, bytes=len(data)
    )


def _publisher(root: str, refs: list[ArtifactRef], start, results) -> None:
    store = FileSystemStore(root)
    outcomes = []
    start.wait()
    for ref in refs:
        try:
            result = publish(store, TENANT, SURFACE, WINDOW, [ref])
        except PointerConflict:
            outcomes.append(("conflict", None, None))
            continue
        outcomes.append((result.decision.value, result.manifest_version, result.pointer_before))
    results.put(outcomes)


def _watcher(root: str, start, stop, results) -> None:
    store = FileSystemStore(root)
    seen: set[tuple[str, str | None]] = set()
    reads = torn = 0
    start.wait()
    while not stop.is_set():
        data = store.get(paths.current_manifest(TENANT, SURFACE)).data
        reads += 1
        try:
            manifest = Manifest.from_bytes(data)
        except ValueError:
            torn += 1
            continue
        seen.add((manifest.manifest_version, manifest.previous_manifest_version))
    results.put((reads, torn, sorted(seen, key=str)))


def test_publishers_in_many_processes_lose_no_update_and_never_tear_the_pointer(tmp_path: Path) -> None:
    root = str(tmp_path / "store")
    store = FileSystemStore(root)
    seed = publish(store, TENANT, SURFACE, WINDOW, [popularity_artifact(store, "seed")])
    batches = [[popularity_artifact(store, f"p{p}-r{r}") for r in range(ROUNDS)] for p in range(PUBLISHERS)]

    ctx = multiprocessing.get_context("spawn")
    start, stop = ctx.Event(), ctx.Event()
    results, watched = ctx.Queue(), ctx.Queue()
    publishers = [ctx.Process(target=_publisher, args=(root, refs, start, results)) for refs in batches]
    watcher = ctx.Process(target=_watcher, args=(root, start, stop, watched))
    for process in [*publishers, watcher]:
        process.start()
    start.set()
    try:
        # Drain before joining: a child exits only once its queued result has been consumed.
        outcomes = [outcome for _ in publishers for outcome in results.get(timeout=60)]
    finally:
        stop.set()
    reads, torn, seen = watched.get(timeout=60)
    for process in [*publishers, watcher]:
        process.join(timeout=60)
        assert process.exitcode == 0

    assert len(outcomes) == PUBLISHERS * ROUNDS
    assert {decision for decision, _, _ in outcomes} <= {Decision.MOVED.value, "conflict"}
    replaced_by = {version: before for decision, version, before in outcomes if decision == Decision.MOVED.value}
    assert len(replaced_by) > PUBLISHERS  # the race really happened, and most publishes got through

    final = read_pointer(store, TENANT, SURFACE).manifest
    chain, version = [], final.manifest_version
    while version != seed.manifest_version:
        chain.append(version)
        version = replaced_by[version]
    assert len(chain) == len(set(chain)) == len(replaced_by)  # 0 lost updates: one unbroken chain of every move
    assert final.previous_manifest_version == replaced_by[final.manifest_version]
    assert all(previous == replaced_by.get(version) for version, previous in seen)
    assert torn == 0 and reads > 0
    # Every version that was served is stored too, so a rollback can return to it.
    assert all(store.exists(paths.manifest_version(TENANT, SURFACE, version)) for version in replaced_by)
