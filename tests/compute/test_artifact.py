"""Shared helpers: content versions, deterministic Parquet, decay and per-group top-k."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recsys.compute import EVENT_KINDS
from recsys.compute.artifact import content_version, decay_weight, from_parquet, to_parquet
from recsys.days import Window
from recsys.settings import DEFAULT_EVENT_WEIGHTS, ComputeParams
from tests.compute.conftest import canonical_events

SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("score", pa.float64()),
        pa.field("ts", pa.timestamp("us", tz="UTC")),
        pa.field("tags", pa.list_(pa.string())),
    ]
)


def _table() -> pa.Table:
    return pa.table(
        {
            "key": ["a", "b", "c", "d", "e"],
            "score": [1.5, None, 3.0, None, 0.25],
            "ts": [1, 2, None, 4, 5],
            "tags": [["x", "y"], None, [], ["z", None], ["x"]],
        },
        schema=SCHEMA,
    )


def test_content_version_ignores_chunking() -> None:
    table = _table()
    chunked = pa.concat_tables([table.slice(0, 1), table.slice(1, 3), table.slice(4)])
    assert chunked.column(0).num_chunks == 3
    assert content_version(chunked, SCHEMA) == content_version(table, SCHEMA)


def test_content_version_survives_a_parquet_round_trip() -> None:
    table = _table()
    read_back = from_parquet(to_parquet(table, SCHEMA, kind="test", row_group_size=2))
    assert content_version(read_back, SCHEMA) == content_version(table, SCHEMA)


def test_content_version_of_a_slice_equals_that_of_the_same_rows_built_fresh() -> None:
    fresh = pa.table({"key": ["a", "b"], "score": [1.5, None], "ts": [1, 2], "tags": [["x", "y"], None]}, schema=SCHEMA)
    assert content_version(_table().slice(0, 2), SCHEMA) == content_version(fresh, SCHEMA)


def test_content_version_ignores_metadata_and_column_order_but_not_content() -> None:
    table = _table()
    reordered = table.select(["tags", "ts", "score", "key"]).replace_schema_metadata({"x": "y"})
    assert content_version(reordered, SCHEMA) == content_version(table, SCHEMA)
    changed = table.set_column(1, SCHEMA.field("score"), pa.array([1.5, None, 3.0, None, 0.5]))
    assert content_version(changed, SCHEMA) != content_version(table, SCHEMA)


def test_content_version_of_an_empty_table() -> None:
    assert content_version(SCHEMA.empty_table(), SCHEMA) == content_version(_table().slice(0, 0), SCHEMA)


def test_to_parquet_is_byte_identical_and_carries_the_kind() -> None:
    table = _table()
    first = to_parquet(table, SCHEMA, kind="cooc")
    second = to_parquet(pa.concat_tables([table.slice(0, 2), table.slice(2)]), SCHEMA, kind="cooc")
    assert first == second
    metadata = pq.read_metadata(pa.BufferReader(first)).metadata
    assert metadata[b"recsys.kind"] == b"cooc"
    assert metadata[b"recsys.schema"] == b"1"
    assert b"pandas" not in metadata
    assert from_parquet(first).equals(table)


def test_to_parquet_row_groups_have_key_statistics() -> None:
    metadata = pq.read_metadata(pa.BufferReader(to_parquet(_table(), SCHEMA, kind="test", row_group_size=2)))
    # 5 rows in groups of 2 -> 3 row groups: [a, b], [c, d], [e]
    assert metadata.num_row_groups == 3
    bounds = [
        (metadata.row_group(i).column(0).statistics.min, metadata.row_group(i).column(0).statistics.max)
        for i in range(3)
    ]
    assert bounds == [("a", "b"), ("c", "d"), ("e", "e")]
    assert metadata.row_group(0).column(0).compression == "ZSTD"


def test_decay_weight() -> None:
    end = dt.date(2026, 1, 15)
    assert decay_weight(end, end, 7.0) == 1.0  # 0.5 ** (0 / 7)
    assert decay_weight(dt.date(2026, 1, 8), end, 7.0) == 0.5  # 0.5 ** (7 / 7)
    assert decay_weight(dt.date(2026, 1, 1), end, 7.0) == 0.25  # 0.5 ** (14 / 7)
    assert decay_weight(dt.date(2026, 1, 13), end, 4.0) == pytest.approx(0.7071067811865476)  # 0.5 ** (2 / 4)
    assert decay_weight(dt.date(2026, 1, 1), end, None) == 1.0


@pytest.mark.parametrize("kind", sorted(EVENT_KINDS))
def test_partial_needs_only_the_kinds_event_columns(kind: str) -> None:
    # compute reads only EVENT_COLUMNS from the canonical partition: the partial must not change.
    module = EVENT_KINDS[kind]
    rows = [
        {"session_id": f"s{n % 7}", "item_id": f"i{n % 5}", "user_id": f"u{n % 3}" if n % 4 else None, "ts": n * 60}
        for n in range(40)
    ]
    events = canonical_events(rows)
    assert set(module.EVENT_COLUMNS) <= set(events.column_names)
    assert module.partial(events.select(module.EVENT_COLUMNS), ComputeParams(), DEFAULT_EVENT_WEIGHTS).equals(
        module.partial(events, ComputeParams(), DEFAULT_EVENT_WEIGHTS)
    )


@pytest.mark.parametrize("kind", sorted(EVENT_KINDS))
def test_build_over_partials_read_as_dictionaries_equals_the_build_over_strings(kind: str) -> None:
    # compute reads stored partials with dictionary-encoded strings; the artifact must not change.
    module = EVENT_KINDS[kind]
    days = [dt.date(2026, 1, 1), dt.date(2026, 1, 2)]
    partials = []
    for offset, day in enumerate(days):
        rows = [
            {
                "session_id": f"s{(n + offset) % 6}",
                "item_id": f"i{(n * (offset + 2)) % 7}",
                "user_id": f"u{n % 4}" if n % 5 else None,
                "ts": n * 30,
            }
            for n in range(50)
        ]
        partials.append((day, module.partial(canonical_events(rows, day), ComputeParams(), DEFAULT_EVENT_WEIGHTS)))
    encoded = [
        (day, from_parquet(to_parquet(table, module.PARTIAL_SCHEMA, kind="partial"), dictionaries=True))
        for day, table in partials
    ]
    assert any(pa.types.is_dictionary(field.type) for field in encoded[0][1].schema)
    window = Window(start=days[0], end=days[-1])
    assert module.build(encoded, window, ComputeParams()).equals(module.build(partials, window, ComputeParams()))
