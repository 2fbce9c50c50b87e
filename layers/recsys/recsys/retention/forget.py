"""forget_user: remove one user's events from a (tenant, surface)'s canonical partitions.

Each affected `canonical/.../dt={day}/events.parquet` is rewritten without the rows whose `user_id` is the user
(compare-and-swap on the ETag read: an ingest racing it makes it fail, never lose either write), and its ingest
report is rewritten to match: the new `canonical_etag` (so Validate's `partition_matches_report` passes),
`accepted`, the distinct counts, and `forgotten`. Quarantined lines that name the user are dropped from the day's
quarantine file. The day's partials, and the window sums over it, are deleted: they aggregate the old partition
(their keys hash its ETag, so compute would not read them again anyway) and hold the user's data. The artifacts
are not touched here: the next run rebuilds them from the rewritten days (docs/runbooks/forget-user.md), and
`recsys gc` removes the old ones.
"""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, computed_field

from recsys import paths
from recsys.events.contract import CANONICAL_DICTIONARY_COLUMNS, CANONICAL_SCHEMA
from recsys.ingest.service import load_report
from recsys.paths import Scope
from recsys.store import NotFound, ObjectStore
from recsys.tables import from_parquet, to_parquet


class ForgottenDay(BaseModel):
    day: dt.date
    events: int  # rows removed from the partition
    quarantined_lines: int  # quarantine lines naming the user, removed
    partials_deleted: int


class ForgetReport(BaseModel):
    tenant: str
    surface: str
    dry_run: bool
    days: list[ForgottenDay]

    @computed_field
    @property
    def events(self) -> int:
        return sum(day.events for day in self.days)


def _without_user(table: pa.Table, user_id: str) -> tuple[pa.Table, int]:
    matches = pc.fill_null(pc.equal(table["user_id"], user_id), False)
    removed = pc.sum(matches).as_py() or 0
    return (table.filter(pc.invert(matches)) if removed else table), removed


def _quarantine_without_user(store: ObjectStore, key: str, user_id: str, dry_run: bool) -> int:
    """Drop the quarantine lines whose raw text names `user_id` as a JSON string; how many were dropped."""
    try:
        lines = store.get(key).data.decode("utf-8").splitlines(keepends=True)
    except NotFound:
        return 0
    quoted = json.dumps(user_id)
    kept = [line for line in lines if quoted not in str(json.loads(line).get("raw", ""))]
    if len(kept) != len(lines) and not dry_run:
        if kept:
            store.put(key, "".join(kept).encode("utf-8"), content_type="application/x-ndjson")
        else:
            store.delete(key)
    return len(lines) - len(kept)


def _aggregates(partial_key: str, folder: str, day: dt.date) -> bool:
    """Whether the object under partials/ holds the day's events: the day's partial, or a window sum over it."""
    segment = partial_key.split("/")[4:5]
    window = paths.window_of_sum_folder(segment[0]) if segment else None
    return segment == [folder] or (window is not None and window.start <= day <= window.end)


def forget_user(store: ObjectStore, scope: Scope, user_id: str, *, dry_run: bool = False) -> ForgetReport:
    """Remove `user_id`'s events from every canonical day of `scope` (or, with `dry_run`, count them)."""
    if not user_id:
        raise ValueError("forget_user needs a user id")
    root = paths.canonical_root(scope.tenant, scope.surface)
    partial_keys = list(store.list(paths.partials_root(scope.tenant, scope.surface)))
    days = []
    for key in store.list(root):
        folder, _, name = key[len(root) :].partition("/")
        if name != "events.parquet" or not folder.startswith("dt="):
            continue
        day = dt.date.fromisoformat(folder[3:])
        blob = store.get(key)
        table, removed = _without_user(from_parquet(blob.data), user_id)
        quarantine = _quarantine_without_user(
            store, paths.quarantine(scope.tenant, scope.surface, day), user_id, dry_run
        )
        if not removed and not quarantine:
            continue
        stale = [k for k in partial_keys if _aggregates(k, folder, day)] if removed else []
        if removed and not dry_run:
            data = to_parquet(
                table.cast(CANONICAL_SCHEMA),
                CANONICAL_SCHEMA,
                kind="canonical",
                dictionary=CANONICAL_DICTIONARY_COLUMNS,
            )
            etag = store.put(key, data, if_match=blob.etag)  # PreconditionFailed if an ingest rewrote it meanwhile
            _rewrite_report(store, scope, day, table, etag, removed)
            for partial in stale:
                store.delete(partial)
                partial_keys.remove(partial)  # a window sum over several affected days goes once
        days.append(ForgottenDay(day=day, events=removed, quarantined_lines=quarantine, partials_deleted=len(stale)))
    return ForgetReport(tenant=scope.tenant, surface=scope.surface, dry_run=dry_run, days=days)


def _rewrite_report(store: ObjectStore, scope: Scope, day: dt.date, table: pa.Table, etag: str, removed: int) -> None:
    report = load_report(store, scope.tenant, scope.surface, day)
    if report is None:
        return  # a partition without a report is not one a run will read (Validate needs the report)
    updated = report.model_copy(
        update={
            "accepted": table.num_rows,
            "distinct_items": pc.count_distinct(table["item_id"]).as_py(),
            "distinct_sessions": pc.count_distinct(table["session_id"]).as_py(),
            "distinct_users": pc.count_distinct(table["user_id"]).as_py(),
            "canonical_etag": etag,
            "forgotten": report.forgotten + removed,
        }
    )
    store.put(
        paths.ingest_report(scope.tenant, scope.surface, day),
        updated.model_dump_json(indent=2).encode(),
        content_type="application/json",
    )
