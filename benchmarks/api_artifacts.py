"""A serving store for the API benchmark: artifacts for 100k items and 1M users, SYNTHESIZED, not computed.

Running 1M users through the pipeline would take a 30-day window of ~10M events a day, far beyond a benchmark's
budget, so the artifact tables are generated directly with the documented schemas (recsys.compute.<kind>.SCHEMA),
sorted as the pipeline writes them, then stored with the pipeline's own writer (recsys.tables.to_parquet: zstd,
65,536-row row groups, statistics), content versions (recsys.tables.content_version) and a manifest
(recsys.publish.manifest.build_manifest) moved into registry/current/. The API reads them exactly as it reads
pipeline output.

Shapes (deterministic, seeded):
  popularity   the 1000 most popular items (popularity_top_n), Zipf scores
  cooc         per item: 50 neighbours (cooc_top_k) for the 20% most popular items, 5-25 for the others
  item_knn     the same distribution (item_knn_top_k 50)
  session_seq  per item: 25 successors for the 20% most popular items, 3-12 for the others
  content_sim  every item: 3 tags, 50 similar items for the 20% most popular, 5-25 for the others
  implicit     every user: geometric(mean 20) items, at most 200; ~20M rows
Neighbours and histories are popularity-weighted picks (Zipf 1.1), deduplicated, ranked by a random score.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from common import SURFACE, TENANT
from datasets import CACHE

from recsys_tools.synthetic.bulk import padded

VERSION = 1


@dataclass(frozen=True)
class ApiSpec:
    items: int = 100_000
    users: int = 1_000_000
    mean_history: float = 20.0
    max_history: int = 200
    seed: int = 11
    zipf: float = 1.1

    def key(self) -> str:
        text = json.dumps({"v": VERSION, **asdict(self)}, sort_keys=True)
        digest = hashlib.sha256(text.encode()).hexdigest()[:10]
        return f"api-{self.items // 1000}k-items-{self.users // 1000}k-users-{digest}"


def item_ids(indices: np.ndarray) -> pa.Array:
    return padded(indices, "i", 5)


def user_ids(indices: np.ndarray) -> pa.Array:
    return padded(indices, "u", 7)


class _World:
    def __init__(self, spec: ApiSpec) -> None:
        self.spec = spec
        self.rng = np.random.default_rng([spec.seed, 1])
        n = spec.items
        self.popularity = np.empty(n)
        self.by_rank = self.rng.permutation(n)  # by_rank[r] = item of popularity rank r
        self.popularity[self.by_rank] = 1.0 / np.arange(1, n + 1) ** spec.zipf
        self.rank_of = np.empty(n, np.int64)
        self.rank_of[self.by_rank] = np.arange(n)
        self.cum = np.cumsum(self.popularity)

    def pick(self, size: int) -> np.ndarray:
        u = self.rng.random(size) * self.cum[-1]
        return np.minimum(np.searchsorted(self.cum, u, side="right"), self.spec.items - 1)

    def neighbor_counts(self, top: int, low: int, high: int) -> np.ndarray:
        head = self.rank_of < self.spec.items // 5
        return np.where(head, top, self.rng.integers(low, high + 1, self.spec.items))

    def pairs(self, owners: np.ndarray, counts: np.ndarray, exclude_self: bool) -> tuple[np.ndarray, np.ndarray]:
        """Distinct (owner, item) pairs, `counts[o]` popularity picks per owner (fewer after dedup), sorted."""
        owner = np.repeat(owners, counts)
        item = self.pick(len(owner))
        if exclude_self:  # neighbour tables: never the item itself
            item = np.where(item == owner, (item + 1) % self.spec.items, item)
        code = np.unique(owner.astype(np.int64) * self.spec.items + item)
        return code // self.spec.items, code % self.spec.items


def _ranked(owner: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random score per row, rows ordered by (owner asc, score desc), and each row's 1-based rank."""
    score = rng.random(len(owner))
    order = np.lexsort((-score, owner))
    owner_sorted = owner[order]
    starts = np.flatnonzero(np.concatenate([[True], owner_sorted[1:] != owner_sorted[:-1]]))
    lengths = np.diff(np.append(starts, len(owner)))
    rank = np.arange(len(owner)) - np.repeat(starts, lengths) + 1
    return order, score[order], rank


def neighbor_table(world: _World, counts: np.ndarray, neighbor_column: str, kind: str) -> pa.Table:
    from recsys.compute import EVENT_KINDS

    owner, neighbor = world.pairs(np.arange(world.spec.items), counts, exclude_self=True)
    order, score, rank = _ranked(owner, world.rng)
    owner, neighbor = owner[order], neighbor[order]
    count = np.ceil(score * 100).astype(np.int64) + 1
    if kind == "session_seq":  # score = share of transitions out of the item
        totals = np.bincount(owner, weights=count, minlength=world.spec.items)
        score = count / totals[owner]
    return pa.table(
        {
            "item_id": item_ids(owner),
            neighbor_column: item_ids(neighbor),
            "count": count,
            "score": score,
            "rank": rank.astype(np.int32),
        },
        schema=EVENT_KINDS[kind].SCHEMA,
    )


def popularity_table(world: _World, top_n: int = 1000) -> pa.Table:
    from recsys.compute import popularity

    items = world.by_rank[:top_n]
    score = world.popularity[items] * 1e6
    return pa.table(
        {
            "item_id": item_ids(items),
            "score": score,
            "count": np.ceil(score * 1.3).astype(np.int64),
            "rank": np.arange(1, len(items) + 1, dtype=np.int32),
        },
        schema=popularity.SCHEMA,
    )


def implicit_table(world: _World, end: dt.date) -> pa.Table:
    from recsys.compute import implicit

    spec = world.spec
    counts = np.minimum(world.rng.geometric(1.0 / spec.mean_history, spec.users), spec.max_history)
    owner, item = world.pairs(np.arange(spec.users), counts, exclude_self=False)
    order, score, rank = _ranked(owner, world.rng)
    owner, item = owner[order], item[order]
    end_us = int(dt.datetime(end.year, end.month, end.day, tzinfo=dt.UTC).timestamp()) * 1_000_000
    last = end_us - (world.rng.random(len(owner)) * 30 * 86_400e6).astype(np.int64)
    return pa.table(
        {
            "user_id": user_ids(owner),
            "item_id": item_ids(item),
            "score": score * 20,
            "count": world.rng.integers(1, 11, len(owner)),
            "last_ts": pa.array(last, pa.timestamp("us", tz="UTC")),
            "rank": rank.astype(np.int32),
        },
        schema=implicit.SCHEMA,
    )


def content_table(world: _World) -> pa.Table:
    from recsys.compute import content_sim

    n = world.spec.items
    group = world.rng.integers(0, 100, n)
    brand = group * 3 + world.rng.integers(0, 3, n)
    style = group * 2 + world.rng.integers(0, 2, n)

    def tag(prefix: str, values: np.ndarray) -> pa.Array:
        return pc.binary_join_element_wise(pa.scalar(prefix), pc.cast(pa.array(values), pa.string()), "")

    # Each item's tags sorted, as catalog.read_catalog leaves them: brand < category < style.
    stacked = pa.concat_arrays([tag("brand:b", brand), tag("category:c", group), tag("style:s", style)])
    tags_flat = stacked.take(pa.array((np.arange(n)[:, None] + np.array([0, n, 2 * n])[None, :]).ravel()))
    tag_offsets = pa.array(np.arange(0, 3 * n + 1, 3, dtype=np.int32))
    counts = world.neighbor_counts(50, 5, 25)
    owner, similar = world.pairs(np.arange(n), counts, exclude_self=True)
    order, score, _ = _ranked(owner, world.rng)
    owner, similar = owner[order], similar[order]
    offsets = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=n))]).astype(np.int32)
    return pa.table(
        {
            "item_id": item_ids(np.arange(n)),
            "tags": pa.ListArray.from_arrays(tag_offsets, tags_flat),
            "similar_items": pa.ListArray.from_arrays(pa.array(offsets), item_ids(similar)),
            "similar_scores": pa.ListArray.from_arrays(pa.array(offsets), pa.array(score)),
        },
        schema=content_sim.SCHEMA,
    )


def ensure_api_store(spec: ApiSpec | None = None, cache: Path = CACHE, log=None) -> dict:
    """The bench store for `spec` (built once, cached): {"store": file URI, "root": Path, "summary": {...}}."""
    spec = spec or ApiSpec()
    from recsys import paths
    from recsys.contract.manifest import ArtifactRef
    from recsys.days import Window
    from recsys.publish.manifest import build_manifest
    from recsys.store import FileSystemStore
    from recsys.tables import content_version, to_parquet

    root = cache / spec.key()
    stamp = root / "ready.json"
    if stamp.is_file():
        return {"root": root / "store", "store": f"file://{root / 'store'}", "summary": json.loads(stamp.read_text())}
    started = time.perf_counter()
    store = FileSystemStore(root / "store")
    world = _World(spec)
    end = dt.date(2026, 1, 30)
    window = Window(start=end - dt.timedelta(days=29), end=end)
    builders = {
        "popularity": lambda: popularity_table(world),
        "cooc": lambda: neighbor_table(world, world.neighbor_counts(50, 5, 25), "neighbor_id", "cooc"),
        "item_knn": lambda: neighbor_table(world, world.neighbor_counts(50, 5, 25), "neighbor_id", "item_knn"),
        "session_seq": lambda: neighbor_table(world, world.neighbor_counts(25, 3, 12), "next_item_id", "session_seq"),
        "content_sim": lambda: content_table(world),
        "implicit": lambda: implicit_table(world, end),
    }
    refs, summary = [], {"spec": asdict(spec), "kinds": {}}
    for kind, build in builders.items():
        t0 = time.perf_counter()
        table = build()
        schema = table.schema
        version = content_version(table, schema)
        data = to_parquet(table, schema, kind=kind)
        key = paths.artifact(TENANT, SURFACE, kind, version)
        store.create(key, data, content_type="application/vnd.apache.parquet")
        keys = pc.count_distinct(table.column(0)).as_py()
        refs.append(
            ArtifactRef(
                kind=kind,
                version=version,
                uri=store.url(key),
                window=window,
                rows=table.num_rows,
                keys=keys,
                bytes=len(data),
            )
        )
        summary["kinds"][kind] = {"rows": table.num_rows, "keys": keys, "bytes": len(data)}
        if log:
            took = time.perf_counter() - t0
            log(f"api store: {kind} {table.num_rows:,} rows, {len(data) / 1e6:.1f} MB ({took:.1f}s)")
    manifest = build_manifest(TENANT, SURFACE, window, refs, previous=None, run_id="bench-synthetic")
    store.put(paths.manifest_version(TENANT, SURFACE, manifest.manifest_version), manifest.to_bytes())
    store.put(paths.current_manifest(TENANT, SURFACE), manifest.to_bytes(), content_type="application/json")
    summary["seconds"] = round(time.perf_counter() - started, 1)
    summary["manifest_version"] = manifest.manifest_version
    stamp.write_text(json.dumps(summary, indent=2))
    return {"root": root / "store", "store": f"file://{root / 'store'}", "summary": summary}


if __name__ == "__main__":
    import sys

    from common import log as _log

    result = ensure_api_store(log=_log)
    print(json.dumps({"store": result["store"], **result["summary"]}, indent=2), file=sys.stdout)
