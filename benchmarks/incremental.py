"""Incremental benchmark: the daily 30-day run where only the newest day is new, vs a full recompute.

The data are 31 generated days ending yesterday (UTC), so the daily run takes the production path: `recsys run`
without --start/--end plans the 30-day window ending yesterday (RECSYS_WINDOW_DAYS=30), ingests only yesterday
(the other days already have ingest reports) and builds every event kind from 29 reused per-day partials plus one
new one.

  1. full:    a fresh store, the 30-day window ending the day before yesterday (every day ingested, every partial
              built): the full recompute, and the state yesterday's daily run left behind
  2. daily:   the same store, no window given: window ending yesterday, one day ingested
  3. single:  a fresh store, only yesterday: the single-day run of the same day size (the target's reference)
  4. explicit (optional): the same store as 2, the window ending yesterday given explicitly (as a backfill would):
              every day re-ingested (identical bytes, nothing rewritten), every partial reused

content_sim depends on the catalog only: the single-day run (a fresh store) builds it, the daily run reuses the
build recorded for the unchanged catalog. To compare what the window costs without it, 2 and 3 are also run with
the event kinds only (`--kinds`, content_sim carried over from the current manifest), the daily one on a copy of
the store as 1 left it.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from common import log
from datasets import bench_spec, dataset_key, ensure
from pipeline import run_pipeline

from recsys_tools.synthetic import SyntheticSpec

WINDOW_DAYS = 30
EVENT_KINDS = ["popularity", "cooc", "implicit", "session_seq", "item_knn"]


def copy_store(source: Path, target: Path) -> Path:
    """A copy of a file:// store. Manifests (and ingest reports) record absolute URIs, so they are rewritten to
    the copy's root; everything else is byte for byte."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    old, new = f"file://{source}", f"file://{target}"
    for path in target.rglob("*.json"):
        text = path.read_text()
        if old in text:
            path.write_text(text.replace(old, new))
    return target


def bench_incremental(day_events: int, runs_dir: Path, base: SyntheticSpec, *, explicit: bool = False) -> dict:
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    first = yesterday - dt.timedelta(days=WINDOW_DAYS)
    spec = bench_spec(base, events_per_day=day_events, days=WINDOW_DAYS + 1, start=first)
    dataset = ensure(spec, log=log)
    store = runs_dir / f"incremental-{dataset_key(spec)}"
    env = {"RECSYS_WINDOW_DAYS": str(WINDOW_DAYS)}

    log(f"incremental: full recompute of {WINDOW_DAYS} days x {day_events:,} events on a fresh store")
    full = run_pipeline(dataset, store, first, yesterday - dt.timedelta(days=1), extra_env=env)
    events_store = copy_store(store, runs_dir / f"incremental-events-{dataset_key(spec)}")
    log(f"incremental: full {full['wall_s']:.1f}s; daily run (no window: ends {yesterday})")
    daily = run_pipeline(dataset, store, None, None, fresh=False, extra_env=env)
    expected = f"{yesterday - dt.timedelta(days=WINDOW_DAYS - 1)}..{yesterday}"
    if daily["window"] != expected:
        log(f"incremental: WARNING the daily run planned {daily['window']}, expected {expected} (midnight UTC?)")
    log(f"incremental: daily {daily['wall_s']:.1f}s; single-day run of {yesterday} on a fresh store")
    single = run_pipeline(
        dataset, runs_dir / f"incremental-single-{dataset_key(spec)}", yesterday, yesterday, extra_env=env
    )
    log("incremental: the daily and the single-day run again with the event kinds only (no content_sim)")
    daily_events = run_pipeline(dataset, events_store, None, None, fresh=False, extra_env=env, kinds=EVENT_KINDS)
    single_events = run_pipeline(
        dataset,
        runs_dir / f"incremental-single-events-{dataset_key(spec)}",
        yesterday,
        yesterday,
        extra_env=env,
        kinds=EVENT_KINDS,
    )
    result = {
        "day_events": day_events,
        "window_days": WINDOW_DAYS,
        "window_events": daily["window_events"],
        "raw_mb": dataset.summary["bytes"] / 1e6,
        "full": full,
        "daily": daily,
        "single": single,
        "daily_over_single": daily["wall_s"] / single["wall_s"],
        "daily_over_full": daily["wall_s"] / full["wall_s"],
        "daily_events": daily_events,
        "single_events": single_events,
        "events_daily_over_single": daily_events["wall_s"] / single_events["wall_s"],
        "expected_window": expected,
    }
    if explicit:
        log("incremental: explicit-window rerun over the ingested store")
        start = yesterday - dt.timedelta(days=WINDOW_DAYS - 1)
        result["explicit"] = run_pipeline(dataset, store, start, yesterday, fresh=False, extra_env=env)
    return result
