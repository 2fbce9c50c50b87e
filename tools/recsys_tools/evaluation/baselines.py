"""Reference recommenders for offline evaluation, computed from a training interactions table only, independently
of the product's artifacts and code paths (numpy only: no scipy, no pyarrow compute).

`train` is a pyarrow Table with columns user_id, item_id and optionally weight (else count, if present), or a
tuple of numpy arrays (user_ids, item_ids) / (user_ids, item_ids, weights); rows may repeat a (user, item) pair.
Ids are compared as strings (non-string ids are converted with str), so "ties by item_id" means string order.
Weights never change the binary user x item matrix the recommenders use; they only decide which items a user with
a very long history keeps for the co-counts (`MAX_HISTORY`). Pass `interactions(train)` instead of `train` to
index the table once for several baselines.

- `popularity_baseline`: items by number of distinct training users, ties by item_id.
- `item_knn_baseline`: item-item cosine over the binary user x item matrix,
      sim(i, j) = |U_i & U_j| / (sqrt(|U_i| * |U_j|) + shrink)      (U_i: users of item i; i != j)
  each item keeps its `neighbors` most similar items (sim desc, item_id asc), and
      score(u, i) = sum over the items j of u's history of sim(j -> i), for i among the kept neighbours of j.
  Items are ranked by score desc (scores rounded to 12 decimals so float summation order cannot break ties),
  then item_id asc.

Both return {user: [item_id, ...]} with at most k items, in the order of `users`. With exclude_seen, items in the
user's training history are never recommended. A user without training history (cold) gets the popularity list;
a warm user with fewer than k scored items is padded with popular items (`fill_with_popularity`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

# Co-counts only use a user's MAX_HISTORY most frequent items (weight sum desc, item_id asc): a user with n items
# contributes n^2 pairs, so one crawler-like user would otherwise dominate time and memory.
MAX_HISTORY = 500
# Item pairs (co-counts) and (user, neighbour) expansions (scores) materialised at once: bounds peak memory, and
# chunks that fit in the CPU caches are measurably faster than one big sort.
_PAIR_CHUNK = 1_000_000
_SCORE_CHUNK = 250_000
_SCORE_DECIMALS = 12


@dataclass(frozen=True)
class Interactions:
    """Distinct (user, item) pairs in CSR form, items of a user sorted by index (= item_id order).

    users / items: sorted distinct ids (str). indptr: per user, the slice of `indices` holding its item indices.
    weight: per stored pair, the summed weight (or the number of interactions without a weight column).
    """

    users: np.ndarray
    items: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray
    weight: np.ndarray

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def user_counts(self) -> np.ndarray:
        """Distinct users per item index."""
        return np.bincount(self.indices, minlength=self.n_items)

    def user_index(self, users: Sequence[str]) -> np.ndarray:
        """Row of each user, -1 for users without training history."""
        wanted = np.asarray([str(u) for u in users], dtype=str)
        if not len(wanted) or not self.n_users:
            return np.full(len(wanted), -1, dtype=np.int64)
        pos = np.searchsorted(self.users, wanted)
        pos = np.minimum(pos, self.n_users - 1)
        return np.where(self.users[pos] == wanted, pos, -1).astype(np.int64)


# A table, arrays, or an already indexed `interactions(train)` (to index once for several baselines).
Train = pa.Table | tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, np.ndarray] | Interactions


def _column(values, name: str) -> np.ndarray:
    if isinstance(values, pa.ChunkedArray | pa.Array):
        if values.null_count:
            raise ValueError(f"train.{name} has nulls")
        values = values.to_numpy(zero_copy_only=False)
    return np.asarray(values)


def interactions(train: Train) -> Interactions:
    """Index `train` (see the module docstring) into distinct (user, item) pairs; Interactions pass through."""
    if isinstance(train, Interactions):
        return train
    if isinstance(train, pa.Table):
        user_ids = _column(train.column("user_id"), "user_id")
        item_ids = _column(train.column("item_id"), "item_id")
        weight_column = next((c for c in ("weight", "count") if c in train.column_names), None)
        weights = _column(train.column(weight_column), weight_column) if weight_column else None
    else:
        user_ids, item_ids = np.asarray(train[0]), np.asarray(train[1])
        weights = np.asarray(train[2]) if len(train) > 2 else None
    if len(user_ids) != len(item_ids) or (weights is not None and len(weights) != len(user_ids)):
        raise ValueError("train columns must have the same length")
    users, user_idx = np.unique(user_ids.astype(str), return_inverse=True)
    items, item_idx = np.unique(item_ids.astype(str), return_inverse=True)
    w = np.ones(len(user_idx)) if weights is None else weights.astype(np.float64)
    key = user_idx.astype(np.int64) * max(len(items), 1) + item_idx
    pair_keys, pair_of_row = np.unique(key, return_inverse=True)
    pair_weight = np.bincount(pair_of_row, weights=w, minlength=len(pair_keys))
    pair_user = pair_keys // max(len(items), 1)
    indices = pair_keys % max(len(items), 1)
    indptr = np.zeros(len(users) + 1, dtype=np.int64)
    np.cumsum(np.bincount(pair_user, minlength=len(users)), out=indptr[1:])
    return Interactions(users, items, indptr, indices.astype(np.int64), pair_weight)


def item_probabilities(train: Train) -> dict[str, float]:
    """p(item) = distinct training users of the item / distinct training users: `metrics.novelty`'s input."""
    data = interactions(train)
    if not data.n_users:
        return {}
    shares = data.user_counts() / data.n_users
    return dict(zip(data.items.tolist(), shares.tolist(), strict=True))


def _popularity_order(data: Interactions) -> np.ndarray:
    """Item indices by distinct users desc, item_id asc (lower index = smaller item_id)."""
    counts = data.user_counts()
    return np.lexsort((np.arange(data.n_items), -counts))


def _fill(order: list[int], taken: list[int], excluded: set[int], k: int) -> list[int]:
    """`taken` extended with the first items of `order` that are neither taken nor excluded, up to k."""
    if len(taken) >= k:
        return taken[:k]
    skip = excluded | set(taken)
    out = list(taken)
    for item in order:
        if item not in skip:
            out.append(item)
            if len(out) == k:
                break
    return out


def _history(data: Interactions, row: int) -> np.ndarray:
    return data.indices[data.indptr[row] : data.indptr[row + 1]] if row >= 0 else data.indices[:0]


def popularity_baseline(train: Train, users: Sequence[str], k: int, exclude_seen: bool = True) -> dict[str, list[str]]:
    """The k items with the most distinct training users (ties by item_id), per user minus its seen items."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    data = interactions(train)
    order = _popularity_order(data).tolist()
    head = order[:k]
    out: dict[str, list[str]] = {}
    for user, row in zip(users, data.user_index(users).tolist(), strict=True):
        seen = set(_history(data, row).tolist()) if exclude_seen and row >= 0 else set()
        chosen = _fill(order, [], seen, k) if seen else head
        out[user] = data.items[chosen].tolist()
    return out


def _capped_history(data: Interactions, max_history: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR (indptr, indices) keeping each user's max_history heaviest items (weight desc, item_id asc)."""
    lengths = np.diff(data.indptr)
    if not len(lengths) or lengths.max() <= max_history:
        return data.indptr, data.indices
    pair_user = np.repeat(np.arange(data.n_users), lengths)
    order = np.lexsort((data.indices, -data.weight, pair_user))  # grouped by user, heaviest first
    position = np.arange(len(order)) - data.indptr[pair_user[order]]
    kept = np.sort(order[position < max_history])  # back to (user, item) order
    new_lengths = np.minimum(lengths, max_history)
    indptr = np.zeros_like(data.indptr)
    np.cumsum(new_lengths, out=indptr[1:])
    return indptr, data.indices[kept]


def _chunks(costs: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """Consecutive [start, end) ranges whose summed cost stays under budget (a single costly row is its own range)."""
    bounds, start, total = [], 0, 0
    for row, cost in enumerate(costs.tolist()):
        if total and total + cost > budget:
            bounds.append((start, row))
            start, total = row, 0
        total += cost
    if start < len(costs):
        bounds.append((start, len(costs)))
    return bounds


def _stable_order(key: np.ndarray) -> np.ndarray:
    """np.argsort(key, kind="stable") for non-negative int keys; packs (key, position) into one int64 and sorts
    that when the bits allow, which is several times faster than an argsort."""
    n = len(key)
    if not n:
        return np.zeros(0, dtype=np.int64)
    slot_bits = max(1, (n - 1).bit_length())
    if int(key.max()).bit_length() + slot_bits <= 63:
        packed = (key.astype(np.int64) << slot_bits) | np.arange(n, dtype=np.int64)
        packed.sort()
        return packed & ((1 << slot_bits) - 1)
    return np.argsort(key, kind="stable")


def _sum_by_key(keys: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct keys, sum of weights per key); equal keys are summed in input order (reproducible)."""
    order = _stable_order(keys)
    ordered = keys[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if len(ordered) else np.zeros(0, np.int64)
    sums = np.add.reduceat(weights[order], starts) if len(starts) else np.zeros(0)
    return ordered[starts], sums


def _ranking(group: np.ndarray, score: np.ndarray, tie: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(order, rank within group): the permutation sorting by group asc, score desc, tie asc, and the 0-based
    position of each sorted entry inside its group."""
    by_tie = _stable_order(tie)
    values = np.unique(score)
    descending = len(values) - 1 - np.searchsorted(values, score)
    composite = group.astype(np.int64) * max(len(values), 1) + descending
    order = by_tie[_stable_order(composite[by_tie])]
    ordered = group[order]
    starts = np.r_[True, ordered[1:] != ordered[:-1]] if len(ordered) else np.zeros(0, dtype=bool)
    first = np.maximum.accumulate(np.where(starts, np.arange(len(ordered)), 0)) if len(ordered) else ordered
    return order, np.arange(len(ordered)) - first


def _co_counts(indptr: np.ndarray, indices: np.ndarray, n_items: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Upper-triangle co-counts (i < j, count >= 1) of the binary user x item matrix given in CSR, i.e. X^T X."""
    lengths = np.diff(indptr)
    costs = lengths * lengths
    keys_parts, count_parts = [], []
    for start, end in _chunks(costs, _PAIR_CHUNK):
        block = costs[start:end]
        total = int(block.sum())
        if not total:
            continue
        user = np.repeat(np.arange(start, end), block)
        offset = np.arange(total) - np.repeat(np.cumsum(block) - block, block)
        n_of_pair = lengths[user]
        a = offset // n_of_pair
        b = offset % n_of_pair
        upper = a < b  # a user's items are sorted, so position a < b means item_a < item_b
        base = indptr[user[upper]]
        left = indices[base + a[upper]]
        right = indices[base + b[upper]]
        keys, counts = np.unique(left * n_items + right, return_counts=True)
        keys_parts.append(keys)
        count_parts.append(counts)
    if not keys_parts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    keys, counts = np.concatenate(keys_parts), np.concatenate(count_parts)
    if len(keys_parts) > 1:
        keys, summed = _sum_by_key(keys, counts)
        counts = summed.astype(np.int64)
    return keys // n_items, keys % n_items, counts


@dataclass(frozen=True)
class Neighbors:
    """Kept similarities in CSR by source item: row j holds (neighbor i, sim(j, i)), sim desc, item_id asc."""

    indptr: np.ndarray
    indices: np.ndarray
    sims: np.ndarray

    def row(self, item: int) -> dict[int, float]:
        lo, hi = self.indptr[item], self.indptr[item + 1]
        return dict(zip(self.indices[lo:hi].tolist(), self.sims[lo:hi].tolist(), strict=True))


def item_similarities(
    data: Interactions, neighbors: int = 100, shrink: float = 0.0, max_history: int = MAX_HISTORY
) -> Neighbors:
    """Cosine item-item similarities of the binary matrix (module docstring), each item's top `neighbors` kept."""
    if neighbors < 1:
        raise ValueError(f"neighbors must be >= 1, got {neighbors}")
    if shrink < 0:
        raise ValueError(f"shrink must be >= 0, got {shrink}")
    indptr, indices = _capped_history(data, max_history)
    n_items = data.n_items
    left, right, counts = _co_counts(indptr, indices, n_items)
    item_users = np.bincount(indices, minlength=n_items).astype(np.float64)
    sims = counts / (np.sqrt(item_users[left] * item_users[right]) + shrink)
    source = np.concatenate([left, right])
    target = np.concatenate([right, left])
    sims = np.concatenate([sims, sims])
    order, rank = _ranking(source, np.round(sims, _SCORE_DECIMALS), target)
    keep = order[rank < neighbors]
    source, target, sims = source[keep], target[keep], sims[keep]
    out_indptr = np.zeros(n_items + 1, dtype=np.int64)
    np.cumsum(np.bincount(source, minlength=n_items), out=out_indptr[1:])
    return Neighbors(out_indptr, target.astype(np.int64), sims)


def _gather(indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position in rows, value) of every stored entry of the CSR rows `rows`, grouped by position."""
    lengths = indptr[rows + 1] - indptr[rows]
    pos = np.repeat(np.arange(len(rows)), lengths)
    offset = np.arange(len(pos)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return pos, indices[indptr[rows][pos] + offset]


def item_knn_top_k(
    data: Interactions, sim: Neighbors, rows: np.ndarray, k: int, exclude_seen: bool = True
) -> list[list[int]]:
    """Per user row (all >= 0), the item indices of its top-k scores: score desc, item_id asc.

    Only items reachable from the history (a kept neighbour of a history item) are scored, so a list can be
    shorter than k. Users are processed in chunks of about _SCORE_CHUNK (user, neighbour) expansions.
    """
    hist_pos, hist_item = _gather(data.indptr, data.indices, rows)
    fan = sim.indptr[hist_item + 1] - sim.indptr[hist_item]
    cost = np.bincount(hist_pos, weights=fan, minlength=len(rows)).astype(np.int64)
    pair_bounds = np.searchsorted(hist_pos, np.arange(len(rows) + 1))
    slots = np.arange(len(sim.indices))
    n_items = data.n_items
    kept_pos, kept_item = [], []
    for start, end in _chunks(cost, _SCORE_CHUNK):
        lo, hi = pair_bounds[start], pair_bounds[end]
        expanded, slot = _gather(sim.indptr, slots, hist_item[lo:hi])
        local = hist_pos[lo:hi][expanded] - start
        keys, scores = _sum_by_key(local * n_items + sim.indices[slot], sim.sims[slot])
        if exclude_seen and len(keys):
            seen = (hist_pos[lo:hi] - start) * n_items + hist_item[lo:hi]  # sorted: CSR rows are sorted
            at = np.minimum(np.searchsorted(seen, keys), len(seen) - 1)
            unseen = seen[at] != keys
            keys, scores = keys[unseen], scores[unseen]
        pos, item = keys // n_items, keys % n_items
        order, rank = _ranking(pos, np.round(scores, _SCORE_DECIMALS), item)
        top = order[rank < k]
        kept_pos.append(pos[top] + start)
        kept_item.append(item[top])
    pos = np.concatenate(kept_pos) if kept_pos else np.zeros(0, dtype=np.int64)
    item = np.concatenate(kept_item) if kept_item else np.zeros(0, dtype=np.int64)
    bounds = np.searchsorted(pos, np.arange(len(rows) + 1))
    return [item[bounds[p] : bounds[p + 1]].tolist() for p in range(len(rows))]


def item_knn_baseline(
    train: Train,
    users: Sequence[str],
    k: int,
    exclude_seen: bool = True,
    neighbors: int = 100,
    shrink: float = 0.0,
    fill_with_popularity: bool = True,
    max_history: int = MAX_HISTORY,
) -> dict[str, list[str]]:
    """Item-kNN (cosine, binary) top-k per user; cold users get popularity (see the module docstring)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    data = interactions(train)
    sim = item_similarities(data, neighbors=neighbors, shrink=shrink, max_history=max_history)
    order = _popularity_order(data).tolist()
    user_rows = data.user_index(users)
    warm = np.flatnonzero(user_rows >= 0)
    chosen: list[list[int]] = [[] for _ in users]
    for index, picked in zip(warm.tolist(), item_knn_top_k(data, sim, user_rows[warm], k, exclude_seen), strict=True):
        chosen[index] = picked
    out: dict[str, list[str]] = {}
    for index, (user, row) in enumerate(zip(users, user_rows.tolist(), strict=True)):
        picked = chosen[index]
        if row < 0 or (fill_with_popularity and len(picked) < k):
            seen = set(_history(data, row).tolist()) if exclude_seen else set()
            picked = _fill(order, picked, seen, k)
        out[user] = data.items[picked].tolist() if picked else []
    return out
