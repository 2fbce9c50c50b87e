"""ingest_day: the raw files of one (tenant, surface, UTC day) -> canonical partition, quarantine and report.

A rerun with the same raw input produces identical bytes and rewrites nothing (put_if_changed).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel

from recsys import paths
from recsys.database.settings import DatabaseSettings
from recsys.events.contract import CANONICAL_DICTIONARY_COLUMNS, CANONICAL_SCHEMA, CANONICAL_SORT
from recsys.events.parse import DayScope, ParsedEvents
from recsys.ingest.sources import RawFileDamaged, raw_sources
from recsys.store import ObjectStore
from recsys.tables import to_parquet

_DEDUP_FIELDS = ("tenant", "surface", "session_id", "request_id", "item_id", "ts", "event_type")
_SEPARATOR = "\x1f"


class DamagedFile(BaseModel):
    """A compressed raw file that could not be read to its end; none of its lines count."""

    source: str  # URI of the raw file
    error: str  # what gzip found, e.g. "CRC check failed 0x... != 0x..."


class IngestReport(BaseModel):
    """Counts of one ingested day. Stored beside the partition and returned to the state machine (small)."""

    tenant: str
    surface: str
    day: dt.date
    files: int  # raw files found for the day, damaged ones included
    read: int  # non-blank lines of this day
    accepted: int  # events in the canonical partition (after dedup)
    duplicates: int
    quarantined: int
    reasons: dict[str, int]  # quarantined lines by reason
    other_days: int  # lines of other days found in undated files (not errors)
    damaged_files: list[DamagedFile] = []  # each fails the day's error budget (see error_rate)
    distinct_items: int
    distinct_sessions: int
    distinct_users: int
    canonical_uri: str
    # The partition's ETag as stored with this report: Validate checks the partition is still this one (None in
    # reports stored before the field existed).
    canonical_etag: str | None = None
    quarantine_uri: str | None
    kept_existing: bool = False  # no raw files were found, so the partition ingested earlier was kept as it was
    forgotten: int = 0  # events removed from the partition since it was ingested (`recsys forget-user`)

    @property
    def error_rate(self) -> float:
        """quarantined / read, or 1.0 (the whole budget) with a damaged file: how many of its lines are bad, and
        how many it holds, is unknown."""
        if self.damaged_files:
            return 1.0
        return self.quarantined / self.read if self.read else 0.0


def dedupe(events: pa.Table) -> tuple[pa.Table, int]:
    """Keep the first occurrence of each event key: event_id when given, else the event's identifying fields.

    The key is the text "id<US>event_id", or the identifying fields (null as "") joined by the unit separator US
    (\\x1f). Grouping on the columns themselves gives the same groups, much faster, unless a key field contains US
    (then two different events can join to the same text); only then is the text built.
    """
    if events.num_rows == 0:
        return events, 0
    has_id = pc.is_valid(events["event_id"])
    first = np.zeros(events.num_rows, dtype=bool)
    if _joined_keys_may_collide(events, has_id):
        first[_first_rows_by_joined_key(events).to_numpy()] = True
    else:
        first[_first_rows_with_id(events["event_id"])] = True
        if not pc.all(has_id).as_py():
            without_id = pc.invert(has_id)
            keys = events.select(list(_DEDUP_FIELDS)).filter(without_id)
            first[_first_rows_by_fields(keys, np.flatnonzero(np.asarray(without_id)))] = True
    if first.all():
        return events, 0  # no duplicates: spare a copy of every column
    kept = events.filter(pa.array(first))
    return kept, events.num_rows - kept.num_rows


def _joined_keys_may_collide(events: pa.Table, has_id: pa.ChunkedArray) -> bool:
    if pc.all(has_id).as_py():  # "id<US>" + event_id texts are equal exactly when the event_ids are
        return False
    return any(
        pc.any(pc.match_substring(events[name], _SEPARATOR)).as_py()
        for name in (*_DEDUP_FIELDS, "event_id")
        if pa.types.is_string(events[name].type)
    )


def _first_rows_with_id(event_id: pa.ChunkedArray) -> np.ndarray:
    """The rows holding the first occurrence of their (non-null) event_id."""
    # Dictionary codes are handed out in order of first appearance: a row is first when its code exceeds every
    # code before it. Cheaper in time and memory than grouping the strings.
    encoded = pc.dictionary_encode(event_id)
    codes = pc.fill_null(pa.chunked_array([chunk.indices for chunk in encoded.chunks], pa.int32()), -1).to_numpy()
    highest_before = np.concatenate(([-1], np.maximum.accumulate(codes)[:-1]))
    return np.flatnonzero(codes > highest_before)


def _first_rows_by_fields(keys: pa.Table, rows: np.ndarray) -> np.ndarray:
    """Of the identifying fields `keys` (of rows `rows`), the rows holding the first occurrence of their values."""
    fields = {
        name: pc.fill_null(keys[name], "") if pa.types.is_string(keys[name].type) else keys[name]
        for name in _DEDUP_FIELDS
    }
    grouped = pa.table({**fields, "row": rows}).group_by(list(_DEDUP_FIELDS), use_threads=False)
    return grouped.aggregate([("row", "min")])["row_min"].to_numpy()


def _first_rows_by_joined_key(events: pa.Table) -> pa.ChunkedArray:
    """Per key text, the first row (the key text `dedupe` describes)."""
    parts = [pc.fill_null(pc.cast(events[name], pa.string()), "") for name in _DEDUP_FIELDS]
    composite = pc.binary_join_element_wise(*parts, _SEPARATOR)
    key = pc.coalesce(pc.binary_join_element_wise("id", events["event_id"], _SEPARATOR), composite)
    indexed = pa.table({"key": key, "row": pa.array(range(events.num_rows), pa.int64())})
    return indexed.group_by("key", use_threads=False).aggregate([("row", "min")])["row_min"]


def canonicalize(parsed: list[ParsedEvents]) -> tuple[pa.Table, int]:
    """Accepted events of all sources -> the canonical partition (deduplicated, sorted) and the duplicate count."""
    tables = [p.events for p in parsed if p.events.num_rows]
    if not tables:
        return CANONICAL_SCHEMA.empty_table(), 0
    events = pa.concat_tables(tables)
    events = events.rename_columns({"ts_utc": "ts"})
    events, duplicates = dedupe(events)
    canonical = events.select(CANONICAL_SCHEMA.names).cast(CANONICAL_SCHEMA)
    return canonical.sort_by(CANONICAL_SORT), duplicates


def ingest_day(
    store: ObjectStore, raw_uri: str, scope: DayScope, database: DatabaseSettings | None = None
) -> IngestReport:
    """Ingest one day; never raises on bad lines (they are quarantined) or damaged .gz files (reported in
    `damaged_files`, their lines dropped), only on I/O failures and on a raw location that does not exist (NotFound).

    `raw_uri` is a folder, an s3:// prefix, a file or a postgresql:// table (recsys.ingest.postgres, connecting
    with `database`'s credentials). When no raw file (or no table row) holds the day any more but a non-empty
    partition was ingested before, that partition is kept (raw data that vanished from an existing location must
    not erase good data); delete the partition to really empty a day.
    """
    files = raw_sources(raw_uri, scope, database or DatabaseSettings())
    if not files:
        existing = load_report(store, scope.tenant, scope.surface, scope.day)
        if existing is not None and existing.accepted > 0:
            return existing.model_copy(update={"kept_existing": True})
    parsed: list[ParsedEvents] = []
    damaged: list[DamagedFile] = []
    for raw in files:
        try:
            parsed.append(raw.parse(scope))
        except RawFileDamaged as exc:
            # Dropped whole: a CRC mismatch is only found at the end, so any of the lines read may be corrupt.
            damaged.append(DamagedFile(source=exc.source, error=exc.error))
    rejections = [r for p in parsed for r in p.rejections]
    read, other_days = sum(p.read for p in parsed), sum(p.other_days for p in parsed)
    canonical, duplicates = canonicalize(parsed)
    del parsed  # free the unsorted events and return their pages before the Parquet writer copies the sorted ones
    pa.default_memory_pool().release_unused()

    events_key = paths.canonical_events(scope.tenant, scope.surface, scope.day)
    data = to_parquet(canonical, CANONICAL_SCHEMA, kind="canonical", dictionary=CANONICAL_DICTIONARY_COLUMNS)
    canonical_etag = store.put_if_changed(events_key, data)  # as the store reports it (not always the content's MD5)
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
        files=len(files),
        read=read,
        accepted=canonical.num_rows,
        duplicates=duplicates,
        quarantined=len(rejections),
        reasons=dict(sorted(Counter(str(r.reason) for r in rejections).items())),
        other_days=other_days,
        damaged_files=damaged,
        distinct_items=pc.count_distinct(canonical["item_id"]).as_py(),
        distinct_sessions=pc.count_distinct(canonical["session_id"]).as_py(),
        distinct_users=pc.count_distinct(canonical["user_id"]).as_py(),
        canonical_uri=store.url(events_key),
        canonical_etag=canonical_etag,
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
