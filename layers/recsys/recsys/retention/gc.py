"""collect: delete what a (tenant, surface) no longer needs, and never what a kept manifest names.

Kept manifests: the one the pointer holds and the `keep_manifests` newest stored versions (`manifest history`'s
order). What is deleted, each with its reason:

- `unreferenced_artifact`: an artifact no kept manifest names, last written more than `artifact_min_age_days` ago;
- `stale_build_record`: a catalog build record older than `partial_min_age_days` whose artifact is gone;
- `old_partial`: a partial of a day before the daily window, older than `partial_min_age_days`;
- `old_window_sum`: an additive kind's window sum ending before the day before yesterday (the daily run rolls
  yesterday's window from the one ending the day before), older than `partial_min_age_days`;
- `old_canonical`: a canonical day (partition, quarantine, then report) older than `canonical_days`;
- `old_quarantine`: a quarantine file of a day older than `quarantine_days`.

The daily window (the `window_days` days ending yesterday, and one day of margin) is never touched: its canonical
days and partials are what the next daily run reads.

Why it is safe next to a publish: a publish writes its artifacts first (create-exclusive), stores its manifest
version, and moves the pointer last. So the artifacts are listed first, the manifests read after the listing, and
the manifest keys and the pointer read once more just before deleting: a manifest stored before that second read
protects its artifacts, and an artifact written after the listing is not a candidate at all. What the reads cannot
see, a publish between verifying an old artifact it reuses and storing its manifest, is excluded in two ways: the
age threshold (a run's new artifacts are hours old when published) and the run lease, which the pipeline's gc step
holds while it deletes (pipeline/steps.py), so no run of the tenant/surface is between two steps meanwhile.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable

from pydantic import BaseModel, computed_field

from recsys import paths
from recsys.contract.manifest import Manifest
from recsys.paths import Scope
from recsys.publish.service import history, read_pointer
from recsys.settings import Retention
from recsys.store import NotFound, ObjectInfo, ObjectStore

WINDOW_MARGIN_DAYS = 1  # protect one more day than the daily window: a run started just before midnight


class Deletion(BaseModel):
    key: str
    bytes: int
    reason: str


class GcReport(BaseModel):
    """What one collection of a (tenant, surface) deleted (or, in a dry run, would delete)."""

    tenant: str
    surface: str
    dry_run: bool
    now: dt.datetime
    kept_manifests: list[str]  # the versions whose artifacts are kept: current first, then newest first
    protected_from: dt.date  # the first day of the protected daily window
    artifacts_kept: int
    deleted: list[Deletion]

    @computed_field
    @property
    def objects(self) -> int:
        return len(self.deleted)

    @computed_field
    @property
    def bytes(self) -> int:
        return sum(deletion.bytes for deletion in self.deleted)


def scopes(store: ObjectStore) -> list[Scope]:
    """Every (tenant, surface) with objects in the store, found from the keys of each family."""
    found: set[tuple[str, str]] = set()
    for prefix, at in (("registry/manifests/", 2), ("artifacts/", 1), ("partials/", 1), ("canonical/", 1)):
        for key in store.list(prefix):
            parts = key.split("/")
            if len(parts) > at + 2:
                found.add((parts[at], parts[at + 1]))
    result = []
    for tenant, surface in sorted(found):
        try:
            result.append(Scope(tenant, surface))
        except ValueError:
            continue  # not written by us: never touched
    return result


def _references(manifest: Manifest) -> set[tuple[str, str]]:
    """(kind, version) of every artifact the manifest names, from both of its maps."""
    named = {(kind, entry.version) for kind, entry in manifest.artifacts.items()}
    for kind, uri in manifest.current.items():
        name = uri.rsplit("/", 1)[-1]
        named.add((kind, name.removesuffix(".parquet")))
    return named


def kept_manifests(store: ObjectStore, scope: Scope, keep: int) -> tuple[list[Manifest], set[str]]:
    """The manifests whose artifacts are kept (the pointer's, then the `keep` newest stored versions), and the
    versions of every stored manifest read. A manifest that does not parse fails the collection (ValueError):
    what it names is unknown, so nothing may be deleted."""
    pointer = read_pointer(store, scope.tenant, scope.surface)
    stored = history(store, scope.tenant, scope.surface)
    kept = [pointer.manifest] if pointer else []
    for manifest in stored[:keep]:
        if all(manifest.manifest_version != k.manifest_version for k in kept):
            kept.append(manifest)
    return kept, {manifest.manifest_version for manifest in stored}


def _late_references(store: ObjectStore, scope: Scope, seen: set[str]) -> set[tuple[str, str]]:
    """References of the pointer and of every manifest version stored since `seen` was read."""
    prefix = paths.manifests_prefix(scope.tenant, scope.surface)
    named: set[tuple[str, str]] = set()
    for key in store.list(prefix):
        version = key[len(prefix) :].removesuffix(".json")
        if key.endswith(".json") and version not in seen:
            named |= _references(Manifest.from_bytes(store.get(key).data))
    pointer = read_pointer(store, scope.tenant, scope.surface)
    if pointer:
        named |= _references(pointer.manifest)
    return named


def _day(segment: str) -> dt.date | None:
    if not segment.startswith("dt="):
        return None
    try:
        return dt.date.fromisoformat(segment[3:])
    except ValueError:
        return None


def _older(info: ObjectInfo, now: dt.datetime, days: int) -> bool:
    return info.last_modified <= now - dt.timedelta(days=days)


def collect(
    store: ObjectStore,
    scope: Scope,
    retention: Retention,
    window_days: int,
    *,
    now: dt.datetime | None = None,
    dry_run: bool = False,
) -> GcReport:
    """Delete (or only list, with `dry_run`) what `scope` no longer needs, by the rules of the module docstring.

    `now` is the clock ages and days are measured from (default: the current time, UTC).
    """
    now = now or dt.datetime.now(dt.UTC)
    protected_from = now.date() - dt.timedelta(days=window_days + WINDOW_MARGIN_DAYS)
    # 1. List first: an artifact written after this listing cannot be a candidate.
    artifacts = list(store.list_info(paths.artifacts_root(scope.tenant, scope.surface)))
    partials = list(store.list_info(paths.partials_root(scope.tenant, scope.surface)))
    canonical = list(store.list_info(paths.canonical_root(scope.tenant, scope.surface)))
    # 2. Then the manifests.
    kept, seen = kept_manifests(store, scope, retention.keep_manifests)
    referenced = set().union(*(_references(m) for m in kept))
    candidates: list[ObjectInfo] = []
    present: set[tuple[str, str]] = set()
    for info in artifacts:
        parts = info.key.split("/")
        if len(parts) != 5 or not parts[4].endswith(".parquet"):
            continue  # not an artifact key
        named = (parts[3], parts[4].removesuffix(".parquet"))
        if named not in referenced and _older(info, now, retention.artifact_min_age_days):
            candidates.append(info)
        else:
            present.add(named)
    # 3. Read again just before deleting: a manifest stored meanwhile protects its artifacts.
    if candidates:
        late = _late_references(store, scope, seen)
        for info in [c for c in candidates if _named(c) in late]:
            candidates.remove(info)
            present.add(_named(info))
    deleted = [Deletion(key=info.key, bytes=info.size, reason="unreferenced_artifact") for info in candidates]
    deleted += _partials(partials, present, protected_from, retention, now, store)
    deleted += _canonical(canonical, protected_from, retention, now)
    if not dry_run:
        for deletion in deleted:
            store.delete(deletion.key)
    return GcReport(
        tenant=scope.tenant,
        surface=scope.surface,
        dry_run=dry_run,
        now=now,
        kept_manifests=[m.manifest_version for m in kept],
        protected_from=protected_from,
        artifacts_kept=len(artifacts) - len(candidates),
        deleted=deleted,
    )


def _named(info: ObjectInfo) -> tuple[str, str]:
    parts = info.key.split("/")
    return parts[3], parts[4].removesuffix(".parquet")


def _partials(
    infos: Iterable[ObjectInfo],
    present: set[tuple[str, str]],
    protected_from: dt.date,
    retention: Retention,
    now: dt.datetime,
    store: ObjectStore,
) -> list[Deletion]:
    """Partials of days before the protected window, window sums the next daily run does not roll from, and build
    records whose artifact is gone, once old enough. Deleting any is always correct (compute rebuilds a missing
    partial, sum or record); the age spares a run's."""
    deleted = []
    for info in infos:
        parts = info.key.split("/")  # partials/{tenant}/{surface}/{kind}/(dt={day}|builds)/{name}
        if len(parts) != 6 or not _older(info, now, retention.partial_min_age_days):
            continue
        if parts[4] == "builds":
            try:
                built = json.loads(store.get(info.key).data).get("version")
            except (ValueError, AttributeError, NotFound):
                built = None
            if (parts[3], built) not in present:
                deleted.append(Deletion(key=info.key, bytes=info.size, reason="stale_build_record"))
            continue
        window = paths.window_of_sum_folder(parts[4])
        if window is not None:
            if window.end < now.date() - dt.timedelta(days=2 + WINDOW_MARGIN_DAYS):
                deleted.append(Deletion(key=info.key, bytes=info.size, reason="old_window_sum"))
            continue
        day = _day(parts[4])
        if day is not None and day < protected_from:
            deleted.append(Deletion(key=info.key, bytes=info.size, reason="old_partial"))
    return deleted


def _canonical(
    infos: Iterable[ObjectInfo], protected_from: dt.date, retention: Retention, now: dt.datetime
) -> list[Deletion]:
    """Canonical days older than `canonical_days` (the report last, so a day half deleted still says it was
    ingested), and quarantine files older than `quarantine_days`. Never a day of the protected window."""
    canonical_before = (
        min(now.date() - dt.timedelta(days=retention.canonical_days), protected_from)
        if retention.canonical_days
        else None
    )
    quarantine_before = now.date() - dt.timedelta(days=retention.quarantine_days) if retention.quarantine_days else None
    first, last = [], []
    for info in infos:
        parts = info.key.split("/")  # canonical/{tenant}/{surface}/dt={day}/{name}
        day = _day(parts[3]) if len(parts) == 5 else None
        if day is None:
            continue
        name = parts[4]
        if canonical_before and day < canonical_before:
            deletion = Deletion(key=info.key, bytes=info.size, reason="old_canonical")
            (last if name == "_ingest.json" else first).append(deletion)
        elif quarantine_before and day < quarantine_before and name == "_quarantine.jsonl":
            first.append(Deletion(key=info.key, bytes=info.size, reason="old_quarantine"))
    return first + last
