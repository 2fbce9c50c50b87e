"""Merchandising rules: the seed's lenient parsing and its evaluation semantics (recsys-algo/rules/evaluate.go)."""

from __future__ import annotations

import datetime as dt
import sys
import uuid

import pytest

from recsys.ranking.rules import Rule, apply_rules
from recsys.serve.rules import RULE_ID_NAMESPACE, parse_rules

NOW = dt.datetime(2026, 5, 23, 12, 0, tzinfo=dt.UTC)


def no_tags(item_id: str) -> tuple[str, ...]:
    return ()


def apply(candidates, rules, *, tags=no_tags, surface="home", segment="default", now=NOW, max_pins=3):
    return apply_rules(candidates, tags, rules, surface=surface, segment=segment, now=now, max_pins=max_pins)


def rule(rule_id: str, action: str, *, items=(), tags=(), priority=0, boost=None, max_pins=None, **scope) -> Rule:
    return Rule(
        rule_id=rule_id,
        action=action,
        target_type="TAG" if tags else "ITEM",
        item_ids=tuple(items),
        tags=tuple(tags),
        priority=priority,
        boost_value=boost,
        max_pins=max_pins,
        **scope,
    )


# ------------------------------------------------------------------------------------------------------ parsing


def test_parse_seed_example_array():
    [parsed] = parse_rules([{"action": "pin", "target_type": "item", "item_ids": ["item_3"], "surface": "home",
                             "priority": 10, "rule_id": "r1"}])  # fmt: skip
    assert parsed == Rule(rule_id="r1", action="PIN", target_type="ITEM", item_ids=("item_3",), surface="home",
                          priority=10)  # fmt: skip


@pytest.mark.parametrize(
    "payload",
    [
        {"rules": [{"action": "block", "item_ids": "a, b ,,a", "id": "r"}]},
        {"items": [{"action": "block", "item_ids": "a, b ,,a", "id": "r"}]},
        {"data": {"action": "block", "item_ids": "a, b ,,a", "id": "r"}},
        {"action": "block", "item_ids": "a, b ,,a", "id": "r"},
        '[{"action": "block", "item_ids": "a, b ,,a", "id": "r"}]',
    ],
)
def test_parse_wrappers_and_comma_string_ids(payload):
    # "a, b ,,a" -> trimmed, empties dropped, deduplicated in order.
    assert parse_rules(payload) == [Rule(rule_id="r", action="BLOCK", target_type="ITEM", item_ids=("a", "b"))]


def test_single_rule_object_with_an_items_list_of_ids_is_a_rule():
    [parsed] = parse_rules({"operation": "Promote", "items": ["x", "y"], "boost": "0.5", "id": "r"})
    assert (parsed.action, parsed.item_ids, parsed.boost_value) == ("BOOST", ("x", "y"), 0.5)


@pytest.mark.parametrize(
    ("alias", "action"),
    [
        ("block", "BLOCK"),
        ("Blocklist", "BLOCK"),
        ("ban", "BLOCK"),
        ("exclude", "BLOCK"),
        ("SUPPRESS", "BLOCK"),
        ("pin", "PIN"),
        ("pinned", "PIN"),
        ("force", "PIN"),
        ("boost", "BOOST"),
        ("promote", "BOOST"),
        ("increase", "BOOST"),
    ],
)
def test_action_aliases(alias, action):
    for key in ("action", "rule_action", "operation"):
        [parsed] = parse_rules([{key: alias, "item_id": "a"}])
        assert parsed.action == action


def test_targets_tag_brand_category_and_nested():
    parsed = parse_rules(
        [
            {"action": "boost", "target_type": "label", "target_key": "Sale", "boost": 1, "id": "t"},
            {"action": "block", "brand": "Nike", "id": "b"},
            {"action": "block", "target_type": "cat", "key": "Shoes", "id": "c"},
            {"action": "pin", "target": {"type": "product", "item_ids": ["p1", "p2"]}, "id": "n"},
            {"action": "pin", "target": {"type": "brand", "key": "brand:acme"}, "id": "n2"},
            {"action": "block", "tags": ["a", "B"], "id": "ts"},
        ]
    )
    assert [(r.rule_id, r.target_type, r.item_ids, r.tags) for r in parsed] == [
        ("t", "TAG", (), ("sale",)),
        ("b", "TAG", (), ("brand:nike",)),
        ("c", "TAG", (), ("category:shoes",)),
        ("n", "ITEM", ("p1", "p2"), ()),
        ("n2", "TAG", (), ("brand:acme",)),  # an already-prefixed key is not prefixed twice
        ("ts", "TAG", (), ("a", "b")),
    ]


def test_rules_that_cannot_be_understood_are_skipped():
    parsed = parse_rules(
        [
            {"action": "explode", "item_ids": ["a"]},  # unknown action
            {"item_ids": ["a"]},  # no action
            {"action": "pin"},  # no target
            {"action": "pin", "target_type": "warehouse", "key": "x"},  # unknown target type
            {"action": "pin", "item_ids": ["a"], "valid_until": "not a time"},
            {"action": "pin", "item_ids": ["a"], "enabled": "perhaps"},
            "not an object",
            {"action": "pin", "item_ids": ["ok"], "id": "kept"},
        ]
    )
    assert [r.rule_id for r in parsed] == ["kept"]


@pytest.mark.parametrize("payload", [None, 5, "3", "[", True])
def test_payload_that_is_not_an_array_or_object_raises(payload):
    with pytest.raises(ValueError):
        parse_rules(payload)


def test_empty_payloads_parse_to_no_rules():
    assert parse_rules([]) == []
    assert parse_rules({"rules": []}) == []


def test_scope_enabled_priority_and_times():
    [parsed] = parse_rules(
        [
            {
                "action": "pin",
                "item_ids": ["a"],
                "surface": " Home ",
                "segment_id": "VIP",
                "namespace": "HOME",
                "enabled": "false",
                "priority": "7",
                "max_pins": 2,
                "starts_at": "2026-05-01",
                "ends_at": "2026-05-31",
            }
        ]
    )
    assert (parsed.surface, parsed.segment, parsed.namespace) == ("home", "vip", "home")
    assert (parsed.enabled, parsed.priority, parsed.max_pins) == (False, 7, 2)
    assert parsed.valid_from == dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    assert parsed.valid_until == dt.datetime(2026, 6, 1, tzinfo=dt.UTC)  # an end date covers its whole day


@pytest.mark.parametrize(
    "value",
    [
        "2026-05-23T12:00:00Z",
        "2026-05-23T15:00:00+03:00",
        "2026-05-23T12:00:00",  # naive: UTC
        1779537600,  # unix seconds
        "1779537600",
        1779537600000,  # ms
        1779537600000000,  # µs
        1779537600000000000,  # ns
    ],
)
def test_time_formats(value):
    [parsed] = parse_rules({"action": "pin", "item_id": "a", "valid_from": value})
    assert parsed.valid_from == NOW


def test_an_end_date_of_9999_12_31_never_ends():
    [rule] = parse_rules({"action": "pin", "item_id": "a", "valid_until": "9999-12-31"})  # was skipped: overflow
    assert rule.valid_until == dt.datetime.max.replace(tzinfo=dt.UTC)
    assert rule.applies(surface="home", segment="default", now=NOW)


def test_rule_id_given_or_stable_uuid5_of_canonical_json():
    payload = {"action": "pin", "item_ids": ["a"], "priority": 1}
    [first] = parse_rules([payload])
    [again] = parse_rules([dict(reversed(list(payload.items())))])  # key order does not matter
    [other] = parse_rules([{**payload, "priority": 2}])
    canonical = '{"action":"pin","item_ids":["a"],"priority":1}'
    assert first.rule_id == again.rule_id == str(uuid.uuid5(RULE_ID_NAMESPACE, canonical))
    assert other.rule_id != first.rule_id
    assert parse_rules([{**payload, "rule_id": " 5b1c "}])[0].rule_id == "5b1c"


# --------------------------------------------------------------------------------------------------- evaluation


def test_block_removes_and_records_reason():
    outcome = apply({"a": 1.0, "b": 0.5}, [rule("r1", "BLOCK", items=["b", "zz"])])
    assert outcome.scores == {"a": 1.0}
    assert outcome.reasons["b"] == ["rule.block[r1]"]
    assert outcome.blocked == frozenset({"b", "zz"})


def test_pin_candidates_and_external_items_in_pin_order():
    outcome = apply({"a": 1.0, "b": 0.5}, [rule("p", "PIN", items=["b", "ext"])])
    assert outcome.pinned == ["b", "ext"]
    assert outcome.scores == {"a": 1.0, "b": 0.5}  # external pins are not scored candidates
    assert outcome.reasons == {"b": ["rule.pin[p]"], "ext": ["rule.pin[p]"]}


def test_pin_slots_global_and_per_rule():
    assert apply({}, [rule("p", "PIN", items=["a", "b", "c"])], max_pins=2).pinned == ["a", "b"]
    assert apply({}, [rule("p", "PIN", items=["a", "b", "c"], max_pins=1)], max_pins=3).pinned == ["a"]
    # A second rule gets the remaining slot only.
    rules = [rule("p1", "PIN", items=["a"], priority=2), rule("p2", "PIN", items=["b", "c"], priority=1)]
    assert apply({}, rules, max_pins=2).pinned == ["a", "b"]


def test_block_frees_the_pin_slot_of_an_earlier_pin():
    rules = [
        rule("pin-a", "PIN", items=["a"], priority=10),
        rule("block-a", "BLOCK", items=["a"], priority=5),
        rule("pin-b", "PIN", items=["b"], priority=1),
    ]
    outcome = apply({"a": 1.0, "b": 0.5}, rules, max_pins=1)
    # max_pins 1: pin-a takes the slot, block-a frees it, pin-b takes it.
    assert outcome.pinned == ["b"]
    assert outcome.reasons["a"] == ["rule.block[block-a]"]
    assert "a" not in outcome.scores


def test_block_beats_a_later_pin():
    rules = [rule("blk", "BLOCK", items=["a"], priority=5), rule("pin", "PIN", items=["a", "b"], priority=1)]
    outcome = apply({"a": 1.0}, rules)
    assert outcome.pinned == ["b"]


def test_boost_multiplies_and_compounds():
    outcome = apply(
        {"a": 1.0}, [rule("x", "BOOST", items=["a"], boost=0.5), rule("y", "BOOST", items=["a"], boost=0.5)]
    )
    # x: delta = 1.0 * 0.5 = 0.5 -> 1.5; y: delta = 1.5 * 0.5 = 0.75 -> 2.25
    assert outcome.scores == {"a": 2.25}
    assert outcome.reasons["a"] == ["rule.boost:+0.50[x]", "rule.boost:+0.75[y]"]


def test_boost_of_a_zero_score_adds_the_boost_and_injects_missing_items():
    outcome = apply({"z": 0.0}, [rule("b", "BOOST", items=["z", "new"], boost=0.3)])
    # z: delta = 0 * 0.3 = 0 -> delta = 0.3; new: injected with score 0 -> 0.3
    assert outcome.scores == {"z": 0.3, "new": 0.3}
    assert outcome.reasons["new"] == ["rule.boost:+0.30[b]"]


def test_negative_boost_demotes_but_never_injects():
    outcome = apply({"a": 1.0}, [rule("d", "BOOST", items=["a", "missing"], boost=-0.5)])
    # a: delta = 1.0 * -0.5 = -0.5 -> 0.5
    assert outcome.scores == {"a": 0.5}
    assert outcome.reasons["a"] == ["rule.boost:-0.50[d]"]


def test_boosts_past_a_doubles_range_saturate():
    huge = sys.float_info.max / 2
    up = [rule(f"up{n}", "BOOST", items=["a"], boost=huge) for n in range(3)]
    outcome = apply({"a": 4.0, "b": 4.0}, [*up, rule("down", "BOOST", items=["b"], boost=-huge)])
    # a: 4 * huge overflows -> the largest score, and stays there; b: likewise -> the most negative one
    assert outcome.scores == {"a": sys.float_info.max, "b": -sys.float_info.max}
    assert outcome.reasons["a"][0] == f"rule.boost:{sys.float_info.max:+.2f}[up0]"


def test_zero_or_missing_boost_does_nothing():
    outcome = apply({"a": 1.0}, [rule("z", "BOOST", items=["a", "b"], boost=0), rule("n", "BOOST", items=["a"])])
    assert outcome.scores == {"a": 1.0}
    assert outcome.reasons == {}


def test_blocked_items_are_not_boosted_nor_injected():
    rules = [rule("blk", "BLOCK", items=["a", "x"], priority=9), rule("b", "BOOST", items=["a", "x"], boost=1)]
    outcome = apply({"a": 1.0}, rules)
    assert outcome.scores == {}
    assert outcome.reasons == {"a": ["rule.block[blk]"], "x": ["rule.block[blk]"]}


def test_priority_conflicts_like_the_seed():
    # The seed's TestEvaluatorConflictsRespectPriority, max pin slots 1.
    rules = [
        rule("block", "BLOCK", items=["blk"], priority=200),
        rule("boost-low", "BOOST", items=["a"], boost=0.25, priority=50),
        rule("boost-high", "BOOST", items=["a"], boost=1.0, priority=150),
        rule("pin-low", "PIN", items=["pin"], priority=50),
        rule("pin-high", "PIN", items=["pin"], priority=300),
    ]
    outcome = apply({"a": 1.0, "blk": 1.0, "pin": 0.01}, rules, max_pins=1)
    # boost-high first: 1.0 + 1.0 * 1.0 = 2.0; then boost-low: 2.0 + 2.0 * 0.25 = 2.5
    assert outcome.scores == {"a": 2.5, "pin": 0.01}
    assert outcome.pinned == ["pin"]
    assert outcome.reasons["pin"] == ["rule.pin[pin-high]"]
    assert outcome.reasons["a"] == ["rule.boost:+0.50[boost-low]", "rule.boost:+1.00[boost-high]"]


def test_equal_priorities_keep_list_order():
    rules = [rule("first", "PIN", items=["b"]), rule("second", "PIN", items=["a"])]
    assert apply({}, rules, max_pins=1).pinned == ["b"]


def test_tag_targets_match_only_current_candidates_best_first():
    catalog = {"a": ("sale",), "b": ("sale", "brand:nike"), "c": ("brand:nike",), "outside": ("sale",)}
    tags = catalog.__getitem__
    rules = [
        rule("pin-sale", "PIN", tags=["sale"], priority=2),
        rule("boost-nike", "BOOST", tags=["brand:nike"], boost=1.0, priority=1),
    ]
    outcome = apply({"a": 0.2, "b": 0.4, "c": 0.1}, rules, tags=tags)
    # pins sale items among candidates by score desc: b (0.4), a (0.2); "outside" is not a candidate.
    assert outcome.pinned == ["b", "a"]
    # boosts nike candidates: b 0.4 -> 0.8, c 0.1 -> 0.2
    assert outcome.scores == {"a": 0.2, "b": 0.8, "c": 0.2}


def test_scope_and_time_window():
    rules = [
        rule("home", "PIN", items=["a"], surface="home"),
        rule("pdp", "PIN", items=["b"], surface="pdp"),
        rule("vip", "PIN", items=["c"], segment="vip"),
        rule("ns", "PIN", items=["d"], namespace="home"),
        rule("off", "PIN", items=["e"], enabled=False),
        rule("future", "PIN", items=["f"], valid_from=NOW + dt.timedelta(seconds=1)),
        rule("past", "PIN", items=["g"], valid_until=NOW),  # the end is exclusive
        rule("now", "PIN", items=["h"], valid_from=NOW, valid_until=NOW + dt.timedelta(days=1)),
    ]
    outcome = apply({}, rules, surface="HOME", segment="Default", max_pins=10)
    assert outcome.pinned == ["a", "d", "h"]
    assert apply({}, rules, surface="pdp", segment="VIP", max_pins=10).pinned == ["b", "c", "h"]


def test_parsed_rules_apply_end_to_end():
    rules = parse_rules(
        {
            "rules": [
                {"action": "pin", "item_ids": "ext", "id": "p", "surface": "HOME"},
                {"action": "boost", "category": "Shoes", "boost_value": 0.5, "id": "b"},
                {"action": "block", "tag": "adult", "id": "x", "valid_until": "2026-05-22"},  # expired
            ]
        }
    )
    catalog = {"a": ("category:shoes",), "b": ("adult",)}
    outcome = apply({"a": 1.0, "b": 0.5}, rules, tags=lambda item: catalog.get(item, ()))
    assert outcome.pinned == ["ext"]
    assert outcome.scores == {"a": 1.5, "b": 0.5}
