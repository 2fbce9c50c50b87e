"""The benchmarks' data sets: recsys_tools.synthetic's bulk sampler (exactly N events a day), cached on disk.

A data set is generated once under `.out/bench-data/<key>/` (`raw/dt=YYYY-MM-DD/events.jsonl`, `catalog.csv`,
`summary.json`), where the key hashes the whole spec and DATA_VERSION: a rerun finds it there and skips the work.
The default spec is one UTC day of 1M events over 50,000 items (Zipf 1.1, 50 taste groups) and 100,000 users.

Usage: .venv/bin/python benchmarks/datasets.py --events 1000000 [--days 1] [--start 2026-01-01] [--out DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recsys_tools.synthetic import SyntheticSpec, build_world, generate, write_catalog

DATA_VERSION = 2  # 2: the one generator (recsys_tools.synthetic); 1 was benchmarks/generate.py
ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".out" / "bench-data"
BENCH = SyntheticSpec(
    tenant="bench", seed=7, start=dt.date(2026, 1, 1), days=1, items=50_000, users=100_000, taste_groups=50,
    events_per_day=1_000_000,
)  # fmt: skip


def bench_spec(base: SyntheticSpec = BENCH, **changes: Any) -> SyntheticSpec:
    """`base` with `changes`, validated."""
    return SyntheticSpec(**{**base.model_dump(), **changes})


def dataset_key(spec: SyntheticSpec) -> str:
    text = json.dumps({"v": DATA_VERSION, **spec.model_dump(mode="json")}, sort_keys=True)
    label = f"{(spec.events_per_day or 0) // 1000}k-x{spec.days}-{spec.start.isoformat()}"
    return f"{label}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


@dataclass(frozen=True)
class Dataset:
    spec: SyntheticSpec
    root: Path

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def catalog(self) -> Path:
        return self.root / "catalog.csv"

    def day_file(self, day: dt.date) -> Path:
        return self.raw / f"dt={day.isoformat()}" / "events.jsonl"

    @property
    def summary(self) -> dict:
        return json.loads((self.root / "summary.json").read_text())


def ensure(spec: SyntheticSpec, cache: Path = CACHE, log: Callable[[str], None] | None = None) -> Dataset:
    """The data set of `spec`, generated into the cache unless it is there already."""
    if spec.events_per_day is None:
        raise ValueError("benchmark data sets have an exact number of events a day: set events_per_day")
    dataset = Dataset(spec, cache / dataset_key(spec))
    if (dataset.root / "summary.json").is_file():
        return dataset
    started = time.perf_counter()
    world = build_world(spec)
    generation = generate(spec, dataset.raw, world)
    write_catalog(spec, dataset.catalog, world)
    summary = {
        "spec": spec.model_dump(mode="json"),
        "data_version": DATA_VERSION,
        "seconds": round(time.perf_counter() - started, 2),
        "bytes": sum(dataset.day_file(day).stat().st_size for day in spec.day_list),
        "generation": generation.model_dump(mode="json"),
    }
    (dataset.root / "summary.json").write_text(json.dumps(summary, indent=2))
    if log:
        log(
            f"generated {spec.days} x {spec.events_per_day:,} events ({summary['bytes'] / 1e6:.0f} MB) in "
            f"{summary['seconds']:.1f}s -> {dataset.root}"
        )
    return dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=BENCH.events_per_day, help="lines per day")
    parser.add_argument("--days", type=int, default=BENCH.days)
    parser.add_argument("--start", type=dt.date.fromisoformat, default=BENCH.start)
    parser.add_argument("--items", type=int, default=BENCH.items)
    parser.add_argument("--users", type=int, default=BENCH.users)
    parser.add_argument("--groups", type=int, default=BENCH.taste_groups)
    parser.add_argument("--seed", type=int, default=BENCH.seed)
    parser.add_argument("--out", type=Path, default=CACHE, help="cache directory (a folder per spec)")
    args = parser.parse_args(argv)
    spec = bench_spec(
        events_per_day=args.events, days=args.days, start=args.start, items=args.items, users=args.users,
        taste_groups=args.groups, seed=args.seed,
    )  # fmt: skip
    dataset = ensure(spec, args.out, log=lambda line: print(line, file=sys.stderr))
    print(json.dumps({"root": str(dataset.root), **dataset.summary}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
