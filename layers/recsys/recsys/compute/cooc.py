"""Co-occurrence: items seen in the same sessions, with shrunk-cosine scores.

A session is an exact session_id within one UTC day; each session contributes its DISTINCT items once. Sessions
with more than cooc_max_items_per_session distinct items are skipped (bots, crawlers).

PARTIAL_SCHEMA (one UTC day), the upper triangle including the diagonal, sorted by item_id, neighbor_id:
  item_id      string not null
  neighbor_id  string not null   item_id <= neighbor_id
  count        int64             sessions containing both items; on the diagonal (a, a): sessions containing a

SCHEMA (the artifact), sorted by item_id, rank:
  item_id      string not null
  neighbor_id  string not null   never item_id itself
  count        int64             sessions of the window containing both items (not decayed)
  score        float64           count / (sqrt(sessions(item_id) * sessions(neighbor_id)) + cooc_shrink)
                                 (a cosine pulled towards 0 for pairs of rarely seen items)
  rank         int32             1-based per item_id; count desc, score desc, neighbor_id asc

Pairs with count < cooc_min_support are dropped, then at most cooc_top_k neighbours are kept per item; items
whose neighbours were all dropped have no rows.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from recsys.compute import pairs
from recsys.compute.artifact import NEIGHBOR_SCHEMA
from recsys.compute.window_sum import WindowSum
from recsys.contract.kinds import KINDS, ArtifactKind
from recsys.days import Window
from recsys.settings import ComputeParams

KIND = "cooc"

PARTIAL_SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("neighbor_id", pa.string(), nullable=False),
        pa.field("count", pa.int64()),
    ]
)

SCHEMA = NEIGHBOR_SCHEMA

# The partials add up: a window's counts are its days' counts summed per pair.
WINDOW_SUM = WindowSum(keys=("item_id", "neighbor_id"), added="count", total="count")

# The canonical columns partial() reads (compute reads only these from the partition).
EVENT_COLUMNS = ["session_id", "item_id"]

# Bumped whenever partial() changes meaning, so cached partials of the old algorithm are not reused.
PARTIAL_ALGORITHM = 1


def partial_params(params: ComputeParams, event_weights: dict[str, float]) -> dict:
    return {"algorithm": PARTIAL_ALGORITHM, "cooc_max_items_per_session": params.cooc_max_items_per_session}


def partial(events: pa.Table, params: ComputeParams, event_weights: dict[str, float]) -> pa.Table:
    items, (item,) = pairs.sorted_codes(events.column("item_id"))
    _, (session,) = pairs.sorted_codes(events.column("session_id"))
    session, item = pairs.distinct_pairs(session, item, len(items))
    sizes = np.bincount(session)
    kept = sizes[session] <= params.cooc_max_items_per_session
    a, b, count = pairs.co_counts(session[kept], item[kept], len(items), diagonal=True)
    out = pa.table({"item_id": items.take(a), "neighbor_id": items.take(b), "count": count})
    return out.cast(PARTIAL_SCHEMA)


def build(partials: Sequence[tuple[dt.date, pa.Table]], window: Window, params: ComputeParams) -> pa.Table:
    return build_from_sum(WINDOW_SUM.of_partials([table for _, table in partials]), window, params)


def build_from_sum(window_sum: pa.Table, window: Window, params: ComputeParams) -> pa.Table:
    """The artifact from the window's partials summed per pair (WINDOW_SUM)."""
    items, (a, b) = pairs.sorted_codes(window_sum.column("item_id"), window_sum.column("neighbor_id"))
    count = window_sum.column("count").to_numpy()
    on_diagonal = a == b
    sessions = np.zeros(len(items), np.int64)
    sessions[a[on_diagonal]] = count[on_diagonal]
    upper = ~on_diagonal & (count >= params.cooc_min_support)
    out = pairs.ranked_neighbors(
        items,
        a[upper],
        b[upper],
        count[upper],
        lambda item, neighbor, count: (
            count / (np.sqrt(sessions[item].astype(np.float64) * sessions[neighbor]) + params.cooc_shrink)
        ),
        # For one item and count the score falls as sessions(neighbor) grows: that int orders as -score does,
        # without ranking a float column (the slowest part with many pairs seen once).
        lambda score, count, neighbor: [-count, sessions[neighbor], neighbor],
        params.cooc_top_k,
    )
    return out.cast(SCHEMA)


# This module's entry in the kind registry (the reader's form, the ranking signal, the columns read as dictionaries).
ENTRY = KINDS.register(
    ArtifactKind.from_module(
        sys.modules[__name__],
        form="neighbors_with_counts",
        signal="cooc",
        dictionary_columns=("item_id", "neighbor_id"),
    )
)
