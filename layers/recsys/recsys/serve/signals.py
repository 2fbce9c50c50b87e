"""What ranking reads from the artifacts of one manifest: small lookups, no I/O in the ranking code itself.

`Signals` is implemented over loaded artifacts by `recsys.serve.artifacts` and by plain dicts in tests.
A kind missing from the manifest is simply absent from `available`; its lookups return nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Scored:
    """One neighbour/candidate of a lookup: the item and the artifact's normalized score (0..1 where defined)."""

    item_id: str
    score: float


@dataclass(frozen=True)
class Interaction:
    """One item of a user's implicit row: decayed weighted score, event count and last interaction (epoch µs)."""

    item_id: str
    score: float
    count: int
    last_us: int


class Signals(Protocol):
    available: frozenset[str]  # artifact kinds present in the manifest

    def popular(self, n: int) -> list[Scored]:
        """Top `n` items by popularity score (descending), score = the artifact's decayed weighted count."""

    def popularity_of(self, item_id: str) -> float:
        """An item's popularity score (0 if it is not in the artifact)."""

    def co_visited(self, item_id: str) -> list[Scored]:
        """cooc neighbours of `item_id`, score = cosine (0..1), best first."""

    def co_visit_counts(self, item_id: str) -> dict[str, int]:
        """cooc raw session counts of `item_id`'s neighbours (the seed's /v1/similar score)."""

    def user_items(self, user_id: str) -> list[Interaction]:
        """The user's implicit row (best score first); empty for unknown users."""

    def next_items(self, item_id: str) -> list[Scored]:
        """session_seq successors of `item_id`, score = share of transitions out of it (0..1), best first."""

    def item_neighbors(self, item_id: str) -> list[Scored]:
        """item_knn neighbours of `item_id`, score = shrunk cosine over shared users (0..1), best first."""

    def similar_by_tags(self, item_id: str) -> list[Scored]:
        """content_sim neighbours of `item_id`, score = cosine over tag sets (0..1), best first."""

    def tags(self, item_id: str) -> tuple[str, ...]:
        """The item's normalized catalog tags (empty if unknown)."""
