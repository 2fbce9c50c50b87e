"""cooc: distinct items per session, upper-triangle partials, cosine scores over the window."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from recsys.compute import cooc
from recsys.days import Window
from recsys.settings import DEFAULT_EVENT_WEIGHTS, ComputeParams

EventsFactory = Callable[..., pa.Table]

D1, D2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)
WINDOW = Window(start=D1, end=D2)
CAP = ComputeParams(cooc_max_items_per_session=3)


def _sessions(events: EventsFactory, sessions: dict[str, list[str]], day: dt.date) -> pa.Table:
    rows = [
        {"session_id": session, "item_id": item, "ts": position}
        for session, items in sessions.items()
        for position, item in enumerate(items)
    ]
    return events(rows, day=day)


def _partials(events: EventsFactory) -> list[tuple[dt.date, pa.Table]]:
    day1 = _sessions(
        events,
        {
            "s1": ["a", "b", "a", "c"],  # a twice: counted once
            "s2": ["b", "a"],
            "s3": ["c", "b"],
            "bot": ["a", "b", "c", "d"],  # 4 distinct items > cap 3: skipped
        },
        D1,
    )
    # "s1" again on another day is another session
    day2 = _sessions(events, {"s1": ["a", "c"], "s2": ["c"], "s3": ["d", "e"]}, D2)
    return [(D1, cooc.partial(day1, CAP, DEFAULT_EVENT_WEIGHTS)), (D2, cooc.partial(day2, CAP, DEFAULT_EVENT_WEIGHTS))]


def test_partial_is_the_upper_triangle_with_session_counts_on_the_diagonal(events: EventsFactory) -> None:
    (_, day1), (_, day2) = _partials(events)
    assert day1.schema == cooc.PARTIAL_SCHEMA
    assert day1.to_pylist() == [
        {"item_id": "a", "neighbor_id": "a", "count": 2},  # s1, s2
        {"item_id": "a", "neighbor_id": "b", "count": 2},  # s1, s2
        {"item_id": "a", "neighbor_id": "c", "count": 1},  # s1
        {"item_id": "b", "neighbor_id": "b", "count": 3},  # s1, s2, s3
        {"item_id": "b", "neighbor_id": "c", "count": 2},  # s1, s3
        {"item_id": "c", "neighbor_id": "c", "count": 2},  # s1, s3 (d only in the skipped bot session)
    ]
    assert day2.to_pylist() == [
        {"item_id": "a", "neighbor_id": "a", "count": 1},
        {"item_id": "a", "neighbor_id": "c", "count": 1},
        {"item_id": "c", "neighbor_id": "c", "count": 2},
        {"item_id": "d", "neighbor_id": "d", "count": 1},
        {"item_id": "d", "neighbor_id": "e", "count": 1},
        {"item_id": "e", "neighbor_id": "e", "count": 1},
    ]


def test_partial_keeps_a_session_at_the_cap(events: EventsFactory) -> None:
    day = _sessions(events, {"s": ["a", "b", "c", "a"]}, D1)  # 3 distinct items = cap 3
    assert cooc.partial(day, CAP, DEFAULT_EVENT_WEIGHTS).num_rows == 6  # 3 diagonal + 3 pairs


def test_build_mirrors_pairs_and_scores_by_cosine(events: EventsFactory) -> None:
    out = cooc.build(_partials(events), WINDOW, ComputeParams(cooc_min_support=2, cooc_top_k=10, cooc_shrink=0))
    assert out.schema == cooc.SCHEMA
    # window sessions: a 2 + 1 = 3, b 3, c 2 + 2 = 4; pairs: ab 2, ac 1 + 1 = 2, bc 2, de 1 (< support 2: dropped)
    assert out.select(["item_id", "neighbor_id", "count", "rank"]).to_pylist() == [
        {"item_id": "a", "neighbor_id": "b", "count": 2, "rank": 1},  # 2 / sqrt(3 * 3) beats 2 / sqrt(3 * 4)
        {"item_id": "a", "neighbor_id": "c", "count": 2, "rank": 2},
        {"item_id": "b", "neighbor_id": "a", "count": 2, "rank": 1},
        {"item_id": "b", "neighbor_id": "c", "count": 2, "rank": 2},
        {"item_id": "c", "neighbor_id": "a", "count": 2, "rank": 1},  # tie 2 / sqrt(12) both: neighbor_id asc
        {"item_id": "c", "neighbor_id": "b", "count": 2, "rank": 2},
    ]
    assert out.column("score").to_pylist() == pytest.approx(
        [
            0.6666666666666666,  # 2 / sqrt(3 * 3)
            0.5773502691896258,  # 2 / sqrt(3 * 4)
            0.6666666666666666,  # 2 / sqrt(3 * 3)
            0.5773502691896258,  # 2 / sqrt(3 * 4)
            0.5773502691896258,  # 2 / sqrt(4 * 3)
            0.5773502691896258,  # 2 / sqrt(4 * 3)
        ]
    )


def test_build_min_support_and_top_k(events: EventsFactory) -> None:
    out = cooc.build(_partials(events), WINDOW, ComputeParams(cooc_min_support=1, cooc_top_k=1, cooc_shrink=0))
    assert out.to_pylist() == [
        {"item_id": "a", "neighbor_id": "b", "count": 2, "score": pytest.approx(0.6666666666666666), "rank": 1},
        {"item_id": "b", "neighbor_id": "a", "count": 2, "score": pytest.approx(0.6666666666666666), "rank": 1},
        {"item_id": "c", "neighbor_id": "a", "count": 2, "score": pytest.approx(0.5773502691896258), "rank": 1},
        {"item_id": "d", "neighbor_id": "e", "count": 1, "score": 1.0, "rank": 1},  # 1 / sqrt(1 * 1)
        {"item_id": "e", "neighbor_id": "d", "count": 1, "score": 1.0, "rank": 1},
    ]


def test_shrink_pulls_pairs_of_rare_items_towards_zero(events: EventsFactory) -> None:
    # the defaults: minimum support 1, shrink 5. de: 1 / (sqrt(1 * 1) + 5) = 1/6 ; ab: 2 / (sqrt(3 * 3) + 5) = 0.25
    out = cooc.build(_partials(events), WINDOW, ComputeParams())
    scores = {(row["item_id"], row["neighbor_id"]): row["score"] for row in out.to_pylist()}
    assert scores[("d", "e")] == pytest.approx(1 / 6) and scores[("a", "b")] == pytest.approx(0.25)
    assert scores[("a", "b")] > scores[("d", "e")]  # a plain cosine puts d-e (1.0) above a-b (0.67)


def test_build_ranks_count_before_score(events: EventsFactory) -> None:
    day = _sessions(
        events,
        {"s1": ["x", "y"], "s2": ["x", "y"], "s3": ["x", "z"], "s4": ["y"], "s5": ["y"], "s6": ["y"], "s7": ["y"]},
        D1,
    )
    partials = [(D1, cooc.partial(day, CAP, DEFAULT_EVENT_WEIGHTS))]
    out = cooc.build(partials, Window(start=D1, end=D1), ComputeParams(cooc_min_support=1, cooc_shrink=0))
    x = out.filter(pc.equal(out.column("item_id"), "x")).to_pylist()
    # sessions x 3, y 6, z 1: xy count 2 score 2 / sqrt(18) ranks above xz count 1 score 1 / sqrt(3)
    assert [(row["neighbor_id"], row["count"], row["rank"]) for row in x] == [("y", 2, 1), ("z", 1, 2)]
    assert [row["score"] for row in x] == pytest.approx([0.4714045207910317, 0.5773502691896258])


def test_build_of_empty_days_is_empty() -> None:
    out = cooc.build([(D1, pa.table({})), (D2, cooc.PARTIAL_SCHEMA.empty_table())], WINDOW, ComputeParams())
    assert out.schema == cooc.SCHEMA
    assert out.num_rows == 0


def test_partial_and_build_are_deterministic(events: EventsFactory) -> None:
    first, second = _partials(events), _partials(events)
    assert [table for _, table in first] == [table for _, table in second]
    params = ComputeParams(cooc_min_support=1)
    assert cooc.build(first, WINDOW, params).equals(cooc.build(second[::-1], WINDOW, params))
