"""session_seq: item -> next item transitions within a session, ordered by ts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pyarrow as pa

from recsys.compute import session_seq
from recsys.days import Window
from recsys.settings import DEFAULT_EVENT_WEIGHTS, ComputeParams

EventsFactory = Callable[..., pa.Table]

D1, D2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)
WINDOW = Window(start=D1, end=D2)
PARAMS = ComputeParams()


def _day1(events: EventsFactory) -> pa.Table:
    return events(
        [
            # s1 given out of order: by ts it is a, b, b (repeat), c
            {"session_id": "s1", "item_id": "c", "ts": 30},
            {"session_id": "s1", "item_id": "b", "ts": 20},
            {"session_id": "s1", "item_id": "a", "ts": 0},
            {"session_id": "s1", "item_id": "b", "ts": 10, "event_type": "click"},
            # s2: x and y at the same ts, canonical order puts x (item_id asc) first: x, y, x
            {"session_id": "s2", "item_id": "y", "ts": 0},
            {"session_id": "s2", "item_id": "x", "ts": 0},
            {"session_id": "s2", "item_id": "x", "ts": 5},
            # s3 interleaves in time with s1: a, c
            {"session_id": "s3", "item_id": "a", "ts": 1},
            {"session_id": "s3", "item_id": "c", "ts": 40},
            # a single-event session has no transition
            {"session_id": "s4", "item_id": "z", "ts": 2},
        ],
        day=D1,
    )


def _partials(events: EventsFactory) -> list[tuple[dt.date, pa.Table]]:
    day2 = events(
        [
            {"session_id": "s1", "item_id": "a", "ts": 0},
            {"session_id": "s1", "item_id": "b", "ts": 1},
            {"session_id": "s9", "item_id": "a", "ts": 0},
            {"session_id": "s9", "item_id": "d", "ts": 1},
        ],
        day=D2,
    )
    return [
        (D1, session_seq.partial(_day1(events), PARAMS, DEFAULT_EVENT_WEIGHTS)),
        (D2, session_seq.partial(day2, PARAMS, DEFAULT_EVENT_WEIGHTS)),
    ]


def test_partial_orders_by_ts_and_skips_repeats(events: EventsFactory) -> None:
    part = session_seq.partial(_day1(events), PARAMS, DEFAULT_EVENT_WEIGHTS)
    assert part.schema == session_seq.PARTIAL_SCHEMA
    assert part.to_pylist() == [
        {"item_id": "a", "next_item_id": "b", "count": 1},  # s1
        {"item_id": "a", "next_item_id": "c", "count": 1},  # s3 (not s1's a -> ... across sessions)
        {"item_id": "b", "next_item_id": "c", "count": 1},  # s1, after skipping b -> b
        {"item_id": "x", "next_item_id": "y", "count": 1},  # s2
        {"item_id": "y", "next_item_id": "x", "count": 1},  # s2
    ]


def test_partial_does_not_depend_on_input_row_order(events: EventsFactory) -> None:
    day = _day1(events)
    shuffled = day.take(pa.array([9, 3, 0, 7, 1, 8, 2, 6, 4, 5]))
    assert session_seq.partial(shuffled, PARAMS, DEFAULT_EVENT_WEIGHTS).equals(
        session_seq.partial(day, PARAMS, DEFAULT_EVENT_WEIGHTS)
    )


def test_build_scores_by_share_of_transitions_out(events: EventsFactory) -> None:
    out = session_seq.build(_partials(events), WINDOW, PARAMS)
    assert out.schema == session_seq.SCHEMA
    # out of a: b 1 + 1 = 2, c 1, d 1 -> total 4
    assert out.to_pylist() == [
        {"item_id": "a", "next_item_id": "b", "count": 2, "score": 0.5, "rank": 1},  # 2 / 4
        {"item_id": "a", "next_item_id": "c", "count": 1, "score": 0.25, "rank": 2},  # 1 / 4, c < d
        {"item_id": "a", "next_item_id": "d", "count": 1, "score": 0.25, "rank": 3},  # 1 / 4
        {"item_id": "b", "next_item_id": "c", "count": 1, "score": 1.0, "rank": 1},  # 1 / 1
        {"item_id": "x", "next_item_id": "y", "count": 1, "score": 1.0, "rank": 1},
        {"item_id": "y", "next_item_id": "x", "count": 1, "score": 1.0, "rank": 1},
    ]


def test_build_top_k_keeps_scores_over_all_transitions(events: EventsFactory) -> None:
    out = session_seq.build(_partials(events), WINDOW, ComputeParams(session_seq_top_k=1))
    a = out.to_pylist()[0]
    assert (a["item_id"], a["next_item_id"], a["score"], a["rank"]) == ("a", "b", 0.5, 1)  # still 2 / 4
    assert out.num_rows == 4  # one row for each of a, b, x, y


def test_empty_and_single_event_days(events: EventsFactory) -> None:
    single = events([{"session_id": "s", "item_id": "a"}])
    part = session_seq.partial(single, PARAMS, DEFAULT_EVENT_WEIGHTS)
    assert part.schema == session_seq.PARTIAL_SCHEMA
    assert part.num_rows == 0
    out = session_seq.build([(D1, part), (D2, pa.table({}))], WINDOW, PARAMS)
    assert out.schema == session_seq.SCHEMA
    assert out.num_rows == 0
