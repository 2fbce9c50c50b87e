"""Candidates: who the request is for (history, recent items, anchors, excluded items) and the lookups that propose
items (popularity top F, the cooc / session_seq / content_sim neighbours of the anchors, the item_knn neighbours of
the visitor's latest items, the history when seen items may return, the allow-list), numbered together.

Every lookup goes through `SignalArrays`; a source whose weight is 0 is not looked up, and a missing kind is noted
in `Candidates.missing` (its warning is the request's).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from recsys.ranking.signals import EMPTY_HISTORY, History, SignalArrays
from recsys.ranking.types import CONTENT, COOC, IMPLICIT, KIND, KNN, POP, SESSION, RecommendQuery

KNN_HISTORY_ITEMS = 50
"""The knn signal looks up the item_knn neighbours of at most this many of the visitor's most recent items."""

_NO_CODES = np.zeros(0, np.int64)


def _order_desc(keys: list[np.ndarray], names: list[str]) -> list[int]:
    """Positions sorted by each key descending (the first key first), ties by name, then position (stable)."""
    n = len(names)
    if n == 0:
        return []
    order = np.lexsort([-key for key in reversed(keys)])
    positions = order.tolist()
    same = np.ones(n - 1, dtype=bool)
    for key in keys:
        ordered = key[order]
        same &= ordered[1:] == ordered[:-1]
    if not same.any():
        return positions
    out: list[int] = []
    starts = [0, *(np.flatnonzero(~same) + 1).tolist(), n]
    for start, end in zip(starts, starts[1:], strict=False):
        run = positions[start:end]
        out.extend(sorted(run, key=names.__getitem__) if end - start > 1 else run)
    return out


def recent(history: History, count: int) -> list[str]:
    """The `count` distinct history items with the latest last_us (ties: score desc, item_id asc)."""
    found: dict[str, None] = {}
    if count <= 0:
        return []
    for at in _order_desc([history.last_us, history.scores], history.names):
        found.setdefault(history.names[at])
        if len(found) >= count:
            break
    return list(found)


def latest(requested: list[str], history: History) -> list[str]:
    """The KNN_HISTORY_ITEMS most recent items of the visitor: the request anchors, then the history items with a
    score > 0 by last_us desc (ties: score desc, item_id asc), each once."""
    keep = np.flatnonzero(history.scores > 0)
    positive = History(
        [history.names[at] for at in keep.tolist()], history.scores[keep], history.counts[keep], history.last_us[keep]
    )
    return list(dict.fromkeys(requested + recent(positive, KNN_HISTORY_ITEMS)))[:KNN_HISTORY_ITEMS]


class Parts:
    """Item codes of every lookup of one request, numbered 0..n-1 together (one sort) once all are in."""

    def __init__(self) -> None:
        self._codes: list[np.ndarray] = []
        self._at: list[np.ndarray] = []
        self.items = _NO_CODES

    def add(self, codes: np.ndarray) -> int:
        self._codes.append(codes)
        return len(self._codes) - 1

    def number(self) -> int:
        """Number the distinct codes (`items`, sorted); returns how many there are."""
        if self._codes:
            self.items, inverse = np.unique(np.concatenate(self._codes), return_inverse=True)
            bounds = np.cumsum([0, *(len(codes) for codes in self._codes)])
            self._at = [inverse[bounds[i] : bounds[i + 1]] for i in range(len(self._codes))]
        return len(self.items)

    def at(self, part: int) -> np.ndarray:
        """The numbers of one part's codes, in its order."""
        return self._at[part]

    def mark(self, parts: Iterable[int | None]) -> np.ndarray:
        """True for the numbers of the items in any of `parts`."""
        marked = np.zeros(len(self.items), dtype=bool)
        for part in parts:
            if part is not None:
                marked[self._at[part]] = True
        return marked


@dataclass
class Candidates:
    """One request's candidates: the lookups' parts numbered together, and who the request is for."""

    history: History
    anchors: list[str]  # request anchors, then the recent history items, each once
    excluded: set[str]  # request anchors, exclude_ids, and the history when exclude_seen
    allow: set[str] | None  # the include_ids allow-list
    missing: set[str]  # signals this request would use whose kind is not in the manifest
    used: set[str]  # signals looked up (popularity and implicit when available, the neighbour kinds when used)
    parts: Parts
    found: dict[str, tuple[int, np.ndarray, np.ndarray]]  # neighbour signal -> (part, source index, score)
    pop: tuple[int, np.ndarray] | None  # (part, score / max score) of the popularity top F
    max_pop: float
    seen: int  # the history's part
    n: int  # distinct items over all parts
    is_excluded: np.ndarray  # per number
    in_pool: np.ndarray  # per number: proposed by a candidate source


def gather(query: RecommendQuery, arrays: SignalArrays) -> Candidates:
    """Look up every candidate source the query uses and number their items together."""
    weights, knobs = query.weights, query.knobs
    available = arrays.available
    missing: set[str] = set()

    history = EMPTY_HISTORY
    if KIND[IMPLICIT] in available:
        if query.subject:
            history = arrays.history(query.subject)
    else:
        missing.add(IMPLICIT)
    requested = list(query.anchors)
    anchors = list(dict.fromkeys(requested + recent(history, knobs.recent_items)))

    excluded_ids = requested + list(query.exclude_ids)
    excluded = set(excluded_ids)
    if knobs.exclude_seen:
        excluded.update(history.names)

    def used(name: str, sources: list[str]) -> bool:
        if not sources or weights[name] <= 0:
            return False
        if KIND[name] not in available:
            missing.add(name)
            return False
        return True

    uses = {COOC: used(COOC, anchors), SESSION: used(SESSION, anchors), CONTENT: used(CONTENT, anchors), KNN: False}
    knn_sources: list[str] = []
    if weights[KNN] > 0 and (len(history) or requested):
        if KIND[KNN] not in available:
            missing.add(KNN)
        else:
            knn_sources = latest(requested, history)
            uses[KNN] = bool(knn_sources)
    if KIND[POP] not in available:
        missing.add(POP)
    # Load (and code) every kind this request reads before any item id becomes a code.
    kinds = [KIND[POP]] if KIND[POP] in available else []
    arrays.prepare(kinds + [KIND[name] for name in (COOC, SESSION, CONTENT, KNN) if uses[name]])

    # Lookups: each gives a part of codes (and values) to number together.
    parts = Parts()
    pool: list[int] = []  # the parts whose items are candidates
    max_pop = 0.0
    pop: tuple[int, np.ndarray] | None = None
    if KIND[POP] in available:
        codes, scores = arrays.popular(max(query.k, knobs.fanout) + len(excluded))
        max_pop = float(scores.max()) if len(scores) else 0.0
        pop = (parts.add(codes), scores / max_pop if max_pop > 0 else np.zeros(len(scores)))
        pool.append(pop[0])
    found: dict[str, tuple[int, np.ndarray, np.ndarray]] = {}
    for name, sources in ((COOC, anchors), (SESSION, anchors), (CONTENT, anchors), (KNN, knn_sources)):
        if uses[name]:
            source, codes, scores = arrays.neighbours(KIND[name], sources)
            found[name] = (parts.add(codes), source, scores)
            pool.append(found[name][0])
    seen = parts.add(arrays.codes(history.names))
    if not knobs.exclude_seen:
        pool.append(seen)
    excluded_part = parts.add(arrays.codes(excluded_ids))
    allow: set[str] | None = None
    if query.include_ids:
        allow = set(query.include_ids)
        pool.append(parts.add(arrays.codes(query.include_ids)))

    n = parts.number()
    looked_up = {name for name in (POP, IMPLICIT) if KIND[name] in available} | {name for name in uses if uses[name]}
    return Candidates(
        history=history,
        anchors=anchors,
        excluded=excluded,
        allow=allow,
        missing=missing,
        used=looked_up,
        parts=parts,
        found=found,
        pop=pop,
        max_pop=max_pop,
        seen=seen,
        n=n,
        is_excluded=parts.mark([excluded_part, seen if knobs.exclude_seen else None]),
        in_pool=parts.mark(pool),
    )
