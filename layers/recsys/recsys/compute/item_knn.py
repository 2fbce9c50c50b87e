"""Item kNN: item-to-item collaborative similarity from USER histories over the window (not sessions).

Only events with a non-null user_id contribute. U_i is the set of distinct users who interacted with item i in the
window (any event type, not weighted, not decayed). Each user counts at most item_knn_max_items_per_user items:
their most-interacted ones, "most" meaning on the most UTC days of the window (ties: item_id asc). That bounds the
self-join on user to max_items_per_user ** 2 rows per user; U_i, and so |U_i|, are taken after this cap. The join
runs on int32 codes of the ids, over batches of users of about JOIN_BATCH_ROWS joined rows (memory, not results).

  count(i, j) = |U_i ∩ U_j|                                   users of the window who interacted with both
  score(i, j) = count(i, j) / (sqrt(|U_i| · |U_j|) + item_knn_shrink)

The shrinkage term pulls the cosine of pairs seen by few users towards 0 (a pair shared by 2 of 2 users scores
2 / (2 + 10) = 0.17 with the default shrink, one shared by 40 of 40 users 40 / (40 + 10) = 0.8); with shrink 0 the
score is the plain cosine. Scores are symmetric: score(i, j) = score(j, i).

PARTIAL_SCHEMA (one UTC day), sorted by user_id, item_id:
  user_id  string not null
  item_id  string not null         one row per distinct (user, item) pair of the day

SCHEMA (the artifact), sorted by item_id, rank:
  item_id      string not null
  neighbor_id  string not null   never item_id itself
  count        int64             users of the window who interacted with both items, |U_i ∩ U_j|
  score        float64           count / (sqrt(|U_item_id| * |U_neighbor_id|) + item_knn_shrink)
  rank         int32             1-based per item_id; score desc, count desc, neighbor_id asc

Pairs with count < item_knn_min_support are dropped, then at most item_knn_top_k neighbours are kept per item;
items whose neighbours were all dropped have no rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recsys.compute.artifact import NEIGHBOR_SCHEMA, stack, top_k_per_group
from recsys.days import Window
from recsys.settings import ComputeParams

KIND = "item_knn"

PARTIAL_SCHEMA = pa.schema(
    [
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("item_id", pa.string(), nullable=False),
    ]
)

SCHEMA = NEIGHBOR_SCHEMA

# The user self-join runs over batches of users of about this many joined rows (memory, not results).
JOIN_BATCH_ROWS = 20_000_000

# Bumped whenever partial() changes meaning, so cached partials of the old algorithm are not reused.
PARTIAL_ALGORITHM = 1


def partial_params(params: ComputeParams, event_weights: dict[str, float]) -> dict:
    # The per-user cap, support, shrink and top-k apply in build: a day's partial depends on none of the knobs.
    return {"algorithm": PARTIAL_ALGORITHM}


def partial(events: pa.Table, params: ComputeParams, event_weights: dict[str, float]) -> pa.Table:
    known = events.filter(pc.is_valid(events.column("user_id")))
    pairs = known.group_by(["user_id", "item_id"], use_threads=False).aggregate([])
    out = pa.table({"user_id": pairs.column("user_id"), "item_id": pairs.column("item_id")})
    return out.sort_by([("user_id", "ascending"), ("item_id", "ascending")]).cast(PARTIAL_SCHEMA)


def _user_items(partials: Sequence[tuple[dt.date, pa.Table]], params: ComputeParams) -> pa.Table:
    """Distinct (user_id, item_id) of the window, each user capped to their items on the most days."""
    merged = stack([table for _, table in partials], PARTIAL_SCHEMA)
    days = merged.group_by(["user_id", "item_id"], use_threads=False).aggregate([([], "count_all")])
    days = pa.table(
        {"user_id": days.column("user_id"), "item_id": days.column("item_id"), "days": days.column("count_all")}
    )
    capped = top_k_per_group(
        days, "user_id", [("days", "descending"), ("item_id", "ascending")], params.item_knn_max_items_per_user
    )
    return capped.select(["user_id", "item_id"])


def _user_batches(coded: pa.Table) -> list[pa.Table]:
    """`coded` sorted by user and cut between users so that each slice self-joins to about JOIN_BATCH_ROWS rows
    at most (one user alone joins to at most item_knn_max_items_per_user ** 2 rows)."""
    if coded.num_rows == 0:
        return []
    coded = coded.sort_by("user")
    sizes = coded.group_by("user", use_threads=False).aggregate([([], "count_all")]).sort_by("user")
    size = sizes.column("count_all").to_numpy()
    ends = np.cumsum(size)
    joined_before = np.cumsum(size * size) - size * size
    batch = joined_before // JOIN_BATCH_ROWS  # non-decreasing: a batch is a run of users
    last = np.flatnonzero(np.append(batch[1:] != batch[:-1], True))  # each batch's last user
    starts = np.concatenate([[0], ends[last][:-1]])
    return [coded.slice(int(start), int(end - start)) for start, end in zip(starts, ends[last], strict=True)]


def _co_counts(coded: pa.Table) -> pa.Table:
    """(item, neighbor, count) with item < neighbor: users shared by the pair, by a self-join on user.

    The join produces one row per (user, item, neighbour); it runs over batches of users so that memory stays
    bounded, and the batches' counts are summed (integers: the result does not depend on the batching).
    """
    schema = pa.schema([("item", pa.int32()), ("neighbor", pa.int32()), ("count", pa.int64())])
    batches = []
    for part in _user_batches(coded):
        joined = part.join(part.rename_columns(["user", "neighbor"]), keys="user", join_type="inner")
        upper = joined.filter(pc.less(joined.column("item"), joined.column("neighbor")))
        counts = upper.group_by(["item", "neighbor"], use_threads=False).aggregate([([], "count_all")])
        batches.append(counts.select(["item", "neighbor", "count_all"]).rename_columns(schema.names).cast(schema))
    if len(batches) <= 1:
        return batches[0] if batches else schema.empty_table()
    summed = pa.concat_tables(batches).group_by(["item", "neighbor"], use_threads=False).aggregate([("count", "sum")])
    return summed.select(["item", "neighbor", "count_sum"]).rename_columns(schema.names).cast(schema)


def build(partials: Sequence[tuple[dt.date, pa.Table]], window: Window, params: ComputeParams) -> pa.Table:
    pairs = _user_items(partials, params)
    # The self-join and the pair counts run on int32 codes (dictionary indices), not strings: far less memory.
    users_encoded = pc.dictionary_encode(pairs.column("user_id").combine_chunks())
    items_encoded = pc.dictionary_encode(pairs.column("item_id").combine_chunks())
    items = items_encoded.dictionary
    coded = pa.table({"user": users_encoded.indices, "item": items_encoded.indices})
    users = coded.group_by("item", use_threads=False).aggregate([([], "count_all")])
    users = pa.table({"item": users.column("item"), "users": users.column("count_all")})

    upper = _co_counts(coded)
    upper = upper.filter(pc.greater_equal(upper.column("count"), params.item_knn_min_support))
    lower = upper.select(["neighbor", "item", "count"]).rename_columns(["item", "neighbor", "count"])
    both = pa.concat_tables([upper, lower])
    both = both.join(users, keys="item", join_type="inner")
    both = both.join(users.rename_columns(["neighbor", "neighbor_users"]), keys="neighbor", join_type="inner")

    denominator = pc.add(
        pc.sqrt(pc.multiply(both.column("users").cast(pa.float64()), both.column("neighbor_users").cast(pa.float64()))),
        float(params.item_knn_shrink),
    )
    scored = pa.table(
        {
            "item_id": pc.take(items, both.column("item")),
            "neighbor_id": pc.take(items, both.column("neighbor")),
            "count": both.column("count"),
            "score": pc.divide(both.column("count").cast(pa.float64()), denominator),
        }
    )
    top = top_k_per_group(
        scored,
        "item_id",
        [("score", "descending"), ("count", "descending"), ("neighbor_id", "ascending")],
        params.item_knn_top_k,
    )
    return top.cast(SCHEMA)
