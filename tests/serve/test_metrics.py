"""The API's CloudWatch metrics: EMF lines on stdout when metrics are on, nothing at all when they are off."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from fastapi.testclient import TestClient

from recsys import paths
from recsys.days import Window
from recsys.publish.manifest import build_manifest
from recsys.serve.app import create_app
from recsys.serve.auth import AuthSettings
from recsys.serve.reader import ArtifactReader
from recsys.serve.service import RecommendService, report_stale_manifest
from recsys.serve.settings import ServeSettings
from recsys.serve.tenant_store import TenantDocuments
from recsys.store import FileSystemStore, StoreError

DAY = Window(start=dt.date(2026, 1, 1), end=dt.date(2026, 1, 1))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def emf_lines(stdout: str) -> list[dict]:
    lines = (line for line in stdout.splitlines() if line.startswith("{"))
    return [record for record in map(json.loads, lines) if "_aws" in record]


@pytest.mark.parametrize(("disabled", "expected"), [("true", []), ("false", ["ManifestRefreshFailures"])])
def test_a_stale_manifest_emits_its_metric_only_when_metrics_are_on(
    tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], disabled: str, expected: list[str]
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", disabled)
    monkeypatch.delenv("POWERTOOLS_DEV", raising=False)
    store = FileSystemStore(tmp_path / "store")
    manifest = build_manifest("demo", "home", DAY, [], previous=None, run_id=None)
    store.put(paths.current_manifest("demo", "home"), manifest.to_bytes())
    clock = Clock()
    settings = ServeSettings(RECSYS_STORE=store.uri)
    # The production wiring of the stale-manifest callback (what RecommendService.from_settings passes).
    reader = ArtifactReader(store, manifest_ttl=60, clock=clock, on_stale=report_stale_manifest)
    service = RecommendService(
        settings=settings, store=store, reader=reader, documents=TenantDocuments(store), clock=clock
    )
    auth = AuthSettings(DEV_AUTH_ENABLED=True, AUTH_VIEWER_ROLE="", AUTH_OPERATOR_ROLE="", AUTH_ADMIN_ROLE="")
    client = TestClient(create_app(settings, auth, service))
    body = {"surface": "home", "user": {"user_id": "u1"}}
    assert client.post("/v1/recommend", json=body, headers={"X-Dev-Org-Id": "demo"}).status_code == 200

    def unreachable(self, key):
        raise StoreError("connection reset")

    clock.now += 61
    monkeypatch.setattr(FileSystemStore, "get", unreachable)
    capsys.readouterr()
    stale = client.post("/v1/recommend", json=body, headers={"X-Dev-Org-Id": "demo"})
    assert stale.status_code == 200 and "MANIFEST_STALE" in [w["code"] for w in stale.json()["warnings"]]
    emitted = emf_lines(capsys.readouterr().out)
    assert [name for record in emitted for name in record["_aws"]["CloudWatchMetrics"][0]["Metrics"]] == [
        {"Name": name, "Unit": "Count"} for name in expected
    ]
