"""content_sim: cosine over catalog tag sets, with too-common tags ignored for pairing."""

from __future__ import annotations

import datetime as dt
import math
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
# IDF weights over the 4 items: ln(4 / df)
RED, SHOE, RARE = math.log(4 / 2), math.log(4 / 3), math.log(4)  # sport, blue and green are on one item each


def cosine(shared: list[float], left: list[float], right: list[float]) -> float:
    """The weighted cosine from the weights of the shared tags and of each side's tags."""
    return sum(w * w for w in shared) / math.sqrt(sum(w * w for w in left) * sum(w * w for w in right))


def test_cosine_over_idf_weighted_tags() -> None:
    out = content_sim.build_from_catalog(CATALOG, ComputeParams())
    assert out.schema == content_sim.SCHEMA
    rows = out.to_pylist()
    assert [row["item_id"] for row in rows] == ["i1", "i2", "i3", "i4"]
    assert [row["tags"] for row in rows] == [["red", "shoe", "sport"], ["red", "shoe"], ["blue", "shoe"], ["green"]]
    assert [row["similar_items"] for row in rows] == [["i2", "i3"], ["i1", "i3"], ["i2", "i1"], []]
    i1, i2, i3 = [RED, SHOE, RARE], [RED, SHOE], [RARE, SHOE]
    assert rows[0]["similar_scores"] == pytest.approx([cosine([RED, SHOE], i1, i2), cosine([SHOE], i1, i3)])
    assert rows[1]["similar_scores"] == pytest.approx([cosine([RED, SHOE], i2, i1), cosine([SHOE], i2, i3)])
    assert rows[2]["similar_scores"] == pytest.approx([cosine([SHOE], i3, i2), cosine([SHOE], i3, i1)])
    assert rows[3]["similar_scores"] == []


def test_a_tag_on_every_item_weighs_nothing() -> None:
    # "all" is on every item: ln(3 / 3) = 0, so it neither pairs nor counts; c shares nothing else
    catalog = pa.table({"item_id": ["a", "b", "c"], "tags": [["all", "x"], ["all", "x"], ["all"]]})
    rows = content_sim.build_from_catalog(catalog, ComputeParams()).to_pylist()
    assert [(row["item_id"], row["similar_items"]) for row in rows] == [("a", ["b"]), ("b", ["a"]), ("c", [])]
    assert rows[0]["similar_scores"] == pytest.approx([1.0])
    assert rows[2]["tags"] == ["all"]  # still listed


def test_an_items_candidates_come_from_its_rarest_tags_within_the_budget() -> None:
    # Budget 2 items: i1's rarest tag is sport (1 item; red would bring 2 more), i2's is red (2 items), i3's blue.
    # So only i2 finds a candidate, i1 (through red); the scores still count every shared tag (shoe too), and a
    # list need not be symmetric. Tags stay listed.
    out = content_sim.build_from_catalog(CATALOG, ComputeParams(content_sim_max_tag_items=2)).to_pylist()
    assert [row["similar_items"] for row in out] == [[], ["i1"], [], []]
    assert out[1]["similar_scores"] == pytest.approx([cosine([RED, SHOE], [RED, SHOE], [RED, SHOE, RARE])])
    assert out[2]["tags"] == ["blue", "shoe"]


def test_an_item_with_only_broad_tags_still_draws_candidates_from_its_rarest() -> None:
    # Budget 1: x is on 3 of 4 items, but it is a's and b's rarest tag, so they draw from it; c draws from y only
    catalog = pa.table({"item_id": ["a", "b", "c", "d"], "tags": [["x"], ["x"], ["x", "y"], ["z"]]})
    out = content_sim.build_from_catalog(catalog, ComputeParams(content_sim_max_tag_items=1)).to_pylist()
    assert [(row["item_id"], row["similar_items"]) for row in out] == [
        ("a", ["b", "c"]),
        ("b", ["a", "c"]),
        ("c", []),
        ("d", []),
    ]
    x, y = math.log(4 / 3), math.log(4)
    assert out[0]["similar_scores"] == pytest.approx([1.0, cosine([x], [x], [x, y])])


def test_top_k_ties_break_on_item_id() -> None:
    catalog = pa.table({"item_id": ["c", "b", "a", "d"], "tags": [["x"], ["x"], ["x"], ["y"]]})
    out = content_sim.build_from_catalog(catalog, ComputeParams(content_sim_top_k=1)).to_pylist()
    # every pair of a, b, c scores 1.0 (the same tag set)
    assert [(row["item_id"], row["similar_items"]) for row in out] == [
        ("a", ["b"]),
        ("b", ["a"]),
        ("c", ["a"]),
        ("d", []),
    ]
    assert out[0]["similar_scores"] == pytest.approx([1.0])


def test_empty_catalog_and_duplicates() -> None:
    empty = pa.table({"item_id": pa.array([], pa.string()), "tags": pa.array([], pa.list_(pa.string()))})
    out = content_sim.build_from_catalog(empty, ComputeParams())
    assert out.schema == content_sim.SCHEMA
    assert out.num_rows == 0
    with pytest.raises(ValueError, match="duplicate"):
        content_sim.build_from_catalog(pa.table({"item_id": ["a", "a"], "tags": [["x"], ["y"]]}), ComputeParams())


def test_items_with_identical_tag_sets_list_each_other_but_never_themselves() -> None:
    # a, b, c share the tag set {x, y}: each scores 1.0 with the other two; d has {x} and scores
    # w_x² / (|{x, y}| |{x}|) with each of them. With top_k 2, c's list must skip c and take a and b.
    catalog = pa.table(
        {"item_id": ["c", "a", "d", "b", "e"], "tags": [["x", "y"], ["x", "y"], ["x"], ["x", "y"], ["z"]]}
    )
    out = content_sim.build_from_catalog(catalog, ComputeParams(content_sim_top_k=2)).to_pylist()
    assert [(row["item_id"], row["similar_items"]) for row in out] == [
        ("a", ["b", "c"]),
        ("b", ["a", "c"]),
        ("c", ["a", "b"]),
        ("d", ["a", "b"]),
        ("e", []),
    ]
    assert out[2]["similar_scores"] == pytest.approx([1.0, 1.0])
    x, y = math.log(5 / 4), math.log(5 / 3)
    assert out[3]["similar_scores"] == pytest.approx([cosine([x], [x], [x, y])] * 2)


# --- property test: the signature-grouped build against the definition, item by item ---


def _reference_build(catalog: pa.Table, params: ComputeParams) -> pa.Table:
    """content_sim's definition, item by item in Python. Weights: ln(N / df) squared, as integers at WEIGHT_SCALE
    (the same numpy call). An item's candidates: the items sharing one of its generating tags, which are its
    weighted tags from the rarest (df, then first appearance) as long as their summed df stays within
    content_sim_max_tag_items, the rarest always. Score: the shared weights over the product of the norms."""
    catalog = catalog.select(["item_id", "tags"]).sort_by("item_id")
    ids = catalog.column("item_id").to_pylist()
    codes: dict[str, int] = {}
    item_codes = []
    for tags in catalog.column("tags").to_pylist():
        present = [tag for tag in (tags or []) if tag]
        for tag in present:
            codes.setdefault(tag, len(codes))
        item_codes.append(sorted({codes[tag] for tag in present}))
    n = len(ids)
    frequency = np.bincount([c for cs in item_codes for c in cs], minlength=len(codes))
    weight = np.round(np.log(n / np.maximum(frequency, 1)) ** 2 * content_sim.WEIGHT_SCALE)
    weighted = [[c for c in cs if weight[c] > 0] for cs in item_codes]
    norms = [math.sqrt(sum(int(weight[c]) for c in cs)) for cs in weighted]

    def generating(tags: list[int]) -> set[int]:
        chosen, brought = set(), 0
        for code in sorted(tags, key=lambda c: (frequency[c], c)):
            if chosen and brought + frequency[code] > params.content_sim_max_tag_items:
                break
            chosen.add(code)
            brought += frequency[code]
        return chosen

    lists = []
    for i in range(n):
        own = generating(weighted[i])
        candidates = []
        for j in range(n):
            if i == j or not own & set(weighted[j]):
                continue
            total = sum(int(weight[c]) for c in set(weighted[i]) & set(weighted[j]))
            candidates.append((-(total / (norms[i] * norms[j])), ids[j]))
        lists.append(sorted(candidates)[: params.content_sim_top_k])
    out = pa.table(
        {
            "item_id": catalog.column("item_id"),
            "tags": catalog.column("tags"),
            "similar_items": pa.array([[item for _, item in top] for top in lists], pa.list_(pa.string())),
            "similar_scores": pa.array([[-score for score, _ in top] for top in lists], pa.list_(pa.float64())),
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
def test_matches_the_definition_byte_for_byte(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
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
