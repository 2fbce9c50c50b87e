"""content_sim cost against catalog shape: build_from_catalog over a benchmark catalog with a given number of
taste groups (items per category tag = items / groups; 3 brands and 2 styles per group), in this process.

The pairs it self-joins are sum over pairing tags of items(tag) ** 2, so the cost follows the largest tags, not
the number of items. Run once per shape in a fresh process (the runner reaps it for its peak RSS).

Usage: .venv/bin/python benchmarks/content_scaling.py --items 50000 --groups 100
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--groups", type=int, default=100)
    args = parser.parse_args()

    from generate import DataSpec, build_world, write_catalog

    from recsys.compute import catalog, content_sim
    from recsys.settings import ComputeParams

    spec = DataSpec(items=args.items, groups=args.groups)
    world = build_world(spec)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "catalog.csv"
        write_catalog(spec, world, path)
        data = path.read_bytes()
    params = ComputeParams()
    started = time.perf_counter()
    items = catalog.read_catalog(data, "csv", spec.surface)
    read_s = time.perf_counter() - started
    started = time.perf_counter()
    table = content_sim.build_from_catalog(items, params)
    build_s = time.perf_counter() - started
    sizes = [np.bincount(world.item_group), np.bincount(world.brand), np.bincount(world.style)]
    pairing = [s[(s > 0) & (s <= params.content_sim_max_tag_items)] for s in sizes]
    print(
        json.dumps(
            {
                "items": args.items,
                "groups": args.groups,
                "items_per_category": args.items / args.groups,
                "joined_pairs": int(sum(int((s.astype(np.int64) ** 2).sum()) for s in pairing)),
                "read_s": read_s,
                "build_s": build_s,
                "rows": table.num_rows,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
