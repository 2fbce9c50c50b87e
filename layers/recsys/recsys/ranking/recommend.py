"""recommend: candidates -> signal values -> filters -> blend -> rules -> order and selection -> ranked items.

Pure and deterministic: no I/O (everything comes through `SignalArrays`), no clock (the query carries `now`), no
randomness but exploration's, drawn from the seed the query carries. The formulas are in `scoring` and
docs/explanation/ranking.md. After scoring, in this order:
  1. filters: excluded items go; required_tags keeps items carrying any of them (items without tags go);
  2. rules (`recsys.ranking.rules.apply_rules`): blocks, pins, boosts; pinned and injected items pass the same
     filters (a rule never resurrects an excluded, seen or untagged-but-required item); external pins score 0,
     boost-injected items score their boost, and both carry no signal values;
  3. order: pins first (pin order), then score desc (rounded to 6 decimals), then item_id asc;
  4. walk that order until k items are kept: forbidden_tags / max_per_tag drop items (caps count kept items),
     then the include_ids allow-list drops items not in it; later items backfill (unlike the seed);
  5. optional, off by default: with `query.diversity` the walk goes on to its pool and `diversity.diversify`
     chooses (per-tag caps, MMR); with `query.exploration`, `exploration.explore` shows the pool epsilon-greedily
     and each item carries its propensity.

A single-signal mode (`query.popularity_fallback`) whose signal scores every eligible item 0 is ranked by
popularity instead (weights {pop: 1}), as the seed falls back to popularity.

Warnings, in this order: SIGNAL_UNAVAILABLE "<signal> unavailable: not in manifest" for signals this request
would have used (popularity always, collaborative always (history), cooc/session/content with anchors and a
positive weight, item_knn with history or request anchors and a positive weight), in signal order, "...: artifact
unreadable" instead when the kind's artifact exists but cannot be read (`SignalArrays.unreadable`; its lookups give
nothing, so the request is ranked without it); TAG_LOOKUP_FAILED when tag constraints are given but content_sim (the
tag source) is absent or unreadable; RULE_PIN_INJECTED for returned pins that were not candidates;
CONSTRAINTS_FILTERED (items dropped by tag constraints while filling k); CANDIDATES_INCLUDE_FILTERED (how many of the
first k items were not in the allow-list) or CANDIDATES_INCLUDE_EMPTY.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from recsys.ranking.candidates import gather
from recsys.ranking.diversity import diversify, pair_matrix, tag_jaccard
from recsys.ranking.exploration import explore
from recsys.ranking.filters import Tags, carries_any, keep_required, selection_warnings, tag_lookup_warning
from recsys.ranking.output import ranked_items, unavailable
from recsys.ranking.rules import Rule, RuleOutcome, apply_rules
from recsys.ranking.scoring import blend, fill_popularity, signal_values
from recsys.ranking.selection import by_score, in_order, select
from recsys.ranking.signals import SignalArrays
from recsys.ranking.types import (
    COOC,
    KIND,
    POP,
    RULE_PIN_INJECTED,
    SIGNALS,
    DiversityKnobs,
    Ranking,
    RankingWarning,
    RecommendQuery,
)

POPULARITY_ONLY = {name: 1.0 if name == POP else 0.0 for name in SIGNALS}


def _pool_size(query: RecommendQuery) -> int:
    """How far the selection walks: k, or the diversity / exploration pool when they are on."""
    size = query.k
    if query.diversity is not None:
        size = max(size, query.diversity.pool)
    if query.exploration is not None:
        size = max(size, query.exploration.pool)
    return size


def _similarity(knobs: DiversityKnobs, arrays: SignalArrays, tags: Tags) -> Callable[[Sequence[str]], np.ndarray]:
    """The n x n similarity of the pool's items that MMR uses: tag Jaccard, or the cooc cosine of each pair."""

    def cooc(items: Sequence[str]) -> np.ndarray:
        if KIND[COOC] not in arrays.available:
            return np.zeros((len(items), len(items)))
        position = {code: at for at, code in enumerate(arrays.codes(items).tolist())}
        source, codes, scores = arrays.neighbours(KIND[COOC], list(items))
        target = np.array([position.get(code, -1) for code in codes.tolist()], dtype=np.int64)
        known = target >= 0
        return pair_matrix(len(items), source[known], target[known], scores[known])

    return cooc if knobs.similarity == "cooc" else (lambda items: tag_jaccard(items, tags))


def _choose(
    query: RecommendQuery,
    kept: list[str],
    pinned: set[str],
    scores: Mapping[str, float],
    arrays: SignalArrays,
    tags: Tags,
) -> tuple[list[str], list[float] | None]:
    """The diversity and exploration steps over the selection's pool (only called when one of them is on)."""
    fixed = next((at for at, item in enumerate(kept) if item not in pinned), len(kept))
    if query.diversity is not None:
        knobs = query.diversity
        limit = max(query.k, query.exploration.pool) if query.exploration is not None else query.k
        kept = diversify(
            kept, scores, fixed, limit, knobs.mmr_lambda, knobs.caps, tags, _similarity(knobs, arrays, tags)
        )
    if query.exploration is not None:
        return explore(kept, fixed, query.k, query.exploration.epsilon, query.exploration.seed)
    return kept[: query.k], None


def _fallback(
    query: RecommendQuery,
    base: np.ndarray,
    weights: Mapping[str, float],
    values: Mapping[str, np.ndarray],
    eligible: np.ndarray,
) -> tuple[Mapping[str, float], np.ndarray]:
    """A single-signal mode with nothing to say ranks by popularity."""
    if query.popularity_fallback and len(base) and not base.any():
        return POPULARITY_ONLY, blend(values, POPULARITY_ONLY, eligible)
    return weights, base


def rank(query: RecommendQuery, arrays: SignalArrays, rules: Sequence[Rule] = ()) -> Ranking:
    """Rank items for one recommend query over one request's `arrays` (see the module docstring for the order).

    Every lookup's items are numbered together once, each signal is one array over those numbers, and item ids are
    made only for the items returned (and for every candidate when rules or required tags need them).
    """
    weights = query.weights
    candidates = gather(query, arrays)
    values = signal_values(candidates, query.knobs)
    parts, excluded = candidates.parts, candidates.excluded

    eligible = np.flatnonzero(candidates.in_pool & ~candidates.is_excluded)
    tags = Tags(arrays.tags)
    required = set(query.constraints.required) if query.constraints else set()
    names: list[str] | None = None
    if required:
        eligible, names = keep_required(eligible, arrays.names(parts.items[eligible]), tags, required)
    fill_popularity(values, candidates, eligible, arrays)
    base = blend(values, weights, eligible)
    if query.popularity_fallback:
        weights, base = _fallback(query, base, weights, values, eligible)
    walk = _pool_size(query)

    position: dict[str, int] = {}  # item id -> index into eligible (the items that have signal values)
    outcome: RuleOutcome | None = None
    if rules:
        names = names if names is not None else arrays.names(parts.items[eligible])
        position = {name: index for index, name in enumerate(names)}
        outcome = apply_rules(
            dict(zip(names, base.tolist(), strict=True)),
            tags,
            rules,
            surface=query.scope.surface,
            segment=query.scope.segment,
            now=query.scope.now,
            max_pins=query.knobs.max_pins,
        )

        def passes(item_id: str) -> bool:  # an item without signal values: a pin or a boost-injected item
            return item_id not in excluded and (not required or carries_any(item_id, tags, required))

        scores = {item: score for item, score in outcome.scores.items() if item in position or passes(item)}
        pinned = [item for item in outcome.pinned if item in position or passes(item)]
        selection = select(in_order(scores, pinned), walk, tags, query.constraints, candidates.allow)
    else:
        ordered = by_score(base, parts.items[eligible], arrays.names, position)
        selection = select(ordered, walk, tags, query.constraints, candidates.allow)
        scores = {item: float(base[position[item]]) for item in selection.kept}
    shown, propensities = selection.kept, None
    if walk > query.k or query.diversity is not None:
        pins = set(outcome.pinned) if outcome is not None else set()
        shown, propensities = _choose(query, selection.kept, pins, scores, arrays, tags)

    # A kind whose artifact failed to load (in this request, or in an earlier one: then it is not `available`) was
    # skipped like a missing one: its lookups gave nothing.
    unreadable = arrays.unreadable
    warnings = [
        unavailable(name, unreadable)
        for name in SIGNALS
        if name in candidates.missing or (name in candidates.used and KIND[name] in unreadable)
    ]
    warnings += tag_lookup_warning(query.constraints, arrays.available - unreadable)
    if outcome is not None:
        injected = sum(1 for item in shown if item in outcome.pinned and item not in position)
        if injected:
            warnings.append(RankingWarning(RULE_PIN_INJECTED, f"{injected} pinned items were injected into results"))
    warnings += selection_warnings(selection, candidates.allow)

    kept = [item for item in shown if item in position]  # pins and injected items carry no signals
    kept_at = eligible[np.array([position[item] for item in kept], dtype=np.int64)]
    columns = [values[name][kept_at].tolist() for name in SIGNALS]
    rows = zip(*columns, strict=True)
    item_values = {item: dict(zip(SIGNALS, row, strict=True)) for item, row in zip(kept, rows, strict=True)}
    reasons = outcome.reasons if outcome is not None else {}
    items = ranked_items(shown, scores, item_values, weights, reasons, query.detail, candidates.anchors)
    if propensities is not None:
        for item, propensity in zip(items, propensities, strict=True):
            item.propensity = propensity
    return Ranking(items=items, warnings=warnings)
