"""compute_kind: a window of canonical days -> one immutable, content-addressed artifact.

Event-based kinds aggregate per-day partials first. A partial's key hashes the canonical partition's ETag and
the knobs it depends on, so it is computed once and reused by every later window that covers the day: a daily
30-day run computes only the newest day's partials. The state machine builds the partials of the days a run
ingested beforehand, one (day, kind) per invocation (`build_partial`), so a backfill's days fan out instead of
running one after another inside a kind's compute; `compute_kind` then only merges (and builds what is still
missing, e.g. after a knob changed).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel

from recsys import paths
from recsys.compute import catalog  # (the package registers the built-in kinds)
from recsys.compute.artifact import canonical_table, content_version
from recsys.contract.kinds import KINDS, ArtifactKind
from recsys.contract.manifest import ArtifactRef
from recsys.days import Window
from recsys.errors import ConfigError, DayNotIngested
from recsys.settings import Settings, fill_scope
from recsys.store import ObjectStore, split_uri
from recsys.tables import from_parquet, to_parquet

# Partials and window sums are read whole, never one key's rows: row groups of 1M rows write and read several times
# faster than the artifacts' 65,536 (a cooc window sum of 6.4M pairs: written in 0.18 s instead of 0.86 s).
WHOLE_READ_ROW_GROUP = 1 << 20


class PartialResult(BaseModel):
    kind: str
    day: dt.date
    key: str
    built: bool  # False: the partial already existed (same partition ETag and knobs) and was kept


class ComputeResult(BaseModel):
    artifact: ArtifactRef
    written: bool  # False: an identical artifact already existed and was reused
    partials_built: int = 0
    partials_reused: int = 0
    # An additive kind over several days: its window sum "reused" (stored for this window), "rolled" (from the
    # day before's: one day added, one dropped), or "summed" (every partial); "" for the other kinds.
    window_sum: Literal["", "reused", "rolled", "summed"] = ""


def _partial_key(canonical_etag: str, knobs: dict) -> str:
    text = json.dumps({"canonical": canonical_etag, "knobs": knobs}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _partial_location(
    store: ObjectStore, kind: ArtifactKind, tenant: str, surface: str, day: dt.date, settings: Settings
) -> tuple[str, str]:
    """(the day's canonical partition, the key of its partial for `kind` with today's knobs)."""
    events_key = paths.canonical_events(tenant, surface, day)
    etag = store.head(events_key)
    if etag is None:
        raise DayNotIngested(f"{tenant}/{surface} {day} has not been ingested")
    knobs = kind.partial_params(settings.compute, settings.event_weights)
    return events_key, paths.partial(tenant, surface, kind.name, day, _partial_key(etag, knobs))


def _build_partial(store: ObjectStore, kind: ArtifactKind, events_key: str, key: str, settings: Settings) -> pa.Table:
    events = from_parquet(store.get(events_key).data, columns=list(kind.event_columns))
    partial = kind.partial(events, settings.compute, settings.event_weights)
    store.create(
        key, to_parquet(partial, kind.partial_schema, kind=f"{kind.name}.partial", row_group_size=WHOLE_READ_ROW_GROUP)
    )
    return partial


def build_partial(
    store: ObjectStore, kind: str, tenant: str, surface: str, day: dt.date, settings: Settings
) -> PartialResult:
    """The partial of one event kind for one ingested day, built unless it exists (create-exclusive)."""
    entry = KINDS.get(kind)
    if entry.source != "events":
        raise ConfigError(f"{kind} is built from the catalog: it has no per-day partials")
    events_key, key = _partial_location(store, entry, tenant, surface, day, settings)
    built = not store.exists(key)
    if built:
        _build_partial(store, entry, events_key, key, settings)
    return PartialResult(kind=kind, day=day, key=key, built=built)


def _load_partial(
    store: ObjectStore, kind: ArtifactKind, tenant: str, surface: str, day: dt.date, settings: Settings
) -> tuple[pa.Table, bool]:
    """The day's partial of `kind`, read or built (then stored); and whether it was built."""
    events_key, key = _partial_location(store, kind, tenant, surface, day, settings)
    if store.exists(key):
        # Dictionary-encoded strings: the builds code ids through the dictionaries (compute.pairs).
        return from_parquet(store.get(key).data, dictionaries=True), False
    return _build_partial(store, kind, events_key, key, settings), True


def _event_artifact(
    store: ObjectStore, kind: ArtifactKind, tenant: str, surface: str, window: Window, settings: Settings
) -> tuple[pa.Table, int, int, str]:
    """The kind's table over `window`, the partials built and reused, and how its window sum was had ("" when
    it has none)."""
    if kind.window_sum is not None and len(window.days) > 1:
        return _from_window_sum(store, kind, tenant, surface, window, settings)
    partials, built = [], 0
    for day in window.days:
        partial, was_built = _load_partial(store, kind, tenant, surface, day, settings)
        partials.append((day, partial))
        built += was_built
    return kind.build(partials, window, settings.compute), built, len(partials) - built, ""


def _window_sum_key(
    store: ObjectStore, kind: ArtifactKind, tenant: str, surface: str, window: Window, settings: Settings
) -> str:
    """Where the window sum of `window` is (or goes): named by its days' partial keys, so a day re-ingested or a
    knob changed names another one. DayNotIngested if a day of the window has no partition."""
    days = [_partial_location(store, kind, tenant, surface, day, settings)[1] for day in window.days]
    digest = hashlib.sha256(json.dumps({"window_sum": days}).encode()).hexdigest()[:32]
    return paths.window_sum(tenant, surface, kind.name, window, digest)


def _from_window_sum(
    store: ObjectStore, kind: ArtifactKind, tenant: str, surface: str, window: Window, settings: Settings
) -> tuple[pa.Table, int, int, str]:
    """An additive kind over a window of several days, from its window sum: the one stored for this window
    ("reused"), else yesterday's window sum plus the new day minus the day that left ("rolled": the daily run),
    else every partial summed ("summed"). The sum is stored for the next day's roll."""
    key = _window_sum_key(store, kind, tenant, surface, window, settings)
    built = 0
    if store.exists(key):
        total, how = from_parquet(store.get(key).data, dictionaries=True), "reused"
    else:
        shift = dt.timedelta(days=1)
        before = Window(start=window.start - shift, end=window.end - shift)
        try:
            previous_key = _window_sum_key(store, kind, tenant, surface, before, settings)
        except DayNotIngested:  # the day that left the window is gone (retention): no roll
            previous_key = None
        if previous_key and store.exists(previous_key):
            previous = from_parquet(store.get(previous_key).data, dictionaries=True)
            added, added_built = _load_partial(store, kind, tenant, surface, window.end, settings)
            dropped, dropped_built = _load_partial(store, kind, tenant, surface, before.start, settings)
            total, how = kind.window_sum.roll(previous, [added], [dropped]), "rolled"
            built = added_built + dropped_built
        else:
            partials = [_load_partial(store, kind, tenant, surface, day, settings) for day in window.days]
            total, how = kind.window_sum.of_partials([partial for partial, _ in partials]), "summed"
            built = sum(was_built for _, was_built in partials)
        schema = kind.window_sum.schema
        store.create(
            key, to_parquet(total, schema, kind=f"{kind.name}.window_sum", row_group_size=WHOLE_READ_ROW_GROUP)
        )
    # Every day of the window is in the sum: its partial counts as reused unless this call built it.
    return kind.build_from_sum(total, window, settings.compute), built, max(len(window.days) - built, 0), how


def _catalog_artifact(
    store: ObjectStore,
    kind: ArtifactKind,
    tenant: str,
    surface: str,
    window: Window,
    settings: Settings,
    catalog_uri: str | None,
) -> tuple[pa.Table | ArtifactRef, str]:
    """The kind's table to build, or the ref of the artifact this catalog (same bytes: same ETag) with the same
    knobs gave before, from its build record; and the build record's key."""
    if not catalog_uri:
        raise ConfigError(f"{kind.name} needs a catalog: set RECSYS_CATALOG_URI or pass --catalog")
    catalog_store, key = split_uri(catalog_uri)
    blob = catalog_store.get(key)  # the ETag of the bytes read, so a catalog replaced meanwhile cannot be mixed up
    knobs = {"surface": surface, "format": catalog.catalog_format(key), **kind.build_params(settings.compute)}
    record_key = paths.catalog_build(tenant, surface, kind.name, _partial_key(blob.etag, knobs))
    if store.exists(record_key):
        record = json.loads(store.get(record_key).data)
        artifact_key = paths.artifact(tenant, surface, kind.name, record["version"])
        if store.exists(artifact_key):
            return ArtifactRef(kind=kind.name, uri=store.url(artifact_key), window=window, **record), record_key
    items = catalog.read_catalog(blob.data, catalog.catalog_format(key), surface)
    return kind.build_from_catalog(items, settings.compute), record_key


def compute_kind(
    store: ObjectStore,
    kind: str,
    tenant: str,
    surface: str,
    window: Window,
    settings: Settings,
    catalog_uri: str | None = None,
) -> ComputeResult:
    """Build `kind` over `window` and store it create-exclusive; an existing version is reused, never rewritten.

    `catalog_uri` is used as given (Plan has filled in its {tenant} and {surface}); without it, RECSYS_CATALOG_URI's.
    """
    try:
        entry = KINDS.get(kind)
    except KeyError:
        raise ConfigError(f"unknown artifact kind {kind!r}") from None
    built = reused = 0
    record_key = window_sum = ""
    if entry.source == "catalog":
        catalog_uri = catalog_uri or fill_scope(settings.catalog_uri, tenant, surface)
        built_or_ref, record_key = _catalog_artifact(store, entry, tenant, surface, window, settings, catalog_uri)
        if isinstance(built_or_ref, ArtifactRef):  # the daily case: the catalog has not changed since the last build
            return ComputeResult(artifact=built_or_ref, written=False)
        table = built_or_ref
    else:
        table, built, reused, window_sum = _event_artifact(store, entry, tenant, surface, window, settings)
    schema = entry.schema
    table = canonical_table(table, schema)  # once, for both the version and the bytes
    version = content_version(table, schema, canonical=True)
    data = to_parquet(table, schema, kind=kind, canonical=True)
    key = paths.artifact(tenant, surface, kind, version)
    written = store.create(key, data, content_type="application/vnd.apache.parquet")
    ref = ArtifactRef(
        kind=kind,
        version=version,
        uri=store.url(key),
        window=window,
        rows=table.num_rows,
        keys=pc.count_distinct(table.column(entry.key_column)).as_py() if table.num_rows else 0,
        bytes=len(data),
    )
    if record_key:  # a catalog kind: what this catalog gave, so the next run with it skips the build
        record = ref.model_dump(include={"version", "rows", "keys", "bytes"})
        store.create(record_key, json.dumps(record, sort_keys=True).encode(), content_type="application/json")
    return ComputeResult(
        artifact=ref, written=written, partials_built=built, partials_reused=reused, window_sum=window_sum
    )
