"""Content similarity: items sharing catalog tags, built from the catalog rather than from events.

Similarity is the cosine over tag sets, |A ∩ B| / sqrt(|A| * |B|). Pairs are found by exploding (item, tag) and
self-joining on tag; a tag carried by more than content_sim_max_tag_items items is too common to discriminate, so
it creates no pairs, but it still counts in |A| and is still listed in `tags`.

SCHEMA (the artifact), one row per catalog item, sorted by item_id:
  item_id         string not null
  tags            list<string>      the item's catalog tags (as read by catalog.read_catalog: normalized, sorted)
  similar_items   list<string>      at most content_sim_top_k other items; score desc, item_id asc; never itself
  similar_scores  list<float64>     the cosine of each similar item, aligned with similar_items
Items without similar items have empty lists.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from recsys.compute.artifact import top_k_per_group
from recsys.settings import ComputeParams

KIND = "content_sim"

SCHEMA = pa.schema(
    [
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("tags", pa.list_(pa.string())),
        pa.field("similar_items", pa.list_(pa.string())),
        pa.field("similar_scores", pa.list_(pa.float64())),
    ]
)


def _pairs(catalog: pa.Table, max_tag_items: int) -> pa.Table:
    """(item_id, similar_id, score) for every pair of distinct items sharing at least one pairing tag."""
    items = catalog.column("item_id").combine_chunks()
    tags = catalog.column("tags").combine_chunks()
    flat = pc.list_flatten(tags)
    exploded = pa.table({"item_id": pc.take(items, pc.list_parent_indices(tags)), "tag": flat})
    exploded = exploded.filter(pc.and_(pc.is_valid(exploded.column("tag")), pc.not_equal(exploded.column("tag"), "")))
    exploded = exploded.group_by(["item_id", "tag"], use_threads=False).aggregate([]).select(["item_id", "tag"])

    sizes = exploded.group_by("item_id", use_threads=False).aggregate([([], "count_all")])
    tag_items = exploded.group_by("tag", use_threads=False).aggregate([([], "count_all")])
    pairing_tags = tag_items.filter(pc.less_equal(tag_items.column("count_all"), max_tag_items)).column("tag")
    pairing = exploded.filter(pc.is_in(exploded.column("tag"), value_set=pairing_tags.combine_chunks()))

    joined = pairing.join(pairing.rename_columns(["similar_id", "tag"]), keys="tag", join_type="inner")
    joined = joined.filter(pc.not_equal(joined.column("item_id"), joined.column("similar_id")))
    shared = joined.group_by(["item_id", "similar_id"], use_threads=False).aggregate([([], "count_all")])
    shared = shared.join(
        sizes.select(["item_id", "count_all"]).rename_columns(["item_id", "size"]), keys="item_id", join_type="inner"
    )
    shared = shared.join(
        sizes.select(["item_id", "count_all"]).rename_columns(["similar_id", "similar_size"]),
        keys="similar_id",
        join_type="inner",
    )
    denominator = pc.sqrt(
        pc.multiply(shared.column("size").cast(pa.float64()), shared.column("similar_size").cast(pa.float64()))
    )
    return pa.table(
        {
            "item_id": shared.column("item_id"),
            "similar_id": shared.column("similar_id"),
            "score": pc.divide(shared.column("count_all").cast(pa.float64()), denominator),
        }
    )


def build_from_catalog(catalog: pa.Table, params: ComputeParams) -> pa.Table:
    catalog = catalog.select(["item_id", "tags"]).sort_by("item_id")
    if pc.count_distinct(catalog.column("item_id")).as_py() != catalog.num_rows:
        raise ValueError("catalog has duplicate item_ids")
    top = top_k_per_group(
        _pairs(catalog, params.content_sim_max_tag_items),
        "item_id",
        [("score", "descending"), ("similar_id", "ascending")],
        params.content_sim_top_k,
    )
    # One list per catalog item (empty when it has no similar items), cut from `top` which is ordered by
    # item_id then rank, the same item_id order as the sorted catalog.
    per_item = top.group_by("item_id", use_threads=False).aggregate([([], "count_all")])
    lengths = (
        pa.table({"item_id": catalog.column("item_id")})
        .join(per_item, keys="item_id", join_type="left outer")
        .sort_by("item_id")
        .column("count_all")
    )
    lengths = pc.fill_null(lengths, 0).combine_chunks()
    offsets = pa.concat_arrays([pa.array([0], pa.int64()), pc.cumulative_sum(lengths)]).cast(pa.int32())
    similar_items = pa.ListArray.from_arrays(offsets, top.column("similar_id").combine_chunks())
    similar_scores = pa.ListArray.from_arrays(offsets, top.column("score").combine_chunks())
    out = pa.table(
        {
            "item_id": catalog.column("item_id"),
            "tags": catalog.column("tags"),
            "similar_items": similar_items,
            "similar_scores": similar_scores,
        }
    )
    return out.cast(SCHEMA)
