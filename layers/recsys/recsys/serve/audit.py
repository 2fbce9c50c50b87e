"""The admin audit log: one immutable JSON object per admin change, in the store, read back with the seed's paging.

An entry is written create-exclusive at audit/{tenant}/{id}.json (paths.audit_entry). Its id is the change's time
in microseconds since the epoch, moved on by one while another entry holds that microsecond, so ids are unique per
tenant, keys sort by time, and `occurred_at` is the id's time. Entries follow the seed's AuditLogEntry; listing is
newest first with its keyset cursor: `before` (RFC3339) and `before_id` select the entries whose
(occurred_at, id) is below (before, before_id), so a page's `next_before`/`next_before_id` fetch the next one.

Listing reads the tenant's keys (one LIST per 1,000 entries: admin changes are rare) and gets only the page's
objects. Nothing here deletes: the serving function may put under audit/ but not delete.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from recsys import paths
from recsys.store import ObjectStore

DEFAULT_LIMIT = 100
MAX_LIMIT = 200
MAX_ID_ATTEMPTS = 1000
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class AuditEntry(BaseModel):
    """The seed's AuditLogEntry. `before_state`/`after_state`: the document's ETag and content before and after."""

    model_config = ConfigDict(frozen=True)

    id: int
    occurred_at: dt.datetime
    tenant_id: str
    actor_sub: str | None = None
    actor_type: str
    action: str
    entity_type: str
    entity_id: str
    request_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    before_state: dict[str, Any] | None = None
    after_state: dict[str, Any] | None = None
    extra: dict[str, Any] | None = None

    def redacted(self) -> AuditEntry:
        """Without the states and extra (the seed shows them to operators and admins only)."""
        return self.model_copy(update={"before_state": None, "after_state": None, "extra": None})


class AuditLogResponse(BaseModel):
    """The seed's AuditLogResponse: a page, newest first; the cursor of the next page when there is one."""

    tenant_id: str
    entries: list[AuditEntry]
    next_before: dt.datetime | None = None
    next_before_id: int | None = None


@dataclass(frozen=True)
class RequestInfo:
    """What the audit records about the request behind a change."""

    request_id: str
    ip: str | None = None
    user_agent: str | None = None


def time_of(entry_id: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=entry_id)


def id_at(moment: dt.datetime) -> int:
    """The first id of `moment`'s microsecond (naive datetimes are UTC)."""
    moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return (moment - EPOCH) // dt.timedelta(microseconds=1)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class AuditLog:
    """Writes and lists a tenant's audit entries in `store` (thread-safe: all state is in the store)."""

    def __init__(self, store: ObjectStore, *, now: Callable[[], dt.datetime] = _utcnow) -> None:
        self.store = store
        self._now = now

    def record(self, tenant: str, **fields: Any) -> AuditEntry:
        """Write a new entry (AuditEntry's fields but id, occurred_at and tenant_id); StoreError if the store fails."""
        entry_id = id_at(self._now())
        for _ in range(MAX_ID_ATTEMPTS):
            entry = AuditEntry(id=entry_id, occurred_at=time_of(entry_id), tenant_id=tenant, **fields)
            body = json.dumps(entry.model_dump(mode="json", exclude_none=True), sort_keys=True).encode()
            if self.store.create(paths.audit_entry(tenant, entry_id), body, content_type="application/json"):
                return entry
            entry_id += 1  # that microsecond is taken: the next one
        raise RuntimeError(f"no free audit entry id for {tenant} after {MAX_ID_ATTEMPTS} tries")

    def list(
        self,
        tenant: str,
        *,
        limit: int = DEFAULT_LIMIT,
        before: dt.datetime | None = None,
        before_id: int | None = None,
    ) -> AuditLogResponse:
        """Up to `limit` entries below the cursor, newest first (see the module docstring)."""
        prefix = paths.audit_prefix(tenant)
        ids = []
        for key in self.store.list(prefix):
            name = key[len(prefix) :].removesuffix(".json")
            if name.isdigit() and key.endswith(".json"):
                ids.append(int(name))
        ids.sort(reverse=True)
        below = [entry_id for entry_id in ids if _below(entry_id, before, before_id)]
        page = [
            AuditEntry.model_validate(json.loads(self.store.get(paths.audit_entry(tenant, entry_id)).data))
            for entry_id in below[:limit]
        ]
        response = AuditLogResponse(tenant_id=tenant, entries=page)
        if len(below) > limit and page:
            response.next_before, response.next_before_id = page[-1].occurred_at, page[-1].id
        return response


def _below(entry_id: int, before: dt.datetime | None, before_id: int | None) -> bool:
    """(occurred_at, id) < (before, before_id), either part of the cursor optional (the seed's keyset). An entry's
    occurred_at is its id's microsecond, so the comparison needs the id only."""
    if before is None:
        return before_id is None or entry_id < before_id
    at = id_at(before)
    return entry_id < at or (before_id is not None and entry_id == at and entry_id < before_id)
