"""The Postgres event source against files: one synthetic day ingested from its JSONL file and from a Postgres table
holding the same events, each in a fresh process, alternately, on a throwaway server on this machine.

The events are loaded into `exposure_events` first (not timed as part of the read: `recsys db load-events`, one row
per event). Each round ingests the day both ways (ingest_day: read, parse, validate, dedupe, sort, write the
canonical Parquet); the median of the rounds is reported, with the ratio postgres / JSONL and the check that both
partitions are byte-identical.

Usage: .venv/bin/python benchmarks/postgres_source.py [--events 1m] [--rounds 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import PYTHON, RUNS, log, parse_size, run_measured
from datasets import bench_spec, ensure

DAY = dt.date(2026, 1, 1)


def one(raw: str, store: str) -> None:
    """In the subprocess: ingest the day from `raw` into `store`; print the report's counts and the read time."""
    from recsys.events.parse import DayScope
    from recsys.ingest.service import ingest_day
    from recsys.settings import Settings
    from recsys.store import open_store

    scope = DayScope("bench", "home", DAY, frozenset(Settings().event_types))
    started = time.perf_counter()
    report = ingest_day(open_store(store), raw, scope)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "accepted": report.accepted, "canonical_uri": report.canonical_uri}))


def measure(events: int, rounds: int = 3) -> dict:
    import psycopg

    from recsys.store import open_store
    from recsys_tools.database import load_events
    from recsys_tools.local import postgres

    data = ensure(bench_spec(events_per_day=events), log=log)
    with postgres.running() as server, tempfile.TemporaryDirectory(prefix="bench-pg-") as tmp:
        url = server.create_database("bench")
        started = time.perf_counter()
        with psycopg.connect(url, autocommit=True) as conn:
            loaded = load_events(conn, str(data.raw), [DAY])
            conn.execute("VACUUM ANALYZE exposure_events")
        load_seconds = time.perf_counter() - started
        log(f"loaded {loaded.loaded:,} events into Postgres in {load_seconds:.1f} s")
        sources = {"jsonl": str(data.raw), "postgres": url}
        runs: dict[str, list] = {name: [] for name in sources}
        for index in range(rounds):
            for name, raw in sources.items():
                store = f"file://{tmp}/{name}"
                measured = run_measured([PYTHON, __file__, "one", raw, store]).check()
                result = measured.json()
                runs[name].append({"wall": measured.wall, "peak_rss_mb": measured.peak_rss_mb, **result})
                log(f"round {index + 1} {name}: {result['seconds']:.2f} s, {measured.peak_rss_mb:.0f} MB")
        partitions = {
            name: (store := open_store(f"file://{tmp}/{name}")).get(store.key_of(runs[name][-1]["canonical_uri"])).data
            for name in sources
        }
    median = {name: statistics.median(r["seconds"] for r in runs[name]) for name in sources}
    return {
        "events": events,
        "loaded": loaded.loaded,
        "load_seconds": load_seconds,
        "rounds": rounds,
        "seconds": median,
        "peak_rss_mb": {name: max(r["peak_rss_mb"] for r in runs[name]) for name in sources},
        "accepted": {name: runs[name][-1]["accepted"] for name in sources},
        "ratio": median["postgres"] / median["jsonl"],
        "identical": partitions["jsonl"] == partitions["postgres"],
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["one"]:
        one(*argv[1:3])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default="1m")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, default=RUNS / "postgres_source.json")
    args = parser.parse_args(argv)
    result = measure(parse_size(args.events), args.rounds)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
