"""Item pairs on int codes: the numpy core of the neighbour kinds (cooc over sessions, item_knn over users).

String ids are coded once against a SORTED dictionary, so comparing or sorting codes orders the ids exactly as
comparing or sorting the strings would; every count below is then integer arithmetic on numpy arrays (no joins,
no hash tables of strings, no per-pair Python).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Pairs generated per batch of groups by co_counts (memory, not results: counts are summed across batches).
BATCH_PAIRS = 4_000_000


def sorted_codes(*columns: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, list[np.ndarray]]:
    """One sorted dictionary of the distinct non-null strings of `columns`, and each column as int64 codes into it."""
    chunks = [c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c for c in columns]
    dictionary = pc.unique(pa.concat_arrays(chunks) if len(chunks) > 1 else chunks[0]).drop_null()
    dictionary = pc.take(dictionary, pc.array_sort_indices(dictionary))
    codes = [
        pc.index_in(chunk, value_set=dictionary).to_numpy(zero_copy_only=False).astype(np.int64) for chunk in chunks
    ]
    return dictionary, codes


def distinct_pairs(group: np.ndarray, item: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (group, item) pairs, sorted by group then item."""
    keys, _ = unique_counts(group * n_items + item)
    return keys // n_items, keys % n_items


def unique_counts(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sorted distinct values of int `keys` and how often each occurs (a sort: faster than np.unique's hash)."""
    keys = np.sort(keys)
    starts = segment_starts(keys)
    return keys[starts], np.diff(np.append(starts, keys.size))


def sum_by_pair(
    a: np.ndarray, b: np.ndarray, count: np.ndarray, n_items: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, summed count) of every distinct pair, sorted by (a, b)."""
    keys = a * n_items + b
    order = np.argsort(keys)
    keys = keys[order]
    starts = segment_starts(keys)
    if starts.size == 0:
        return keys, keys, np.asarray(count, np.int64)[order]
    summed = np.add.reduceat(np.asarray(count, np.int64)[order], starts)
    return keys[starts] // n_items, keys[starts] % n_items, summed


def segment_starts(sorted_keys: np.ndarray) -> np.ndarray:
    """Index of the first row of each run of equal values in `sorted_keys`."""
    if sorted_keys.size == 0:
        return np.zeros(0, np.int64)
    return np.flatnonzero(np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1])))


def rank_in_segments(sorted_keys: np.ndarray) -> np.ndarray:
    """1-based position of every row within its run of equal `sorted_keys`."""
    starts = segment_starts(sorted_keys)
    lengths = np.diff(np.append(starts, sorted_keys.size))
    return np.arange(sorted_keys.size) - np.repeat(starts, lengths) + 1


def co_counts(
    group: np.ndarray, item: np.ndarray, n_items: int, *, diagonal: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For rows of distinct (group, item) sorted by group then item: (a, b, count) over every pair of items of a
    group with a < b (a <= b with `diagonal`: count(a, a) is then the number of groups holding a), summed over
    the groups and sorted by (a, b).
    """
    if item.size == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    starts = segment_starts(group)
    ends = np.append(starts[1:], group.size)
    # Each row pairs with the rows after it in its group (and with itself on the diagonal).
    partners = np.repeat(ends, ends - starts) - np.arange(item.size) - (0 if diagonal else 1)
    # Batches are runs of whole groups of about BATCH_PAIRS pairs (one large group may exceed it alone).
    group_pairs = np.add.reduceat(partners, starts)
    batch = (np.cumsum(group_pairs) - group_pairs) // BATCH_PAIRS
    bounds = np.append(starts[segment_starts(batch)], item.size)
    totals = [
        _batch_pairs(item[first:last], partners[first:last], diagonal, n_items)
        for first, last in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    keys = np.concatenate([k for k, _ in totals])
    counts = np.concatenate([c for _, c in totals])
    if len(totals) > 1:
        return sum_by_pair(keys // n_items, keys % n_items, counts, n_items)
    return keys // n_items, keys % n_items, counts


def _batch_pairs(item: np.ndarray, partners: np.ndarray, diagonal: bool, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    rows = np.repeat(np.arange(item.size), partners)
    # Offset of each generated pair within its row's run: 0, 1, 2, ... partners-1.
    run_starts = np.cumsum(partners) - partners
    offset = np.arange(rows.size) - np.repeat(run_starts, partners)
    other = rows + offset + (0 if diagonal else 1)
    return unique_counts(item[rows] * n_items + item[other])


def top_k_order(key: np.ndarray, sort_columns: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the first `k` rows per `key` after sorting by key asc, then `sort_columns` (first is the most
    significant; negate a column for descending), and their 1-based ranks. The columns must make the order total."""
    order = np.lexsort([*reversed(sort_columns), key])
    rank = rank_in_segments(key[order])
    keep = rank <= k
    return order[keep], rank[keep]


def ranked_neighbors(
    items: pa.Array,
    a: np.ndarray,
    b: np.ndarray,
    count: np.ndarray,
    score_of: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    sort_by: Callable[[np.ndarray, np.ndarray, np.ndarray], list[np.ndarray]],
    k: int,
) -> pa.Table:
    """The neighbour-list artifact (recsys.compute.artifact.NEIGHBOR_SCHEMA) from kept pairs a < b: both directions
    of every pair, `score_of(item, neighbor, count)` per row, the first `k` rows per item by `sort_by(score,
    count, neighbor)` (codes order as the ids do, so the neighbor code is the neighbor_id tie-break)."""
    item = np.concatenate([a, b])
    neighbor = np.concatenate([b, a])
    count = np.concatenate([count, count])
    score = score_of(item, neighbor, count)
    rows, rank = top_k_order(item, sort_by(score, count, neighbor), k)
    return pa.table(
        {
            "item_id": items.take(item[rows]),
            "neighbor_id": items.take(neighbor[rows]),
            "count": count[rows],
            "score": score[rows],
            "rank": rank.astype(np.int32),
        }
    )
