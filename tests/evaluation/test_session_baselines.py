"""Session baselines on tiny hand-made train sessions, with hand-computed expectations.

Train sessions (clicks in time order; sessions end at times 1..5, so S5 is the most recent):
  S1  a b c          sets: {a,b,c} (3)
  S2  a c                  {a,c}   (2)
  S3  b a b                {a,b}   (2)
  S4  c d                  {c,d}   (2)
  S5  c b b b              {b,c}   (2)
Clicks: a 3, b 6, c 4, d 1 -> popularity order b, c, a, d.
"""

from __future__ import annotations

import numpy as np
import pytest

from recsys_tools.evaluation.session_baselines import (
    VSTAN,
    AssociationRules,
    Popularity,
    SequentialRules,
    SessionKNN,
    index_sessions,
)

SESSIONS = {"S1": "abc", "S2": "ac", "S3": "bab", "S4": "cd", "S5": "cbbb"}


def make_index(sessions: dict[str, str]):
    ids, items, times = [], [], []
    for n, (session, clicks) in enumerate(sessions.items()):
        for position, item in enumerate(clicks):
            ids.append(session)
            items.append(item)
            times.append(n + 1 - 0.01 * (len(clicks) - 1 - position))  # the session's last click at n + 1
    return index_sessions(ids, items, times)


@pytest.fixture
def index():
    return make_index(SESSIONS)


def test_the_index_orders_sessions_by_last_click_and_keeps_click_order() -> None:
    index = index_sessions(["y", "x", "y", "x"], ["b", "a", "c", "a"], [3.0, 1.0, 2.0, 2.0])
    assert index.items.tolist() == ["a", "b", "c"]
    assert index.sessions.tolist() == ["x", "y"]  # x ends at 2.0, y at 3.0
    assert index.codes.tolist() == [0, 0, 2, 1]  # x: a a; y: c (t=2) then b (t=3)
    assert index.encode(["c", "zz"]).tolist() == [2, -1]


def test_popularity_counts_clicks_and_removes_the_sessions_items(index) -> None:
    assert Popularity(index).recommend([]) == ["b", "c", "a", "d"]
    assert Popularity(index).recommend(["b"], k=2) == ["c", "a"]


def test_association_rules_count_position_pairs_or_sessions(index) -> None:
    # Last item c. Position pairs: c-a 2 (S1, S2), c-b 4 (S1 once, S5 three times), c-d 1 (S4, excluded).
    assert AssociationRules(index, distinct=False).recommend(["d", "c"]) == ["b", "a"]
    # Sessions holding both: c-a 2 (S1, S2), c-b 2 (S1, S5): a tie, broken by item id.
    assert AssociationRules(index, distinct=True).recommend(["d", "c"]) == ["a", "b"]
    # Only the LAST item counts: after a, b 3 pairs (S1, S3 twice), c 2 (S1, S2).
    assert AssociationRules(index, distinct=False).recommend(["c", "a"]) == ["b"]


def test_sequential_rules_weigh_followers_by_one_over_the_gap() -> None:
    index = make_index({"T1": "xyz", "T2": "xzw"})
    # steps 1: x->y 1 (T1), x->z 1 (T2): a tie.
    assert SequentialRules(index, steps=1).recommend(["x"]) == ["y", "z"]
    # steps 2: x->z 1 + 1/2 (T1 at gap 2), x->y 1, x->w 1/2.
    assert SequentialRules(index, steps=2).recommend(["x"]) == ["z", "y", "w"]
    assert SequentialRules(index, steps=2).recommend(["z"]) == ["w"]  # nothing precedes: only followers count
    with pytest.raises(ValueError):
        SequentialRules(index, steps=0)


def test_rules_give_nothing_for_an_unknown_last_item(index) -> None:
    assert AssociationRules(index).recommend(["a", "unknown"]) == []
    assert SequentialRules(index).recommend(["unknown"]) == []


def test_session_knn_sums_cosine_similarities_of_the_nearest_sessions(index) -> None:
    # Prefix {a}: sim S1 = 1/sqrt(3) = 0.577, S2 = S3 = 1/sqrt(2) = 0.707; S4, S5 share nothing.
    # b: S1 + S3 = 1.284, c: S1 + S2 = 1.284: a tie, broken by item id.
    assert SessionKNN(index, k=100).recommend(["a"]) == ["b", "c"]
    # k = 1: S2 and S3 tie at 0.707; the more recent, S3, wins: only b.
    assert SessionKNN(index, k=1).recommend(["a"]) == ["b"]
    # sample_size = 1: only the most recent session holding a (S3).
    assert SessionKNN(index, k=100, sample_size=1).recommend(["a"]) == ["b"]
    # Prefix {a, b}: S3 1, S1 2/sqrt(6) = 0.816, S2 0.5, S5 0.5; c = 0.816 + 0.5 + 0.5; d nowhere near.
    assert SessionKNN(index, k=100).recommend(["a", "b"]) == ["c"]
    assert SessionKNN(index, k=100).recommend(["unknown"]) == []


def test_session_knn_counts_unknown_prefix_items_in_the_cosine() -> None:
    # Prefix {a, q} (q unknown): sim(X = {a, b}) = 1 / sqrt(2 * 2) = 0.5, sim(Y = {a, c, e}) = 1 / sqrt(2 * 3).
    # k = 1 keeps the more similar X whatever the prefix size, so the ranking checks the arithmetic indirectly:
    index = make_index({"X": "ab", "Y": "ace"})
    assert SessionKNN(index, k=1).recommend(["a", "q"]) == ["b"]
    assert SessionKNN(index, k=2).recommend(["a", "q"]) == ["b", "c", "e"]  # 0.5 > 0.408 = 0.408


def test_vstan_without_its_weights_is_session_knn(index) -> None:
    plain = VSTAN(index, k=2, sample_size=10, lambda_spw=None, lambda_inh=None, idf=False)
    knn = SessionKNN(index, k=2, sample_size=10)
    for prefix in (["a"], ["a", "b"], ["c"], ["d", "c"], ["b", "b", "a"]):
        assert plain.recommend(prefix) == knn.recommend(prefix)


def test_vstan_position_weights_favour_the_latest_prefix_item() -> None:
    # Prefix [a, c]: X = {a, b} shares the older item, Y = {c, d} the latest. Without position weights both are
    # equally similar (tie: b, d by id); with them Y is more similar, so d comes first.
    index = make_index({"X": "ab", "Y": "cd"})
    flat = VSTAN(index, k=10, lambda_spw=None, lambda_inh=None, idf=False)
    assert flat.recommend(["a", "c"]) == ["b", "d"]
    weighted = VSTAN(index, k=10, lambda_spw=1.0, lambda_inh=None, idf=False)
    assert weighted.recommend(["a", "c"]) == ["d", "b"]


def test_baselines_are_deterministic_and_never_return_the_prefix(index) -> None:
    rng = np.random.default_rng(0)
    items = list("abcd")
    recommenders = [Popularity(index), AssociationRules(index), SequentialRules(index), SessionKNN(index), VSTAN(index)]
    for _ in range(50):
        prefix = list(rng.choice(items, size=int(rng.integers(1, 4))))
        for recommender in recommenders:
            first = recommender.recommend(prefix, k=3)
            assert first == recommender.recommend(prefix, k=3)
            assert not set(first) & set(prefix)
            assert len(first) <= 3
