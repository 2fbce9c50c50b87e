"""Ranking for /v1/recommend and /v1/similar: a weighted blend of artifact signals, then filters, rules and order.

Pure and deterministic: no I/O (everything comes through `Signals`), no clock (the caller passes `now`), no
randomness; per-request work is proportional to the candidates (the only catalog-wide lookup is popularity top-F).

recommend (`rank`)
------------------
  subject  = request.subject (user_id, else session_id, else anonymous_id)
  history  = signals.user_items(subject)                          the implicit row; [] without the artifact
  recent   = the config.recent_items history items with the latest last_us (ties: score desc, item_id asc)
  anchors  = request anchors (first max_anchors) + recent, deduplicated, request anchors first
  excluded = request anchors ∪ candidates.exclude_ids ∪ (history if config.exclude_seen)

Candidates: popularity top F with F = max(k, fanout) + min(|excluded|, 200) (so exclusions rarely starve a cold
user), the cooc and content_sim neighbours of every anchor, the session_seq successors of every recent item, the
item_knn neighbours of the strongest history items and of the request anchors, the history items when exclude_seen
is false, and candidates.include_ids (so an allow-list can return them).
The cooc, session_seq, content_sim and item_knn lookups are skipped when their weight is 0.

Signals, each in 0..1 for a candidate c (0 where the candidate has none):
  pop(c)      = popularity(c) / max_{top F} popularity
  cooc(c)     = max_{a ∈ anchors} cosine(a, c)                                         (cooc)
  implicit(c) = history_score(c) / max history_score                                  (implicit)
  session(c)  = max_{i} 0.5^i · share(recent_i -> c),  i = 0 for the most recent item   (session_seq)
  content(c)  = max_{a ∈ anchors} tag_cosine(a, c)                                     (content_sim)
  knn(c)      = min(1, max(user(c), anchor(c)))                                         (item_knn)
    user(c)   = U(c) / max_{c' ∉ excluded} U(c'),  U(c) = Σ_{h ∈ H} sim(h, c) · history_score(h) / max_H history_score
                H = the KNN_HISTORY_ITEMS (50) history items with the highest score > 0 (ties: item_id asc)
    anchor(c) = max_{a ∈ request anchors} sim(a, c)        (request anchors only: recent items are already in H)
                sim(x, c) = the item_knn score of c as x's neighbour (shrunk cosine over shared users, 0..1)
  score(c)    = Σ_s w_s · s(c),  w = request weights > surface > tenant > DEFAULT_WEIGHTS (all 0 -> pop 1)

Then, in this order:
  1. filters: excluded items go; required_tags keeps items carrying any of them (items without tags go);
  2. rules (`recsys.serve.rules.apply_rules`): blocks, pins, boosts; pinned and injected items pass the same
     filters (a rule never resurrects an excluded, seen or untagged-but-required item); external pins score 0,
     boost-injected items score their boost, and both carry no signal values;
  3. order: pins first (pin order), then score desc (rounded to 6 decimals), then item_id asc;
  4. walk that order until k items are kept: forbidden_tags / max_per_tag drop items (caps count kept items),
     then the include_ids allow-list drops items not in it; later items backfill (unlike the seed).

Warnings, in this order: SIGNAL_UNAVAILABLE "<signal> unavailable: not in manifest" for signals this request
would have used (popularity always, collaborative always (history), cooc/content with anchors and a positive
weight, session with recent items and a positive weight, item_knn with history or request anchors and a positive
weight), in signal order; TAG_LOOKUP_FAILED when tag constraints are given but content_sim (the tag source) is
absent; RULE_PIN_INJECTED for returned pins that were not candidates; CONSTRAINTS_FILTERED (items dropped by tag
constraints while filling k); CANDIDATES_INCLUDE_FILTERED (how many of the first k items were not in the
allow-list) or CANDIDATES_INCLUDE_EMPTY.

Reasons (options.include_reasons): the seed's names of the signals with a positive contribution, in the order
recent_popularity, co_visitation, collaborative, session_sequence, content_similarity, collaborative_similarity
(knn), then the item's rule tokens.
Explain (options.explain): summary = {"signals": {pop, cooc, implicit, session, content, knn: w_s · s(c)},
"rules": [rule tokens]}; full adds "raw": {s: s(c)} and "anchors": [the anchors used].

similar (`similar`)
-------------------
  cooc(c) = cosine(item, c), knn(c) = sim(item, c) (item_knn), content(c) = tag_cosine(item, c),
  score = w_cooc · cooc + w_knn · knn + w_content · content with the config's weights (all three 0 -> the default
  cooc/knn/content weights); the item itself is never returned; reasons co_visitation / content_similarity /
  collaborative_similarity; the same tag constraints as recommend; no rules, no history. A kind with a positive
  weight that is missing gets SIGNAL_UNAVAILABLE "<signal> unavailable: not in manifest". An unknown item gets no
  items and no other warning; without any of cooc, item_knn and content_sim: no items, SIGNAL_UNAVAILABLE
  "similarity signals unavailable".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from recsys.serve.models import Constraints, Item, NormalizedRecommend, NormalizedSimilar, Options, Warning_
from recsys.serve.rules import Rule, RuleOutcome, apply_rules
from recsys.serve.signals import Interaction, Scored, Signals
from recsys.serve.tenant_config import DEFAULT_WEIGHTS, SIGNAL_NAMES, EffectiveConfig

POP, COOC, IMPLICIT, SESSION, CONTENT, KNN = SIGNAL_NAMES

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

WARNING_NAME = {
    POP: "popularity",
    COOC: "cooc",
    IMPLICIT: "collaborative",
    SESSION: "session",
    CONTENT: "content",
    KNN: "item_knn",
}
"""The seed's signal names in SIGNAL_UNAVAILABLE details."""

MAX_EXTRA_FANOUT = 200
"""At most this many extra popularity candidates make up for excluded items."""

SESSION_DECAY = 0.5
"""Recency weight of the i-th most recent item's successors: SESSION_DECAY ** i."""

KNN_HISTORY_ITEMS = 50
"""The knn signal looks up the item_knn neighbours of at most this many history items (the highest scores)."""

_ZERO = dict.fromkeys(SIGNAL_NAMES, 0.0)


@dataclass
class Ranked:
    """Ranked items (rank 1..n, at most k) and the warnings ranking produced (the API adds its own)."""

    items: list[Item]
    warnings: list[Warning_] = field(default_factory=list)


def _round(value: float) -> float:
    return round(value, 6) + 0.0  # + 0.0 turns -0.0 into 0.0


def _max_into(target: dict[str, float], scored: Iterable[Scored], factor: float = 1.0) -> None:
    for entry in scored:
        value = factor * entry.score
        if value > target.get(entry.item_id, 0.0):
            target[entry.item_id] = value
        else:
            target.setdefault(entry.item_id, value)


class _Tags:
    """Per-request memo of item tags (each item is looked up at most once)."""

    def __init__(self, signals: Signals) -> None:
        self._signals = signals
        self._cache: dict[str, tuple[str, ...]] = {}

    def __call__(self, item_id: str) -> tuple[str, ...]:
        tags = self._cache.get(item_id)
        if tags is None:
            tags = self._cache[item_id] = tuple(self._signals.tags(item_id))
        return tags


def _knn(signals: Signals, history: list[Interaction], requested: list[str], excluded: set[str]) -> dict[str, float]:
    """knn(c) for every item_knn neighbour of the strongest history items and of the request anchors (docstring)."""
    strongest = sorted((entry for entry in history if entry.score > 0), key=lambda entry: (-entry.score, entry.item_id))
    strongest = strongest[:KNN_HISTORY_ITEMS]
    summed: dict[str, float] = {}
    if strongest:
        top_history = strongest[0].score
        for entry in strongest:
            weight = entry.score / top_history
            for neighbour in signals.item_neighbors(entry.item_id):
                summed[neighbour.item_id] = summed.get(neighbour.item_id, 0.0) + neighbour.score * weight
    top = max((value for item_id, value in summed.items() if item_id not in excluded), default=0.0)
    values = {item_id: min(value / top, 1.0) for item_id, value in summed.items()} if top > 0 else {}
    for anchor in requested:
        _max_into(values, signals.item_neighbors(anchor))
    return values


def _unavailable(name: str) -> Warning_:
    return Warning_(code="SIGNAL_UNAVAILABLE", detail=f"{WARNING_NAME[name]} unavailable: not in manifest")


def _has_tag_constraints(constraints: Constraints | None) -> bool:
    return bool(constraints and (constraints.required_tags or constraints.forbidden_tags or constraints.max_per_tag))


@dataclass
class _Selection:
    kept: list[str]
    tag_removed: int = 0
    include_removed: int = 0


def _select(
    ordered: Iterable[str],
    k: int,
    tags: Callable[[str], tuple[str, ...]],
    constraints: Constraints | None,
    allow: set[str] | None,
) -> _Selection:
    """Keep items in order until k: forbidden_tags / max_per_tag first, then the include_ids allow-list."""
    forbidden = set(constraints.forbidden_tags) if constraints else set()
    caps: Mapping[str, int] = constraints.max_per_tag if constraints else {}
    counts: dict[str, int] = {}
    selection = _Selection(kept=[])
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


def _items(
    kept: list[str],
    scores: Mapping[str, float],
    values: Mapping[str, Mapping[str, float]],
    weights: Mapping[str, float],
    rule_reasons: Mapping[str, list[str]],
    options: Options,
    anchors: list[str],
) -> list[Item]:
    items = []
    for position, item_id in enumerate(kept, start=1):
        raw = values.get(item_id, _ZERO)
        contributions = {name: weights.get(name, 0.0) * raw[name] for name in SIGNAL_NAMES}
        tokens = list(rule_reasons.get(item_id, ()))
        reasons = None
        if options.include_reasons:
            reasons = [REASON[name] for name in SIGNAL_NAMES if contributions[name] > 0] + tokens
        explain = None
        if options.explain in ("summary", "full"):
            explain = {"signals": {name: _round(value) for name, value in contributions.items()}, "rules": tokens}
            if options.explain == "full":
                explain["raw"] = {name: _round(raw[name]) for name in SIGNAL_NAMES}
                explain["anchors"] = list(anchors)
        items.append(
            Item(
                item_id=item_id,
                rank=position,
                score=_round(scores.get(item_id, 0.0)),
                reasons=reasons,
                explain=explain,
            )
        )
    return items


def _order(scores: Mapping[str, float], pinned: list[str]) -> list[str]:
    pinned_set = set(pinned)
    rest = sorted((item for item in scores if item not in pinned_set), key=lambda item: (-_round(scores[item]), item))
    return pinned + rest


def _constraint_warnings(selection: _Selection, allow: set[str] | None) -> list[Warning_]:
    warnings = []
    if selection.tag_removed:
        warnings.append(
            Warning_(code="CONSTRAINTS_FILTERED", detail=f"{selection.tag_removed} items removed by tag constraints")
        )
    if allow is not None:
        if not selection.kept:
            warnings.append(Warning_(code="CANDIDATES_INCLUDE_EMPTY", detail="no items matched candidates.include_ids"))
        elif selection.include_removed:
            warnings.append(
                Warning_(
                    code="CANDIDATES_INCLUDE_FILTERED",
                    detail=f"{selection.include_removed} items removed by candidates.include_ids",
                )
            )
    return warnings


def _tag_lookup_warning(constraints: Constraints | None, available: frozenset[str]) -> list[Warning_]:
    if _has_tag_constraints(constraints) and KIND[CONTENT] not in available:
        return [Warning_(code="TAG_LOOKUP_FAILED", detail="failed to fetch item tags for constraints")]
    return []


def rank(
    request: NormalizedRecommend,
    signals: Signals,
    config: EffectiveConfig,
    rules: list[Rule],
    now: dt.datetime,
) -> Ranked:
    """Rank items for one /v1/recommend request (see the module docstring for the blend and its order)."""
    weights = config.weights_for(request.weights)
    available = signals.available
    missing: set[str] = set()
    k = request.k

    history = []
    if KIND[IMPLICIT] in available:
        history = signals.user_items(request.subject) if request.subject else []
    else:
        missing.add(IMPLICIT)
    by_recency = sorted(history, key=lambda entry: (-entry.last_us, -entry.score, entry.item_id))
    recent = list(dict.fromkeys(entry.item_id for entry in by_recency))[: config.recent_items]
    requested: list[str] = []
    if request.anchors is not None:
        requested = list(request.anchors.item_ids[: request.anchors.max_anchors or None])
    anchors = list(dict.fromkeys(requested + recent))

    excluded = set(requested)
    if request.candidates is not None:
        excluded.update(request.candidates.exclude_ids)
    if config.exclude_seen:
        excluded.update(entry.item_id for entry in history)

    raw: dict[str, dict[str, float]] = {name: {} for name in SIGNAL_NAMES}
    pool: dict[str, None] = {}

    max_pop = 0.0
    if KIND[POP] in available:
        popular = signals.popular(max(k, config.fanout) + min(len(excluded), MAX_EXTRA_FANOUT))
        max_pop = max((entry.score for entry in popular), default=0.0)
        for entry in popular:
            pool.setdefault(entry.item_id)
            raw[POP][entry.item_id] = entry.score / max_pop if max_pop > 0 else 0.0
    else:
        missing.add(POP)

    def neighbours(name: str, sources: list[str], lookup: Callable[[str], list[Scored]], decay: float = 1.0) -> None:
        if not sources or weights[name] <= 0:
            return
        if KIND[name] not in available:
            missing.add(name)
            return
        for index, source in enumerate(sources):
            _max_into(raw[name], lookup(source), decay**index)
        pool.update(dict.fromkeys(raw[name]))

    neighbours(COOC, anchors, signals.co_visited)
    neighbours(SESSION, recent, signals.next_items, SESSION_DECAY)
    neighbours(CONTENT, anchors, signals.similar_by_tags)
    if weights[KNN] > 0 and (history or requested):
        if KIND[KNN] not in available:
            missing.add(KNN)
        else:
            raw[KNN] = _knn(signals, history, requested, excluded)
            pool.update(dict.fromkeys(raw[KNN]))

    max_history = max((entry.score for entry in history), default=0.0)
    if max_history > 0:
        for entry in history:
            raw[IMPLICIT][entry.item_id] = max(raw[IMPLICIT].get(entry.item_id, 0.0), entry.score / max_history)
    if not config.exclude_seen:
        pool.update(dict.fromkeys(entry.item_id for entry in history))
    allow: set[str] | None = None
    if request.candidates is not None and request.candidates.include_ids:
        allow = set(request.candidates.include_ids)
        pool.update(dict.fromkeys(request.candidates.include_ids))

    tags = _Tags(signals)
    required = set(request.constraints.required_tags) if request.constraints else set()

    def eligible(item_id: str) -> bool:
        if item_id in excluded:
            return False
        return not required or any(tag in required for tag in tags(item_id))

    pop_raw = raw[POP]
    weighted = [(weights[name], raw[name]) for name in SIGNAL_NAMES if weights[name] > 0]
    base: dict[str, float] = {}
    for item_id in pool:
        if not eligible(item_id):
            continue
        if item_id not in pop_raw:
            pop_raw[item_id] = min(signals.popularity_of(item_id) / max_pop, 1.0) if max_pop > 0 else 0.0
        base[item_id] = sum(weight * signal.get(item_id, 0.0) for weight, signal in weighted)

    if rules:
        outcome = apply_rules(
            base,
            tags,
            rules,
            surface=request.surface,
            segment=request.segment,
            now=now,
            max_pins=config.max_pins,
        )
    else:
        outcome = RuleOutcome(scores=dict(base))
    scores = {item_id: score for item_id, score in outcome.scores.items() if item_id in base or eligible(item_id)}
    pinned = [item_id for item_id in outcome.pinned if item_id in base or eligible(item_id)]

    selection = _select(_order(scores, pinned), k, tags, request.constraints, allow)

    warnings = [_unavailable(name) for name in SIGNAL_NAMES if name in missing]
    warnings += _tag_lookup_warning(request.constraints, available)
    injected = sum(1 for item_id in selection.kept if item_id in outcome.pinned and item_id not in base)
    if injected:
        warnings.append(
            Warning_(code="RULE_PIN_INJECTED", detail=f"{injected} pinned items were injected into results")
        )
    warnings += _constraint_warnings(selection, allow)
    kept_values = (item_id for item_id in selection.kept if item_id in base)  # pins/injected items carry no signals
    values = {item_id: {name: raw[name].get(item_id, 0.0) for name in SIGNAL_NAMES} for item_id in kept_values}
    items = _items(selection.kept, scores, values, weights, outcome.reasons, request.options, anchors)
    return Ranked(items=items, warnings=warnings)


def similar(request: NormalizedSimilar, signals: Signals, config: EffectiveConfig) -> Ranked:
    """Items similar to request.item_id: co-visitation, collaborative and tag similarity blended (module docstring)."""
    available = signals.available
    blended = (COOC, KNN, CONTENT)
    if not any(KIND[name] in available for name in blended):
        return Ranked(items=[], warnings=[Warning_(code="SIGNAL_UNAVAILABLE", detail="similarity signals unavailable")])
    weights = {name: config.weights.get(name, 0.0) if name in blended else 0.0 for name in SIGNAL_NAMES}
    if all(weights[name] <= 0 for name in blended):
        weights.update({name: DEFAULT_WEIGHTS[name] for name in blended})

    warnings: list[Warning_] = []
    raw: dict[str, dict[str, float]] = {name: {} for name in blended}
    lookups = {COOC: signals.co_visited, KNN: signals.item_neighbors, CONTENT: signals.similar_by_tags}
    for name in SIGNAL_NAMES:  # signal order: the warnings come in the same order as recommend's
        if name not in blended or weights[name] <= 0:
            continue
        if KIND[name] not in available:
            warnings.append(_unavailable(name))
            continue
        _max_into(raw[name], lookups[name](request.item_id))

    tags = _Tags(signals)
    required = set(request.constraints.required_tags) if request.constraints else set()
    values: dict[str, dict[str, float]] = {}
    scores: dict[str, float] = {}
    for item_id in dict.fromkeys(item for name in blended for item in raw[name]):
        if item_id == request.item_id:
            continue
        if required and not any(tag in required for tag in tags(item_id)):
            continue
        item_values = {**_ZERO, **{name: raw[name].get(item_id, 0.0) for name in blended}}
        values[item_id] = item_values
        scores[item_id] = sum(weights[name] * item_values[name] for name in blended)

    selection = _select(_order(scores, []), request.k, tags, request.constraints, None)
    warnings += _tag_lookup_warning(request.constraints, available)
    warnings += _constraint_warnings(selection, None)
    items = _items(selection.kept, scores, values, weights, {}, request.options, [request.item_id])
    return Ranked(items=items, warnings=warnings)
