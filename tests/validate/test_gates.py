"""Each gate passes and fails where its documented limit says."""

from __future__ import annotations

import datetime as dt

import pytest

from recsys.days import Window
from recsys.errors import DayNotIngested, GateFailed
from recsys.ingest.service import DamagedFile, IngestReport
from recsys.settings import GateLimits
from recsys.validate.gates import evaluate
from recsys.validate.service import validate_window

D1 = dt.date(2026, 1, 10)


def report(
    day: dt.date = D1,
    *,
    read: int = 100,
    accepted: int = 100,
    quarantined: int = 0,
    items: int = 10,
    sessions: int = 10,
    users: int = 10,
) -> IngestReport:
    return IngestReport(
        tenant="demo",
        surface="home",
        day=day,
        files=1,
        read=read,
        accepted=accepted,
        duplicates=0,
        quarantined=quarantined,
        reasons={"malformed_json": quarantined} if quarantined else {},
        other_days=0,
        distinct_items=items,
        distinct_sessions=sessions,
        distinct_users=users,
        canonical_uri="file:///x",
        quarantine_uri=None,
    )


def failed(results) -> list[str]:
    return [r.gate for r in results if not r.passed]


def test_everything_passes_within_limits() -> None:
    assert failed(evaluate([report()], {}, GateLimits())) == []


def test_error_budget_is_quarantined_over_read_per_day() -> None:
    limits = GateLimits(max_error_rate=0.05)
    assert failed(evaluate([report(read=100, accepted=95, quarantined=5)], {}, limits)) == []
    results = evaluate([report(read=100, accepted=94, quarantined=6)], {}, limits)
    assert failed(results) == ["error_budget"]
    assert "quarantined 6 of 100 lines (6.00%), budget 5.00%" in results[0].message


def test_a_damaged_file_uses_the_whole_error_budget() -> None:
    damaged = DamagedFile(source="s3://raw/dt=2026-01-10/b.jsonl.gz", error="CRC check failed 0x1 != 0x2")
    day = report(read=100, accepted=100).model_copy(update={"damaged_files": [damaged]})
    assert day.error_rate == 1.0
    results = evaluate([day], {}, GateLimits(max_error_rate=0.99))
    assert failed(results) == ["error_budget"]
    assert results[0].message == (
        "2026-01-10: 1 damaged raw file(s) count as 100% (s3://raw/dt=2026-01-10/b.jsonl.gz: CRC check failed "
        "0x1 != 0x2); quarantined 0 of 100 lines, budget 99.00%"
    )
    assert failed(evaluate([day], {}, GateLimits(max_error_rate=1))) == []


def test_a_report_stored_before_damaged_files_existed_still_loads() -> None:
    stored = report().model_dump(mode="json")
    del stored["damaged_files"]
    assert IngestReport.model_validate(stored).damaged_files == []


def test_min_events_over_the_window_blocks_an_empty_window() -> None:
    results = evaluate([report(read=0, accepted=0, items=0, sessions=0, users=0)], {}, GateLimits(min_events=1))
    assert failed(results) == ["min_events"]


@pytest.mark.parametrize(
    ("limits", "kwargs", "gate"),
    [
        (GateLimits(max_events_per_day=99), {}, "max_events"),
        (GateLimits(max_distinct_items_per_day=9), {}, "max_distinct_items"),
        (GateLimits(max_distinct_sessions_per_day=9), {}, "max_distinct_sessions"),
        (GateLimits(max_distinct_users_per_day=9), {}, "max_distinct_users"),
    ],
)
def test_per_day_caps(limits: GateLimits, kwargs: dict, gate: str) -> None:
    assert failed(evaluate([report(**kwargs)], {}, limits)) == [gate]


def test_volume_anomaly_compares_with_the_trailing_median() -> None:
    history = {D1 - dt.timedelta(days=n): 100 for n in (1, 2, 3)}
    limits = GateLimits(anomaly_min_ratio=0.2, anomaly_max_ratio=5.0, anomaly_min_history=3)
    assert failed(evaluate([report(accepted=500, read=500)], history, limits)) == []
    assert failed(evaluate([report(accepted=501, read=501)], history, limits)) == ["volume_anomaly"]
    assert failed(evaluate([report(accepted=19, read=19)], history, limits)) == ["volume_anomaly"]


def test_volume_anomaly_needs_history_and_uses_earlier_window_days() -> None:
    limits = GateLimits(anomaly_min_history=2)
    window = [report(D1 + dt.timedelta(days=n), accepted=100, read=100) for n in range(3)]
    window.append(report(D1 + dt.timedelta(days=3), accepted=1000, read=1000))
    results = evaluate(window, {}, limits)
    assert (
        failed(results) == ["volume_anomaly"]
        and "trailing median 100" in [r.message for r in results if not r.passed][0]
    )


def test_validate_window_raises_gate_failed_naming_the_gate(store) -> None:
    store.put(
        f"canonical/demo/home/dt={D1}/_ingest.json",
        report(read=10, accepted=5, quarantined=5).model_dump_json().encode(),
    )
    result = validate_window(store, "demo", "home", Window(start=D1, end=D1), GateLimits())
    with pytest.raises(GateFailed, match=r"error_budget: 2026-01-10: quarantined 5 of 10 lines \(50.00%\)"):
        result.raise_for_failures()
    with pytest.raises(DayNotIngested):
        validate_window(store, "demo", "home", Window(start=D1, end=D1 + dt.timedelta(days=1)), GateLimits())


def test_volume_anomaly_ignores_empty_days_in_its_baseline() -> None:
    # days before the tenant's data started are empty: they are no baseline, so the first real days pass
    history = {D1 - dt.timedelta(days=n): 0 for n in range(1, 8)}
    assert failed(evaluate([report(accepted=500, read=500)], history, GateLimits())) == []
    # ... but an empty day after real ones is an anomaly
    history = {D1 - dt.timedelta(days=n): 100 for n in range(1, 4)}
    assert failed(evaluate([report(accepted=0, read=0)], history, GateLimits(min_events=0))) == ["volume_anomaly"]


def test_only_the_judged_days_face_the_per_day_gates(store) -> None:
    bad = D1 - dt.timedelta(days=1)  # judged (and failed) by an earlier run
    store.put(
        f"canonical/demo/home/dt={bad}/_ingest.json",
        report(bad, read=10, accepted=5, quarantined=5).model_dump_json().encode(),
    )
    store.put(f"canonical/demo/home/dt={D1}/_ingest.json", report().model_dump_json().encode())
    window = Window(start=bad, end=D1)
    assert not validate_window(store, "demo", "home", window, GateLimits()).passed
    judged_today = validate_window(store, "demo", "home", window, GateLimits(), judge=[D1])
    assert judged_today.passed and judged_today.events == 105


def test_a_partition_replaced_after_its_report_fails_validation(store, tmp_path) -> None:
    from recsys import paths
    from recsys.events.parse import DayScope
    from recsys.ingest.service import ingest_day
    from tests.conftest import event, jsonl

    raw = tmp_path / "raw" / f"dt={D1}"
    raw.mkdir(parents=True)
    (raw / "events.jsonl").write_bytes(jsonl(event(ts=f"{D1}T08:00:00Z"), event(ts=f"{D1}T09:00:00Z", item_id="B")))
    ingested = ingest_day(store, str(tmp_path / "raw"), DayScope("demo", "home", D1, frozenset({"exposure"})))
    window = Window(start=D1, end=D1)
    assert ingested.canonical_etag == store.head(paths.canonical_events("demo", "home", D1))
    assert validate_window(store, "demo", "home", window, GateLimits()).passed

    # An ingest that stopped between its two writes: a new partition beside the old report.
    (raw / "events.jsonl").write_bytes(jsonl(event(ts=f"{D1}T08:00:00Z")))
    report_before = store.get(paths.ingest_report("demo", "home", D1)).data
    ingest_day(store, str(tmp_path / "raw"), DayScope("demo", "home", D1, frozenset({"exposure"})))
    store.put(paths.ingest_report("demo", "home", D1), report_before)
    result = validate_window(store, "demo", "home", window, GateLimits())
    assert [f.gate for f in result.failures] == ["partition_matches_report"]
    assert "re-ingest the day" in result.failures[0].message
