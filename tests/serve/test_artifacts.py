"""The serving side's artifact access, over real artifacts built from the bundled sample by the pipeline steps."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from moto import mock_aws

from recsys import paths
from recsys.compute import implicit, popularity
from recsys.contract.manifest import Manifest
from recsys.days import Window
from recsys.paths import Scope
from recsys.publish.service import publish
from recsys.ranking.signals import Interaction, Scored
from recsys.serve.reader import (
    DEFAULT_MANIFEST_TEMPLATE,
    ArtifactCache,
    ArtifactIncompatible,
    ArtifactReader,
    ArtifactSignals,
    LoadedManifest,
    ManifestCache,
    ManifestIncompatible,
    manifest_uri,
)
from recsys.serve.reader import signals as reader_signals
from recsys.settings import Settings
from recsys.store import (
    Blob,
    FileSystemStore,
    NotFound,
    ObjectInfo,
    ObjectStore,
    S3Store,
    StoreError,
    TransientStoreError,
)
from recsys.tables import to_parquet
from tests.conftest import SAMPLE_CATALOG, SAMPLE_RAW, run_steps

JAN = Window(start=dt.date(2026, 1, 1), end=dt.date(2026, 1, 7))
KINDS = {"popularity", "cooc", "implicit", "content_sim", "session_seq", "item_knn"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class SpyStore(ObjectStore):
    """Delegates to `inner`, counting calls and bytes read; `fail` makes every read raise a TransientStoreError."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.uri = inner.uri
        self.fail = False
        self.gets: list[str] = []
        self.sizes: list[str] = []
        self.ranges: list[tuple[str, int, int]] = []

    def _check(self, key: str) -> None:
        if self.fail:
            raise TransientStoreError(f"{self.uri}/{key}: injected failure")

    def get(self, key: str) -> Blob:
        self.gets.append(key)
        self._check(key)
        return self.inner.get(key)

    def size(self, key: str) -> int:
        self.sizes.append(key)
        self._check(key)
        return self.inner.size(key)

    def read_range(self, key: str, start: int, length: int) -> bytes:
        self._check(key)
        data = self.inner.read_range(key, start, length)
        self.ranges.append((key, start, len(data)))
        return data

    def head(self, key: str) -> str | None:
        return self.inner.head(key)

    def put(self, key: str, data: bytes, **kwargs: Any) -> str:
        return self.inner.put(key, data, **kwargs)

    def list(self, prefix: str = "") -> Iterator[str]:
        return self.inner.list(prefix)

    def list_info(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.inner.list_info(prefix)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def reset(self) -> None:
        self.gets.clear()
        self.sizes.clear()
        self.ranges.clear()


def read_table(store: ObjectStore, uri: str) -> pa.Table:
    return pq.read_table(pa.BufferReader(store.get(store.key_of(uri)).data))


@pytest.fixture
def refs(store: FileSystemStore, sample_settings: Settings) -> dict[str, Any]:
    artifacts = run_steps(sample_settings, "2026-01-01", "2026-01-07")
    publish(store, "demo", "home", JAN, artifacts)
    return {ref.kind: ref for ref in artifacts}


@pytest.fixture
def spy(store: FileSystemStore) -> SpyStore:
    return SpyStore(store)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_reader(spy: SpyStore, clock: FakeClock, **kwargs: Any) -> ArtifactReader:
    """A reader whose every manifest and artifact read goes through `spy`."""
    return ArtifactReader(spy, DEFAULT_MANIFEST_TEMPLATE, clock=clock, **kwargs)


@pytest.fixture
def reader(spy: SpyStore, clock: FakeClock, refs: dict[str, Any]) -> ArtifactReader:
    return make_reader(spy, clock, manifest_ttl=60)


def must(reader: ArtifactReader, tenant: str = "demo", surface: str = "home") -> LoadedManifest:
    loaded = reader.signals(Scope(tenant, surface))
    assert loaded is not None
    return loaded


def put_manifest(store: ObjectStore, tenant: str, surface: str, data: bytes | dict) -> None:
    body = data if isinstance(data, bytes) else json.dumps(data).encode()
    store.put(paths.current_manifest(tenant, surface), body)


def current_manifest(store: ObjectStore, tenant: str = "demo", surface: str = "home") -> Manifest:
    return Manifest.from_bytes(store.get(paths.current_manifest(tenant, surface)).data)


def with_current(manifest: Manifest, **changes: str | None) -> Manifest:
    """`manifest` with kinds re-pointed (or dropped, for None) and a new manifest_version."""
    current = dict(manifest.current)
    for kind, uri in changes.items():
        if uri is None:
            current.pop(kind)
        else:
            current[kind] = uri
    return manifest.model_copy(update={"current": current, "manifest_version": f"{manifest.manifest_version}-x"})


# --- URIs ------------------------------------------------------------------------------------------------------


def test_manifest_uri() -> None:
    assert (
        manifest_uri(DEFAULT_MANIFEST_TEMPLATE, "s3://bucket/pre/", Scope("demo", "home"))
        == "s3://bucket/pre/registry/current/demo/home/manifest.json"
    )
    assert manifest_uri("/artifacts/{tenant}/{surface}/manifest.json", None, Scope("tenant-a", "home")) == (
        "/artifacts/tenant-a/home/manifest.json"
    )
    for tenant, surface in (("../x", "home"), ("demo", "a/b"), ("demo", ".."), ("", "home")):
        with pytest.raises(ValueError) as caught:
            manifest_uri("s3://secret-bucket/{tenant}/{surface}.json", None, Scope(tenant, surface))
        assert "secret-bucket" not in str(caught.value)
    with pytest.raises(ValueError, match="store"):
        manifest_uri(DEFAULT_MANIFEST_TEMPLATE, None, Scope("demo", "home"))


def test_reader_rejects_templates_without_placeholders_or_outside_its_store(store: FileSystemStore) -> None:
    with pytest.raises(ValueError, match="tenant"):
        ArtifactReader(store, template="{store}/manifest.json")
    with pytest.raises(ValueError, match="outside the store"):
        ArtifactReader(store, template="s3://elsewhere/{tenant}/{surface}/manifest.json")
    explicit = ArtifactReader(store, template=store.uri + "/registry/current/{tenant}/{surface}/manifest.json")
    assert explicit.manifest_uri(Scope("demo", "home")) == ArtifactReader(store).manifest_uri(Scope("demo", "home"))


def test_reader_reads_a_relative_store_root(
    store: FileSystemStore, refs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(store.root.parent)
    reader = ArtifactReader(FileSystemStore(store.root.name))
    loaded = reader.signals(Scope("demo", "home"))
    assert loaded is not None and loaded.signals.available == KINDS
    assert loaded.signals.popular(1)[0].item_id == read_table(store, refs["popularity"].uri)["item_id"][0].as_py()


# --- lookups ---------------------------------------------------------------------------------------------------


def test_lookups_return_what_the_parquet_holds(store: FileSystemStore, reader: ArtifactReader, refs) -> None:
    loaded = reader.signals(Scope("demo", "home"))
    assert loaded is not None
    assert (loaded.stale, loaded.fallback, loaded.manifest.surface) == (False, False, "home")
    signals = loaded.signals
    assert signals.available == KINDS

    pop = read_table(store, refs["popularity"].uri).sort_by("rank").to_pylist()
    assert signals.popular(len(pop) + 10) == [Scored(r["item_id"], r["score"]) for r in pop]
    assert signals.popular(3) == [Scored(r["item_id"], r["score"]) for r in pop[:3]]
    assert signals.popular(0) == [] and signals.popular(-1) == []
    assert all(signals.popularity_of(r["item_id"]) == r["score"] for r in pop)
    assert signals.popularity_of("no-such-item") == 0.0

    for kind, column, lookup in (
        ("cooc", "neighbor_id", signals.co_visited),
        ("session_seq", "next_item_id", signals.next_items),
        ("item_knn", "neighbor_id", signals.item_neighbors),
    ):
        rows = read_table(store, refs[kind].uri).to_pylist()
        by_item: dict[str, list[dict]] = {}
        for row in rows:
            by_item.setdefault(row["item_id"], []).append(row)
        assert by_item
        for item, neighbours in by_item.items():
            neighbours.sort(key=lambda r: r["rank"])
            assert lookup(item) == [Scored(r[column], r["score"]) for r in neighbours]
            if kind == "cooc":
                assert signals.co_visit_counts(item) == {r[column]: r["count"] for r in neighbours}
        assert lookup("no-such-item") == []
    assert signals.co_visit_counts("no-such-item") == {}

    content = read_table(store, refs["content_sim"].uri).to_pylist()
    for row in content:
        assert signals.tags(row["item_id"]) == tuple(row["tags"])
        expected = [Scored(i, s) for i, s in zip(row["similar_items"], row["similar_scores"], strict=True)]
        assert signals.similar_by_tags(row["item_id"]) == expected
    assert signals.tags("no-such-item") == () and signals.similar_by_tags("no-such-item") == []

    users: dict[str, list[dict]] = {}
    for row in read_table(store, refs["implicit"].uri).to_pylist():
        users.setdefault(row["user_id"], []).append(row)
    for user, rows in users.items():
        rows.sort(key=lambda r: r["rank"])
        expected = [
            Interaction(r["item_id"], r["score"], r["count"], int(r["last_ts"].timestamp() * 1_000_000)) for r in rows
        ]
        assert signals.user_items(user) == expected
    assert signals.user_items("no-such-user") == []


def test_arrays_agree_with_the_lookups(store: FileSystemStore, reader: ArtifactReader, refs) -> None:
    signals = must(reader).signals
    arrays = signals.arrays()
    arrays.prepare(["popularity", "cooc", "session_seq", "content_sim", "item_knn"])
    pop = read_table(store, refs["popularity"].uri).to_pylist()
    codes, scores = arrays.popular(len(pop) + 5)
    assert list(zip(arrays.names(codes), scores.tolist(), strict=True)) == [
        (s.item_id, s.score) for s in signals.popular(len(pop) + 5)
    ]
    items = sorted(
        {row["item_id"] for row in read_table(store, refs["content_sim"].uri).to_pylist()} | {"no-such-item"}
    )
    looked_up = arrays.popularity_of(arrays.codes(items)).tolist()
    assert looked_up == [signals.popularity_of(item) for item in items]
    for kind, lookup in (
        ("cooc", signals.co_visited),
        ("session_seq", signals.next_items),
        ("content_sim", signals.similar_by_tags),
        ("item_knn", signals.item_neighbors),
    ):
        source, codes, scores = arrays.neighbours(kind, items)
        found = list(zip(source.tolist(), arrays.names(codes), scores.tolist(), strict=True))
        expected = [(i, s.item_id, s.score) for i, item in enumerate(items) for s in lookup(item)]
        assert found == expected and found, kind
    users = sorted({row["user_id"] for row in read_table(store, refs["implicit"].uri).to_pylist()})
    for user in [*users, "no-such-user"]:
        assert arrays.history(user).interactions() == signals.user_items(user)
    # ids no table holds get codes of their own, stable within the view and never added to the vocabulary
    size = len(signals.vocabulary)
    fresh = signals.arrays()
    unknown = fresh.codes(["new-1", "new-2", "new-1", items[0]])
    assert unknown.tolist()[:3] == [-2, -3, -2] and unknown[3] >= 0
    assert fresh.names(unknown) == ["new-1", "new-2", "new-1", items[0]]
    assert len(signals.vocabulary) == size and signals.arrays().codes(["new-2"]).tolist() == [-2]


def test_a_cold_view_loads_its_kinds_in_threads_and_a_warm_one_starts_none(
    reader: ArtifactReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    pools: list[int] = []

    class CountingPool(reader_signals.ThreadPoolExecutor):
        def __init__(self, max_workers: int) -> None:
            pools.append(max_workers)
            super().__init__(max_workers=max_workers)

    monkeypatch.setattr(reader_signals, "ThreadPoolExecutor", CountingPool)
    monkeypatch.setattr(reader_signals, "_CORES", 2)
    kinds = ["popularity", "cooc", "session_seq", "content_sim", "item_knn"]
    signals = must(reader).signals
    cold = signals.arrays()
    cold.prepare(kinds)
    assert pools == [2]  # one pool for the five unloaded kinds, as wide as the cores
    warm = signals.arrays()
    warm.prepare(kinds)
    assert pools == [2]  # everything is in the cache: no thread
    for kind in ("cooc", "item_knn"):
        items = ["no-such-item", *cold.names(cold.popular(20)[0])]
        assert [a.tolist() for a in cold.neighbours(kind, items)] == [b.tolist() for b in warm.neighbours(kind, items)]


def test_kinds_load_lazily_and_once(spy: SpyStore, reader: ArtifactReader, refs) -> None:
    loaded = reader.signals(Scope("demo", "home"))
    assert loaded is not None
    assert len(reader.artifacts) == 0
    loaded.signals.popular(5)
    assert reader.artifacts.keys() == [refs["popularity"].uri]
    spy.reset()
    loaded.signals.popular(5)
    loaded.signals.popularity_of("x")
    assert must(reader).signals is loaded.signals
    assert spy.gets == [] and spy.ranges == []


def test_available_probes_objects_once_without_loading_them(spy: SpyStore, reader: ArtifactReader) -> None:
    loaded = reader.signals(Scope("demo", "home"))
    assert loaded is not None
    spy.reset()
    assert loaded.signals.available == KINDS
    assert len(spy.sizes) == len(KINDS) and spy.gets == [] and len(reader.artifacts) == 0
    spy.reset()
    assert loaded.signals.available == KINDS
    assert spy.sizes == []


# --- manifests: TTL, stale-if-error, invalidate, missing, fallback, incompatible ---------------------------------


def test_manifest_is_cached_for_the_ttl(store, spy: SpyStore, clock: FakeClock, reader: ArtifactReader) -> None:
    first = reader.signals(Scope("demo", "home"))
    assert first is not None
    changed = with_current(first.manifest, cooc=None)
    put_manifest(store, "demo", "home", changed.to_bytes())
    spy.reset()
    clock.advance(59)
    assert must(reader).manifest == first.manifest
    assert spy.gets == []
    clock.advance(2)
    again = reader.signals(Scope("demo", "home"))
    assert again is not None and again.manifest == changed and not again.stale
    assert "cooc" not in again.signals.available and again.signals.co_visited("i00000") == []
    assert len(spy.gets) == 1


def test_stale_if_error(spy: SpyStore, clock: FakeClock, refs) -> None:
    calls: list[tuple[str, str, Exception]] = []
    reader = make_reader(spy, clock, manifest_ttl=60, error_retry=5, on_stale=lambda *args: calls.append(args))
    good = reader.signals(Scope("demo", "home"))
    assert good is not None and not good.stale
    top = good.signals.popular(3)

    spy.fail = True
    clock.advance(61)
    stale = reader.signals(Scope("demo", "home"))
    assert stale is not None and stale.stale
    assert stale.manifest == good.manifest and stale.signals is good.signals
    assert stale.signals.popular(3) == top  # loaded artifacts keep serving from memory
    assert reader.manifests.refresh_failures == 1
    assert [(t, s, type(e)) for t, s, e in calls] == [("demo", "home", TransientStoreError)]

    spy.reset()
    clock.advance(4)  # within error_retry: no new attempt
    assert must(reader).stale
    assert spy.gets == []
    clock.advance(2)
    assert must(reader).stale
    assert reader.manifests.refresh_failures == 2 and len(calls) == 2

    spy.fail = False
    clock.advance(6)
    recovered = reader.signals(Scope("demo", "home"))
    assert recovered is not None and not recovered.stale
    assert reader.manifests.refresh_failures == 2


def test_store_error_without_a_last_good_manifest_propagates(spy: SpyStore, clock: FakeClock, refs) -> None:
    reader = make_reader(spy, clock, on_stale=lambda *args: pytest.fail("nothing to serve stale"))
    spy.fail = True
    with pytest.raises(TransientStoreError):
        reader.signals(Scope("demo", "home"))
    assert reader.manifests.refresh_failures == 0


def test_a_failing_on_stale_hook_does_not_break_serving(spy: SpyStore, clock: FakeClock, refs) -> None:
    def hook(tenant: str, surface: str, error: Exception) -> None:
        raise RuntimeError("metrics are down")

    reader = make_reader(spy, clock, on_stale=hook)
    assert reader.signals(Scope("demo", "home")) is not None
    spy.fail = True
    clock.advance(61)
    assert must(reader).stale


def test_invalidate(store, spy: SpyStore, reader: ArtifactReader) -> None:
    first = reader.signals(Scope("demo", "home"))
    assert first is not None
    first.signals.popular(1)
    changed = with_current(first.manifest, session_seq=None)
    put_manifest(store, "demo", "home", changed.to_bytes())
    assert must(reader).manifest == first.manifest
    assert reader.invalidate("other-tenant") == 0
    assert reader.invalidate("demo", "home") == 1
    assert len(reader.artifacts) == 1
    again = reader.signals(Scope("demo", "home"))
    assert again is not None and again.manifest == changed and again.signals is not first.signals
    assert reader.invalidate("demo", artifacts=True) == 2
    assert len(reader.artifacts) == 0
    assert again.signals.popular(1) == first.signals.popular(1)


def test_missing_manifest_is_none_and_the_miss_is_cached(
    store, spy: SpyStore, clock: FakeClock, sample_settings
) -> None:
    reader = make_reader(spy, clock, manifest_ttl=60)
    assert reader.signals(Scope("demo", "home")) is None
    assert spy.gets == [paths.current_manifest("demo", "home"), paths.current_manifest("demo", "default")]
    spy.reset()
    assert reader.signals(Scope("demo", "home")) is None
    assert spy.gets == []
    publish(store, "demo", "home", JAN, run_steps(sample_settings, "2026-01-01", "2026-01-07"))
    assert reader.signals(Scope("demo", "home")) is None
    clock.advance(61)
    assert reader.signals(Scope("demo", "home")) is not None


def test_default_surface_fallback(store, reader: ArtifactReader, refs) -> None:
    publish(store, "demo", "default", JAN, list(refs.values()))
    own = reader.signals(Scope("demo", "home"))
    fallback = reader.signals(Scope("demo", "checkout"))
    assert own is not None and fallback is not None
    assert (own.fallback, own.manifest.surface) == (False, "home")
    assert (fallback.fallback, fallback.manifest.surface) == (True, "default")
    assert fallback.signals.popular(3) == own.signals.popular(3)
    direct = reader.signals(Scope("demo", "default"))
    assert direct is not None and not direct.fallback
    assert reader.signals(Scope("other", "home")) is None


def bad_manifests(good: dict) -> dict[str, bytes]:
    return {
        "garbage": b"\x00not json{",
        "array": b"[1, 2]",
        "v2": json.dumps({**good, "v": 2}).encode(),
        "v-true": json.dumps({**good, "v": True}).encode(),
        "tenant-mismatch": json.dumps({**good, "tenant": "other"}).encode(),
        "surface-mismatch": json.dumps({**good, "surface": "other"}).encode(),
        "no-current": json.dumps({k: v for k, v in good.items() if k != "current"}).encode(),
        "bad-updated-at": json.dumps({**good, "updated_at": "yesterday"}).encode(),
    }


@pytest.mark.parametrize(
    "case", ["garbage", "array", "v2", "v-true", "tenant-mismatch", "surface-mismatch", "no-current", "bad-updated-at"]
)
def test_incompatible_manifest(store, spy: SpyStore, clock: FakeClock, reader: ArtifactReader, case: str) -> None:
    good = json.loads(store.get(paths.current_manifest("demo", "home")).data)
    put_manifest(store, "demo", "home", bad_manifests(good)[case])
    with pytest.raises(ManifestIncompatible) as caught:
        reader.signals(Scope("demo", "home"))
    assert caught.value.kind == "manifest" and isinstance(caught.value, ArtifactIncompatible)
    spy.reset()
    with pytest.raises(ManifestIncompatible):
        reader.signals(Scope("demo", "home"))
    assert spy.gets == []  # cached for the TTL too
    put_manifest(store, "demo", "home", json.dumps(good).encode())
    clock.advance(61)
    assert reader.signals(Scope("demo", "home")) is not None


def test_manifest_cache_refreshes_one_key_once_under_concurrency() -> None:
    fetches: list[str] = []

    def fetch(scope: Scope) -> bytes:
        fetches.append(scope.surface)
        time.sleep(0.05)
        return minimal_manifest()

    cache = ManifestCache(fetch, ttl=60)
    barrier = threading.Barrier(8)
    results: list[Any] = []

    def worker() -> None:
        barrier.wait()
        results.append(cache.get(Scope("demo", "home")))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert fetches == ["home"]
    assert len(results) == 8 and all(r is not None and r.manifest.manifest_version == "m1" for r in results)


def minimal_manifest(version: str = "m1") -> bytes:
    return json.dumps(
        {
            "v": 1,
            "tenant": "demo",
            "surface": "home",
            "current": {},
            "updated_at": "2026-01-07T00:00:00Z",
            "manifest_version": version,
            "window": {"start": "2026-01-01", "end": "2026-01-07"},
            "artifacts": {},
        }
    ).encode()


def test_manifest_cache_keeps_a_bounded_number_of_misses(clock: FakeClock) -> None:
    def fetch(scope: Scope) -> bytes:
        if scope.surface == "home":
            return minimal_manifest()
        raise NotFound(scope.surface)

    cache = ManifestCache(fetch, ttl=60, clock=clock, max_entries=3)
    assert cache.get(Scope("demo", "home")) is not None
    for i in range(20):
        assert cache.get(Scope("demo", f"made-up-{i}")) is None
    assert len(cache) <= 3
    fetch_home = cache.get(Scope("demo", "home"))
    assert fetch_home is not None  # the good manifest survived the pruning


def test_an_invalidate_during_a_refresh_wins(clock: FakeClock) -> None:
    versions = iter(["old", "new"])
    cache: ManifestCache

    def fetch(scope: Scope) -> bytes:
        data = minimal_manifest(next(versions))
        cache.invalidate("demo")  # lands while this (now outdated) read is in flight
        return data

    cache = ManifestCache(fetch, ttl=60, clock=clock)
    assert cache.get(Scope("demo", "home")).manifest.manifest_version == "old"  # type: ignore[union-attr]
    assert cache.get(Scope("demo", "home")).manifest.manifest_version == "new"  # type: ignore[union-attr]


# --- the artifact cache ----------------------------------------------------------------------------------------


class Blobby:
    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes


def test_artifact_cache_evicts_least_recently_used_by_bytes(caplog: pytest.LogCaptureFixture) -> None:
    cache = ArtifactCache(100)
    a, b, c = Blobby(40), Blobby(40), Blobby(40)
    assert cache.get_or_load("a", lambda: a) is a
    assert cache.get_or_load("b", lambda: b) is b
    assert cache.get_or_load("a", lambda: pytest.fail("cached")) is a  # a is now the most recent
    cache.get_or_load("c", lambda: c)
    assert cache.keys() == ["a", "c"] and cache.bytes == 80 and cache.evictions == 1
    with caplog.at_level(logging.WARNING):
        huge = cache.get_or_load("huge", lambda: Blobby(101))
    assert huge.nbytes == 101 and "huge" not in cache and cache.oversize == 1
    assert cache.keys() == ["a", "c"]
    assert (cache.hits, cache.misses) == (1, 4)
    assert cache.invalidate_all() == 2 and cache.bytes == 0 and len(cache) == 0


def test_artifact_cache_loads_a_key_once_under_concurrency() -> None:
    cache = ArtifactCache(1000)
    loads: list[int] = []

    def load() -> Blobby:
        loads.append(1)
        time.sleep(0.05)
        return Blobby(10)

    barrier = threading.Barrier(8)
    got: list[Blobby] = []

    def worker() -> None:
        barrier.wait()
        got.append(cache.get_or_load("k", load))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loads) == 1 and len({id(g) for g in got}) == 1


def test_reader_evicts_artifacts_past_its_byte_budget(spy: SpyStore, clock: FakeClock, refs) -> None:
    probe = make_reader(spy, clock)
    signals = must(probe).signals
    signals.popular(1)
    pop_bytes = probe.artifacts.bytes
    signals.co_visited("i00000")
    cooc_bytes = probe.artifacts.bytes - pop_bytes

    reader = make_reader(spy, clock, cache_bytes=max(pop_bytes, cooc_bytes) + 1)
    signals = must(reader).signals
    top = signals.popular(5)
    assert reader.artifacts.keys() == [refs["popularity"].uri]
    neighbours = signals.co_visited("i00000")
    assert reader.artifacts.keys() == [refs["cooc"].uri] and reader.artifacts.evictions == 1
    assert reader.artifacts.bytes <= reader.artifacts.max_bytes
    spy.reset()
    assert signals.popular(5) == top  # reloaded
    assert spy.gets == [spy.key_of(refs["popularity"].uri)]
    assert signals.co_visited("i00000") == neighbours


# --- implicit: per-user row groups -----------------------------------------------------------------------------


@pytest.fixture
def small_groups(store, refs) -> tuple[Manifest, str, pa.Table]:
    """A manifest whose implicit artifact has row groups of 10 rows."""
    table = read_table(store, refs["implicit"].uri)
    key = "artifacts/demo/home/implicit/small-row-groups.parquet"
    store.put(key, to_parquet(table, implicit.SCHEMA, kind="implicit", row_group_size=10))
    return with_current(current_manifest(store), implicit=store.url(key)), key, table


def test_implicit_reads_only_the_users_row_groups(spy: SpyStore, clock: FakeClock, small_groups) -> None:
    manifest, key, table = small_groups
    signals = ArtifactSignals(manifest, ArtifactCache(), spy, clock=clock)
    metadata = pq.ParquetFile(io.BytesIO(spy.inner.get(key).data)).metadata
    assert metadata.num_row_groups > 100

    def groups_of(user: str) -> list[int]:
        found = []
        for g in range(metadata.num_row_groups):
            stats = metadata.row_group(g).column(0).statistics
            if stats.min <= user <= stats.max:
                found.append(g)
        return found

    def expected(user: str) -> list[Interaction]:
        rows = table.filter(pa.compute.equal(table["user_id"], user)).sort_by("rank").to_pylist()
        return [Interaction(r["item_id"], r["score"], r["count"], int(r["last_ts"].timestamp() * 1e6)) for r in rows]

    users = sorted(set(table["user_id"].to_pylist()))
    inside_one = next(u for u in users if len(groups_of(u)) == 1)
    spanning = next(u for u in users if len(groups_of(u)) > 2)

    assert signals.user_items(inside_one) == expected(inside_one)
    assert spy.gets == []  # never a whole-object read
    footer_reads = [r for r in spy.ranges if r[1] + r[2] == spy.inner.size(key)]
    assert len(spy.sizes) == 1 and len(footer_reads) == 1  # the size, then one read of the tail (the footer)

    spy.reset()
    assert signals.user_items(spanning) == expected(spanning)
    wanted = groups_of(spanning)
    assert len(spy.ranges) == len(wanted) and spy.sizes == [] and spy.gets == []
    chunk_bytes = sum(
        metadata.row_group(g).column(c).total_compressed_size for g in wanted for c in range(metadata.num_columns)
    )
    assert sum(length for _, _, length in spy.ranges) <= chunk_bytes

    spy.reset()
    another = next(u for u in users if len(groups_of(u)) == 1 and set(groups_of(u)).isdisjoint(groups_of(inside_one)))
    assert signals.user_items(another) == expected(another)
    assert len(spy.ranges) == 1  # exactly one row group, one ranged read
    group = groups_of(another)[0]
    assert spy.ranges[0][2] <= sum(metadata.row_group(group).column(c).total_compressed_size for c in range(6))

    spy.reset()
    assert signals.user_items(inside_one) == expected(inside_one)
    assert signals.user_items("zzz-after-everyone") == [] and signals.user_items("") == []
    assert spy.ranges == [] and spy.sizes == []  # cached row groups; no group can hold those users


def test_implicit_unknown_user_inside_a_group_range_is_empty(spy: SpyStore, clock: FakeClock, small_groups) -> None:
    manifest, _, table = small_groups
    signals = ArtifactSignals(manifest, ArtifactCache(), spy, clock=clock)
    first = table["user_id"][0].as_py()
    assert signals.user_items(first + "-not-a-user") == []
    assert spy.gets == []


# --- missing and incompatible artifacts ------------------------------------------------------------------------


def test_missing_artifact_object_makes_its_kind_unavailable(
    store, reader: ArtifactReader, refs, caplog: pytest.LogCaptureFixture
) -> None:
    store.delete(store.key_of(refs["cooc"].uri))
    store.delete(store.key_of(refs["implicit"].uri))
    signals = must(reader).signals
    with caplog.at_level(logging.WARNING, logger="recsys-api"):
        assert signals.available == KINDS - {"cooc", "implicit"}
        assert signals.co_visited("i00000") == [] and signals.co_visit_counts("i00000") == {}
        assert signals.user_items("u00000") == []
    assert "artifact object missing" in caplog.text
    assert signals.popular(1) and signals.next_items("i00000")


def test_artifact_deleted_before_first_use_is_unavailable_when_used(store, reader: ArtifactReader, refs) -> None:
    signals = must(reader).signals
    store.delete(store.key_of(refs["session_seq"].uri))
    assert signals.next_items("i00000") == []
    assert "session_seq" not in signals.available


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("popularity", b"not parquet at all"),
        ("popularity", to_parquet(pa.table({"x": [1]}), pa.schema([("x", pa.int64())]), kind="popularity")),
        ("cooc", None),  # a popularity artifact where cooc belongs
        ("implicit", b"PAR1 truncated"),
        ("implicit", None),
    ],
)
def test_unreadable_artifact_is_skipped_logged_and_remembered(
    store, spy: SpyStore, clock: FakeClock, refs, kind: str, body: bytes | None, caplog: pytest.LogCaptureFixture
) -> None:
    if body is None:
        body = to_parquet(read_table(store, refs["popularity"].uri), popularity.SCHEMA, kind="popularity")
    key = f"artifacts/demo/home/{kind}/broken.parquet"
    store.put(key, body)
    manifest = with_current(current_manifest(store), **{kind: store.url(key)})
    signals = ArtifactSignals(manifest, ArtifactCache(), spy, clock=clock)
    assert kind in signals.available and not signals.unreadable  # it exists: only reading it tells
    lookup: Callable[[], Any] = {
        "popularity": lambda: signals.popular(3),
        "cooc": lambda: signals.co_visited("i00000"),
        "implicit": lambda: signals.user_items("u00000"),
    }[kind]
    with caplog.at_level(logging.WARNING, logger="recsys-api"):
        assert lookup() == []  # skipped like a missing object, not raised
    assert [record.kind for record in caplog.records] == [kind]  # type: ignore[attr-defined]
    assert signals.unreadable == {kind} and kind not in signals.available
    spy.reset()
    caplog.clear()
    assert lookup() == [] and signals.arrays().unreadable == {kind}
    assert spy.gets == [] and spy.ranges == [] and not caplog.records  # remembered: not re-read nor re-logged
    assert signals.next_items("i00000")  # other kinds are unaffected
    clock.now += signals.retry_after
    assert kind in signals.available and not signals.unreadable  # looked at again after the memo expires
    assert lookup() == [] and signals.unreadable == {kind}


# --- S3 (moto) -------------------------------------------------------------------------------------------------


def test_s3_reader_uses_ranged_gets_for_implicit(tmp_path, aws_credentials, monkeypatch) -> None:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "RECSYS_S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="recsys-art")
        settings = Settings(store="s3://recsys-art/pre", raw_uri=str(SAMPLE_RAW), catalog_uri=str(SAMPLE_CATALOG))
        artifacts = run_steps(settings, "2026-01-01", "2026-01-07")
        s3 = S3Store("recsys-art", "pre")
        publish(s3, "demo", "home", JAN, artifacts)
        implicit_uri = next(ref.uri for ref in artifacts if ref.kind == "implicit")
        table = pq.read_table(pa.BufferReader(s3.get(s3.key_of(implicit_uri)).data))

        reader = ArtifactReader(S3Store("recsys-art", "pre/"))
        loaded = reader.signals(Scope("demo", "home"))
        assert loaded is not None and loaded.signals.available == KINDS
        calls: list[dict] = []
        reader.store.client.meta.events.register("before-call.s3.GetObject", lambda params, **_: calls.append(params))

        user = table["user_id"][0].as_py()
        rows = table.filter(pa.compute.equal(table["user_id"], user)).sort_by("rank")
        assert [i.item_id for i in loaded.signals.user_items(user)] == rows["item_id"].to_pylist()
        assert calls and all("Range" in call["headers"] for call in calls)
        assert loaded.signals.user_items("nobody-at-all") == []
        assert loaded.signals.popular(1)[0].item_id
        with pytest.raises(NotFound):
            s3.size("artifacts/missing.parquet")


def test_artifact_uris_outside_the_readers_store_are_unreadable(store, refs, clock) -> None:
    manifest = with_current(current_manifest(store), cooc="s3://elsewhere/artifacts/cooc.parquet")
    signals = ArtifactSignals(manifest, ArtifactCache(), store, clock=clock)
    assert signals.co_visited("i00000") == [] and signals.unreadable == {"cooc"}
    assert signals.popular(1)


def test_store_errors_loading_an_artifact_propagate_and_are_not_remembered(
    spy: SpyStore, clock: FakeClock, reader: ArtifactReader
) -> None:
    signals = must(reader).signals
    spy.fail = True
    with pytest.raises(StoreError):
        signals.popular(1)
    spy.fail = False
    assert signals.popular(1)
