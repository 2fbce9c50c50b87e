"""Filters: item tags (memoized per request), the required-tags filter, and the warnings of tag constraints and
selection (TAG_LOOKUP_FAILED, CONSTRAINTS_FILTERED, CANDIDATES_INCLUDE_*)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from recsys.ranking.selection import Selection
from recsys.ranking.types import (
    CANDIDATES_INCLUDE_EMPTY,
    CANDIDATES_INCLUDE_FILTERED,
    CONSTRAINTS_FILTERED,
    CONTENT,
    KIND,
    TAG_LOOKUP_FAILED,
    RankingWarning,
    TagConstraints,
)


class Tags:
    """Per-request memo of item tags (each item is looked up at most once)."""

    def __init__(self, lookup: Callable[[str], tuple[str, ...]]) -> None:
        self._lookup = lookup
        self._cache: dict[str, tuple[str, ...]] = {}

    def __call__(self, item_id: str) -> tuple[str, ...]:
        tags = self._cache.get(item_id)
        if tags is None:
            tags = self._cache[item_id] = tuple(self._lookup(item_id))
        return tags


def carries_any(item_id: str, tags: Tags, required: set[str]) -> bool:
    return any(tag in required for tag in tags(item_id))


def keep_required(
    eligible: np.ndarray, names: list[str], tags: Tags, required: set[str]
) -> tuple[np.ndarray, list[str]]:
    """The eligible numbers (and their ids) of the items carrying any of the `required` tags."""
    keep = [carries_any(name, tags, required) for name in names]
    return eligible[np.array(keep, dtype=bool)], [name for name, kept in zip(names, keep, strict=True) if kept]


def tag_lookup_warning(constraints: TagConstraints | None, usable: frozenset[str]) -> list[RankingWarning]:
    """Tag constraints need content_sim, the tag source."""
    if constraints and KIND[CONTENT] not in usable:
        return [RankingWarning(TAG_LOOKUP_FAILED, "failed to fetch item tags for constraints")]
    return []


def selection_warnings(selection: Selection, allow: set[str] | None) -> list[RankingWarning]:
    warnings = []
    if selection.tag_removed:
        warnings.append(
            RankingWarning(CONSTRAINTS_FILTERED, f"{selection.tag_removed} items removed by tag constraints")
        )
    if allow is not None:
        if not selection.kept:
            warnings.append(RankingWarning(CANDIDATES_INCLUDE_EMPTY, "no items matched candidates.include_ids"))
        elif selection.include_removed:
            warnings.append(
                RankingWarning(
                    CANDIDATES_INCLUDE_FILTERED,
                    f"{selection.include_removed} items removed by candidates.include_ids",
                )
            )
    return warnings
