"""Cache invalidation is the caller's tenant's business: an operator drops their own tenant's cached artifacts,
and only a platform admin (AUTH_PLATFORM_ADMIN_ROLE) drops every tenant's."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from recsys import paths
from recsys.compute import popularity
from recsys.compute.artifact import canonical_table, content_version, to_parquet
from recsys.contract.manifest import ArtifactRef
from recsys.days import Window
from recsys.publish.service import publish
from recsys.serve.app import create_app
from recsys.serve.auth import AuthSettings
from recsys.serve.reader import ArtifactReader
from recsys.serve.service import RecommendService
from recsys.serve.settings import ServeSettings
from recsys.serve.tenant_store import ApiKeys, TenantDocuments
from recsys.store import FileSystemStore

DAY = Window(start=dt.date(2026, 1, 1), end=dt.date(2026, 1, 1))
PLATFORM_ROLE = "platform-ops"


def publish_popularity(store: FileSystemStore, tenant: str) -> str:
    """Publish a manifest of one popularity artifact for `tenant`/home; returns the artifact's URI."""
    table = canonical_table(
        pa.table({"item_id": [f"{tenant}-item"], "score": [1.0], "count": [1], "rank": [1]}), popularity.SCHEMA
    )
    version = content_version(table, popularity.SCHEMA, canonical=True)
    data = to_parquet(table, popularity.SCHEMA, kind=popularity.KIND, canonical=True)
    key = paths.artifact(tenant, "home", popularity.KIND, version)
    store.create(key, data)
    ref = ArtifactRef(kind=popularity.KIND, version=version, uri=store.url(key), window=DAY, rows=1, keys=1, bytes=1)
    publish(store, tenant, "home", DAY, [ref.model_copy(update={"bytes": len(data)})])
    return ref.uri


@pytest.fixture
def store(tmp_path: Path) -> FileSystemStore:
    return FileSystemStore(tmp_path / "store")


@pytest.fixture
def client(store: FileSystemStore) -> TestClient:
    settings = ServeSettings(RECSYS_STORE=store.uri)
    service = RecommendService(
        settings=settings,
        store=store,
        reader=ArtifactReader(store),
        documents=TenantDocuments(store),
        api_keys=ApiKeys(store),
    )
    auth = AuthSettings(API_KEY_ENABLED=True, AUTH_PLATFORM_ADMIN_ROLE=PLATFORM_ROLE)
    return TestClient(create_app(settings, auth, service))


def key_for(store: FileSystemStore, tenant: str, *roles: str) -> dict[str, str]:
    key, _ = ApiKeys(store).create(tenant, roles, "test")
    return {"X-API-Key": key}


def cached_artifacts(client: TestClient) -> set:
    return set(client.app.state.service.reader.artifacts.keys())


def load_artifacts(client: TestClient, *callers: dict[str, str]) -> None:
    for headers in callers:
        response = client.post("/v1/recommend", json={"surface": "home", "user": {"user_id": "u"}}, headers=headers)
        assert response.status_code == 200 and response.json()["items"], response.text


def invalidate_artifacts(client: TestClient, tenant: str, headers: dict[str, str]) -> dict:
    response = client.post(
        f"/v1/admin/tenants/{tenant}/cache/invalidate", json={"targets": ["artifacts"]}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()["invalidated"]


def test_an_operator_drops_only_their_own_tenants_artifacts(store: FileSystemStore, client: TestClient) -> None:
    demo_uri, acme_uri = publish_popularity(store, "demo"), publish_popularity(store, "acme")
    demo, acme = key_for(store, "demo", "operator"), key_for(store, "acme", "operator")
    load_artifacts(client, demo, acme)
    assert {demo_uri, acme_uri} <= cached_artifacts(client)
    invalidate_artifacts(client, "acme", acme)
    assert demo_uri in cached_artifacts(client) and acme_uri not in cached_artifacts(client)
    # An admin of one tenant is still scoped to it.
    invalidate_artifacts(client, "demo", key_for(store, "demo", "admin"))
    assert cached_artifacts(client) == set() and client.app.state.service.reader.artifacts.bytes == 0


def test_a_platform_admin_drops_every_tenants_artifacts(store: FileSystemStore, client: TestClient) -> None:
    demo_uri, acme_uri = publish_popularity(store, "demo"), publish_popularity(store, "acme")
    demo, acme = key_for(store, "demo", "operator"), key_for(store, "acme", "operator")
    load_artifacts(client, demo, acme)
    assert {demo_uri, acme_uri} <= cached_artifacts(client)
    counts = invalidate_artifacts(client, "demo", key_for(store, "demo", "operator", PLATFORM_ROLE))
    assert cached_artifacts(client) == set() and counts["artifacts"] >= 2
    # The platform role alone opens no admin route: it widens what an operator's invalidation reaches.
    load_artifacts(client, acme)
    response = client.post(
        "/v1/admin/tenants/demo/cache/invalidate",
        json={"targets": ["artifacts"]},
        headers=key_for(store, "demo", PLATFORM_ROLE),
    )
    assert (response.status_code, response.json()["code"]) == (403, "RECSYS_FORBIDDEN")
    assert acme_uri in cached_artifacts(client)
