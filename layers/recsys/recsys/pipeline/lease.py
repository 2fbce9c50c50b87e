"""The run lease: at most one run of a (tenant, surface) writes canonical data, partials and the pointer at a time.

Runs share the canonical partitions they ingest and compute from, so two overlapping runs with different raw data
(a scheduled run and a backfill, late files landing) would otherwise build artifacts from a mix of both inputs.
Plan takes the lease, every later step renews it before it writes (and fails with LeaseLost if another run holds
it), and the run's last state releases it, on success and on failure. The lease object is only ever changed by
conditional writes (create-exclusive, then compare-and-swap on its ETag), like the current pointer. A run that dies
without releasing it (its release step failing too) blocks the next run until `expires_at`; every step pushes that
out by `ttl`, so `ttl` must exceed the longest step (Lambda's 900 s) with its retries. A local `recsys run` also
records its host and process id (RECSYS_LEASE_HOLDER, set by the local runner): a run on the same host whose process
is gone (killed, Ctrl-C) holds nothing, so the next local run need not wait for the expiry.
"""

from __future__ import annotations

import datetime as dt
import os
import socket

from pydantic import BaseModel

from recsys import paths
from recsys.days import UTC
from recsys.errors import LeaseLost, RunInProgress
from recsys.store import NotFound, ObjectStore, PreconditionFailed

_CAS_ATTEMPTS = 5
HOLDER_ENV = "RECSYS_LEASE_HOLDER"  # "host:pid" of a local run; unset on AWS


class RunLease(BaseModel):
    """The lease object (registry/leases/{tenant}/{surface}.json)."""

    tenant: str
    surface: str
    run_id: str
    acquired_at: dt.datetime
    expires_at: dt.datetime
    released_at: dt.datetime | None = None
    holder: str | None = None  # "host:pid" of the local `recsys run` that holds it; None on AWS

    def active(self, now: dt.datetime) -> bool:
        return self.released_at is None and now < self.expires_at and not self._holder_is_gone()

    def _holder_is_gone(self) -> bool:
        """The local process that took the lease ended on this host (only a local run records one)."""
        host, _, pid = (self.holder or "").rpartition(":")
        if host != socket.gethostname() or not pid.isdigit():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, someone else's
            return False
        return False


def local_holder() -> str:
    """The RECSYS_LEASE_HOLDER value of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


class _Stored(BaseModel):
    lease: RunLease
    etag: str


def _now() -> dt.datetime:
    return dt.datetime.now(UTC)


def read_lease(store: ObjectStore, tenant: str, surface: str) -> RunLease | None:
    """The lease as stored (active, expired or released), or None if no run ever took one."""
    stored = _read(store, tenant, surface)
    return stored.lease if stored else None


def _read(store: ObjectStore, tenant: str, surface: str) -> _Stored | None:
    try:
        blob = store.get(paths.run_lease(tenant, surface))
    except NotFound:
        return None
    return _Stored(lease=RunLease.model_validate_json(blob.data), etag=blob.etag)


def _write(store: ObjectStore, lease: RunLease, replacing: _Stored | None) -> None:
    key = paths.run_lease(lease.tenant, lease.surface)
    body = lease.model_dump_json(indent=2).encode()
    if replacing is None:
        store.put(key, body, content_type="application/json", if_none_match=True)
    else:
        store.put(key, body, content_type="application/json", if_match=replacing.etag)


def _busy(held: RunLease) -> RunInProgress:
    return RunInProgress(
        f"{held.tenant}/{held.surface} is being run by {held.run_id} (lease until "
        f"{held.expires_at.isoformat(timespec='seconds')}); this run waits or starts again after it ends"
    )


def acquire(
    store: ObjectStore, tenant: str, surface: str, run_id: str, ttl: dt.timedelta, now: dt.datetime | None = None
) -> RunLease:
    """Take the lease for `run_id` (or renew it if `run_id` holds it already: a retried Plan); RunInProgress if
    another run holds an active lease."""
    for _ in range(_CAS_ATTEMPTS):
        moment = now or _now()
        stored = _read(store, tenant, surface)
        if stored and stored.lease.active(moment) and stored.lease.run_id != run_id:
            raise _busy(stored.lease)
        lease = RunLease(
            tenant=tenant,
            surface=surface,
            run_id=run_id,
            acquired_at=moment,
            expires_at=moment + ttl,
            holder=os.environ.get(HOLDER_ENV) or None,
        )
        try:
            _write(store, lease, stored)
        except (PreconditionFailed, NotFound):
            continue  # another run moved it between our read and our write: look again
        return lease
    raise _busy(read_lease(store, tenant, surface) or lease)


def hold(
    store: ObjectStore,
    tenant: str,
    surface: str,
    run_id: str | None,
    ttl: dt.timedelta,
    now: dt.datetime | None = None,
) -> None:
    """Before a step writes: `run_id` still holds the lease, renewed for `ttl`. A step invoked on its own (no run
    id, e.g. an operator calling one function) may write only while no run holds an active lease."""
    for _ in range(_CAS_ATTEMPTS):
        moment = now or _now()
        stored = _read(store, tenant, surface)
        if run_id is None:
            if stored and stored.lease.active(moment):
                raise _busy(stored.lease)
            return
        if stored is None or stored.lease.run_id != run_id or stored.lease.released_at is not None:
            holder = f"run {stored.lease.run_id}" if stored and stored.lease.released_at is None else "no run"
            raise LeaseLost(
                f"run {run_id} no longer holds the {tenant}/{surface} lease ({holder} does): it stops before "
                "writing anything more; start it again"
            )
        if stored.lease.expires_at - moment > ttl / 2:
            return  # renewed recently (parallel steps of this run renew too): spare a write
        try:
            _write(store, stored.lease.model_copy(update={"expires_at": moment + ttl}), stored)
        except (PreconditionFailed, NotFound):
            continue  # a parallel step of this run renewed it first, or it was taken over: look again
        return
    raise LeaseLost(f"run {run_id}: the {tenant}/{surface} lease kept changing while renewing it")


def release(store: ObjectStore, tenant: str, surface: str, run_id: str, now: dt.datetime | None = None) -> bool:
    """End `run_id`'s lease; False (and nothing written) if it does not hold it (released already, taken over)."""
    for _ in range(_CAS_ATTEMPTS):
        stored = _read(store, tenant, surface)
        if stored is None or stored.lease.run_id != run_id or stored.lease.released_at is not None:
            return False
        try:
            _write(store, stored.lease.model_copy(update={"released_at": now or _now()}), stored)
        except (PreconditionFailed, NotFound):
            continue
        return True
    return False
