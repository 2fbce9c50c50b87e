"""Object keys: the one place that knows where each kind of object lives in the store.

Layout (relative to the store root):
  canonical/{tenant}/{surface}/dt={day}/events.parquet       canonical events of one UTC day
  canonical/{tenant}/{surface}/dt={day}/_ingest.json         ingest report (counts, reasons)
  canonical/{tenant}/{surface}/dt={day}/_quarantine.jsonl    rejected lines with their reason
  partials/{tenant}/{surface}/{kind}/dt={day}/{key}.parquet  per-day partial aggregates (immutable)
  partials/{tenant}/{surface}/{kind}/builds/{key}.json       the artifact a catalog (ETag) and knobs gave (immutable)
  partials/{tenant}/{surface}/{kind}/window={start}..{end}/{key}.parquet
                                                             an additive kind's partials summed over a window
  artifacts/{tenant}/{surface}/{kind}/{version}.parquet      artifacts (immutable, content-addressed)
  registry/manifests/{tenant}/{surface}/{version}.json       every manifest version (immutable)
  registry/current/{tenant}/{surface}/manifest.json          the current pointer (moved by CAS only)
  registry/leases/{tenant}/{surface}.json                    the run lease (one run at a time, CAS only)
  tenants/{tenant}/{config|rules}/...                        tenant documents (recsys.serve.tenant_store)
  api-keys/{hash}.json                                       API key records (recsys.serve.auth)
  audit/{tenant}/{id}.json                                   the admin audit log (immutable, sorted by time)
  reports/{tenant}/{surface}/{name}.json                     evaluation reports (`recsys eval --report-store`)
The *_root functions give a tenant/surface's prefix of each family, for listing (retention).
Files starting with "_" are ignored by Athena/Hive, so a table over canonical/ sees only events.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from recsys.days import Window

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


def parse_targets(text: str) -> list[Scope]:
    """'tenant/surface,tenant/surface' (the daily run's targets) as scopes, in order, without repeats."""
    scopes: list[Scope] = []
    for part in filter(None, (piece.strip() for piece in text.split(","))):
        tenant, slash, surface = part.partition("/")
        if not slash:
            raise ValueError(f"invalid target {part!r}: write tenant/surface")
        scope = Scope(tenant.strip(), surface.strip())
        if scope not in scopes:
            scopes.append(scope)
    return scopes


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


# The folder of a window sum, beside the days' dt= folders of its kind's partials.
WINDOW_SUM_PREFIX = "window="


def window_sum(tenant: str, surface: str, kind: str, window: Window, key: str) -> str:
    """The sum of an additive kind's partials over `window` (recsys.compute.window_sum); `key` hashes its days'
    partial keys."""
    return (
        f"partials/{safe_segment(tenant, 'tenant')}/{safe_segment(surface, 'surface')}/{kind}"
        f"/{WINDOW_SUM_PREFIX}{window}/{safe_segment(key, 'key')}.parquet"
    )


def window_of_sum_folder(segment: str) -> Window | None:
    """The window a window sum's folder (`window={start}..{end}`) names; None for any other folder."""
    if not segment.startswith(WINDOW_SUM_PREFIX):
        return None
    start, _, end = segment.removeprefix(WINDOW_SUM_PREFIX).partition("..")
    try:
        return Window(start=dt.date.fromisoformat(start), end=dt.date.fromisoformat(end))
    except ValueError:
        return None


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


CURRENT_PREFIX = "registry/current/"


def current_manifest(tenant: str, surface: str) -> str:
    return f"{CURRENT_PREFIX}{safe_segment(tenant, 'tenant')}/{safe_segment(surface, 'surface')}/manifest.json"


def scope_of_current_manifest(key: str) -> Scope | None:
    """The (tenant, surface) whose current pointer `key` is; None for any other key."""
    parts = key.removeprefix(CURRENT_PREFIX).split("/") if key.startswith(CURRENT_PREFIX) else []
    if len(parts) != 3 or parts[2] != "manifest.json":
        return None
    try:
        return Scope(parts[0], parts[1])
    except ValueError:
        return None


def run_lease(tenant: str, surface: str) -> str:
    return f"registry/leases/{safe_segment(tenant, 'tenant')}/{safe_segment(surface, 'surface')}.json"


def canonical_root(tenant: str, surface: str) -> str:
    return f"canonical/{safe_segment(tenant, 'tenant')}/{safe_segment(surface, 'surface')}/"


def partials_root(tenant: str, surface: str) -> str:
    return f"partials/{safe_segment(tenant, 'tenant')}/{safe_segment(surface, 'surface')}/"


def artifacts_root(tenant: str, surface: str) -> str:
    return f"artifacts/{safe_segment(tenant, 'tenant')}/{safe_segment(surface, 'surface')}/"


def audit_prefix(tenant: str) -> str:
    """The tenant's admin audit log: one immutable object per admin change (recsys.serve.audit)."""
    return f"audit/{safe_segment(tenant, 'tenant')}/"


def audit_entry(tenant: str, entry_id: int) -> str:
    """audit/{tenant}/{id}.json, the id zero-padded to 19 digits so keys sort as ids do: by time (the id is the
    change's time in microseconds since the epoch)."""
    if not isinstance(entry_id, int) or not 0 <= entry_id < 10**19:
        raise ValueError(f"invalid audit entry id {entry_id!r}")
    return f"{audit_prefix(tenant)}{entry_id:019d}.json"


def reports_prefix(tenant: str, surface: str) -> str:
    return f"reports/{safe_segment(tenant, 'tenant')}/{safe_segment(surface, 'surface')}/"


def evaluation_report(tenant: str, surface: str, name: str) -> str:
    """An evaluation report stored for the console: `name` is `{UTC time}-{protocol}`, so names sort by time."""
    return f"{reports_prefix(tenant, surface)}{safe_segment(name, 'report name')}.json"
