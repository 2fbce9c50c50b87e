"""The manifest: which artifact version of each kind a (tenant, surface) serves. Pure rules, no I/O.

Seed clients read the v1 fields (`v, tenant, surface, current{kind -> uri}, updated_at`); operators get the rest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Literal

from pydantic import BaseModel, Field

from recsys.compute.service import ArtifactRef
from recsys.days import Window
from recsys.contract.quality import QualityResult


class ManifestArtifact(BaseModel):
    version: str
    uri: str
    window: Window
    rows: int
    keys: int
    bytes: int


class Manifest(BaseModel):
    v: Literal[1] = 1
    tenant: str
    surface: str
    current: dict[str, str] = Field(description="kind -> artifact URI (the seed's v1 contract)")
    updated_at: str = Field(description="when this manifest version was created, RFC 3339 UTC")
    manifest_version: str
    previous_manifest_version: str | None = Field(
        None,
        description="in the pointer after a publish: the version that publish's conditional write replaced; "
        "in a stored version: the version current when it was first stored (docs/reference/manifest.md)",
    )
    window: Window
    artifacts: dict[str, ManifestArtifact]
    run_id: str | None = None
    quality: QualityResult | None = None  # the quality gate's verdict when the version was created, if it ran

    def to_bytes(self) -> bytes:
        return self.model_dump_json(indent=2).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        return cls.model_validate_json(data)


def manifest_version(tenant: str, surface: str, artifacts: list[ArtifactRef]) -> str:
    """Content address of a manifest: what it serves (kinds, versions, windows), not when or by whom."""
    content = {
        "tenant": tenant,
        "surface": surface,
        "artifacts": {
            a.kind: {"version": a.version, "window": [a.window.start.isoformat(), a.window.end.isoformat()]}
            for a in sorted(artifacts, key=lambda a: a.kind)
        },
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def build_manifest(
    tenant: str,
    surface: str,
    window: Window,
    artifacts: list[ArtifactRef],
    *,
    previous: str | None,
    run_id: str | None,
    now: dt.datetime | None = None,
    quality: QualityResult | None = None,
) -> Manifest:
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    ordered = sorted(artifacts, key=lambda a: a.kind)
    return Manifest(
        tenant=tenant,
        surface=surface,
        current={a.kind: a.uri for a in ordered},
        updated_at=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        manifest_version=manifest_version(tenant, surface, artifacts),
        previous_manifest_version=previous,
        window=window,
        artifacts={
            a.kind: ManifestArtifact(
                version=a.version, uri=a.uri, window=a.window, rows=a.rows, keys=a.keys, bytes=a.bytes
            )
            for a in ordered
        },
        run_id=run_id,
        quality=quality,
    )


def regressions(candidate: list[ArtifactRef], current: Manifest | None) -> list[str]:
    """Why publishing `candidate` would replace good artifacts with empty ones (empty list: it would not)."""
    problems = []
    for ref in candidate:
        before = current.artifacts.get(ref.kind) if current else None
        if ref.rows == 0 and ref.kind == "popularity":
            problems.append("popularity is empty (it is every request's fallback)")
        elif ref.rows == 0 and before is not None and before.rows > 0:
            problems.append(f"{ref.kind} would go from {before.rows} rows to 0")
    return problems


def is_backfill(window: Window, current: Manifest | None) -> bool:
    """True when the candidate ends before what is served now: it must not move the pointer unless promoted."""
    return current is not None and window.end < current.window.end
