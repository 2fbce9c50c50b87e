"""Co-occurrence: items seen in the same sessions, with cosine-normalised scores.

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
  score        float64           count / sqrt(sessions(item_id) * sessions(neighbor_id))  (cosine)
  rank         int32             1-based per item_id; count desc, score desc, neighbor_id asc

Pairs with count < cooc_min_support are dropped, then at most cooc_top_k neighbours are kept per item; items
whose neighbours were all dropped have no rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from recsys.compute.artifact import NEIGHBOR_SCHEMA, stack, top_k_per_group
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

# Bumped whenever partial() changes meaning, so cached partials of the old algorithm are not reused.
PARTIAL_ALGORITHM = 1


def partial_params(params: ComputeParams, event_weights: dict[str, float]) -> dict:
    return {"algorithm": PARTIAL_ALGORITHM, "cooc_max_items_per_session": params.cooc_max_items_per_session}


def partial(events: pa.Table, params: ComputeParams, event_weights: dict[str, float]) -> pa.Table:
    pairs = events.group_by(["session_id", "item_id"], use_threads=False).aggregate([])
    pairs = pairs.select(["session_id", "item_id"])
    sizes = pairs.group_by("session_id", use_threads=False).aggregate([([], "count_all")])
    kept = sizes.filter(pc.less_equal(sizes.column("count_all"), params.cooc_max_items_per_session))
    pairs = pairs.filter(pc.is_in(pairs.column("session_id"), value_set=kept.column("session_id").combine_chunks()))
    neighbors = pairs.rename_columns(["session_id", "neighbor_id"])
    joined = pairs.join(neighbors, keys="session_id", join_type="inner")
    upper = joined.filter(pc.less_equal(joined.column("item_id"), joined.column("neighbor_id")))
    counts = upper.group_by(["item_id", "neighbor_id"], use_threads=False).aggregate([([], "count_all")])
    out = pa.table(
        {
            "item_id": counts.column("item_id"),
            "neighbor_id": counts.column("neighbor_id"),
            "count": counts.column("count_all"),
        }
    )
    return out.sort_by([("item_id", "ascending"), ("neighbor_id", "ascending")]).cast(PARTIAL_SCHEMA)


def build(partials: Sequence[tuple[dt.date, pa.Table]], window: Window, params: ComputeParams) -> pa.Table:
    merged = stack([table for _, table in partials], PARTIAL_SCHEMA)
    grouped = merged.group_by(["item_id", "neighbor_id"], use_threads=False).aggregate([("count", "sum")])
    summed = pa.table(
        {
            "item_id": grouped.column("item_id"),
            "neighbor_id": grouped.column("neighbor_id"),
            "count": grouped.column("count_sum"),
        }
    )
    on_diagonal = pc.equal(summed.column("item_id"), summed.column("neighbor_id"))
    sessions = summed.filter(on_diagonal).select(["item_id", "count"]).rename_columns(["item_id", "sessions"])
    upper = summed.filter(pc.invert(on_diagonal))
    upper = upper.filter(pc.greater_equal(upper.column("count"), params.cooc_min_support))
    lower = upper.select(["neighbor_id", "item_id", "count"]).rename_columns(["item_id", "neighbor_id", "count"])
    both = pa.concat_tables([upper, lower])
    both = both.join(sessions, keys="item_id", join_type="inner")
    both = both.join(
        sessions.rename_columns(["neighbor_id", "neighbor_sessions"]), keys="neighbor_id", join_type="inner"
    )
    denominator = pc.sqrt(
        pc.multiply(both.column("sessions").cast(pa.float64()), both.column("neighbor_sessions").cast(pa.float64()))
    )
    scored = pa.table(
        {
            "item_id": both.column("item_id"),
            "neighbor_id": both.column("neighbor_id"),
            "count": both.column("count"),
            "score": pc.divide(both.column("count").cast(pa.float64()), denominator),
        }
    )
    top = top_k_per_group(
        scored,
        "item_id",
        [("count", "descending"), ("score", "descending"), ("neighbor_id", "ascending")],
        params.cooc_top_k,
    )
    return top.cast(SCHEMA)
