"""The production signal path for ranking tests: small artifact tables of the real schemas, written as Parquet into
an in-memory store and read by the reader (`ArtifactSignals` -> `ArtifactArrays`, what the API ranks over).

    artifacts(
        popularity={"a": 10.0},                          # item -> decayed score
        cooc={"a": {"b": 0.5}},                          # item -> {neighbour: cosine}
        cooc_counts={"a": {"b": 3}},                     # item -> {neighbour: sessions} (default 1)
        implicit={"u1": {"h1": (2.0, 100)}},             # user -> {item: (score, last_us) | (score, count, last_us)}
        session_seq={"h1": {"s1": 0.6}},                 # item -> {next item: transition share}
        content_sim={"a": {"t1": 0.8}},                  # item -> {neighbour: tag cosine}
        item_knn={"h1": {"k1": 0.3}},                    # item -> {neighbour: shrunk cosine over shared users}
        tags={"a": ("brand:x",)},                        # item -> tags (rows of content_sim, like the artifact)
        unreadable={"cooc"},                             # these kinds' objects exist but are not Parquet
    )

A kind is in the manifest when its dict is given (content_sim: `content_sim` or `tags`) or it is `unreadable`.
Rows are ordered as compute orders them (best first per key, keys sorted). `Artifacts.calls` records the lookups
ranking made through the arrays (`popular`, `neighbours`), for tests of the work done.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator, Mapping
from typing import Any

import pyarrow as pa

from recsys.compute import content_sim as content_module
from recsys.compute import cooc as cooc_module
from recsys.compute import implicit as implicit_module
from recsys.compute import item_knn as knn_module
from recsys.compute import popularity as popularity_module
from recsys.compute import session_seq as session_module
from recsys.contract.manifest import Manifest, ManifestArtifact
from recsys.days import Window
from recsys.ranking.signals import SignalArrays
from recsys.serve.reader import ArtifactCache, ArtifactSignals
from recsys.store import Blob, NotFound, ObjectInfo, ObjectStore
from recsys.tables import to_parquet

WINDOW = Window(start=dt.date(2026, 1, 1), end=dt.date(2026, 1, 1))


class MemoryStore(ObjectStore):
    """Objects in a dict (reads only matter here)."""

    def __init__(self) -> None:
        self.uri = "mem://ranking-tests"
        self.objects: dict[str, bytes] = {}
        self.written: dict[str, dt.datetime] = {}

    def _data(self, key: str) -> bytes:
        if key not in self.objects:
            raise NotFound(f"{self.uri}/{key}")
        return self.objects[key]

    def get(self, key: str) -> Blob:
        return Blob(self._data(key), etag_of=lambda data: hashlib.md5(data).hexdigest())

    def head(self, key: str) -> str | None:
        return hashlib.md5(self.objects[key]).hexdigest() if key in self.objects else None

    def put(self, key: str, data: bytes, **kwargs: Any) -> str:
        self.objects[key] = bytes(data)
        self.written[key] = dt.datetime.now(dt.UTC)
        return hashlib.md5(data).hexdigest()

    def size(self, key: str) -> int:
        return len(self._data(key))

    def read_range(self, key: str, start: int, length: int) -> bytes:
        return self._data(key)[start : start + length]

    def list(self, prefix: str = "") -> Iterator[str]:
        return iter(sorted(key for key in self.objects if key.startswith(prefix)))

    def list_info(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return iter([ObjectInfo(key, len(self.objects[key]), self.written[key]) for key in self.list(prefix)])

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)
        self.written.pop(key, None)


def _best_first(scores: Mapping[str, float]) -> list[tuple[str, float]]:
    return sorted(((item, float(score)) for item, score in scores.items()), key=lambda kv: (-kv[1], kv[0]))


def _popularity(scores: Mapping[str, float]) -> pa.Table:
    rows = _best_first(scores)
    return pa.table(
        {
            "item_id": [item for item, _ in rows],
            "score": [score for _, score in rows],
            "count": [1] * len(rows),
            "rank": list(range(1, len(rows) + 1)),
        },
        schema=popularity_module.SCHEMA,
    )


def _neighbours(
    data: Mapping[str, Mapping[str, float]], schema: pa.Schema, column: str, counts: Mapping[str, Mapping[str, int]]
) -> pa.Table:
    columns: dict[str, list] = {"item_id": [], column: [], "count": [], "score": [], "rank": []}
    for item in sorted(data):
        for rank, (neighbour, score) in enumerate(_best_first(data[item]), start=1):
            columns["item_id"].append(item)
            columns[column].append(neighbour)
            columns["count"].append(counts.get(item, {}).get(neighbour, 1))
            columns["score"].append(score)
            columns["rank"].append(rank)
    return pa.table(columns, schema=schema)


def _content(similar: Mapping[str, Mapping[str, float]], tags: Mapping[str, tuple[str, ...]]) -> pa.Table:
    items = sorted(set(similar) | set(tags))
    lists = [_best_first(similar.get(item, {})) for item in items]
    return pa.table(
        {
            "item_id": items,
            "tags": [list(tags.get(item, ())) for item in items],
            "similar_items": [[neighbour for neighbour, _ in rows] for rows in lists],
            "similar_scores": [[score for _, score in rows] for rows in lists],
        },
        schema=content_module.SCHEMA,
    )


def _implicit(users: Mapping[str, Mapping[str, tuple]]) -> pa.Table:
    columns: dict[str, list] = {"user_id": [], "item_id": [], "score": [], "count": [], "last_ts": [], "rank": []}
    for user in sorted(users):
        rows = []
        for item, row in users[user].items():
            score, count, last_us = (row[0], 1, row[1]) if len(row) == 2 else row
            rows.append((item, float(score), int(count), int(last_us)))
        rows.sort(key=lambda r: (-r[1], -r[3], r[0]))
        for rank, (item, score, count, last_us) in enumerate(rows, start=1):
            for name, value in zip(columns, (user, item, score, count, last_us, rank), strict=True):
                columns[name].append(value)
    return pa.table(columns, schema=implicit_module.SCHEMA)


class Artifacts:
    """One manifest's artifacts as the API reads them; `arrays()` is one request's view (recording its lookups)."""

    def __init__(self, signals: ArtifactSignals) -> None:
        self.signals = signals
        self.calls: list[tuple[str, object]] = []

    @property
    def available(self) -> frozenset[str]:
        return self.signals.available

    def arrays(self) -> SignalArrays:
        return _Recorded(self.signals.arrays(), self.calls)


class _Recorded:
    """Passes everything to the real arrays, noting the lookups that propose candidates."""

    def __init__(self, inner: SignalArrays, calls: list[tuple[str, object]]) -> None:
        self._inner = inner
        self._calls = calls

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def popular(self, n: int) -> Any:
        self._calls.append(("popular", n))
        return self._inner.popular(n)

    def neighbours(self, kind: str, sources: list[str]) -> Any:
        self._calls.append((kind, list(sources)))
        return self._inner.neighbours(kind, sources)


def artifacts(
    *,
    popularity: Mapping[str, float] | None = None,
    cooc: Mapping[str, Mapping[str, float]] | None = None,
    cooc_counts: Mapping[str, Mapping[str, int]] | None = None,
    implicit: Mapping[str, Mapping[str, tuple]] | None = None,
    session_seq: Mapping[str, Mapping[str, float]] | None = None,
    content_sim: Mapping[str, Mapping[str, float]] | None = None,
    tags: Mapping[str, tuple[str, ...] | list[str]] | None = None,
    item_knn: Mapping[str, Mapping[str, float]] | None = None,
    unreadable: set[str] | frozenset[str] = frozenset(),
) -> Artifacts:
    tables: dict[str, pa.Table] = {}
    if popularity is not None:
        tables["popularity"] = _popularity(popularity)
    if cooc is not None or cooc_counts is not None:
        neighbours = cooc if cooc is not None else {k: dict.fromkeys(v, 0.0) for k, v in (cooc_counts or {}).items()}
        tables["cooc"] = _neighbours(neighbours, cooc_module.SCHEMA, "neighbor_id", cooc_counts or {})
    if implicit is not None:
        tables["implicit"] = _implicit(implicit)
    if session_seq is not None:
        tables["session_seq"] = _neighbours(session_seq, session_module.SCHEMA, "next_item_id", {})
    if content_sim is not None or tags is not None:
        tables["content_sim"] = _content(content_sim or {}, {k: tuple(v) for k, v in (tags or {}).items()})
    if item_knn is not None:
        tables["item_knn"] = _neighbours(item_knn, knn_module.SCHEMA, "neighbor_id", {})
    store = MemoryStore()
    current: dict[str, str] = {}
    entries: dict[str, ManifestArtifact] = {}
    for kind in sorted(set(tables) | set(unreadable)):
        if kind in unreadable:
            data = b"not a parquet file"
        else:
            data = to_parquet(tables[kind], tables[kind].schema, kind=kind, canonical=True)
        version = hashlib.sha256(data).hexdigest()
        key = f"artifacts/test/home/{kind}/{version}.parquet"
        store.put(key, data)
        current[kind] = store.url(key)
        entries[kind] = ManifestArtifact(
            version=version, uri=current[kind], window=WINDOW, rows=0, keys=0, bytes=len(data)
        )
    manifest = Manifest(
        tenant="test",
        surface="home",
        current=current,
        updated_at="2026-01-02T00:00:00Z",
        manifest_version=hashlib.sha256(repr(sorted(current.items())).encode()).hexdigest(),
        window=WINDOW,
        artifacts=entries,
    )
    return Artifacts(ArtifactSignals(manifest, ArtifactCache(), store))
