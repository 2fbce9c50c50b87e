"""Diversity: MMR re-ranking and per-tag caps over the top of the order (the seed's recsys-algo diversity step).

  pool     the first `pool` items of the final order (pins first), after filters, rules and tag constraints
  caps     {tag prefix: n}: an item is skipped while a tag of it with that prefix is already on n chosen items
           (e.g. {"brand:": 2}: at most two items of each brand); pins are always kept and count towards the caps
  MMR      greedily, the next item is the one with the largest
             λ · score(c) / max score  -  (1 - λ) · max over the chosen items s of sim(c, s)
           (ties: the earlier in the order); λ = 1 keeps the score order, smaller λ prefers items unlike the chosen
  sim      "tags": the Jaccard index of the two items' catalog tags (the seed's); "cooc": the larger of the two
           items' co-visitation cosines (0 for pairs outside each other's cooc top-K)

Unlike the seed, which re-sorts MMR's choice by score, the chosen order is kept: it is the point of re-ranking.
When the caps leave fewer than k items in the pool, fewer are returned (the seed's behaviour).
Pure: the similarity is a matrix the caller builds from the signal arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np


def tag_jaccard(items: Sequence[str], tags: Callable[[str], tuple[str, ...]]) -> np.ndarray:
    """The n x n Jaccard index of the items' tag sets (0 where neither has a tag)."""
    vocabulary: dict[str, int] = {}
    rows = [[vocabulary.setdefault(tag, len(vocabulary)) for tag in set(tags(item))] for item in items]
    incidence = np.zeros((len(items), len(vocabulary)))
    for row, columns in enumerate(rows):
        incidence[row, columns] = 1.0
    inter = incidence @ incidence.T
    sizes = incidence.sum(axis=1)
    union = sizes[:, None] + sizes[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def pair_matrix(n: int, source: np.ndarray, target: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The n x n symmetric matrix of pair scores (the larger of both directions; 0 for pairs not given)."""
    out = np.zeros((n, n))
    np.maximum.at(out, (source, target), scores)
    return np.maximum(out, out.T)


def _capped(item_tags: tuple[str, ...], caps: Mapping[str, int]) -> list[tuple[str, int]]:
    """The item's tags that a cap applies to, with their cap (the longest matching prefix)."""
    out = []
    for tag in item_tags:
        matches = [prefix for prefix in caps if tag.startswith(prefix)]
        if matches:
            out.append((tag, caps[max(matches, key=len)]))
    return out


def diversify(
    pool: Sequence[str],
    scores: Mapping[str, float],
    fixed: int,
    limit: int,
    mmr_lambda: float,
    caps: Mapping[str, int],
    tags: Callable[[str], tuple[str, ...]],
    similarity: Callable[[Sequence[str]], np.ndarray] | None = None,
) -> list[str]:
    """Up to `limit` items of `pool` (in the final order, its first `fixed` items pinned): the pins, then the rest
    chosen by the caps and, with mmr_lambda > 0, by MMR (module docstring). `similarity(items)` gives the n x n
    similarity of `pool`'s items (needed only with MMR)."""
    chosen: list[str] = []
    counts: dict[str, int] = {}
    capped = {item: _capped(tags(item), caps) for item in pool} if caps else {}

    def take(item: str) -> None:
        chosen.append(item)
        for tag, _ in capped.get(item, ()):
            counts[tag] = counts.get(tag, 0) + 1

    def blocked(item: str) -> bool:
        return any(counts.get(tag, 0) >= cap for tag, cap in capped.get(item, ()))

    for item in pool[:fixed]:
        take(item)  # pins are kept and count towards the caps
    rest = list(pool[fixed:])
    if mmr_lambda <= 0:
        for item in rest:
            if len(chosen) >= limit:
                break
            if not blocked(item):
                take(item)
        return chosen

    sim = similarity(pool) if similarity is not None else np.zeros((len(pool), len(pool)))
    relevance = np.array([scores.get(item, 0.0) for item in rest], dtype=np.float64)
    top = float(relevance.max()) if len(relevance) else 0.0
    relevance = relevance / top if top > 0 else np.zeros(len(rest))
    closest = sim[fixed:, :fixed].max(axis=1) if fixed else np.zeros(len(rest))  # to the chosen items so far
    open_ = np.ones(len(rest), dtype=bool)
    while len(chosen) < limit and open_.any():
        value = np.where(open_, mmr_lambda * relevance - (1 - mmr_lambda) * closest, -np.inf)
        at = int(np.argmax(value))  # the first of equal values: the earlier in the order
        open_[at] = False
        item = rest[at]
        if blocked(item):
            continue
        take(item)
        closest = np.maximum(closest, sim[fixed:, fixed + at])
    return chosen
