"""content_sim cost against catalog shape: build_from_catalog over a benchmark catalog with a given number of
taste groups (items per category tag = items / groups; 3 brands and 2 styles per group), in this process.

`joined_pairs`, sum over pairing tags of items(tag) ** 2, is what a self-join of items on tag would pair;
content_sim pairs signatures (items with the same tags), of which the benchmark catalog has few. With
--distinct-tag-sets every item also gets a tag of its own (`sku:<item_id>`, pairing it with nothing else), so
each item is its own signature: the worst case, where content_sim pairs as many rows as the item self-join.
Run once per shape in a fresh process (the runner reaps it for its peak RSS).

Usage: .venv/bin/python benchmarks/content_scaling.py --items 50000 --groups 100 [--distinct-tag-sets]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--distinct-tag-sets", action="store_true", help="add a tag of its own to every item")
    args = parser.parse_args()

    from datasets import bench_spec

    from recsys.compute import catalog, content_sim
    from recsys.settings import ComputeParams
    from recsys_tools.synthetic import build_world, write_catalog

    spec = bench_spec(items=args.items, taste_groups=args.groups)
    world = build_world(spec)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "catalog.csv"
        write_catalog(spec, path, world)
        data = path.read_bytes()
    params = ComputeParams()
    started = time.perf_counter()
    items = catalog.read_catalog(data, "csv", spec.surface)
    read_s = time.perf_counter() - started
    if args.distinct_tag_sets:
        items = _with_own_tags(items)
    tag_sets = pc.count_distinct(pc.binary_join(items.column("tags"), "|")).as_py()
    started = time.perf_counter()
    table = content_sim.build_from_catalog(items, params)
    build_s = time.perf_counter() - started
    sizes = [np.bincount(world.item_group), np.bincount(world.item_brand), np.bincount(world.item_style)]
    pairing = [s[(s > 0) & (s <= params.content_sim_max_tag_items)] for s in sizes]
    own_pairs = items.num_rows if args.distinct_tag_sets else 0
    print(
        json.dumps(
            {
                "items": args.items,
                "groups": args.groups,
                "items_per_category": args.items / args.groups,
                "distinct_tag_sets": args.distinct_tag_sets,
                "joined_pairs": int(sum(int((s.astype(np.int64) ** 2).sum()) for s in pairing)) + own_pairs,
                "distinct_tag_sets_count": tag_sets,
                "read_s": read_s,
                "build_s": build_s,
                "rows": table.num_rows,
            }
        )
    )
    return 0


def _with_own_tags(items: pa.Table) -> pa.Table:
    """`items` with `sku:<item_id>` appended to every item's tags."""
    tags = items.column("tags").combine_chunks()
    flat = pc.list_flatten(tags)
    lengths = pc.list_value_length(tags).to_numpy(zero_copy_only=False)
    offsets = np.zeros(items.num_rows + 1, np.int64)
    np.cumsum(lengths + 1, out=offsets[1:])
    # Each item's tags, then its own tag (taken from after the flattened tags).
    own = offsets[1:] - 1
    order = np.empty(offsets[-1], np.int64)
    is_tag = np.ones(offsets[-1], bool)
    is_tag[own] = False
    order[is_tag] = np.arange(len(flat))
    order[own] = len(flat) + np.arange(items.num_rows)
    skus = pc.binary_join_element_wise("sku:", items.column("item_id").combine_chunks(), "")
    values = pa.concat_arrays([flat, skus]).take(pa.array(order))
    merged = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), values)
    return items.set_column(items.schema.get_field_index("tags"), "tags", merged)


if __name__ == "__main__":
    raise SystemExit(main())
