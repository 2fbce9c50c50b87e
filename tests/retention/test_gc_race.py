"""Proof: a garbage collector running in its own process while publishers publish never removes an artifact that a
manifest it must keep names (the pointer's, and so what is served), on one FileSystemStore.

Two races, as tests/publish/test_publish_race.py runs them (spawned processes, one store):
- publishers calling `publish` directly with new artifacts, a gc looping with the real clock: the age threshold
  is what protects an artifact between its write and its manifest;
- pipeline-like publishers that *reuse* artifacts older than the threshold (a rerun finding its artifact stored)
  under the run lease, against the gc step with no age threshold at all: the lease and the manifest re-read
  protect them. Each publisher checks, still holding the lease, that everything the pointer names exists.
Meanwhile old garbage is collected: the gc really deletes.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import time
from pathlib import Path

from recsys.errors import PointerConflict, RunInProgress
from recsys.paths import Scope
from recsys.pipeline import lease, steps
from recsys.pipeline.models import GcRequest
from recsys.publish.service import publish, read_pointer
from recsys.retention.gc import collect
from recsys.settings import Retention, Settings
from recsys.store import FileSystemStore
from tests.retention.helpers import SURFACE, TENANT, WINDOW, age, artifact, key_of

PUBLISHERS = 3
ROUNDS = 12
OLD = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)


def _missing(store: FileSystemStore) -> list[str]:
    pointer = read_pointer(store, TENANT, SURFACE)
    uris = pointer.manifest.current.values() if pointer else []
    return [uri for uri in uris if not store.exists(store.key_of(uri))]


def _publisher(root: str, items: list[str], leased: bool, start, gc_rounds, results) -> None:
    store = FileSystemStore(root)
    outcomes = []
    start.wait()
    for n, item in enumerate(items):
        if n == len(items) // 2:
            # Halfway, wait for the gc to have finished two rounds: it surely races the publishes, however slowly
            # its process starts or runs on a loaded machine (it once did one round in all).
            deadline = time.monotonic() + 60
            while gc_rounds.value < 2 and time.monotonic() < deadline:
                time.sleep(0.005)
        run_id = f"{item}-{n}"
        if leased:
            while True:
                try:
                    lease.acquire(store, TENANT, SURFACE, run_id, dt.timedelta(minutes=5))
                    break
                except RunInProgress:
                    time.sleep(0.001)
        try:
            ref = artifact(store, item)  # an aged artifact is reused (create finds it), a deleted one rewritten
            result = publish(store, TENANT, SURFACE, WINDOW, [ref])
            outcomes.append((result.decision.value, _missing(store) if leased else []))
        except PointerConflict:
            outcomes.append(("conflict", []))
        except Exception as exc:  # noqa: BLE001 (reported to the test, which fails on it)
            outcomes.append((f"{type(exc).__name__}: {exc}", []))
        finally:
            if leased:
                lease.release(store, TENANT, SURFACE, run_id)
    results.put(outcomes)


def _collector(root: str, leased: bool, start, stop, gc_rounds, results) -> None:
    store = FileSystemStore(root)
    settings = Settings(store=root, retention=Retention(keep_manifests=1, artifact_min_age_days=0))
    deleted = rounds = 0
    start.wait()
    while not stop.is_set():
        if leased:
            result = steps.collect_garbage(GcRequest(tenant=TENANT, surface=SURFACE), settings)
            deleted += result.objects
        else:
            retention = Retention(keep_manifests=1, artifact_min_age_days=1)
            deleted += collect(store, Scope(TENANT, SURFACE), retention, window_days=30).objects
        rounds += 1
        gc_rounds.value = rounds
    results.put((rounds, deleted))


def _race(root: str, items: list[list[str]], leased: bool) -> tuple[list, int, int]:
    ctx = multiprocessing.get_context("spawn")
    start, stop = ctx.Event(), ctx.Event()
    results, collected = ctx.Queue(), ctx.Queue()
    gc_rounds = ctx.Value("i", 0)
    publishers = [
        ctx.Process(target=_publisher, args=(root, batch, leased, start, gc_rounds, results)) for batch in items
    ]
    collector = ctx.Process(target=_collector, args=(root, leased, start, stop, gc_rounds, collected))
    for process in [*publishers, collector]:
        process.start()
    start.set()
    try:
        outcomes = [outcome for _ in publishers for outcome in results.get(timeout=120)]
    finally:
        stop.set()
    rounds, deleted = collected.get(timeout=120)
    for process in [*publishers, collector]:
        process.join(timeout=60)
        assert process.exitcode == 0
    return outcomes, rounds, deleted


def test_publishes_of_new_artifacts_racing_the_gc_lose_none(tmp_path: Path) -> None:
    root = str(tmp_path / "store")
    store = FileSystemStore(root)
    garbage = [artifact(store, f"garbage-{n}") for n in range(10)]
    for ref in garbage:
        age(store, key_of(ref), OLD)
    items = [[f"p{p}-r{r}" for r in range(ROUNDS)] for p in range(PUBLISHERS)]

    outcomes, rounds, _ = _race(root, items, leased=False)

    assert {decision for decision, _ in outcomes} <= {"moved", "conflict"}, outcomes  # no ArtifactInvalid
    assert rounds > 1
    assert not any(store.exists(key_of(ref)) for ref in garbage)  # the gc did delete
    # Every artifact a publisher wrote is younger than the threshold, so none was deleted, published or not.
    assert all(store.exists(key_of(artifact(store, item))) for batch in items for item in batch)
    assert _missing(store) == []


def test_publishes_reusing_old_artifacts_under_the_lease_never_lose_what_the_pointer_names(tmp_path: Path) -> None:
    root = str(tmp_path / "store")
    store = FileSystemStore(root)
    reused = [artifact(store, f"old-{n}") for n in range(6)]
    for ref in reused:
        age(store, key_of(ref), OLD)
    items = [[f"old-{(p + r) % 6}" for r in range(ROUNDS)] for p in range(PUBLISHERS)]

    outcomes, rounds, deleted = _race(root, items, leased=True)

    decisions = {decision for decision, _ in outcomes}
    assert decisions <= {"moved", "unchanged", "conflict"}, outcomes  # no ArtifactInvalid, no NotFound
    assert all(missing == [] for _, missing in outcomes)  # what the pointer named existed after every publish
    assert rounds > 1 and deleted > 0  # the gc ran throughout and deleted the versions it no longer had to keep
    assert _missing(store) == []
