"""The manifest's rules: its version (a content address), building one, backfills and regressions. Pure, no I/O.

The types live in recsys.contract.manifest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

from recsys.contract.manifest import ArtifactRef, Manifest, ManifestArtifact
from recsys.contract.quality import QualityResult
from recsys.days import Window


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
