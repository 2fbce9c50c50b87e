"""Arrow tables <-> bytes, deterministically: the same logical table always gives the same bytes and version.

Used by canonical partitions, partials and artifacts alike.
"""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

SCHEMA_VERSION = "1"


def _canonical_array(arr: pa.Array) -> pa.Array:
    """`arr` with defined bytes under null slots, so equal arrays serialize to equal IPC bytes.

    Arrow leaves the value bytes of null slots unspecified: a kernel's output and the same data read back from
    Parquet may differ there. Values under nulls become zero / empty, recursively into list children.
    """
    type_ = arr.type
    if pa.types.is_list(type_) or pa.types.is_large_list(type_):
        mask = pc.is_null(arr) if arr.null_count else None
        filled = pc.fill_null(arr, pa.scalar([], type_)) if arr.null_count else arr
        offsets = pc.subtract(filled.offsets, filled.offsets[0])
        cls = pa.LargeListArray if pa.types.is_large_list(type_) else pa.ListArray
        return cls.from_arrays(offsets, _canonical_array(filled.flatten()), type=type_, mask=mask)
    if not arr.null_count:
        return arr
    if pa.types.is_string(type_) or pa.types.is_large_string(type_):
        empty = pa.scalar("", type_)
    elif pa.types.is_binary(type_) or pa.types.is_large_binary(type_):
        empty = pa.scalar(b"", type_)
    elif pa.types.is_primitive(type_):
        try:
            empty = pa.scalar(0, pa.int64()).cast(type_)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return arr
    else:
        return arr
    # Both are fresh kernel outputs (offset 0, zeroed bitmap tails).
    validity = pc.is_valid(arr).buffers()[1]
    filled = pc.fill_null(arr, empty)
    return pa.Array.from_buffers(type_, len(arr), [validity, *filled.buffers()[1:]], null_count=arr.null_count)


def canonical_table(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` cast to `schema` (metadata dropped) as fresh single-chunk columns with normalized null slots."""
    schema = schema.remove_metadata()
    cast = table.select(schema.names).cast(schema)
    # concat_arrays copies even a single chunk, so a slice's buffers never leak bytes beyond its range.
    columns = [
        _canonical_array(pa.concat_arrays(column.chunks) if column.num_chunks else column.combine_chunks())
        for column in cast.columns
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def content_version(table: pa.Table, schema: pa.Schema, *, canonical: bool = False) -> str:
    """sha256 hex of the table as one uncompressed Arrow IPC stream record batch: independent of chunking,
    of metadata and of how the table was read back. `canonical`: `table` is already `canonical_table(table,
    schema)` (skips a copy when the caller also writes it with `to_parquet`)."""
    canonical_ = table if canonical else canonical_table(table, schema)
    batch = pa.RecordBatch.from_arrays([column.chunk(0) for column in canonical_.columns], schema=canonical_.schema)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, canonical_.schema, options=pa.ipc.IpcWriteOptions(compression=None)) as writer:
        writer.write_batch(batch)
    return hashlib.sha256(sink.getvalue()).hexdigest()  # hashes the Arrow buffer in place, no bytes copy


def to_parquet(
    table: pa.Table,
    schema: pa.Schema,
    *,
    kind: str,
    row_group_size: int = 65_536,
    canonical: bool = False,
    dictionary: bool | list[str] = True,
) -> bytes:
    """Deterministic Parquet bytes (zstd, dictionaries, statistics, kind metadata). `canonical` as in
    `content_version`; `dictionary`: the columns to dictionary-encode (all by default; leave out columns whose values
    are nearly all distinct, such as event ids: encoding them first as dictionaries only costs time and bytes).

    Keyed artifacts (cooc, implicit, session_seq, content_sim) are sorted by their first column, the lookup key, so
    row-group statistics let a reader fetch one key's rows without reading the whole file.
    """
    metadata = {"recsys.kind": kind, "recsys.schema": SCHEMA_VERSION}
    out = (table if canonical else canonical_table(table, schema)).replace_schema_metadata(metadata)
    sink = pa.BufferOutputStream()
    pq.write_table(
        out,
        sink,
        row_group_size=row_group_size,
        compression="zstd",
        use_dictionary=dictionary,
        write_statistics=True,
    )
    return sink.getvalue().to_pybytes()


def from_parquet(data: bytes, columns: list[str] | None = None, *, dictionaries: bool = False) -> pa.Table:
    """The table in `data`; only `columns` (in that order) when given; with `dictionaries`, string columns come
    back dictionary-encoded as Parquet stores them (no string per row)."""
    if not dictionaries:
        return pq.read_table(pa.BufferReader(data), columns=columns)
    schema = pq.read_schema(pa.BufferReader(data))
    wanted = set(columns if columns is not None else schema.names)
    strings = [field.name for field in schema if field.type == pa.string() and field.name in wanted]
    return pq.read_table(pa.BufferReader(data), columns=columns, read_dictionary=strings)
