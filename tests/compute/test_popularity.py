"""popularity: weighted event counts per item, decayed over the window."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pyarrow as pa
import pytest

from recsys.compute import popularity
from recsys.days import Window
from recsys.settings import DEFAULT_EVENT_WEIGHTS, ComputeParams

EventsFactory = Callable[..., pa.Table]

D1, D2, D3 = dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 1, 3)
WINDOW = Window(start=D1, end=D3)


def _partials(events: EventsFactory) -> list[tuple[dt.date, pa.Table]]:
    params = ComputeParams()
    day1 = events(
        [
            {"session_id": "s1", "item_id": "a", "event_type": "exposure"},
            {"session_id": "s1", "item_id": "a", "event_type": "click", "ts": 5},
            {"session_id": "s2", "item_id": "b", "event_type": "purchase"},
        ],
        day=D1,
    )
    day2 = events(
        [
            {"session_id": "s3", "item_id": "b", "event_type": "exposure"},
            {"session_id": "s3", "item_id": "c", "event_type": "add_to_cart"},
        ],
        day=D2,
    )
    day3 = events(
        [
            {"session_id": "s4", "item_id": "a", "event_type": "click"},
            {"session_id": "s4", "item_id": "d", "event_type": "exposure"},
        ],
        day=D3,
    )
    days = [(D1, day1), (D2, day2), (D3, day3)]
    return [(day, popularity.partial(table, params, DEFAULT_EVENT_WEIGHTS)) for day, table in days]


def test_partial_sums_weights_and_counts_events(events: EventsFactory) -> None:
    (_, day1), _, _ = _partials(events)
    assert day1.schema == popularity.PARTIAL_SCHEMA
    assert day1.to_pylist() == [
        {"item_id": "a", "score": 4.0, "count": 2},  # exposure 1 + click 3
        {"item_id": "b", "score": 10.0, "count": 1},  # purchase 10
    ]


def test_partial_unknown_event_type_counts_but_weighs_nothing(events: EventsFactory) -> None:
    table = events([{"session_id": "s", "item_id": "a", "event_type": "share"}])
    part = popularity.partial(table, ComputeParams(), DEFAULT_EVENT_WEIGHTS)
    assert part.to_pylist() == [{"item_id": "a", "score": 0.0, "count": 1}]


def test_build_decays_by_age(events: EventsFactory) -> None:
    params = ComputeParams(popularity_half_life_days=1.0)
    out = popularity.build(_partials(events), WINDOW, params)
    assert out.schema == popularity.SCHEMA
    assert out.to_pylist() == [
        {"item_id": "a", "score": 4.0, "count": 3, "rank": 1},  # 4 * 0.25 (2 days old) + 3 * 1
        {"item_id": "b", "score": 3.0, "count": 2, "rank": 2},  # 10 * 0.25 + 1 * 0.5
        {"item_id": "c", "score": 2.5, "count": 1, "rank": 3},  # 5 * 0.5
        {"item_id": "d", "score": 1.0, "count": 1, "rank": 4},  # 1 * 1
    ]


def test_build_without_decay_and_top_n(events: EventsFactory) -> None:
    params = ComputeParams(popularity_half_life_days=None, popularity_top_n=2)
    out = popularity.build(_partials(events), WINDOW, params)
    assert out.to_pylist() == [
        {"item_id": "b", "score": 11.0, "count": 2, "rank": 1},  # 10 + 1
        {"item_id": "a", "score": 7.0, "count": 3, "rank": 2},  # 4 + 3; c (5) and d (1) cut
    ]


def test_build_ties_break_on_count_then_item_id(events: EventsFactory) -> None:
    table = events(
        [
            {"session_id": "s", "item_id": "z", "event_type": "click"},
            {"session_id": "s", "item_id": "x", "event_type": "click"},
            {"session_id": "s", "item_id": "y", "event_type": "exposure", "ts": 1},
            {"session_id": "s", "item_id": "y", "event_type": "exposure", "ts": 2},
            {"session_id": "s", "item_id": "y", "event_type": "exposure", "ts": 3},
        ]
    )
    params = ComputeParams(popularity_half_life_days=None)
    part = popularity.partial(table, params, DEFAULT_EVENT_WEIGHTS)
    out = popularity.build([(D1, part)], Window(start=D1, end=D1), params)
    # all score 3 (click = 3, 3 exposures = 3): y has count 3; x and z (count 1) by item_id
    assert out.column("item_id").to_pylist() == ["y", "x", "z"]
    assert out.column("rank").to_pylist() == [1, 2, 3]


def test_build_accepts_empty_days(events: EventsFactory) -> None:
    (_, day1), _, _ = _partials(events)
    params = ComputeParams(popularity_half_life_days=2.0)
    partials = [(D1, day1), (D2, popularity.PARTIAL_SCHEMA.empty_table()), (D3, pa.table({}))]
    out = popularity.build(partials, WINDOW, params)
    assert out.column("score").to_pylist() == pytest.approx([5.0, 2.0])  # b: 10 * 0.5; a: 4 * 0.5
    assert out.column("item_id").to_pylist() == ["b", "a"]
    empty = popularity.build([(D1, pa.table({}))], Window(start=D1, end=D1), params)
    assert empty.schema == popularity.SCHEMA
    assert empty.num_rows == 0


def test_build_is_independent_of_the_order_of_days(events: EventsFactory) -> None:
    partials = _partials(events)
    params = ComputeParams(popularity_half_life_days=3.0)
    assert popularity.build(partials, WINDOW, params).equals(popularity.build(partials[::-1], WINDOW, params))
