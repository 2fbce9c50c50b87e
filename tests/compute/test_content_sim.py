"""content_sim: cosine over catalog tag sets, with too-common tags ignored for pairing."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from recsys.compute import content_sim
from recsys.compute.artifact import row_numbers, to_parquet
from recsys.compute.service import ComputeResult, compute_kind
from recsys.days import Window
from recsys.settings import ComputeParams, Settings
from recsys.store import FileSystemStore
from tests.conftest import SAMPLE_CATALOG


def top_k_per_group(table: pa.Table, group: str, order: list[tuple[str, str]], k: int) -> pa.Table:
    """The first `k` rows of each `group` after sorting by [group asc] + `order`, with an int32 1-based `rank`
    (the reference's helper, from the self-join implementation).

    `order` must make the sort total within a group for the result to be deterministic.
    """
    ordered = table.sort_by([(group, "ascending"), *order]).combine_chunks()
    n = ordered.num_rows
    if n == 0:
        return ordered.append_column(pa.field("rank", pa.int32()), pa.array([], pa.int32()))
    keys = ordered.column(group).combine_chunks()
    position = row_numbers(n)
    # A row starts a group when its key differs from the previous row's; the running max of the start positions
    # is each row's group start.
    is_start = pa.concat_arrays([pa.array([True]), pc.not_equal(keys.slice(1), keys.slice(0, n - 1))])
    is_start = pc.fill_null(is_start, True)
    group_start = pc.cumulative_max(pc.if_else(is_start, position, 0))
    rank = pc.add(pc.subtract(position, group_start), 1)
    keep = pc.less_equal(rank, k)
    ranked = ordered.append_column(pa.field("rank", pa.int32()), rank.cast(pa.int32()))
    return ranked.filter(keep)


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


def test_items_with_identical_tag_sets_list_each_other_but_never_themselves() -> None:
    # a, b, c share the tag set {x, y}: each scores 2 / sqrt(2 * 2) = 1.0 with the other two; d has {x} and
    # scores 1 / sqrt(2 * 1) with each of them. With top_k 2, c's list must skip c and take a and b.
    catalog = pa.table({"item_id": ["c", "a", "d", "b"], "tags": [["x", "y"], ["x", "y"], ["x"], ["x", "y"]]})
    out = content_sim.build_from_catalog(catalog, ComputeParams(content_sim_top_k=2)).to_pylist()
    assert [(row["item_id"], row["similar_items"]) for row in out] == [
        ("a", ["b", "c"]),
        ("b", ["a", "c"]),
        ("c", ["a", "b"]),
        ("d", ["a", "b"]),
    ]
    assert out[2]["similar_scores"] == [1.0, 1.0]
    assert out[3]["similar_scores"] == pytest.approx([0.7071067811865475, 0.7071067811865475])  # 1 / sqrt(2 * 1)


def test_same_pairing_tags_but_different_tag_counts_score_differently() -> None:
    # "common" is on 4 items > 3: a, b and c pair only through "x", but |a| = 1 while |b| = |c| = 2, so
    # a-b = a-c = 1 / sqrt(1 * 2) and b-c = 1 / sqrt(2 * 2) = 0.5; d and e pair with nothing
    catalog = pa.table(
        {
            "item_id": ["a", "b", "c", "d", "e"],
            "tags": [["x"], ["common", "x"], ["common", "x"], ["common"], ["common"]],
        }
    )
    out = content_sim.build_from_catalog(catalog, ComputeParams(content_sim_max_tag_items=3)).to_pylist()
    assert [row["similar_items"] for row in out] == [["b", "c"], ["a", "c"], ["a", "b"], [], []]
    assert out[0]["similar_scores"] == pytest.approx([0.7071067811865475, 0.7071067811865475])
    assert out[1]["similar_scores"] == pytest.approx([0.7071067811865475, 0.5])
    assert out[2]["similar_scores"] == pytest.approx([0.7071067811865475, 0.5])


# --- property test: the signature-grouped build against the plain self-join it replaced ---


def _reference_pairs(catalog: pa.Table, max_tag_items: int) -> pa.Table:
    """(item_id, similar_id, score) for every pair of distinct items sharing at least one pairing tag, by exploding
    (item, tag) and self-joining on tag: quadratic in the items per tag, the straightforward definition."""
    items = catalog.column("item_id").combine_chunks()
    tags = catalog.column("tags").combine_chunks()
    exploded = pa.table({"item_id": pc.take(items, pc.list_parent_indices(tags)), "tag": pc.list_flatten(tags)})
    exploded = exploded.filter(pc.and_(pc.is_valid(exploded.column("tag")), pc.not_equal(exploded.column("tag"), "")))
    exploded = exploded.group_by(["item_id", "tag"], use_threads=False).aggregate([]).select(["item_id", "tag"])
    sizes = exploded.group_by("item_id", use_threads=False).aggregate([([], "count_all")])
    tag_items = exploded.group_by("tag", use_threads=False).aggregate([([], "count_all")])
    pairing_tags = tag_items.filter(pc.less_equal(tag_items.column("count_all"), max_tag_items)).column("tag")
    pairing = exploded.filter(pc.is_in(exploded.column("tag"), value_set=pairing_tags.combine_chunks()))
    joined = pairing.join(pairing.rename_columns(["similar_id", "tag"]), keys="tag", join_type="inner")
    joined = joined.filter(pc.not_equal(joined.column("item_id"), joined.column("similar_id")))
    shared = joined.group_by(["item_id", "similar_id"], use_threads=False).aggregate([([], "count_all")])
    shared = shared.join(sizes.rename_columns(["item_id", "size"]), keys="item_id", join_type="inner")
    shared = shared.join(sizes.rename_columns(["similar_id", "similar_size"]), keys="similar_id", join_type="inner")
    denominator = pc.sqrt(
        pc.multiply(shared.column("size").cast(pa.float64()), shared.column("similar_size").cast(pa.float64()))
    )
    score = pc.divide(shared.column("count_all").cast(pa.float64()), denominator)
    return pa.table({"item_id": shared.column("item_id"), "similar_id": shared.column("similar_id"), "score": score})


def _reference_build(catalog: pa.Table, params: ComputeParams) -> pa.Table:
    catalog = catalog.select(["item_id", "tags"]).sort_by("item_id")
    top = top_k_per_group(
        _reference_pairs(catalog, params.content_sim_max_tag_items),
        "item_id",
        [("score", "descending"), ("similar_id", "ascending")],
        params.content_sim_top_k,
    )
    per_item = top.group_by("item_id", use_threads=False).aggregate([([], "count_all")])
    lengths = (
        pa.table({"item_id": catalog.column("item_id")})
        .join(per_item, keys="item_id", join_type="left outer")
        .sort_by("item_id")
        .column("count_all")
    )
    lengths = pc.fill_null(lengths, 0).combine_chunks()
    offsets = pa.concat_arrays([pa.array([0], pa.int64()), pc.cumulative_sum(lengths)]).cast(pa.int32())
    out = pa.table(
        {
            "item_id": catalog.column("item_id"),
            "tags": catalog.column("tags"),
            "similar_items": pa.ListArray.from_arrays(offsets, top.column("similar_id").combine_chunks()),
            "similar_scores": pa.ListArray.from_arrays(offsets, top.column("score").combine_chunks()),
        }
    )
    return out.cast(content_sim.SCHEMA)


def _random_catalog(rng: np.random.Generator) -> pa.Table:
    """Item ids of mixed lengths in shuffled order (byte order differs from numeric order); tag sets drawn from a
    few repeated templates or at random, with a skewed vocabulary (some tags on many items, most on few), so tag
    sets repeat and scores tie; plus items without usable tags (empty, null, blank or null tags) and repeated tags
    in a list."""
    num_items = int(rng.integers(0, 100))
    ids = rng.choice(10_000, size=num_items, replace=False)
    item_ids = [f"i{number}" if number % 3 else f"item-{number}" for number in ids]
    vocabulary = [f"t{index}" for index in range(int(rng.integers(1, 15)))]
    popularity = 1.0 / np.arange(1, len(vocabulary) + 1)
    popularity /= popularity.sum()

    def draw_tags() -> list[str]:
        size = int(rng.integers(1, min(4, len(vocabulary)) + 1))
        return sorted(str(tag) for tag in rng.choice(vocabulary, size=size, replace=False, p=popularity))

    templates = [draw_tags() for _ in range(int(rng.integers(1, 5)))]
    tags: list[list[str | None] | None] = []
    for _ in range(num_items):
        draw = rng.random()
        if draw < 0.5:
            tags.append(list(templates[int(rng.integers(len(templates)))]))
        elif draw < 0.85:
            tags.append(draw_tags())
        elif draw < 0.9:
            tags.append([])
        elif draw < 0.93:
            tags.append(None)
        elif draw < 0.96:
            tags.append(["", None])
        else:
            tag = str(rng.choice(vocabulary))
            tags.append([tag, tag, ""])
    return pa.table({"item_id": pa.array(item_ids, pa.string()), "tags": pa.array(tags, pa.list_(pa.string()))})


def _random_params(rng: np.random.Generator, catalog: pa.Table) -> ComputeParams:
    """A small or the default top_k, and a tag cap that leaves some tags of `catalog` too common, or none."""
    flat = pc.list_flatten(catalog.column("tags").combine_chunks())
    counts = flat.value_counts().field("counts").to_numpy() if len(flat) else np.array([1])
    return ComputeParams(
        content_sim_top_k=int(rng.choice([1, 2, 3, 5, 50])),
        content_sim_max_tag_items=int(rng.choice([1, max(1, int(np.median(counts))), max(1, counts.max() - 1), 5000])),
    )


@pytest.mark.parametrize("seed", range(60))
def test_matches_the_self_join_reference_byte_for_byte(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(seed)
    catalog = _random_catalog(rng)
    params = _random_params(rng, catalog)
    # Tiny blocks on every other seed, so the pairs are built over many blocks, some of one signature.
    if seed % 2:
        monkeypatch.setattr(content_sim, "_BLOCK_CANDIDATES", int(rng.integers(1, 40)))
    expected = _reference_build(catalog, params)
    out = content_sim.build_from_catalog(catalog, params)
    assert out.schema == expected.schema
    assert out.equals(expected)
    assert to_parquet(out, content_sim.SCHEMA, kind=content_sim.KIND) == to_parquet(
        expected, content_sim.SCHEMA, kind=content_sim.KIND
    )


def test_matches_the_reference_when_every_item_has_its_own_tag_set(monkeypatch: pytest.MonkeyPatch) -> None:
    # The case signatures do not help: a shared category each plus one distinct tag per item.
    monkeypatch.setattr(content_sim, "_BLOCK_CANDIDATES", 50)
    catalog = pa.table(
        {
            "item_id": [f"i{index:03d}" for index in range(120)],
            "tags": [[f"category:{index % 4}", f"sku:{index}"] for index in range(120)],
        }
    )
    params = ComputeParams(content_sim_top_k=5)
    assert content_sim.build_from_catalog(catalog, params).equals(_reference_build(catalog, params))


# compute_kind: a catalog built once is not rebuilt while its bytes and the knobs stay the same.


def _compute(store: FileSystemStore, catalog_path: Path, params: ComputeParams | None = None) -> ComputeResult:
    day = dt.date(2026, 1, 1)
    settings = Settings(store=store.uri, compute=params or ComputeParams())
    return compute_kind(store, "content_sim", "demo", "home", Window(start=day, end=day), settings, str(catalog_path))


def test_an_unchanged_catalog_reuses_the_recorded_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FileSystemStore(tmp_path / "store")
    catalog = tmp_path / "catalog.csv"
    shutil.copy(SAMPLE_CATALOG, catalog)
    first = _compute(store, catalog)
    assert first.written

    def no_build(*args, **kwargs):
        raise AssertionError("rebuilt an unchanged catalog")

    with monkeypatch.context() as patched:
        patched.setattr(content_sim, "build_from_catalog", no_build)
        again = _compute(store, catalog)
    assert not again.written and again.artifact == first.artifact  # same version, rows, keys, bytes and URI

    # other knobs, other bytes, or a lost artifact: built again
    assert _compute(store, catalog, ComputeParams(content_sim_top_k=3)).artifact.version != first.artifact.version
    catalog.write_text(catalog.read_text().replace("category:", "kind:"))
    changed = _compute(store, catalog)
    assert changed.written and changed.artifact.version != first.artifact.version
    shutil.copy(SAMPLE_CATALOG, catalog)
    (store.root / first.artifact.uri.removeprefix(store.uri + "/")).unlink()
    rebuilt = _compute(store, catalog)
    assert rebuilt.written and rebuilt.artifact == first.artifact
