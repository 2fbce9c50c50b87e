"""Helpers shared by the artifact kinds: decay, event weights, stacking partials, the neighbour-list schema.

Everything here is pure pyarrow: identical logical input gives identical output bytes. Top-k and pair counts on int
codes live in recsys.compute.pairs; content versions and deterministic Parquet live in recsys.tables (the canonical
partitions use them too) and are re-exported here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from recsys.tables import canonical_table, content_version, from_parquet, to_parquet

__all__ = ["canonical_table", "content_version", "from_parquet", "to_parquet"]


# Item -> ranked neighbours (cooc, item_knn): sorted by item_id, rank; the first column is the lookup key.
NEIGHBOR_SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("neighbor_id", pa.string(), nullable=False),
        pa.field("count", pa.int64()),
        pa.field("score", pa.float64()),
        pa.field("rank", pa.int32()),
    ]
)


def decay_weight(day: dt.date, end_day: dt.date, half_life_days: float | None) -> float:
    """Exponential decay of a day's contribution: 1 on `end_day`, 1/2 one half-life earlier; 1.0 without decay."""
    if half_life_days is None:
        return 1.0
    return 0.5 ** ((end_day - day).days / half_life_days)


def row_numbers(n: int, start: int = 0) -> pa.Array:
    """int64 array [start, start + 1, ..., start + n - 1], built without a Python loop."""
    ones = pa.repeat(pa.scalar(1, pa.int64()), n)
    return pc.add(pc.cumulative_sum(ones), start - 1)


def event_weight_column(event_types: pa.Array | pa.ChunkedArray, event_weights: Mapping[str, float]) -> pa.Array:
    """float64 weight of each event; event types without a configured weight weigh 0."""
    names = sorted(event_weights)
    values = pa.array([float(event_weights[name]) for name in names], pa.float64())
    index = pc.index_in(event_types, value_set=pa.array(names, pa.string()))
    weights = pc.take(values, index)
    if isinstance(weights, pa.ChunkedArray):
        weights = weights.combine_chunks()
    return pc.fill_null(weights, 0.0)


def weights_param(event_weights: Mapping[str, float]) -> dict[str, float]:
    """Event weights in a canonical form for partial cache keys."""
    return {name: float(event_weights[name]) for name in sorted(event_weights)}


def with_dictionaries(schema: pa.Schema) -> pa.Schema:
    """`schema` with every string field dictionary-encoded (int32 indices)."""
    encoded = pa.dictionary(pa.int32(), pa.string())
    return pa.schema([field.with_type(encoded) if field.type == pa.string() else field for field in schema])


def stack(partials: list[pa.Table], schema: pa.Schema, *, dictionaries: bool = False) -> pa.Table:
    """Concatenate non-empty partials cast to `schema`; an empty table of `schema` when there are none.

    With `dictionaries`, string columns stay (or become) dictionary-encoded, each chunk with its own dictionary:
    partials read from Parquet as dictionaries are then never expanded to one string per row
    (recsys.compute.pairs.sorted_codes codes them through their dictionaries).
    """
    target = with_dictionaries(schema) if dictionaries else schema
    tables = [table.select(schema.names).cast(target) for table in partials if table.num_rows]
    if not tables:
        return target.empty_table()
    return pa.concat_tables(tables)


def decayed_stack(
    partials: Sequence[tuple[dt.date, pa.Table]],
    schema: pa.Schema,
    end_day: dt.date,
    half_life_days: float | None,
    *,
    dictionaries: bool = False,
) -> pa.Table:
    """The window's partials stacked (see `stack`), each day's `score` multiplied by its decay weight."""
    decayed = []
    for day, table in sorted(partials, key=lambda pair: pair[0]):
        part = stack([table], schema, dictionaries=dictionaries)
        index = schema.get_field_index("score")
        weighted = pc.multiply(part.column("score"), decay_weight(day, end_day, half_life_days))
        decayed.append(part.set_column(index, schema.field("score"), weighted))
    return stack(decayed, schema, dictionaries=dictionaries)
