"""What ranking reads from the artifacts of one manifest: `SignalArrays`, lookups over item codes, no I/O in ranking.

`SignalArrays` is implemented by the reader (`ArtifactArrays`, one view per request over a manifest's loaded
artifacts); ranking has no other signal protocol. A kind missing from the manifest is absent from `available`; its
lookups return nothing. `unreadable` holds the kinds whose artifact exists but cannot be read: such a kind leaves
`available` once a lookup found it broken, and its lookups return nothing too.
`Scored` and `Interaction` are the reader's per-item lookup results (`ArtifactSignals`), `History` a user's rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np


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


@dataclass(frozen=True)
class History:
    """A user's implicit rows in rank order as arrays: item ids, scores, counts, last interactions (epoch µs)."""

    names: list[str]
    scores: np.ndarray
    counts: np.ndarray
    last_us: np.ndarray

    def __len__(self) -> int:
        return len(self.names)

    @staticmethod
    def concat(parts: list[History]) -> History:
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return EMPTY_HISTORY
        return History(
            [name for part in parts for name in part.names],
            np.concatenate([part.scores for part in parts]),
            np.concatenate([part.counts.astype(np.int64) for part in parts]),
            np.concatenate([part.last_us for part in parts]),
        )

    def interactions(self) -> list[Interaction]:
        return [
            Interaction(item, score, count, last)
            for item, score, count, last in zip(
                self.names, self.scores.tolist(), self.counts.tolist(), self.last_us.tolist(), strict=True
            )
        ]


EMPTY_HISTORY = History([], np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64))


class SignalArrays(Protocol):
    """One request's view of the signals as arrays over item codes (what ranking reads).

    The reader's `ArtifactArrays` is the implementation (tests build it over in-memory artifact tables). A code is an
    int for one item id within the view (`codes` gives the same code for the same id every time). `prepare(kinds)`
    loads the kinds a request will use before any id is turned into a code.
    """

    available: frozenset[str]  # as the request started
    unreadable: frozenset[str]  # as of now: a kind this request failed to load is in it at once

    def prepare(self, kinds: Iterable[str]) -> None: ...

    def codes(self, names: Iterable[str]) -> np.ndarray:
        """The code of each item id (int64)."""

    def names(self, codes: np.ndarray) -> list[str]:
        """The item id of each code."""

    def name(self, code: int) -> str: ...

    def history(self, user_id: str) -> History:
        """The user's implicit rows in rank order (empty for unknown users)."""

    def popular(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Codes and scores of the top `n` items by popularity, best first."""

    def popularity_of(self, codes: np.ndarray) -> np.ndarray:
        """The popularity score of each code (0 where the artifact has none)."""

    def neighbours(self, kind: str, sources: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(source index, code, score) of the neighbours of each source item in `kind` (cooc, session_seq,
        content_sim or item_knn), sources in order, each source's neighbours best first."""

    def tags(self, item_id: str) -> tuple[str, ...]:
        """The item's normalized catalog tags (empty if unknown)."""
