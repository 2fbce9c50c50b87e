"""The serving indexes (recsys.serve.index) and the compact loaded forms built on them, with hand-made tables."""

from __future__ import annotations

import gc
import weakref
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pytest

from recsys.ranking.signals import Interaction, Scored
from recsys.serve.index import (
    ItemVocabulary,
    SortedStrings,
    dictionary_parts,
    gather_spans,
    smallest_codes,
    smallest_ints,
    strictly_ascending,
)
from recsys.serve.reader.forms import ContentTable, NeighborTable, PopularityTable, UserRows


@dataclass(frozen=True, eq=False)
class Table:
    """The least a table needs to be translated: its local names and its keys (local codes)."""

    names: pa.Array
    keys: np.ndarray


def table(names: list[str | None], keys: list[int]) -> Table:
    return Table(pa.array(names, pa.string()), np.array(keys, dtype=np.int32))


# --- ItemVocabulary ----------------------------------------------------------------------------------------------


def test_vocabulary_codes_items_in_the_order_first_seen() -> None:
    vocabulary = ItemVocabulary()
    assert vocabulary.intern(pa.array(["b", "a", "b", None])).tolist() == [0, 1, 0, -1]
    # known names keep their codes, new ones are appended in order
    assert vocabulary.intern(pa.array(["c", "a", "d", "c"])).tolist() == [2, 1, 3, 2]
    assert len(vocabulary) == 4
    assert vocabulary.names([3, 0]) == ["d", "b"] and vocabulary.name(1) == "a"
    assert vocabulary.code("c") == 2 and vocabulary.code("zz") == -1
    assert vocabulary.codes(["a", "zz", "d"]).tolist() == [1, -1, 3]
    # a dictionary-encoded column interns like its values
    encoded = pa.array(["e", "b", "e"]).dictionary_encode()
    assert vocabulary.intern(encoded).tolist() == [4, 0, 4]


def test_translation_maps_codes_to_the_first_key_and_later_codes_to_none() -> None:
    vocabulary = ItemVocabulary()
    vocabulary.intern(pa.array(["x", "b"]))  # x 0, b 1
    # local names a b c; keys (rows) name a, c, a: the first row of a wins, like dict.setdefault
    neighbours = table(["a", "b", "c"], [0, 2, 0])
    translation = vocabulary.translation(neighbours)
    assert translation.codes.tolist() == [2, 1, 3]  # a 2 (new), b 1, c 3 (new)
    assert translation.keys.tolist() == [-1, -1, 0, 1]  # x and b are not keys; a -> row 0, c -> row 1
    vocabulary.intern(pa.array(["later"]))  # code 4: added after the translation, so not in the table
    assert translation.keys_of(np.array([2, 3, 0, 4, -2])).tolist() == [0, 1, -1, -1, -1]
    assert (translation.key_of(3), translation.key_of(4), translation.key_of(-5)) == (1, -1, -1)
    assert vocabulary.translation(neighbours) is translation  # once per table


def test_translation_of_a_null_name_is_never_a_key() -> None:
    vocabulary = ItemVocabulary()
    translation = vocabulary.translation(table(["a", None], [1, 0]))
    assert translation.codes.tolist() == [0, -1]
    assert translation.keys.tolist() == [1]  # a is the key of row 1; the null key of row 0 maps nowhere


def test_translations_go_with_their_table() -> None:
    vocabulary = ItemVocabulary()
    gone = table(["a"], [0])
    vocabulary.translation(gone)
    ref = weakref.ref(gone)
    del gone
    gc.collect()
    assert ref() is None and len(vocabulary._translations) == 0


# --- SortedStrings, gather_spans, dictionaries -------------------------------------------------------------------


def test_sorted_strings_find_exact_values_only() -> None:
    values = pa.array(["", "a", "ab", "b", "é", "中"])
    assert strictly_ascending(values)
    index = SortedStrings(values)
    assert len(index) == 6
    assert [index.find(v) for v in ["", "a", "ab", "b", "é", "中"]] == [0, 1, 2, 3, 4, 5]
    assert [index.find(v) for v in ["0", "aa", "abc", "c", "\ud800", "中中"]] == [-1] * 6
    sliced = SortedStrings(pa.array(["z", "m", "n", "o"]).slice(1, 2))  # an offset into shared buffers
    assert (sliced.find("m"), sliced.find("n"), sliced.find("z"), sliced.find("o")) == (0, 1, -1, -1)
    assert SortedStrings(pa.array([], pa.string())).find("a") == -1


def test_strictly_ascending() -> None:
    assert strictly_ascending(pa.array(["a", "b"])) and strictly_ascending(pa.array([], pa.string()))
    assert not strictly_ascending(pa.array(["a", "a"]))
    assert not strictly_ascending(pa.array(["b", "a"]))
    assert not strictly_ascending(pa.array(["a", None]))


def test_gather_spans_concatenates_groups_in_the_order_asked() -> None:
    offsets = np.array([0, 2, 2, 5])  # group 0: rows 0-1, group 1: none, group 2: rows 2-4
    rows, source = gather_spans(offsets, np.array([2, -1, 1, 0]))
    assert rows.tolist() == [2, 3, 4, 0, 1]
    assert source.tolist() == [0, 0, 0, 3, 3]
    rows, source = gather_spans(offsets, np.array([], dtype=np.int64))
    assert rows.tolist() == [] and source.tolist() == []


def test_dictionary_parts_unify_chunks_and_keep_nulls() -> None:
    indices, dictionary = dictionary_parts(pa.chunked_array([pa.array(["b", "a"]), pa.array(["a", None, "c"])]))
    assert dictionary.take(pa.array(indices)).to_pylist() == ["b", "a", "a", None, "c"]
    assert dictionary.to_pylist()[-1] is None and indices[3] == len(dictionary) - 1
    chunks = [pa.array(["x", "y"]).dictionary_encode(), pa.array(["y", "z"]).dictionary_encode()]
    indices, dictionary = dictionary_parts(pa.chunked_array(chunks))
    assert dictionary.take(pa.array(indices)).to_pylist() == ["x", "y", "y", "z"] and len(dictionary) == 3


def test_narrow_types() -> None:
    assert smallest_codes(np.array([0, 65535]), 65536).dtype == np.uint16
    assert smallest_codes(np.array([0, 65536]), 65537).dtype == np.int32
    assert smallest_ints(np.array([0, 127])).dtype == np.int8
    assert smallest_ints(np.array([-129, 5])).dtype == np.int16
    assert smallest_ints(np.array([0, 2**31])).dtype == np.int64
    assert smallest_ints(np.array([0, 40_000])).tolist() == [0, 40_000]


# --- compact loaded forms ------------------------------------------------------------------------------------------


def implicit_rows(rows: list[tuple[str, str, float, int, int, int]]) -> pa.Table:
    """(user_id, item_id, score, count, last_us, rank) rows as an implicit table."""
    users, items, scores, counts, last, ranks = (list(column) for column in zip(*rows, strict=True))
    return pa.table(
        {
            "user_id": users,
            "item_id": items,
            "score": scores,
            "count": pa.array(counts, pa.int64()),
            "last_ts": pa.array(last, pa.timestamp("us", tz="UTC")),
            "rank": pa.array(ranks, pa.int32()),
        }
    )


SORTED = [
    ("u1", "a", 3.0, 2, 30, 1),
    ("u1", "b", 1.0, 1, 10, 2),
    ("u2", "a", 5.0, 70_000, 20, 1),
    ("u3", "c", 0.5, 1, 40, 1),
]


@pytest.mark.parametrize(
    "order",
    [
        [0, 1, 2, 3],  # as written: users ascending, each user's rows by rank
        [3, 2, 0, 1],  # users grouped but not ascending: only the user index is sorted
        [1, 2, 0, 3],  # rows out of order: the table is sorted by (user_id, rank)
        [0, 2, 1, 3],  # u1 split in two runs: sorted as well
    ],
)
def test_user_rows_find_each_users_rows_in_rank_order(order: list[int]) -> None:
    rows = UserRows.from_table(implicit_rows([SORTED[i] for i in order]))
    assert rows.interactions("u1") == [Interaction("a", 3.0, 2, 30), Interaction("b", 1.0, 1, 10)]
    assert rows.interactions("u2") == [Interaction("a", 5.0, 70_000, 20)]
    assert rows.interactions("u3") == [Interaction("c", 0.5, 1, 40)]
    assert rows.interactions("u0") == [] and rows.history("u11") is None
    assert rows.items.dtype == np.uint16 and rows.counts.dtype == np.int32
    history = rows.history("u1")
    assert history is not None and history.names == ["a", "b"] and history.last_us.tolist() == [30, 10]


def neighbour_table(rows: list[tuple[str, str, int, float, int]]) -> pa.Table:
    items, neighbours, counts, scores, ranks = (list(column) for column in zip(*rows, strict=True))
    return pa.table(
        {
            "item_id": items,
            "neighbor_id": neighbours,
            "count": pa.array(counts, pa.int64()),
            "score": scores,
            "rank": pa.array(ranks, pa.int32()),
        }
    )


def test_neighbor_table_groups_and_sorts_what_is_not_written_in_order() -> None:
    rows = [("b", "a", 4, 0.4, 1), ("a", "c", 2, 0.2, 2), ("a", "b", 5, 0.5, 1), ("b", "c", 1, 0.1, 2)]
    loaded = NeighborTable.from_table(neighbour_table(rows), "neighbor_id")
    vocabulary = ItemVocabulary()
    translation = vocabulary.translation(loaded)
    group_a, group_b = translation.key_of(vocabulary.code("a")), translation.key_of(vocabulary.code("b"))
    assert loaded.scored(group_a) == [Scored("b", 0.5), Scored("c", 0.2)]
    assert loaded.scored(group_b) == [Scored("a", 0.4), Scored("c", 0.1)]
    assert loaded.counts_of(group_a) == {"b": 5, "c": 2}
    assert translation.key_of(vocabulary.code("c")) == -1  # c is only a neighbour
    without_counts = NeighborTable.from_table(neighbour_table(rows), "neighbor_id", counts=False)
    assert without_counts.counts is None
    with pytest.raises(ValueError):
        without_counts.counts_of(0)


def test_content_table_pairs_items_with_scores_like_zip_and_skips_nulls() -> None:
    data = pa.table(
        {
            "item_id": ["a", "b"],
            "tags": [["t1", "", "t2"], None],
            "similar_items": [["b", None, "c"], ["a", "c", "d"]],
            "similar_scores": [[0.9, 0.8, 0.7], [0.6, 0.5]],  # b: one score fewer than items
        }
    )
    loaded = ContentTable.from_table(data)
    assert loaded.similar(0) == [Scored("b", 0.9), Scored("c", 0.7)]
    assert loaded.similar(1) == [Scored("a", 0.6), Scored("c", 0.5)]
    assert loaded.tags(0) == ("t1", "t2") and loaded.tags(1) == ()
    items, scores, source = loaded.similar_rows(np.array([1, -1, 0]))
    assert source.tolist() == [0, 0, 2, 2, 2] and loaded.similar_scores[scores].tolist() == [0.6, 0.5, 0.9, 0.8, 0.7]
    assert loaded.names.take(pa.array(loaded.similar_items[items])).to_pylist() == ["a", "c", "b", None, "c"]


def test_popularity_table_keeps_rank_order_and_the_first_row_of_an_item() -> None:
    data = pa.table(
        {
            "item_id": ["b", "a", "b"],
            "score": [5.0, 9.0, 1.0],
            "count": pa.array([5, 9, 1], pa.int64()),
            "rank": pa.array([2, 1, 3], pa.int32()),
        }
    )
    loaded = PopularityTable.from_table(data)
    assert loaded.top(2) == [Scored("a", 9.0), Scored("b", 5.0)]
    vocabulary = ItemVocabulary()
    translation = vocabulary.translation(loaded)
    assert loaded.scores[translation.key_of(vocabulary.code("b"))] == 5.0
