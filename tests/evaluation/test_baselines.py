"""Baselines on a tiny hand-computed matrix, against a brute-force reference, and on 100k interactions.

The tiny matrix (users x items, binary):
        a  b  c  d
  u1    1  1  .  .
  u2    1  1  1  .
  u3    .  1  1  .
  u4    .  .  1  1
Users per item: |U_a| = 2, |U_b| = 3, |U_c| = 3, |U_d| = 1 -> popularity order b, c (3, tie by id), a (2), d (1).
Co-counts: a-b 2 (u1, u2), a-c 1 (u2), b-c 2 (u2, u3), c-d 1 (u4); a-d and b-d 0.
Cosine: sim(a,b) = 2/sqrt(2*3) = 2/sqrt(6) = 0.8165, sim(a,c) = 1/sqrt(2*3) = 1/sqrt(6) = 0.4082,
        sim(b,c) = 2/sqrt(3*3) = 2/3 = 0.6667, sim(c,d) = 1/sqrt(3*1) = 1/sqrt(3) = 0.5774.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict

import numpy as np
import pyarrow as pa
import pytest

from recsys_tools.evaluation import baselines
from recsys_tools.evaluation.baselines import (
    interactions,
    item_knn_baseline,
    item_probabilities,
    item_similarities,
    popularity_baseline,
)

ROWS = [("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "b"), ("u2", "c"), ("u3", "b"), ("u3", "c"), ("u4", "c")]
ROWS += [("u4", "d"), ("u1", "a")]  # (u1, a) twice: still one user of a
USERS = ["u1", "u2", "u3", "u4", "u5"]  # u5 is cold

S6, S3 = math.sqrt(6), math.sqrt(3)
SIM_AB, SIM_AC, SIM_BC, SIM_CD = 2 / S6, 1 / S6, 2 / 3, 1 / S3


def _table(rows=ROWS, **extra) -> pa.Table:
    return pa.table({"user_id": [u for u, _ in rows], "item_id": [i for _, i in rows], **extra})


def test_popularity_by_distinct_users_ties_by_item_id() -> None:
    out = popularity_baseline(_table(), USERS, k=3)
    assert out == {
        "u1": ["c", "d"],  # b c a d minus seen {a, b}: only 2 left
        "u2": ["d"],  # minus {a, b, c}
        "u3": ["a", "d"],  # minus {b, c}
        "u4": ["b", "a"],  # minus {c, d}
        "u5": ["b", "c", "a"],  # cold: the head of the list
    }
    assert list(out) == USERS


def test_popularity_without_exclude_seen() -> None:
    out = popularity_baseline(_table(), ["u1", "u5"], k=2, exclude_seen=False)
    assert out == {"u1": ["b", "c"], "u5": ["b", "c"]}


def test_item_probabilities() -> None:
    # distinct users per item / 4 users
    assert item_probabilities(_table()) == {"a": 2 / 4, "b": 3 / 4, "c": 3 / 4, "d": 1 / 4}


def test_cosine_similarities_are_the_hand_computed_values() -> None:
    data = interactions(_table())
    assert data.items.tolist() == ["a", "b", "c", "d"]
    sim = item_similarities(data)
    a, b, c, d = range(4)
    assert sim.row(a) == pytest.approx({b: SIM_AB, c: SIM_AC})
    assert sim.row(b) == pytest.approx({a: SIM_AB, c: SIM_BC})
    assert sim.row(c) == pytest.approx({a: SIM_AC, b: SIM_BC, d: SIM_CD})
    assert sim.row(d) == pytest.approx({c: SIM_CD})
    # each row is ordered by similarity desc: c's neighbours b (0.667), d (0.577), a (0.408)
    assert list(sim.row(c)) == [b, d, a]


def test_shrink_adds_to_the_denominator() -> None:
    sim = item_similarities(interactions(_table()), shrink=1.0)
    a, b, c = range(3)
    # sim(a,b) = 2 / (sqrt(6) + 1) = 0.5798; sim(a,c) = 1 / (sqrt(6) + 1) = 0.2899
    assert sim.row(a) == pytest.approx({b: 2 / (S6 + 1), c: 1 / (S6 + 1)})
    # sim(b,c) = 2 / (3 + 1) = 0.5
    assert sim.row(b)[c] == pytest.approx(0.5)


def test_item_knn_scores_sum_similarities_over_the_history() -> None:
    out = item_knn_baseline(_table(), USERS, k=3)
    assert out == {
        # history {a, b}: c = sim(a,c) + sim(b,c) = 0.4082 + 0.6667 = 1.0749; d unreachable -> popularity fill
        "u1": ["c", "d"],
        # history {a, b, c}: d = sim(c,d) = 0.5774
        "u2": ["d"],
        # history {b, c}: a = sim(b,a) + sim(c,a) = 3/sqrt(6) = 1.2247; d = sim(c,d) = 0.5774
        "u3": ["a", "d"],
        # history {c, d}: b = sim(c,b) = 0.6667 > a = sim(c,a) = 0.4082
        "u4": ["b", "a"],
        # cold: popularity
        "u5": ["b", "c", "a"],
    }


def test_item_knn_without_exclude_seen_breaks_ties_by_item_id() -> None:
    out = item_knn_baseline(_table(), ["u1"], k=3, exclude_seen=False)
    # history {a, b}: c = 1.0749; a = sim(b,a) = 0.8165 and b = sim(a,b) = 0.8165 tie -> a before b
    assert out == {"u1": ["c", "a", "b"]}


def test_item_knn_keeps_the_top_neighbours_per_item() -> None:
    # neighbors=1: a -> b (0.8165 > 0.4082), b -> a (0.8165 > 0.6667), c -> b (0.6667), d -> c
    sim = item_similarities(interactions(_table()), neighbors=1)
    a, b, c, d = range(4)
    assert [sim.row(i) for i in range(4)] == [
        pytest.approx({b: SIM_AB}),
        pytest.approx({a: SIM_AB}),
        pytest.approx({b: SIM_BC}),
        pytest.approx({c: SIM_CD}),
    ]
    out = item_knn_baseline(_table(), ["u1", "u3", "u4"], k=3, neighbors=1, fill_with_popularity=False)
    # u1 {a, b}: a -> b and b -> a are seen: nothing; u3 {b, c}: b -> a; u4 {c, d}: c -> b, d -> c (seen)
    assert out == {"u1": [], "u3": ["a"], "u4": ["b"]}
    filled = item_knn_baseline(_table(), ["u1", "u3", "u4"], k=3, neighbors=1)
    # padded with popularity (b c a d) minus seen and already chosen
    assert filled == {"u1": ["c", "d"], "u3": ["a", "d"], "u4": ["b", "a"]}


def test_cold_users_fall_back_to_popularity() -> None:
    assert item_knn_baseline(_table(), ["nobody", "u5"], k=2) == popularity_baseline(_table(), ["nobody", "u5"], k=2)
    assert item_knn_baseline(_table(), ["u5"], k=2) == {"u5": ["b", "c"]}


def test_history_cap_keeps_the_heaviest_items_for_the_co_counts() -> None:
    # one user with a (weight 5), b (1), c (3): capped at 2 -> a and c only: sim(a,c) = 1/sqrt(1*1) = 1
    table = _table([("u1", "a"), ("u1", "b"), ("u1", "c")], weight=[5.0, 1.0, 3.0])
    sim = item_similarities(interactions(table), max_history=2)
    assert [sim.row(i) for i in range(3)] == [{2: 1.0}, {}, {0: 1.0}]
    # ties on weight: item_id asc (a, b kept)
    table = _table([("u1", "c"), ("u1", "b"), ("u1", "a")])
    sim = item_similarities(interactions(table), max_history=2)
    assert [sim.row(i) for i in range(3)] == [{1: 1.0}, {0: 1.0}, {}]


def test_inputs_table_with_count_or_weight_and_numpy_arrays_agree() -> None:
    users = np.array([u for u, _ in ROWS])
    items = np.array([i for _, i in ROWS])
    expected = item_knn_baseline(_table(), USERS, k=3)
    assert item_knn_baseline((users, items), USERS, k=3) == expected
    assert item_knn_baseline((users, items, np.ones(len(ROWS))), USERS, k=3) == expected
    assert item_knn_baseline(_table(count=[1] * len(ROWS)), USERS, k=3) == expected
    data = interactions(_table())
    assert item_knn_baseline(data, USERS, k=3) == expected
    assert popularity_baseline(data, USERS, k=3) == popularity_baseline((users, items), USERS, k=3)


def test_non_string_ids_are_compared_as_strings() -> None:
    out = popularity_baseline((np.array([1, 1, 2]), np.array([10, 9, 10])), ["1", "3"], k=2)
    # item 10 has 2 users, 9 has 1; user 1 saw both
    assert out == {"1": [], "3": ["10", "9"]}


def test_nulls_are_rejected() -> None:
    with pytest.raises(ValueError, match="nulls"):
        popularity_baseline(pa.table({"user_id": ["u1", None], "item_id": ["a", "b"]}), ["u1"], k=1)


def test_empty_train() -> None:
    empty = pa.table({"user_id": pa.array([], pa.string()), "item_id": pa.array([], pa.string())})
    assert popularity_baseline(empty, ["u1"], k=3) == {"u1": []}
    assert item_knn_baseline(empty, ["u1"], k=3) == {"u1": []}
    assert item_probabilities(empty) == {}


def test_invalid_parameters() -> None:
    with pytest.raises(ValueError, match="k must be"):
        popularity_baseline(_table(), ["u1"], k=0)
    with pytest.raises(ValueError, match="k must be"):
        item_knn_baseline(_table(), ["u1"], k=0)
    with pytest.raises(ValueError, match="neighbors"):
        item_knn_baseline(_table(), ["u1"], k=1, neighbors=0)
    with pytest.raises(ValueError, match="shrink"):
        item_knn_baseline(_table(), ["u1"], k=1, shrink=-1)


def _random_rows(seed: int, n: int, n_users: int, n_items: int) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, n)
    items = rng.zipf(1.5, n) % n_items  # a popular head, so ties and long neighbour lists happen
    return [(f"u{u:03d}", f"i{i:03d}") for u, i in zip(users.tolist(), items.tolist(), strict=True)]


def _reference_knn(rows, users, k, exclude_seen, neighbors, shrink) -> dict[str, list[str]]:
    """Brute force with Python sets: the definition, pair by pair."""
    history: dict[str, set[str]] = defaultdict(set)
    item_users: dict[str, set[str]] = defaultdict(set)
    for u, i in rows:
        history[u].add(i)
        item_users[i].add(u)
    items = sorted(item_users)
    kept = {}
    for i in items:
        sims = {}
        for j in items:
            common = len(item_users[i] & item_users[j])
            if i != j and common:
                sims[j] = common / (math.sqrt(len(item_users[i]) * len(item_users[j])) + shrink)
        kept[i] = dict(sorted(sims.items(), key=lambda kv: (-round(kv[1], 12), kv[0]))[:neighbors])
    popular = sorted(items, key=lambda i: (-len(item_users[i]), i))
    out = {}
    for u in users:
        scores: dict[str, float] = defaultdict(float)
        for j in sorted(history.get(u, ())):
            for i, s in kept[j].items():
                scores[i] += s
        seen = history.get(u, set()) if exclude_seen else set()
        ranked = sorted((i for i in scores if i not in seen), key=lambda i: (-round(scores[i], 12), i))[:k]
        if len(ranked) < k:
            ranked += [i for i in popular if i not in seen and i not in ranked][: k - len(ranked)]
        out[u] = ranked
    return out


@pytest.mark.parametrize(
    ("seed", "exclude_seen", "neighbors", "shrink"),
    [(0, True, 100, 0.0), (1, True, 3, 0.0), (2, False, 5, 2.0), (3, True, 1, 0.5)],
)
def test_item_knn_matches_the_brute_force_definition(
    monkeypatch: pytest.MonkeyPatch, seed: int, exclude_seen: bool, neighbors: int, shrink: float
) -> None:
    # small chunks, so the chunked co-counts and scoring paths are exercised
    monkeypatch.setattr(baselines, "_PAIR_CHUNK", 40)
    monkeypatch.setattr(baselines, "_SCORE_CHUNK", 25)
    rows = _random_rows(seed, n=400, n_users=60, n_items=40)
    users = sorted({u for u, _ in rows})[:40] + ["cold"]
    expected = _reference_knn(rows, users, 10, exclude_seen, neighbors, shrink)
    assert item_knn_baseline(_table(rows), users, 10, exclude_seen, neighbors, shrink) == expected


def test_deterministic_whatever_the_row_order() -> None:
    rows = _random_rows(7, n=2000, n_users=200, n_items=150)
    users = sorted({u for u, _ in rows}) + ["cold"]
    first = item_knn_baseline(_table(rows), users, 20)
    shuffled = [rows[i] for i in np.random.default_rng(1).permutation(len(rows))]
    assert item_knn_baseline(_table(shuffled), users, 20) == first
    assert item_knn_baseline(_table(rows), users, 20) == first
    assert popularity_baseline(_table(shuffled), users, 20) == popularity_baseline(_table(rows), users, 20)


def test_100k_interactions_in_seconds() -> None:
    rng = np.random.default_rng(0)
    n = 100_000
    users = np.char.add("u", rng.integers(0, 10_000, n).astype(str))
    items = np.char.add("i", (rng.zipf(1.1, n) % 30_000).astype(str))
    wanted = [f"u{u}" for u in range(10_000)]
    start = time.perf_counter()
    data = interactions((users, items))
    knn = item_knn_baseline(data, wanted, 20)
    popular = popularity_baseline(data, wanted, 20)
    elapsed = time.perf_counter() - start
    assert all(len(items) == 20 for items in knn.values())
    assert all(len(items) == 20 for items in popular.values())
    assert elapsed < 15, f"{elapsed:.1f}s"  # ~1.5 s on a 2-core dev box; the bound only catches a quadratic slip
