"""The signals of one manifest: each kind's artifact loaded on first use, and the array view ranking reads.

ArtifactSignals   `Signals` over one manifest's artifacts, with a memo of the kinds that failed to load
ArtifactArrays    one request's view of them as arrays over the manifest's item codes (`SignalArrays`)
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from recsys.compute import KINDS  # the registry, with the built-in kinds registered
from recsys.contract.manifest import Manifest
from recsys.ranking.signals import EMPTY_HISTORY, History, Interaction, Scored
from recsys.serve.index import ItemVocabulary, Translation, gather_spans
from recsys.serve.observability import logger as log
from recsys.serve.reader.cache import ArtifactCache, V
from recsys.serve.reader.errors import ArtifactIncompatible
from recsys.serve.reader.forms import ImplicitFooter, PopularityTable, UserRows
from recsys.serve.reader.loading import load_artifact, load_footer, load_row_group
from recsys.serve.reader.manifests import Clock
from recsys.serve.settings import DEFAULT_MANIFEST_TTL
from recsys.store import NotFound, ObjectStore, StoreError

_CORES = os.cpu_count() or 1


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

    Artifact URIs are read from `store` (`store.key_of(uri)`); a URI outside it is unreadable, like a broken
    artifact. `loaded(kind)` is any registered kind's in-memory form (recsys.serve.reader.loading.FORMS).
    """

    def __init__(
        self,
        manifest: Manifest,
        cache: ArtifactCache,
        store: ObjectStore,
        *,
        clock: Clock = time.monotonic,
        retry_after: float = DEFAULT_MANIFEST_TTL,
    ) -> None:
        self.manifest = manifest
        self.cache = cache
        self.store = store
        self.clock = clock
        self.retry_after = float(retry_after)
        self.uris = {kind: uri for kind, uri in manifest.current.items() if kind in KINDS}
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
            self.store.size(self.store.key_of(uri))
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
            return self._read(kind, uri, load)

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

    def _read(self, kind: str, uri: str, load: Callable[[ObjectStore, str], V]) -> V:
        """Run `load` on the artifact's store key (a subclass reading elsewhere overrides this)."""
        try:
            key = self.store.key_of(uri)
        except ValueError as err:
            raise ArtifactIncompatible(f"{kind} artifact URI {uri} is not readable: {err}", kind=kind) from None
        return load(self.store, key)

    def unloaded(self, kinds: list[str]) -> list[str]:
        """The kinds of `kinds` in this manifest whose whole artifact is not in the cache (yet)."""
        return [kind for kind in kinds if kind in self.uris and self.uris[kind] not in self.cache]

    def _whole(self, kind: str) -> Any:
        uri = self.uris.get(kind)
        return self._load(kind, None, lambda store, key: load_artifact(kind, uri or "", store, key))

    def loaded(self, kind: str) -> Any:
        """The kind's in-memory form, loaded whole on first use (its entry's `form`); None if it is unusable here."""
        return self._whole(kind)

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
        return self._load("implicit", None, lambda store, key: load_footer("implicit", uri, store, key))

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
                lambda store, key, g=group: load_row_group("implicit", uri, store, key, footer, g),
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
