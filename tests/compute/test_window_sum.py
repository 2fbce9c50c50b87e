"""The window sum of the additive kinds (cooc, session_seq, item_knn): rolled day by day, it is exactly the sum of
the window's partials, and the artifact built from it is the artifact built from the partials."""

from __future__ import annotations

import datetime as dt
import random

import pyarrow as pa
import pytest

from recsys import paths
from recsys.compute import EVENT_KINDS
from recsys.compute.service import compute_kind
from recsys.compute.window_sum import KEY_TYPE
from recsys.contract.kinds import KINDS
from recsys.days import Window
from recsys.events.contract import CANONICAL_SCHEMA
from recsys.settings import DEFAULT_EVENT_WEIGHTS, ComputeParams, Settings
from recsys.store import FileSystemStore
from recsys.tables import from_parquet, to_parquet
from tests.compute.conftest import canonical_events

ADDITIVE = [name for name in EVENT_KINDS if KINDS.get(name).window_sum is not None]
START = dt.date(2026, 3, 1)
# Small thresholds, so that the toy days give every kind rows.
PARAMS = ComputeParams(cooc_min_support=1, item_knn_min_support=1, item_knn_max_items_per_user=4)


def _random_day(seed: int, day: dt.date, events: int) -> pa.Table:
    """`events` events of a few users and sessions over a pool of items that shifts with the day, so that items
    enter and leave the window (and the sum's dictionaries)."""
    rng = random.Random(seed)
    pool = [f"i{n:03d}" for n in range(seed % 5, seed % 5 + 12)]
    rows = []
    for n in range(events):
        user = rng.randrange(6)
        rows.append(
            {
                "item_id": rng.choice(pool),
                "session_id": f"s{user}-{rng.randrange(2)}",
                "user_id": f"u{user}" if user else None,
                "ts": n * 7 % 500,
            }
        )
    return canonical_events(rows, day)


def _days(count: int) -> list[tuple[dt.date, pa.Table]]:
    days = []
    for n in range(count):
        day = START + dt.timedelta(days=n)
        days.append((day, _random_day(n, day, 0 if n == 4 else 30 + 7 * n)))  # day 4 is empty
    return days


def test_the_additive_kinds_are_declared() -> None:
    assert ADDITIVE == ["cooc", "session_seq", "item_knn"]


def _values(window_sum: pa.Table) -> pa.Table:
    """The sum's values: its keys as plain strings (a sum's dictionaries may hold them in any order)."""
    return window_sum.cast(
        pa.schema([field.with_type(pa.string()) if field.type == KEY_TYPE else field for field in window_sum.schema])
    )


@pytest.mark.parametrize("length", [2, 3])
@pytest.mark.parametrize("name", ADDITIVE)
def test_a_rolled_window_sum_is_the_sum_of_its_days(name: str, length: int) -> None:
    # Day 4 is empty: windows of 2 days around it hold a single partial (its own sum) or none.
    kind = KINDS.get(name)
    partials = [(day, kind.partial(table, PARAMS, DEFAULT_EVENT_WEIGHTS)) for day, table in _days(9)]
    rolled = kind.window_sum.of_partials([partial for _, partial in partials[:length]])
    for first in range(1, len(partials) - length + 1):
        days = partials[first : first + length]
        rolled = kind.window_sum.roll(rolled, [days[-1][1]], [partials[first - 1][1]])
        summed = kind.window_sum.of_partials([partial for _, partial in days])
        assert rolled.schema == summed.schema == kind.window_sum.schema
        assert _values(rolled).equals(_values(summed)), f"{name}: window starting on day {first}"
        window = Window(start=days[0][0], end=days[-1][0])
        assert kind.build_from_sum(rolled, window, PARAMS).equals(kind.build(days, window, PARAMS))


def test_dropping_a_day_the_sum_did_not_count_is_an_error() -> None:
    kind = KINDS.get("cooc")
    first, second = (kind.partial(table, PARAMS, DEFAULT_EVENT_WEIGHTS) for _, table in _days(2))
    with pytest.raises(ValueError, match="fell below 0"):
        kind.window_sum.roll(kind.window_sum.of_partials([first]), [], [second])


def test_a_window_without_events_sums_to_an_empty_table() -> None:
    window_sum = KINDS.get("item_knn").window_sum
    assert window_sum.of_partials([]).equals(window_sum.schema.empty_table())
    assert window_sum.of_partials([pa.table({})]).num_rows == 0


def _ingest(store: FileSystemStore, day: dt.date, table: pa.Table) -> None:
    store.put(paths.canonical_events("t", "s", day), to_parquet(table, CANONICAL_SCHEMA, kind="canonical"))


def _window(first: int, length: int = 3) -> Window:
    return Window(start=START + dt.timedelta(days=first), end=START + dt.timedelta(days=first + length - 1))


@pytest.mark.parametrize("name", ADDITIVE)
def test_the_daily_window_rolls_and_equals_a_full_rebuild(tmp_path, name: str) -> None:
    settings = Settings(compute=PARAMS)
    days = _days(7)
    daily = FileSystemStore(tmp_path / "daily")
    for day, table in days:
        _ingest(daily, day, table)
    assert compute_kind(daily, name, "t", "s", _window(0), settings).window_sum == "summed"
    for first in (1, 2, 3, 4):
        result = compute_kind(daily, name, "t", "s", _window(first), settings)
        assert (result.window_sum, result.partials_built, result.partials_reused) == ("rolled", 1, 2)
        fresh = FileSystemStore(tmp_path / f"fresh-{first}")
        for day, table in days:
            _ingest(fresh, day, table)
        rebuilt = compute_kind(fresh, name, "t", "s", _window(first), settings)
        assert rebuilt.window_sum == "summed"
        assert result.artifact.version == rebuilt.artifact.version, f"{name}: window starting on day {first}"
    again = compute_kind(daily, name, "t", "s", _window(4), settings)
    assert (again.window_sum, again.written, again.artifact.version) == ("reused", False, result.artifact.version)
    # One day of a window 1 day long is its own partial: no window sum is stored for it.
    assert compute_kind(daily, name, "t", "s", _window(4, length=1), settings).window_sum == ""


def test_a_day_ingested_again_is_never_rolled_from_a_stale_sum(tmp_path) -> None:
    settings = Settings(compute=PARAMS)
    store = FileSystemStore(tmp_path / "store")
    for day, table in _days(5):
        _ingest(store, day, table)
    compute_kind(store, "cooc", "t", "s", _window(0), settings)
    # Day 2 is ingested again with other events: the sum of days 0..2 no longer describes the window before.
    _ingest(store, START + dt.timedelta(days=2), _random_day(99, START + dt.timedelta(days=2), 40))
    result = compute_kind(store, "cooc", "t", "s", _window(1), settings)
    assert result.window_sum == "summed"
    fresh = FileSystemStore(tmp_path / "fresh")
    for n in (1, 2, 3):
        day = START + dt.timedelta(days=n)
        _ingest(fresh, day, from_parquet(store.get(paths.canonical_events("t", "s", day)).data))
    assert compute_kind(fresh, "cooc", "t", "s", _window(1), settings).artifact.version == result.artifact.version


def test_knobs_of_the_partial_name_another_window_sum(tmp_path) -> None:
    store = FileSystemStore(tmp_path / "store")
    for day, table in _days(4):
        _ingest(store, day, table)
    compute_kind(store, "cooc", "t", "s", _window(0), Settings(compute=PARAMS))
    assert compute_kind(store, "cooc", "t", "s", _window(1), Settings(compute=PARAMS)).window_sum == "rolled"
    # A knob only the build reads keeps the sum; one the partials depend on names other partials and sums.
    top_1 = Settings(compute=PARAMS.model_copy(update={"cooc_top_k": 1}))
    assert compute_kind(store, "cooc", "t", "s", _window(1), top_1).window_sum == "reused"
    other = Settings(compute=PARAMS.model_copy(update={"cooc_max_items_per_session": 2}))
    assert compute_kind(store, "cooc", "t", "s", _window(1), other).window_sum == "summed"
