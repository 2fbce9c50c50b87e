"""Ranking: each signal, weights, filters, rules, warnings, reasons/explain and similar(), with hand-computed scores.

Every test ranks over the production array path: small artifact tables read by the reader (`tests.ranking.arrays`),
through the API's mapping (`recsys.serve.ranking`: wire request -> `RecommendQuery`, `Ranking` -> wire items).

The hand computations use these weights (pinned by `config`, independent of DEFAULT_WEIGHTS, which tuning may move):
pop 0.2, cooc 1.0, implicit 0.5, session 1.0, content 0.5, knn 1.0.
"""

from __future__ import annotations

import datetime as dt
import math
import sys

import pytest

from recsys.serve.models import (
    NormalizedRecommend,
    NormalizedSimilar,
    RecommendRequest,
    SimilarRequest,
    normalize_recommend,
    normalize_similar,
)
from recsys.serve.ranking import Ranked, rank, similar
from recsys.serve.rules import Rule, parse_rules
from recsys.serve.tenant_config import EffectiveConfig, TenantConfig
from tests.ranking.arrays import artifacts

NOW = dt.datetime(2026, 5, 23, 12, 0, tzinfo=dt.UTC)
ONLY = {"pop": 0, "cooc": 0, "implicit": 0, "session": 0, "content": 0, "knn": 0}


def request(**fields) -> NormalizedRecommend:
    body = {"surface": "home", "segment": "default", "k": 10, "user": {"user_id": "u1"}, "options": {}}
    body.update(fields)
    normalized, _ = normalize_recommend(RecommendRequest.model_validate(body))
    return normalized


def similar_request(item_id: str, **fields) -> NormalizedSimilar:
    body = {"surface": "pdp", "segment": "default", "k": 10, "item_id": item_id, "options": {}}
    body.update(fields)
    normalized, _ = normalize_similar(SimilarRequest.model_validate(body))
    return normalized


TEST_WEIGHTS = {"pop": 0.2, "cooc": 1.0, "implicit": 0.5, "session": 1.0, "content": 0.5, "knn": 1.0}


def config(surface: str = "home", **data) -> EffectiveConfig:
    """A tenant config with the test weights as its base (data's own weights still override them)."""
    data = {**data, "weights": {**TEST_WEIGHTS, **data.get("weights", {})}}
    return TenantConfig.parse(data).for_surface(surface)


def run(signals, req=None, cfg=None, rules: list[Rule] | None = None) -> Ranked:
    return rank(req or request(), signals, cfg or config(), rules or [], NOW)


def ids(ranked: Ranked) -> list[str]:
    return [item.item_id for item in ranked.items]


def scores(ranked: Ranked) -> dict[str, float]:
    return {item.item_id: item.score for item in ranked.items}


def warnings(ranked: Ranked) -> list[tuple[str, str]]:
    return [(w.code, w.detail) for w in ranked.warnings]


# ------------------------------------------------------------------------------------------------ each signal


def test_pop_only_cold_user_gets_popularity():
    signals = artifacts(popularity={"a": 10, "b": 5, "c": 5, "d": 2}, implicit={})
    ranked = run(signals)
    # pop = score / max(10) ; score = 0.2 * pop
    # a 0.2*1.0 = 0.2 ; b, c 0.2*0.5 = 0.1 (tie -> item_id) ; d 0.2*0.2 = 0.04
    assert ids(ranked) == ["a", "b", "c", "d"]
    assert scores(ranked) == {"a": 0.2, "b": 0.1, "c": 0.1, "d": 0.04}
    assert [item.rank for item in ranked.items] == [1, 2, 3, 4]
    assert ranked.warnings == []


def test_cooc_from_a_request_anchor():
    signals = artifacts(popularity={"a": 10, "x": 4}, cooc={"a": {"b": 0.5, "c": 0.25}}, implicit={}, session_seq={})
    ranked = run(signals, request(anchors={"item_ids": ["a"]}), config(weights={"content": 0, "knn": 0}))
    # b: 1.0*0.5 = 0.5 ; c: 1.0*0.25 = 0.25 ; x: 0.2 * 4/10 = 0.08 ; the anchor a is excluded
    assert scores(ranked) == {"b": 0.5, "c": 0.25, "x": 0.08}
    assert ids(ranked) == ["b", "c", "x"]
    assert ranked.warnings == []


def test_cooc_from_the_users_most_recent_items():
    signals = artifacts(
        popularity={"z": 1},
        implicit={"u1": {"h1": (2.0, 100), "h2": (1.0, 200)}},  # (score, last_us): h2 is the most recent
        cooc={"h1": {"p": 0.9}, "h2": {"q": 0.4, "h1": 0.3}},
    )
    ranked = run(signals, cfg=config(recent_items=1, weights={"session": 0, "content": 0}))
    # recent = [h2] -> q: 1.0*0.4 = 0.4 ; h1 is seen (excluded) ; p is h1's neighbour but h1 is not recent
    # z: 0.2 * 1/1 = 0.2
    assert scores(ranked) == {"q": 0.4, "z": 0.2}
    assert ids(ranked) == ["q", "z"]


def test_session_successors_weighted_by_recency():
    signals = artifacts(
        popularity={},
        implicit={"u1": {"h1": (1.0, 300), "h2": (1.0, 200), "h3": (1.0, 100)}},  # h1 most recent
        session_seq={"h1": {"s1": 0.6, "s2": 0.4}, "h2": {"s1": 0.2, "s3": 1.0}, "h3": {"s4": 1.0}},
    )
    ranked = run(signals, cfg=config(weights={**ONLY, "session": 1}, recent_items=3, anchor_decay=0.5))
    # recency weights h1 1, h2 0.5, h3 0.25 (sum 1.75), a decayed mean:
    # s1 = (0.6 + 0.5*0.2) / 1.75 = 0.4 ; s3 = 0.5 / 1.75 ; s2 = 0.4 / 1.75 ; s4 = 0.25 / 1.75
    assert ids(ranked) == ["s1", "s3", "s2", "s4"]
    assert scores(ranked) == {"s1": 0.4, "s3": 0.285714, "s2": 0.228571, "s4": 0.142857}


def test_an_anonymous_visitors_anchors_drive_session_and_cooc_most_recent_first():
    signals = artifacts(
        popularity={"p": 1},
        implicit={},
        cooc={"a": {"c1": 1.0}, "b": {"c2": 1.0}},
        session_seq={"a": {"n1": 1.0}, "b": {"n2": 1.0}},
    )
    req = request(user={"session_id": "visitor"}, anchors={"item_ids": ["a", "b"]})  # a is the latest
    ranked = run(signals, req, config(weights={**ONLY, "cooc": 1, "session": 1}, anchor_decay=0.25))
    # weights a 1, b 0.25 (sum 1.25): c1 = n1 = 1 / 1.25 = 0.8 ; c2 = n2 = 0.25 / 1.25 = 0.2 ; ties by id
    assert scores(ranked) == {"c1": 0.8, "n1": 0.8, "c2": 0.2, "n2": 0.2, "p": 0.0}
    assert ids(ranked)[:4] == ["c1", "n1", "c2", "n2"]
    # anchor_decay 1: every anchor counts the same
    flat = run(signals, req, config(weights={**ONLY, "cooc": 1, "session": 1}, anchor_decay=1.0))
    assert scores(flat) == {"c1": 0.5, "n1": 0.5, "c2": 0.5, "n2": 0.5, "p": 0.0}


def test_content_from_an_anchor():
    signals = artifacts(
        popularity={"t2": 10, "a": 5}, content_sim={"a": {"t1": 0.8, "t2": 0.5}}, implicit={}, session_seq={}
    )
    ranked = run(signals, request(anchors={"item_ids": ["a"]}), config(weights={"cooc": 0, "knn": 0}))
    # t2: 0.5*0.5 + 0.2*10/10 = 0.45 ; t1: 0.5*0.8 = 0.4 ; a is the anchor
    assert scores(ranked) == {"t2": 0.45, "t1": 0.4}
    assert ids(ranked) == ["t2", "t1"]
    assert ranked.warnings == []


KNN_ONLY = {**ONLY, "knn": 1}
KNN_HISTORY = {"u1": {"h1": (4.0, 1), "h2": (2.0, 2)}}
KNN = {"h1": {"x": 0.3, "y": 0.1, "h2": 0.5}, "h2": {"x": 0.2, "z": 0.4}, "a": {"x": 0.6, "w": 0.3}}


def test_knn_sums_the_neighbours_of_the_history_each_history_item_counting_once():
    signals = artifacts(popularity={}, implicit=KNN_HISTORY, item_knn=KNN)
    req = request(options={"include_reasons": True, "explain": "full"})
    ranked = run(signals, req, config(weights=KNN_ONLY, history_decay=1.0))
    # h1 (score 4) and h2 (score 2) count the same: x = 0.3 + 0.2 = 0.5 ; z = 0.4 ; y = 0.1 ; h2 0.5 (seen: excluded)
    # normalized by the max over the candidates, 0.5: x 1.0, z 0.8, y 0.2
    assert scores(ranked) == {"x": 1.0, "z": 0.8, "y": 0.2}
    assert ids(ranked) == ["x", "z", "y"]
    assert ranked.items[0].reasons == ["collaborative_similarity"]
    assert ranked.items[0].explain["raw"]["knn"] == 1.0 and ranked.items[1].explain["signals"]["knn"] == 0.8
    assert ranked.warnings == []


def test_knn_weighs_the_history_by_recency_in_the_users_own_timeline():
    signals = artifacts(popularity={}, implicit=KNN_HISTORY, item_knn=KNN)
    ranked = run(signals, cfg=config(weights=KNN_ONLY, history_decay=0.5))
    # h2 (last_us 2) is the latest: weight 1 ; h1: 0.5. x = 0.2 + 0.5*0.3 = 0.35 ; z = 0.4 ; y = 0.5*0.1 = 0.05
    # normalized by 0.4: z 1.0, x 0.875, y 0.125
    assert scores(ranked) == {"z": 1.0, "x": 0.875, "y": 0.125}


def test_knn_normalizes_over_seen_items_when_they_are_candidates():
    signals = artifacts(popularity={}, implicit=KNN_HISTORY, item_knn=KNN)
    ranked = run(signals, cfg=config(weights=KNN_ONLY, exclude_seen=False, history_decay=1.0))
    # as above, h2 0.5 (h1's neighbour) is now a candidate: h2 0.5/0.5 = 1.0, x 1.0, z 0.8, y 0.2 ; h1 0
    assert scores(ranked) == {"h2": 1.0, "x": 1.0, "z": 0.8, "y": 0.2, "h1": 0.0}


def test_knn_puts_the_request_anchors_first_in_the_visitors_timeline():
    signals = artifacts(popularity={}, implicit=KNN_HISTORY, item_knn=KNN)
    ranked = run(signals, request(anchors={"item_ids": ["a"]}), config(weights=KNN_ONLY, history_decay=0.5))
    # a (weight 1), then h2 (0.5), then h1 (0.25): x = 0.6 + 0.1 + 0.075 = 0.775 ; w = 0.3 ; z = 0.2 ; y = 0.025
    assert scores(ranked) == {"x": 1.0, "w": 0.387097, "z": 0.258065, "y": 0.032258}
    # a visitor without history: the anchor's similarities, normalized by the best
    cold = run(signals, request(user={"user_id": "nobody"}, anchors={"item_ids": ["a"]}), config(weights=KNN_ONLY))
    assert scores(cold) == {"x": 1.0, "w": 0.5}


def test_knn_uses_the_50_most_recent_history_items():
    history = {f"h{n:02}": (1.0, n) for n in range(3, 52)}  # 49 items: h03 (last_us 3) .. h51 (the latest)
    history["h01"] = (2.0, 1)
    history["h00"] = (1.0, 1)  # ties h01 on last_us: the higher score keeps h01 (the 50th), drops h00
    history["zero"] = (0.0, 99)  # a zero score never counts
    signals = artifacts(
        popularity={}, implicit={"u1": history}, item_knn={"h00": {"p": 1.0}, "h01": {"q": 1.0}, "h51": {"r": 0.5}}
    )
    ranked = run(signals, cfg=config(weights=KNN_ONLY, history_decay=1.0))
    [looked_up] = [sources for call, sources in signals.calls if call == "item_knn"]
    assert len(looked_up) == 50 and looked_up[0] == "h51" and looked_up[-1] == "h01"
    assert "h00" not in looked_up and "zero" not in looked_up
    assert scores(ranked) == {"q": 1.0, "r": 0.5}


def test_exclude_seen_drops_every_item_of_a_1000_item_history():
    history = {f"h{n:04}": (1.0, n) for n in range(1000)}
    neighbours = {f"h{n:04}": {f"h{(n + 1) % 1000:04}": 0.9, f"new{n}": 0.1} for n in range(1000)}
    popular = {f"h{n:04}": 1000 - n for n in range(1000)} | {"p": 1}
    signals = artifacts(popularity=popular, implicit={"u1": history}, item_knn=neighbours, cooc=neighbours)
    ranked = run(signals, request(k=200), config(weights={**ONLY, "pop": 1, "cooc": 1, "knn": 1}))
    assert ranked.items and not any(item.item_id in history for item in ranked.items)


def test_knn_is_not_looked_up_with_a_zero_weight_and_warns_only_when_used():
    signals = artifacts(popularity={"a": 1}, implicit=KNN_HISTORY, item_knn=KNN)
    run(signals, cfg=config(weights={"knn": 0}))
    assert not [call for call in signals.calls if call[0] == "item_knn"]
    missing = artifacts(popularity={"a": 1}, implicit=KNN_HISTORY, cooc={}, session_seq={}, content_sim={})
    assert warnings(run(missing)) == [("SIGNAL_UNAVAILABLE", "item_knn unavailable: not in manifest")]
    assert run(missing, cfg=config(weights={"knn": 0})).warnings == []
    cold = artifacts(popularity={"a": 1}, implicit={}, cooc={}, session_seq={}, content_sim={})
    assert run(cold).warnings == []  # no history, no anchors: item_knn would not be used
    anchored = run(cold, request(anchors={"item_ids": ["a"]}))
    assert warnings(anchored) == [("SIGNAL_UNAVAILABLE", "item_knn unavailable: not in manifest")]


def test_implicit_with_exclude_seen_off_and_on():
    signals = artifacts(popularity={"h2": 10, "p": 5}, implicit={"u1": {"h1": (4.0, 1), "h2": (2.0, 2)}})
    ranked = run(signals, cfg=config(exclude_seen=False, recent_items=0))
    # implicit = score / max(4): h1 1.0, h2 0.5
    # h1: 0.5*1.0 = 0.5 ; h2: 0.5*0.5 + 0.2*1.0 = 0.45 ; p: 0.2*0.5 = 0.1
    assert scores(ranked) == {"h1": 0.5, "h2": 0.45, "p": 0.1}
    assert ids(ranked) == ["h1", "h2", "p"]
    # exclude_seen on (the default): the history is dropped.
    assert ids(run(signals, cfg=config(recent_items=0))) == ["p"]


def test_surface_override_turns_exclude_seen_off():
    signals = artifacts(popularity={"h1": 1, "p": 1}, implicit={"u1": {"h1": (1.0, 1)}})
    cfg = config("buy-again", recent_items=0, surfaces={"buy-again": {"exclude_seen": False}})
    # h1: 0.5*1 + 0.2*1 = 0.7 ; p: 0.2
    assert scores(run(signals, request(surface="buy-again"), cfg)) == {"h1": 0.7, "p": 0.2}
    assert ids(run(signals, cfg=config("home", recent_items=0))) == ["p"]


def test_recent_items_stay_candidates_when_exclude_seen_is_off():
    signals = artifacts(popularity={}, implicit={"u1": {"h1": (1.0, 5)}}, cooc={"h1": {"n": 0.5}})
    ranked = run(signals, cfg=config(exclude_seen=False, weights={"session": 0, "content": 0}))
    # h1 is a recent anchor but a request anchor only is excluded: h1 = 0.5*1.0 = 0.5 ; n = 1.0*0.5 = 0.5 (tie -> id)
    assert scores(ranked) == {"h1": 0.5, "n": 0.5}
    assert ids(ranked) == ["h1", "n"]


# ---------------------------------------------------------------------------------------------------- weights


def test_weight_precedence_request_over_surface_over_tenant():
    signals = artifacts(popularity={"a": 10, "b": 4}, cooc={"x": {"b": 0.5}}, implicit={})
    cfg = config(weights={"pop": 0.5, "content": 0}, surfaces={"home": {"weights": {"cooc": 2}}})
    anchored = {"anchors": {"item_ids": ["x"]}}
    # tenant pop 0.5, surface cooc 2: b = 0.5*0.4 + 2*0.5 = 1.2 ; a = 0.5*1.0 = 0.5
    assert scores(run(signals, request(**anchored), cfg)) == {"b": 1.2, "a": 0.5}
    # request pop 1.0 (cooc untouched: 2): b = 1.0*0.4 + 2*0.5 = 1.4 ; a = 1.0
    assert scores(run(signals, request(**anchored, weights={"pop": 1.0}), cfg)) == {"b": 1.4, "a": 1.0}


def test_all_zero_weights_fall_back_to_popularity():
    signals = artifacts(popularity={"a": 10, "b": 4}, cooc={"x": {"b": 1.0}}, implicit={})
    ranked = run(signals, request(anchors={"item_ids": ["x"]}, weights=ONLY))
    # {pop: 1} only: a 1.0, b 0.4 (cooc weight 0)
    assert scores(ranked) == {"a": 1.0, "b": 0.4}


# ---------------------------------------------------------------------------------------------------- filters


def test_include_and_exclude_lists():
    signals = artifacts(popularity={"a": 5, "b": 4, "c": 3}, implicit={})
    req = request(candidates={"include_ids": ["c", "z", "b"], "exclude_ids": ["b"]})
    ranked = run(signals, req)
    # pool a, b, c + include z (no signals: 0) ; b excluded ; order a 0.2, c 0.2*0.6 = 0.12, z 0
    # allow-list drops a (1 of the first k)
    assert scores(ranked) == {"c": 0.12, "z": 0.0}
    assert ids(ranked) == ["c", "z"]
    assert warnings(ranked) == [("CANDIDATES_INCLUDE_FILTERED", "1 items removed by candidates.include_ids")]


def test_include_list_that_matches_nothing():
    signals = artifacts(popularity={"a": 5, "b": 4}, implicit={})
    ranked = run(signals, request(candidates={"include_ids": ["b"], "exclude_ids": ["b"]}))
    assert ranked.items == []
    assert warnings(ranked) == [("CANDIDATES_INCLUDE_EMPTY", "no items matched candidates.include_ids")]


def test_tag_constraints_forbidden_and_max_per_tag_backfill():
    signals = artifacts(
        popularity={"a": 5, "b": 4, "c": 3, "d": 2, "e": 1},
        implicit={},
        tags={"a": ("brand:x", "cat:1"), "b": ("brand:x",), "c": ("adult",), "d": ("brand:y",)},
    )
    req = request(k=3, constraints={"forbidden_tags": ["ADULT"], "max_per_tag": {"brand:x": 1}})
    ranked = run(signals, req)
    # order a, b, c, d, e: a kept (brand:x 1) ; b over the cap ; c forbidden ; d, e kept -> k = 3
    assert ids(ranked) == ["a", "d", "e"]
    assert warnings(ranked) == [("CONSTRAINTS_FILTERED", "2 items removed by tag constraints")]


def test_required_tags_keep_items_with_any_and_drop_untagged():
    signals = artifacts(
        popularity={"a": 5, "b": 4, "c": 3, "d": 2},
        implicit={},
        tags={"a": ("brand:x",), "b": ("sale", "brand:y"), "c": ("other",)},
    )
    ranked = run(signals, request(constraints={"required_tags": ["Sale", "brand:x"]}))
    assert ids(ranked) == ["a", "b"]
    assert ranked.warnings == []


def test_tag_constraints_without_content_sim_warn_and_required_drops_everything():
    signals = artifacts(popularity={"a": 5, "b": 4}, implicit={})
    ranked = run(signals, request(constraints={"forbidden_tags": ["adult"]}))
    assert ids(ranked) == ["a", "b"]  # nothing can be checked: returned unfiltered
    assert warnings(ranked) == [("TAG_LOOKUP_FAILED", "failed to fetch item tags for constraints")]
    ranked = run(signals, request(constraints={"required_tags": ["sale"]}))
    assert ranked.items == []


def test_deterministic_tie_break_by_item_id():
    signals = artifacts(popularity={"b": 1, "c": 1, "a": 1}, implicit={})
    first = run(signals)
    assert ids(first) == ["a", "b", "c"]
    assert run(signals) == first


def test_truncates_to_k():
    signals = artifacts(popularity={f"i{n:02d}": 100 - n for n in range(30)}, implicit={})
    ranked = run(signals, request(k=5))
    assert ids(ranked) == ["i00", "i01", "i02", "i03", "i04"]


def test_exclusions_widen_the_popularity_fanout():
    signals = artifacts(popularity={"a": 1}, implicit={})
    run(signals, request(k=10, candidates={"exclude_ids": ["x", "y"]}), config(fanout=50))
    # max(k 10, fanout 50) + 2 excluded
    assert ("popular", 52) in signals.calls


# ------------------------------------------------------------------------------------------------------ rules


def test_rules_pin_external_item_boost_and_block():
    signals = artifacts(popularity={"a": 10, "b": 5, "c": 1}, implicit={})
    rules = parse_rules(
        [
            {"action": "pin", "item_ids": ["ext"], "id": "pin-ext"},
            {"action": "boost", "item_ids": ["b"], "boost_value": 1.0, "id": "boost-b"},
            {"action": "block", "item_ids": ["c"], "id": "block-c"},
        ]
    )
    ranked = run(signals, request(options={"include_reasons": True}), rules=rules)
    # ext pinned first (external: score 0) ; a 0.2 ; b 0.2*0.5 = 0.1 boosted by 0.1*1.0 -> 0.2 (tie -> a, b) ; c blocked
    assert ids(ranked) == ["ext", "a", "b"]
    assert scores(ranked) == {"ext": 0.0, "a": 0.2, "b": 0.2}
    assert [item.reasons for item in ranked.items] == [
        ["rule.pin[pin-ext]"],
        ["recent_popularity"],
        ["recent_popularity", "rule.boost:+0.10[boost-b]"],
    ]
    assert warnings(ranked) == [("RULE_PIN_INJECTED", "1 pinned items were injected into results")]


def test_pinned_candidates_lead_and_are_not_counted_as_injected():
    signals = artifacts(popularity={"a": 10, "b": 5, "c": 1}, implicit={})
    rules = parse_rules([{"action": "pin", "item_ids": "c,b", "id": "p"}])
    ranked = run(signals, rules=rules)
    assert ids(ranked) == ["c", "b", "a"]
    assert ranked.warnings == []


def test_rules_respect_request_filters_and_scope():
    signals = artifacts(popularity={"a": 10}, implicit={"u1": {"seen": (1.0, 1)}})
    rules = parse_rules(
        [
            {"action": "pin", "item_ids": ["excluded", "seen", "ok"], "id": "p"},
            {"action": "boost", "item_ids": ["excluded"], "boost": 5, "id": "b"},
            {"action": "pin", "item_ids": ["other-surface"], "surface": "pdp", "id": "q"},
        ]
    )
    ranked = run(signals, request(candidates={"exclude_ids": ["excluded"]}), config(recent_items=0), rules)
    assert ids(ranked) == ["ok", "a"]


def test_boost_injected_item_takes_its_boost_as_score():
    signals = artifacts(popularity={"a": 10}, implicit={})
    rules = parse_rules([{"action": "boost", "item_ids": ["new"], "boost": 0.3, "id": "b"}])
    ranked = run(signals, request(options={"explain": "summary"}), rules=rules)
    # new: injected with 0.3 ; a: 0.2
    assert scores(ranked) == {"new": 0.3, "a": 0.2}
    assert ranked.items[0].explain == {
        "signals": {"pop": 0.0, "cooc": 0.0, "implicit": 0.0, "session": 0.0, "content": 0.0, "knn": 0.0},
        "rules": ["rule.boost:+0.30[b]"],
    }


# ------------------------------------------------------------------------------------------- reasons / explain


def test_reasons_and_explain_shapes():
    signals = artifacts(
        popularity={"b": 10, "c": 5},
        implicit={},
        cooc={"a": {"b": 0.5}},
        content_sim={"a": {"b": 0.4}},
        item_knn={},
    )
    req = request(anchors={"item_ids": ["a"]}, options={"include_reasons": True, "explain": "full"})
    ranked = run(signals, req)
    b, c = ranked.items
    # b: pop 0.2*1.0 = 0.2 ; cooc 1.0*0.5 = 0.5 ; content 0.5*0.4 = 0.2 -> 0.9 ; c: 0.2*0.5 = 0.1
    assert (b.item_id, b.score, c.item_id, c.score) == ("b", 0.9, "c", 0.1)
    assert b.reasons == ["recent_popularity", "co_visitation", "content_similarity"]
    assert b.explain == {
        "signals": {"pop": 0.2, "cooc": 0.5, "implicit": 0.0, "session": 0.0, "content": 0.2, "knn": 0.0},
        "rules": [],
        "raw": {"pop": 1.0, "cooc": 0.5, "implicit": 0.0, "session": 0.0, "content": 0.4, "knn": 0.0},
        "anchors": ["a"],
    }
    summary = run(signals, request(anchors={"item_ids": ["a"]}, options={"explain": "summary"}))
    assert summary.items[0].reasons is None
    assert set(summary.items[0].explain) == {"signals", "rules"}
    plain = run(signals, request(anchors={"item_ids": ["a"]}))
    assert (plain.items[0].reasons, plain.items[0].explain) == (None, None)


def test_reasons_for_every_signal_in_seed_order():
    signals = artifacts(
        popularity={"x": 1},
        implicit={"u1": {"x": (1.0, 1), "h": (1.0, 2)}},
        cooc={"h": {"x": 0.5}},
        session_seq={"h": {"x": 0.5}},
        content_sim={"h": {"x": 0.5}},
        item_knn={"h": {"x": 0.5}},
    )
    ranked = run(signals, request(options={"include_reasons": True}), config(exclude_seen=False, recent_items=1))
    [x] = [item for item in ranked.items if item.item_id == "x"]
    assert x.reasons == [
        "recent_popularity",
        "co_visitation",
        "collaborative",
        "session_sequence",
        "content_similarity",
        "collaborative_similarity",
    ]
    # knn: h (weight 1/1) -> x 0.5, the only knn value, so normalized to 1.0
    # 0.2*1 + 1.0*0.5 + 0.5*1.0 + 1.0*0.5 + 0.5*0.5 + 1.0*1.0 = 0.2 + 0.5 + 0.5 + 0.5 + 0.25 + 1.0 = 2.95
    assert x.score == 2.95


# --------------------------------------------------------------------------------------------------- warnings


def test_unavailable_signals_warn_only_when_the_request_would_use_them():
    signals = artifacts(popularity={"a": 1})  # no implicit, cooc, session_seq, content_sim, item_knn
    ranked = run(signals, request(anchors={"item_ids": ["x"]}))
    assert warnings(ranked) == [
        ("SIGNAL_UNAVAILABLE", "cooc unavailable: not in manifest"),
        ("SIGNAL_UNAVAILABLE", "collaborative unavailable: not in manifest"),
        ("SIGNAL_UNAVAILABLE", "session unavailable: not in manifest"),
        ("SIGNAL_UNAVAILABLE", "content unavailable: not in manifest"),
        ("SIGNAL_UNAVAILABLE", "item_knn unavailable: not in manifest"),
    ]
    # Without anchors (and without history, so no session and no item_knn): only collaborative.
    assert warnings(run(signals)) == [("SIGNAL_UNAVAILABLE", "collaborative unavailable: not in manifest")]
    # A zero weight means the signal is not used.
    cfg = config(weights={"cooc": 0, "session": 0, "content": 0, "knn": 0})
    assert len(run(signals, request(anchors={"item_ids": ["x"]}), cfg).warnings) == 1


def test_session_warning_needs_history():
    cold = artifacts(popularity={"a": 1}, implicit={})
    assert run(cold).warnings == []
    warm = artifacts(popularity={"a": 1}, implicit={"u1": {"h": (1.0, 1)}})
    assert warnings(run(warm, cfg=config(weights={"cooc": 0, "content": 0}))) == [
        ("SIGNAL_UNAVAILABLE", "session unavailable: not in manifest"),
        ("SIGNAL_UNAVAILABLE", "item_knn unavailable: not in manifest"),  # history is enough for item_knn
    ]


def test_popularity_unavailable():
    ranked = run(artifacts(implicit={}))
    assert ranked.items == []
    assert warnings(ranked) == [("SIGNAL_UNAVAILABLE", "popularity unavailable: not in manifest")]


def test_an_unreadable_kind_is_skipped_with_a_warning_on_first_use_and_after():
    data = {
        "popularity": {"a": 10, "b": 5},
        "cooc": {"x": {"c": 0.5}},
        "session_seq": {"x": {"d": 0.5}},
        "content_sim": {"x": {"e": 0.5}},
        "tags": {"a": ("t",), "b": ("t",)},
        "implicit": {},
        "item_knn": {},
    }
    signals = artifacts(unreadable={"cooc", "content_sim"}, **data)
    req = request(anchors={"item_ids": ["x"]}, constraints={"forbidden_tags": ["t"]})
    first, second = run(signals, req), run(signals, req)  # the failure, then a request that finds it remembered
    for ranked in (first, second):
        assert ids(ranked) == ["d", "a", "b"]  # session_seq, popularity; no tags to forbid (content_sim holds them)
        assert warnings(ranked) == [
            ("SIGNAL_UNAVAILABLE", "cooc unavailable: artifact unreadable"),
            ("SIGNAL_UNAVAILABLE", "content unavailable: artifact unreadable"),
            ("TAG_LOOKUP_FAILED", "failed to fetch item tags for constraints"),
        ]
    assert first.items == second.items
    # Not looked up (no anchors): no warning, unreadable or not.
    assert warnings(run(artifacts(unreadable={"cooc"}, **data))) == []


def test_unreadable_popularity_is_what_a_missing_one_is_with_its_own_reason():
    signals = artifacts(unreadable={"popularity"}, implicit={})
    for _ in range(2):  # the failure, then its memo
        ranked = run(signals)
        assert ranked.items == []
        assert warnings(ranked) == [("SIGNAL_UNAVAILABLE", "popularity unavailable: artifact unreadable")]


# ---------------------------------------------------------------------------------------------------- similar


def test_similar_blends_cooc_and_content():
    signals = artifacts(
        cooc={"a": {"b": 0.5, "c": 0.2, "a": 1.0}},  # a self-pair (never in a real artifact) is still excluded
        content_sim={"a": {"c": 0.8, "d": 0.4}},
        item_knn={},
    )
    ranked = similar(similar_request("a", options={"include_reasons": True}), signals, config("pdp"))
    # c: 1.0*0.2 + 0.5*0.8 = 0.6 ; b: 1.0*0.5 = 0.5 ; d: 0.5*0.4 = 0.2
    assert scores(ranked) == {"c": 0.6, "b": 0.5, "d": 0.2}
    assert ids(ranked) == ["c", "b", "d"]
    assert [item.reasons for item in ranked.items] == [
        ["co_visitation", "content_similarity"],
        ["co_visitation"],
        ["content_similarity"],
    ]
    assert ranked.warnings == []


def test_similar_blends_cooc_knn_and_content():
    signals = artifacts(
        cooc={"a": {"b": 0.5}}, item_knn={"a": {"b": 0.2, "c": 0.4}}, content_sim={"a": {"c": 0.2, "d": 0.1}}
    )
    req = similar_request("a", options={"include_reasons": True, "explain": "summary"})
    ranked = similar(req, signals, config("pdp"))
    # b: 1.0*0.5 + 1.0*0.2 = 0.7 ; c: 1.0*0.4 + 0.5*0.2 = 0.5 ; d: 0.5*0.1 = 0.05
    assert scores(ranked) == {"b": 0.7, "c": 0.5, "d": 0.05}
    assert [item.reasons for item in ranked.items] == [
        ["co_visitation", "collaborative_similarity"],
        ["content_similarity", "collaborative_similarity"],
        ["content_similarity"],
    ]
    assert ranked.items[1].explain["signals"] == {
        "pop": 0.0, "cooc": 0.0, "implicit": 0.0, "session": 0.0, "content": 0.1, "knn": 0.4
    }  # fmt: skip
    assert ranked.warnings == []
    # the config's weights: knn 2 -> c: 2*0.4 + 0.5*0.2 = 0.9 ; b: 0.5 + 2*0.2 = 0.9 (tie: item_id) ; d 0.05
    weighted = similar(similar_request("a"), signals, config("pdp", weights={"knn": 2}))
    assert scores(weighted) == {"b": 0.9, "c": 0.9, "d": 0.05} and ids(weighted) == ["b", "c", "d"]


def test_similar_with_item_knn_alone():
    ranked = similar(similar_request("a"), artifacts(item_knn={"a": {"b": 0.2, "c": 0.4}}), config("pdp"))
    assert scores(ranked) == {"c": 0.4, "b": 0.2}
    assert warnings(ranked) == [
        ("SIGNAL_UNAVAILABLE", "cooc unavailable: not in manifest"),
        ("SIGNAL_UNAVAILABLE", "content unavailable: not in manifest"),
    ]


def test_similar_unknown_item_is_empty_without_warning():
    signals = artifacts(cooc={"a": {"b": 0.5}}, content_sim={}, item_knn={"a": {"b": 0.1}})
    ranked = similar(similar_request("nope"), signals, config("pdp"))
    assert (ranked.items, ranked.warnings) == ([], [])


def test_similar_without_similarity_signals():
    ranked = similar(similar_request("a"), artifacts(popularity={"a": 1}), config("pdp"))
    assert ranked.items == []
    assert warnings(ranked) == [("SIGNAL_UNAVAILABLE", "similarity signals unavailable")]


def test_similar_skips_unreadable_kinds_and_without_a_readable_one_has_no_signal():
    data = {"cooc": {"a": {"b": 0.5}}, "content_sim": {"a": {"c": 0.4}}, "item_knn": {"a": {"d": 0.3}}}
    signals = artifacts(unreadable={"cooc"}, **data)
    for _ in range(2):
        ranked = similar(similar_request("a"), signals, config("pdp"))
        assert ids(ranked) == ["d", "c"]
        assert warnings(ranked) == [("SIGNAL_UNAVAILABLE", "cooc unavailable: artifact unreadable")]
    signals = artifacts(unreadable={"cooc", "content_sim", "item_knn"}, **data)
    for _ in range(2):
        ranked = similar(similar_request("a"), signals, config("pdp"))
        assert ranked.items == []
        assert warnings(ranked) == [("SIGNAL_UNAVAILABLE", "similarity signals unavailable")]


def test_scores_past_a_doubles_range_saturate():
    huge = 1e308  # finite, but the blend of several such weights overflows a double
    signals = artifacts(
        popularity={"a": 10, "b": 5}, cooc={"x": {"a": 1.0, "b": 1.0}}, content_sim={"x": {"a": 1.0}}, item_knn={}
    )
    cfg = config(weights=dict.fromkeys(TEST_WEIGHTS, huge))
    ranked = run(signals, request(anchors={"item_ids": ["x"]}, options={"explain": "full"}), cfg)
    assert ids(ranked) == ["a", "b"] and scores(ranked)["a"] == sys.float_info.max
    assert all(math.isfinite(value) for item in ranked.items for value in item.explain["signals"].values())
    similar_items = similar(similar_request("x"), signals, config("pdp", weights=dict.fromkeys(TEST_WEIGHTS, huge)))
    assert scores(similar_items)["a"] == sys.float_info.max


def test_similar_with_one_signal_missing_and_constraints():
    signals = artifacts(cooc={"a": {"b": 0.5, "c": 0.4, "d": 0.3}})
    ranked = similar(similar_request("a", k=2), signals, config("pdp"))
    assert ids(ranked) == ["b", "c"]
    assert warnings(ranked) == [
        ("SIGNAL_UNAVAILABLE", "content unavailable: not in manifest"),
        ("SIGNAL_UNAVAILABLE", "item_knn unavailable: not in manifest"),
    ]
    tagged = artifacts(cooc={"a": {"b": 0.5, "c": 0.4, "d": 0.3}}, tags={"b": ("adult",), "c": ("x",), "d": ("x",)},
                         item_knn={})  # fmt: skip
    ranked = similar(similar_request("a", constraints={"max_per_tag": {"x": 1}, "forbidden_tags": ["adult"]}),
                     tagged, config("pdp"))  # fmt: skip
    assert ids(ranked) == ["c"]
    assert warnings(ranked) == [("CONSTRAINTS_FILTERED", "2 items removed by tag constraints")]


@pytest.mark.parametrize(
    "weights", [{"cooc": 0, "content": 0, "knn": 0}, {"cooc": 0, "content": 0, "knn": 0, "pop": 1}]
)
def test_similar_with_zero_similarity_weights_uses_the_defaults(weights):
    signals = artifacts(cooc={"a": {"b": 0.5}}, content_sim={"a": {"b": 0.4}}, item_knn={"a": {"b": 0.1}})
    # DEFAULT_WEIGHTS cooc .125, content .05, knn 1.0: b = .5 x .125 + .4 x .05 + .1 x 1 = .0625 + .02 + .1 = .1825
    assert scores(similar(similar_request("a"), signals, config("pdp", weights=weights))) == {"b": 0.1825}
