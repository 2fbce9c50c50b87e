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
  rank     int32                   1-based per user_id; score desc, last_ts desc, item_id asc

Every (user, item) pair of the window is kept, however long the history: the row is also the user's seen set
(exclude-seen), which must be complete. (An earlier `implicit_top_n` cap of 200 let about 10% of the users of a
real dataset get items they had already seen.)

Event types without a configured weight count as events but weigh 0.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recsys.compute import pairs
from recsys.compute.artifact import decayed_stack, event_weight_column, weights_param
from recsys.contract.kinds import KINDS, ArtifactKind
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

# The canonical columns partial() reads (compute reads only these from the partition).
EVENT_COLUMNS = ["user_id", "item_id", "event_type", "ts"]

# Bumped whenever partial() changes meaning, so cached partials of the old algorithm are not reused.
PARTIAL_ALGORITHM = 1


def partial_params(params: ComputeParams, event_weights: dict[str, float]) -> dict:
    return {"algorithm": PARTIAL_ALGORITHM, "event_weights": weights_param(event_weights)}


def _sum_by_user_item(
    user_id: pa.ChunkedArray, item_id: pa.ChunkedArray, values: dict[str, pa.Array]
) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """Group rows by (user_id, item_id) on one int64 code per pair: sum `score`, sum `count`, max `last_ts`,
    sorted by user_id, item_id; with the user and item codes of the result's rows (codes order as the ids do).

    A stable sort keeps each pair's rows in input order (day order in a window: stacked partials are sorted runs,
    which the stable sort merges fast) and np.bincount adds them one after the other in that order, so float sums
    are reproducible: the same as a sequential, single-threaded group-by over the input.
    """
    users, (user,) = pairs.sorted_codes(user_id)
    items, (item,) = pairs.sorted_codes(item_id)
    pair = user * len(items) + item
    order = np.argsort(pair, kind="stable")
    pair = pair[order]
    first = np.empty(pair.size, bool)
    first[:1] = True
    np.not_equal(pair[1:], pair[:-1], out=first[1:])
    group = np.cumsum(first) - 1  # each row's pair number
    starts = np.flatnonzero(first)
    score = np.bincount(group, weights=values["score"].to_numpy(zero_copy_only=False)[order], minlength=starts.size)
    count = np.bincount(group, weights=values["count"].to_numpy(zero_copy_only=False)[order], minlength=starts.size)
    last_us = values["last_ts"].cast(pa.int64()).to_numpy(zero_copy_only=False)[order]
    last = np.maximum.reduceat(last_us, starts) if starts.size else last_us
    pair = pair[starts]
    user, item = pair // len(items), pair % len(items)
    table = pa.table(
        {
            "user_id": users.take(user),
            "item_id": items.take(item),
            "score": score,
            "count": count.astype(np.int64),
            "last_ts": pa.array(last, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        }
    )
    return table, user, item


def partial(events: pa.Table, params: ComputeParams, event_weights: dict[str, float]) -> pa.Table:
    known = events.filter(pc.is_valid(events.column("user_id")))
    values = {
        "score": event_weight_column(known.column("event_type"), event_weights),
        "count": pa.repeat(pa.scalar(1, pa.int64()), known.num_rows),
        "last_ts": known.column("ts").combine_chunks(),
    }
    summed, _, _ = _sum_by_user_item(known.column("user_id"), known.column("item_id"), values)
    return summed.cast(PARTIAL_SCHEMA)


def build(partials: Sequence[tuple[dt.date, pa.Table]], window: Window, params: ComputeParams) -> pa.Table:
    merged = decayed_stack(partials, PARTIAL_SCHEMA, window.end, params.implicit_half_life_days, dictionaries=True)
    values = {name: merged.column(name).combine_chunks() for name in ("score", "count", "last_ts")}
    summed, user, item = _sum_by_user_item(merged.column("user_id"), merged.column("item_id"), values)
    score = summed.column("score").to_numpy()
    last_ts = summed.column("last_ts").cast(pa.int64()).to_numpy()
    rows = pairs.lexsort_order([user, -score, -last_ts, item])
    rank = pairs.rank_in_segments(user[rows])
    return summed.take(rows).append_column("rank", pa.array(rank.astype(np.int32))).cast(SCHEMA)


# This module's entry in the kind registry (the reader's form, the ranking signal, the columns read as dictionaries).
ENTRY = KINDS.register(
    ArtifactKind.from_module(
        sys.modules[__name__], form="user_rows", signal="implicit", dictionary_columns=("user_id", "item_id")
    )
)
