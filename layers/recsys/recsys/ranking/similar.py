"""similar: items like one item, from its cooc, item_knn and content_sim neighbours.

  cooc(c) = cosine(item, c), knn(c) = sim(item, c), content(c) = tag_cosine(item, c)
  score   = w_cooc · cooc + w_knn · knn + w_content · content (the query's weights), saturated at the largest double
The item itself is never returned; reasons co_visitation / content_similarity / collaborative_similarity; the same
tag constraints as recommend; no rules, no history. A kind with a positive weight that is missing gets
SIGNAL_UNAVAILABLE "<signal> unavailable: not in manifest" (or "...: artifact unreadable"). An unknown item gets no
items and no other warning; without any of cooc, item_knn and content_sim that can be read: no items,
SIGNAL_UNAVAILABLE "similarity signals unavailable".
"""

from __future__ import annotations

from recsys.ranking.filters import Tags, carries_any, selection_warnings, tag_lookup_warning
from recsys.ranking.output import ZERO, ranked_items, unavailable
from recsys.ranking.scoring import MAX_SCORE
from recsys.ranking.selection import in_order, select
from recsys.ranking.signals import SignalArrays
from recsys.ranking.types import (
    CONTENT,
    COOC,
    KIND,
    KNN,
    SIGNAL_UNAVAILABLE,
    SIGNALS,
    Ranking,
    RankingWarning,
    SimilarQuery,
)

BLENDED = (COOC, KNN, CONTENT)
"""The signals similar blends (in the order their neighbours are gathered)."""


def _no_signal() -> Ranking:
    return Ranking(items=[], warnings=[RankingWarning(SIGNAL_UNAVAILABLE, "similarity signals unavailable")])


def similar(query: SimilarQuery, arrays: SignalArrays) -> Ranking:
    """Items similar to query.item_id: co-visitation, collaborative and tag similarity blended (module docstring)."""
    available = arrays.available
    if not any(KIND[name] in available for name in BLENDED):
        return _no_signal()
    weights = {name: query.weights.get(name, 0.0) if name in BLENDED else 0.0 for name in SIGNALS}

    raw: dict[str, dict[str, float]] = {name: {} for name in BLENDED}
    weighted = [name for name in SIGNALS if name in BLENDED and weights[name] > 0]  # signal order, like recommend
    for name in weighted:
        if KIND[name] in available:
            _, codes, scores = arrays.neighbours(KIND[name], [query.item_id])
            best = raw[name]
            for item_id, value in zip(arrays.names(codes), scores.tolist(), strict=True):
                if value > best.get(item_id, 0.0):
                    best[item_id] = value
                else:
                    best.setdefault(item_id, value)
    unreadable = arrays.unreadable  # a lookup that failed to load its artifact gave nothing: skipped
    usable = available - unreadable
    if not any(KIND[name] in usable for name in BLENDED):
        return _no_signal()
    warnings = [unavailable(name, unreadable) for name in weighted if KIND[name] not in usable]

    tags = Tags(arrays.tags)
    required = set(query.constraints.required) if query.constraints else set()
    values: dict[str, dict[str, float]] = {}
    scores: dict[str, float] = {}
    for item_id in dict.fromkeys(item for name in BLENDED for item in raw[name]):
        if item_id == query.item_id:
            continue
        if required and not carries_any(item_id, tags, required):
            continue
        item_values = {**ZERO, **{name: raw[name].get(item_id, 0.0) for name in BLENDED}}
        values[item_id] = item_values
        scores[item_id] = min(sum(weights[name] * item_values[name] for name in BLENDED), MAX_SCORE)

    selection = select(in_order(scores, []), query.k, tags, query.constraints, None)
    warnings += tag_lookup_warning(query.constraints, usable)
    warnings += selection_warnings(selection, None)
    items = ranked_items(selection.kept, scores, values, weights, {}, query.detail, [query.item_id])
    return Ranking(items=items, warnings=warnings)
