"""recsys.retention.gc on the file store and under moto S3: what is deleted, what never is, dry runs."""

from __future__ import annotations

import datetime as dt
import json

import boto3
import pytest
from moto import mock_aws

from recsys import paths
from recsys.days import Window
from recsys.errors import ArtifactInvalid
from recsys.paths import Scope
from recsys.pipeline import lease, steps
from recsys.pipeline.models import GcRequest
from recsys.publish.service import read_pointer, rollback
from recsys.retention.gc import collect, scopes
from recsys.settings import Retention, Settings
from recsys.store import FileSystemStore, S3Store
from tests.retention.helpers import SURFACE, TENANT, age, artifact, key_of, published

SCOPE = Scope(TENANT, SURFACE)
NOW = dt.datetime.now(dt.UTC)  # the clock every collection here is given
OLD = NOW - dt.timedelta(days=30)


def test_gc_deletes_only_old_artifacts_no_kept_manifest_names(store: FileSystemStore) -> None:
    refs = published(store, ["a1", "a2", "a3", "a4"], OLD)
    garbage, young = artifact(store, "garbage"), artifact(store, "young")
    for ref in [*refs, garbage]:
        age(store, key_of(ref), OLD)
    retention = Retention(keep_manifests=2, artifact_min_age_days=7)

    dry = collect(store, SCOPE, retention, window_days=30, now=NOW, dry_run=True)
    doomed = {key_of(ref): ref.bytes for ref in (refs[0], refs[1], garbage)}
    assert {d.key: d.bytes for d in dry.deleted} == doomed
    assert {d.reason for d in dry.deleted} == {"unreferenced_artifact"}
    assert dry.bytes == sum(doomed.values()) and dry.objects == 3
    assert all(store.exists(key) for key in doomed)  # a dry run deletes nothing

    report = collect(store, SCOPE, retention, window_days=30, now=NOW)
    assert {d.key for d in report.deleted} == set(doomed)
    assert not any(store.exists(key) for key in doomed)
    assert all(store.exists(key_of(ref)) for ref in (refs[2], refs[3], young))  # kept, and too young
    pointer = read_pointer(store, TENANT, SURFACE).manifest
    assert len(report.kept_manifests) == 2 and report.kept_manifests[0] == pointer.manifest_version
    # Rollback to a kept version works; to one whose artifacts went, it refuses.
    assert rollback(store, TENANT, SURFACE).rolled_back_from == pointer.manifest_version
    oldest = [m for m in store.list(paths.manifests_prefix(TENANT, SURFACE))]
    assert len(oldest) == 4  # manifest versions are never deleted
    first = [k for k in oldest if json.loads(store.get(k).data)["current"]["popularity"].endswith(key_of(refs[0]))]
    with pytest.raises(ArtifactInvalid):
        rollback(store, TENANT, SURFACE, to=first[0].rsplit("/", 1)[1].removesuffix(".json"))
    # A second collection finds nothing more.
    assert collect(store, SCOPE, retention, window_days=30, now=NOW).deleted == []


def test_the_current_manifest_is_kept_even_with_no_history_kept(store: FileSystemStore) -> None:
    refs = published(store, ["a1", "a2"], OLD)
    rollback(store, TENANT, SURFACE)  # the pointer goes back to a1: the older version, current again
    for ref in refs:
        age(store, key_of(ref), OLD)
    report = collect(store, SCOPE, Retention(keep_manifests=0, artifact_min_age_days=0), window_days=30, now=NOW)
    assert [d.key for d in report.deleted] == [key_of(refs[1])]
    assert store.exists(key_of(refs[0]))


def _window(today: dt.date, ending_days_ago: int) -> Window:
    end = today - dt.timedelta(days=ending_days_ago)
    return Window(start=end - dt.timedelta(days=29), end=end)


def test_partials_build_records_canonical_days_and_quarantine_by_their_windows(store: FileSystemStore) -> None:
    today = NOW.date()
    old_day, window_day = today - dt.timedelta(days=60), today - dt.timedelta(days=31)
    kept = published(store, ["a1"], OLD)[0]
    keys = {
        "old_partial": paths.partial(TENANT, SURFACE, "cooc", old_day, "0" * 32),
        "window_partial": paths.partial(TENANT, SURFACE, "cooc", window_day, "1" * 32),
        # the daily run today rolls yesterday's window from the one ending the day before (kept, with a margin)
        "old_window_sum": paths.window_sum(TENANT, SURFACE, "cooc", _window(today, 4), "4" * 32),
        "next_window_sum": paths.window_sum(TENANT, SURFACE, "cooc", _window(today, 3), "5" * 32),
        "stale_record": paths.catalog_build(TENANT, SURFACE, "content_sim", "2" * 32),
        "live_record": paths.catalog_build(TENANT, SURFACE, "popularity", "3" * 32),
        "old_events": paths.canonical_events(TENANT, SURFACE, old_day),
        "old_report": paths.ingest_report(TENANT, SURFACE, old_day),
        "old_quarantine": paths.quarantine(TENANT, SURFACE, old_day),
        "window_events": paths.canonical_events(TENANT, SURFACE, window_day),
        "window_quarantine": paths.quarantine(TENANT, SURFACE, window_day),
    }
    for name, key in keys.items():
        body = b"x"
        if name == "stale_record":
            body = json.dumps({"version": "f" * 64}).encode()
        if name == "live_record":
            body = json.dumps({"version": kept.version}).encode()
        store.put(key, body)
        age(store, key, OLD)

    # canonical_days=1 asks for more than is allowed: the daily window (and a day of margin) is never touched.
    retention = Retention(canonical_days=1, quarantine_days=10, partial_min_age_days=7)
    report = collect(store, SCOPE, retention, window_days=30, now=NOW)
    reasons = {d.key: d.reason for d in report.deleted}
    assert reasons == {
        keys["old_partial"]: "old_partial",
        keys["old_window_sum"]: "old_window_sum",
        keys["stale_record"]: "stale_build_record",
        keys["old_events"]: "old_canonical",
        keys["old_quarantine"]: "old_canonical",
        keys["old_report"]: "old_canonical",
        keys["window_quarantine"]: "old_quarantine",
    }
    assert report.deleted[-1].key == keys["old_report"]  # the report last: a day half deleted still says ingested
    assert report.protected_from == today - dt.timedelta(days=31)
    for name in ("window_partial", "next_window_sum", "live_record", "window_events"):
        assert store.exists(keys[name]), name

    # Young objects are kept whatever their day.
    store.put(keys["old_partial"], b"x")
    assert collect(store, SCOPE, retention, window_days=30, now=NOW).deleted == []


def test_scopes_are_found_from_every_family_and_the_gc_step_skips_a_running_tenant(store: FileSystemStore) -> None:
    published(store, ["a1"], OLD)
    store.put("canonical/other/web/dt=2026-01-01/events.parquet", b"x")
    assert scopes(store) == [Scope("demo", "home"), Scope("other", "web")]

    settings = Settings(store=store.uri)
    lease.acquire(store, "demo", "home", "run-1", dt.timedelta(hours=1))
    result = steps.collect_garbage(GcRequest(), settings, now=NOW)
    assert list(result.skipped) == ["demo/home"] and "run-1" in result.skipped["demo/home"]
    assert [(r.tenant, r.surface) for r in result.reports] == [("other", "web")]
    assert lease.read_lease(store, "demo", "home").run_id == "run-1"  # untouched
    assert lease.read_lease(store, "other", "web").released_at is not None  # the gc's own, given back

    with pytest.raises(ValueError, match="both tenant and surface"):
        GcRequest(tenant="demo")


@pytest.fixture
def s3_store(aws_credentials):
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="gc-bucket")
        yield S3Store("gc-bucket", "store")


def test_gc_under_moto_s3_removes_only_unreferenced_old_artifacts(s3_store: S3Store) -> None:
    refs = published(s3_store, ["a1", "a2", "a3"], NOW - dt.timedelta(hours=3))
    garbage = artifact(s3_store, "garbage")
    retention = Retention(keep_manifests=1, artifact_min_age_days=7)
    # S3 sets LastModified itself: the clock moves instead. Today everything is young...
    assert collect(s3_store, SCOPE, retention, window_days=30, now=NOW).deleted == []
    # ...and in 30 days a1, a2 (no longer kept) and the garbage are old.
    later = NOW + dt.timedelta(days=30)
    dry = collect(s3_store, SCOPE, retention, window_days=30, now=later, dry_run=True)
    assert {d.key: d.bytes for d in dry.deleted} == {key_of(r): r.bytes for r in (refs[0], refs[1], garbage)}
    report = collect(s3_store, SCOPE, retention, window_days=30, now=later)
    assert {d.key for d in report.deleted} == {key_of(r) for r in (refs[0], refs[1], garbage)}
    assert list(s3_store.list("artifacts/")) == [key_of(refs[2])]
    assert read_pointer(s3_store, TENANT, SURFACE).manifest.current["popularity"] == refs[2].uri
    infos = list(s3_store.list_info("artifacts/"))
    assert infos[0].size == refs[2].bytes and infos[0].last_modified.tzinfo is not None
