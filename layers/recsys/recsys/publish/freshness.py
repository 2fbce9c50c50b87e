"""How old each served manifest is: what the freshness SLO measures.

The scheduled FreshnessFunction calls this every few minutes, independently of the pipeline, so a pipeline that does
not run at all (a disabled schedule, a broken deployment) still shows up as a growing age and fires the alarm. A
(tenant, surface) the daily run covers but that has no current manifest yet is reported as missing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from pydantic import BaseModel, Field

from recsys import paths
from recsys.paths import Scope
from recsys.publish.service import read_pointer
from recsys.store import ObjectStore


class ManifestAge(BaseModel):
    tenant: str
    surface: str
    manifest_version: str | None = Field(description="the current manifest; None: nothing published yet")
    updated_at: str | None = None
    age_seconds: float | None = Field(None, description="now - the manifest's updated_at; None when missing")


class Freshness(BaseModel):
    checked_at: str
    slo_seconds: float
    targets: list[ManifestAge]
    max_age_seconds: float | None = Field(description="the oldest current manifest's age; None: none published")
    missing: int = Field(description="targets without a current manifest")
    stale: int = Field(description="current manifests older than the SLO")


def check_freshness(store: ObjectStore, targets: Iterable[Scope], slo: dt.timedelta, now: dt.datetime) -> Freshness:
    """The age of the current manifest of every target and of every (tenant, surface) that has one."""
    published = {scope for key in store.list(paths.CURRENT_PREFIX) if (scope := paths.scope_of_current_manifest(key))}
    ages = []
    for scope in sorted(published | set(targets), key=lambda s: (s.tenant, s.surface)):
        pointer = read_pointer(store, scope.tenant, scope.surface)
        if pointer is None:
            ages.append(ManifestAge(tenant=scope.tenant, surface=scope.surface, manifest_version=None))
            continue
        updated = dt.datetime.fromisoformat(pointer.manifest.updated_at)
        ages.append(
            ManifestAge(
                tenant=scope.tenant,
                surface=scope.surface,
                manifest_version=pointer.manifest.manifest_version,
                updated_at=pointer.manifest.updated_at,
                age_seconds=max((now - updated).total_seconds(), 0.0),
            )
        )
    known = [age.age_seconds for age in ages if age.age_seconds is not None]
    return Freshness(
        checked_at=now.isoformat(),
        slo_seconds=slo.total_seconds(),
        targets=ages,
        max_age_seconds=max(known, default=None),
        missing=sum(age.age_seconds is None for age in ages),
        stale=sum(seconds > slo.total_seconds() for seconds in known),
    )
