"""Ranking's own input and output types: plain values, no HTTP models (the API maps its wire models to these).

RecommendQuery / SimilarQuery  what to rank: the subject, anchors, k, resolved weights, the config's knobs,
                               candidate include/exclude lists, tag constraints, the rules' scope and time, and
                               what each item should carry (reasons, explain)
Ranking                        the ranked items (rank 1..n, at most k) and ranking-level warnings (code, detail)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

SIGNALS = ("pop", "cooc", "implicit", "session", "content", "knn")
"""The blend's signals, in the order of weights, reasons and explain."""

POP, COOC, IMPLICIT, SESSION, CONTENT, KNN = SIGNALS

KIND = {
    POP: "popularity",
    COOC: "cooc",
    IMPLICIT: "implicit",
    SESSION: "session_seq",
    CONTENT: "content_sim",
    KNN: "item_knn",
}
"""The artifact kind (manifest key) each signal reads."""

REASON = {
    POP: "recent_popularity",
    COOC: "co_visitation",
    IMPLICIT: "collaborative",
    SESSION: "session_sequence",
    CONTENT: "content_similarity",
    KNN: "collaborative_similarity",
}
"""The reason name of each signal (the seed's, plus collaborative_similarity for item_knn)."""

# Warning codes ranking produces (the API adds its own, such as DEFAULT_APPLIED or MANIFEST_STALE).
SIGNAL_UNAVAILABLE = "SIGNAL_UNAVAILABLE"
TAG_LOOKUP_FAILED = "TAG_LOOKUP_FAILED"
RULE_PIN_INJECTED = "RULE_PIN_INJECTED"
CONSTRAINTS_FILTERED = "CONSTRAINTS_FILTERED"
CANDIDATES_INCLUDE_FILTERED = "CANDIDATES_INCLUDE_FILTERED"
CANDIDATES_INCLUDE_EMPTY = "CANDIDATES_INCLUDE_EMPTY"

Explain = Literal["none", "summary", "full"]


@dataclass(frozen=True)
class Knobs:
    """The tenant config's ranking knobs for one surface (docs/explanation/ranking.md#tenant-config)."""

    exclude_seen: bool = True
    recent_items: int = 5
    fanout: int = 200
    max_pins: int = 3
    anchor_decay: float = 0.5
    history_decay: float = 0.8


@dataclass(frozen=True)
class TagConstraints:
    """Normalized (lowercase) tag constraints: any of `required`, none of `forbidden`, at most `max_per_tag[t]`."""

    required: tuple[str, ...] = ()
    forbidden: tuple[str, ...] = ()
    max_per_tag: Mapping[str, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.required or self.forbidden or self.max_per_tag)


@dataclass(frozen=True)
class DiversityKnobs:
    """MMR re-ranking and per-tag caps over the top `pool` candidates (recsys.ranking.diversity)."""

    mmr_lambda: float = 0.0  # 0: no MMR
    similarity: Literal["tags", "cooc"] = "tags"
    caps: Mapping[str, int] = field(default_factory=dict)  # tag prefix -> at most n items per tag with it
    pool: int = 100


@dataclass(frozen=True)
class ExplorationKnobs:
    """Epsilon-greedy over the top `pool` candidates, drawn from a generator seeded with `seed` (the API derives it
    from the request id, so the same request is explored the same way)."""

    epsilon: float
    seed: int
    pool: int = 20


@dataclass(frozen=True)
class Detail:
    """What each returned item carries besides id, rank and score."""

    reasons: bool = False
    explain: Explain = "none"


@dataclass(frozen=True)
class Scope:
    """Where and when the request is ranked: rules apply by surface, segment and time."""

    surface: str
    segment: str
    now: dt.datetime


@dataclass(frozen=True)
class RecommendQuery:
    """One recommend ranking. `anchors` are the request's (most recent first, already cut to max_anchors);
    `weights` are resolved (request > surface > tenant > defaults, all-zero already turned into popularity)."""

    subject: str | None
    k: int
    weights: Mapping[str, float]
    knobs: Knobs
    scope: Scope
    anchors: tuple[str, ...] = ()
    include_ids: tuple[str, ...] = ()
    exclude_ids: tuple[str, ...] = ()
    constraints: TagConstraints | None = None
    detail: Detail = Detail()
    popularity_fallback: bool = False  # a single-signal mode: rank by popularity when the signal scores all items 0
    diversity: DiversityKnobs | None = None
    exploration: ExplorationKnobs | None = None


@dataclass(frozen=True)
class SimilarQuery:
    """Items similar to `item_id`, blended with `weights` (cooc, knn and content are read)."""

    item_id: str
    k: int
    weights: Mapping[str, float]
    constraints: TagConstraints | None = None
    detail: Detail = Detail()


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs ~1 µs more per item
class RankedItem:
    item_id: str
    rank: int
    score: float
    reasons: list[str] | None = None
    explain: dict[str, Any] | None = None
    propensity: float | None = None  # with exploration: P(this item in this slot | the slots before it)


@dataclass(slots=True)
class RankingWarning:
    code: str
    detail: str


@dataclass
class Ranking:
    """Ranked items (rank 1..n, at most k) and the warnings ranking produced (the API adds its own)."""

    items: list[RankedItem]
    warnings: list[RankingWarning] = field(default_factory=list)
