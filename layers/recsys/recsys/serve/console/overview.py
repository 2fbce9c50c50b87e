"""What the operator console shows of a (tenant, surface), read from the store: no HTTP, no HTML here.

- `surfaces`: the surfaces of a tenant that have a current manifest;
- `overview`: the current manifest (its age against the freshness SLO, each artifact's rows and bytes), the stored
  versions newest first with the kinds each changed, and the ingest reports of the current window's days;
- `compare`: what changed between two manifest versions, kind by kind.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel

from recsys import paths
from recsys.contract.manifest import Manifest, ManifestArtifact
from recsys.contract.report import Report
from recsys.ingest.service import IngestReport, load_report
from recsys.publish.service import history, read_pointer
from recsys.store import NotFound, ObjectStore

# Versions listed on the overview: the newest ones (rollback targets beyond them are named by version).
HISTORY_SHOWN = 30


class Version(BaseModel):
    """One stored manifest version, as the history lists it."""

    manifest: Manifest
    current: bool
    changed: list[str]  # kinds whose artifact differs from the next older version's (all of them for the oldest)


class Series(BaseModel):
    name: str
    points: str  # SVG polyline points, "x,y x,y ..."
    marks: list[tuple[float, float, str]]  # (x, y, label) of each point, for its tooltip


class Chart(BaseModel):
    """A line chart drawn server-side as SVG: one x step per version, y scaled to the values' range."""

    width: int
    height: int
    low: float
    high: float
    series: list[Series]
    labels: list[tuple[float, str]]  # (x, version prefix) under the axis


class Overview(BaseModel):
    tenant: str
    surface: str
    current: Manifest | None
    age_seconds: float | None
    slo_seconds: float
    history: list[Version]  # newest first, at most HISTORY_SHOWN
    versions: int  # all stored versions
    days: list[IngestReport]  # the current window's ingested days, newest first
    quality: list[Version]  # the listed versions the quality gate judged, oldest first
    quality_chart: Chart | None  # their candidate and served scores, when at least one has a score

    @property
    def stale(self) -> bool:
        return self.age_seconds is not None and self.age_seconds > self.slo_seconds


class KindChange(BaseModel):
    kind: str
    before: ManifestArtifact | None
    after: ManifestArtifact | None

    @property
    def changed(self) -> bool:
        return (self.before and self.before.version) != (self.after and self.after.version)


class Comparison(BaseModel):
    before: Manifest
    after: Manifest
    kinds: list[KindChange]


def surfaces(store: ObjectStore, tenant: str) -> list[str]:
    """The surfaces of `tenant` with a current manifest, sorted."""
    prefix = f"{paths.CURRENT_PREFIX}{paths.safe_segment(tenant, 'tenant')}/"
    found = {scope.surface for key in store.list(prefix) if (scope := paths.scope_of_current_manifest(key))}
    return sorted(found)


def overview(store: ObjectStore, tenant: str, surface: str, slo: dt.timedelta, now: dt.datetime) -> Overview:
    pointer = read_pointer(store, tenant, surface)
    current = pointer.manifest if pointer else None
    stored = history(store, tenant, surface)
    listed = []
    for index, manifest in enumerate(stored[:HISTORY_SHOWN]):
        older = stored[index + 1] if index + 1 < len(stored) else None
        listed.append(
            Version(
                manifest=manifest,
                current=current is not None and manifest.manifest_version == current.manifest_version,
                changed=_changed_kinds(older, manifest),
            )
        )
    age = None
    days: list[IngestReport] = []
    if current is not None:
        age = max((now - dt.datetime.fromisoformat(current.updated_at)).total_seconds(), 0.0)
        for day in reversed(current.window.days):
            report = load_report(store, tenant, surface, day)
            if report is not None:
                days.append(report)
    judged = [v for v in reversed(listed) if v.manifest.quality is not None and v.manifest.quality.enabled]
    return Overview(
        tenant=tenant,
        surface=surface,
        current=current,
        age_seconds=age,
        slo_seconds=slo.total_seconds(),
        history=listed,
        versions=len(stored),
        days=days,
        quality=judged,
        quality_chart=quality_chart(judged),
    )


def quality_chart(judged: list[Version], width: int = 640, height: int = 220) -> Chart | None:
    """The gate's score of each judged version (the candidate) and of what was served then, as two lines."""
    rows = [(v.manifest.manifest_version[:8], v.manifest.quality) for v in judged]
    values = [x for _, q in rows for x in (q.candidate, q.current) if x is not None]
    if not values:
        return None
    low, high = min(values), max(values)
    pad = (high - low) * 0.1 or abs(high) * 0.1 or 1.0
    low, high = low - pad, high + pad
    left, right, top, bottom = 56, 16, 12, 36

    def x(index: int) -> float:
        return left + (width - left - right) * (index + 0.5) / len(rows)

    def y(value: float) -> float:
        return top + (height - top - bottom) * (high - value) / (high - low)

    series = []
    for name in ("candidate", "current"):
        marks = [
            (round(x(i), 1), round(y(value), 1), f"{version} {name} {value:.4f}")
            for i, (version, quality) in enumerate(rows)
            if (value := getattr(quality, name)) is not None
        ]
        series.append(Series(name=name, points=" ".join(f"{mx},{my}" for mx, my, _ in marks), marks=marks))
    return Chart(
        width=width,
        height=height,
        low=low,
        high=high,
        series=series,
        labels=[(round(x(i), 1), version) for i, (version, _) in enumerate(rows)],
    )


def versions(store: ObjectStore, tenant: str, surface: str) -> list[Manifest]:
    """The newest HISTORY_SHOWN stored versions, newest first."""
    return history(store, tenant, surface)[:HISTORY_SHOWN]


def manifest_version(store: ObjectStore, tenant: str, surface: str, version: str) -> Manifest:
    """A stored manifest version; NotFound if there is none of that name."""
    return Manifest.from_bytes(store.get(paths.manifest_version(tenant, surface, version)).data)


def compare(store: ObjectStore, tenant: str, surface: str, before: str, after: str) -> Comparison:
    """Kind by kind, the artifacts of two stored versions; NotFound if either is not stored."""
    old, new = (manifest_version(store, tenant, surface, version) for version in (before, after))
    kinds = sorted(set(old.artifacts) | set(new.artifacts))
    return Comparison(
        before=old,
        after=new,
        kinds=[KindChange(kind=k, before=old.artifacts.get(k), after=new.artifacts.get(k)) for k in kinds],
    )


def reports(store: ObjectStore, tenant: str, surface: str) -> list[str]:
    """The names of the stored evaluation reports, newest first (names start with their UTC time)."""
    prefix = paths.reports_prefix(tenant, surface)
    names = [key[len(prefix) : -len(".json")] for key in store.list(prefix) if key.endswith(".json")]
    return sorted(names, reverse=True)


def report(store: ObjectStore, tenant: str, surface: str, name: str) -> Report:
    """A stored evaluation report; NotFound if there is none of that name."""
    return Report.model_validate_json(store.get(paths.evaluation_report(tenant, surface, name)).data)


class Bar(BaseModel):
    label: str
    value: float
    top: float  # the bar's upper edge
    length: float  # in pixels, from BARS_LEFT


class Bars(BaseModel):
    """A horizontal bar chart drawn server-side as SVG, bars scaled to the largest value."""

    width: int
    height: int
    bars: list[Bar]


# Where the bars start (their labels are left of it) and how thick each is.
BARS_LEFT, BAR = 180, 22


def bar_chart(values: list[tuple[str, float]], width: int = 640) -> Bars:
    high = max((value for _, value in values), default=0.0) or 1.0
    span = width - BARS_LEFT - 70  # room for the value after the longest bar
    bars = [
        Bar(label=label, value=value, top=8 + index * (BAR + 8), length=max(span * value / high, 1.0))
        for index, (label, value) in enumerate(values)
    ]
    return Bars(width=width, height=16 + len(values) * (BAR + 8), bars=bars)


def _changed_kinds(older: Manifest | None, newer: Manifest) -> list[str]:
    if older is None:
        return sorted(newer.artifacts)
    kinds = set(older.artifacts) | set(newer.artifacts)
    return sorted(
        kind
        for kind in kinds
        if (older.artifacts.get(kind) and older.artifacts[kind].version)
        != (newer.artifacts.get(kind) and newer.artifacts[kind].version)
    )


__all__ = [
    "Comparison",
    "NotFound",
    "Overview",
    "Bars",
    "bar_chart",
    "compare",
    "manifest_version",
    "overview",
    "report",
    "reports",
    "surfaces",
    "versions",
]
