"""The gates, as pure functions over ingest counts (no I/O)."""

from __future__ import annotations

import datetime as dt
import statistics

from pydantic import BaseModel

from recsys.ingest.service import IngestReport
from recsys.settings import GateLimits


class GateResult(BaseModel):
    gate: str
    day: dt.date | None  # None for window-wide gates
    passed: bool
    message: str


def _per_day_limit(report: IngestReport, gate: str, value: int, limit: int, what: str) -> GateResult:
    return GateResult(
        gate=gate, day=report.day, passed=value <= limit, message=f"{report.day}: {value} {what} (max {limit})"
    )


def evaluate(
    reports: list[IngestReport], history: dict[dt.date, int], limits: GateLimits, window_events: int | None = None
) -> list[GateResult]:
    """Every gate's result for the judged days' `reports`.

    `history` holds accepted-event counts of other days (before the window, or days of it judged by an earlier run);
    with the judged days it forms the trailing baseline of the volume-anomaly gate. `window_events` is the whole
    window's accepted count for the min_events gate (default: the judged days' total).
    """
    results: list[GateResult] = []
    volumes = dict(history)
    for report in sorted(reports, key=lambda r: r.day):
        results.append(_error_budget(report, limits))
        results.append(_per_day_limit(report, "max_events", report.accepted, limits.max_events_per_day, "events"))
        results.append(
            _per_day_limit(
                report, "max_distinct_items", report.distinct_items, limits.max_distinct_items_per_day, "distinct items"
            )
        )
        results.append(
            _per_day_limit(
                report,
                "max_distinct_sessions",
                report.distinct_sessions,
                limits.max_distinct_sessions_per_day,
                "distinct sessions",
            )
        )
        results.append(
            _per_day_limit(
                report, "max_distinct_users", report.distinct_users, limits.max_distinct_users_per_day, "distinct users"
            )
        )
        results.append(_volume_anomaly(report, volumes, limits))
        volumes[report.day] = report.accepted
    total = sum(r.accepted for r in reports) if window_events is None else window_events
    results.append(
        GateResult(
            gate="min_events",
            day=None,
            passed=total >= limits.min_events,
            message=f"window has {total} accepted events (min {limits.min_events})",
        )
    )
    return results


def _error_budget(report: IngestReport, limits: GateLimits) -> GateResult:
    """quarantined / read within the budget. A damaged raw file uses the whole budget (its lines are unknown), so
    it fails the day unless the budget is 100%."""
    rate = report.error_rate
    counts = f"quarantined {report.quarantined} of {report.read} lines"
    if report.damaged_files:
        files = "; ".join(f"{damaged.source}: {damaged.error}" for damaged in report.damaged_files)
        counts = f"{len(report.damaged_files)} damaged raw file(s) count as 100% ({files}); {counts}"
    else:
        counts += f" ({rate:.2%})"
    return GateResult(
        gate="error_budget",
        day=report.day,
        passed=rate <= limits.max_error_rate,
        message=(
            f"{report.day}: {counts}, budget {limits.max_error_rate:.2%}"
            + (f"; reasons {report.reasons}" if report.reasons else "")
        ),
    )


def _volume_anomaly(report: IngestReport, volumes: dict[dt.date, int], limits: GateLimits) -> GateResult:
    # Empty days (before the tenant's data starts, or an outage) are no baseline: the gate compares with real days.
    trailing = [
        volumes[day]
        for offset in range(1, limits.anomaly_trailing_days + 1)
        if volumes.get(day := report.day - dt.timedelta(days=offset), 0) > 0
    ]
    if len(trailing) < limits.anomaly_min_history:
        return GateResult(
            gate="volume_anomaly",
            day=report.day,
            passed=True,
            message=f"{report.day}: {len(trailing)} baseline days (< {limits.anomaly_min_history}), not checked",
        )
    baseline = statistics.median(trailing)
    ratio = report.accepted / baseline if baseline else (1.0 if report.accepted == 0 else float("inf"))
    return GateResult(
        gate="volume_anomaly",
        day=report.day,
        passed=limits.anomaly_min_ratio <= ratio <= limits.anomaly_max_ratio,
        message=(
            f"{report.day}: {report.accepted} events vs trailing median {baseline:g} over {len(trailing)} days "
            f"(ratio {ratio:.2f}, allowed {limits.anomaly_min_ratio:g}..{limits.anomaly_max_ratio:g})"
        ),
    )
