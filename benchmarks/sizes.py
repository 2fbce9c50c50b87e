"""Artifact sizes and load times per kind: Parquet bytes in the store, time to load into the API's serving
structures (recsys.serve.reader.loading: load_artifact for whole-file kinds; the footer and row groups for implicit),
and the loaded form's memory as the artifact cache accounts it (`nbytes`).

Usage: .venv/bin/python benchmarks/sizes.py --store file://... [--repeat 3] [--row-groups 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from common import SURFACE, TENANT, proc_status


def measure(store_uri: str, repeat: int, sample_groups: int) -> dict:
    from recsys.publish.service import read_pointer
    from recsys.serve.reader.loading import load_artifact, load_footer, load_row_group
    from recsys.store import open_store

    store = open_store(store_uri)
    pointer = read_pointer(store, TENANT, SURFACE)
    if pointer is None:
        raise SystemExit(f"no current manifest for {TENANT}/{SURFACE} in {store_uri}")
    manifest = pointer.manifest
    kinds = {}
    rss_before = proc_status()["VmRSS"]
    keep = []  # loaded forms stay referenced, so the RSS growth below is what serving every kind holds
    for kind, entry in sorted(manifest.artifacts.items()):
        key = store.key_of(entry.uri)
        info = {"bytes": entry.bytes, "rows": entry.rows, "keys": entry.keys}
        if kind == "implicit":
            times, footer = [], None
            for _ in range(repeat):
                t0 = time.perf_counter()
                footer = load_footer(kind, entry.uri, store, key)
                times.append(time.perf_counter() - t0)
            assert footer is not None
            groups = footer.metadata.num_row_groups
            picks = sorted({round(i * (groups - 1) / max(sample_groups - 1, 1)) for i in range(sample_groups)})
            group_times, group_bytes = [], []
            for group in picks:
                t0 = time.perf_counter()
                rows = load_row_group(kind, entry.uri, store, key, footer, group)
                group_times.append(time.perf_counter() - t0)
                group_bytes.append(rows.nbytes)
                keep.append(rows)
            info.update(
                footer_load_ms=statistics.median(times) * 1000,
                footer_nbytes=footer.nbytes,
                row_groups=groups,
                row_group_rows=footer.metadata.row_group(0).num_rows,
                row_group_load_ms=statistics.mean(group_times) * 1000,
                row_group_load_max_ms=max(group_times) * 1000,
                row_group_nbytes=statistics.mean(group_bytes),
                all_row_groups_nbytes=statistics.mean(group_bytes) * groups,
                sampled_groups=len(picks),
            )
        else:
            times, loaded = [], None
            for _ in range(repeat):
                t0 = time.perf_counter()
                loaded = load_artifact(kind, entry.uri, store, key)
                times.append(time.perf_counter() - t0)
            keep.append(loaded)
            info.update(load_ms=statistics.median(times) * 1000, nbytes=loaded.nbytes)
        kinds[kind] = info
    status = proc_status()
    return {
        "manifest_version": manifest.manifest_version,
        "kinds": kinds,
        "rss_before_mb": rss_before,
        "rss_loaded_mb": status["VmRSS"],
        "peak_rss_mb": status["VmHWM"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--row-groups", type=int, default=20, help="implicit row groups sampled")
    args = parser.parse_args()
    print(json.dumps(measure(args.store, args.repeat, args.row_groups)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
