"""Exposure logging: served lists become raw exposure events the pipeline ingests, and logging never fails or
holds up a request."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import time
from pathlib import Path

from fastapi.testclient import TestClient

from recsys.events.contract import RawEvent
from recsys.events.parse import DayScope
from recsys.ingest.service import ingest_day
from recsys.serve.app import create_app
from recsys.serve.auth import AuthSettings
from recsys.serve.exposure import ExposureLog, ServedItem, ServedList, StoreSink
from recsys.serve.reader import ArtifactReader
from recsys.serve.service import RecommendService
from recsys.serve.settings import ServeSettings
from recsys.serve.tenant_store import TenantDocuments
from recsys.settings import Settings
from recsys.store import FileSystemStore
from tests.serve.test_api import DEMO, demo_store  # noqa: F401 - the published sample store fixture

AUTH = AuthSettings(DEV_AUTH_ENABLED=True, AUTH_VIEWER_ROLE="", AUTH_OPERATOR_ROLE="", AUTH_ADMIN_ROLE="")


def _client(store: FileSystemStore, log: ExposureLog | None) -> TestClient:
    settings = ServeSettings(RECSYS_STORE=store.uri)
    reader = ArtifactReader(store, template=settings.manifest_template, manifest_ttl=60)
    service = RecommendService(
        settings=settings, store=store, reader=reader, documents=TenantDocuments(store), exposures=log
    )
    return TestClient(create_app(settings, AUTH, service))


class FailingSink:
    def __init__(self) -> None:
        self.calls = 0

    def deliver(self, lists, now) -> None:
        self.calls += 1
        raise ConnectionError("the delivery stream is down")


def test_served_lists_land_as_raw_exposures_that_ingest_accepts(demo_store, tmp_path: Path) -> None:  # noqa: F811
    raw = FileSystemStore(tmp_path / "raw")
    log = ExposureLog(StoreSink(raw), flush_seconds=30)
    client = _client(demo_store, log)
    body = {"surface": "home", "k": 5, "user": {"user_id": "u00008", "session_id": "s-1"},
            "experiment": {"id": "home-ranker-v2", "variant": "B"}}  # fmt: skip
    served = client.post("/v1/recommend", json=body, headers={**DEMO, "X-Request-Id": "req-1"}).json()
    client.post("/v1/recommend", json={"surface": "home", "k": 3, "user": {"anonymous_id": "a-9"}}, headers=DEMO)
    assert log.flush() and log.delivered_lines == 8 and log.failed_batches == 0

    (key,) = [k for k in raw.list("") if k.endswith(".jsonl.gz")]  # one batch: one object per tenant/surface/day
    day = dt.datetime.now(dt.UTC).date()
    assert key.startswith(f"demo/home/dt={day.isoformat()}/exposures-")
    lines = [json.loads(line) for line in gzip.decompress(raw.get(key).data).decode().splitlines()]
    mine = [line for line in lines if line["request_id"] == "req-1"]
    assert [(m["item_id"], m["rank"]) for m in mine] == [(i["item_id"], i["rank"] - 1) for i in served["items"]]
    assert {m["experiment_id"] for m in mine} == {"home-ranker-v2"} and {m["experiment_variant"] for m in mine} == {"B"}
    assert all(m["event_type"] == "exposure" and m["user_id"] == "u00008" and m["session_id"] == "s-1" for m in mine)
    assert mine[0]["manifest_version"] == served["meta"]["manifest_version"] and mine[0]["source"] == "recsys-api"
    anonymous = [line for line in lines if line["request_id"] != "req-1"]
    assert {a["session_id"] for a in anonymous} == {"anon:a-9"} and "user_id" not in anonymous[0]
    for line in lines:  # every line satisfies the raw-event contract
        RawEvent.model_validate_json(json.dumps(line))

    # The pipeline ingests them like any client's exposures: the loop's first half.
    scope = DayScope("demo", "home", day, Settings().event_types)
    report = ingest_day(FileSystemStore(tmp_path / "store"), str(tmp_path / "raw" / "demo" / "home"), scope)
    assert (report.accepted, report.quarantined) == (8, 0)


def test_a_failing_delivery_stream_never_fails_or_slows_a_request(demo_store) -> None:  # noqa: F811
    sink = FailingSink()
    errors: list[str] = []
    counted: list[str] = []
    log = ExposureLog(sink, flush_seconds=0.01, on_count=counted.append, on_error=lambda m, e: errors.append(m))
    client = _client(demo_store, log)
    for n in range(20):
        response = client.post("/v1/recommend", json={"surface": "home", "k": 5, "user": {"user_id": f"u{n}"}},
                               headers=DEMO)  # fmt: skip
        assert response.status_code == 200
    assert log.flush()
    assert sink.calls >= 1 and log.failed_batches == sink.calls
    assert counted.count("ExposureDeliveryFailures") == sink.calls and errors[0].startswith("exposure delivery failed")


def test_a_full_queue_drops_and_counts_instead_of_blocking() -> None:
    class SlowSink:
        def deliver(self, lists, now) -> None:
            time.sleep(0.5)

    counted: list[str] = []
    log = ExposureLog(SlowSink(), capacity=2, batch_lines=1, on_count=counted.append)
    served = ServedList("r", "demo", "home", "default", dt.datetime.now(dt.UTC), [ServedItem("i1", 0, 1.0)])
    started = time.perf_counter()
    for _ in range(50):
        log.record(served)
    assert time.perf_counter() - started < 0.1  # never waits on the sink
    assert log.dropped >= 40 and counted.count("ExposuresDropped") == log.dropped


def test_recording_costs_microseconds() -> None:
    """The request path's share: building the served list and a queue put (the lines are formatted on the thread)."""

    class NullSink:
        def deliver(self, lists, now) -> None:
            pass

    log = ExposureLog(NullSink(), capacity=100_000)
    items = [ServedItem(f"i{n:05d}", n, 1.0 / (n + 1)) for n in range(20)]
    served = ServedList("req-1", "demo", "home", "default", dt.datetime.now(dt.UTC), items, user_id="u1")
    runs = 2_000
    started = time.perf_counter()
    for _ in range(runs):
        log.record(served)
    per_request_ms = (time.perf_counter() - started) / runs * 1000
    assert per_request_ms < 1.0, per_request_ms  # generous for a loaded CI machine; measured about 0.02 ms
    assert log.flush()
