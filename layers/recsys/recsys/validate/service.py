"""validate_window: load the window's ingest reports (and the trailing baseline) and run the gates."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel

from recsys.days import Window
from recsys.errors import DayNotIngested, GateFailed
from recsys.ingest.service import load_report
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
    failures = [r for r in results if not r.passed]
    return ValidationResult(
        passed=not failures, events=sum(r.accepted for r in reports), failures=failures, checked=len(results)
    )
