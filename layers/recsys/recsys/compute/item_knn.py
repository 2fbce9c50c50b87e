"""Item kNN: item-to-item collaborative similarity from USER histories over the window (not sessions).

Only events with a non-null user_id contribute. U_i is the set of distinct users who interacted with item i in the
window (any event type, not weighted, not decayed). Each user counts at most item_knn_max_items_per_user items:
their most-interacted ones, "most" meaning on the most UTC days of the window (ties: item_id asc). That bounds the
pairs to max_items_per_user ** 2 / 2 per user; U_i, and so |U_i|, are taken after this cap. Pairs are counted on
int codes of the ids (recsys.compute.pairs), by ranges of items (memory, not results).

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
import sys
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recsys.compute import pairs
from recsys.compute.artifact import NEIGHBOR_SCHEMA
from recsys.compute.window_sum import WindowSum
from recsys.contract.kinds import KINDS, ArtifactKind
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

# The partials add up: a (user, item) pair's days in the window are the partials holding it.
WINDOW_SUM = WindowSum(keys=("user_id", "item_id"), added=None, total="days")

# The canonical columns partial() reads (compute reads only these from the partition).
EVENT_COLUMNS = ["user_id", "item_id"]

# Bumped whenever partial() changes meaning, so cached partials of the old algorithm are not reused.
PARTIAL_ALGORITHM = 1


def partial_params(params: ComputeParams, event_weights: dict[str, float]) -> dict:
    # The per-user cap, support, shrink and top-k apply in build: a day's partial depends on none of the knobs.
    return {"algorithm": PARTIAL_ALGORITHM}


def partial(events: pa.Table, params: ComputeParams, event_weights: dict[str, float]) -> pa.Table:
    known = events.filter(pc.is_valid(events.column("user_id")))
    users, (user,) = pairs.sorted_codes(known.column("user_id"))
    items, (item,) = pairs.sorted_codes(known.column("item_id"))
    user, item = pairs.distinct_pairs(user, item, len(items))
    return pa.table({"user_id": users.take(user), "item_id": items.take(item)}).cast(PARTIAL_SCHEMA)


def _user_items(window_sum: pa.Table, params: ComputeParams) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """Item dictionary and the distinct (user, item) codes of the window, sorted by user then item, each user
    capped to their items on the most days."""
    _, (user,) = pairs.sorted_codes(window_sum.column("user_id"))
    items, (item,) = pairs.sorted_codes(window_sum.column("item_id"))
    days = window_sum.column("days").to_numpy()
    if np.bincount(user).max(initial=0) <= params.item_knn_max_items_per_user:
        return items, user, item  # nobody is over the cap (the usual case): skip the sort
    rows, _ = pairs.top_k_order(user, [-days, item], params.item_knn_max_items_per_user)
    # top_k_order keeps each user's rows in rank order; back to item order for co_counts.
    rows = np.sort(rows)
    return items, user[rows], item[rows]


def build(partials: Sequence[tuple[dt.date, pa.Table]], window: Window, params: ComputeParams) -> pa.Table:
    return build_from_sum(WINDOW_SUM.of_partials([table for _, table in partials]), window, params)


def build_from_sum(window_sum: pa.Table, window: Window, params: ComputeParams) -> pa.Table:
    """The artifact from the window's (user, item) pairs with the days each was seen (WINDOW_SUM)."""
    items, user, item = _user_items(window_sum, params)
    users = np.bincount(item, minlength=len(items))
    a, b, count = pairs.co_counts(user, item, len(items), diagonal=False, min_count=params.item_knn_min_support)
    shrink = float(params.item_knn_shrink)
    out = pairs.ranked_neighbors(
        items,
        a,
        b,
        count,
        lambda item, neighbor, count: count / (np.sqrt(users[item].astype(np.float64) * users[neighbor]) + shrink),
        lambda score, count, neighbor: [-score, -count, neighbor],
        params.item_knn_top_k,
    )
    return out.cast(SCHEMA)


# This module's entry in the kind registry (the reader's form, the ranking signal, the columns read as dictionaries).
ENTRY = KINDS.register(
    ArtifactKind.from_module(
        sys.modules[__name__], form="neighbors", signal="knn", dictionary_columns=("item_id", "neighbor_id")
    )
)
