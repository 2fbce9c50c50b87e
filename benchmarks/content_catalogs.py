"""content_sim on catalogs with broad tags (one on every item, one on 40%, one on 5%): the benchmark suite's catalog
(category, brand, style) with them added ("suite"), and a shop-like one ("shop": categories of ~2,500 items, topics
of ~200, brands of ~20; nearly every item its own tag set) of 20k, 50k and 500k items. Time and peak RSS of
build_from_catalog in a fresh process, and its recall of the exact top k where the exact top k is computable.

The exact top k is the same IDF-weighted cosine with every weighted tag generating candidates (a budget no item
reaches): quadratic in the broad tags' items, so only run on the smaller catalogs. Recall@k counts, per item
with an exact list, the listed items whose score reaches the exact k-th score (ties at the cut count as hits; the
scores of listed pairs are exact), over min(k, exact list length).

Usage:
  .venv/bin/python benchmarks/content_catalogs.py [--json OUT]              every case, each in a fresh process
  .venv/bin/python benchmarks/content_catalogs.py one --catalog shop --items N [--exact] [--budget B]
                                                                           one case in this process (JSON line)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from common import PYTHON, RUNS, log, run_measured

CASES = [
    {"catalog": "suite", "items": 50_000, "exact": True},
    {"catalog": "shop", "items": 20_000, "exact": True},
    {"catalog": "shop", "items": 50_000, "exact": False},
    {"catalog": "shop", "items": 500_000, "exact": False},
]
RECALL_K = 20


def with_broad_tags(catalog: pa.Table, seed: int = 11) -> pa.Table:
    """`catalog` with `site:all` on every item, `dept:books` on 40% and `genre:fiction` on 5%."""
    rng = np.random.default_rng(seed)
    books, fiction = rng.random(catalog.num_rows) < 0.4, rng.random(catalog.num_rows) < 0.05
    tags = [
        sorted({*own, "site:all", *(["dept:books"] if b else []), *(["genre:fiction"] if f else [])})
        for own, b, f in zip(catalog.column("tags").to_pylist(), books, fiction, strict=True)
    ]
    return catalog.set_column(1, "tags", pa.array(tags, pa.list_(pa.string())))


def suite_catalog(items: int) -> pa.Table:
    """The benchmark suite's catalog of `items` items (benchmarks/datasets.py), with the broad tags."""
    import tempfile

    from datasets import bench_spec

    from recsys.compute.catalog import read_catalog
    from recsys_tools.synthetic import write_catalog

    spec = bench_spec(items=items)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "catalog.csv"
        write_catalog(spec, path)
        catalog = read_catalog(path.read_bytes(), "csv", spec.surface).select(["item_id", "tags"])
    return with_broad_tags(catalog)


def broad_catalog(items: int, seed: int = 11) -> pa.Table:
    """A catalog whose tags spread like a shop's: `site:all` on every item, `dept:books` on 40%, `genre:fiction`
    on 5%, one category of ~2,500 items, one to three topics of ~200, one brand of ~20."""
    rng = np.random.default_rng(seed)
    categories, topics, brands = max(1, items // 2_500), max(1, items * 2 // 200), max(1, items // 20)
    category = rng.integers(categories, size=items)
    brand = rng.integers(brands, size=items)
    topic_count = rng.integers(1, 4, size=items)
    books, fiction = rng.random(items) < 0.4, rng.random(items) < 0.05
    tags = []
    for item in range(items):
        own = ["site:all", f"category:c{category[item]}", f"brand:b{brand[item]}"]
        own += [f"topic:t{t}" for t in rng.integers(topics, size=topic_count[item])]
        if books[item]:
            own.append("dept:books")
        if fiction[item]:
            own.append("genre:fiction")
        tags.append(sorted(set(own)))
    return pa.table(
        {"item_id": [f"i{item:07d}" for item in range(items)], "tags": pa.array(tags, pa.list_(pa.string()))}
    )


def recall(approx: pa.Table, exact: pa.Table, k: int) -> float:
    """Mean recall@k of `approx`'s lists against `exact`'s (tie-aware, see the module docstring)."""
    hits = wanted = 0
    for a_scores, e_scores in zip(
        approx.column("similar_scores").to_pylist(), exact.column("similar_scores").to_pylist(), strict=True
    ):
        e_scores = e_scores[:k]
        if not e_scores:
            continue
        cut = e_scores[-1] - 1e-12
        hits += sum(1 for score in a_scores[:k] if score >= cut)
        wanted += len(e_scores)
    return hits / wanted if wanted else 1.0


def one(name: str, items: int, exact: bool, budget: int | None = None) -> dict:
    from recsys.compute import content_sim
    from recsys.settings import ComputeParams

    catalog = suite_catalog(items) if name == "suite" else broad_catalog(items)
    params = ComputeParams(content_sim_top_k=50)
    if budget is not None:
        params = params.model_copy(update={"content_sim_max_tag_items": budget})
    started = time.perf_counter()
    built = content_sim.build_from_catalog(catalog, params)
    result = {"catalog": name, "items": items, "build_s": time.perf_counter() - started, "rows": built.num_rows}
    result["tag_sets"] = len(set(map(tuple, catalog.column("tags").to_pylist())))
    listed = np.asarray(built.column("similar_items").combine_chunks().value_lengths())
    result["items_with_neighbours"] = int((listed > 0).sum())
    if exact:
        started = time.perf_counter()
        reference = content_sim.build_from_catalog(
            catalog,
            params.model_copy(update={"content_sim_max_tag_items": items * 64}),  # every tag generates
        )
        result["exact_s"] = time.perf_counter() - started
        result[f"recall_at_{RECALL_K}"] = recall(built, reference, RECALL_K)
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["one"]:
        parser = argparse.ArgumentParser()
        parser.add_argument("--catalog", choices=["suite", "shop"], default="shop")
        parser.add_argument("--items", type=int, required=True)
        parser.add_argument("--exact", action="store_true")
        parser.add_argument("--budget", type=int, help="content_sim_max_tag_items (default: the setting's)")
        args = parser.parse_args(argv[1:])
        print(json.dumps(one(args.catalog, args.items, args.exact, args.budget)))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=RUNS / "content_catalogs.json")
    args = parser.parse_args(argv)
    results = []
    for case in CASES:
        # The build alone (its time and peak RSS), then the recall run apart (the exact build's memory is not ours).
        case_args = [PYTHON, __file__, "one", "--catalog", case["catalog"], "--items", str(case["items"])]
        measured = run_measured(case_args).check()
        row = {**measured.json(), "peak_rss_mb": measured.peak_rss_mb}
        if case["exact"]:
            row.update(
                {
                    key: value
                    for key, value in run_measured([*case_args, "--exact"]).check().json().items()
                    if key.startswith(("recall", "exact"))
                }
            )
        log(json.dumps(row))
        results.append(row)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
