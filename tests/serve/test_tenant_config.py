"""TenantConfig: lenient parsing, validation messages, surface overrides and weight precedence."""

from __future__ import annotations

import pytest

from recsys.serve.models import Weights
from recsys.serve.tenant_config import DEFAULT_WEIGHTS, EffectiveConfig, TenantConfig


def test_default_weights_are_documented_values():
    assert dict(DEFAULT_WEIGHTS) == {
        "pop": 0.002,
        "cooc": 0.125,
        "implicit": 0.5,
        "session": 0.125,
        "content": 0.05,
        "knn": 1.0,
    }


@pytest.mark.parametrize("data", [None, {}])
def test_no_config_is_all_defaults(data):
    effective = TenantConfig.parse(data).for_surface("home")
    assert effective == EffectiveConfig()
    assert effective.weights == dict(DEFAULT_WEIGHTS)
    assert (effective.exclude_seen, effective.recent_items, effective.fanout, effective.max_pins) == (True, 5, 200, 3)
    assert (effective.anchor_decay, effective.history_decay) == (0.5, 0.8)


def test_decays_are_checked_and_overridable_per_surface():
    config = TenantConfig.parse({"history_decay": 1.0, "surfaces": {"pdp": {"anchor_decay": 0.25}}})
    assert (config.for_surface("pdp").anchor_decay, config.for_surface("pdp").history_decay) == (0.25, 1.0)
    assert config.for_surface("home").anchor_decay == 0.5
    with pytest.raises(ValueError, match="history_decay must be at most 1"):
        TenantConfig.parse({"history_decay": 1.5})
    with pytest.raises(ValueError, match="anchor_decay must be non-negative"):
        TenantConfig.parse({"anchor_decay": -0.1})


def test_seed_tutorial_payload_parses_and_keeps_unknown_keys():
    data = {
        "weights": {"pop": 1.0, "cooc": 0.0, "emb": 0.0},
        "flags": {"enable_rules": True},
        "limits": {"max_k": 50, "max_exclude_ids": 200},
        "algo": "blend",
        "owner": "merch-team",
    }
    config = TenantConfig.parse(data)
    assert config.model_extra == {"owner": "merch-team"}
    effective = config.for_surface("home")
    # pop/cooc/emb from the tenant; emb is content; implicit/session/knn keep their defaults.
    assert effective.weights == {"pop": 1.0, "cooc": 0.0, "implicit": 0.5, "session": 0.125, "content": 0.0, "knn": 1.0}
    assert effective.algo == "blend"
    assert effective.flags == {"enable_rules": True}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"weights": {"pop": -1}}, "weights.pop must be non-negative"),
        ({"weights": {"emb": -0.5}}, "weights.emb must be non-negative"),
        ({"weights": {"knn": -0.1}}, "weights.knn must be non-negative"),
        ({"limits": {"max_k": -1}}, "limits.max_k must be non-negative"),
        ({"limits": {"max_exclude_ids": -5}}, "limits.max_exclude_ids must be non-negative"),
        ({"recent_items": -1}, "recent_items must be non-negative"),
        ({"fanout": 100000}, "fanout must be at most 1000"),
        ({"surfaces": {"pdp": {"max_pins": -2}}}, "surfaces.pdp.max_pins must be non-negative"),
        ({"weights": {"pop": "heavy"}}, "weights.pop: Input should be a valid number"),
        ({"exclude_seen": "maybe"}, "exclude_seen: Input should be a valid boolean"),
        ({"surfaces": {"Home": {}, "home": {}}}, "surfaces has duplicate surface names (names are case-insensitive)"),
        ([1, 2], "config must be a JSON object"),
        # non-finite numbers (the lenient scalars turn "NaN" into one): every float field refuses them
        ({"weights": {"pop": "NaN"}}, "weights.pop: Input should be a finite number"),
        ({"weights": {"knn": float("inf")}}, "weights.knn: Input should be a finite number"),
        ({"surfaces": {"pdp": {"weights": {"cooc": "1e400"}}}}, "surfaces.pdp.weights.cooc: Input should be a finite"),
        ({"anchor_decay": float("nan")}, "anchor_decay: Input should be a finite number"),
        ({"surfaces": {"pdp": {"history_decay": "-Infinity"}}}, "surfaces.pdp.history_decay: Input should be a finite"),
    ],
)
def test_invalid_config_raises_value_error_with_a_clear_message(data, message):
    with pytest.raises(ValueError) as info:
        TenantConfig.parse(data)
    assert str(info.value).startswith(message)


def test_lenient_scalars():
    config = TenantConfig.parse({"weights": {"pop": "0.4"}, "exclude_seen": "false", "fanout": "50"})
    effective = config.for_surface("x")
    assert (effective.weights["pop"], effective.exclude_seen, effective.fanout) == (0.4, False, 50)


def test_content_wins_over_emb_at_the_same_level():
    effective = TenantConfig.parse({"weights": {"emb": 0.9, "content": 0.3}}).for_surface("home")
    assert effective.weights["content"] == 0.3


def test_surface_overrides_are_partial_and_case_insensitive():
    config = TenantConfig.parse(
        {
            "weights": {"pop": 0.4},
            "recent_items": 3,
            "surfaces": {"Buy-Again": {"exclude_seen": False, "weights": {"implicit": 2.0}}, "pdp": {"fanout": 50}},
        }
    )
    again = config.for_surface("buy-again")
    assert again.exclude_seen is False
    assert again.recent_items == 3  # not overridden: tenant value
    assert again.weights == {**DEFAULT_WEIGHTS, "pop": 0.4, "implicit": 2.0}
    home = config.for_surface("home")
    assert home.exclude_seen is True
    assert home.weights["implicit"] == 0.5
    assert config.for_surface("pdp").fanout == 50


def test_weight_precedence_request_over_surface_over_tenant_over_defaults():
    config = TenantConfig.parse({"weights": {"pop": 0.5, "cooc": 0.7}, "surfaces": {"home": {"weights": {"cooc": 2}}}})
    effective = config.for_surface("home")
    # request gives only pop (and emb, the content alias); cooc comes from the surface, the rest from defaults.
    blend = effective.weights_for(Weights(pop=1.0, emb=0.25))
    assert blend == {**DEFAULT_WEIGHTS, "pop": 1.0, "cooc": 2.0, "content": 0.25}
    assert effective.weights_for(None) == {**DEFAULT_WEIGHTS, "pop": 0.5, "cooc": 2.0}
    assert effective.weights_for({"session": 0.0})["session"] == 0.0
    assert effective.weights_for(Weights(knn=0.25))["knn"] == 0.25


def test_all_zero_weights_fall_back_to_popularity():
    zero = {"pop": 0, "cooc": 0, "implicit": 0, "session": 0, "content": 0, "knn": 0}
    effective = TenantConfig.parse({"weights": zero}).for_surface("home")
    assert effective.weights_for(None) == {
        "pop": 1.0,
        "cooc": 0.0,
        "implicit": 0.0,
        "session": 0.0,
        "content": 0.0,
        "knn": 0.0,
    }
    # knn defaults to 1.0: zeroing only the seed-era weights does not fall back.
    assert TenantConfig.parse({"weights": {**zero, "knn": None}}).for_surface("home").weights_for(None)["knn"] == 1.0
    # A request zeroing the only non-zero weight also falls back.
    effective = TenantConfig.parse({"weights": {**zero, "cooc": 1}}).for_surface("home")
    assert effective.weights_for(Weights(cooc=0.0))["pop"] == 1.0
