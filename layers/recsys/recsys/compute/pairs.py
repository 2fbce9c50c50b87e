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
    """One sorted dictionary of the distinct non-null strings of `columns`, and each column as int64 codes into it.

    Columns may be strings or dictionary-encoded strings; a dictionary chunk is coded through its dictionary, so
    its rows are never expanded to strings. The dictionaries of all chunks are looked up in one `index_in` call
    (one hash table of the result; a window of 30 partials has 60 or more chunk dictionaries).
    """
    chunked = [c if isinstance(c, pa.ChunkedArray) else pa.chunked_array([c]) for c in columns]
    # Plain strings are dictionary-encoded first: one hash pass over the rows, the rest works on the dictionaries.
    chunks = [
        chunk if pa.types.is_dictionary(chunk.type) else chunk.dictionary_encode()
        for c in chunked
        for chunk in c.chunks
    ]
    values = [chunk.dictionary for chunk in chunks]
    dictionary = pc.unique(pa.concat_arrays(values) if values else pa.array([], pa.string())).drop_null()
    dictionary = pc.take(dictionary, pc.array_sort_indices(dictionary))
    coded = [
        remap[chunk.indices.to_numpy(zero_copy_only=False)]
        for chunk, remap in zip(chunks, _dictionary_codes(values, dictionary), strict=True)
    ]
    out, at = [], 0
    for column in chunked:
        parts = coded[at : at + column.num_chunks]
        at += column.num_chunks
        out.append(np.concatenate(parts) if parts else np.zeros(0, np.int64))
    return dictionary, out


def _dictionary_codes(dictionaries: list[pa.Array], dictionary: pa.Array) -> list[np.ndarray]:
    """The int64 code in `dictionary` of every entry of each of `dictionaries`."""
    if not dictionaries:
        return []
    codes = pc.index_in(pa.concat_arrays(dictionaries), value_set=dictionary).to_numpy(zero_copy_only=False)
    bounds = exclusive_cumsum(np.array([len(d) for d in dictionaries]))
    return [codes[lo:hi].astype(np.int64) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]


def distinct_pairs(group: np.ndarray, item: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (group, item) pairs, sorted by group then item."""
    keys, _ = unique_counts(group * n_items + item)
    return keys // n_items, keys % n_items


def exclusive_cumsum(values: np.ndarray) -> np.ndarray:
    """int64 [0, v0, v0 + v1, ...]: one more entry than `values`, the offsets of consecutive runs of those lengths."""
    out = np.zeros(len(values) + 1, np.int64)
    np.cumsum(values, out=out[1:])
    return out


def concat_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """int64 concatenation of range(starts[i], starts[i] + lengths[i]) for every i, in order."""
    lengths = lengths.astype(np.int64, copy=False)
    offsets = exclusive_cumsum(lengths)
    return np.repeat(starts.astype(np.int64, copy=False) - offsets[:-1], lengths) + np.arange(offsets[-1])


def unique_counts(keys: np.ndarray, *, runs: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The sorted distinct values of int `keys` and how often each occurs (a sort: faster than np.unique's hash).

    `runs`: the keys are a concatenation of sorted runs (e.g. one per partial), which a stable sort (timsort)
    merges several times faster than the default quicksort; on unordered keys it is slower.
    """
    keys = np.sort(keys, kind="stable" if runs else None)
    starts = segment_starts(keys)
    return keys[starts], np.diff(np.append(starts, keys.size))


def sum_by_pair(
    a: np.ndarray, b: np.ndarray, count: np.ndarray, n_items: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, summed count) of every distinct pair, sorted by (a, b).

    The rows are expected to be partials stacked in order, each sorted by (a, b): a stable sort (timsort) merges
    such runs about three times faster than the default quicksort.
    """
    keys = a * n_items + b
    order = np.argsort(keys, kind="stable")
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
    group: np.ndarray, item: np.ndarray, n_items: int, *, diagonal: bool, min_count: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For rows of distinct (group, item) sorted by group then item: (a, b, count) over every pair of items of a
    group with a < b (a <= b with `diagonal`: count(a, a) is then the number of groups holding a), summed over
    the groups, sorted by (a, b), without the pairs counted fewer than `min_count` times.
    """
    if item.size == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    starts = segment_starts(group)
    ends = np.append(starts[1:], group.size)
    # Each row pairs with the rows after it in its group (and with itself on the diagonal).
    partners = np.repeat(ends, ends - starts) - np.arange(item.size) - (0 if diagonal else 1)
    # Pairs are generated by ranges of their first item a, about BATCH_PAIRS at a time (one item may exceed it
    # alone): a count is complete within its range, so ranges need no merge and rare pairs go at once.
    keys, counts = [], []
    for lo, hi in _item_ranges(np.bincount(item, weights=partners, minlength=n_items).astype(np.int64)):
        rows = np.flatnonzero((item >= lo) & (item < hi) & (partners > 0))
        range_keys, range_counts = _range_pairs(item, rows, partners[rows], diagonal, n_items, lo, hi)
        frequent = range_counts >= min_count
        keys.append(range_keys[frequent])
        counts.append(range_counts[frequent])
    key = np.concatenate(keys)
    return key // n_items, key % n_items, np.concatenate(counts)


def _range_pairs(
    item: np.ndarray, rows: np.ndarray, partners: np.ndarray, diagonal: bool, n_items: int, lo: int, hi: int
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct pair keys a * n_items + b and their counts, over the pairs that `rows` start (each row with the
    `partners` rows after it, itself included on the diagonal), all with a in [lo, hi).

    The keys are counted relative to the range, (a - lo) * n_items + b, as uint32 when they fit: sorting 32-bit
    keys is about 1.5 times faster than 64-bit ones, and the sort is most of the work.
    """
    first = np.repeat(rows, partners)
    other = concat_ranges(rows + (0 if diagonal else 1), partners)
    dtype = np.uint32 if (hi - lo) * n_items <= np.iinfo(np.uint32).max else np.int64
    keys, counts = unique_counts((item[first] - lo).astype(dtype) * dtype(n_items) + item[other].astype(dtype))
    return keys.astype(np.int64) + lo * n_items, counts


def top_k_order(key: np.ndarray, sort_columns: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the first `k` rows per `key` after sorting by key asc, then `sort_columns` (first is the most
    significant; negate a column for descending), and their 1-based ranks. The columns must make the order total."""
    candidates = _top_k_candidates(key, sort_columns, k)
    if candidates is None:
        order = lexsort_order([key, *sort_columns])
    else:
        order = candidates[lexsort_order([key[candidates], *(column[candidates] for column in sort_columns)])]
    rank = rank_in_segments(key[order])
    keep = rank <= k
    return order[keep], rank[keep]


# Keys of at most this many bits are packed with their level in 32 bits.
_NARROW_KEY_BITS = 24


def _top_k_candidates(key: np.ndarray, sort_columns: list[np.ndarray], k: int) -> np.ndarray | None:
    """Rows that can be among the first `k` of their key (ordered by `sort_columns`): a superset found with one sort
    of the key packed with a level, so the exact sort only sees about k rows per key. None when no key has more than
    k rows (every row is a candidate) or the key leaves too few bits for a level.

    The level is a monotone (non-decreasing) map of the rows' order onto the bits beside the key: the leading
    integer columns exactly while their ranges fit, then the top bits of the next column. A row whose level is above
    the k-th smallest level of its key is behind at least k rows in the exact order too. Key and level are packed in
    32 bits when the key leaves at least 8 (sorting uint32 is about twice as fast as int64), else in 63.
    """
    if key.size == 0 or np.bincount(key).max() <= k:
        return None
    key_bits = int(key.max()).bit_length()
    width = 32 if key_bits <= _NARROW_KEY_BITS else 63
    level, level_bits = _order_levels(sort_columns, width - key_bits)
    if level_bits < 8:
        return None
    dtype = np.uint32 if width == 32 else np.int64
    packed = np.sort((key.astype(dtype) << dtype(level_bits)) | level.astype(dtype))
    starts = segment_starts(packed >> dtype(level_bits))
    sizes = np.diff(np.append(starts, packed.size))
    mask = (1 << level_bits) - 1
    threshold = np.full(int(key.max()) + 1, mask, np.int64)
    crowded = sizes > k
    threshold[(packed[starts[crowded]] >> dtype(level_bits)).astype(np.int64)] = packed[starts[crowded] + k - 1] & mask
    return np.flatnonzero(level <= threshold[key])


# Rows sampled (evenly spaced) to place a column's level boundaries at its quantiles.
_LEVEL_SAMPLE = 65_536
# At most 2**11 - 1 quantile boundaries per column: finer than a 65,536-row sample tells apart anyway.
_QUANTILE_BITS = 12


def _order_levels(columns: list[np.ndarray], room: int) -> tuple[np.ndarray, int]:
    """A monotone map of the rows' lexicographic order by `columns` onto int64 levels of at most `room` bits, and
    the bits it uses.

    An integer column whose range fits (in half the bits left, unless it is the last) is copied exactly. Any other
    column gets levels at its quantiles, so that rows spread evenly over them whatever the distribution (counts
    crowd near 1, floats anywhere): two levels per boundary, one for the values just below it and one for the
    boundary's own value. A row on a boundary's own value is still exact and later columns order it further; a row
    between boundaries is not, so its bits for the later columns are 0 (it ties with its level, never passes it).
    """
    level, used = np.zeros(columns[0].size if columns else 0, np.int64), 0
    inexact: list[tuple[np.ndarray, int]] = []  # rows between two boundaries of a column, and the bits used then
    for position, column in enumerate(columns):
        left = room - used
        bits = left if position == len(columns) - 1 else min(left, max(left // 2, 2))
        if bits < 2:
            break
        low, high = column.min(), column.max()
        if high == low:
            continue  # constant: orders nothing
        if column.dtype.kind in "iu" and (int(high) - int(low)).bit_length() <= bits:
            width = (int(high) - int(low)).bit_length()
            level = (level << width) | (column.astype(np.int64, copy=False) - int(low))
            used += width
            continue
        if bits < 4:
            break  # a few levels of a late column prune next to nothing
        sample = column[:: max(column.size // _LEVEL_SAMPLE, 1)]
        quantiles = np.linspace(0, 1, (1 << (min(bits, _QUANTILE_BITS) - 1)) - 1)
        boundaries = np.unique(np.quantile(sample, quantiles, method="inverted_cdf"))  # values of the sample
        code, on_boundary = _quantile_codes(column, boundaries, int(low), int(high))
        width = (2 * boundaries.size).bit_length()
        level = (level << width) | code
        used += width
        inexact.append((~on_boundary, used))
    for rows, used_then in inexact:
        shift = used - used_then
        level[rows] = (level[rows] >> shift) << shift
    return level, used


def _quantile_codes(column: np.ndarray, boundaries: np.ndarray, low: int, high: int) -> tuple[np.ndarray, np.ndarray]:
    """Each value's code among sorted `boundaries` (2 * the first boundary not below it, + 1 when equal to it), and
    whether it is on a boundary. Integers of a range up to 2**20 look their code up in a table of the range."""

    def search(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        at = np.searchsorted(boundaries, values)
        on_boundary = boundaries[np.minimum(at, boundaries.size - 1)] == values
        return 2 * at + on_boundary, on_boundary

    if column.dtype.kind in "iu" and high - low < 1 << 20:
        table_code, table_on = search(np.arange(low, high + 1))
        offset = column.astype(np.int64, copy=False) - low
        return table_code[offset], table_on[offset]
    return search(column)


def lexsort_order(columns: list[np.ndarray]) -> np.ndarray:
    """The permutation sorting rows by `columns` (int or float; the first is the most significant), which must
    make the order total: what np.lexsort(columns[::-1]) returns, several times faster.

    Each float column becomes its dense rank (np.unique: equal values, -0.0 and 0.0 included, share a rank), and
    adjacent columns are packed into one int64 key while their value ranges fit in 63 bits; the packed keys are
    then sorted from the least significant, each later pass stable (usually a single key: one sort).
    """
    if not columns or columns[0].size == 0:
        return np.zeros(0, np.int64)
    keys: list[np.ndarray] = []  # packed, least significant first
    bits_used = 0
    for column in reversed(columns):
        if column.dtype.kind == "f":
            column = np.unique(column, return_inverse=True)[1].reshape(-1)
        column = column.astype(np.int64, copy=False)
        low = column.min()
        column = column - low if low else column
        bits = max(int(column.max()).bit_length(), 1)
        if keys and bits_used + bits <= 63:
            keys[-1] = keys[-1] | (column << bits_used)
            bits_used += bits
        else:
            keys.append(column)
            bits_used = bits
    order = np.argsort(keys[0])  # ties here are broken by the later (more significant) keys: the order is total
    for more_significant in keys[1:]:
        order = order[np.argsort(more_significant[order], kind="stable")]
    return order


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
    count, neighbor)` (codes order as the ids do, so the neighbor code is the neighbor_id tie-break).

    Items are ranked in ranges of about BATCH_PAIRS rows (memory, not results: an item's rows are all in its range).
    """

    def rank_items(lo: int, hi: int) -> pa.Table:
        forward = (a >= lo) & (a < hi)
        backward = (b >= lo) & (b < hi)
        item = np.concatenate([a[forward], b[backward]])
        neighbor = np.concatenate([b[forward], a[backward]])
        counts = np.concatenate([count[forward], count[backward]])
        score = score_of(item, neighbor, counts)
        rows, rank = top_k_order(item, sort_by(score, counts, neighbor), k)
        return pa.table(
            {
                "item_id": items.take(item[rows]),
                "neighbor_id": items.take(neighbor[rows]),
                "count": counts[rows],
                "score": score[rows],
                "rank": rank.astype(np.int32),
            }
        )

    rows_per_item = np.bincount(a, minlength=len(items)) + np.bincount(b, minlength=len(items))
    parts = [rank_items(lo, hi) for lo, hi in _item_ranges(rows_per_item)]
    return pa.concat_tables(parts) if parts else rank_items(0, 0)


def _item_ranges(load: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive item code ranges [lo, hi) of about BATCH_PAIRS `load` each (one item may exceed it alone)."""
    ranges = (np.cumsum(load) - load) // BATCH_PAIRS
    bounds = np.append(segment_starts(ranges), load.size)
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))
