"""validate_window: load the window's ingest reports (and the trailing baseline) and run the gates."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel

from recsys import paths
from recsys.days import Window
from recsys.errors import DayNotIngested, GateFailed
from recsys.ingest.service import IngestReport, load_report
from recsys.settings import GateLimits
from recsys.store import ObjectStore
from recsys.validate.gates import GateResult, evaluate


class ValidationResult(BaseModel):
    passed: bool
    events: int
    failures: list[GateResult]
    checked: int  # how many gate results were evaluated

    def raise_for_failures(self) -> None:
        if not self.passed:
            details = "; ".join(f"{f.gate}: {f.message}" for f in self.failures)
            raise GateFailed(f"{len(self.failures)} gate(s) failed: {details}")


def _partition_matches_report(store: ObjectStore, report: IngestReport) -> GateResult:
    """Every day compute will read (judged or not) holds the partition its report counted. They differ only when an
    ingest stopped between writing the two, or someone replaced the partition by hand."""
    actual = store.head(paths.canonical_events(report.tenant, report.surface, report.day))
    matches = actual == report.canonical_etag
    return GateResult(
        gate="partition_matches_report",
        day=report.day,
        passed=matches,
        message=f"{report.day}: the canonical partition is the one its ingest report describes"
        if matches
        else f"{report.day}: the canonical partition (ETag {actual}) is not the one its ingest report describes "
        f"({report.canonical_etag}): re-ingest the day (a backfill of it)",
    )


def validate_window(
    store: ObjectStore,
    tenant: str,
    surface: str,
    window: Window,
    limits: GateLimits,
    judge: list[dt.date] | None = None,
) -> ValidationResult:
    """Gates over `window`. Per-day gates judge only the days in `judge` (default: every day): the days a daily run
    ingested. Days judged by an earlier run are only the volume baseline, so one bad day cannot block every later
    daily run; the min_events gate always counts the whole window."""
    reports = []
    for day in window.days:
        report = load_report(store, tenant, surface, day)
        if report is None:
            raise DayNotIngested(f"{tenant}/{surface} {day} has not been ingested")
        reports.append(report)
    history: dict[dt.date, int] = {}
    for offset in range(1, limits.anomaly_trailing_days + 1):
        day = window.start - dt.timedelta(days=offset)
        report = load_report(store, tenant, surface, day)
        if report is not None:
            history[day] = report.accepted
    judged = [r for r in reports if judge is None or r.day in set(judge)]
    history.update({r.day: r.accepted for r in reports if r not in judged})
    results = evaluate(judged, history, limits, window_events=sum(r.accepted for r in reports))
    results += [_partition_matches_report(store, report) for report in reports if report.canonical_etag]
    failures = [r for r in results if not r.passed]
    return ValidationResult(
        passed=not failures, events=sum(r.accepted for r in reports), failures=failures, checked=len(results)
    )
