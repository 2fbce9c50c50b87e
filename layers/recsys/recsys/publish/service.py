"""publish and rollback: the only code that moves registry/current/{tenant}/{surface}/manifest.json.

The pointer is written last and only by a conditional PutObject (If-Match on the ETag read, If-None-Match '*'
when there is none). A lost race re-reads the pointer and decides again; nothing is ever overwritten blindly.
A publish's pointer names, as `previous_manifest_version`, the version its conditional write replaced: the one
whose ETag the write was conditioned on, so it is right even after lost races.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from pydantic import BaseModel

from recsys import paths
from recsys.compute import KINDS  # the registry, with the built-in kinds registered
from recsys.compute.artifact import content_version
from recsys.contract.manifest import ArtifactRef, Manifest
from recsys.contract.quality import QualityResult
from recsys.days import Window
from recsys.errors import ArtifactInvalid, ManifestNotFound, PointerConflict, PublishRefused
from recsys.publish.manifest import build_manifest, is_backfill, manifest_version, regressions
from recsys.settings import Settings
from recsys.store import NotFound, ObjectStore, PreconditionFailed
from recsys.tables import from_parquet

if TYPE_CHECKING:  # the signal store needs the Postgres driver: imported only where a database is used
    from recsys.publish.signal_store import SignalStore

CAS_ATTEMPTS = 5


class Decision(StrEnum):
    MOVED = "moved"  # the pointer now names the new manifest version
    UNCHANGED = "unchanged"  # it already did (a rerun): nothing was written
    KEPT_NEWER = "kept_newer"  # a backfill of an older window: the version is stored, the pointer stays
    REFUSED_QUALITY = "refused_quality"  # the quality gate failed: the version is stored, the pointer stays


class PublishResult(BaseModel):
    manifest_version: str  # the version this run built (stored whatever the decision)
    manifest_uri: str
    decision: Decision
    pointer_before: str | None  # the manifest version current named before this publish
    pointer_after: str | None  # ... and after it


class RollbackResult(BaseModel):
    rolled_back_from: str
    rolled_back_to: str


@dataclass(frozen=True)
class Pointer:
    manifest: Manifest
    etag: str


def read_pointer(store: ObjectStore, tenant: str, surface: str) -> Pointer | None:
    try:
        blob = store.get(paths.current_manifest(tenant, surface))
    except NotFound:
        return None
    return Pointer(Manifest.from_bytes(blob.data), blob.etag)


def read_manifest(store: ObjectStore, tenant: str, surface: str, version: str) -> Manifest:
    try:
        return Manifest.from_bytes(store.get(paths.manifest_version(tenant, surface, version)).data)
    except NotFound:
        raise ManifestNotFound(f"{tenant}/{surface} has no manifest version {version}") from None


def verify_artifact(store: ObjectStore, ref: ArtifactRef) -> None:
    """The artifact exists, has its kind's schema and row count, and its content hashes to its version."""
    if ref.kind not in KINDS:
        raise ArtifactInvalid(f"unknown artifact kind {ref.kind!r}")
    schema = KINDS.get(ref.kind).schema
    try:
        table = from_parquet(store.get(store.key_of(ref.uri)).data)
    except NotFound:
        raise ArtifactInvalid(f"{ref.kind} artifact {ref.uri} does not exist") from None
    if table.schema.names != schema.names:
        raise ArtifactInvalid(f"{ref.kind} artifact has columns {table.schema.names}, expected {schema.names}")
    if table.num_rows != ref.rows:
        raise ArtifactInvalid(f"{ref.kind} artifact has {table.num_rows} rows, the compute step reported {ref.rows}")
    actual = content_version(table, schema)
    if actual != ref.version:
        raise ArtifactInvalid(f"{ref.kind} artifact content hashes to {actual}, not its version {ref.version}")


def _store_version(store: ObjectStore, manifest: Manifest) -> Manifest:
    """Create the immutable manifest version, or return the one already stored under that version."""
    key = paths.manifest_version(manifest.tenant, manifest.surface, manifest.manifest_version)
    if store.create(key, manifest.to_bytes(), content_type="application/json"):
        return manifest
    return Manifest.from_bytes(store.get(key).data)


def _cas(store: ObjectStore, manifest: Manifest, expected: Pointer | None) -> None:
    key = paths.current_manifest(manifest.tenant, manifest.surface)
    if expected is None:
        store.put(key, manifest.to_bytes(), content_type="application/json", if_none_match=True)
    else:
        store.put(key, manifest.to_bytes(), content_type="application/json", if_match=expected.etag)


def carried_over(store: ObjectStore, built: list[ArtifactRef], current: Manifest | None) -> list[ArtifactRef]:
    """The current manifest's artifacts of kinds this run did not build: a partial run keeps the others live."""
    if current is None:
        return []
    kinds = {ref.kind for ref in built}
    carried = [
        ArtifactRef(kind=kind, **entry.model_dump()) for kind, entry in current.artifacts.items() if kind not in kinds
    ]
    missing = [ref.uri for ref in carried if not store.exists(store.key_of(ref.uri))]
    if missing:
        raise ArtifactInvalid(f"the current manifest's artifacts {missing} are missing; build those kinds too")
    return carried


def publish(
    store: ObjectStore,
    tenant: str,
    surface: str,
    window: Window,
    artifacts: list[ArtifactRef],
    *,
    promote: bool = False,
    run_id: str | None = None,
    now: dt.datetime | None = None,
    quality: QualityResult | None = None,
    signals: SignalStore | None = None,
) -> PublishResult:
    """Verify `artifacts`, store their manifest version, then move the pointer unless that would regress it.

    Kinds the run did not build are carried over from the current manifest. A lost CAS race re-reads the pointer
    and decides again from scratch (the carried-over kinds and the backfill rule depend on what is current).
    With `signals` (the Postgres signal store), the served version's signals are written there in a transaction
    that commits only once the pointer moved (or already named the version): a failure anywhere leaves its tables
    as they were.
    """
    pointer = read_pointer(store, tenant, surface)
    _refuse_regressions(artifacts, pointer)
    for ref in artifacts:
        verify_artifact(store, ref)
    for _ in range(CAS_ATTEMPTS):
        current = pointer.manifest if pointer else None
        current_version = current.manifest_version if current else None
        complete = artifacts + carried_over(store, artifacts, current)
        version = manifest_version(tenant, surface, complete)
        uri = store.url(paths.manifest_version(tenant, surface, version))
        if current is not None and current.manifest_version == version:
            if signals is not None:  # a rerun: the store catches up if an earlier publish wrote it no signals
                with signals.publishing(store, current, current.to_bytes()):
                    pass
            return PublishResult(
                manifest_version=version,
                manifest_uri=uri,
                decision=Decision.UNCHANGED,
                pointer_before=version,
                pointer_after=version,
            )
        manifest = _store_version(
            store,
            build_manifest(
                tenant,
                surface,
                window,
                complete,
                previous=current_version,
                run_id=run_id,
                now=now,
                quality=quality,
            ),
        )
        if quality is not None and not quality.passed:
            return PublishResult(
                manifest_version=version,
                manifest_uri=uri,
                decision=Decision.REFUSED_QUALITY,
                pointer_before=current_version,
                pointer_after=current_version,
            )
        if is_backfill(window, current) and not promote:
            return PublishResult(
                manifest_version=version,
                manifest_uri=uri,
                decision=Decision.KEPT_NEWER,
                pointer_before=current_version,
                pointer_after=current_version,
            )
        # The stored version may date from an earlier attempt (or run) with another current: the pointer
        # records what this write replaces, and the If-Match on that version's ETag makes it true.
        moved = manifest.model_copy(update={"previous_manifest_version": current_version})
        try:
            with signals.publishing(store, moved, moved.to_bytes()) if signals else contextlib.nullcontext():
                _cas(store, moved, pointer)
        except (PreconditionFailed, NotFound):
            pointer = read_pointer(store, tenant, surface)  # lost a race: look again, then decide again
            _refuse_regressions(artifacts, pointer)
            continue
        return PublishResult(
            manifest_version=version,
            manifest_uri=uri,
            decision=Decision.MOVED,
            pointer_before=current_version,
            pointer_after=version,
        )
    raise PointerConflict(f"{tenant}/{surface}: the current pointer changed {CAS_ATTEMPTS} times while publishing")


def _refuse_regressions(artifacts: list[ArtifactRef], pointer: Pointer | None) -> None:
    problems = regressions(artifacts, pointer.manifest if pointer else None)
    if problems:
        raise PublishRefused("refusing to publish: " + "; ".join(problems))


def rollback(
    store: ObjectStore,
    tenant: str,
    surface: str,
    to: str | None = None,
    signals: SignalStore | None = None,
    *,
    expected: str | None = None,
) -> RollbackResult:
    """Point current at an earlier manifest version (default: the current one's previous) by CAS; with `signals`,
    the signal store's current version moves in the same way, or neither does. With `expected`, only while the
    current version is that one (what an operator confirmed rolling back from): else PointerConflict."""
    pointer = read_pointer(store, tenant, surface)
    if pointer is None:
        raise ManifestNotFound(f"{tenant}/{surface} has no current manifest to roll back")
    if expected is not None and pointer.manifest.manifest_version != expected:
        raise PointerConflict(
            f"{tenant}/{surface}: the current version is now {pointer.manifest.manifest_version[:12]}, not "
            f"{expected[:12]}: nothing was rolled back"
        )
    target_version = resolve_version(store, tenant, surface, to) if to else pointer.manifest.previous_manifest_version
    if not target_version:
        raise ManifestNotFound(
            f"{tenant}/{surface} manifest {pointer.manifest.manifest_version} has no previous version; pass --to"
        )
    if target_version == pointer.manifest.manifest_version:
        raise PublishRefused(f"{target_version} is already current")
    target = read_manifest(store, tenant, surface, target_version)
    missing = [uri for uri in target.current.values() if not store.exists(store.key_of(uri))]
    if missing:
        raise ArtifactInvalid(f"refusing to roll back to {target_version}: missing artifacts {missing}")
    try:
        with signals.rolling_back(target) if signals else contextlib.nullcontext():
            _cas(store, target, pointer)
    except (PreconditionFailed, NotFound):
        raise PointerConflict(
            f"{tenant}/{surface}: the current pointer changed during the rollback; re-check `recsys manifest show`"
        ) from None
    return RollbackResult(rolled_back_from=pointer.manifest.manifest_version, rolled_back_to=target_version)


@contextlib.contextmanager
def signal_store(settings: Settings) -> Iterator[SignalStore | None]:
    """The Postgres signal store when RECSYS_DATABASE__SIGNALS is on (else None), for one invocation: its
    connection is closed after it, so that an idle Aurora Serverless cluster can pause between daily runs."""
    if not settings.database.signals:
        yield None
        return
    from recsys.database.connection import SharedConnection  # the driver: only where a database is used
    from recsys.publish.signal_store import SignalStore

    connection = SharedConnection(settings.database)
    try:
        yield SignalStore(connection, settings.database.keep_days)
    finally:
        connection.close()


def resolve_version(store: ObjectStore, tenant: str, surface: str, version: str) -> str:
    """A full manifest version from a unique prefix of at least 8 characters (as `manifest history` shows)."""
    if len(version) >= 64:
        return version
    if len(version) < 8:
        raise ManifestNotFound(f"manifest version prefix {version!r} is too short: give at least 8 characters")
    prefix = paths.manifests_prefix(tenant, surface)
    matches = [key[len(prefix) : -len(".json")] for key in store.list(prefix + version) if key.endswith(".json")]
    if len(matches) != 1:
        what = "no" if not matches else f"{len(matches)}"
        raise ManifestNotFound(f"{tenant}/{surface} has {what} manifest versions starting with {version!r}")
    return matches[0]


def history(store: ObjectStore, tenant: str, surface: str) -> list[Manifest]:
    """Every stored manifest version, newest first."""
    manifests = [
        Manifest.from_bytes(store.get(key).data)
        for key in store.list(paths.manifests_prefix(tenant, surface))
        if key.endswith(".json")
    ]
    return sorted(manifests, key=lambda m: (m.updated_at, m.manifest_version), reverse=True)
