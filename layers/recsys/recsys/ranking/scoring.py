"""Scoring: each signal as one array over the candidates' numbers (0..1), and their weighted blend.

  pop       popularity / the top F's max (items outside the top F looked up one by one, capped at 1)
  cooc      Σ_i d^i · cosine(a_i, c) / Σ_i d^i over the anchors a_i (d = anchor_decay)
  session   Σ_i d^i · share(a_i -> c) / Σ_i d^i
  content   max over the anchors of the tag cosine
  knn       U(c) / max U over the items not excluded, U(c) = Σ_j h^j · sim(s_j, c) (h = history_decay)
  implicit  the user's score of c / the user's largest
  score     Σ_s w_s · s(c), saturated at the largest double

The floats are the ones per-item arithmetic gives: the same operations on the same values, sums in lookup order.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

import numpy as np

from recsys.ranking.candidates import Candidates
from recsys.ranking.signals import SignalArrays
from recsys.ranking.types import CONTENT, COOC, IMPLICIT, KNN, POP, SESSION, SIGNALS, Knobs

MAX_SCORE = sys.float_info.max
"""Scores saturate here: weights are finite but unbounded, and an infinite score has no JSON form."""


def _decayed(n: int, at: np.ndarray, sources: np.ndarray, values: np.ndarray, decay: float) -> np.ndarray:
    """Per number, Σ decay^source · value over its entries (added in lookup order)."""
    factors = decay ** np.arange(int(sources.max()) + 1 if len(sources) else 0, dtype=np.float64)  # one per source
    return np.bincount(at, weights=factors[sources] * values, minlength=n)


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


def signal_values(candidates: Candidates, knobs: Knobs) -> dict[str, np.ndarray]:
    """Every signal's value per candidate number (popularity outside the top F is 0 until `fill_popularity`)."""
    c, parts, n = candidates, candidates.parts, candidates.n
    values: dict[str, np.ndarray] = {}
    decay = knobs.anchor_decay
    for name in (COOC, SESSION):  # decayed means over the anchors
        if name in c.found:
            part, source, scores = c.found[name]
            total = sum(decay**index for index in range(len(c.anchors)))
            values[name] = _decayed(n, parts.at(part), source, scores, decay) / total
    if CONTENT in c.found:
        part, _, scores = c.found[CONTENT]
        values[CONTENT] = _max_of(n, parts.at(part), scores)
    if KNN in c.found:  # knn(c) = U(c) / max U over the items not excluded
        part, source, scores = c.found[KNN]
        summed = _decayed(n, parts.at(part), source, scores, knobs.history_decay)
        counted = summed[parts.mark([part]) & ~c.is_excluded]
        top = float(counted.max()) if len(counted) else 0.0
        if top > 0:
            values[KNN] = np.minimum(summed / top, 1.0)
    history = c.history
    max_history = float(history.scores.max()) if len(history) else 0.0
    if max_history > 0:
        values[IMPLICIT] = np.zeros(n)
        np.maximum.at(values[IMPLICIT], parts.at(c.seen), history.scores / max_history)
    values[POP] = _last_of(n, parts.at(c.pop[0]), c.pop[1]) if c.pop is not None else np.zeros(n)
    for name in SIGNALS:
        values.setdefault(name, np.zeros(n))
    return values


def fill_popularity(
    values: dict[str, np.ndarray], candidates: Candidates, eligible: np.ndarray, arrays: SignalArrays
) -> None:
    """pop(c) of the eligible items outside the popularity top F: looked up, capped at 1."""
    c = candidates
    if c.max_pop > 0:
        others = eligible[~c.parts.mark([c.pop[0]] if c.pop is not None else [])[eligible]]
        if len(others):
            values[POP][others] = np.minimum(arrays.popularity_of(c.parts.items[others]) / c.max_pop, 1.0)


def blend(values: Mapping[str, np.ndarray], weights: Mapping[str, float], eligible: np.ndarray) -> np.ndarray:
    """score = Σ_s w_s · s(c) over the eligible numbers (signals with a positive weight, in signal order)."""
    base = np.zeros(len(eligible))
    with np.errstate(over="ignore"):  # finite weights can still add up past a double: saturated below
        for name in SIGNALS:
            if weights[name] > 0:
                base = base + weights[name] * values[name][eligible]
    return np.minimum(base, MAX_SCORE)
