"""Session sequences: which item tends to come next after an item within a session.

A session is an exact session_id within one UTC day. Its events are ordered by ts, ties broken by the canonical
sort (ts, session_id, user_id, item_id, event_type, request_id, rank, event_id); each consecutive pair (a, b)
with b != a is one transition a -> b (repeated events of the same item are not transitions).

The seed counted successors per user regardless of their predecessor item, which is not a transition model: a
defect this kind does not reproduce (transitions here are per session and per predecessor).

PARTIAL_SCHEMA (one UTC day), sorted by item_id, next_item_id:
  item_id       string not null
  next_item_id  string not null
  count         int64             transitions item_id -> next_item_id that day

SCHEMA (the artifact), sorted by item_id, rank:
  item_id       string not null
  next_item_id  string not null   never item_id itself
  count         int64             transitions over the window (not decayed)
  score         float64           count / all transitions out of item_id over the window
  rank          int32             1-based per item_id; count desc, next_item_id asc; at most session_seq_top_k
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from recsys.compute.artifact import stack, top_k_per_group
from recsys.days import Window
from recsys.events.contract import CANONICAL_SORT
from recsys.settings import ComputeParams

KIND = "session_seq"

PARTIAL_SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("next_item_id", pa.string(), nullable=False),
        pa.field("count", pa.int64()),
    ]
)

SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("next_item_id", pa.string(), nullable=False),
        pa.field("count", pa.int64()),
        pa.field("score", pa.float64()),
        pa.field("rank", pa.int32()),
    ]
)

# Bumped whenever partial() changes meaning, so cached partials of the old algorithm are not reused.
PARTIAL_ALGORITHM = 1


def partial_params(params: ComputeParams, event_weights: dict[str, float]) -> dict:
    return {"algorithm": PARTIAL_ALGORITHM}


def partial(events: pa.Table, params: ComputeParams, event_weights: dict[str, float]) -> pa.Table:
    # Sorting on the full canonical key makes the sequence independent of the input's row order.
    ordered = events.sort_by([("session_id", "ascending"), *CANONICAL_SORT])
    n = ordered.num_rows
    if n < 2:
        return PARTIAL_SCHEMA.empty_table()
    sessions = ordered.column("session_id").combine_chunks()
    items = ordered.column("item_id").combine_chunks()
    current, following = items.slice(0, n - 1), items.slice(1)
    is_transition = pc.and_(
        pc.equal(sessions.slice(0, n - 1), sessions.slice(1)),
        pc.not_equal(current, following),
    )
    transitions = pa.table({"item_id": current, "next_item_id": following}).filter(is_transition)
    counts = transitions.group_by(["item_id", "next_item_id"], use_threads=False).aggregate([([], "count_all")])
    out = pa.table(
        {
            "item_id": counts.column("item_id"),
            "next_item_id": counts.column("next_item_id"),
            "count": counts.column("count_all"),
        }
    )
    return out.sort_by([("item_id", "ascending"), ("next_item_id", "ascending")]).cast(PARTIAL_SCHEMA)


def build(partials: Sequence[tuple[dt.date, pa.Table]], window: Window, params: ComputeParams) -> pa.Table:
    merged = stack([table for _, table in partials], PARTIAL_SCHEMA)
    grouped = merged.group_by(["item_id", "next_item_id"], use_threads=False).aggregate([("count", "sum")])
    totals = grouped.group_by("item_id", use_threads=False).aggregate([("count_sum", "sum")])
    joined = grouped.join(totals, keys="item_id", join_type="inner")
    scored = pa.table(
        {
            "item_id": joined.column("item_id"),
            "next_item_id": joined.column("next_item_id"),
            "count": joined.column("count_sum"),
            "score": pc.divide(
                joined.column("count_sum").cast(pa.float64()), joined.column("count_sum_sum").cast(pa.float64())
            ),
        }
    )
    top = top_k_per_group(
        scored, "item_id", [("count", "descending"), ("next_item_id", "ascending")], params.session_seq_top_k
    )
    return top.cast(SCHEMA)
