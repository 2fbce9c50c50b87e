"""The API's side of ranking: its wire models mapped to `recsys.ranking`'s query types, and the ranking back.

Ranking itself (candidates, scores, filters, rules, selection; the formulas) is `recsys.ranking`; this module only
translates: a normalized /v1/recommend or /v1/similar request plus the tenant's effective config becomes a
`RecommendQuery` / `SimilarQuery`, and a `Ranking` becomes the response's `Item`s and `Warning_`s.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import TypeAdapter

from recsys import ranking
from recsys.ranking.rules import Rule
from recsys.ranking.signals import SignalArrays
from recsys.ranking.similar import BLENDED
from recsys.ranking.types import (
    Detail,
    DiversityKnobs,
    ExplorationKnobs,
    Knobs,
    Ranking,
    RecommendQuery,
    Scope,
    SimilarQuery,
    TagConstraints,
)
from recsys.serve.models import Constraints, Item, NormalizedRecommend, NormalizedSimilar, Options, Warning_
from recsys.serve.tenant_config import DEFAULT_WEIGHTS, EffectiveConfig

_ITEMS = TypeAdapter(list[Item])


class HasArrays(Protocol):
    """The reader's signals of one manifest: `arrays()` is one request's view."""

    def arrays(self) -> SignalArrays: ...


@dataclass
class Ranked:
    """Ranked items (rank 1..n, at most k) and the warnings ranking produced (the API adds its own)."""

    items: list[Item]
    warnings: list[Warning_] = field(default_factory=list)
    propensities: list[float] | None = None  # per item, when exploration chose them


def knobs(config: EffectiveConfig) -> Knobs:
    return Knobs(
        exclude_seen=config.exclude_seen,
        recent_items=config.recent_items,
        fanout=config.fanout,
        max_pins=config.max_pins,
        anchor_decay=config.anchor_decay,
        history_decay=config.history_decay,
    )


def diversity(config: EffectiveConfig) -> DiversityKnobs | None:
    """The config's diversity options for ranking; None when off (no MMR, no cap)."""
    options = config.diversity
    if options is None or not options.active:
        return None
    return DiversityKnobs(
        mmr_lambda=options.mmr_lambda, similarity=options.similarity, caps=options.tag_caps(), pool=options.pool
    )


def exploration_seed(request_id: str) -> int:
    """The exploration draws' seed: the first 8 bytes of SHA-256(request id), so a request is explored the same way
    whenever it is ranked again."""
    return int.from_bytes(hashlib.sha256(request_id.encode()).digest()[:8], "big")


def exploration(config: EffectiveConfig, request_id: str) -> ExplorationKnobs | None:
    """The config's exploration for one request; None when off (epsilon 0)."""
    options = config.exploration
    if options is None or not options.active:
        return None
    return ExplorationKnobs(epsilon=options.epsilon, seed=exploration_seed(request_id), pool=options.pool)


def _constraints(constraints: Constraints | None) -> TagConstraints | None:
    if constraints is None:
        return None
    return TagConstraints(
        required=tuple(constraints.required_tags),
        forbidden=tuple(constraints.forbidden_tags),
        max_per_tag=constraints.max_per_tag,
    )


def _detail(options: Options) -> Detail:
    return Detail(reasons=options.include_reasons, explain=options.explain)  # type: ignore[arg-type]


def recommend_query(
    request: NormalizedRecommend, config: EffectiveConfig, now: dt.datetime, request_id: str = ""
) -> RecommendQuery:
    anchors: tuple[str, ...] = ()
    if request.anchors is not None:
        anchors = tuple(request.anchors.item_ids[: request.anchors.max_anchors or None])
    candidates = request.candidates
    return RecommendQuery(
        subject=request.subject,
        k=request.k,
        weights=config.weights_for(request.weights),
        knobs=knobs(config),
        scope=Scope(surface=request.surface, segment=request.segment, now=now),
        anchors=anchors,
        include_ids=tuple(candidates.include_ids) if candidates else (),
        exclude_ids=tuple(candidates.exclude_ids) if candidates else (),
        constraints=_constraints(request.constraints),
        detail=_detail(request.options),
        popularity_fallback=config.single_signal,
        diversity=diversity(config),
        exploration=exploration(config, request_id),
    )


def similar_weights(config: EffectiveConfig) -> dict[str, float]:
    """The config's cooc, knn and content weights; when all three are 0, their defaults (like recommend's all-zero
    blend becoming popularity, resolved before ranking)."""
    weights = {name: config.weights.get(name, 0.0) for name in BLENDED}
    if all(weight <= 0 for weight in weights.values()):
        return {name: DEFAULT_WEIGHTS[name] for name in BLENDED}
    return weights


def similar_query(request: NormalizedSimilar, config: EffectiveConfig) -> SimilarQuery:
    return SimilarQuery(
        item_id=request.item_id,
        k=request.k,
        weights=similar_weights(config),
        constraints=_constraints(request.constraints),
        detail=_detail(request.options),
    )


def to_wire(result: Ranking) -> Ranked:
    rows = [
        {"item_id": i.item_id, "rank": i.rank, "score": i.score, "reasons": i.reasons, "explain": i.explain}
        for i in result.items
    ]
    items = _ITEMS.validate_python(rows)  # one validation call for the list: cheaper than one per Item
    propensities = None
    if result.items and result.items[0].propensity is not None:
        propensities = [i.propensity for i in result.items]
    return Ranked(
        items=items,
        warnings=[Warning_(code=w.code, detail=w.detail) for w in result.warnings],
        propensities=propensities,
    )


def rank(
    request: NormalizedRecommend,
    signals: HasArrays,
    config: EffectiveConfig,
    rules: Sequence[Rule],
    now: dt.datetime,
    request_id: str = "",
) -> Ranked:
    """Rank one /v1/recommend request over the reader's signals of its manifest (`request_id` seeds exploration)."""
    return to_wire(ranking.rank(recommend_query(request, config, now, request_id), signals.arrays(), rules))


def similar(request: NormalizedSimilar, signals: HasArrays, config: EffectiveConfig) -> Ranked:
    """Items similar to one /v1/similar request's item over the reader's signals of its manifest."""
    return to_wire(ranking.similar(similar_query(request, config), signals.arrays()))
