"""The serving side's artifact access: the current manifest of a (tenant, surface) and its artifacts, in memory.

  ArtifactReader      what the API holds (one per process): signals(tenant, surface) -> LoadedManifest | None
  ManifestCache       manifests per (tenant, surface) with a TTL, stale-if-error, cached misses, per-key refresh lock
  ArtifactCache       loaded artifacts by URI (immutable: no TTL), LRU within a byte budget
  ArtifactSignals     the `Signals` of one manifest, loading each kind on first use

Fixes over the seed's artifact mode: the last good manifest is served when a refresh fails (reported as stale),
misses are cached for the TTL too, artifact memory is bounded, concurrent misses load once, and the implicit
artifact is never loaded whole: a user's rows are read from the row groups whose user_id statistics contain them.

Loaded forms hold numpy/pyarrow arrays only: items as int32 codes into the table's own dictionary, neighbours in CSR
form, implicit users sorted for binary search. Each manifest's `ItemVocabulary` translates every table it uses once,
so a request unions and scores candidates as integer arrays (`ArtifactArrays`); Python objects are made per lookup
result, not per artifact row.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import json
import logging
import os
import re
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import ValidationError

from recsys.compute import EVENT_KINDS, content_sim
from recsys.contract.manifest import Manifest
from recsys.errors import RecsysError
from recsys.paths import safe_segment
from recsys.ranking.signals import EMPTY_HISTORY, History, Interaction, Scored
from recsys.serve.index import (
    ItemVocabulary,
    SortedStrings,
    Translation,
    dictionary_parts,
    gather_spans,
    plain_strings,
    smallest_codes,
    smallest_ints,
    strictly_ascending,
)
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
_CORES = os.cpu_count() or 1

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
    """An artifact (or manifest) exists but cannot be served. An artifact's kind is then skipped (`ArtifactSignals`
    lists it as `unreadable`); a manifest's is ManifestIncompatible, which the API answers with 422
    RECSYS_ARTIFACT_INCOMPATIBLE.

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

    def invalidate_uris(self, uris: Iterable[str]) -> int:
        """Drop the entries of these artifact URIs (whole artifacts and their parts); returns how many."""
        wanted = set(uris)
        with self._lock:
            keys = [key for key in self._entries if (key[0] if isinstance(key, tuple) else key) in wanted]
            for key in keys:
                self._bytes -= self._entries.pop(key)[1]
        return len(keys)


# --- loaded forms ----------------------------------------------------------------------------------------------


def _numbers(array: pa.Array | pa.ChunkedArray, dtype: Any, fill: Any = 0) -> np.ndarray:
    array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    if array.null_count:
        array = pc.fill_null(array, fill)
    return np.ascontiguousarray(array.to_numpy(zero_copy_only=False), dtype=dtype)


def _chunks(column: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    """A string column's chunks, dictionary-encoded (artifact item columns are read as dictionaries already)."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    return [chunk if pa.types.is_dictionary(chunk.type) else pc.dictionary_encode(chunk) for chunk in chunks]


def _shared_dictionary(*columns: pa.Array | pa.ChunkedArray) -> tuple[list[np.ndarray], pa.Array]:
    """Each string column as int32 codes into one dictionary of unique names (the table's local item ids)."""
    parts = [_chunks(column) for column in columns]
    lengths = [sum(len(chunk) for chunk in chunks) for chunks in parts]
    value_type = pa.dictionary(pa.int32(), pa.string())
    combined = pa.chunked_array(
        [chunk.cast(value_type) if chunk.type != value_type else chunk for chunks in parts for chunk in chunks],
        type=value_type,
    )
    codes, names = dictionary_parts(combined)
    if len(pc.unique(names)) != len(names):  # a dictionary page with repeated values: encode the decoded strings
        codes, names = dictionary_parts(pc.dictionary_encode(pc.take(names, pa.array(codes))))
    bounds = np.cumsum([0, *lengths])
    return [codes[bounds[i] : bounds[i + 1]] for i in range(len(columns))], names


def _grouped_offsets(codes: np.ndarray, ranks: np.ndarray) -> np.ndarray | None:
    """CSR offsets of the runs of equal consecutive codes (plus len(codes) at the end), or None unless every code
    has one run and ranks increase within each run (the order artifacts are written in)."""
    n = len(codes)
    if n == 0:
        return np.zeros(1, np.int64)
    starts = np.flatnonzero(np.concatenate(([True], codes[1:] != codes[:-1])))
    offsets = np.append(starts, n).astype(np.int64)
    if len(np.unique(codes[starts])) != len(starts):
        return None
    run_start = np.zeros(n, np.bool_)
    run_start[starts] = True
    if n > 1 and not bool(np.all((np.diff(ranks) > 0) | run_start[1:])):
        return None
    return offsets


def _sorted_by_key(table: pa.Table, key: str, columns: tuple[str, ...]) -> pa.Table:
    """The table sorted by (key, rank), its string columns decoded first: artifacts are written sorted like this, and
    one that is not is sorted here rather than misread."""
    for name in columns:
        index = table.schema.get_field_index(name)
        table = table.set_column(index, name, plain_strings(table.column(name)))
    return table.sort_by([(key, "ascending"), ("rank", "ascending")])


@dataclass(frozen=True, eq=False)
class PopularityTable:
    """popularity in rank order (score desc): row i is local item code i (`names`), first row of an item wins."""

    names: pa.Array
    keys: np.ndarray
    scores: np.ndarray
    counts: np.ndarray
    nbytes: int

    @classmethod
    def from_table(cls, table: pa.Table) -> PopularityTable:
        ranks = _numbers(table.column("rank"), np.int64)
        if len(ranks) > 1 and not bool(np.all(np.diff(ranks) >= 0)):
            table = table.sort_by("rank")
        names = plain_strings(table.column("item_id"))
        scores = _numbers(table.column("score"), np.float64)
        counts = _numbers(table.column("count"), np.int64)
        keys = np.arange(len(names), dtype=np.int32)
        nbytes = names.nbytes + keys.nbytes + scores.nbytes + counts.nbytes + 8 * len(names)  # + a translation
        return cls(names, keys, scores, counts, nbytes)

    def top(self, n: int) -> list[Scored]:
        n = max(0, min(int(n), len(self.scores)))
        return [Scored(i, s) for i, s in zip(self.names.slice(0, n).to_pylist(), self.scores[:n].tolist(), strict=True)]


@dataclass(frozen=True, eq=False)
class NeighborTable:
    """cooc / session_seq / item_knn in CSR form: rows offsets[g]:offsets[g+1] are group g's neighbours by rank.

    Items are int32 local codes into `names` (group g's item is keys[g]); `counts` only where a lookup needs them
    (cooc's co_visit_counts).
    """

    names: pa.Array
    keys: np.ndarray
    offsets: np.ndarray
    neighbors: np.ndarray
    scores: np.ndarray
    counts: np.ndarray | None
    nbytes: int

    @classmethod
    def from_table(cls, table: pa.Table, neighbor_column: str, *, counts: bool = True) -> NeighborTable:
        ranks = _numbers(table.column("rank"), np.int64)
        (key_codes, neighbors), names = _shared_dictionary(table.column("item_id"), table.column(neighbor_column))
        offsets = _grouped_offsets(key_codes, ranks)
        if offsets is None:
            table = _sorted_by_key(table, "item_id", ("item_id", neighbor_column))
            (key_codes, neighbors), names = _shared_dictionary(table.column("item_id"), table.column(neighbor_column))
            offsets = _grouped_offsets(key_codes, np.arange(len(key_codes)))
            assert offsets is not None
        keys = key_codes[offsets[:-1]]
        scores = _numbers(table.column("score"), np.float64)
        kept_counts = smallest_ints(_numbers(table.column("count"), np.int64)) if counts else None
        nbytes = (
            names.nbytes
            + keys.nbytes
            + offsets.nbytes
            + neighbors.nbytes
            + scores.nbytes
            + (kept_counts.nbytes if kept_counts is not None else 0)
            + 4 * len(names)
            + 4 * len(keys)  # a translation: a code per name, a key per code
        )
        return cls(names, keys, offsets, neighbors, scores, kept_counts, nbytes)

    def span(self, group: int) -> tuple[int, int]:
        return int(self.offsets[group]), int(self.offsets[group + 1])

    def scored(self, group: int) -> list[Scored]:
        start, end = self.span(group)
        ids = self.names.take(pa.array(self.neighbors[start:end])).to_pylist()
        return [Scored(i, s) for i, s in zip(ids, self.scores[start:end].tolist(), strict=True)]

    def counts_of(self, group: int) -> dict[str, int]:
        start, end = self.span(group)
        if self.counts is None:
            raise ValueError("this table was loaded without counts")
        ids = self.names.take(pa.array(self.neighbors[start:end])).to_pylist()
        return dict(zip(ids, self.counts[start:end].tolist(), strict=True))


def _list_parts(column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    lists = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if lists.null_count:
        lists = pc.fill_null(lists, pa.scalar([], lists.type))
    return _numbers(lists.offsets, np.int64), lists.values


@dataclass(frozen=True, eq=False)
class ContentTable:
    """content_sim: row r's item is keys[r] (local code into `names`); tags and similar items/scores as list offsets
    into flat arrays (similar items as local codes)."""

    names: pa.Array
    keys: np.ndarray
    tag_offsets: np.ndarray
    tag_values: pa.Array
    similar_offsets: np.ndarray
    similar_items: np.ndarray
    score_offsets: np.ndarray
    similar_scores: np.ndarray
    nbytes: int

    @classmethod
    def from_table(cls, table: pa.Table) -> ContentTable:
        tag_offsets, tag_values = _list_parts(table.column("tags"))
        similar_offsets, similar_values = _list_parts(table.column("similar_items"))
        score_offsets, score_values = _list_parts(table.column("similar_scores"))
        (keys, similar_items), names = _shared_dictionary(table.column("item_id"), similar_values)
        scores = _numbers(score_values, np.float64)
        tag_values = plain_strings(tag_values)
        nbytes = (
            names.nbytes
            + keys.nbytes
            + tag_offsets.nbytes
            + tag_values.nbytes
            + similar_offsets.nbytes
            + similar_items.nbytes
            + score_offsets.nbytes
            + scores.nbytes
            + 8 * len(names)  # a translation
        )
        return cls(names, keys, tag_offsets, tag_values, similar_offsets, similar_items, score_offsets, scores, nbytes)

    def tags(self, row: int) -> tuple[str, ...]:
        start, end = int(self.tag_offsets[row]), int(self.tag_offsets[row + 1])
        return tuple(tag for tag in self.tag_values.slice(start, end - start).to_pylist() if tag)

    def similar_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(item positions, score positions, source) of the similar items of rows (in order; -1: none): item j of a
        row pairs with its score j, up to the shorter of the two lists (like zip)."""
        present = np.flatnonzero(rows >= 0)
        chosen = rows[present]
        item_starts = self.similar_offsets[chosen]
        score_starts = self.score_offsets[chosen]
        item_lengths = self.similar_offsets[chosen + 1] - item_starts
        lengths = np.minimum(item_lengths, self.score_offsets[chosen + 1] - score_starts)
        within = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        items = np.repeat(item_starts, lengths) + within
        return items, np.repeat(score_starts, lengths) + within, np.repeat(present, lengths)

    def similar(self, row: int) -> list[Scored]:
        items, scores, _ = self.similar_rows(np.array([row]))
        ids = self.names.take(pa.array(self.similar_items[items])).to_pylist()
        return [Scored(i, s) for i, s in zip(ids, self.similar_scores[scores].tolist(), strict=True) if i is not None]


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
    """One implicit row group, compact: users sorted for binary search, each with its row span (rank order);
    items as uint16/int32 codes into the group's own dictionary; counts in the narrowest int type."""

    users: SortedStrings
    starts: np.ndarray
    ends: np.ndarray
    item_names: pa.Array
    items: np.ndarray
    scores: np.ndarray
    counts: np.ndarray
    last_us: np.ndarray
    nbytes: int

    @classmethod
    def from_table(cls, table: pa.Table) -> UserRows:
        ranks = _numbers(table.column("rank"), np.int64)
        user_codes, user_names = dictionary_parts(table.column("user_id"))
        offsets = _grouped_offsets(user_codes, ranks) if len(pc.unique(user_names)) == len(user_names) else None
        if offsets is None:
            table = _sorted_by_key(table, "user_id", ("user_id", "item_id"))
            user_codes, user_names = dictionary_parts(pc.dictionary_encode(table.column("user_id")))
            offsets = _grouped_offsets(user_codes, np.arange(len(user_codes)))
            assert offsets is not None
        users = user_names.take(pa.array(user_codes[offsets[:-1]]))
        starts, ends = offsets[:-1], offsets[1:]
        if not strictly_ascending(users):  # sort the users, not the rows (and drop a null user: never looked up)
            order = pc.sort_indices(users).to_numpy()
            order = order[np.asarray(users.take(pa.array(order)).is_valid(), dtype=bool)]
            users, starts, ends = users.take(pa.array(order)), starts[order], ends[order]
        items, item_names = dictionary_parts(table.column("item_id"))
        items = smallest_codes(items, len(item_names))
        scores = _numbers(table.column("score"), np.float64)
        counts = smallest_ints(_numbers(table.column("count"), np.int64))
        last_us = _numbers(table.column("last_ts").cast(pa.int64()), np.int64)
        index = SortedStrings(users)
        starts, ends = starts.astype(np.int32), ends.astype(np.int32)
        nbytes = (
            index.nbytes
            + starts.nbytes
            + ends.nbytes
            + item_names.nbytes
            + items.nbytes
            + scores.nbytes
            + counts.nbytes
            + last_us.nbytes
        )
        return cls(index, starts, ends, item_names, items, scores, counts, last_us, nbytes)

    def history(self, user_id: str) -> History | None:
        """The user's rows in this group (None if the group has none)."""
        position = self.users.find(user_id)
        if position < 0:
            return None
        start, end = int(self.starts[position]), int(self.ends[position])
        names = self.item_names.take(pa.array(self.items[start:end])).to_pylist()
        return History(names, self.scores[start:end], self.counts[start:end], self.last_us[start:end])

    def interactions(self, user_id: str) -> list[Interaction]:
        history = self.history(user_id)
        return history.interactions() if history is not None else []


# --- reading artifacts -----------------------------------------------------------------------------------------

DICTIONARY_COLUMNS: dict[str, list[str]] = {
    "cooc": ["item_id", "neighbor_id"],
    "item_knn": ["item_id", "neighbor_id"],
    "session_seq": ["item_id", "next_item_id"],
    "content_sim": ["item_id", "similar_items.list.element"],
    "implicit": ["user_id", "item_id"],
}
"""Item/user columns read as Arrow dictionaries: decoding is cheaper and the loaded forms keep codes anyway."""


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


def _as_read(actual: pa.DataType, expected: pa.DataType) -> bool:
    """True if a column of type `actual` is `expected` as read (a dictionary of it, or a list of such)."""
    if actual == expected:
        return True
    if pa.types.is_dictionary(actual):
        return actual.value_type == expected
    if pa.types.is_list(actual) and pa.types.is_list(expected):
        return _as_read(actual.value_type, expected.value_type)
    return False


def _conform(kind: str, uri: str, table: pa.Table) -> pa.Table:
    """The table with its kind's column types (dictionary-encoded string columns are kept as they are)."""
    _check_schema(kind, uri, table.schema)
    expected = SCHEMAS[kind]
    try:
        if all(_as_read(column.type, field.type) for field, column in zip(expected, table.columns, strict=True)):
            return table
        columns = [
            column if _as_read(column.type, field.type) else column.cast(field.type)
            for field, column in zip(expected, table.columns, strict=True)
        ]
        return pa.Table.from_arrays(columns, names=expected.names)
    except (pa.ArrowException, ValueError, TypeError) as err:
        raise ArtifactIncompatible(f"{kind} artifact {uri} cannot be read as its schema: {err}", kind=kind) from None


def load_artifact(kind: str, uri: str, store: ObjectStore, key: str) -> Any:
    """The loaded form of a whole-file kind (NotFound / StoreError from the store, ArtifactIncompatible)."""
    data = store.get(key).data
    try:
        schema = pq.ParquetFile(pa.BufferReader(data)).schema_arrow
        _check_schema(kind, uri, schema)
        table = pq.read_table(pa.BufferReader(data), read_dictionary=DICTIONARY_COLUMNS.get(kind))
    except (pa.ArrowException, OSError, ValueError) as err:
        raise ArtifactIncompatible(f"{kind} artifact {uri} is not readable Parquet: {err}", kind=kind) from None
    table = _conform(kind, uri, table)
    if kind == "popularity":
        return PopularityTable.from_table(table)
    if kind in ("cooc", "item_knn"):
        return NeighborTable.from_table(table, "neighbor_id", counts=kind == "cooc")
    if kind == "session_seq":
        return NeighborTable.from_table(table, "next_item_id", counts=False)
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
        parquet = pq.ParquetFile(
            file, metadata=footer.metadata, pre_buffer=True, read_dictionary=DICTIONARY_COLUMNS["implicit"]
        )
        table = parquet.read_row_group(group, use_threads=False)
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

    `available` = the known kinds the manifest names whose object exists and can be read: it probes each kind not
    loaded yet with one `size` request (cached). A missing object makes its kind unavailable; so does an artifact
    that cannot be read (not Parquet, truncated, not its kind's schema), which is also listed in `unreadable`. Either
    way the kind's lookups return nothing, the failure is logged once and remembered for `retry_after` seconds (not
    re-read per request), and the other kinds serve as usual. Other store errors propagate and are not remembered.

    Loaded tables keep their own item dictionaries (they are shared through the cache); `vocabulary` translates
    each one on first use, so `arrays()` (what ranking reads) works on one code space per manifest.
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
        self.vocabulary = ItemVocabulary()  # every kind's items, as codes ranking can union and index with
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

    @property
    def unreadable(self) -> frozenset[str]:
        """The kinds whose artifact exists but could not be read (within `retry_after` of the failure)."""
        now = self.clock()
        with self._lock:
            return frozenset(
                kind
                for kind, failure in self._failures.items()
                if failure.incompatible is not None and now < failure.retry_at
            )

    def _exists(self, kind: str) -> bool:
        with self._lock:
            if kind in self._present:
                return True
            failure = self._failures.get(kind)
            if failure is not None and self.clock() < failure.retry_at:
                return False  # missing, or present but unreadable
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
            # Skipped like a missing object: one broken kind must not fail the requests the others can serve.
            log.warning("artifact unreadable; signal unavailable", extra={"kind": kind, "uri": uri, "error": str(err)})
            with self._lock:
                self._present.discard(kind)
                self._failures[kind] = _Failure(self.clock() + self.retry_after, str(err))
            return None
        if not present:
            self._mark_present(kind)
        return value

    def unloaded(self, kinds: list[str]) -> list[str]:
        """The kinds of `kinds` in this manifest whose whole artifact is not in the cache (yet)."""
        return [kind for kind in kinds if kind in self.uris and self.uris[kind] not in self.cache]

    def _whole(self, kind: str) -> Any:
        uri = self.uris.get(kind)
        return self._load(kind, None, lambda store, key: load_artifact(kind, uri or "", store, key))

    def _translated(self, kind: str) -> tuple[Any, Translation] | None:
        """The kind's loaded table and its translation into `vocabulary`; None if the kind is unusable here."""
        table = self._whole(kind)
        return None if table is None else (table, self.vocabulary.translation(table))

    def _key(self, kind: str, item_id: str) -> tuple[Any, int] | None:
        """The kind's table and the row/group of `item_id` in it (None: no table or no such item)."""
        found = self._translated(kind)
        if found is None:
            return None
        table, translation = found
        key = translation.key_of(self.vocabulary.code(item_id))
        return None if key < 0 else (table, key)

    def _footer(self) -> ImplicitFooter | None:
        uri = self.uris.get("implicit", "")
        return self._load("implicit", None, lambda store, key: load_implicit_footer(uri, store, key))

    def arrays(self) -> ArtifactArrays:
        """A view for one request: lookups by item code over this manifest's vocabulary."""
        return ArtifactArrays(self)

    # - the Signals protocol -

    def popular(self, n: int) -> list[Scored]:
        table: PopularityTable | None = self._whole("popularity")
        return table.top(n) if table is not None else []

    def popularity_of(self, item_id: str) -> float:
        found = self._key("popularity", item_id)
        return float(found[0].scores[found[1]]) if found is not None else 0.0

    def co_visited(self, item_id: str) -> list[Scored]:
        found = self._key("cooc", item_id)
        return found[0].scored(found[1]) if found is not None else []

    def co_visit_counts(self, item_id: str) -> dict[str, int]:
        found = self._key("cooc", item_id)
        return found[0].counts_of(found[1]) if found is not None else {}

    def next_items(self, item_id: str) -> list[Scored]:
        found = self._key("session_seq", item_id)
        return found[0].scored(found[1]) if found is not None else []

    def item_neighbors(self, item_id: str) -> list[Scored]:
        found = self._key("item_knn", item_id)
        return found[0].scored(found[1]) if found is not None else []

    def similar_by_tags(self, item_id: str) -> list[Scored]:
        found = self._key("content_sim", item_id)
        return found[0].similar(found[1]) if found is not None else []

    def tags(self, item_id: str) -> tuple[str, ...]:
        found = self._key("content_sim", item_id)
        return found[0].tags(found[1]) if found is not None else ()

    def user_history(self, user_id: str) -> History:
        """The user's implicit rows (the row groups that can hold them, read on first use)."""
        footer = self._footer()
        if footer is None:
            return EMPTY_HISTORY
        uri = self.uris["implicit"]
        parts: list[History] = []
        for group in footer.row_groups_for(user_id):
            rows: UserRows | None = self._load(
                "implicit",
                group,
                lambda store, key, g=group: load_implicit_row_group(uri, store, key, footer, g),
            )
            if rows is None:
                return EMPTY_HISTORY
            part = rows.history(user_id)
            if part is not None:
                parts.append(part)
        return History.concat(parts)

    def user_items(self, user_id: str) -> list[Interaction]:
        return self.user_history(user_id).interactions()


class ArtifactArrays:
    """One request's view of ArtifactSignals as arrays (the `SignalArrays` ranking reads).

    Item codes are the manifest vocabulary's; an id no translated table holds gets a negative code private to this
    view, the same one every time it is asked (so request input never grows the shared vocabulary).
    """

    def __init__(self, signals: ArtifactSignals) -> None:
        self._signals = signals
        self._vocabulary = signals.vocabulary
        self.available = signals.available
        self._tables: dict[str, tuple[Any, Translation] | None] = {}
        self._private: dict[str, int] = {}
        self._private_names: list[str] = []

    @property
    def unreadable(self) -> frozenset[str]:
        return self._signals.unreadable  # live: a kind this request fails to load shows up at once

    def _table(self, kind: str) -> tuple[Any, Translation] | None:
        if kind not in self._tables:
            self._tables[kind] = self._signals._translated(kind)
        return self._tables[kind]

    def prepare(self, kinds: Iterable[str]) -> None:
        kinds = list(kinds)
        unloaded = self._signals.unloaded([kind for kind in dict.fromkeys(kinds) if kind not in self._tables])
        if len(unloaded) > 1 and _CORES > 1:
            # A cold start needs every kind at once: Parquet decoding and the numpy index builds release the GIL,
            # so the loads overlap on the cores there are (the cache loads each key once however many ask). Warm
            # requests find everything loaded and never start a thread.
            with ThreadPoolExecutor(max_workers=min(len(unloaded), _CORES)) as pool:
                loaded = list(pool.map(self._signals._translated, unloaded))
            self._tables.update(zip(unloaded, loaded, strict=True))
        for kind in kinds:
            self._table(kind)

    def codes(self, names: Iterable[str]) -> np.ndarray:
        private, code_of = self._private, self._vocabulary.code
        out = []
        for name in names:
            code = private.get(name)
            if code is None:
                code = code_of(name)
                if code < 0:
                    code = private[name] = -2 - len(self._private_names)
                    self._private_names.append(name)
            out.append(code)
        return np.array(out, dtype=np.int64)

    def names(self, codes: np.ndarray) -> list[str]:
        if len(codes) and codes.min() >= 0:  # the usual case: every id is in the vocabulary
            return self._vocabulary.names(codes)
        return [self.name(code) for code in codes.tolist()]

    def name(self, code: int) -> str:
        return self._vocabulary.name(code) if code >= 0 else self._private_names[-2 - code]

    def history(self, user_id: str) -> History:
        return self._signals.user_history(user_id)

    def popular(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        found = self._table("popularity")
        if found is None:
            return np.zeros(0, np.int64), np.zeros(0)
        table, translation = found
        n = max(0, min(int(n), len(table.scores)))
        return translation.codes[:n].astype(np.int64), table.scores[:n]

    def popularity_of(self, codes: np.ndarray) -> np.ndarray:
        out = np.zeros(len(codes))
        found = self._table("popularity")
        if found is not None:
            table, translation = found
            rows = translation.keys_of(codes)
            present = rows >= 0
            out[present] = table.scores[rows[present]]
        return out

    def neighbours(self, kind: str, sources: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        found = self._table(kind)
        if found is None or not sources:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
        table, translation = found
        keys = translation.keys_of(self.codes(sources))
        if kind == "content_sim":
            items, score_rows, source = table.similar_rows(keys)
            codes = translation.codes[table.similar_items[items]].astype(np.int64)
            scores = table.similar_scores[score_rows]
        else:
            rows, source = gather_spans(table.offsets, keys)
            codes = translation.codes[table.neighbors[rows]].astype(np.int64)
            scores = table.scores[rows]
        if not translation.complete:  # a null item id (never in a valid artifact) is skipped, like the lookups do
            named = codes >= 0
            source, codes, scores = source[named], codes[named], scores[named]
        return source, codes, scores

    def tags(self, item_id: str) -> tuple[str, ...]:
        return self._signals.tags(item_id)


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

    def invalidate_tenant_artifacts(self, tenant: str, surface: str | None = None) -> int:
        """Drop the loaded artifacts the tenant's manifests (one surface or all) name, not other tenants'. Call it
        before `invalidate`, which forgets those manifests. Returns how many cache entries were dropped."""
        with self._lock:
            uris = {
                uri
                for (owner, name), signals in self._signals.items()
                if owner == tenant and (surface is None or name == surface)
                for uri in signals.uris.values()
            }
        return self.artifacts.invalidate_uris(uris)
