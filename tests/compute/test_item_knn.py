"""item_knn: distinct (user, item) partials, per-user cap, shrunk cosine over shared users, support and top-k."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from recsys import paths
from recsys.compute import EVENT_KINDS, item_knn, pairs
from recsys.compute.artifact import content_version
from recsys.compute.service import compute_kind
from recsys.days import Window
from recsys.events.contract import CANONICAL_SCHEMA
from recsys.settings import ARTIFACT_KINDS, DEFAULT_EVENT_WEIGHTS, ComputeParams, Settings
from recsys.store import FileSystemStore
from recsys.tables import from_parquet, to_parquet
from tests.compute.conftest import canonical_events

EventsFactory = Callable[..., pa.Table]

D1, D2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)
WINDOW = Window(start=D1, end=D2)
NO_SHRINK = ComputeParams(item_knn_shrink=0.0)


def _day(events: EventsFactory, users: dict[str | None, list[str]], day: dt.date) -> pa.Table:
    """One day of events: user -> the items they interacted with (user None: an anonymous session)."""
    rows = [
        {"user_id": user, "session_id": f"session-{user}", "item_id": item, "ts": position}
        for user, items in users.items()
        for position, item in enumerate(items)
    ]
    return events(rows, day=day)


def _partial(events: EventsFactory, users: dict[str | None, list[str]], day: dt.date = D1) -> tuple[dt.date, pa.Table]:
    return day, item_knn.partial(_day(events, users, day), ComputeParams(), DEFAULT_EVENT_WEIGHTS)


def _toy(events: EventsFactory) -> list[tuple[dt.date, pa.Table]]:
    # Over the window: u1 {a, b, c}, u2 {a, b}, u3 {a, b, c, d}, u4 {c, d}; the anonymous session is ignored.
    return [
        _partial(events, {"u1": ["a", "b", "a"], "u2": ["a", "b"], "u3": ["a", "b", "c"], None: ["a", "d", "e"]}, D1),
        _partial(events, {"u1": ["c"], "u3": ["d", "a"], "u4": ["c", "d", "d"]}, D2),
    ]


def _rows(table: pa.Table) -> list[tuple[str, str, int, int]]:
    return [(r["item_id"], r["neighbor_id"], r["count"], r["rank"]) for r in table.to_pylist()]


def test_the_kind_is_registered_after_session_seq() -> None:
    assert EVENT_KINDS["item_knn"] is item_knn and item_knn.KIND == "item_knn"
    assert ARTIFACT_KINDS[-2:] == ("session_seq", "item_knn")
    assert Settings().kinds[-1] == "item_knn"
    params = ComputeParams()
    assert (params.item_knn_top_k, params.item_knn_min_support, params.item_knn_shrink) == (50, 2, 10.0)
    assert params.item_knn_max_items_per_user == 200


def test_partial_is_the_distinct_user_item_pairs_of_known_users(events: EventsFactory) -> None:
    (_, day1), (_, day2) = _toy(events)
    assert day1.schema == item_knn.PARTIAL_SCHEMA
    assert day1.to_pylist() == [
        {"user_id": "u1", "item_id": "a"},  # a twice: once
        {"user_id": "u1", "item_id": "b"},
        {"user_id": "u2", "item_id": "a"},
        {"user_id": "u2", "item_id": "b"},
        {"user_id": "u3", "item_id": "a"},
        {"user_id": "u3", "item_id": "b"},
        {"user_id": "u3", "item_id": "c"},
        # the anonymous session's a, d, e: no rows
    ]
    assert day2.to_pylist() == [
        {"user_id": "u1", "item_id": "c"},
        {"user_id": "u3", "item_id": "a"},
        {"user_id": "u3", "item_id": "d"},
        {"user_id": "u4", "item_id": "c"},
        {"user_id": "u4", "item_id": "d"},
    ]


def test_partial_of_only_anonymous_events_is_empty(events: EventsFactory) -> None:
    _, table = _partial(events, {None: ["a", "b"]})
    assert table.schema == item_knn.PARTIAL_SCHEMA and table.num_rows == 0


def test_build_scores_shared_users_by_shrunk_cosine(events: EventsFactory) -> None:
    out = item_knn.build(_toy(events), WINDOW, ComputeParams())  # shrink 10, min support 2, top k 50
    assert out.schema == item_knn.SCHEMA
    # users: a {u1 u2 u3} 3, b {u1 u2 u3} 3, c {u1 u3 u4} 3, d {u3 u4} 2
    # shared: ab 3 (u1 u2 u3), ac 2 (u1 u3), bc 2 (u1 u3), cd 2 (u3 u4), ad 1 and bd 1 (u3: < support 2, dropped)
    assert _rows(out) == [
        ("a", "b", 3, 1),
        ("a", "c", 2, 2),
        ("b", "a", 3, 1),
        ("b", "c", 2, 2),
        ("c", "d", 2, 1),  # 2 / (sqrt(3 * 2) + 10) beats 2 / (sqrt(3 * 3) + 10)
        ("c", "a", 2, 2),  # tie with b on score and count: neighbor_id asc
        ("c", "b", 2, 3),
        ("d", "c", 2, 1),
    ]
    assert out.column("score").to_pylist() == pytest.approx(
        [
            0.23076923076923078,  # 3 / (sqrt(3 * 3) + 10) = 3 / 13
            0.15384615384615385,  # 2 / (sqrt(3 * 3) + 10) = 2 / 13
            0.23076923076923078,  # 3 / 13
            0.15384615384615385,  # 2 / 13
            0.16064915440886854,  # 2 / (sqrt(6) + 10) = 2 / 12.449489742783178
            0.15384615384615385,  # 2 / 13
            0.15384615384615385,  # 2 / 13
            0.16064915440886854,  # 2 / (sqrt(6) + 10)
        ]
    )


def test_build_without_shrink_is_the_cosine(events: EventsFactory) -> None:
    out = item_knn.build(_toy(events), WINDOW, NO_SHRINK)
    assert out.column("score").to_pylist() == pytest.approx(
        [
            1.0,  # ab: 3 / sqrt(3 * 3)
            0.6666666666666666,  # ac: 2 / sqrt(3 * 3)
            1.0,
            0.6666666666666666,
            0.8164965809277261,  # cd: 2 / sqrt(3 * 2)
            0.6666666666666666,
            0.6666666666666666,
            0.8164965809277261,
        ]
    )


def test_shrinkage_ranks_well_supported_pairs_above_rare_perfect_ones(events: EventsFactory) -> None:
    # x: u1..u4; y: u1 u2; z: u1..u9. x-y: 2 shared of |x| 4 and |y| 2; x-z: 4 shared of |x| 4 and |z| 9.
    users: dict[str | None, list[str]] = {f"u{n}": ["x", "z"] for n in range(1, 5)}
    users["u1"] = ["x", "y", "z"]
    users["u2"] = ["x", "y", "z"]
    users.update({f"u{n}": ["z"] for n in range(5, 10)})
    partials = [_partial(events, users)]

    def neighbours_of_x(params: ComputeParams) -> list[tuple[str, float]]:
        out = item_knn.build(partials, Window(start=D1, end=D1), params)
        x = out.filter(pc.equal(out.column("item_id"), "x")).to_pylist()
        return [(row["neighbor_id"], row["score"]) for row in x]

    # without shrink: y 2 / sqrt(4 * 2) = 0.7071 above z 4 / sqrt(4 * 9) = 0.6667
    assert neighbours_of_x(NO_SHRINK) == [("y", pytest.approx(0.7071067811865475)), ("z", pytest.approx(2 / 3))]
    # shrink 10: z 4 / (6 + 10) = 0.25 above y 2 / (2.8284 + 10) = 0.1559
    assert neighbours_of_x(ComputeParams(item_knn_shrink=10.0)) == [
        ("z", pytest.approx(0.25)),
        ("y", pytest.approx(0.15590375815769153)),
    ]


def test_build_min_support(events: EventsFactory) -> None:
    out = item_knn.build(_toy(events), WINDOW, ComputeParams(item_knn_min_support=1, item_knn_shrink=0.0))
    a = out.filter(pc.equal(out.column("item_id"), "a"))
    # ad: 1 shared user (u3), 1 / sqrt(3 * 2) = 0.4082: kept with support 1, ranked after ac 2 / 3
    assert _rows(a) == [("a", "b", 3, 1), ("a", "c", 2, 2), ("a", "d", 1, 3)]
    assert a.column("score").to_pylist() == pytest.approx([1.0, 0.6666666666666666, 0.4082482904638631])
    only_ab = item_knn.build(_toy(events), WINDOW, ComputeParams(item_knn_min_support=3))
    assert _rows(only_ab) == [("a", "b", 3, 1), ("b", "a", 3, 1)]  # c and d have no pair of 3 shared users
    assert item_knn.build(_toy(events), WINDOW, ComputeParams(item_knn_min_support=4)).num_rows == 0


def test_build_top_k_breaks_score_ties_on_count_then_neighbor_id(events: EventsFactory) -> None:
    out = item_knn.build(_toy(events), WINDOW, ComputeParams(item_knn_top_k=2))
    c = out.filter(pc.equal(out.column("item_id"), "c"))
    assert _rows(c) == [("c", "d", 2, 1), ("c", "a", 2, 2)]  # a and b tie at 2 / 13: b is cut

    # An exact score tie between a smaller and a larger count: the larger count first, whatever the neighbour id.
    # p: u1..u4 (4); q: u1 u2 (2), 2 shared; r: u1..u8 (8), 4 shared. Without shrink:
    # q 2 / sqrt(4 * 2) = 2 / sqrt(8) and r 4 / sqrt(4 * 8) = 4 / (2 * sqrt(8)): the same float64
    users: dict[str | None, list[str]] = {f"u{n}": ["p", "r"] for n in range(1, 5)}
    users["u1"] = ["p", "q", "r"]
    users["u2"] = ["p", "q", "r"]
    users.update({f"u{n}": ["r"] for n in range(5, 9)})
    tied = item_knn.build([_partial(events, users)], Window(start=D1, end=D1), NO_SHRINK)
    p = tied.filter(pc.equal(tied.column("item_id"), "p")).to_pylist()
    assert [(row["neighbor_id"], row["count"], row["rank"]) for row in p] == [("r", 4, 1), ("q", 2, 2)]
    assert p[0]["score"] == p[1]["score"] == pytest.approx(0.7071067811865475)


def test_build_caps_each_user_to_their_most_interacted_items(events: EventsFactory) -> None:
    # u1 sees a and b on both days, c and d on one: with a cap of 2 only a and b count for u1.
    # u2 sees c and d on one day each: tie on days, item_id asc keeps c and drops e.
    partials = [
        _partial(events, {"u1": ["a", "b", "c"], "u2": ["c", "e"], "u3": ["a", "b"], "u4": ["c", "e"]}, D1),
        _partial(events, {"u1": ["a", "b", "d"], "u3": ["c"]}, D2),
    ]
    params = ComputeParams(item_knn_max_items_per_user=2, item_knn_shrink=0.0)
    out = item_knn.build(partials, WINDOW, params)
    # capped: u1 {a, b}, u2 {c, e}, u3 {a, b} (a, b on 1 day each, c too: c > b), u4 {c, e}
    # users: a 2, b 2, c 2, e 2; ab 2 (u1 u3) -> 1.0, ce 2 (u2 u4) -> 1.0; ac, bc 1 < support 2
    assert _rows(out) == [("a", "b", 2, 1), ("b", "a", 2, 1), ("c", "e", 2, 1), ("e", "c", 2, 1)]
    assert out.column("score").to_pylist() == [1.0, 1.0, 1.0, 1.0]
    uncapped = item_knn.build(partials, WINDOW, ComputeParams(item_knn_shrink=0.0))
    # without the cap: u1 {a b c d}, u3 {a b c}: a 2, b 2, c 4 (u1 u2 u3 u4); ac 2 -> 2 / sqrt(2 * 4)
    a = uncapped.filter(pc.equal(uncapped.column("item_id"), "a"))
    assert _rows(a) == [("a", "b", 2, 1), ("a", "c", 2, 2)]
    assert a.column("score").to_pylist() == pytest.approx([1.0, 0.7071067811865475])


def test_build_of_empty_days_is_empty() -> None:
    out = item_knn.build([(D1, pa.table({})), (D2, item_knn.PARTIAL_SCHEMA.empty_table())], WINDOW, ComputeParams())
    assert out.schema == item_knn.SCHEMA
    assert out.num_rows == 0


def test_partial_and_build_are_deterministic(events: EventsFactory) -> None:
    first, second = _toy(events), _toy(events)
    assert [table for _, table in first] == [table for _, table in second]
    # a partial read back from its Parquet (what a later window reuses) builds the same artifact, in any day order
    reused = [
        (day, from_parquet(to_parquet(table, item_knn.PARTIAL_SCHEMA, kind="item_knn.partial")))
        for day, table in second
    ]
    params = ComputeParams()
    built = item_knn.build(first, WINDOW, params)
    assert built.equals(item_knn.build(reused[::-1], WINDOW, params))
    assert content_version(built, item_knn.SCHEMA) == content_version(
        item_knn.build(reused, WINDOW, params), item_knn.SCHEMA
    )


def test_the_user_batches_of_the_pair_count_do_not_change_the_result(
    events: EventsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = item_knn.build(_toy(events), WINDOW, ComputeParams(item_knn_min_support=1))
    for budget in (1, 2, 5, 13):
        monkeypatch.setattr(pairs, "BATCH_PAIRS", budget)
        assert item_knn.build(_toy(events), WINDOW, ComputeParams(item_knn_min_support=1)).equals(whole)


def test_partial_does_not_depend_on_event_order(events: EventsFactory) -> None:
    day = _day(events, {"u1": ["a", "b"], "u2": ["b", "c"]}, D1)
    assert item_knn.partial(day, ComputeParams(), DEFAULT_EVENT_WEIGHTS).equals(
        item_knn.partial(day.take(pa.array([3, 1, 2, 0])), ComputeParams(), DEFAULT_EVENT_WEIGHTS)
    )


def test_compute_kind_reuses_the_days_partials(store: FileSystemStore) -> None:
    rows = {
        D1: {"u1": ["a", "b"], "u2": ["a", "b"], "u3": ["b", "c"]},
        D2: {"u1": ["c"], "u3": ["a"]},
    }
    for day, users in rows.items():
        table = _day(canonical_events, users, day)
        store.create(paths.canonical_events("t", "s", day), to_parquet(table, CANONICAL_SCHEMA, kind="canonical"))
    settings = Settings(compute=ComputeParams(item_knn_shrink=0.0))
    first = compute_kind(store, "item_knn", "t", "s", WINDOW, settings)
    assert (first.written, first.partials_built, first.partials_reused) == (True, 2, 0)
    # knobs used only by build do not invalidate the partials
    again = compute_kind(store, "item_knn", "t", "s", WINDOW, Settings(compute=ComputeParams(item_knn_top_k=1)))
    assert (again.partials_built, again.partials_reused) == (0, 2)
    second = compute_kind(store, "item_knn", "t", "s", WINDOW, settings)
    assert (second.written, second.partials_built, second.partials_reused) == (False, 0, 2)
    assert second.artifact.version == first.artifact.version
    # u1 {a b c}, u2 {a b}, u3 {a b c}: a 3, b 3, c 2; ab 3 -> 1.0, ac 2 and bc 2 -> 2 / sqrt(6)
    assert (first.artifact.rows, first.artifact.keys) == (6, 3)
