"""Popularity: the most engaged-with items of the window, weighted by event type and decayed by age.

PARTIAL_SCHEMA (one UTC day), sorted by item_id:
  item_id  string not null   the item
  score    float64           sum of event_weights[event_type] over the day's events of the item
  count    int64             number of the day's events of the item

SCHEMA (the artifact), sorted by rank:
  item_id  string not null
  score    float64           sum over the window of partial.score * 0.5 ** (age_days / popularity_half_life_days)
  count    int64             events of the item over the window (not decayed)
  rank     int32             1-based; score desc, count desc, item_id asc; at most popularity_top_n rows

Event types without a configured weight count as events but weigh 0.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Sequence

import pyarrow as pa

from recsys.compute.artifact import decayed_stack, event_weight_column, row_numbers, weights_param
from recsys.contract.kinds import KINDS, ArtifactKind
from recsys.days import Window
from recsys.settings import ComputeParams

KIND = "popularity"

PARTIAL_SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("score", pa.float64()),
        pa.field("count", pa.int64()),
    ]
)

SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("score", pa.float64()),
        pa.field("count", pa.int64()),
        pa.field("rank", pa.int32()),
    ]
)

# The canonical columns partial() reads (compute reads only these from the partition).
EVENT_COLUMNS = ["item_id", "event_type"]

# Bumped whenever partial() changes meaning, so cached partials of the old algorithm are not reused.
PARTIAL_ALGORITHM = 1


def partial_params(params: ComputeParams, event_weights: dict[str, float]) -> dict:
    return {"algorithm": PARTIAL_ALGORITHM, "event_weights": weights_param(event_weights)}


def partial(events: pa.Table, params: ComputeParams, event_weights: dict[str, float]) -> pa.Table:
    weighted = pa.table(
        {"item_id": events.column("item_id"), "weight": event_weight_column(events.column("event_type"), event_weights)}
    )
    # Single-threaded aggregation sums in input order, so the float sums are reproducible.
    grouped = weighted.group_by("item_id", use_threads=False).aggregate([("weight", "sum"), ([], "count_all")])
    out = pa.table(
        {
            "item_id": grouped.column("item_id"),
            "score": grouped.column("weight_sum"),
            "count": grouped.column("count_all"),
        }
    )
    return out.sort_by("item_id").cast(PARTIAL_SCHEMA)


def build(partials: Sequence[tuple[dt.date, pa.Table]], window: Window, params: ComputeParams) -> pa.Table:
    merged = decayed_stack(partials, PARTIAL_SCHEMA, window.end, params.popularity_half_life_days)
    grouped = merged.group_by("item_id", use_threads=False).aggregate([("score", "sum"), ("count", "sum")])
    ranked = grouped.sort_by([("score_sum", "descending"), ("count_sum", "descending"), ("item_id", "ascending")])
    top = ranked.slice(0, params.popularity_top_n)
    out = pa.table(
        {
            "item_id": top.column("item_id"),
            "score": top.column("score_sum"),
            "count": top.column("count_sum"),
            "rank": row_numbers(top.num_rows, start=1).cast(pa.int32()),
        }
    )
    return out.cast(SCHEMA)


# This module's entry in the kind registry (the reader's form, the ranking signal, the columns read as dictionaries).
ENTRY = KINDS.register(ArtifactKind.from_module(sys.modules[__name__], form="popularity", signal="pop"))
