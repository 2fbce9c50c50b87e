"""Implicit feedback: each known user's strongest items, weighted by event type and decayed by age.

Only events with a non-null user_id contribute (anonymous sessions have no user to recommend to).

PARTIAL_SCHEMA (one UTC day), sorted by user_id, item_id:
  user_id  string not null
  item_id  string not null
  score    float64                 sum of event_weights[event_type] over the day's events of the pair
  count    int64                   number of the day's events of the pair
  last_ts  timestamp[us, UTC]      latest event of the pair that day

SCHEMA (the artifact), sorted by user_id, rank:
  user_id  string not null         the serving API fetches one user's rows by row-group statistics on it
  item_id  string not null
  score    float64                 sum over the window of partial.score * 0.5 ** (age_days / implicit_half_life_days)
  count    int64                   events of the pair over the window (not decayed)
  last_ts  timestamp[us, UTC]      latest event of the pair in the window
  rank     int32                   1-based per user_id; score desc, last_ts desc, item_id asc; at most implicit_top_n

Event types without a configured weight count as events but weigh 0.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from recsys.compute.artifact import decayed_stack, event_weight_column, top_k_per_group, weights_param
from recsys.days import Window
from recsys.settings import ComputeParams

KIND = "implicit"

PARTIAL_SCHEMA = pa.schema(
    [
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("score", pa.float64()),
        pa.field("count", pa.int64()),
        pa.field("last_ts", pa.timestamp("us", tz="UTC")),
    ]
)

SCHEMA = pa.schema(
    [
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("score", pa.float64()),
        pa.field("count", pa.int64()),
        pa.field("last_ts", pa.timestamp("us", tz="UTC")),
        pa.field("rank", pa.int32()),
    ]
)

# Bumped whenever partial() changes meaning, so cached partials of the old algorithm are not reused.
PARTIAL_ALGORITHM = 1


def partial_params(params: ComputeParams, event_weights: dict[str, float]) -> dict:
    return {"algorithm": PARTIAL_ALGORITHM, "event_weights": weights_param(event_weights)}


def partial(events: pa.Table, params: ComputeParams, event_weights: dict[str, float]) -> pa.Table:
    known = events.filter(pc.is_valid(events.column("user_id")))
    weighted = pa.table(
        {
            "user_id": known.column("user_id"),
            "item_id": known.column("item_id"),
            "weight": event_weight_column(known.column("event_type"), event_weights),
            "ts": known.column("ts"),
        }
    )
    # Single-threaded aggregation sums in input order, so the float sums are reproducible.
    grouped = weighted.group_by(["user_id", "item_id"], use_threads=False).aggregate(
        [("weight", "sum"), ([], "count_all"), ("ts", "max")]
    )
    out = pa.table(
        {
            "user_id": grouped.column("user_id"),
            "item_id": grouped.column("item_id"),
            "score": grouped.column("weight_sum"),
            "count": grouped.column("count_all"),
            "last_ts": grouped.column("ts_max"),
        }
    )
    return out.sort_by([("user_id", "ascending"), ("item_id", "ascending")]).cast(PARTIAL_SCHEMA)


def build(partials: Sequence[tuple[dt.date, pa.Table]], window: Window, params: ComputeParams) -> pa.Table:
    merged = decayed_stack(partials, PARTIAL_SCHEMA, window.end, params.implicit_half_life_days)
    grouped = merged.group_by(["user_id", "item_id"], use_threads=False).aggregate(
        [("score", "sum"), ("count", "sum"), ("last_ts", "max")]
    )
    scored = pa.table(
        {
            "user_id": grouped.column("user_id"),
            "item_id": grouped.column("item_id"),
            "score": grouped.column("score_sum"),
            "count": grouped.column("count_sum"),
            "last_ts": grouped.column("last_ts_max"),
        }
    )
    top = top_k_per_group(
        scored,
        "user_id",
        [("score", "descending"), ("last_ts", "descending"), ("item_id", "ascending")],
        params.implicit_top_n,
    )
    return top.cast(SCHEMA)
