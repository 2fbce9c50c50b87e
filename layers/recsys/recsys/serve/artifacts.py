"""The serving side's artifact access: the current manifest of a (tenant, surface) and its artifacts, in memory.

  ArtifactReader      what the API holds (one per process): signals(tenant, surface) -> LoadedManifest | None
  ManifestCache       manifests per (tenant, surface) with a TTL, stale-if-error, cached misses, per-key refresh lock
  ArtifactCache       loaded artifacts by URI (immutable: no TTL), LRU within a byte budget
  ArtifactSignals     the `Signals` of one manifest, loading each kind on first use

Fixes over the seed's artifact mode: the last good manifest is served when a refresh fails (reported as stale),
misses are cached for the TTL too, artifact memory is bounded, concurrent misses load once, and the implicit
artifact is never loaded whole: a user's rows are read from the row groups whose user_id statistics contain them.

Loaded forms hold numpy/pyarrow arrays plus one dict from lookup key to row offsets (CSR style); Python objects are
made per lookup result, not per artifact row.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import json
import logging
import re
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import ValidationError

from recsys.compute import EVENT_KINDS, content_sim
from recsys.errors import RecsysError
from recsys.paths import safe_segment
from recsys.publish.manifest import Manifest
from recsys.serve.signals import Interaction, Scored
from recsys.store import (
    FileSystemStore,
    NotFound,
    ObjectStore,
    S3Store,
    StoreError,
    check_key,
    open_store,
    split_uri,
)
from recsys.store.base import StoreFile

log = logging.getLogger(__name__)

DEFAULT_MANIFEST_TEMPLATE = "{store}/registry/current/{tenant}/{surface}/manifest.json"
DEFAULT_MANIFEST_TTL = 60.0
DEFAULT_CACHE_BYTES = 512 * 1024 * 1024
DEFAULT_ERROR_RETRY = 5.0
DEFAULT_MAX_MANIFEST_ENTRIES = 10_000
FALLBACK_SURFACE = "default"

SCHEMAS: dict[str, pa.Schema] = {
    **{kind: module.SCHEMA for kind, module in EVENT_KINDS.items()},
    content_sim.KIND: content_sim.SCHEMA,
}

Clock = Callable[[], float]
StoreForUri = Callable[[str], tuple[ObjectStore, str]]
OnStale = Callable[[str, str, Exception], None]


class ArtifactIncompatible(RecsysError):
    """An artifact (or manifest) exists but cannot be served: the API answers 422 RECSYS_ARTIFACT_INCOMPATIBLE.

    `kind` is the artifact kind, or "manifest" (the seed's load-failure metric label).
    """

    def __init__(self, message: str, *, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class ManifestIncompatible(ArtifactIncompatible):
    """The manifest is not valid JSON, not v1, not a valid manifest, or names another tenant/surface."""

    def __init__(self, message: str) -> None:
        super().__init__(message, kind="manifest")


# --- URIs ------------------------------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{(store|tenant|surface)\}")


def manifest_uri(template: str, store_uri: str | None, tenant: str, surface: str) -> str:
    """`template` with {store}, {tenant} and {surface} replaced (one pass, plain text, like the seed).

    tenant and surface must be safe path segments; the ValueError names the value, never the template.
    """
    values = {"tenant": safe_segment(tenant, "tenant"), "surface": safe_segment(surface, "surface")}
    if "{store}" in template:
        if not store_uri:
            raise ValueError("the manifest template uses {store} but no store URI is configured")
        values["store"] = store_uri.rstrip("/")
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


class StoreResolver:
    """The default `store_for_uri`: one store object per root, reused (an S3Store holds a boto3 client).

    URIs inside `store_uri` use that one store; other s3:// URIs one store per bucket; other paths one per parent.
    """

    def __init__(self, store_uri: str | None = None) -> None:
        self.root = open_store(store_uri) if store_uri else None
        self._stores: dict[str, ObjectStore] = {}
        self._lock = threading.Lock()

    def __call__(self, uri: str) -> tuple[ObjectStore, str]:
        if self.root is not None:
            try:
                return self.root, self.root.key_of(uri)
            except ValueError:
                pass
        if uri.startswith("s3://"):
            bucket, _, key = uri[len("s3://") :].partition("/")
            root, key = f"s3://{bucket}", check_key(key)
            factory: Callable[[], ObjectStore] = lambda: open_store(root)  # noqa: E731
        else:
            parent, key = split_uri(uri)
            root, factory = parent.uri, lambda: parent
        with self._lock:
            store = self._stores.get(root)
            if store is None:
                store = self._stores[root] = factory()
        return store, key


class _ReusingResolver:
    """Wraps a caller's `store_for_uri` (e.g. `split_uri`, which builds a new store per call) so that plain
    S3Store/FileSystemStore results are reused per root: an S3Store creates its boto3 client once, on first use.
    Any other store type (a test's wrapper) is returned as given."""

    def __init__(self, inner: StoreForUri) -> None:
        self.inner = inner
        self._stores: dict[tuple[type, str], ObjectStore] = {}
        self._lock = threading.Lock()

    def __call__(self, uri: str) -> tuple[ObjectStore, str]:
        store, key = self.inner(uri)
        if type(store) not in (S3Store, FileSystemStore):
            return store, key
        with self._lock:
            return self._stores.setdefault((type(store), store.uri), store), key


# --- manifests -------------------------------------------------------------------------------------------------


def parse_manifest(data: bytes, tenant: str, surface: str) -> Manifest:
    """The manifest in `data`, checked like the seed (v == 1, RFC 3339 updated_at, the requested tenant/surface)."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise ManifestIncompatible(f"{tenant}/{surface} manifest is not valid JSON: {err}") from None
    if not isinstance(raw, dict):
        raise ManifestIncompatible(f"{tenant}/{surface} manifest is not a JSON object")
    version = raw.get("v")
    if type(version) is not int or version != 1:
        raise ManifestIncompatible(f"{tenant}/{surface} manifest has unsupported version v={version!r} (expected 1)")
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ManifestIncompatible(f"{tenant}/{surface} manifest is invalid: {where}: {first['msg']}") from None
    if (manifest.tenant, manifest.surface) != (tenant, surface):
        raise ManifestIncompatible(
            f"manifest for {tenant}/{surface} names {manifest.tenant!r}/{manifest.surface!r} instead"
        )
    try:
        dt.datetime.fromisoformat(manifest.updated_at.replace("Z", "+00:00"))
    except ValueError:
        raise ManifestIncompatible(f"{tenant}/{surface} manifest updated_at is not RFC 3339") from None
    return manifest


@dataclass(frozen=True)
class CachedManifest:
    manifest: Manifest
    stale: bool  # True: the last refresh failed and this is the last good manifest


@dataclass(frozen=True)
class _ManifestEntry:
    expires: float
    manifest: Manifest | None = None  # None: missing (or `error`)
    stale: bool = False
    error: str | None = None  # a ManifestIncompatible message

    def result(self) -> CachedManifest | None:
        if self.error is not None:
            raise ManifestIncompatible(self.error)  # a fresh exception: re-raising one instance grows its traceback
        if self.manifest is None:
            return None
        return CachedManifest(self.manifest, self.stale)


class ManifestCache:
    """Manifests per (tenant, surface) for `ttl` seconds.

    `fetch(tenant, surface)` returns the manifest bytes, raising NotFound when there is none and StoreError on
    failure. A missing manifest is cached as None and an incompatible one as its error, both for the TTL. When a
    refresh fails with a StoreError and a good manifest was loaded before, that manifest keeps being served with
    stale=True, `refresh_failures` is incremented and `on_stale(tenant, surface, error)` is called; the refresh is
    retried after min(ttl, error_retry) seconds. With nothing good to fall back on, the StoreError propagates.
    One thread refreshes a key at a time; while it does, others get the expired entry instead of waiting. At most
    about `max_entries` keys are kept (misses of made-up surfaces are dropped first).
    """

    def __init__(
        self,
        fetch: Callable[[str, str], bytes],
        *,
        ttl: float = DEFAULT_MANIFEST_TTL,
        clock: Clock = time.monotonic,
        on_stale: OnStale | None = None,
        error_retry: float = DEFAULT_ERROR_RETRY,
        max_entries: int = DEFAULT_MAX_MANIFEST_ENTRIES,
    ) -> None:
        self._fetch = fetch
        self.max_entries = max_entries
        self._epoch = 0  # bumped by invalidate: a refresh that started before it does not store its result
        self.ttl = float(ttl)
        self.error_retry = float(error_retry)
        self.clock = clock
        self.on_stale = on_stale
        self.refresh_failures = 0
        self._entries: dict[tuple[str, str], _ManifestEntry] = {}
        self._key_locks: dict[tuple[str, str], threading.Lock] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, tenant: str, surface: str) -> CachedManifest | None:
        """The manifest (None if there is none); ManifestIncompatible; StoreError only without a last good one."""
        key = (tenant, surface)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and self.clock() < entry.expires:
                return entry.result()
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        if entry is not None:
            if not key_lock.acquire(blocking=False):
                return entry.result()  # another thread is refreshing it
        else:
            key_lock.acquire()
        try:
            with self._lock:
                entry = self._entries.get(key)
                epoch = self._epoch
            now = self.clock()
            if entry is not None and now < entry.expires:
                return entry.result()
            entry = self._refresh(tenant, surface, entry, now)
            with self._lock:
                if epoch == self._epoch:
                    self._entries.pop(key, None)  # re-insert: dict order is then oldest refresh first
                    self._entries[key] = entry
                    self._prune(now)
        finally:
            key_lock.release()
        return entry.result()

    def _refresh(self, tenant: str, surface: str, previous: _ManifestEntry | None, now: float) -> _ManifestEntry:
        try:
            data = self._fetch(tenant, surface)
        except NotFound:
            log.info("artifact manifest not found", extra={"tenant": tenant, "surface": surface})
            return _ManifestEntry(expires=now + self.ttl)
        except StoreError as err:
            if previous is None or previous.manifest is None:
                raise
            with self._lock:
                self.refresh_failures += 1
            log.warning(
                "artifact manifest refresh failed; serving the last good manifest",
                extra={
                    "tenant": tenant,
                    "surface": surface,
                    "manifest_version": previous.manifest.manifest_version,
                    "error": str(err),
                },
            )
            if self.on_stale is not None:
                try:
                    self.on_stale(tenant, surface, err)
                except Exception:
                    log.exception("on_stale callback failed")
            return _ManifestEntry(expires=now + min(self.ttl, self.error_retry), manifest=previous.manifest, stale=True)
        try:
            manifest = parse_manifest(data, tenant, surface)
        except ManifestIncompatible as err:
            log.warning(
                "artifact manifest incompatible", extra={"tenant": tenant, "surface": surface, "error": str(err)}
            )
            return _ManifestEntry(expires=now + self.ttl, error=str(err))
        if previous is None or previous.manifest is None or previous.manifest != manifest:
            log.info(
                "artifact manifest loaded",
                extra={
                    "tenant": tenant,
                    "surface": surface,
                    "hash": hashlib.sha256(data).hexdigest(),
                    "manifest_version": manifest.manifest_version,
                    "updated_at": manifest.updated_at,
                },
            )
        return _ManifestEntry(expires=now + self.ttl, manifest=manifest)

    def _prune(self, now: float) -> None:
        """Past `max_entries` (surfaces are request input), drop expired entries, then misses, oldest first.
        Good manifests are kept: they are what stale-if-error serves. Called with the lock held."""
        if len(self._entries) <= self.max_entries:
            return
        for drop in (lambda e: e.expires <= now, lambda e: e.manifest is None):
            for key in [k for k, e in self._entries.items() if drop(e)]:
                if len(self._entries) <= self.max_entries:
                    break
                del self._entries[key]
                lock = self._key_locks.get(key)
                if lock is not None and not lock.locked():
                    del self._key_locks[key]

    def invalidate(self, tenant: str, surface: str | None = None) -> int:
        """Forget the tenant's manifests (one surface, or all): the next get fetches again. Returns how many."""
        with self._lock:
            self._epoch += 1
            keys = [k for k in self._entries if k[0] == tenant and (surface is None or k[1] == surface)]
            for key in keys:
                del self._entries[key]
        return len(keys)


# --- the artifact cache ----------------------------------------------------------------------------------------


class Sized(Protocol):
    @property
    def nbytes(self) -> int: ...


V = TypeVar("V", bound=Sized)


class ArtifactCache:
    """Loaded artifacts (and implicit footers / row groups) by key, least recently used evicted past `max_bytes`.

    Values report their approximate memory as `nbytes`. A value larger than the whole budget is returned but not
    kept (`oversize` counts those). Concurrent `get_or_load` calls of one key load it once.
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self.max_bytes = int(max_bytes)
        self.hits = self.misses = self.evictions = self.oversize = 0
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._loading: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._entries

    def keys(self) -> list[Hashable]:
        """Keys from least to most recently used."""
        with self._lock:
            return list(self._entries)

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            return self._lookup(key)

    def _lookup(self, key: Hashable) -> Any | None:
        found = self._entries.get(key)
        if found is None:
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return found[0]

    def put(self, key: Hashable, value: Sized) -> bool:
        """Keep `value` (evicting others as needed); False if it is larger than the whole budget."""
        size = max(int(value.nbytes), 0)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if size > self.max_bytes:
                self.oversize += 1
                log.warning(
                    "artifact larger than the cache budget is not cached", extra={"key": str(key), "bytes": size}
                )
                return False
            self._entries[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                evicted, (_, evicted_size) = self._entries.popitem(last=False)
                self._bytes -= evicted_size
                self.evictions += 1
                log.info("artifact evicted from the cache", extra={"key": str(evicted), "bytes": evicted_size})
        return True

    def get_or_load(self, key: Hashable, load: Callable[[], V]) -> V:
        with self._lock:
            found = self._lookup(key)
            if found is not None:
                return found
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                found = self._lookup(key)
                if found is not None:
                    return found
                self.misses += 1
            try:
                value = load()
                self.put(key, value)
            finally:
                with self._lock:
                    if self._loading.get(key) is key_lock:
                        del self._loading[key]
        return value

    def invalidate_all(self) -> int:
        """Drop every entry; returns how many there were."""
        with self._lock:
            dropped = len(self._entries)
            self._entries.clear()
            self._bytes = 0
        return dropped


# --- loaded forms ----------------------------------------------------------------------------------------------


def _strings(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    return array


def _numbers(array: pa.Array | pa.ChunkedArray, dtype: Any, fill: Any = 0) -> np.ndarray:
    array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    if array.null_count:
        array = pc.fill_null(array, fill)
    return np.ascontiguousarray(array.to_numpy(zero_copy_only=False), dtype=dtype)


def _dict_nbytes(index: Mapping[str, Any], per_value: int = 0) -> int:
    return sys.getsizeof(index) + sum(sys.getsizeof(key) + per_value for key in index)


def _runs(keys: pa.Array) -> tuple[np.ndarray, list[str]]:
    """Start offsets of the runs of equal consecutive keys (plus len(keys) at the end) and each run's key."""
    n = len(keys)
    if n == 0:
        return np.zeros(1, np.int64), []
    changed = pc.not_equal(keys.slice(1), keys.slice(0, n - 1))
    starts = np.flatnonzero(np.concatenate([[True], _numbers(changed, np.bool_, True)])).astype(np.int64)
    run_keys = pc.take(keys, pa.array(starts)).to_pylist()
    return np.append(starts, n), run_keys


def _group_once(table: pa.Table, key: str, order: str) -> tuple[np.ndarray, dict[str, int], bool]:
    offsets, run_keys = _runs(_strings(table.column(key)))
    index = {run_key: run for run, run_key in enumerate(run_keys)}
    ranks = _numbers(table.column(order), np.int64)
    starts = np.zeros(len(ranks), np.bool_)
    starts[offsets[:-1]] = True
    in_order = len(ranks) < 2 or bool(np.all((np.diff(ranks) > 0) | starts[1:]))
    return offsets, index, len(index) == len(run_keys) and in_order


def _grouped(table: pa.Table, key: str, order: str) -> tuple[pa.Table, np.ndarray, dict[str, int]]:
    """`table` with each `key`'s rows contiguous and in `order` order, its CSR offsets and key -> run number.

    Artifacts are written sorted like this; a table that is not is sorted here rather than misread.
    """
    offsets, index, grouped = _group_once(table, key, order)
    if not grouped:
        table = table.sort_by([(key, "ascending"), (order, "ascending")])
        offsets, index, _ = _group_once(table, key, order)
    return table, offsets, index


@dataclass(frozen=True, eq=False)
class PopularityTable:
    """popularity: items in rank order (score desc) and item -> row."""

    item_ids: pa.Array
    scores: np.ndarray
    counts: np.ndarray
    index: dict[str, int]
    nbytes: int

    @classmethod
    def from_table(cls, table: pa.Table) -> PopularityTable:
        ranks = _numbers(table.column("rank"), np.int64)
        if len(ranks) > 1 and not bool(np.all(np.diff(ranks) >= 0)):
            table = table.sort_by("rank")
        item_ids = _strings(table.column("item_id"))
        scores = _numbers(table.column("score"), np.float64)
        counts = _numbers(table.column("count"), np.int64)
        index: dict[str, int] = {}
        for row, item in enumerate(item_ids.to_pylist()):
            index.setdefault(item, row)
        nbytes = item_ids.nbytes + scores.nbytes + counts.nbytes + _dict_nbytes(index, 28)
        return cls(item_ids, scores, counts, index, nbytes)

    def top(self, n: int) -> list[Scored]:
        n = max(0, min(int(n), len(self.scores)))
        return [
            Scored(i, s) for i, s in zip(self.item_ids.slice(0, n).to_pylist(), self.scores[:n].tolist(), strict=True)
        ]

    def score_of(self, item_id: str) -> float:
        row = self.index.get(item_id)
        return 0.0 if row is None else float(self.scores[row])


@dataclass(frozen=True, eq=False)
class NeighborTable:
    """cooc / session_seq / item_knn in CSR form: rows offsets[g]:offsets[g+1] are item g's neighbours by rank."""

    index: dict[str, int]
    offsets: np.ndarray
    neighbors: pa.Array
    counts: np.ndarray
    scores: np.ndarray
    nbytes: int

    @classmethod
    def from_table(cls, table: pa.Table, neighbor_column: str) -> NeighborTable:
        table, offsets, index = _grouped(table, "item_id", "rank")
        neighbors = _strings(table.column(neighbor_column))
        counts = _numbers(table.column("count"), np.int64)
        scores = _numbers(table.column("score"), np.float64)
        nbytes = offsets.nbytes + neighbors.nbytes + counts.nbytes + scores.nbytes + _dict_nbytes(index, 28)
        return cls(index, offsets, neighbors, counts, scores, nbytes)

    def _span(self, item_id: str) -> tuple[int, int] | None:
        group = self.index.get(item_id)
        if group is None:
            return None
        return int(self.offsets[group]), int(self.offsets[group + 1])

    def scored(self, item_id: str) -> list[Scored]:
        span = self._span(item_id)
        if span is None:
            return []
        start, end = span
        ids = self.neighbors.slice(start, end - start).to_pylist()
        return [Scored(i, s) for i, s in zip(ids, self.scores[start:end].tolist(), strict=True)]

    def counts_of(self, item_id: str) -> dict[str, int]:
        span = self._span(item_id)
        if span is None:
            return {}
        start, end = span
        return dict(
            zip(self.neighbors.slice(start, end - start).to_pylist(), self.counts[start:end].tolist(), strict=True)
        )


def _list_parts(column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    lists = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if lists.null_count:
        lists = pc.fill_null(lists, pa.scalar([], lists.type))
    return _numbers(lists.offsets, np.int64), lists.values


@dataclass(frozen=True, eq=False)
class ContentTable:
    """content_sim: item -> row; tags and similar items/scores as list offsets into flat arrays."""

    index: dict[str, int]
    tag_offsets: np.ndarray
    tag_values: pa.Array
    similar_offsets: np.ndarray
    similar_items: pa.Array
    score_offsets: np.ndarray
    similar_scores: np.ndarray
    nbytes: int

    @classmethod
    def from_table(cls, table: pa.Table) -> ContentTable:
        index: dict[str, int] = {}
        for row, item in enumerate(_strings(table.column("item_id")).to_pylist()):
            index.setdefault(item, row)
        tag_offsets, tag_values = _list_parts(table.column("tags"))
        similar_offsets, similar_items = _list_parts(table.column("similar_items"))
        score_offsets, score_values = _list_parts(table.column("similar_scores"))
        scores = _numbers(score_values, np.float64)
        nbytes = (
            _dict_nbytes(index, 28)
            + tag_offsets.nbytes
            + tag_values.nbytes
            + similar_offsets.nbytes
            + similar_items.nbytes
            + score_offsets.nbytes
            + scores.nbytes
        )
        return cls(
            index,
            tag_offsets,
            _strings(tag_values),
            similar_offsets,
            _strings(similar_items),
            score_offsets,
            scores,
            nbytes,
        )

    def tags(self, item_id: str) -> tuple[str, ...]:
        row = self.index.get(item_id)
        if row is None:
            return ()
        start, end = int(self.tag_offsets[row]), int(self.tag_offsets[row + 1])
        return tuple(tag for tag in self.tag_values.slice(start, end - start).to_pylist() if tag)

    def similar(self, item_id: str) -> list[Scored]:
        row = self.index.get(item_id)
        if row is None:
            return []
        start, end = int(self.similar_offsets[row]), int(self.similar_offsets[row + 1])
        s_start, s_end = int(self.score_offsets[row]), int(self.score_offsets[row + 1])
        ids = self.similar_items.slice(start, end - start).to_pylist()
        return [
            Scored(i, s)
            for i, s in zip(ids, self.similar_scores[s_start:s_end].tolist(), strict=False)
            if i is not None
        ]


def _ordered_ranges(mins: list[str | None], maxes: list[str | None]) -> bool:
    """True if every range is known and both bounds are non-decreasing (row groups of a file sorted by the key)."""
    previous_low = previous_high = ""
    for low, high in zip(mins, maxes, strict=True):
        if low is None or high is None or low > high or low < previous_low or high < previous_high:
            return False
        previous_low, previous_high = low, high
    return True


@dataclass(frozen=True, eq=False)
class ImplicitFooter:
    """The implicit artifact's Parquet footer and the user_id range of each row group (from its statistics)."""

    size: int
    metadata: pq.FileMetaData
    mins: list[str | None]  # None: the row group has no usable statistics (it must be read to know)
    maxes: list[str | None]
    ordered: bool  # row groups are in user_id order with statistics: binary search applies
    nbytes: int

    @classmethod
    def from_metadata(cls, metadata: pq.FileMetaData, size: int) -> ImplicitFooter:
        mins: list[str | None] = []
        maxes: list[str | None] = []
        for group in range(metadata.num_row_groups):
            stats = metadata.row_group(group).column(0).statistics
            usable = stats is not None and stats.has_min_max and isinstance(stats.min, str)
            mins.append(stats.min if usable else None)
            maxes.append(stats.max if usable else None)
        ordered = _ordered_ranges(mins, maxes)
        strings = sum(sys.getsizeof(v) for v in mins + maxes)
        nbytes = metadata.serialized_size + strings + 16 * len(mins)
        return cls(size, metadata, mins, maxes, ordered, nbytes)

    def row_groups_for(self, user_id: str) -> list[int]:
        """The row groups whose [min, max] user_id range contains `user_id` (consecutive, as the file is sorted)."""
        metadata = self.metadata
        if self.ordered:
            first = bisect.bisect_left(self.maxes, user_id)  # type: ignore[arg-type]
            last = bisect.bisect_right(self.mins, user_id)  # type: ignore[arg-type]
            groups = range(first, last)
        else:
            groups = range(len(self.mins))
        return [
            g
            for g in groups
            if metadata.row_group(g).num_rows and (self.mins[g] is None or self.mins[g] <= user_id <= self.maxes[g])  # type: ignore[operator]
        ]


@dataclass(frozen=True, eq=False)
class UserRows:
    """One implicit row group: user -> (start, end) rows, each user's rows in rank order."""

    index: dict[str, tuple[int, int]]
    item_ids: pa.Array
    scores: np.ndarray
    counts: np.ndarray
    last_us: np.ndarray
    nbytes: int

    @classmethod
    def from_table(cls, table: pa.Table) -> UserRows:
        table, offsets, runs = _grouped(table, "user_id", "rank")
        bounds = offsets.tolist()
        index = {user: (bounds[run], bounds[run + 1]) for user, run in runs.items()}
        item_ids = _strings(table.column("item_id"))
        scores = _numbers(table.column("score"), np.float64)
        counts = _numbers(table.column("count"), np.int64)
        last_us = _numbers(table.column("last_ts").cast(pa.int64()), np.int64)
        nbytes = item_ids.nbytes + scores.nbytes + counts.nbytes + last_us.nbytes + _dict_nbytes(index, 100)
        return cls(index, item_ids, scores, counts, last_us, nbytes)

    def interactions(self, user_id: str) -> list[Interaction]:
        span = self.index.get(user_id)
        if span is None:
            return []
        start, end = span
        return [
            Interaction(item, score, count, last)
            for item, score, count, last in zip(
                self.item_ids.slice(start, end - start).to_pylist(),
                self.scores[start:end].tolist(),
                self.counts[start:end].tolist(),
                self.last_us[start:end].tolist(),
                strict=True,
            )
        ]


# --- reading artifacts -----------------------------------------------------------------------------------------


def _check_schema(kind: str, uri: str, schema: pa.Schema) -> None:
    expected = SCHEMAS[kind]
    if schema.names != expected.names:
        raise ArtifactIncompatible(
            f"{kind} artifact {uri} has columns {schema.names}, expected {expected.names}", kind=kind
        )
    written_as = (schema.metadata or {}).get(b"recsys.kind")
    if written_as is not None and written_as.decode(errors="replace") != kind:
        raise ArtifactIncompatible(
            f"{kind} artifact {uri} was written as {written_as.decode(errors='replace')}", kind=kind
        )
    try:
        schema.empty_table().cast(expected)
    except (pa.ArrowException, ValueError, TypeError) as err:
        raise ArtifactIncompatible(f"{kind} artifact {uri} has incompatible column types: {err}", kind=kind) from None


def _conform(kind: str, uri: str, table: pa.Table) -> pa.Table:
    _check_schema(kind, uri, table.schema)
    try:
        return table.cast(SCHEMAS[kind])
    except (pa.ArrowException, ValueError, TypeError) as err:
        raise ArtifactIncompatible(f"{kind} artifact {uri} cannot be read as its schema: {err}", kind=kind) from None


def load_artifact(kind: str, uri: str, store: ObjectStore, key: str) -> Any:
    """The loaded form of a whole-file kind (NotFound / StoreError from the store, ArtifactIncompatible)."""
    data = store.get(key).data
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError, ValueError) as err:
        raise ArtifactIncompatible(f"{kind} artifact {uri} is not readable Parquet: {err}", kind=kind) from None
    table = _conform(kind, uri, table)
    if kind == "popularity":
        return PopularityTable.from_table(table)
    if kind in ("cooc", "item_knn"):
        return NeighborTable.from_table(table, "neighbor_id")
    if kind == "session_seq":
        return NeighborTable.from_table(table, "next_item_id")
    if kind == "content_sim":
        return ContentTable.from_table(table)
    raise ValueError(f"{kind} is not loaded whole")


def load_implicit_footer(uri: str, store: ObjectStore, key: str) -> ImplicitFooter:
    """Open the implicit artifact through ranged reads: its size, then its footer (one read of the file's tail)."""
    file = StoreFile(store, key)
    try:
        parquet = pq.ParquetFile(file)
        schema = parquet.schema_arrow
    except (pa.ArrowException, OSError, ValueError) as err:
        raise ArtifactIncompatible(f"implicit artifact {uri} is not readable Parquet: {err}", kind="implicit") from None
    _check_schema("implicit", uri, schema)
    return ImplicitFooter.from_metadata(parquet.metadata, file.size)


def load_implicit_row_group(uri: str, store: ObjectStore, key: str, footer: ImplicitFooter, group: int) -> UserRows:
    """One row group, read by ranged reads of its column chunks only (the cached footer is not read again)."""
    file = StoreFile(store, key, size=footer.size)
    try:
        table = pq.ParquetFile(file, metadata=footer.metadata, pre_buffer=True).read_row_group(group, use_threads=False)
    except (pa.ArrowException, OSError, ValueError) as err:
        raise ArtifactIncompatible(
            f"implicit artifact {uri} row group {group} is unreadable: {err}", kind="implicit"
        ) from None
    return UserRows.from_table(_conform("implicit", uri, table))


# --- signals ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Failure:
    retry_at: float
    incompatible: str | None  # the ArtifactIncompatible message; None: the object is missing


class ArtifactSignals:
    """`Signals` over one manifest's artifacts, each kind loaded on first use (through the shared ArtifactCache).

    `available` = the known kinds the manifest names whose object exists: it probes each kind not loaded yet with
    one `size` request (cached). A missing object makes its kind unavailable (logged), an artifact that does not
    have its kind's schema raises ArtifactIncompatible from its lookups; both outcomes are remembered for
    `retry_after` seconds. Other store errors propagate and are not remembered.
    """

    def __init__(
        self,
        manifest: Manifest,
        cache: ArtifactCache,
        store_for_uri: StoreForUri,
        *,
        clock: Clock = time.monotonic,
        retry_after: float = DEFAULT_MANIFEST_TTL,
    ) -> None:
        self.manifest = manifest
        self.cache = cache
        self.store_for_uri = store_for_uri
        self.clock = clock
        self.retry_after = float(retry_after)
        self.uris = {kind: uri for kind, uri in manifest.current.items() if kind in SCHEMAS}
        ignored = sorted(set(manifest.current) - set(self.uris))
        if ignored:
            log.info("manifest names unknown artifact kinds", extra={"kinds": ignored})
        self._present: set[str] = set()
        self._failures: dict[str, _Failure] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        m = self.manifest
        return f"ArtifactSignals({m.tenant}/{m.surface} {m.manifest_version[:12]}, kinds={sorted(self.uris)})"

    # - availability and loading -

    @property
    def available(self) -> frozenset[str]:
        return frozenset(kind for kind in self.uris if self._exists(kind))

    def _exists(self, kind: str) -> bool:
        with self._lock:
            if kind in self._present:
                return True
            failure = self._failures.get(kind)
            if failure is not None and self.clock() < failure.retry_at:
                return failure.incompatible is not None  # present but unusable: lookups raise
        uri = self.uris[kind]
        if uri in self.cache:
            self._mark_present(kind)
            return True
        try:
            store, key = self.store_for_uri(uri)
            store.size(key)
        except NotFound:
            self._mark_missing(kind, uri)
            return False
        except (StoreError, ValueError) as err:
            # Unknown: say yes, and let the lookup report the error if it persists.
            log.warning("artifact probe failed", extra={"kind": kind, "uri": uri, "error": str(err)})
            return True
        self._mark_present(kind)
        return True

    def _mark_present(self, kind: str) -> None:
        with self._lock:
            self._present.add(kind)
            self._failures.pop(kind, None)

    def _mark_missing(self, kind: str, uri: str) -> None:
        log.warning("artifact object missing; signal unavailable", extra={"kind": kind, "uri": uri})
        with self._lock:
            self._present.discard(kind)
            self._failures[kind] = _Failure(self.clock() + self.retry_after, None)

    def _load(self, kind: str, key_suffix: Hashable | None, load: Callable[[ObjectStore, str], V]) -> V | None:
        """The cached value of `kind` (key_suffix None) or of one of its parts; None if the kind is unusable here."""
        uri = self.uris.get(kind)
        if uri is None:
            return None
        present = kind in self._present  # the common case: no failure to look at
        if not present:
            with self._lock:
                failure = self._failures.get(kind)
                if failure is not None and self.clock() < failure.retry_at:
                    if failure.incompatible is not None:
                        raise ArtifactIncompatible(failure.incompatible, kind=kind)
                    return None
        cache_key: Hashable = uri if key_suffix is None else (uri, key_suffix)

        def load_value() -> V:
            try:
                store, key = self.store_for_uri(uri)
            except ValueError as err:
                raise ArtifactIncompatible(f"{kind} artifact URI {uri} is not readable: {err}", kind=kind) from None
            return load(store, key)

        try:
            value = self.cache.get_or_load(cache_key, load_value)
        except NotFound:
            self._mark_missing(kind, uri)
            return None
        except ArtifactIncompatible as err:
            log.warning("artifact incompatible", extra={"kind": kind, "uri": uri, "error": str(err)})
            with self._lock:
                self._present.discard(kind)
                self._failures[kind] = _Failure(self.clock() + self.retry_after, str(err))
            raise
        if not present:
            self._mark_present(kind)
        return value

    def _whole(self, kind: str) -> Any:
        uri = self.uris.get(kind)
        return self._load(kind, None, lambda store, key: load_artifact(kind, uri or "", store, key))

    def _footer(self) -> ImplicitFooter | None:
        uri = self.uris.get("implicit", "")
        return self._load("implicit", None, lambda store, key: load_implicit_footer(uri, store, key))

    # - the Signals protocol -

    def popular(self, n: int) -> list[Scored]:
        table: PopularityTable | None = self._whole("popularity")
        return table.top(n) if table is not None else []

    def popularity_of(self, item_id: str) -> float:
        table: PopularityTable | None = self._whole("popularity")
        return table.score_of(item_id) if table is not None else 0.0

    def co_visited(self, item_id: str) -> list[Scored]:
        table: NeighborTable | None = self._whole("cooc")
        return table.scored(item_id) if table is not None else []

    def co_visit_counts(self, item_id: str) -> dict[str, int]:
        table: NeighborTable | None = self._whole("cooc")
        return table.counts_of(item_id) if table is not None else {}

    def next_items(self, item_id: str) -> list[Scored]:
        table: NeighborTable | None = self._whole("session_seq")
        return table.scored(item_id) if table is not None else []

    def item_neighbors(self, item_id: str) -> list[Scored]:
        table: NeighborTable | None = self._whole("item_knn")
        return table.scored(item_id) if table is not None else []

    def similar_by_tags(self, item_id: str) -> list[Scored]:
        table: ContentTable | None = self._whole("content_sim")
        return table.similar(item_id) if table is not None else []

    def tags(self, item_id: str) -> tuple[str, ...]:
        table: ContentTable | None = self._whole("content_sim")
        return table.tags(item_id) if table is not None else ()

    def user_items(self, user_id: str) -> list[Interaction]:
        footer = self._footer()
        if footer is None:
            return []
        uri = self.uris["implicit"]
        items: list[Interaction] = []
        for group in footer.row_groups_for(user_id):
            rows = self._load(
                "implicit",
                group,
                lambda store, key, g=group: load_implicit_row_group(uri, store, key, footer, g),
            )
            if rows is None:
                return []
            items.extend(rows.interactions(user_id))
        return items


# --- the reader ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedManifest:
    manifest: Manifest
    signals: ArtifactSignals
    stale: bool  # the manifest's refresh failed: this is the last good one
    fallback: bool = False  # the requested surface has no manifest: this is the "default" surface's


class ArtifactReader:
    """Manifests and artifacts for the API: one per process, shared by all requests (thread-safe).

    store_for_uri(uri) -> (store, key) resolves manifest and artifact URIs. Default: a StoreResolver rooted at
    `store_uri`; plain S3Store/FileSystemStore results of a given resolver are reused per root. `template` is
    RECSYS_ARTIFACT_MANIFEST_TEMPLATE: {store} becomes `store_uri` normalized to the store's absolute URI (what
    manifests record), {tenant} and {surface} safe path segments.
    """

    def __init__(
        self,
        store_for_uri: StoreForUri | None = None,
        template: str = DEFAULT_MANIFEST_TEMPLATE,
        store_uri: str | None = None,
        manifest_ttl: float = DEFAULT_MANIFEST_TTL,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        clock: Clock = time.monotonic,
        *,
        on_stale: OnStale | None = None,
        error_retry: float = DEFAULT_ERROR_RETRY,
    ) -> None:
        if "{tenant}" not in template or "{surface}" not in template:
            raise ValueError("the manifest template must contain {tenant} and {surface}")
        if "{store}" in template and not store_uri:
            raise ValueError("the manifest template uses {store} but no store URI is configured")
        self.template = template
        self.store_uri = open_store(store_uri).uri if store_uri else None
        self.store_for_uri: StoreForUri = _ReusingResolver(store_for_uri) if store_for_uri else StoreResolver(store_uri)
        self.clock = clock
        self.manifest_ttl = float(manifest_ttl)
        self.manifests = ManifestCache(
            self._fetch_manifest, ttl=manifest_ttl, clock=clock, on_stale=on_stale, error_retry=error_retry
        )
        self.artifacts = ArtifactCache(cache_bytes)
        self._signals: dict[tuple[str, str], ArtifactSignals] = {}
        self._lock = threading.Lock()

    def manifest_uri(self, tenant: str, surface: str) -> str:
        return manifest_uri(self.template, self.store_uri, tenant, surface)

    def _fetch_manifest(self, tenant: str, surface: str) -> bytes:
        store, key = self.store_for_uri(self.manifest_uri(tenant, surface))
        return store.get(key).data

    def signals(self, tenant: str, surface: str) -> LoadedManifest | None:
        """The surface's manifest and signals, else the `default` surface's; None when neither has a manifest.

        Raises ValueError (unsafe tenant/surface), ManifestIncompatible, or StoreError (no last good manifest).
        """
        safe_segment(tenant, "tenant")
        safe_segment(surface, "surface")
        fallback = False
        cached = self.manifests.get(tenant, surface)
        if cached is None and surface != FALLBACK_SURFACE:
            cached = self.manifests.get(tenant, FALLBACK_SURFACE)
            fallback = cached is not None
        if cached is None:
            return None
        return LoadedManifest(cached.manifest, self._signals_for(cached.manifest), cached.stale, fallback)

    def _signals_for(self, manifest: Manifest) -> ArtifactSignals:
        key = (manifest.tenant, manifest.surface)
        with self._lock:
            signals = self._signals.get(key)
            if signals is not None and signals.manifest.current == manifest.current:
                return signals
            signals = ArtifactSignals(
                manifest, self.artifacts, self.store_for_uri, clock=self.clock, retry_after=self.manifest_ttl
            )
            self._signals[key] = signals
            return signals

    def invalidate(self, tenant: str, surface: str | None = None, artifacts: bool = False) -> int:
        """Forget the tenant's manifests (one surface or all) and, with `artifacts`, every loaded artifact (of all
        tenants: they are shared by URI). Returns how many cache entries were dropped."""
        dropped = self.manifests.invalidate(tenant, surface)
        with self._lock:
            for key in [k for k in self._signals if k[0] == tenant and (surface is None or k[1] == surface)]:
                del self._signals[key]
        if artifacts:
            dropped += self.artifacts.invalidate_all()
        return dropped
