"""The manifest and the artifact references that cross stages: compute reports an ArtifactRef, publish stores a
Manifest, the reader serves from it. Types only, no I/O.

Seed clients read the manifest's v1 fields (`v, tenant, surface, current{kind -> uri}, updated_at`); operators get
the rest.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from recsys.contract.quality import QualityResult
from recsys.days import Window


class ArtifactRef(BaseModel):
    """What publish and the manifest need to know about one artifact."""

    kind: str
    version: str
    uri: str
    window: Window
    rows: int
    keys: int  # distinct values of the lookup key (items, users, anchors)
    bytes: int


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
