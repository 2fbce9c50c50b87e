"""The admin audit log: every admin change leaves an immutable entry in the store, read back through the seed's
GET /v1/admin/tenants/{tenant_id}/audit with its keyset paging, under the admin routes' RBAC."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient

from recsys import paths
from recsys.serve.app import create_app
from recsys.serve.audit import AuditLog, time_of
from recsys.serve.auth import AuthSettings
from recsys.serve.reader import ArtifactReader
from recsys.serve.service import RecommendService
from recsys.serve.settings import ServeSettings
from recsys.serve.tenant_store import TenantDocuments
from recsys.store import FileSystemStore

DEV = AuthSettings(DEV_AUTH_ENABLED=True, AUTH_VIEWER_ROLE="", AUTH_OPERATOR_ROLE="", AUTH_ADMIN_ROLE="")
ADMIN = {"X-Dev-Org-Id": "demo", "X-Dev-User-Id": "alice", "User-Agent": "ops-cli/1"}
BASE = "/v1/admin/tenants/demo"


class Now:
    """A wall clock that only moves when told (many entries in one microsecond exercise the id bump)."""

    def __init__(self) -> None:
        self.now = dt.datetime(2026, 2, 5, 10, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


def _client(store: FileSystemStore, auth: AuthSettings = DEV, now: Now | None = None) -> TestClient:
    settings = ServeSettings(RECSYS_STORE=store.uri)
    reader = ArtifactReader(store, template=settings.manifest_template)
    service = RecommendService(
        settings=settings,
        store=store,
        reader=reader,
        documents=TenantDocuments(store),
        audit=AuditLog(store, now=now or Now()),
    )
    return TestClient(create_app(settings, auth, service))


def test_every_admin_change_is_audited_with_who_when_and_both_etags(store: FileSystemStore) -> None:
    now = Now()
    client = _client(store, now=now)
    first = client.put(f"{BASE}/config", json={"weights": {"pop": 1}}, headers={**ADMIN, "X-Request-Id": "req-1"})
    now.now += dt.timedelta(seconds=1)
    second = client.put(
        f"{BASE}/config", json={"weights": {"pop": 2}}, headers={**ADMIN, "If-Match": first.headers["ETag"]}
    )
    client.put(f"{BASE}/config", json={"weights": {"pop": 2}}, headers=ADMIN)  # the same document: no change
    client.get(f"{BASE}/config", headers=ADMIN)  # reads are not audited
    client.put(f"{BASE}/rules", json=[{"action": "pin", "item_ids": ["i1"]}], headers=ADMIN)
    client.post(f"{BASE}/cache/invalidate", json={"targets": ["config"], "surface": "home"}, headers=ADMIN)
    client.put(f"{BASE}/config", json={"weights": {"pop": -1}}, headers=ADMIN)  # refused: no entry

    page = client.get(f"{BASE}/audit", headers=ADMIN)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    body = page.json()
    assert body["tenant_id"] == "demo" and "next_before" not in body
    entries = body["entries"]
    assert [e["action"] for e in entries] == ["cache.invalidate", "rules.update", "config.update", "config.update"]
    assert [e["entity_type"] for e in entries] == [
        "cache_invalidation",
        "tenant_rules",
        "tenant_config",
        "tenant_config",
    ]
    oldest, update = entries[-1], entries[-2]
    assert oldest["request_id"] == "req-1" and oldest["occurred_at"] == "2026-02-05T10:00:00Z"
    assert (oldest["actor_sub"], oldest["actor_type"], oldest["entity_id"]) == ("alice", "user", "demo")
    assert (oldest["ip"], oldest["user_agent"]) == ("testclient", "ops-cli/1")
    assert oldest["extra"] == {"auth_source": "dev", "roles": []}
    assert "before_state" not in oldest and oldest["after_state"]["config"] == {"weights": {"pop": 1}}
    assert update["before_state"] == {"etag": first.json()["config_version"], "config": {"weights": {"pop": 1}}}
    assert update["after_state"] == {"etag": second.json()["config_version"], "config": {"weights": {"pop": 2}}}
    assert entries[0]["after_state"] == {
        "targets": ["config"],
        "surface": "home",
        "status": "applied",
        "invalidated": {"config": 1},
    }
    ids = [e["id"] for e in entries]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 4  # three changes in one microsecond: bumped ids
    # immutable objects under audit/{tenant}/, keys sorting by time
    keys = list(store.list(paths.audit_prefix("demo")))
    assert keys == sorted(keys) and [paths.audit_entry("demo", i) for i in sorted(ids)] == keys
    assert store.create(keys[0], b"{}") is False


def test_paging_follows_the_seeds_keyset_cursor(store: FileSystemStore) -> None:
    now = Now()
    client = _client(store, now=now)
    for n in range(5):
        client.put(f"{BASE}/config", json={"n": n}, headers=ADMIN)
        now.now += dt.timedelta(minutes=1)
    first = client.get(f"{BASE}/audit", params={"limit": 2}, headers=ADMIN).json()
    assert [e["after_state"]["config"]["n"] for e in first["entries"]] == [4, 3]
    assert first["next_before_id"] == first["entries"][-1]["id"]
    assert first["next_before"] == first["entries"][-1]["occurred_at"]
    cursor = {"before": first["next_before"], "before_id": first["next_before_id"]}
    second = client.get(f"{BASE}/audit", params={"limit": 2, **cursor}, headers=ADMIN).json()
    assert [e["after_state"]["config"]["n"] for e in second["entries"]] == [2, 1]
    cursor = {"before": second["next_before"], "before_id": second["next_before_id"]}
    last = client.get(f"{BASE}/audit", params={"limit": 2, **cursor}, headers=ADMIN).json()
    assert [e["after_state"]["config"]["n"] for e in last["entries"]] == [0] and "next_before_id" not in last
    # either half of the cursor alone; a limit over 200 is clamped, not refused
    by_time = client.get(f"{BASE}/audit", params={"before": "2026-02-05T10:02:00Z"}, headers=ADMIN).json()
    assert [e["after_state"]["config"]["n"] for e in by_time["entries"]] == [1, 0]
    by_id = client.get(f"{BASE}/audit", params={"before_id": first["entries"][0]["id"]}, headers=ADMIN).json()
    assert len(by_id["entries"]) == 4
    assert len(client.get(f"{BASE}/audit", params={"limit": 500}, headers=ADMIN).json()["entries"]) == 5


def test_bad_paging_parameters_get_the_seeds_400s(store: FileSystemStore) -> None:
    client = _client(store)
    for params, detail in (
        ({"limit": "ten"}, "limit must be an integer"),
        ({"limit": "0"}, "limit must be positive"),
        ({"before": "yesterday"}, "before must be RFC3339 timestamp"),
        ({"before": "2026-02-05"}, "before must be RFC3339 timestamp"),
        ({"before_id": "x"}, "before_id must be an integer"),
        ({"before_id": "-1"}, "before_id must be non-negative"),
    ):
        response = client.get(f"{BASE}/audit", params=params, headers=ADMIN)
        assert (response.status_code, response.json()["code"], response.json()["detail"]) == (
            400,
            "RECSYS_INVALID_REQUEST",
            detail,
        ), params
    assert client.get(f"{BASE}/audit", headers=ADMIN).json() == {"tenant_id": "demo", "entries": []}


def test_audit_rbac_is_the_admin_routes_and_viewers_see_no_states(store: FileSystemStore) -> None:
    roles = AuthSettings(API_KEY_ENABLED=False, DEV_AUTH_ENABLED=True)  # viewer/operator/admin role checks on
    _client(store).put(f"{BASE}/config", json={"weights": {"pop": 1}}, headers=ADMIN)
    client = _client(store, roles)
    assert client.get(f"{BASE}/audit", headers=ADMIN).status_code == 403  # dev callers carry no roles
    crossed = _client(store).get(f"{BASE}/audit", headers={"X-Dev-Org-Id": "acme"})
    assert (crossed.status_code, crossed.json()["code"]) == (403, "RECSYS_TENANT_SCOPE_MISMATCH")
    entry = AuditLog(store).list("demo").entries[0]
    assert entry.redacted().before_state is None and entry.redacted().after_state is None
    assert entry.redacted().extra is None and entry.after_state is not None


def test_an_audit_entry_the_store_refuses_goes_to_the_log_and_the_change_stands(tmp_path, caplog, monkeypatch) -> None:
    store = FileSystemStore(tmp_path / "store")
    client = _client(store)
    (tmp_path / "store").mkdir(exist_ok=True)
    (tmp_path / "store" / "audit").write_text("not a directory")  # every audit write now fails
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    put = client.put(f"{BASE}/config", json={"weights": {"pop": 1}}, headers=ADMIN)
    assert put.status_code == 200 and client.get(f"{BASE}/config", headers=ADMIN).status_code == 200
    failed = [record for record in caplog.records if record.getMessage() == "audit entry not written"]
    assert failed and failed[0].audit_entry["action"] == "config.update"  # type: ignore[attr-defined]


def test_entry_ids_are_their_time_in_microseconds() -> None:
    assert time_of(1_770_285_600_000_000) == dt.datetime(2026, 2, 5, 10, 0, tzinfo=dt.UTC)
