"""Algo modes, diversity (MMR, per-tag caps) and exploration in the ranking, on small hand-made artifacts."""

from __future__ import annotations

import datetime as dt
import hashlib
import math

import numpy as np

from recsys.ranking.diversity import diversify, pair_matrix, tag_jaccard
from recsys.ranking.exploration import explore, slot_probabilities
from recsys.serve.ranking import exploration_seed, rank
from recsys.serve.tenant_config import TenantConfig
from tests.ranking.arrays import artifacts
from tests.ranking.test_ranking import ids, request, scores

NOW = dt.datetime(2026, 5, 23, 12, 0, tzinfo=dt.UTC)


def run(signals, cfg: dict, req=None, surface: str = "home", request_id: str = "req-1"):
    return rank(req or request(), signals, TenantConfig.parse(cfg).for_surface(surface), [], NOW, request_id)


# ------------------------------------------------------------------------------------------------ algo modes


def _signals():
    return artifacts(
        popularity={"p1": 10, "p2": 8, "c1": 1, "h1": 1},
        cooc={"a": {"c1": 0.9, "c2": 0.5}},
        implicit={"u1": {"h1": (3.0, 100), "h2": (1.0, 200)}},
    )


def test_algo_modes_rank_by_one_signal_alone():
    signals = _signals()
    req = request(anchors={"item_ids": ["a"]})
    blend = run(signals, {}, req)
    popularity = run(signals, {"algo": "popularity"}, req)
    cooc = run(signals, {"algo": "COOC", "recent_items": 0}, req)  # case-insensitive, like the seed
    assert ids(popularity)[:2] == ["p1", "p2"] and scores(popularity)["p1"] == 1.0  # pop(c) with weight 1
    assert ids(cooc)[:2] == ["c1", "c2"] and scores(cooc) == {"c1": 0.9, "c2": 0.5, "p1": 0.0, "p2": 0.0}
    assert ids(blend) != ids(popularity)
    # implicit ranks the user's own history: meaningful where seen items may come back
    implicit = run(signals, {"algo": "implicit", "exclude_seen": False}, req)
    assert ids(implicit)[:2] == ["h1", "h2"] and scores(implicit)["h1"] == 1.0


def test_a_single_signal_mode_with_nothing_to_say_falls_back_to_popularity():
    signals = _signals()
    cooc = run(signals, {"algo": "cooc", "recent_items": 0})  # no anchors at all: cooc is 0 everywhere
    assert ids(cooc)[:2] == ["p1", "p2"] and scores(cooc)["p1"] == 1.0
    implicit = run(signals, {"algo": "implicit"})  # exclude_seen: the history is excluded, implicit is 0
    assert ids(implicit)[:2] == ["p1", "p2"]


def test_algo_per_surface_and_blend_is_the_default():
    signals = _signals()
    cfg = {"algo": "blend", "surfaces": {"top": {"algo": "popularity"}}}
    req = request(anchors={"item_ids": ["a"]})
    assert ids(run(signals, cfg, req, surface="top"))[:2] == ["p1", "p2"]
    assert ids(run(signals, cfg, req)) == ids(run(signals, {}, req))


# ------------------------------------------------------------------------------------------------ diversity


TAGS = {
    "a": ("brand:x", "category:shoes"),
    "b": ("brand:x", "category:shoes"),
    "c": ("brand:x", "category:shoes"),
    "d": ("brand:y", "category:bags"),
    "e": ("brand:z", "category:hats"),
}
SCORES = {"a": 1.0, "b": 0.9, "c": 0.8, "d": 0.5, "e": 0.4}
POOL = list(SCORES)


def test_mmr_lambda_one_keeps_the_order_and_a_small_lambda_diversifies():
    tags = TAGS.__getitem__
    sim = lambda items: tag_jaccard(items, tags)  # noqa: E731
    assert diversify(POOL, SCORES, 0, 3, 1.0, {}, tags, sim) == ["a", "b", "c"]
    # lambda 0.5: after a, b scores 0.5*0.9 - 0.5*1 = -0.05, d 0.5*0.5 - 0 = 0.25, e 0.2 -> d; then e (0.2) beats
    # b (-0.05): the list is a, d, e
    assert diversify(POOL, SCORES, 0, 3, 0.5, {}, tags, sim) == ["a", "d", "e"]
    # lambda 0.9: b 0.81 - 0.1 = 0.71 beats d 0.45: relevance still wins
    assert diversify(POOL, SCORES, 0, 3, 0.9, {}, tags, sim) == ["a", "b", "c"]


def test_tag_jaccard_and_pair_matrix():
    tags = {"a": ("t1", "t2"), "d": ("t2", "t3")}
    matrix = tag_jaccard(["a", "d", "x"], lambda item: tags.get(item, ()))
    assert math.isclose(matrix[0, 1], 1 / 3) and matrix[0, 2] == 0 and matrix[2, 2] == 0 and matrix[0, 0] == 1
    pairs = pair_matrix(3, np.array([0, 1]), np.array([1, 2]), np.array([0.4, 0.7]))
    assert pairs[1, 0] == 0.4 and pairs[0, 1] == 0.4 and pairs[2, 1] == 0.7 and pairs[0, 2] == 0


def test_caps_per_tag_prefix_and_pins_count_towards_them():
    tags = TAGS.__getitem__
    # at most 2 per brand: a, b (brand:x), then c is skipped, d, e fill
    assert diversify(POOL, SCORES, 0, 4, 0.0, {"brand:": 2}, tags) == ["a", "b", "d", "e"]
    # a pinned first: it counts, so only one more brand:x item
    assert diversify(POOL, SCORES, 1, 4, 0.0, {"brand:": 2}, tags) == ["a", "b", "d", "e"]
    assert diversify(["c", *POOL[:2], *POOL[3:]], SCORES, 2, 5, 0.0, {"brand:": 1}, tags) == ["c", "a", "d", "e"]
    # caps that leave fewer than k return fewer (the seed's behaviour)
    assert diversify(POOL, SCORES, 0, 5, 0.0, {"category:": 1, "brand:": 1}, tags) == ["a", "d", "e"]


def test_mmr_and_caps_from_the_tenant_config():
    signals = artifacts(popularity={item: 10 * score for item, score in SCORES.items()}, implicit={}, tags=TAGS)
    req = request(k=3)
    assert ids(run(signals, {}, req)) == ["a", "b", "c"]
    assert ids(run(signals, {"diversity": {"brand_cap": 1}}, req)) == ["a", "d", "e"]
    assert ids(run(signals, {"diversity": {"caps": {"category:": 2}}}, req)) == ["a", "b", "d"]
    assert ids(run(signals, {"diversity": {"mmr_lambda": 0.5}}, req)) == ["a", "d", "e"]
    assert ids(run(signals, {"diversity": {"mmr_lambda": 1.0}}, req)) == ["a", "b", "c"]


def test_mmr_over_cooc_similarity():
    signals = artifacts(
        popularity={item: 10 * score for item, score in SCORES.items()},
        implicit={},
        cooc={"a": {"b": 0.9, "c": 0.9}, "b": {"c": 0.9}},
    )
    cfg = {"diversity": {"mmr_lambda": 0.5, "similarity": "cooc"}, "weights": {"cooc": 0}}
    assert ids(run(signals, cfg, request(k=3))) == ["a", "d", "e"]


# ------------------------------------------------------------------------------------------------ exploration


def test_slot_probabilities_sum_to_one():
    for m in (1, 2, 7, 50):
        for epsilon in (0.0, 0.1, 0.5, 1.0):
            probabilities = slot_probabilities(m, epsilon)
            assert len(probabilities) == m and math.isclose(sum(probabilities), 1.0)
    assert slot_probabilities(4, 0.2) == [0.8 + 0.05, 0.05, 0.05, 0.05]


def test_explore_is_repeatable_keeps_pins_and_records_each_slots_propensity():
    pool = [f"i{n}" for n in range(10)]
    shown, propensities = explore(pool, 2, 5, 0.5, seed=42)
    assert (shown, propensities) == explore(pool, 2, 5, 0.5, seed=42)
    assert shown[:2] == ["i0", "i1"] and propensities[:2] == [1.0, 1.0] and len(set(shown)) == 5
    remaining = pool[2:]
    for item, propensity in zip(shown[2:], propensities[2:], strict=True):  # the propensity of the shown item
        expected = slot_probabilities(len(remaining), 0.5)[remaining.index(item)]
        assert propensity == expected
        remaining.remove(item)
    assert explore(pool, 0, 3, 0.0, seed=1) == (["i0", "i1", "i2"], [1.0, 1.0, 1.0])  # epsilon 0: greedy
    draws = {tuple(explore(pool, 0, 3, 1.0, seed=s)[0]) for s in range(20)}
    assert len(draws) > 10  # epsilon 1: uniform draws differ from seed to seed


def test_exploration_in_the_ranking_is_seeded_by_the_request_id():
    signals = artifacts(popularity={f"i{n:02d}": 100 - n for n in range(30)}, implicit={})
    cfg = {"exploration": {"epsilon": 0.3, "pool": 10}}
    first = run(signals, cfg, request(k=5), request_id="req-a")
    again = run(signals, cfg, request(k=5), request_id="req-a")
    assert ids(first) == ids(again) and first.propensities == again.propensities
    assert len(first.propensities) == 5 and all(0 < p <= 1 for p in first.propensities)
    assert set(ids(first)) <= {f"i{n:02d}" for n in range(10)}  # from the top-10 pool only
    assert {tuple(ids(run(signals, cfg, request(k=5), request_id=f"r{n}"))) for n in range(20)} != {tuple(ids(first))}
    assert run(signals, {}, request(k=5)).propensities is None  # off by default: nothing recorded
    assert exploration_seed("req-a") == int.from_bytes(hashlib.sha256(b"req-a").digest()[:8], "big")


def test_the_offline_diversity_metrics():
    from recsys.evaluation.metrics import aggregate_diversity, intra_list_diversity

    assert aggregate_diversity([["a", "b"], ["c", "d"]], 2) == 1.0  # every item fills one slot
    assert aggregate_diversity([["a"], ["a"]], 1) == 0.0
    assert 0 < aggregate_diversity([["a", "b"], ["a", "c"]], 2) < 1
    tags = {"a": ("brand:x", "category:shoes"), "b": ("brand:x", "category:bags"), "c": ("brand:y",)}.__getitem__
    # a-b share 1 of 3 tags: 2/3 apart; a-c, b-c nothing shared: 1
    assert math.isclose(intra_list_diversity([["a", "b"]], tags, 2), 2 / 3)
    assert math.isclose(intra_list_diversity([["a", "b", "c"], ["c"]], tags, 3), (2 / 3 + 1 + 1) / 3)
