"""Ranking metrics against hand-computed values (the arithmetic is in the comments)."""

from __future__ import annotations

import math
import random

import pytest

from recsys.evaluation import metrics as m
from recsys.evaluation.metrics import (
    average_precision_at_k,
    catalog_coverage,
    evaluate_lists,
    hit_rate_at_k,
    ndcg_at_k,
    novelty,
    precision_at_k,
    recall_at_k,
    reciprocal_rank,
)

LOG2_3 = math.log2(3)
LOG2_5 = math.log2(5)

REC = ["a", "b", "c", "d"]
REL = {"b", "d", "x"}  # hits at ranks 2 and 4; x is never recommended


def test_worked_example_at_4() -> None:
    assert precision_at_k(REC, REL, 4) == pytest.approx(2 / 4)  # hits b, d out of 4 slots
    assert recall_at_k(REC, REL, 4) == pytest.approx(2 / 3)  # 2 of the 3 relevant items
    # DCG = 1/log2(2+1) + 1/log2(4+1) = 0.6309298 + 0.4306766 = 1.0616064
    # IDCG over min(3, 4) = 3 hits: 1/log2(2) + 1/log2(3) + 1/log2(4) = 1 + 0.6309298 + 0.5 = 2.1309298
    assert ndcg_at_k(REC, REL, 4) == pytest.approx((1 / LOG2_3 + 1 / LOG2_5) / (1 + 1 / LOG2_3 + 1 / 2))
    assert ndcg_at_k(REC, REL, 4) == pytest.approx(1.0616064 / 2.1309298, abs=1e-7)  # 0.4981893
    # precision@2 = 1/2 at the hit b, precision@4 = 2/4 at the hit d; divided by min(3, 4) = 3
    assert average_precision_at_k(REC, REL, 4) == pytest.approx((1 / 2 + 2 / 4) / 3)
    assert hit_rate_at_k(REC, REL, 4) == 1.0
    assert reciprocal_rank(REC, REL) == pytest.approx(1 / 2)  # first hit b at rank 2


def test_worked_example_at_2() -> None:
    # top 2 = [a, b]: one hit (b at rank 2)
    assert precision_at_k(REC, REL, 2) == pytest.approx(1 / 2)
    assert recall_at_k(REC, REL, 2) == pytest.approx(1 / 3)
    # DCG = 1/log2(3); IDCG over min(3, 2) = 2 hits: 1 + 1/log2(3)
    assert ndcg_at_k(REC, REL, 2) == pytest.approx((1 / LOG2_3) / (1 + 1 / LOG2_3))
    # precision@2 = 1/2 at the hit, divided by min(3, 2) = 2
    assert average_precision_at_k(REC, REL, 2) == pytest.approx((1 / 2) / 2)
    assert hit_rate_at_k(REC, REL, 2) == 1.0


def test_no_hit_in_the_top_k() -> None:
    # top 1 = [a]: no hit
    assert precision_at_k(REC, REL, 1) == 0.0
    assert recall_at_k(REC, REL, 1) == 0.0
    assert ndcg_at_k(REC, REL, 1) == 0.0
    assert average_precision_at_k(REC, REL, 1) == 0.0
    assert hit_rate_at_k(REC, REL, 1) == 0.0
    assert reciprocal_rank(["a", "c"], REL) == 0.0  # no hit anywhere


def test_k_larger_than_the_list_counts_missing_slots_as_misses() -> None:
    # 4 recommended, K = 10: the same 2 hits
    assert precision_at_k(REC, REL, 10) == pytest.approx(2 / 10)  # divided by K, not by the list length
    assert recall_at_k(REC, REL, 10) == pytest.approx(2 / 3)
    # IDCG over min(3, 10) = 3 hits: the same as at K = 4
    assert ndcg_at_k(REC, REL, 10) == pytest.approx((1 / LOG2_3 + 1 / LOG2_5) / (1 + 1 / LOG2_3 + 1 / 2))
    assert average_precision_at_k(REC, REL, 10) == pytest.approx((1 / 2 + 2 / 4) / 3)  # min(3, 10) = 3


def test_fewer_relevant_than_k_normalises_by_the_relevant_count() -> None:
    # relevant {a}, hit at rank 1: a perfect list whatever K
    assert ndcg_at_k(["a", "b", "c"], {"a"}, 3) == pytest.approx(1.0)  # DCG 1/log2(2) = 1, IDCG over min(1, 3) = 1
    assert average_precision_at_k(["a", "b", "c"], {"a"}, 3) == pytest.approx(1.0)  # (1/1) / min(1, 3)
    # relevant {c}, hit at rank 3: DCG = 1/log2(4) = 1/2, IDCG = 1; AP = precision@3 = 1/3, / 1
    assert ndcg_at_k(["a", "b", "c"], {"c"}, 3) == pytest.approx(1 / 2)
    assert average_precision_at_k(["a", "b", "c"], {"c"}, 3) == pytest.approx(1 / 3)


def test_empty_relevant_gives_zero() -> None:
    for fn in (precision_at_k, recall_at_k, ndcg_at_k, average_precision_at_k, hit_rate_at_k):
        assert fn(REC, set(), 4) == 0.0
    assert reciprocal_rank(REC, set()) == 0.0


def test_empty_recommendation_gives_zero() -> None:
    for fn in (precision_at_k, recall_at_k, ndcg_at_k, average_precision_at_k, hit_rate_at_k):
        assert fn([], REL, 4) == 0.0
    assert reciprocal_rank([], REL) == 0.0


def test_repeated_items_count_once_at_their_first_position() -> None:
    # [b, b, d] -> [b, d]: 2 hits in the top 2
    assert precision_at_k(["b", "b", "d"], {"b", "d"}, 2) == pytest.approx(2 / 2)
    assert reciprocal_rank(["a", "a", "b"], {"b"}) == pytest.approx(1 / 2)  # [a, b]: b at rank 2


@pytest.mark.parametrize("k", [0, -1])
def test_k_must_be_positive(k: int) -> None:
    with pytest.raises(ValueError, match="k must be >= 1"):
        precision_at_k(REC, REL, k)
    with pytest.raises(ValueError, match="k must be >= 1"):
        recall_at_k(REC, set(), k)
    with pytest.raises(ValueError, match="k must be >= 1"):
        evaluate_lists({"u": REC}, {"u": REL}, ks=(k,))


def test_catalog_coverage() -> None:
    lists = {"u1": ["a", "b", "c"], "u2": ["b", "d"]}
    assert catalog_coverage(lists, 10, 2) == pytest.approx(3 / 10)  # top 2: {a, b} | {b, d} = {a, b, d}
    assert catalog_coverage(lists, 10, 3) == pytest.approx(4 / 10)  # {a, b, c} | {b, d}
    assert catalog_coverage(lists.values(), 10, 3) == pytest.approx(4 / 10)  # an iterable of lists works too
    assert catalog_coverage({}, 10, 3) == 0.0
    with pytest.raises(ValueError, match="catalog_size"):
        catalog_coverage(lists, 0, 3)


def test_novelty() -> None:
    popularity = {"a": 0.5, "b": 0.25, "c": 0.0}
    lists = {"u1": ["a", "b", "x"], "u2": ["c", "d"]}
    # top 2: a, b, c, d. p = 0 (c) or unknown (d) -> 1 / (2 lists + 1) = 1/3
    # -log2(1/2) = 1, -log2(1/4) = 2, -log2(1/3) = log2(3) twice
    assert novelty(lists, popularity, 2) == pytest.approx((1 + 2 + LOG2_3 + LOG2_3) / 4)
    # n_users = 7 -> p = 1/8 -> 3 bits each
    assert novelty(lists, popularity, 2, n_users=7) == pytest.approx((1 + 2 + 3 + 3) / 4)
    # top 1: a, c -> (1 + log2(3)) / 2
    assert novelty(lists, popularity, 1) == pytest.approx((1 + LOG2_3) / 2)
    assert novelty({}, popularity, 2) == 0.0  # no slot at all


def test_evaluate_lists_averages_over_users_with_relevant_items() -> None:
    lists = {"u1": REC, "u2": ["x", "y"], "u3": ["a"], "u4": ["z"]}
    relevant = {"u1": REL, "u2": {"y"}, "u3": set(), "u5": {"q"}}
    # Evaluated: u1, u2 and u5 (recommended nothing); u3 (nothing relevant) and u4 (not in relevant) are not.
    out = evaluate_lists(lists, relevant, ks=(2, 4), catalog_size=10, item_popularity={"a": 0.5}, n_users=3)
    assert out["users"] == 3
    # u1 @2: P 1/2, R 1/3, NDCG (1/log2 3) / (1 + 1/log2 3), AP 1/4, hit
    # u2 @2: [x, y], y at rank 2: P 1/2, R 1/1, NDCG (1/log2 3) / 1, AP (1/2) / min(1, 2), hit
    # u5: all zeros
    assert out["precision@2"] == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)
    assert out["recall@2"] == pytest.approx((1 / 3 + 1 + 0) / 3)
    assert out["ndcg@2"] == pytest.approx(((1 / LOG2_3) / (1 + 1 / LOG2_3) + 1 / LOG2_3 + 0) / 3)
    assert out["map@2"] == pytest.approx((1 / 4 + 1 / 2 + 0) / 3)
    assert out["hit_rate@2"] == pytest.approx(2 / 3)
    # u1 @4: P 2/4, R 2/3, NDCG as in the worked example, AP 1/3; u2 @4: P 1/4, R 1, NDCG 1/log2 3, AP 1/2
    assert out["precision@4"] == pytest.approx((2 / 4 + 1 / 4 + 0) / 3)
    assert out["recall@4"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert out["ndcg@4"] == pytest.approx(((1 / LOG2_3 + 1 / LOG2_5) / (1 + 1 / LOG2_3 + 1 / 2) + 1 / LOG2_3 + 0) / 3)
    assert out["map@4"] == pytest.approx((1 / 3 + 1 / 2 + 0) / 3)
    assert out["hit_rate@4"] == pytest.approx(2 / 3)
    assert out["mrr"] == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)  # u1 b at 2, u2 y at 2, u5 none
    # coverage over the evaluated users' lists: @2 {a, b} | {x, y} = 4 of 10; @4 {a, b, c, d, x, y} = 6 of 10
    assert out["coverage@2"] == pytest.approx(4 / 10)
    assert out["coverage@4"] == pytest.approx(6 / 10)
    # novelty @2: a -> -log2(1/2) = 1; b, x, y unknown -> p = 1 / (3 + 1) -> 2 bits each: (1 + 2 + 2 + 2) / 4
    assert out["novelty@2"] == pytest.approx(7 / 4)
    assert set(out) == {
        *(f"{family}@{k}" for family in m.FAMILIES for k in (2, 4)),
        "mrr",
        "coverage@2",
        "coverage@4",
        "novelty@2",
        "novelty@4",
        "users",
    }


def test_evaluate_lists_without_catalog_or_popularity_has_no_beyond_accuracy_metrics() -> None:
    out = evaluate_lists({"u1": REC}, {"u1": REL}, ks=(10,))
    assert not any(name.startswith(("coverage", "novelty")) for name in out)
    assert out["recall@10"] == pytest.approx(2 / 3)
    assert out["users"] == 1


def test_evaluate_lists_with_no_evaluated_user_returns_only_the_count() -> None:
    assert evaluate_lists({"u1": REC}, {"u1": set()}, catalog_size=5) == {"users": 0}
    assert evaluate_lists({}, {}) == {"users": 0}


def test_evaluate_lists_matches_the_per_user_functions() -> None:
    rng = random.Random(3)
    items = [f"i{n:02d}" for n in range(40)]
    lists, relevant = {}, {}
    for u in range(60):
        lists[f"u{u}"] = rng.sample(items, rng.randint(0, 25)) + rng.sample(items, 2)  # some repeats
        relevant[f"u{u}"] = set(rng.sample(items, rng.randint(0, 6)))
    ks = (1, 5, 10, 20)
    out = evaluate_lists(lists, relevant, ks=ks)
    users = [u for u, r in relevant.items() if r]
    assert out["users"] == len(users)
    per_user = {
        "precision": precision_at_k,
        "recall": recall_at_k,
        "ndcg": ndcg_at_k,
        "map": average_precision_at_k,
        "hit_rate": hit_rate_at_k,
    }
    for family, fn in per_user.items():
        for k in ks:
            expected = sum(fn(lists[u], relevant[u], k) for u in users) / len(users)
            assert out[f"{family}@{k}"] == pytest.approx(expected), f"{family}@{k}"
    assert out["mrr"] == pytest.approx(sum(reciprocal_rank(lists[u], relevant[u]) for u in users) / len(users))


# compare: a paired bootstrap of the per-user difference of one metric.


def test_compare_hand_computed_difference_and_counts() -> None:
    relevant = {"u1": {"a"}, "u2": {"b"}, "u3": {"z"}, "nobody": set()}
    first = {"u1": ["a", "x"], "u2": ["b"], "u3": ["q"]}
    second = {"u1": ["x", "a"], "u2": ["b"]}  # u3 missing: an empty list
    result = m.compare(first, second, relevant, "ndcg@10")
    # u1: 1 - 1/log2(3) ; u2: 1 - 1 = 0 ; u3: 0 - 0 = 0 ; "nobody" has nothing relevant and is left out
    expected = (1 - 1 / math.log2(3)) / 3
    assert result["difference"] == pytest.approx(expected)
    assert (result["better"], result["worse"], result["level"], result["users"]) == (1, 0, 2, 3)
    # resamples of {d, 0, 0}: the mean lies between 0 and d, both of which are reachable
    assert result["low"] == pytest.approx(0.0) and result["high"] == pytest.approx(1 - 1 / math.log2(3))
    assert result["verdict"] == "level"
    assert m.compare(first, second, relevant, "ndcg@10") == result  # same lists, same interval


def test_compare_a_constant_difference_has_no_width_and_a_side() -> None:
    relevant = {f"u{n}": {"a"} for n in range(30)}
    hits = {user: ["a"] for user in relevant}
    misses = {user: ["x"] for user in relevant}
    ahead = m.compare(hits, misses, relevant, "hit_rate@5")
    assert (ahead["difference"], ahead["low"], ahead["high"], ahead["verdict"]) == (1.0, 1.0, 1.0, "ahead")
    behind = m.compare(misses, hits, relevant, "recall@5")
    assert (behind["difference"], behind["low"], behind["high"], behind["verdict"]) == (-1.0, -1.0, -1.0, "behind")


def test_compare_swapping_the_recommenders_mirrors_the_interval() -> None:
    rng = random.Random(3)
    items = [f"i{n}" for n in range(20)]
    relevant = {f"u{n}": set(rng.sample(items, 3)) for n in range(50)}
    first = {user: rng.sample(items, 10) for user in relevant}
    second = {user: rng.sample(items, 10) for user in relevant}
    forward = m.compare(first, second, relevant, "map@10")
    backward = m.compare(second, first, relevant, "map@10")
    assert backward["difference"] == pytest.approx(-forward["difference"])
    assert backward["low"] == pytest.approx(-forward["high"]) and backward["high"] == pytest.approx(-forward["low"])
    assert (backward["better"], backward["worse"]) == (forward["worse"], forward["better"])
    assert forward["low"] <= forward["difference"] <= forward["high"]


def test_compare_rejects_unknown_metrics_and_reports_no_users() -> None:
    with pytest.raises(ValueError, match="metric 'mrr'"):
        m.compare({}, {}, {"u": {"a"}}, "mrr")
    with pytest.raises(ValueError, match="confidence"):
        m.compare({}, {}, {"u": {"a"}}, "ndcg@10", confidence=1.0)
    assert m.compare({}, {}, {"u": set()}, "ndcg@10") == {"metric": "ndcg@10", "users": 0}
