"""Object keys: the one place that knows where each kind of object lives in the store.

Layout (relative to the store root):
  canonical/{tenant}/{surface}/dt={day}/events.parquet       canonical events of one UTC day
  canonical/{tenant}/{surface}/dt={day}/_ingest.json         ingest report (counts, reasons)
  canonical/{tenant}/{surface}/dt={day}/_quarantine.jsonl    rejected lines with their reason
  partials/{tenant}/{surface}/{kind}/dt={day}/{key}.parquet  per-day partial aggregates (immutable)
  partials/{tenant}/{surface}/{kind}/builds/{key}.json       the artifact a catalog (ETag) and knobs gave (immutable)
  artifacts/{tenant}/{surface}/{kind}/{version}.parquet      artifacts (immutable, content-addressed)
  registry/manifests/{tenant}/{surface}/{version}.json       every manifest version (immutable)
  registry/current/{tenant}/{surface}/manifest.json          the current pointer (moved by CAS only)
  registry/leases/{tenant}/{surface}.json                    the run lease (one run at a time, CAS only)
Files starting with "_" are ignored by Athena/Hive, so a table over canonical/ sees only events.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def safe_segment(value: str, what: str = "segment") -> str:
    """Return `value` if it is usable as one path segment (no '/', '\\', '..', control chars)."""
    if not isinstance(value, str) or not _SEGMENT.match(value) or ".." in value:
        raise ValueError(f"invalid {what} {value!r}: use letters, digits, '.', '_' or '-' (max 128, no '..')")
    return value


@dataclass(frozen=True)
class Scope:
    """A (tenant, surface), both checked by safe_segment once, where a request enters; what is below trusts it."""

    tenant: str
    surface: str

    def __post_init__(self) -> None:
        safe_segment(self.tenant, "tenant")
        safe_segment(self.surface, "surface")


def canonical_prefix(tenant: str, surface: str, day: dt.date) -> str:
    return f"canonical/{safe_segment(tenant, 'tenant')}/{safe_segment(surface, 'surface')}/dt={day.isoformat()}"


def canonical_events(tenant: str, surface: str, day: dt.date) -> str:
    return f"{canonical_prefix(tenant, surface, day)}/events.parquet"


def ingest_report(tenant: str, surface: str, day: dt.date) -> str:
    return f"{canonical_prefix(tenant, surface, day)}/_ingest.json"


def quarantine(tenant: str, surface: str, day: dt.date) -> str:
    return f"{canonical_prefix(tenant, surface, day)}/_quarantine.jsonl"


def partial(tenant: str, surface: str, kind: str, day: dt.date, key: str) -> str:
    return (
        f"partials/{safe_segment(tenant, 'tenant')}/{safe_segment(surface, 'surface')}/{kind}"
        f"/dt={day.isoformat()}/{key}.parquet"
    )


def catalog_build(tenant: str, surface: str, kind: str, key: str) -> str:
    """The build record of a catalog-sourced kind: which artifact version a catalog (ETag) and knobs gave."""
    return (
        f"partials/{safe_segment(tenant, 'tenant')}/{safe_segment(surface, 'surface')}/{kind}/builds/"
        f"{safe_segment(key, 'key')}.json"
    )


def artifact(tenant: str, surface: str, kind: str, version: str) -> str:
    return f"artifacts/{safe_segment(tenant, 'tenant')}/{safe_segment(surface, 'surface')}/{kind}/{version}.parquet"


def manifest_version(tenant: str, surface: str, version: str) -> str:
    return f"{manifests_prefix(tenant, surface)}{safe_segment(version, 'manifest version')}.json"


def manifests_prefix(tenant: str, surface: str) -> str:
    return f"registry/manifests/{safe_segment(tenant, 'tenant')}/{safe_segment(surface, 'surface')}/"


def current_manifest(tenant: str, surface: str) -> str:
    return f"registry/current/{safe_segment(tenant, 'tenant')}/{safe_segment(surface, 'surface')}/manifest.json"


def run_lease(tenant: str, surface: str) -> str:
    return f"registry/leases/{safe_segment(tenant, 'tenant')}/{safe_segment(surface, 'surface')}.json"
