"""recsys forget-user: one user's events leave the canonical partitions, the reports stay consistent (Validate
passes), the affected days' partials are deleted and the next compute rebuilds artifacts without the user."""

from __future__ import annotations

import datetime as dt

import pyarrow.compute as pc
import pytest

from recsys import paths
from recsys.days import Window
from recsys.errors import RunInProgress
from recsys.ingest.service import load_report
from recsys.pipeline import lease, steps
from recsys.pipeline.models import ComputeRequest, ForgetUserRequest
from recsys.store import FileSystemStore
from recsys.tables import from_parquet
from recsys.validate.service import validate_window
from recsys_tools import cli
from tests.conftest import run_steps

DAYS = [dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 1, 3)]


def _events(store: FileSystemStore, day: dt.date):
    return from_parquet(store.get(paths.canonical_events("demo", "home", day)).data)


def test_forget_user_rewrites_partitions_reports_and_partials(store: FileSystemStore, sample_settings) -> None:
    run_steps(sample_settings, "2026-01-01", "2026-01-03", kinds=["popularity", "implicit", "item_knn"])
    window_sum = [k for k in store.list("partials/demo/home/item_knn/") if "/window=" in k]
    assert len(window_sum) == 1  # item_knn's (user, item) pairs summed over the 3 days: it names the user too
    user = _events(store, DAYS[0])["user_id"].drop_null()[0].as_py()
    counts = {day: pc.sum(pc.equal(_events(store, day)["user_id"], user)).as_py() or 0 for day in DAYS}
    affected = [day for day in DAYS if counts[day]]
    before = {day: load_report(store, "demo", "home", day) for day in DAYS}

    request = ForgetUserRequest(tenant="demo", surface="home", user_id=user, dry_run=True)
    dry = steps.forget_user_events(request, sample_settings)
    assert dry.events == sum(counts.values()) > 0 and [d.day for d in dry.days] == affected
    assert load_report(store, "demo", "home", DAYS[0]) == before[DAYS[0]]  # a dry run changes nothing

    report = steps.forget_user_events(request.model_copy(update={"dry_run": False}), sample_settings)
    assert report.events == dry.events
    # Each affected day's 3 partials, and the window sum over the days once (with the first affected day).
    assert [d.partials_deleted for d in report.days] == [4] + [3] * (len(affected) - 1)
    assert not store.exists(window_sum[0])
    for day in DAYS:
        events = _events(store, day)
        assert user not in set(events["user_id"].to_pylist())
        stored = load_report(store, "demo", "home", day)
        assert stored.canonical_etag == store.head(paths.canonical_events("demo", "home", day))
        assert stored.accepted == events.num_rows == before[day].accepted - counts[day]
        assert stored.forgotten == counts[day]
        partials = [k for k in store.list("partials/demo/home/") if f"/dt={day}/" in k]
        assert (partials == []) == (day in affected)
    assert lease.read_lease(store, "demo", "home").released_at is not None

    # The next run's gates and compute: the reports match, the affected days' partials are rebuilt.
    window = Window(start=DAYS[0], end=DAYS[-1])
    assert validate_window(store, "demo", "home", window, sample_settings.gates).passed
    computed = steps.compute(
        ComputeRequest(tenant="demo", surface="home", start=DAYS[0], end=DAYS[-1], kind="implicit"), sample_settings
    )
    assert computed.partials_built == len(affected) and computed.written
    implicit = from_parquet(store.get(store.key_of(computed.artifact.uri)).data)
    assert user not in set(implicit["user_id"].to_pylist())

    # Again: nothing left to remove.
    assert steps.forget_user_events(request.model_copy(update={"dry_run": False}), sample_settings).days == []


def test_forget_user_waits_for_a_run_and_the_cli_reports(store: FileSystemStore, sample_settings, capsys) -> None:
    run_steps(sample_settings, "2026-01-01", "2026-01-01", kinds=["popularity"])
    lease.acquire(store, "demo", "home", "run-1", dt.timedelta(hours=1))
    with pytest.raises(RunInProgress):
        steps.forget_user_events(ForgetUserRequest(tenant="demo", surface="home", user_id="u1"), sample_settings)
    args = ["forget-user", "--tenant", "demo", "--surface", "home", "--store", store.uri, "--user", "nobody"]
    assert cli.main(args) == cli.EXIT_FAILED
    assert "is being run by run-1" in capsys.readouterr().err
    lease.release(store, "demo", "home", "run-1")
    assert cli.main([*args, "--json"]) == cli.EXIT_OK
    assert '"events": 0' in capsys.readouterr().out


def test_recsys_gc_cli_dry_run_and_json(store: FileSystemStore, sample_settings, capsys) -> None:
    run_steps(sample_settings, "2026-01-01", "2026-01-01", kinds=["popularity"])
    store.put(paths.partial("demo", "home", "cooc", dt.date(2020, 1, 1), "0" * 32), b"old")
    later = ["--store", store.uri]
    assert cli.main(["gc", *later, "--dry-run"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    # The partial is young; the quarantine file's day is older than RECSYS_RETENTION__QUARANTINE_DAYS (90).
    assert "demo/home: would delete 1 objects" in out and "old_quarantine" in out
    assert store.exists(paths.quarantine("demo", "home", dt.date(2026, 1, 1)))
    assert cli.main(["gc", *later, "--json", "--min-age-days", "0", "--keep-manifests", "0"]) == cli.EXIT_OK
    assert '"objects": 2' in capsys.readouterr().out  # and the popularity artifact no manifest names
    assert cli.main(["gc", *later, "--tenant", "demo"]) == cli.EXIT_USAGE
