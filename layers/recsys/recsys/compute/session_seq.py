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
import sys
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recsys.compute import pairs
from recsys.compute.window_sum import WindowSum
from recsys.contract.kinds import KINDS, ArtifactKind
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

# The partials add up: a window's transitions are its days' transitions summed per pair.
WINDOW_SUM = WindowSum(keys=("item_id", "next_item_id"), added="count", total="count")

SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("next_item_id", pa.string(), nullable=False),
        pa.field("count", pa.int64()),
        pa.field("score", pa.float64()),
        pa.field("rank", pa.int32()),
    ]
)

# The canonical columns partial() reads (compute reads only these from the partition).
EVENT_COLUMNS = [name for name, _ in CANONICAL_SORT]

# Bumped whenever partial() changes meaning, so cached partials of the old algorithm are not reused.
PARTIAL_ALGORITHM = 1


def partial_params(params: ComputeParams, event_weights: dict[str, float]) -> dict:
    return {"algorithm": PARTIAL_ALGORITHM}


def partial(events: pa.Table, params: ComputeParams, event_weights: dict[str, float]) -> pa.Table:
    if events.num_rows < 2:
        return PARTIAL_SCHEMA.empty_table()
    # Sorting on the full canonical key makes the sequence independent of the input's row order; only the two
    # columns the transitions need are gathered in that order, as int codes.
    _, (session,) = pairs.sorted_codes(events.column("session_id"))
    order = _session_order(events, session)
    session = session[order]
    items, (item,) = pairs.sorted_codes(events.column("item_id").take(order))
    is_transition = (session[:-1] == session[1:]) & (item[:-1] != item[1:])
    keys, count = pairs.unique_counts(item[:-1][is_transition] * len(items) + item[1:][is_transition])
    out = pa.table(
        {"item_id": items.take(keys // len(items)), "next_item_id": items.take(keys % len(items)), "count": count}
    )
    return out.cast(PARTIAL_SCHEMA)


def _session_order(events: pa.Table, session: np.ndarray) -> np.ndarray:
    """Row order by session_id, then CANONICAL_SORT: by the int codes of (session, ts), and only the rows that tie
    on both (events of a session in the same microsecond) sorted again on the full key, in place."""
    ts = events.column("ts").cast(pa.int64()).to_numpy(zero_copy_only=False)
    order = pairs.lexsort_order([session, ts, np.arange(session.size)])
    session_sorted, ts_sorted = session[order], ts[order]
    tied = np.zeros(order.size, bool)
    repeated = (session_sorted[1:] == session_sorted[:-1]) & (ts_sorted[1:] == ts_sorted[:-1])
    tied[1:] |= repeated
    tied[:-1] |= repeated
    if tied.any():
        rows = order[tied]
        # Each run of tied rows keeps its positions; the full key only orders the rows within it.
        subset = events.take(rows)
        order[tied] = rows[pc.sort_indices(subset, [("session_id", "ascending"), *CANONICAL_SORT]).to_numpy()]
    return order


def build(partials: Sequence[tuple[dt.date, pa.Table]], window: Window, params: ComputeParams) -> pa.Table:
    return build_from_sum(WINDOW_SUM.of_partials([table for _, table in partials]), window, params)


def build_from_sum(window_sum: pa.Table, window: Window, params: ComputeParams) -> pa.Table:
    """The artifact from the window's transitions summed per pair (WINDOW_SUM)."""
    items, (item, following) = pairs.sorted_codes(window_sum.column("item_id"), window_sum.column("next_item_id"))
    count = window_sum.column("count").to_numpy()
    totals = np.bincount(item, weights=count, minlength=len(items))
    score = count.astype(np.float64) / totals[item]
    # Codes order as the ids do, so the next-item code is the next_item_id tie-break.
    rows, rank = pairs.top_k_order(item, [-count, following], params.session_seq_top_k)
    out = pa.table(
        {
            "item_id": items.take(item[rows]),
            "next_item_id": items.take(following[rows]),
            "count": count[rows],
            "score": score[rows],
            "rank": rank.astype(np.int32),
        }
    )
    return out.cast(SCHEMA)


# This module's entry in the kind registry (the reader's form, the ranking signal, the columns read as dictionaries).
ENTRY = KINDS.register(
    ArtifactKind.from_module(
        sys.modules[__name__], form="neighbors", signal="session", dictionary_columns=("item_id", "next_item_id")
    )
)
