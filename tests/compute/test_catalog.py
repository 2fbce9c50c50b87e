"""catalog: the seed's CSV and JSONL formats, normalized to (item_id, sorted lowercase tags)."""

from __future__ import annotations

import pytest

from recsys.compute.catalog import catalog_format, read_catalog

CSV = b"""\
 ID ,Title, Tag_List ,Surface,price
p1,Shoe,"Red, Shoe;sport|RED ",home,10
p2,Empty,  ,home,1
,NoId,red,home,1
p3,Other,blue,search,1
 p4 ,Any, Green| ,,2
p5,First,old,home,1
p5,Second,New;NEW,home,1
p6,First,kept,home,1
p6,Other surface,ignored,search,1
"""


def test_csv_aliases_splitting_namespace_and_last_wins() -> None:
    out = read_catalog(CSV, "csv", "home")
    assert out.column_names == ["item_id", "tags"]
    assert out.to_pylist() == [
        {"item_id": "p1", "tags": ["red", "shoe", "sport"]},  # split on , ; |, trimmed, lowercased, deduplicated
        {"item_id": "p4", "tags": ["green"]},  # trimmed id, empty namespace kept, empty tag dropped
        {"item_id": "p5", "tags": ["new"]},  # the last p5 row wins
        {"item_id": "p6", "tags": ["kept"]},  # a row of another surface does not override
    ]  # p2 has no tags, the empty id is skipped, p3 is for "search"


def test_csv_other_surface() -> None:
    assert read_catalog(CSV, "csv", "search").to_pylist() == [
        {"item_id": "p3", "tags": ["blue"]},
        {"item_id": "p4", "tags": ["green"]},  # no namespace: every surface
        {"item_id": "p6", "tags": ["ignored"]},  # for "search" the last p6 row is the search one
    ]


def test_csv_last_row_without_tags_drops_the_item() -> None:
    data = b"item_id,tags\nq,a\nq,\n"
    assert read_catalog(data, "csv", "home").num_rows == 0


def test_csv_plain_names_bom_and_no_namespace_column() -> None:
    data = b"\xef\xbb\xbfItemId,TAGS,title\nb,Y|x,B\na,z,A\n"
    assert read_catalog(data, "csv", "home").to_pylist() == [
        {"item_id": "a", "tags": ["z"]},
        {"item_id": "b", "tags": ["x", "y"]},
    ]


def test_csv_item_ids_stay_strings() -> None:
    assert read_catalog(b"id,tags\n007,a\n", "csv", "home").column("item_id").to_pylist() == ["007"]


def test_csv_without_item_id_column() -> None:
    with pytest.raises(ValueError, match="catalog CSV has no item_id column"):
        read_catalog(b"sku,tags\na,x\n", "csv", "home")


def test_csv_without_header() -> None:
    with pytest.raises(ValueError, match="header"):
        read_catalog(b"", "csv", "home")


def test_jsonl() -> None:
    data = b"""\
{"item_id": "b", "tags": [" Sale ", "sale", "", "Blue"], "price": 3}

{"item_id": "a", "tags": ["x"], "namespace": "home"}
{"item_id": "c", "tags": ["y"], "namespace": "search"}
{"item_id": " ", "tags": ["y"]}
{"item_id": "d", "tags": []}
{"item_id": "a", "tags": ["z"], "namespace": null}
"""
    assert read_catalog(data, "jsonl", "home").to_pylist() == [
        {"item_id": "a", "tags": ["z"]},  # last row wins
        {"item_id": "b", "tags": ["blue", "sale"]},
    ]  # c is for "search", the blank id is skipped, d has no tags


def test_jsonl_bad_lines_name_the_line() -> None:
    with pytest.raises(ValueError, match="line 3"):
        read_catalog(b'{"item_id": "a", "tags": ["x"]}\n\n{"item_id": "b", "tags": [\n', "jsonl", "home")
    with pytest.raises(ValueError, match="line 2: tags must be a list of strings"):
        read_catalog(b'{"item_id": "a", "tags": ["x"]}\n{"item_id": "b", "tags": "x"}\n', "jsonl", "home")
    with pytest.raises(ValueError, match="line 1: item_id must be a string"):
        read_catalog(b'{"item_id": 5, "tags": ["x"]}\n', "jsonl", "home")
    with pytest.raises(ValueError, match="line 1: expected a JSON object"):
        read_catalog(b'["a"]\n', "jsonl", "home")


def test_jsonl_empty() -> None:
    assert read_catalog(b"\n \n", "jsonl", "home").num_rows == 0


def test_catalog_format() -> None:
    assert catalog_format("s3://bucket/t/catalog.CSV") == "csv"
    assert catalog_format("catalog.jsonl") == "jsonl"
    assert catalog_format("catalog.ndjson") == "jsonl"
    assert catalog_format("catalog.txt", "JSONL") == "jsonl"
    with pytest.raises(ValueError, match="cannot infer"):
        catalog_format("catalog.parquet")
    with pytest.raises(ValueError, match="unknown catalog format"):
        catalog_format("catalog.csv", "xml")
    with pytest.raises(ValueError, match="unknown catalog format"):
        read_catalog(b"", "xml", "home")
