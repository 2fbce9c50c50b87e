"""EASE (Steck, WWW 2019), a linear item-item autoencoder: the strongest simple baseline for user top-N on
implicit feedback. numpy only (no scipy).

Over the binary user x item matrix X (a user used an item or not, however often):

    G = X^T X + lambda * I          (dense items x items, float32)
    P = G^-1
    B = I - P * diag(1 / diag(P))   i.e. B[i, j] = -P[i, j] / P[j, j] for i != j, and B[j, j] = 0
    score(u, j) = x_u . B[:, j]      (x_u: the user's row; binary, or weighted, see below)

Items are ranked by score desc, ties by item index asc (= item_id string order, as in `baselines`); with
exclude_seen, the user's own items are never recommended. A user without items scores 0 everywhere: the caller
decides what cold users get (the holdout protocol has none).

"Recency-weighted" EASE keeps the same B and only changes x_u: the user's item at rank r from their latest
interaction (r = 0 for the latest) weighs decay^r, and an item used several times keeps its latest (largest)
weight. decay = 1 is plain EASE.

Cost. G takes n_items^2 * 4 bytes (23,715 items: 2.2 GB) and the inverse O(n_items^3): it is computed from a
Cholesky factor (`spd_inverse`), about 3x faster than `np.linalg.inv`, but still minutes on 2 cores at that
size, so `ease_weights_cached` keeps B on disk keyed by the data and lambda. Beyond `MAX_ITEMS` (30,000) items the
dense matrices no longer fit a laptop's memory (a few copies of 3.6+ GB) nor its patience: `ease_weights` refuses
with a ValueError rather than restricting the catalog silently; restrict the items yourself (e.g. to the most
popular ones) before calling it if you need EASE on a larger catalog.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recsys_tools.evaluation.baselines import Interactions

MAX_ITEMS = 30_000
# Below this size a triangular block is inverted by LAPACK directly; above it, by blocks (matrix products).
_LEAF = 1024
# Scoring materialises (users in a chunk) x n_items scores plus the gathered B rows: ~USER_CHUNK * n_items * 4 B
# each, about 50 MB at 23,715 items.
USER_CHUNK = 512
_PAIRS = 2_000_000


def gram(data: Interactions) -> np.ndarray:
    """X^T X of the binary user x item matrix, dense float32 (n_items x n_items): co-users of each item pair."""
    n = data.n_items
    out = np.zeros((n, n), dtype=np.float32)
    lengths = np.diff(data.indptr)
    costs = lengths * lengths
    # Users in groups of about _PAIRS item pairs: each user contributes every (a, b) of its items, a == b included.
    group = (np.cumsum(costs) - costs) // _PAIRS
    edges = np.r_[0, np.flatnonzero(np.diff(group)) + 1, len(costs)].tolist()
    for start, end in zip(edges[:-1], edges[1:], strict=True):
        block = costs[start:end]
        if not block.sum():
            continue
        user = np.repeat(np.arange(start, end), block)
        offset = np.arange(int(block.sum())) - np.repeat(np.cumsum(block) - block, block)
        base, width = data.indptr[user], lengths[user]
        keys = data.indices[base + offset // width] * n + data.indices[base + offset % width]
        keys, counts = np.unique(keys, return_counts=True)
        out.reshape(-1)[keys] += counts  # keys are distinct: a plain fancy-index add is exact
    return out


def _lower_inverse(lower: np.ndarray) -> np.ndarray:
    """Inverse of a lower-triangular matrix by 2x2 blocks: [[A, 0], [C, D]]^-1 = [[A^-1, 0], [-D^-1 C A^-1, D^-1]]."""
    n = len(lower)
    if n <= _LEAF:
        return np.tril(np.linalg.inv(lower))
    h = n // 2
    a_inv = _lower_inverse(lower[:h, :h])
    d_inv = _lower_inverse(lower[h:, h:])
    out = np.zeros_like(lower)
    out[:h, :h] = a_inv
    out[h:, h:] = d_inv
    out[h:, :h] = -(d_inv @ (lower[h:, :h] @ a_inv))
    return out


def _lower_gram(lower: np.ndarray) -> np.ndarray:
    """W^T W for a lower-triangular W by 2x2 blocks, skipping the zero block."""
    n = len(lower)
    if n <= _LEAF:
        return lower.T @ lower
    h = n // 2
    c = np.ascontiguousarray(lower[h:, :h])
    out = np.empty_like(lower)
    out[:h, :h] = _lower_gram(lower[:h, :h])
    out[:h, :h] += c.T @ c
    out[:h, h:] = c.T @ lower[h:, h:]
    out[h:, :h] = out[:h, h:].T
    out[h:, h:] = _lower_gram(lower[h:, h:])
    return out


def _cholesky_in_place(matrix: np.ndarray) -> np.ndarray:
    """The lower Cholesky factor of a symmetric positive definite matrix, computed over it (it is overwritten).

    Right-looking by blocks of _LEAF columns, updating only the lower blocks of the trailing matrix: nearly all the
    work is matrix products, about twice as fast as `np.linalg.cholesky` on 2 cores.
    """
    n = len(matrix)
    for start in range(0, n, _LEAF):
        end = min(start + _LEAF, n)
        diagonal = np.linalg.cholesky(matrix[start:end, start:end])
        matrix[start:end, start:end] = diagonal  # np.linalg.cholesky zeroes its upper triangle
        matrix[start:end, end:] = 0.0
        if end < n:
            below = matrix[end:, start:end] @ _lower_inverse(diagonal).T
            matrix[end:, start:end] = below
            for col in range(end, n, _LEAF):
                stop = min(col + _LEAF, n)
                matrix[col:, col:stop] -= below[col - end :] @ below[col - end : stop - end].T
    return matrix


def spd_inverse(matrix: np.ndarray, overwrite: bool = False) -> np.ndarray:
    """The inverse of a symmetric positive definite matrix: G = L L^T, G^-1 = L^-T L^-1 (dtype kept).

    With overwrite, `matrix` is used as work space (saves one n^2 copy) and holds garbage afterwards.
    """
    lower = _cholesky_in_place(matrix if overwrite else matrix.copy())
    return _lower_gram(_lower_inverse(lower))


def _check_size(n_items: int) -> None:
    if n_items > MAX_ITEMS:
        raise ValueError(
            f"EASE needs dense {n_items} x {n_items} matrices ({n_items**2 * 4 / 1e9:.1f} GB each) and their inverse: "
            f"more than {MAX_ITEMS} items is refused; restrict the catalog (e.g. to the most popular items) first"
        )


def ease_weights(data: Interactions, lam: float) -> np.ndarray:
    """B (float32, n_items x n_items, zero diagonal) for the binary matrix of `data` and L2 weight `lam` > 0."""
    if lam <= 0:
        raise ValueError(f"lambda must be > 0, got {lam}")
    _check_size(data.n_items)
    g = gram(data)
    g[np.diag_indices_from(g)] += np.float32(lam)
    p = spd_inverse(g, overwrite=True)
    del g
    diag = np.diag(p).copy()
    p /= -diag[None, :]  # B = -P / diag(P) column-wise, in place: no second n^2 copy
    p[np.diag_indices_from(p)] = 0.0
    return p


def data_key(data: Interactions) -> str:
    """A digest of the binary matrix (item ids, user rows): equal for the same train data, whatever its order."""
    digest = hashlib.sha256()
    digest.update("\x00".join(data.items.tolist()).encode())
    digest.update(np.ascontiguousarray(data.indptr, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(data.indices, dtype=np.int64).tobytes())
    return digest.hexdigest()[:20]


def ease_weights_cached(data: Interactions, lam: float, cache_dir: Path | str) -> np.ndarray:
    """`ease_weights`, stored once as cache_dir/ease-{data_key}-{lam}.npy and memory-mapped on later calls."""
    directory = Path(cache_dir)
    path = directory / f"ease-{data_key(data)}-{lam:g}.npy"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        weights = ease_weights(data, lam)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        with partial.open("wb") as handle:  # written under another name, then renamed: never a torn cache file
            np.save(handle, weights)
        partial.replace(path)
        return weights
    return np.load(path, mmap_mode="r")


def binary_rows(data: Interactions, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR (indptr, item indices, weights = 1) of the given user rows of `data` (-1 = a user without items)."""
    lengths = np.where(rows >= 0, data.indptr[rows + 1] - data.indptr[rows], 0)
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    pos = np.repeat(np.arange(len(rows)), lengths)
    offset = np.arange(int(indptr[-1])) - indptr[pos]
    indices = data.indices[data.indptr[rows[pos]] + offset] if len(pos) else np.zeros(0, dtype=np.int64)
    return indptr, indices.astype(np.int64), np.ones(len(indices), dtype=np.float32)


def top_k(
    weights: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
    values: np.ndarray,
    k: int,
    exclude_seen: bool = True,
    chunk: int = USER_CHUNK,
) -> list[list[int]]:
    """Per user row of the CSR (indptr, indices, values): the item indices of its top-k scores x_u . B.

    Score desc, item index asc; with exclude_seen the row's own items (any value) are left out, so a list is
    shorter than k only when fewer than k items are left. Users are scored `chunk` at a time.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n_items = weights.shape[1]
    out: list[list[int]] = []
    for start in range(0, len(indptr) - 1, chunk):
        end = min(start + chunk, len(indptr) - 1)
        lo, hi = indptr[start], indptr[end]
        lengths = np.diff(indptr[start : end + 1])
        scores = np.zeros((end - start, n_items), dtype=np.float32)
        filled = np.flatnonzero(lengths)
        if hi > lo:
            gathered = np.asarray(weights[indices[lo:hi]], dtype=np.float32) * values[lo:hi, None]
            scores[filled] = np.add.reduceat(gathered, (indptr[start:end] - lo)[filled], axis=0)
        if exclude_seen:
            pos = np.repeat(np.arange(end - start), lengths)
            scores[pos, indices[lo:hi]] = -np.inf
        out.extend(_best(scores, k))
    return out


def _best(scores: np.ndarray, k: int) -> list[list[int]]:
    """Per row, the columns of the k largest finite scores: score desc, column asc (exact ties at the cut too)."""
    width = min(k, scores.shape[1])
    kth = -np.partition(-scores, width - 1, axis=1)[:, width - 1]
    row, col = np.nonzero((scores >= kth[:, None]) & np.isfinite(scores))
    order = np.lexsort((col, -scores[row, col], row))
    row, col = row[order], col[order]
    bounds = np.searchsorted(row, np.arange(len(scores) + 1))
    return [col[bounds[r] : min(bounds[r + 1], bounds[r] + k)].tolist() for r in range(len(scores))]


def recency_rows(histories: Sequence[Sequence[int]], decay: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR (indptr, item indices, weights) from each user's item indices in time order (oldest first).

    The item at rank r from the latest interaction weighs decay^r (r = 0: the latest); a repeated item keeps its
    latest weight. Items of a row are sorted by index. decay = 1 gives the binary rows.
    """
    if not 0 < decay <= 1:
        raise ValueError(f"decay must be in (0, 1], got {decay}")
    indptr, indices, values = [0], [], []
    for history in histories:
        latest: dict[int, float] = {}
        for rank, item in enumerate(reversed(list(history))):
            latest.setdefault(int(item), decay**rank)
        for item in sorted(latest):
            indices.append(item)
            values.append(latest[item])
        indptr.append(len(indices))
    return (
        np.asarray(indptr, dtype=np.int64),
        np.asarray(indices, dtype=np.int64),
        np.asarray(values, dtype=np.float32),
    )
