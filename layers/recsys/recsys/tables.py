"""Arrow tables <-> Parquet bytes, deterministic: the same table always gives the same bytes."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq


def to_parquet(table: pa.Table, schema: pa.Schema, *, kind: str, row_group_size: int = 65_536) -> bytes:
    """Parquet bytes of `table` cast to `schema`, tagged with its kind; row groups let readers fetch one key."""
    table = table.cast(schema).replace_schema_metadata({"recsys.kind": kind, "recsys.schema": "1"})
    sink = io.BytesIO()
    pq.write_table(
        table,
        sink,
        row_group_size=row_group_size,
        compression="zstd",
        use_dictionary=True,
        write_statistics=True,
        store_schema=False,
    )
    return sink.getvalue()


def from_parquet(data: bytes) -> pa.Table:
    return pq.read_table(io.BytesIO(data))
