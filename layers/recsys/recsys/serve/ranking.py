"""Ranking for /v1/recommend and /v1/similar: a weighted blend of artifact signals, then filters, rules and order.

Pure and deterministic: no I/O (everything comes through `Signals`), no clock (the caller passes `now`), no
randomness; per-request work is proportional to the candidates (the only catalog-wide lookup is popularity top-F).
`rank` works on item codes and numpy arrays (`SignalArrays`: the artifacts' own view, or an adapter over the
per-item lookups of any other `Signals`); every formula below is computed with the same float operations in the
same order as a per-item loop would, so the arrays change nothing but the time.

recommend (`rank`)
------------------
  subject  = request.subject (user_id, else session_id, else anonymous_id)
  history  = signals.user_items(subject)                          the implicit row; [] without the artifact
  recent   = the config.recent_items history items with the latest last_us (ties: score desc, item_id asc)
  anchors  = request anchors (first max_anchors, most recent first) + recent, deduplicated, request anchors first
  excluded = request anchors ∪ candidates.exclude_ids ∪ (history if config.exclude_seen)

Candidates: popularity top F with F = max(k, fanout) + |excluded| (so exclusions never starve a request of
popular items, however long the history), the cooc and content_sim neighbours and the session_seq successors of
every anchor, the item_knn neighbours of the visitor's most recent items (below), the history items when
exclude_seen is false, and candidates.include_ids (so an allow-list can return them).
The cooc, session_seq, content_sim and item_knn lookups are skipped when their weight is 0.

Signals, each in 0..1 for a candidate c (0 where the candidate has none). Anchor a_i is the i-th anchor above
(most recent first: request anchors in the order given, then the user's recent items); d = config.anchor_decay:
  pop(c)      = popularity(c) / max_{top F} popularity
  cooc(c)     = Σ_i d^i · cosine(a_i, c) / Σ_i d^i     (cosine: the cooc score, shrunk for rare pairs)     (cooc)
  implicit(c) = history_score(c) / max history_score                                  (implicit)
  session(c)  = Σ_i d^i · share(a_i -> c) / Σ_i d^i                                    (session_seq)
  content(c)  = max_{a ∈ anchors} tag_cosine(a, c)                                     (content_sim)
  knn(c)      = U(c) / max_{c' ∉ excluded} U(c'),  U(c) = Σ_j h^j · sim(s_j, c)         (item_knn)
                s_j = the j-th of the KNN_HISTORY_ITEMS (50) most recent items of the visitor: the request anchors
                in order, then the history items with a score > 0 from the latest last_us (ties: score desc,
                item_id asc), each once; h = config.history_decay. Recency is the user's own timeline (the order
                of their items), not the age against the window end: a user's next item follows their latest ones
                whether they were active yesterday or a month ago.
                sim(x, c) = the item_knn score of c as x's neighbour (shrunk cosine over shared users, 0..1)
  score(c)    = Σ_s w_s · s(c),  w = request weights > surface > tenant > DEFAULT_WEIGHTS (all 0 -> pop 1)

Why sums over anchors, decayed by position: every anchor a visitor touched is evidence, the latest the most; on
real session data a decayed sum beat the max over anchors (and the last anchor alone) by a wide margin, and it
lets an anonymous visitor's `anchors` drive the session signal (docs/explanation/ranking.md, docs/evaluation.md).

Then, in this order:
  1. filters: excluded items go; required_tags keeps items carrying any of them (items without tags go);
  2. rules (`recsys.serve.rules.apply_rules`): blocks, pins, boosts; pinned and injected items pass the same
     filters (a rule never resurrects an excluded, seen or untagged-but-required item); external pins score 0,
     boost-injected items score their boost, and both carry no signal values;
  3. order: pins first (pin order), then score desc (rounded to 6 decimals), then item_id asc;
  4. walk that order until k items are kept: forbidden_tags / max_per_tag drop items (caps count kept items),
     then the include_ids allow-list drops items not in it; later items backfill (unlike the seed).

Warnings, in this order: SIGNAL_UNAVAILABLE "<signal> unavailable: not in manifest" for signals this request
would have used (popularity always, collaborative always (history), cooc/session/content with anchors and a
positive weight, item_knn with history or request anchors and a positive weight), in signal order, "...: artifact
unreadable" instead when the kind's artifact exists but cannot be read (`Signals.unreadable`; its lookups give
nothing, so the request is ranked without it); TAG_LOOKUP_FAILED when tag constraints are given but content_sim (the
tag source) is absent or unreadable; RULE_PIN_INJECTED for returned pins that were not candidates;
CONSTRAINTS_FILTERED (items dropped by tag constraints while filling k); CANDIDATES_INCLUDE_FILTERED (how many of the
first k items were not in the allow-list) or CANDIDATES_INCLUDE_EMPTY.

Reasons (options.include_reasons): the seed's names of the signals with a positive contribution, in the order
recent_popularity, co_visitation, collaborative, session_sequence, content_similarity, collaborative_similarity
(knn), then the item's rule tokens.
Explain (options.explain): summary = {"signals": {pop, cooc, implicit, session, content, knn: w_s · s(c)},
"rules": [rule tokens]}; full adds "raw": {s: s(c)} and "anchors": [the anchors used].

similar (`similar`)
-------------------
  cooc(c) = cosine(item, c) (the cooc score), knn(c) = sim(item, c) (item_knn), content(c) = tag_cosine(item, c),
  score = w_cooc · cooc + w_knn · knn + w_content · content with the config's weights (all three 0 -> the default
  cooc/knn/content weights); the item itself is never returned; reasons co_visitation / content_similarity /
  collaborative_similarity; the same tag constraints as recommend; no rules, no history. A kind with a positive
  weight that is missing gets SIGNAL_UNAVAILABLE "<signal> unavailable: not in manifest" (or "...: artifact
  unreadable"). An unknown item gets no items and no other warning; without any of cooc, item_knn and content_sim
  that can be read: no items, SIGNAL_UNAVAILABLE "similarity signals unavailable".
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice

import numpy as np
from pydantic import TypeAdapter

from recsys.ranking.signals import EMPTY_HISTORY, History, Scored, SignalArrays, Signals
from recsys.serve.models import Constraints, Item, NormalizedRecommend, NormalizedSimilar, Options, Warning_
from recsys.serve.rules import Rule, RuleOutcome, apply_rules
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

KNN_HISTORY_ITEMS = 50
"""The knn signal looks up the item_knn neighbours of at most this many of the visitor's most recent items."""

MAX_SCORE = sys.float_info.max
"""Scores saturate here: weights are finite but unbounded, and an infinite score has no JSON form."""

_ZERO = dict.fromkeys(SIGNAL_NAMES, 0.0)
_ITEMS = TypeAdapter(list[Item])


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


_NO_CODES = np.zeros(0, np.int64)
_WALK_CHUNK = 32


class _ListArrays:
    """`SignalArrays` over any `Signals` (the tests' dicts): one lookup per item, ids coded in the order first seen."""

    def __init__(self, signals: Signals) -> None:
        self._signals = signals
        self.available = signals.available
        self._codes: dict[str, int] = {}
        self._names: list[str] = []
        self._lookups: dict[str, Callable[[str], list[Scored]]] = {
            KIND[COOC]: signals.co_visited,
            KIND[SESSION]: signals.next_items,
            KIND[CONTENT]: signals.similar_by_tags,
            KIND[KNN]: signals.item_neighbors,
        }

    @property
    def unreadable(self) -> frozenset[str]:
        return _unreadable(self._signals)

    def prepare(self, kinds: Iterable[str]) -> None:
        pass

    def _code(self, name: str) -> int:
        code = self._codes.get(name)
        if code is None:
            code = self._codes[name] = len(self._names)
            self._names.append(name)
        return code

    def codes(self, names: Iterable[str]) -> np.ndarray:
        return np.array([self._code(name) for name in names], dtype=np.int64)

    def names(self, codes: np.ndarray) -> list[str]:
        return [self._names[code] for code in codes.tolist()]

    def name(self, code: int) -> str:
        return self._names[code]

    def history(self, user_id: str) -> History:
        rows = self._signals.user_items(user_id)
        return History(
            [row.item_id for row in rows],
            np.array([row.score for row in rows], dtype=np.float64),
            np.array([row.count for row in rows], dtype=np.int64),
            np.array([row.last_us for row in rows], dtype=np.int64),
        )

    def popular(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        entries = self._signals.popular(n)
        return self.codes(entry.item_id for entry in entries), np.array([e.score for e in entries], dtype=np.float64)

    def popularity_of(self, codes: np.ndarray) -> np.ndarray:
        return np.array([self._signals.popularity_of(name) for name in self.names(codes)], dtype=np.float64)

    def neighbours(self, kind: str, sources: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lookup = self._lookups[kind]
        found = [(index, entry) for index, source in enumerate(sources) for entry in lookup(source)]
        return (
            np.array([index for index, _ in found], dtype=np.int64),
            self.codes(entry.item_id for _, entry in found),
            np.array([entry.score for _, entry in found], dtype=np.float64),
        )

    def tags(self, item_id: str) -> tuple[str, ...]:
        return self._signals.tags(item_id)


def signal_arrays(signals: Signals) -> SignalArrays:
    """The array view ranking reads: `signals.arrays()` where implemented (the artifacts), else an adapter."""
    arrays = getattr(signals, "arrays", None)
    return arrays() if callable(arrays) else _ListArrays(signals)


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


def _recent(history: History, count: int) -> list[str]:
    """The `count` distinct history items with the latest last_us (ties: score desc, item_id asc)."""
    recent: dict[str, None] = {}
    if count <= 0:
        return []
    for at in _order_desc([history.last_us, history.scores], history.names):
        recent.setdefault(history.names[at])
        if len(recent) >= count:
            break
    return list(recent)


def _latest(requested: list[str], history: History) -> list[str]:
    """The KNN_HISTORY_ITEMS most recent items of the visitor: the request anchors, then the history items with a
    score > 0 by last_us desc (ties: score desc, item_id asc), each once."""
    keep = np.flatnonzero(history.scores > 0)
    positive = History(
        [history.names[at] for at in keep.tolist()], history.scores[keep], history.counts[keep], history.last_us[keep]
    )
    return list(dict.fromkeys(requested + _recent(positive, KNN_HISTORY_ITEMS)))[:KNN_HISTORY_ITEMS]


def _decayed(n: int, at: np.ndarray, sources: np.ndarray, values: np.ndarray, decay: float) -> np.ndarray:
    """Per number, Σ decay^source · value over its entries (added in lookup order)."""
    factors = decay ** np.arange(int(sources.max()) + 1 if len(sources) else 0, dtype=np.float64)  # one per source
    return np.bincount(at, weights=factors[sources] * values, minlength=n)


class _Parts:
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


def _max_of(n: int, at: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per number, the largest of its values (a dict kept at the max of what was put in); 0.0 where none."""
    out = np.full(n, -np.inf)
    np.maximum.at(out, at, values)
    out[out == -np.inf] = 0.0
    return out


def _last_of(n: int, at: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per number, the value put in last (a dict assigned in order); 0.0 where none."""
    out = np.zeros(n)
    if len(at) and np.bincount(at, minlength=n).max() > 1:  # repeated items: keep each one's last value
        last = len(at) - 1 - np.unique(at[::-1], return_index=True)[1]
        at, values = at[last], values[last]
    out[at] = values
    return out


def _by_score(
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
            rounded = _round(ordered[start])
        end, following = start + 1, None
        while end < n:
            if end >= len(at):
                convert(end)
            following = _round(ordered[end])
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


def _unavailable(name: str, unreadable: frozenset[str] = frozenset()) -> Warning_:
    reason = "artifact unreadable" if KIND[name] in unreadable else "not in manifest"
    return Warning_(code="SIGNAL_UNAVAILABLE", detail=f"{WARNING_NAME[name]} unavailable: {reason}")


def _unreadable(signals: Signals | SignalArrays) -> frozenset[str]:
    """The kinds whose artifact exists but cannot be read (the artifacts' signals track them; plain data has none)."""
    return getattr(signals, "unreadable", frozenset())


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


def _items(
    kept: list[str],
    scores: Mapping[str, float],
    values: Mapping[str, Mapping[str, float]],
    weights: Mapping[str, float],
    rule_reasons: Mapping[str, list[str]],
    options: Options,
    anchors: list[str],
) -> list[Item]:
    rows = []
    explaining = options.include_reasons or options.explain in ("summary", "full")
    weight_of = [(name, weights.get(name, 0.0)) for name in SIGNAL_NAMES]
    for position, item_id in enumerate(kept, start=1):
        score = _round(scores.get(item_id, 0.0))
        if not explaining:
            rows.append({"item_id": item_id, "rank": position, "score": score, "reasons": None, "explain": None})
            continue
        raw = values.get(item_id, _ZERO)
        contributions = {name: weight * raw[name] for name, weight in weight_of}
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
        rows.append({"item_id": item_id, "rank": position, "score": score, "reasons": reasons, "explain": explain})
    return _ITEMS.validate_python(rows)  # one validation call for the list: cheaper than one per Item


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
    """Rank items for one /v1/recommend request (see the module docstring for the blend and its order).

    Works on item codes and numpy arrays (`SignalArrays`): every lookup's items are numbered together once, each
    signal is one array over those numbers, and item ids are made only for the items returned (and for every
    candidate when rules or required tags need them). The floats are the same as per-item arithmetic gives: the
    same operations on the same values, sums added in lookup order.
    """
    weights = config.weights_for(request.weights)
    arrays = signal_arrays(signals)
    available = arrays.available
    missing: set[str] = set()
    k = request.k

    history = EMPTY_HISTORY
    if KIND[IMPLICIT] in available:
        if request.subject:
            history = arrays.history(request.subject)
    else:
        missing.add(IMPLICIT)
    recent = _recent(history, config.recent_items)
    requested: list[str] = []
    if request.anchors is not None:
        requested = list(request.anchors.item_ids[: request.anchors.max_anchors or None])
    anchors = list(dict.fromkeys(requested + recent))

    excluded_ids = list(requested)
    if request.candidates is not None:
        excluded_ids += request.candidates.exclude_ids
    excluded = set(excluded_ids)
    if config.exclude_seen:
        excluded.update(history.names)

    def used(name: str, sources: list[str]) -> bool:
        if not sources or weights[name] <= 0:
            return False
        if KIND[name] not in available:
            missing.add(name)
            return False
        return True

    uses = {COOC: used(COOC, anchors), SESSION: used(SESSION, anchors), CONTENT: used(CONTENT, anchors), KNN: False}
    latest: list[str] = []
    if weights[KNN] > 0 and (len(history) or requested):
        if KIND[KNN] not in available:
            missing.add(KNN)
        else:
            latest = _latest(requested, history)
            uses[KNN] = bool(latest)
    if KIND[POP] not in available:
        missing.add(POP)
    # Load (and code) every kind this request reads before any item id becomes a code.
    kinds = [KIND[POP]] if KIND[POP] in available else []
    arrays.prepare(kinds + [KIND[name] for name in (COOC, SESSION, CONTENT, KNN) if uses[name]])

    # Lookups: each gives a part of codes (and values) to number together.
    parts = _Parts()
    pool: list[int] = []  # the parts whose items are candidates
    max_pop = 0.0
    pop: tuple[int, np.ndarray] | None = None
    if KIND[POP] in available:
        codes, scores = arrays.popular(max(k, config.fanout) + len(excluded))
        max_pop = float(scores.max()) if len(scores) else 0.0
        pop = (parts.add(codes), scores / max_pop if max_pop > 0 else np.zeros(len(scores)))
        pool.append(pop[0])
    found: dict[str, tuple[int, np.ndarray, np.ndarray]] = {}  # signal -> (part, source index, score)

    def neighbours(name: str, sources: list[str]) -> None:
        source, codes, scores = arrays.neighbours(KIND[name], sources)
        found[name] = (parts.add(codes), source, scores)
        pool.append(found[name][0])

    for name, sources in ((COOC, anchors), (SESSION, anchors), (CONTENT, anchors), (KNN, latest)):
        if uses[name]:
            neighbours(name, sources)
    seen = parts.add(arrays.codes(history.names))
    if not config.exclude_seen:
        pool.append(seen)
    excluded_part = parts.add(arrays.codes(excluded_ids))
    allow: set[str] | None = None
    if request.candidates is not None and request.candidates.include_ids:
        allow = set(request.candidates.include_ids)
        pool.append(parts.add(arrays.codes(request.candidates.include_ids)))

    n = parts.number()
    is_excluded = parts.mark([excluded_part, seen if config.exclude_seen else None])
    in_pool = parts.mark(pool)
    values: dict[str, np.ndarray] = {}
    decay = config.anchor_decay
    for name in (COOC, SESSION):  # decayed means over the anchors
        if name in found:
            part, source, scores = found[name]
            total = sum(decay**index for index in range(len(anchors)))
            values[name] = _decayed(n, parts.at(part), source, scores, decay) / total
    if CONTENT in found:
        part, _, scores = found[CONTENT]
        values[CONTENT] = _max_of(n, parts.at(part), scores)
    if KNN in found:  # knn(c) = U(c) / max U over the items not excluded
        part, source, scores = found[KNN]
        summed = _decayed(n, parts.at(part), source, scores, config.history_decay)
        counted = summed[parts.mark([part]) & ~is_excluded]
        top = float(counted.max()) if len(counted) else 0.0
        if top > 0:
            values[KNN] = np.minimum(summed / top, 1.0)
    max_history = float(history.scores.max()) if len(history) else 0.0
    if max_history > 0:
        values[IMPLICIT] = np.zeros(n)
        np.maximum.at(values[IMPLICIT], parts.at(seen), history.scores / max_history)
    values[POP] = _last_of(n, parts.at(pop[0]), pop[1]) if pop is not None else np.zeros(n)
    for name in SIGNAL_NAMES:
        values.setdefault(name, np.zeros(n))

    eligible = np.flatnonzero(in_pool & ~is_excluded)
    tags = _Tags(arrays)
    required = set(request.constraints.required_tags) if request.constraints else set()
    names: list[str] | None = None
    if required:
        names = arrays.names(parts.items[eligible])
        keep = [any(tag in required for tag in tags(name)) for name in names]
        eligible = eligible[np.array(keep, dtype=bool)]
        names = [name for name, kept in zip(names, keep, strict=True) if kept]
    if max_pop > 0:  # pop(c) outside the top F: looked up, capped at 1
        others = eligible[~parts.mark([pop[0]] if pop is not None else [])[eligible]]
        if len(others):
            values[POP][others] = np.minimum(arrays.popularity_of(parts.items[others]) / max_pop, 1.0)

    base = np.zeros(len(eligible))
    with np.errstate(over="ignore"):  # finite weights can still add up past a double: saturated below
        for name in SIGNAL_NAMES:
            if weights[name] > 0:
                base = base + weights[name] * values[name][eligible]
    base = np.minimum(base, MAX_SCORE)

    position: dict[str, int] = {}  # item id -> index into eligible (the items that have signal values)

    def eligible_id(item_id: str) -> bool:
        if item_id in excluded:
            return False
        return not required or any(tag in required for tag in tags(item_id))

    outcome: RuleOutcome | None = None
    if rules:
        names = names if names is not None else arrays.names(parts.items[eligible])
        position = {name: index for index, name in enumerate(names)}
        outcome = apply_rules(
            dict(zip(names, base.tolist(), strict=True)),
            tags,
            rules,
            surface=request.surface,
            segment=request.segment,
            now=now,
            max_pins=config.max_pins,
        )
        scores = {item: score for item, score in outcome.scores.items() if item in position or eligible_id(item)}
        pinned = [item for item in outcome.pinned if item in position or eligible_id(item)]
        selection = _select(_order(scores, pinned), k, tags, request.constraints, allow)
    else:
        ordered = _by_score(base, parts.items[eligible], arrays.names, position)
        selection = _select(ordered, k, tags, request.constraints, allow)
        scores = {item: float(base[position[item]]) for item in selection.kept}

    # A kind whose artifact failed to load (in this request, or in an earlier one: then it is not `available`) was
    # skipped like a missing one: its lookups gave nothing.
    unreadable = _unreadable(arrays)
    looked_up = {name for name in (POP, IMPLICIT) if KIND[name] in available} | {name for name in uses if uses[name]}
    warnings = [
        _unavailable(name, unreadable)
        for name in SIGNAL_NAMES
        if name in missing or (name in looked_up and KIND[name] in unreadable)
    ]
    warnings += _tag_lookup_warning(request.constraints, available - unreadable)
    if outcome is not None:
        injected = sum(1 for item in selection.kept if item in outcome.pinned and item not in position)
        if injected:
            warnings.append(
                Warning_(code="RULE_PIN_INJECTED", detail=f"{injected} pinned items were injected into results")
            )
    warnings += _constraint_warnings(selection, allow)
    kept = [item for item in selection.kept if item in position]  # pins and injected items carry no signals
    kept_at = eligible[np.array([position[item] for item in kept], dtype=np.int64)]
    columns = [values[name][kept_at].tolist() for name in SIGNAL_NAMES]
    rows = zip(*columns, strict=True)
    item_values = {item: dict(zip(SIGNAL_NAMES, row, strict=True)) for item, row in zip(kept, rows, strict=True)}
    reasons = outcome.reasons if outcome is not None else {}
    items = _items(selection.kept, scores, item_values, weights, reasons, request.options, anchors)
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

    raw: dict[str, dict[str, float]] = {name: {} for name in blended}
    lookups = {COOC: signals.co_visited, KNN: signals.item_neighbors, CONTENT: signals.similar_by_tags}
    weighted = [name for name in SIGNAL_NAMES if name in blended and weights[name] > 0]  # signal order, like recommend
    for name in weighted:
        if KIND[name] in available:
            _max_into(raw[name], lookups[name](request.item_id))
    unreadable = _unreadable(signals)  # a lookup that failed to load its artifact gave nothing: skipped
    usable = available - unreadable
    if not any(KIND[name] in usable for name in blended):
        return Ranked(items=[], warnings=[Warning_(code="SIGNAL_UNAVAILABLE", detail="similarity signals unavailable")])
    warnings = [_unavailable(name, unreadable) for name in weighted if KIND[name] not in usable]

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
        scores[item_id] = min(sum(weights[name] * item_values[name] for name in blended), MAX_SCORE)

    selection = _select(_order(scores, []), request.k, tags, request.constraints, None)
    warnings += _tag_lookup_warning(request.constraints, usable)
    warnings += _constraint_warnings(selection, None)
    items = _items(selection.kept, scores, values, weights, {}, request.options, [request.item_id])
    return Ranked(items=items, warnings=warnings)
