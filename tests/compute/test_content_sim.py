"""content_sim: cosine over catalog tag sets, with too-common tags ignored for pairing."""

from __future__ import annotations

import pyarrow as pa
import pytest

from recsys.compute import content_sim
from recsys.settings import ComputeParams

CATALOG = pa.table(
    {
        "item_id": ["i3", "i1", "i2", "i4"],
        "tags": [["blue", "shoe"], ["red", "shoe", "sport"], ["red", "shoe"], ["green"]],
    }
)


def test_cosine_over_tag_sets() -> None:
    out = content_sim.build_from_catalog(CATALOG, ComputeParams())
    assert out.schema == content_sim.SCHEMA
    rows = out.to_pylist()
    assert [row["item_id"] for row in rows] == ["i1", "i2", "i3", "i4"]
    assert [row["tags"] for row in rows] == [["red", "shoe", "sport"], ["red", "shoe"], ["blue", "shoe"], ["green"]]
    assert [row["similar_items"] for row in rows] == [["i2", "i3"], ["i1", "i3"], ["i2", "i1"], []]
    assert rows[0]["similar_scores"] == pytest.approx([0.8164965809277261, 0.4082482904638631])  # 2/√(3·2), 1/√(3·2)
    assert rows[1]["similar_scores"] == pytest.approx([0.8164965809277261, 0.5])  # 2/√(2·3), 1/√(2·2)
    assert rows[2]["similar_scores"] == pytest.approx([0.5, 0.4082482904638631])  # 1/√(2·2), 1/√(2·3)
    assert rows[3]["similar_scores"] == []


def test_common_tags_do_not_pair_but_still_count_and_are_listed() -> None:
    # "shoe" is on 3 items > 2: only "red" pairs i1 and i2, and |i1| is still 3, |i2| still 2
    out = content_sim.build_from_catalog(CATALOG, ComputeParams(content_sim_max_tag_items=2)).to_pylist()
    assert [row["similar_items"] for row in out] == [["i2"], ["i1"], [], []]
    assert out[0]["similar_scores"] == pytest.approx([0.4082482904638631])  # 1 / sqrt(3 * 2)
    assert out[1]["similar_scores"] == pytest.approx([0.4082482904638631])
    assert out[2]["tags"] == ["blue", "shoe"]


def test_top_k_ties_break_on_item_id() -> None:
    catalog = pa.table({"item_id": ["c", "b", "a"], "tags": [["x"], ["x"], ["x"]]})
    out = content_sim.build_from_catalog(catalog, ComputeParams(content_sim_top_k=1)).to_pylist()
    # every pair scores 1 / sqrt(1 * 1) = 1.0
    assert [(row["item_id"], row["similar_items"], row["similar_scores"]) for row in out] == [
        ("a", ["b"], [1.0]),
        ("b", ["a"], [1.0]),
        ("c", ["a"], [1.0]),
    ]


def test_empty_catalog_and_duplicates() -> None:
    empty = pa.table({"item_id": pa.array([], pa.string()), "tags": pa.array([], pa.list_(pa.string()))})
    out = content_sim.build_from_catalog(empty, ComputeParams())
    assert out.schema == content_sim.SCHEMA
    assert out.num_rows == 0
    with pytest.raises(ValueError, match="duplicate"):
        content_sim.build_from_catalog(pa.table({"item_id": ["a", "a"], "tags": [["x"], ["y"]]}), ComputeParams())
