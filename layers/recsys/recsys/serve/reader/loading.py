"""Parquet -> the reader's in-memory forms, with each artifact checked against its kind's schema (the registry's).

A kind's entry (recsys.contract.kinds) names its form; FORMS maps a form to the function that builds it from the
artifact's table. "table" keeps the table itself (a kind that needs nothing special); "user_rows" (implicit) is
never loaded whole: its footer, then the row groups a lookup needs, are read by ranged reads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from recsys.compute import KINDS  # the registry, with the built-in kinds registered
from recsys.contract.kinds import TABLE_FORM, ArtifactKind
from recsys.serve.reader.errors import ArtifactIncompatible
from recsys.serve.reader.forms import ContentTable, ImplicitFooter, NeighborTable, PopularityTable, UserRows
from recsys.store import ObjectStore
from recsys.store.base import StoreFile

ROW_GROUP_FORM = "user_rows"

FORMS: dict[str, Callable[[pa.Table, ArtifactKind], Any]] = {
    TABLE_FORM: lambda table, kind: table,
    "popularity": lambda table, kind: PopularityTable.from_table(table),
    # (key, neighbour, count, score, rank) rows; counts are kept only where a lookup needs them (cooc's)
    "neighbors": lambda table, kind: NeighborTable.from_table(table, kind.schema.names[1], counts=False),
    "neighbors_with_counts": lambda table, kind: NeighborTable.from_table(table, kind.schema.names[1]),
    "content": lambda table, kind: ContentTable.from_table(table),
}
"""Form name -> its loader from the artifact's table (conformed to the kind's schema)."""


def _entry(kind: str) -> ArtifactKind:
    try:
        return KINDS.get(kind)
    except KeyError:
        raise ArtifactIncompatible(f"unknown artifact kind {kind!r}", kind=kind) from None


def _dictionary_columns(entry: ArtifactKind) -> list[str] | None:
    """Item/user columns read as Arrow dictionaries: decoding is cheaper and the loaded forms keep codes anyway."""
    return list(entry.dictionary_columns) or None


def _check_schema(kind: str, uri: str, schema: pa.Schema) -> None:
    expected = _entry(kind).schema
    if schema.names != expected.names:
        raise ArtifactIncompatible(
            f"{kind} artifact {uri} has columns {schema.names}, expected {expected.names}", kind=kind
        )
    written_as = (schema.metadata or {}).get(b"recsys.kind")
    if written_as is not None and written_as.decode(errors="replace") != kind:
        raise ArtifactIncompatible(
            f"{kind} artifact {uri} was written as {written_as.decode(errors='replace')}", kind=kind
        )
    try:
        schema.empty_table().cast(expected)
    except (pa.ArrowException, ValueError, TypeError) as err:
        raise ArtifactIncompatible(f"{kind} artifact {uri} has incompatible column types: {err}", kind=kind) from None


def _as_read(actual: pa.DataType, expected: pa.DataType) -> bool:
    """True if a column of type `actual` is `expected` as read (a dictionary of it, or a list of such)."""
    if actual == expected:
        return True
    if pa.types.is_dictionary(actual):
        return actual.value_type == expected
    if pa.types.is_list(actual) and pa.types.is_list(expected):
        return _as_read(actual.value_type, expected.value_type)
    return False


def conform(kind: str, uri: str, table: pa.Table) -> pa.Table:
    """The table with its kind's column types (dictionary-encoded string columns are kept as they are)."""
    _check_schema(kind, uri, table.schema)
    expected = _entry(kind).schema
    try:
        if all(_as_read(column.type, field.type) for field, column in zip(expected, table.columns, strict=True)):
            return table
        columns = [
            column if _as_read(column.type, field.type) else column.cast(field.type)
            for field, column in zip(expected, table.columns, strict=True)
        ]
        return pa.Table.from_arrays(columns, names=expected.names)
    except (pa.ArrowException, ValueError, TypeError) as err:
        raise ArtifactIncompatible(f"{kind} artifact {uri} cannot be read as its schema: {err}", kind=kind) from None


def load_artifact(kind: str, uri: str, store: ObjectStore, key: str) -> Any:
    """The loaded form of a whole-file kind (NotFound / StoreError from the store, ArtifactIncompatible)."""
    return load_parquet(kind, uri, store.get(key).data)


def load_parquet(kind: str, uri: str, data: bytes) -> Any:
    """The loaded form of a whole-file kind from the artifact's Parquet bytes (ArtifactIncompatible)."""
    entry = _entry(kind)
    try:
        schema = pq.ParquetFile(pa.BufferReader(data)).schema_arrow
        _check_schema(kind, uri, schema)
        table = pq.read_table(pa.BufferReader(data), read_dictionary=_dictionary_columns(entry))
    except (pa.ArrowException, OSError, ValueError) as err:
        raise ArtifactIncompatible(f"{kind} artifact {uri} is not readable Parquet: {err}", kind=kind) from None
    table = conform(kind, uri, table)
    form = FORMS.get(entry.form)
    if form is None:
        raise ValueError(f"{kind} is not loaded whole (form {entry.form!r})")
    return form(table, entry)


def load_footer(kind: str, uri: str, store: ObjectStore, key: str) -> ImplicitFooter:
    """Open a row-group kind (implicit) through ranged reads: its size, then its footer (one read of the file's
    tail)."""
    file = StoreFile(store, key)
    try:
        parquet = pq.ParquetFile(file)
        schema = parquet.schema_arrow
    except (pa.ArrowException, OSError, ValueError) as err:
        raise ArtifactIncompatible(f"{kind} artifact {uri} is not readable Parquet: {err}", kind=kind) from None
    _check_schema(kind, uri, schema)
    return ImplicitFooter.from_metadata(parquet.metadata, file.size)


def load_row_group(kind: str, uri: str, store: ObjectStore, key: str, footer: ImplicitFooter, group: int) -> UserRows:
    """One row group, read by ranged reads of its column chunks only (the cached footer is not read again)."""
    file = StoreFile(store, key, size=footer.size)
    try:
        parquet = pq.ParquetFile(
            file, metadata=footer.metadata, pre_buffer=True, read_dictionary=_dictionary_columns(_entry(kind))
        )
        table = parquet.read_row_group(group, use_threads=False)
    except (pa.ArrowException, OSError, ValueError) as err:
        raise ArtifactIncompatible(f"{kind} artifact {uri} row group {group} is unreadable: {err}", kind=kind) from None
    return UserRows.from_table(conform(kind, uri, table))
