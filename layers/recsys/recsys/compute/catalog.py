"""Catalog reading: the item -> tags table content_sim is built from.

Output of read_catalog, sorted by item_id, one row per item:
  item_id  string         trimmed, non-empty
  tags     list<string>   trimmed, lowercased, non-empty, deduplicated and sorted; never empty

Formats (the seed's), chosen by catalog_format from the file extension or an explicit name:
  csv    a header row is required; column names are trimmed and case-insensitive, with aliases
         item_id|itemid|id, tags|tag_list and namespace|surface (the first alias present wins; other columns such
         as title or price are ignored). Fields are trimmed; tags are split on any of ',', ';' and '|'.
  jsonl  one object per line {"item_id": str, "tags": [str], "namespace": str (optional)}; blank lines skipped.
Both: rows with an empty item_id are skipped, rows whose non-empty namespace differs from the surface are skipped,
a repeated item_id is replaced by its last row (even if that row has no tags), and items left without tags are
dropped.
"""

from __future__ import annotations

import csv
import io
import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json

from recsys.compute.artifact import row_numbers

FORMATS = ("csv", "jsonl")

_EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}

# Canonical column -> accepted header names, in order of preference.
_CSV_ALIASES = {
    "item_id": ("item_id", "itemid", "id"),
    "tags": ("tags", "tag_list"),
    "namespace": ("namespace", "surface"),
}

_TAG_SEPARATORS = r"[,;|]"

_JSONL_SCHEMA = pa.schema([("item_id", pa.string()), ("tags", pa.list_(pa.string())), ("namespace", pa.string())])

CATALOG_SCHEMA = pa.schema([pa.field("item_id", pa.string()), pa.field("tags", pa.list_(pa.string()))])

_BOM = b"\xef\xbb\xbf"


def catalog_format(name: str, explicit: str | None = None) -> str:
    """The format, "csv" or "jsonl": `explicit` if given, else inferred from the extension of `name` (a path or URI)."""
    if explicit is not None:
        fmt = explicit.strip().lower()
        if fmt not in FORMATS:
            raise ValueError(f"unknown catalog format {explicit!r}: expected one of {list(FORMATS)}")
        return fmt
    base = name.rsplit("/", 1)[-1].lower()
    for extension, fmt in _EXTENSIONS.items():
        if base.endswith(extension):
            return fmt
    raise ValueError(f"cannot infer the catalog format of {name!r}: expected a .csv, .jsonl or .ndjson file")


def read_catalog(data: bytes, fmt: str, surface: str) -> pa.Table:
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    if fmt == "csv":
        item_ids, tags, namespaces = _read_csv(data)
    elif fmt == "jsonl":
        item_ids, tags, namespaces = _read_jsonl(data)
    else:
        raise ValueError(f"unknown catalog format {fmt!r}: expected one of {list(FORMATS)}")
    return _normalize(item_ids, tags, namespaces, surface)


def _read_csv(data: bytes) -> tuple[pa.Array, pa.Array, pa.Array]:
    first_line = data.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    header = next(csv.reader(io.StringIO(first_line)), [])
    names = [name.strip().lower() for name in header]
    if not any(names):
        raise ValueError("catalog CSV has no header row")
    columns: dict[str, str] = {}
    for canonical, aliases in _CSV_ALIASES.items():
        for alias in aliases:
            if alias in names:
                columns[canonical] = f"c{names.index(alias)}"
                break
    if "item_id" not in columns:
        raise ValueError("catalog CSV has no item_id column")
    generated = [f"c{index}" for index in range(len(names))]
    try:
        table = pa_csv.read_csv(
            pa.BufferReader(data),
            read_options=pa_csv.ReadOptions(skip_rows=1, column_names=generated),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: pa.string() for name in generated},
                include_columns=sorted(set(columns.values())),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        raise ValueError(f"catalog CSV could not be parsed: {exc}") from None
    n = table.num_rows

    def column(canonical: str) -> pa.Array:
        if canonical not in columns:
            return pa.nulls(n, pa.string())
        return table.column(columns[canonical]).combine_chunks()

    tags = column("tags")
    tag_lists = pc.split_pattern_regex(pc.fill_null(tags, ""), _TAG_SEPARATORS)
    return column("item_id"), tag_lists, column("namespace")


def _read_jsonl(data: bytes) -> tuple[pa.Array, pa.Array, pa.Array]:
    if not data.strip():
        table = _JSONL_SCHEMA.empty_table()
    else:
        try:
            table = pa_json.read_json(
                pa.BufferReader(data),
                parse_options=pa_json.ParseOptions(explicit_schema=_JSONL_SCHEMA, unexpected_field_behavior="ignore"),
            )
        except pa.ArrowInvalid as exc:
            raise _jsonl_error(data, exc) from None
    return tuple(table.column(name).combine_chunks() for name in _JSONL_SCHEMA.names)  # type: ignore[return-value]


def _jsonl_error(data: bytes, exc: Exception) -> ValueError:
    """Locate the first bad line after the bulk reader failed (its own messages carry no line numbers)."""
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            return ValueError(f"catalog JSONL line {number}: invalid JSON ({error})")
        problem = _jsonl_problem(record)
        if problem:
            return ValueError(f"catalog JSONL line {number}: {problem}")
    return ValueError(f"catalog JSONL could not be parsed: {exc}")


def _jsonl_problem(record: object) -> str | None:
    if not isinstance(record, dict):
        return "expected a JSON object"
    for key in ("item_id", "namespace"):
        if not isinstance(record.get(key), str | None):
            return f"{key} must be a string"
    tags = record.get("tags")
    if tags is not None and (not isinstance(tags, list) or not all(isinstance(tag, str | None) for tag in tags)):
        return "tags must be a list of strings"
    return None


def _normalize(item_ids: pa.Array, tag_lists: pa.Array, namespaces: pa.Array, surface: str) -> pa.Table:
    item_ids = pc.utf8_trim_whitespace(pc.fill_null(item_ids, ""))
    namespaces = pc.utf8_trim_whitespace(pc.fill_null(namespaces, ""))
    rows = pa.table({"row": row_numbers(len(item_ids)), "item_id": item_ids, "tags": tag_lists})
    keep = pc.and_(
        pc.not_equal(item_ids, ""),
        pc.or_(pc.equal(namespaces, ""), pc.equal(namespaces, surface)),
    )
    rows = rows.filter(keep)
    last = rows.group_by("item_id", use_threads=False).aggregate([("row", "max")])
    rows = rows.filter(pc.is_in(rows.column("row"), value_set=last.column("row_max").combine_chunks()))

    lists = rows.column("tags").combine_chunks()
    owners = pc.take(rows.column("item_id").combine_chunks(), pc.list_parent_indices(lists))
    tags = pc.utf8_lower(pc.utf8_trim_whitespace(pc.list_flatten(lists)))
    exploded = pa.table({"item_id": owners, "tag": tags})
    exploded = exploded.filter(pc.and_(pc.is_valid(exploded.column("tag")), pc.not_equal(exploded.column("tag"), "")))
    exploded = (
        exploded.group_by(["item_id", "tag"], use_threads=False)
        .aggregate([])
        .select(["item_id", "tag"])
        .sort_by([("item_id", "ascending"), ("tag", "ascending")])
    )
    per_item = exploded.group_by("item_id", use_threads=False).aggregate([([], "count_all")]).sort_by("item_id")
    lengths = per_item.column("count_all").combine_chunks()
    offsets = pa.concat_arrays([pa.array([0], pa.int64()), pc.cumulative_sum(lengths)]).cast(pa.int32())
    tag_lists_out = pa.ListArray.from_arrays(offsets, exploded.column("tag").combine_chunks())
    return pa.table({"item_id": per_item.column("item_id"), "tags": tag_lists_out}, schema=CATALOG_SCHEMA)
