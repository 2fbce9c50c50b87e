"""The run lease on the real file store: one run of a tenant/surface at a time."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from recsys.errors import LeaseLost, RunInProgress
from recsys.pipeline import lease
from recsys.store import FileSystemStore

T0 = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
TTL = dt.timedelta(hours=1)


@pytest.fixture
def store(tmp_path) -> FileSystemStore:
    return FileSystemStore(tmp_path)


def test_a_second_run_waits_while_the_first_holds_the_lease(store) -> None:
    lease.acquire(store, "demo", "home", "run-a", TTL, now=T0)
    with pytest.raises(RunInProgress, match="run-a"):
        lease.acquire(store, "demo", "home", "run-b", TTL, now=T0 + dt.timedelta(minutes=5))
    # Another tenant/surface is not blocked.
    lease.acquire(store, "demo", "search", "run-b", TTL, now=T0)


def test_a_released_lease_is_taken_by_the_next_run(store) -> None:
    lease.acquire(store, "demo", "home", "run-a", TTL, now=T0)
    assert lease.release(store, "demo", "home", "run-a", now=T0 + dt.timedelta(minutes=1))
    taken = lease.acquire(store, "demo", "home", "run-b", TTL, now=T0 + dt.timedelta(minutes=2))
    assert taken.run_id == "run-b"
    assert not lease.release(store, "demo", "home", "run-a")  # run-a no longer holds it: nothing written
    assert lease.read_lease(store, "demo", "home").run_id == "run-b"


def test_an_expired_lease_is_taken_over_and_its_run_stops_before_writing(store) -> None:
    lease.acquire(store, "demo", "home", "run-a", TTL, now=T0)
    lease.acquire(store, "demo", "home", "run-b", TTL, now=T0 + TTL + dt.timedelta(seconds=1))
    with pytest.raises(LeaseLost, match="run-b"):
        lease.hold(store, "demo", "home", "run-a", TTL, now=T0 + TTL + dt.timedelta(seconds=2))
    lease.hold(store, "demo", "home", "run-b", TTL, now=T0 + TTL + dt.timedelta(seconds=2))


def test_hold_renews_the_lease_once_half_of_it_is_used(store) -> None:
    lease.acquire(store, "demo", "home", "run-a", TTL, now=T0)
    lease.hold(store, "demo", "home", "run-a", TTL, now=T0 + dt.timedelta(minutes=10))
    assert lease.read_lease(store, "demo", "home").expires_at == T0 + TTL  # fresh enough: no write
    later = T0 + dt.timedelta(minutes=40)
    lease.hold(store, "demo", "home", "run-a", TTL, now=later)
    assert lease.read_lease(store, "demo", "home").expires_at == later + TTL
    # A step of run-b could not write although run-a started more than one TTL ago.
    with pytest.raises(RunInProgress):
        lease.acquire(store, "demo", "home", "run-b", TTL, now=T0 + TTL + dt.timedelta(minutes=1))


def test_a_retried_plan_renews_its_own_lease(store) -> None:
    lease.acquire(store, "demo", "home", "run-a", TTL, now=T0)
    again = lease.acquire(store, "demo", "home", "run-a", TTL, now=T0 + dt.timedelta(minutes=1))
    assert again.expires_at == T0 + dt.timedelta(minutes=1) + TTL


def test_a_step_without_a_run_writes_only_while_no_run_holds_the_lease(store) -> None:
    lease.hold(store, "demo", "home", None, TTL, now=T0)  # nothing held: an operator's single step may write
    lease.acquire(store, "demo", "home", "run-a", TTL, now=T0)
    with pytest.raises(RunInProgress):
        lease.hold(store, "demo", "home", None, TTL, now=T0)
    assert lease.release(store, "demo", "home", "run-a")
    with pytest.raises(LeaseLost, match="no run"):  # a released run cannot write again
        lease.hold(store, "demo", "home", "run-a", TTL)


def test_racing_runs_get_exactly_one_lease(store) -> None:
    def take(n: int) -> str | None:
        try:
            return lease.acquire(store, "demo", "home", f"run-{n}", TTL).run_id
        except RunInProgress:
            return None

    for _ in range(20):
        with ThreadPoolExecutor(8) as pool:
            winners = [run for run in pool.map(take, range(8)) if run]
        assert len(winners) == 1
        assert lease.read_lease(store, "demo", "home").run_id == winners[0]
        assert lease.release(store, "demo", "home", winners[0])


def test_a_local_run_whose_process_is_gone_holds_nothing(store, monkeypatch) -> None:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()
    for surface, (holder, taken_over) in enumerate(
        (
            (f"{host}:{finished.stdout.strip()}", True),  # killed or ended: its lease is not active
            (f"{host}:{os.getpid()}", False),  # alive on this host
            (f"another-host:{finished.stdout.strip()}", False),  # cannot tell: wait for the expiry
        )
    ):
        surface = f"s{surface}"
        monkeypatch.setenv(lease.HOLDER_ENV, holder)
        lease.acquire(store, "demo", surface, "run-a", TTL)
        monkeypatch.delenv(lease.HOLDER_ENV)
        if taken_over:
            assert lease.acquire(store, "demo", surface, "run-b", TTL).run_id == "run-b"
        else:
            with pytest.raises(RunInProgress):
                lease.acquire(store, "demo", surface, "run-b", TTL)
