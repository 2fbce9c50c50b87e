"""Reference recommenders for session next-item evaluation (`recsys_tools.evaluation.sessions`), trained on
the clicks of a train part only, independently of the product's pipeline and artifacts
(numpy and pure Python: no scipy).

The train clicks are indexed once (`index_sessions`): sessions are the exact session ids, each session's clicks in
time order (ties: the order given). Items are coded in string order of their ids, so "ties by item_id asc" means
string order, as in `recsys_tools.evaluation.baselines` and the product's ranking.

Every recommender answers `recommend(prefix, k)`: `prefix` is the visitor's clicks so far, oldest first; the answer
is at most k item ids, best first, never an item of the prefix (the product never re-shows what was just seen
either), ranked by score desc (rounded to 12 decimals, so float summation order cannot break ties), then item_id
asc. Only items with a positive score are returned: a list is not padded with popular items (session-rec's
baselines are not either), so a prefix whose items the train part does not know gets [] from AR, SR and kNN.

- `Popularity`: clicks in train.
- `AssociationRules` (session-rec's `AssociationRules`): score(c) = the number of ordered pairs of positions
  (i != j) of a train session with the last prefix item at i and c at j.
- `SequentialRules` (session-rec's `SequentialRules`, weighting "div"): score(c) = sum over train sessions and
  positions i < j with j - i <= steps, the last prefix item at i and c at j, of 1 / (j - i).
- `SessionKNN` (session-rec's `ContextKNN`): the train sessions sharing an item with the prefix, the
  `sample_size` most recent of them (by their last click; ties: session id asc); sim(s) = cosine of the item sets,
  |P & S| / sqrt(|P| |S|); the k most similar (ties: the more recent); score(c) = sum of sim(s) over those
  neighbours s containing c.
- `VSTAN` (Ludewig et al. 2021, "V-STAN"; STAN of Garg et al. 2019 plus sequential and IDF weights): see its
  docstring.

Defaults were chosen on the yoochoose validation split (`sessions.prepare_yoochoose(..., split="validation")`,
new-target MRR@20), never on the test split; each recommender's docstring gives the grid and the choice.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_SCORE_DECIMALS = 12


@dataclass(frozen=True)
class SessionIndex:
    """Train clicks by session, in CSR form.

    items: sorted distinct item ids (str); a click's code is its item's index. sessions: session ids (str), ordered
    by last click time asc, then session id asc (so a higher session index is more recent). indptr / codes: the
    clicks of session s are codes[indptr[s]:indptr[s + 1]], in time order. last_time: each session's last click.
    """

    items: np.ndarray
    sessions: np.ndarray
    indptr: np.ndarray
    codes: np.ndarray
    last_time: np.ndarray

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_sessions(self) -> int:
        return len(self.sessions)

    def encode(self, item_ids: Sequence[str]) -> np.ndarray:
        """The code of each item, -1 for items the train part does not have."""
        wanted = np.asarray([str(i) for i in item_ids], dtype=str)
        if not len(wanted) or not self.n_items:
            return np.full(len(wanted), -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.items, wanted), self.n_items - 1)
        return np.where(self.items[pos] == wanted, pos, -1).astype(np.int64)

    def session_lengths(self) -> np.ndarray:
        return np.diff(self.indptr)


def index_sessions(session_ids: Sequence, item_ids: Sequence, times: Sequence[float]) -> SessionIndex:
    """Index train clicks, one entry per click (ids are compared as strings; `times` in any monotonic unit)."""
    sessions_in = np.asarray([str(s) for s in session_ids], dtype=str)
    items_in = np.asarray([str(i) for i in item_ids], dtype=str)
    times_in = np.asarray(times, dtype=np.float64)
    if not len(sessions_in) == len(items_in) == len(times_in):
        raise ValueError("session_ids, item_ids and times must have the same length")
    items, codes = np.unique(items_in, return_inverse=True)
    session_names, session_of = np.unique(sessions_in, return_inverse=True)
    n = len(session_names)
    last = np.full(n, -np.inf)
    np.maximum.at(last, session_of, times_in)
    # Session order: last click asc, then id asc (np.unique sorted the ids, so the index breaks ties).
    order = np.lexsort((np.arange(n), last))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    session_rank = rank[session_of]
    clicks = np.lexsort((np.arange(len(times_in)), times_in, session_rank))  # by session, time, given order
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(session_rank, minlength=n), out=indptr[1:])
    return SessionIndex(items, session_names[order], indptr, codes[clicks].astype(np.int64), last[order])


def _top(scores: np.ndarray, candidates: np.ndarray, excluded: set[int], k: int) -> np.ndarray:
    """The k best of `candidates` (item codes with their `scores`), excluded codes and scores <= 0 left out."""
    keep = scores > 0
    if excluded:
        keep &= ~np.isin(candidates, np.fromiter(excluded, dtype=np.int64, count=len(excluded)))
    candidates, scores = candidates[keep], np.round(scores[keep], _SCORE_DECIMALS)
    return candidates[np.lexsort((candidates, -scores))[:k]]


class _Recommender(ABC):
    """A baseline: `recommend` codes the prefix and leaves out its items; subclasses rank in `_rank`."""

    index: SessionIndex

    def _codes(self, prefix: Sequence[str]) -> np.ndarray:
        return self.index.encode(prefix)

    def recommend(self, prefix: Sequence[str], k: int = 20) -> list[str]:
        codes = self._codes(prefix)
        excluded = {int(c) for c in codes if c >= 0}
        return self.index.items[self._rank(codes, excluded, k)].tolist()

    @abstractmethod
    def _rank(self, codes: np.ndarray, excluded: set[int], k: int) -> np.ndarray:
        """Up to k item codes for the prefix `codes` (oldest first; -1 = unknown), none of `excluded`."""


class Popularity(_Recommender):
    """Items by clicks in train (desc), then item_id asc."""

    def __init__(self, index: SessionIndex) -> None:
        self.index = index
        counts = np.bincount(index.codes, minlength=index.n_items)
        self.order = np.lexsort((np.arange(index.n_items), -counts))

    def _rank(self, codes: np.ndarray, excluded: set[int], k: int) -> np.ndarray:
        return self.order[~np.isin(self.order, list(excluded))][:k] if excluded else self.order[:k]


class _Rules(_Recommender):
    """Item -> scored items, kept as CSR sorted by score desc, item asc: the answer reads one row."""

    def _build(self, a: np.ndarray, b: np.ndarray, w: np.ndarray) -> None:
        n = max(self.index.n_items, 1)
        keys, inverse = np.unique(a * n + b, return_inverse=True)
        weight = np.round(np.bincount(inverse, weights=w, minlength=len(keys)), _SCORE_DECIMALS)
        src, dst = keys // n, keys % n
        order = np.lexsort((dst, -weight, src))
        self.dst, self.weight = dst[order], weight[order]
        self.indptr = np.zeros(self.index.n_items + 1, dtype=np.int64)
        np.cumsum(np.bincount(src, minlength=self.index.n_items), out=self.indptr[1:])

    def _rank(self, codes: np.ndarray, excluded: set[int], k: int) -> np.ndarray:
        if not len(codes) or codes[-1] < 0:
            return np.empty(0, dtype=np.int64)
        last = codes[-1]
        out: list[int] = []
        for item in self.dst[self.indptr[last] : self.indptr[last + 1]].tolist():
            if item not in excluded:
                out.append(item)
                if len(out) == k:
                    break
        return np.asarray(out, dtype=np.int64)


def _session_of_click(index: SessionIndex) -> np.ndarray:
    return np.repeat(np.arange(index.n_sessions), index.session_lengths())


class AssociationRules(_Rules):
    """Items co-occurring with the last prefix item in train sessions.

    distinct=False (session-rec's counting): the number of ordered position pairs (i != j), so a session clicking
    x twice and c once adds 2 to x -> c. distinct=True: the number of train sessions holding both x and c.
    distinct: chosen on the validation split: True, new-target MRR@20 0.2284 (HR@20 0.4696) against 0.2151 (0.4625)
    with position pairs.
    """

    def __init__(self, index: SessionIndex, distinct: bool = True) -> None:
        self.index = index
        session, codes = _session_of_click(index), index.codes
        if distinct:  # each session's items once, at their first click
            _, first = np.unique(session * max(index.n_items, 1) + codes, return_index=True)
            first.sort()
            session, codes = session[first], codes[first]
        lengths = np.bincount(session, minlength=index.n_sessions)
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        position = np.arange(len(session)) - starts[session]
        src, dst = [], []
        for gap in range(1, int(lengths.max(initial=0))):  # every pair i < j = i + gap of one session, both ways
            first_of_pair = np.flatnonzero(lengths[session] > position + gap)
            src += [codes[first_of_pair], codes[first_of_pair + gap]]
            dst += [codes[first_of_pair + gap], codes[first_of_pair]]
        a = np.concatenate(src) if src else np.empty(0, dtype=np.int64)
        b = np.concatenate(dst) if dst else np.empty(0, dtype=np.int64)
        self._build(a, b, np.ones(len(a)))


class SequentialRules(_Rules):
    """Items following the last prefix item within train sessions, weight 1 / gap for gaps up to `steps`.

    steps: chosen on the validation split from 1, 2, 3, 5, 10, 15, 20, 30 by new-target MRR@20: 10 (0.2166; 5, 15
    and more within 0.0006 of it, 1 gives 0.2057).
    """

    def __init__(self, index: SessionIndex, steps: int = 10) -> None:
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.index = index
        src, dst, weight = [], [], []
        lengths = index.session_lengths()
        session = _session_of_click(index)
        position = np.arange(len(session)) - index.indptr[session]
        for gap in range(1, min(steps, int(lengths.max(initial=0)) - 1) + 1):
            first = np.flatnonzero(lengths[session] > position + gap)
            src.append(index.codes[first])
            dst.append(index.codes[first + gap])
            weight.append(np.full(len(first), 1.0 / gap))
        a = np.concatenate(src) if src else np.empty(0, dtype=np.int64)
        b = np.concatenate(dst) if dst else np.empty(0, dtype=np.int64)
        self._build(a, b, np.concatenate(weight) if weight else np.empty(0))


class _Neighbourhood(_Recommender):
    """Shared by the session-kNN family: distinct items per session and sessions per item (most recent first)."""

    def _index_sets(self, index: SessionIndex) -> None:
        self.index = index
        session = _session_of_click(index)
        pairs = np.unique(session * max(index.n_items, 1) + index.codes)
        self.set_session = pairs // max(index.n_items, 1)  # distinct (session, item), by session then item
        self.set_item = pairs % max(index.n_items, 1)
        self.set_indptr = np.zeros(index.n_sessions + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.set_session, minlength=index.n_sessions), out=self.set_indptr[1:])
        self.set_size = np.diff(self.set_indptr)
        # Sessions of each item, most recent (highest index) first.
        order = np.lexsort((-self.set_session, self.set_item))
        self.item_sessions = self.set_session[order]
        self.item_indptr = np.zeros(index.n_items + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.set_item, minlength=index.n_items), out=self.item_indptr[1:])

    def _sample(self, known: np.ndarray, sample_size: int) -> tuple[np.ndarray, np.ndarray]:
        """The `sample_size` most recent sessions sharing an item with `known` (distinct codes) and how many."""
        parts = [self.item_sessions[self.item_indptr[c] : self.item_indptr[c + 1]] for c in known.tolist()]
        if not parts:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        sessions, shared = np.unique(np.concatenate(parts), return_counts=True)
        return sessions[::-1][:sample_size], shared[::-1][:sample_size]  # unique sorts asc: most recent last


class SessionKNN(_Neighbourhood):
    """session-kNN (session-rec's ContextKNN, cosine on item sets, "recent" sampling).

    k (neighbours) and sample_size: chosen on the validation split from k in 50, 100, 200, 500, 1000 and
    sample_size in 500, 1000, 2500 by new-target MRR@20: k = 500 (0.2176, HR@20 0.4766; k = 100 gives 0.2139,
    0.4587; k = 1000 the same as 500); the sample size barely matters (+-0.0002), 1000 kept (session-rec's spec
    for this protocol).
    """

    def __init__(self, index: SessionIndex, k: int = 500, sample_size: int = 1000) -> None:
        if k < 1 or sample_size < 1:
            raise ValueError("k and sample_size must be >= 1")
        self.k, self.sample_size = k, sample_size
        self._index_sets(index)

    def _rank(self, codes: np.ndarray, excluded: set[int], k: int) -> np.ndarray:
        prefix_size = len(set(codes.tolist()))  # unknown items count in |P| too
        known = np.unique(codes[codes >= 0])
        sessions, shared = self._sample(known, self.sample_size)
        if not len(sessions):
            return np.empty(0, dtype=np.int64)
        sim = shared / np.sqrt(prefix_size * self.set_size[sessions])
        best = np.lexsort((-sessions, -sim))[: self.k]  # most similar, then the more recent
        return self._score(sessions[best], sim[best], excluded, k)

    def _score(self, neighbours: np.ndarray, weights: np.ndarray, excluded: set[int], k: int) -> np.ndarray:
        starts, ends = self.set_indptr[neighbours], self.set_indptr[neighbours + 1]
        lengths = ends - starts
        offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
        items = self.set_item[np.arange(lengths.sum()) + offsets]
        candidates, inverse = np.unique(items, return_inverse=True)
        scores = np.bincount(inverse, weights=np.repeat(weights, lengths), minlength=len(candidates))
        return _top(scores, candidates, excluded, k)


class VSTAN(_Neighbourhood):
    """V-STAN (Ludewig et al. 2021): session-kNN whose similarity and scores weigh recency and position.

    With the prefix P = p_1..p_n (p_n the latest) and a train session S:
      w_pos(p_i)      = exp((i - n) / lambda_spw)                             recent prefix items count more
      sim(S)          = sum over distinct p_i in S of w_pos(p_i) * idf(p_i) / sqrt(|P| |S|)  (idf optional)
      neighbours      = the k most similar of the `sample_size` most recent sessions sharing an item with P
      score(c)        = sum over neighbours S containing c of sim(S) * exp(-|pos_S(c) - pos_S(m)| / lambda_inh),
                        m = the most recent prefix item found in S, pos_S = the position of an item's first
                        click in S
    With lambda_* = None that weight is off; with both off and idf=False this is `SessionKNN`. STAN's decay of
    neighbour sessions by age is left out: the train part here spans only a few days before the test part.
    Defaults chosen on the validation split by new-target MRR@20, a coordinate search from k 500, lambda_spw 2,
    lambda_inh 2, idf on (0.2333) over k 100-1000, lambda_spw off/0.5-8, lambda_inh off/1-8, idf on/off, then a
    grid k 100/200 x lambda_spw 0.5/1 x lambda_inh 4/8/off: k 200, lambda_spw 0.5, lambda_inh 8, idf on (0.2392,
    HR@20 0.4999; the position weight matters most: off gives 0.2206).
    """

    def __init__(
        self,
        index: SessionIndex,
        k: int = 200,
        sample_size: int = 1000,
        lambda_spw: float | None = 0.5,
        lambda_inh: float | None = 8.0,
        idf: bool = True,
    ) -> None:
        self.k, self.sample_size = k, sample_size
        self.lambda_spw, self.lambda_inh = lambda_spw, lambda_inh
        self._index_sets(index)
        n = max(index.n_sessions, 1)
        self.idf = np.log(n / np.maximum(np.bincount(self.set_item, minlength=index.n_items), 1)) if idf else None
        # Position of each distinct (session, item) pair: the item's first click in the session.
        session = _session_of_click(index)
        pair = session * max(index.n_items, 1) + index.codes
        _, first = np.unique(pair, return_index=True)  # pairs sorted like set_session / set_item
        self.set_position = (first - index.indptr[session[first]]).astype(np.float64)

    def _rank(self, codes: np.ndarray, excluded: set[int], k: int) -> np.ndarray:
        n = len(codes)
        prefix_size = len(set(codes.tolist()))
        weight: dict[int, float] = {}
        for i, code in enumerate(codes.tolist()):  # the latest occurrence of an item decides its weight
            if code >= 0:
                weight[code] = np.exp((i + 1 - n) / self.lambda_spw) if self.lambda_spw else 1.0
                if self.idf is not None:
                    weight[code] *= self.idf[code]
        known = np.unique(codes[codes >= 0])
        sessions, _ = self._sample(known, self.sample_size)
        if not len(sessions):
            return np.empty(0, dtype=np.int64)
        starts, ends = self.set_indptr[sessions], self.set_indptr[sessions + 1]
        lengths = ends - starts
        offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
        rows = np.arange(lengths.sum()) + offsets
        items, owner = self.set_item[rows], np.repeat(np.arange(len(sessions)), lengths)
        prefix_weight = np.zeros(self.index.n_items)
        prefix_weight[np.fromiter(weight, dtype=np.int64)] = np.fromiter(weight.values(), dtype=np.float64)
        match = prefix_weight[items]
        sim = np.bincount(owner, weights=match, minlength=len(sessions)) / np.sqrt(
            prefix_size * self.set_size[sessions]
        )
        best = np.lexsort((-sessions, -sim))[: self.k]
        best = best[sim[best] > 0]
        chosen = np.zeros(len(sessions), dtype=bool)
        chosen[best] = True
        keep = chosen[owner]
        items, owner, rows = items[keep], owner[keep], rows[keep]
        scores = sim[owner]
        if self.lambda_inh:
            # m = the shared item of the most recent prefix position, per neighbour session.
            recency = np.full(self.index.n_items, -1)
            for i, code in enumerate(codes.tolist()):
                if code >= 0:
                    recency[code] = i
            r = recency[items]
            anchor_row = np.full(len(sessions), -1)
            best_r = np.full(len(sessions), -1)
            for row, o, value in zip(rows.tolist(), owner.tolist(), r.tolist(), strict=True):
                if value > best_r[o]:
                    best_r[o], anchor_row[o] = value, row
            distance = np.abs(self.set_position[rows] - self.set_position[anchor_row[owner]])
            scores = scores * np.exp(-distance / self.lambda_inh)
        candidates, inverse = np.unique(items, return_inverse=True)
        totals = np.bincount(inverse, weights=scores, minlength=len(candidates))
        return _top(totals, candidates, excluded, k)
