"""ingest_day: the raw files of one (tenant, surface, UTC day) -> canonical partition, quarantine and report.

A rerun with the same raw input produces identical bytes and rewrites nothing (put_if_changed).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel

from recsys import paths
from recsys.events.contract import CANONICAL_SCHEMA, CANONICAL_SORT
from recsys.events.parse import DayScope, ParsedEvents, parse_events
from recsys.ingest.sources import raw_files
from recsys.store import ObjectStore
from recsys.tables import to_parquet

_DEDUP_FIELDS = ("tenant", "surface", "session_id", "request_id", "item_id", "ts", "event_type")


class IngestReport(BaseModel):
    """Counts of one ingested day. Stored beside the partition and returned to the state machine (small)."""

    tenant: str
    surface: str
    day: dt.date
    files: int
    read: int  # non-blank lines of this day
    accepted: int  # events in the canonical partition (after dedup)
    duplicates: int
    quarantined: int
    reasons: dict[str, int]  # quarantined lines by reason
    other_days: int  # lines of other days found in undated files (not errors)
    distinct_items: int
    distinct_sessions: int
    distinct_users: int
    canonical_uri: str
    quarantine_uri: str | None
    kept_existing: bool = False  # no raw files were found, so the partition ingested earlier was kept as it was

    @property
    def error_rate(self) -> float:
        return self.quarantined / self.read if self.read else 0.0


def dedupe(events: pa.Table) -> tuple[pa.Table, int]:
    """Keep the first occurrence of each event key: event_id when given, else the event's identifying fields."""
    if events.num_rows == 0:
        return events, 0
    parts = [pc.fill_null(pc.cast(events[name], pa.string()), "") for name in _DEDUP_FIELDS]
    composite = pc.binary_join_element_wise(*parts, "\x1f")
    key = pc.coalesce(pc.binary_join_element_wise("id", events["event_id"], "\x1f"), composite)
    indexed = pa.table({"key": key, "row": pa.array(range(events.num_rows), pa.int64())})
    first = indexed.group_by("key", use_threads=False).aggregate([("row", "min")])["row_min"]
    kept = events.take(first)  # order does not matter: the partition is sorted afterwards
    return kept, events.num_rows - kept.num_rows


def canonicalize(parsed: list[ParsedEvents]) -> tuple[pa.Table, int]:
    """Accepted events of all sources -> the canonical partition (deduplicated, sorted) and the duplicate count."""
    tables = [p.events for p in parsed if p.events.num_rows]
    if not tables:
        return CANONICAL_SCHEMA.empty_table(), 0
    events = pa.concat_tables(tables)
    events = events.set_column(events.schema.get_field_index("ts"), "ts", events["ts_utc"]).drop_columns(["ts_utc"])
    events, duplicates = dedupe(events)
    canonical = events.select(CANONICAL_SCHEMA.names).cast(CANONICAL_SCHEMA)
    return canonical.sort_by(CANONICAL_SORT), duplicates


def ingest_day(store: ObjectStore, raw_uri: str, scope: DayScope) -> IngestReport:
    """Ingest one day; never raises on bad lines (they are quarantined), only on I/O failures.

    When no raw file holds the day any more but a non-empty partition was ingested before, that partition is kept
    (a raw prefix that vanished must not erase good data); delete the partition to really empty a day.
    """
    files = raw_files(raw_uri, scope.day)
    if not files:
        existing = load_report(store, scope.tenant, scope.surface, scope.day)
        if existing is not None and existing.accepted > 0:
            return existing.model_copy(update={"kept_existing": True})
    parsed = [parse_events(f.read(), source=f.source, scope=scope, dated=f.dated) for f in files]
    canonical, duplicates = canonicalize(parsed)
    rejections = [r for p in parsed for r in p.rejections]

    events_key = paths.canonical_events(scope.tenant, scope.surface, scope.day)
    store.put_if_changed(events_key, to_parquet(canonical, CANONICAL_SCHEMA, kind="canonical"))
    quarantine_key = paths.quarantine(scope.tenant, scope.surface, scope.day)
    if rejections:
        body = "".join(json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in rejections)
        store.put_if_changed(quarantine_key, body.encode(), content_type="application/x-ndjson")
    else:
        store.delete(quarantine_key)  # a fixed rerun leaves no stale quarantine behind

    report = IngestReport(
        tenant=scope.tenant,
        surface=scope.surface,
        day=scope.day,
        files=len(parsed),
        read=sum(p.read for p in parsed),
        accepted=canonical.num_rows,
        duplicates=duplicates,
        quarantined=len(rejections),
        reasons=dict(sorted(Counter(str(r.reason) for r in rejections).items())),
        other_days=sum(p.other_days for p in parsed),
        distinct_items=pc.count_distinct(canonical["item_id"]).as_py(),
        distinct_sessions=pc.count_distinct(canonical["session_id"]).as_py(),
        distinct_users=pc.count_distinct(canonical["user_id"]).as_py(),
        canonical_uri=store.url(events_key),
        quarantine_uri=store.url(quarantine_key) if rejections else None,
    )
    store.put_if_changed(
        paths.ingest_report(scope.tenant, scope.surface, scope.day),
        report.model_dump_json(indent=2).encode(),
        content_type="application/json",
    )
    return report


def load_report(store: ObjectStore, tenant: str, surface: str, day: dt.date) -> IngestReport | None:
    """The stored report of an ingested day, or None if the day was never ingested."""
    key = paths.ingest_report(tenant, surface, day)
    if not store.exists(key):
        return None
    return IngestReport.model_validate_json(store.get(key).data)
