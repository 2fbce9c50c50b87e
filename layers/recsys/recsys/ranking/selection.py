"""Selection: the final order (pins, then score rounded to 6 decimals desc, then item_id) and the walk that keeps
items until k, dropping those the tag constraints or the include_ids allow-list refuse (later items backfill)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import islice

import numpy as np

from recsys.ranking.types import TagConstraints

_WALK_CHUNK = 32


def round6(value: float) -> float:
    return round(value, 6) + 0.0  # + 0.0 turns -0.0 into 0.0


def by_score(
    scores: np.ndarray, codes: np.ndarray, names: Callable[[np.ndarray], list[str]], position: dict[str, int]
) -> Iterator[str]:
    """Candidate ids by score rounded to 6 decimals desc, then item_id, made lazily (a walk rarely goes past k).

    Rounding keeps the order of raw scores, so equal rounded scores are neighbours in the raw order: sort the raw
    scores once and order each run of equal rounded scores by id. Records each yielded id's index in `position`.
    """
    order = np.argsort(-scores, kind="stable")
    n = len(order)
    at: list[int] = []
    ordered: list[float] = []  # Python floats: round() must be Python's, not numpy's
    ids: list[str] = []

    def convert(upto: int) -> None:  # a chunk at a time: most of the order is never walked
        chunk = order[len(at) : max(upto + 1, len(at) + _WALK_CHUNK)]
        at.extend(chunk.tolist())
        ordered.extend(scores[chunk].tolist())
        ids.extend(names(codes[chunk]))

    start = 0
    rounded = None
    while start < n:
        if start >= len(at):
            convert(start)
        if rounded is None:
            rounded = round6(ordered[start])
        end, following = start + 1, None
        while end < n:
            if end >= len(at):
                convert(end)
            following = round6(ordered[end])
            if following != rounded:
                break
            end, following = end + 1, None
        if end - start == 1:
            position[ids[start]] = at[start]
            yield ids[start]
        else:
            for name, index in sorted(zip(ids[start:end], at[start:end], strict=True)):
                position[name] = index
                yield name
        start, rounded = end, following


def in_order(scores: Mapping[str, float], pinned: list[str]) -> list[str]:
    """Pinned items first (pin order), then the others by score rounded to 6 decimals desc, then item_id."""
    pinned_set = set(pinned)
    rest = sorted((item for item in scores if item not in pinned_set), key=lambda item: (-round6(scores[item]), item))
    return pinned + rest


@dataclass
class Selection:
    kept: list[str]
    tag_removed: int = 0
    include_removed: int = 0


def select(
    ordered: Iterable[str],
    k: int,
    tags: Callable[[str], tuple[str, ...]],
    constraints: TagConstraints | None,
    allow: set[str] | None,
) -> Selection:
    """Keep items in order until k: forbidden_tags / max_per_tag first, then the include_ids allow-list."""
    forbidden = set(constraints.forbidden) if constraints else set()
    caps: Mapping[str, int] = constraints.max_per_tag if constraints else {}
    counts: dict[str, int] = {}
    selection = Selection(kept=[])
    if not forbidden and not caps and allow is None:  # nothing to check: the first k
        selection.kept.extend(islice(ordered, k))
        return selection
    passed = 0  # items that passed the tag constraints: the allow-list counts removals among the first k of them
    for item in ordered:
        if len(selection.kept) >= k:
            break
        item_tags = tags(item) if forbidden or caps else ()
        if any(tag in forbidden for tag in item_tags) or any(
            counts.get(tag, 0) >= caps[tag] for tag in item_tags if tag in caps
        ):
            selection.tag_removed += 1
            continue
        passed += 1
        if allow is not None and item not in allow:
            if passed <= k:
                selection.include_removed += 1
            continue
        selection.kept.append(item)
        for tag in item_tags:
            if tag in caps:
                counts[tag] = counts.get(tag, 0) + 1
    return selection
