"""Health endpoints (/healthz, /livez, /readyz, /health: cheap, no bucket name, no listing per call) and the API's
logs (Powertools JSON lines with the request id and the tenant; service name and namespace from the environment)."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from recsys.serve.app import create_app
from recsys.serve.auth import AuthSettings
from recsys.serve.observability import logger
from recsys.serve.reader import ArtifactReader
from recsys.serve.service import RecommendService
from recsys.serve.settings import ServeSettings
from recsys.serve.tenant_store import TenantDocuments
from recsys.store import FileSystemStore, StoreError
from tests.conftest import ROOT
from tests.serve.test_api import Clock

DEV = AuthSettings(DEV_AUTH_ENABLED=True, AUTH_VIEWER_ROLE="", AUTH_OPERATOR_ROLE="", AUTH_ADMIN_ROLE="")


class CountingStore(FileSystemStore):
    """A filesystem store that counts readiness pings and listings, and can be made to fail."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.pings = self.lists = 0
        self.down = False

    def ping(self) -> None:
        self.pings += 1
        if self.down:
            raise StoreError("s3://secret-bucket-name: connection refused")
        super().ping()

    def list(self, prefix: str = "") -> Iterator[str]:
        self.lists += 1
        return super().list(prefix)


def _client(store: FileSystemStore, clock: Clock) -> TestClient:
    settings = ServeSettings(
        RECSYS_STORE=store.uri, HEALTH_CACHE_DURATION="30s", RECSYS_CLIENT_RATE_LIMIT_ENABLED=False
    )
    reader = ArtifactReader(store, template=settings.manifest_template, clock=clock)
    service = RecommendService(
        settings=settings, store=store, reader=reader, documents=TenantDocuments(store), clock=clock
    )
    return TestClient(create_app(settings, DEV, service))


def test_liveness_needs_no_store(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "store")
    store.down = True
    client = _client(store, Clock())
    assert client.get("/healthz").json() == {"status": "healthy"}
    live = client.get("/livez")
    assert live.status_code == 200 and live.json()["status"] == "alive" and live.json()["timestamp"].endswith("Z")
    assert store.pings == 0


def test_readiness_is_cached_and_reveals_no_bucket_nor_listing(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "store")
    (tmp_path / "store").mkdir()
    clock = Clock()
    client = _client(store, clock)
    ready = [client.get("/readyz") for _ in range(20)]
    assert {r.status_code for r in ready} == {200} and store.pings == 1 and store.lists == 0
    body = ready[0].json()
    assert (body["status"], body["message"]) == ("ready", "store reachable") and body["timestamp"].endswith("Z")
    assert ready[0].headers["Cache-Control"] == "no-store"
    health = client.get("/health").json()
    assert health["status"] == "healthy" and health["checks"]["store"]["status"] == "ready"
    assert store.pings == 1  # /health reuses the same check

    store.down = True
    clock.now += 31  # past HEALTH_CACHE_DURATION: checked again, and it fails
    down = client.get("/readyz")
    assert down.status_code == 503 and down.json()["status"] == "unavailable"
    assert "secret-bucket-name" not in down.text and str(tmp_path) not in down.text
    assert client.get("/health").status_code == 503 and client.get("/health").json()["status"] == "unhealthy"
    assert store.pings == 2
    store.down = False
    clock.now += 5  # a failure is checked again after 5 s
    assert client.get("/readyz").status_code == 200 and store.pings == 3


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """The API logger's lines, formatted as they are emitted (in the request's context)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


def test_api_log_lines_are_json_with_request_id_and_tenant(tmp_path: Path, json_lines: io.StringIO) -> None:
    store = FileSystemStore(tmp_path / "store")
    client = _client(store, Clock())
    headers = {"X-Dev-Org-Id": "acme", "X-Request-Id": "req-log-1"}
    body = {"surface": "nosuch", "user": {"user_id": "u1"}}
    assert client.post("/v1/recommend", json=body, headers=headers).status_code == 200
    client.post("/v1/recommend", json=body, headers={"X-Dev-Org-Id": "other", "X-Request-Id": "req-log-2"})
    lines = [json.loads(line) for line in json_lines.getvalue().splitlines()]
    mine = [line for line in lines if line.get("request_id") == "req-log-1"]
    assert mine and all(line["tenant"] == "acme" and line["service"] == "recsys-api" for line in mine)
    assert {"level", "message", "timestamp"} <= set(mine[0])
    assert all(line["tenant"] == "other" for line in lines if line.get("request_id") == "req-log-2")


def test_service_names_and_namespace_come_from_the_environment() -> None:
    code = (
        "from recsys.pipeline.lambda_glue import logger, metrics\n"
        "from recsys.serve.observability import logger as api\n"
        "from recsys.settings import metrics_namespace\n"
        "print(logger.service, metrics.namespace, api.service, metrics_namespace())"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "layers" / "recsys")}
    defaults = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert defaults.stdout.split() == ["recsys-pipeline", "Recsys", "recsys-api", "Recsys"]
    env |= {"POWERTOOLS_SERVICE_NAME": "svc-x", "POWERTOOLS_METRICS_NAMESPACE": "Ns-y"}
    chosen = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert chosen.stdout.split() == ["svc-x", "Ns-y", "svc-x", "Ns-y"]
