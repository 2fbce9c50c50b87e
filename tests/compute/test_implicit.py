"""implicit: per-user item scores from known users' events, decayed, with the latest event time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pyarrow as pa

from recsys.compute import implicit
from recsys.days import Window
from recsys.settings import DEFAULT_EVENT_WEIGHTS, ComputeParams

EventsFactory = Callable[..., pa.Table]

D1, D2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)
WINDOW = Window(start=D1, end=D2)
HOUR = 3600


def _ts(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=dt.UTC)


def _partials(events: EventsFactory) -> list[tuple[dt.date, pa.Table]]:
    day1 = events(
        [
            {"user_id": "u1", "session_id": "s1", "item_id": "a", "event_type": "click", "ts": 8 * HOUR},
            {"user_id": "u1", "session_id": "s1", "item_id": "a", "event_type": "exposure", "ts": 9 * HOUR},
            {"user_id": "u1", "session_id": "s1", "item_id": "b", "event_type": "purchase", "ts": 10 * HOUR},
            {"user_id": None, "session_id": "s2", "item_id": "c", "event_type": "purchase", "ts": 11 * HOUR},
            {"user_id": "u2", "session_id": "s3", "item_id": "a", "event_type": "exposure", "ts": 12 * HOUR},
        ],
        day=D1,
    )
    day2 = events(
        [
            {"user_id": "u1", "session_id": "s4", "item_id": "a", "event_type": "click", "ts": 7 * HOUR},
            {"user_id": "u3", "session_id": "s5", "item_id": "y", "event_type": "click", "ts": 6 * HOUR},
            {"user_id": "u3", "session_id": "s5", "item_id": "x", "event_type": "click", "ts": 6 * HOUR},
        ],
        day=D2,
    )
    params = ComputeParams()
    return [
        (D1, implicit.partial(day1, params, DEFAULT_EVENT_WEIGHTS)),
        (D2, implicit.partial(day2, params, DEFAULT_EVENT_WEIGHTS)),
    ]


def test_partial_ignores_anonymous_events_and_keeps_the_latest_ts(events: EventsFactory) -> None:
    (_, day1), _ = _partials(events)
    assert day1.schema == implicit.PARTIAL_SCHEMA
    assert day1.to_pylist() == [
        {"user_id": "u1", "item_id": "a", "score": 4.0, "count": 2, "last_ts": _ts(D1, 9)},  # click 3 + exposure 1
        {"user_id": "u1", "item_id": "b", "score": 10.0, "count": 1, "last_ts": _ts(D1, 10)},
        {"user_id": "u2", "item_id": "a", "score": 1.0, "count": 1, "last_ts": _ts(D1, 12)},
    ]  # the anonymous purchase of c is absent


def test_build_decays_and_breaks_ties_on_last_ts_then_item_id(events: EventsFactory) -> None:
    out = implicit.build(_partials(events), WINDOW, ComputeParams(implicit_half_life_days=1.0))
    assert out.schema == implicit.SCHEMA
    assert out.to_pylist() == [
        # u1: a = 4 * 0.5 + 3 = 5.0 and b = 10 * 0.5 = 5.0 tie; a's last event (day 2) is more recent
        {"user_id": "u1", "item_id": "a", "score": 5.0, "count": 3, "last_ts": _ts(D2, 7), "rank": 1},
        {"user_id": "u1", "item_id": "b", "score": 5.0, "count": 1, "last_ts": _ts(D1, 10), "rank": 2},
        {"user_id": "u2", "item_id": "a", "score": 0.5, "count": 1, "last_ts": _ts(D1, 12), "rank": 1},  # 1 * 0.5
        # u3: x and y tie on score 3 and last_ts: item_id asc
        {"user_id": "u3", "item_id": "x", "score": 3.0, "count": 1, "last_ts": _ts(D2, 6), "rank": 1},
        {"user_id": "u3", "item_id": "y", "score": 3.0, "count": 1, "last_ts": _ts(D2, 6), "rank": 2},
    ]


def test_build_keeps_every_item_of_a_long_history(events: EventsFactory) -> None:
    # The row is the user's seen set (exclude-seen): no cap, however long the history.
    day = events(
        [
            {"user_id": "u1", "session_id": "s1", "item_id": f"i{n:04d}", "event_type": "click", "ts": n}
            for n in range(1000)
        ],
        day=D1,
    )
    part = implicit.partial(day, ComputeParams(), DEFAULT_EVENT_WEIGHTS)
    out = implicit.build([(D1, part)], WINDOW, ComputeParams(implicit_half_life_days=None))
    assert out.num_rows == 1000
    assert sorted(out.column("item_id").to_pylist()) == [f"i{n:04d}" for n in range(1000)]
    assert out.column("rank").to_pylist() == list(range(1, 1001))


def test_partial_of_only_anonymous_events_is_empty(events: EventsFactory) -> None:
    day = events([{"session_id": "s", "item_id": "a", "event_type": "click"}])
    part = implicit.partial(day, ComputeParams(), DEFAULT_EVENT_WEIGHTS)
    assert part.schema == implicit.PARTIAL_SCHEMA
    assert part.num_rows == 0
    out = implicit.build([(D1, part), (D2, pa.table({}))], WINDOW, ComputeParams())
    assert out.schema == implicit.SCHEMA
    assert out.num_rows == 0
