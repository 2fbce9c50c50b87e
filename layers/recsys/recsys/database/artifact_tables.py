"""Artifact tables <-> their Postgres tables (migrations/0001: `recsys_<kind>`, the artifact's columns after the
keys tenant_id, namespace, day and row_no), both ways in bulk.

Writing: `copy_rows` turns an Arrow table into COPY's text format column-wise with pyarrow compute (escaping,
array literals, shortest round-trip floats), so millions of rows never become Python objects. Reading:
`select_json` has Postgres render each row as one JSON line, which pyarrow's JSON reader parses with the kind's
schema: floats travel as their shortest exact text both ways, timestamps as integer microseconds, so a table read
back equals the artifact.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
from psycopg import sql

from recsys.errors import ConfigError

KEY_COLUMNS = ("tenant_id", "namespace", "day", "row_no")
COPY_BATCH_ROWS = 200_000  # rows encoded at a time: bounds the text held in memory
_NULL = "\\N"


def table_name(kind: str) -> str:
    from recsys.contract.kinds import BUILTIN_KINDS

    if kind not in BUILTIN_KINDS:
        raise ConfigError(f"artifact kind {kind!r} has no table in the signal store (built-in kinds only)")
    return f"recsys_{kind}"


def _pg_type(arrow: pa.DataType) -> str:
    if pa.types.is_string(arrow) or pa.types.is_large_string(arrow):
        return "text"
    if pa.types.is_float64(arrow):
        return "double precision"
    if pa.types.is_int64(arrow):
        return "bigint"
    if pa.types.is_int32(arrow):
        return "integer"
    if pa.types.is_timestamp(arrow):
        return "timestamp with time zone"
    if pa.types.is_list(arrow):
        return _pg_type(arrow.value_type) + "[]"
    raise TypeError(f"no Postgres type for {arrow}")


def expected_columns(schema: pa.Schema) -> list[tuple[str, str]]:
    """(name, Postgres type) of an artifact's columns, as format_type() spells them: what its table in the shipped
    migration must hold after KEY_COLUMNS (tests/publish/test_signal_store.py checks it)."""
    return [(field.name, _pg_type(field.type)) for field in schema]


# - writing -


def _escape_copy(text: pa.Array) -> pa.Array:
    """COPY text format: backslash, tab, newline and carriage return escaped."""
    for raw, escaped in (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")):
        text = pc.replace_substring(text, raw, escaped)
    return text


def _scalar_text(column: pa.Array) -> pa.Array:
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = kind.value_type
    if pa.types.is_timestamp(kind):
        return pc.cast(column.cast(pa.timestamp("us", tz="UTC")), pa.string())  # 2026-01-01 08:00:00.000000Z
    return pc.cast(column, pa.string())


def _array_literal(column: pa.Array) -> pa.Array:
    """A list column as Postgres array literals: {"a","b"} for text (quoted, escaped), {1.5,2} for numbers."""
    values = column.values if not pa.types.is_dictionary(column.type) else column.values
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        quoted = pc.replace_substring(pc.replace_substring(values, "\\", "\\\\"), '"', '\\"')
        elements = pc.binary_join_element_wise('"', quoted, '"', "")
    else:
        elements = pc.cast(values, pa.string())
    elements = pc.fill_null(elements, "NULL")
    offsets = column.offsets
    rebuilt = pa.ListArray.from_arrays(pc.subtract(offsets, offsets[0]), elements.slice(offsets[0].as_py()))
    joined = pc.binary_join_element_wise("{", pc.binary_join(rebuilt, ","), "}", "")
    return pc.if_else(column.is_null(), pa.scalar(None, pa.string()), joined)


def copy_rows(table: pa.Table, keys: tuple[str, str, str], first_row: int = 0) -> Iterator[bytes]:
    """`table`'s rows as COPY text lines (tenant_id, namespace, day, row_no, then its columns), in batches."""
    prefix = "\t".join(_escape_copy(pa.array([key])).to_pylist()[0] for key in keys) + "\t"
    for offset in range(0, table.num_rows, COPY_BATCH_ROWS):
        batch = table.slice(offset, COPY_BATCH_ROWS).combine_chunks()
        fields = [pc.cast(pa.array(range(first_row + offset, first_row + offset + batch.num_rows)), pa.string())]
        for column in batch.columns:
            chunk = column.chunk(0) if column.num_chunks else pa.array([], column.type)
            text = _array_literal(chunk) if pa.types.is_list(chunk.type) else _scalar_text(chunk)
            fields.append(pc.fill_null(_escape_copy(text), _NULL))
        lines = pc.binary_join_element_wise(*fields, "\t")
        yield _concatenated(lines, prefix)


def _concatenated(lines: pa.Array, prefix: str) -> bytes:
    """prefix + line + newline for every line, as one bytes object (the string array's data buffer)."""
    framed = pc.binary_join_element_wise(prefix, lines, "\n", "").cast(pa.large_string())
    if len(framed) == 0:
        return b""
    offsets = np.frombuffer(framed.buffers()[1], dtype=np.int64)[framed.offset : framed.offset + len(framed) + 1]
    return framed.buffers()[2].slice(int(offsets[0]), int(offsets[-1] - offsets[0])).to_pybytes()


def copy_statement(kind: str, schema: pa.Schema) -> sql.Composed:
    columns = [*KEY_COLUMNS, *schema.names]
    return sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table_name(kind)), sql.SQL(", ").join(map(sql.Identifier, columns))
    )


# - reading -


def select_json(kind: str, schema: pa.Schema, where: sql.Composable) -> sql.Composed:
    """COPY of the rows matching `where` as JSON lines, in row_no order (parse with `parse_json`)."""
    pairs = []
    for field in schema:
        value = sql.Identifier(field.name)
        if pa.types.is_timestamp(field.type):
            value = sql.SQL("(extract(epoch FROM {}) * 1000000)::bigint").format(value)
        pairs += [sql.Literal(field.name), value]
    # CSV with control characters as quote and delimiter: Postgres escapes every control character inside JSON, so
    # nothing is ever quoted and each line is the JSON text as it is.
    return sql.SQL(
        "COPY (SELECT json_build_object({}) FROM {} WHERE {} ORDER BY row_no) TO STDOUT "
        "(FORMAT csv, DELIMITER E'\\x02', QUOTE E'\\x01')"
    ).format(sql.SQL(", ").join(pairs), sql.Identifier(table_name(kind)), where)


def parse_json(data: bytes, schema: pa.Schema) -> pa.Table:
    """The JSON lines of `select_json` as a table of `schema`."""
    if not data:
        return schema.empty_table()
    wire = pa.schema(
        [pa.field(f.name, pa.int64()) if pa.types.is_timestamp(f.type) else f.with_nullable(True) for f in schema]
    )
    options = pj.ParseOptions(explicit_schema=wire, unexpected_field_behavior="error")
    table = pj.read_json(pa.BufferReader(data), parse_options=options, read_options=pj.ReadOptions(block_size=8 << 20))
    columns = [table[f.name].cast(f.type) if pa.types.is_timestamp(f.type) else table[f.name] for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)
