"""The loop, end to end under moto: requests through the recommend function's Mangum handler -> served lists into
the raw bucket through Kinesis Data Firehose -> outcome events added -> ingest reads both -> the next artifacts
reflect what users did with what was served."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import sys

import boto3
import pytest
from moto import mock_aws

from recsys.compute.service import compute_kind
from recsys.days import Window, iter_days
from recsys.events.parse import DayScope
from recsys.ingest.service import ingest_day
from recsys.publish.service import publish
from recsys.settings import Settings
from recsys.store import S3Store
from recsys.tables import from_parquet
from tests.conftest import ROOT, SAMPLE_CATALOG, SAMPLE_RAW

pytestmark = pytest.mark.slow

RAW = "recsys-raw-example"
ARTIFACTS = "recsys-artifacts-example"
STREAM = "recsys-exposures"


def _recommend_event(user: str, request_id: str, experiment: dict | None = None) -> dict:
    event = json.loads((ROOT / "events" / "api-recommend.json").read_text())
    event["headers"]["x-request-id"] = request_id
    body = {"surface": "home", "k": 5, "user": {"user_id": user, "session_id": f"s-{user}"}}
    if experiment:
        body["experiment"] = experiment
    event["body"], event["isBase64Encoded"] = json.dumps(body), False
    return event


def _handler(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RECSYS_STORE", f"s3://{ARTIFACTS}")
    monkeypatch.setenv("RECSYS_EXPOSURE_LOG", f"firehose://{STREAM}")
    monkeypatch.setenv("AUTH_TENANT_CLAIMS", "tenant_id")
    spec = importlib.util.spec_from_file_location("loop_recommend_app", ROOT / "functions" / "recommend" / "app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.handler


def test_served_lists_and_their_outcomes_come_back_as_signals(aws_credentials, monkeypatch) -> None:
    today = dt.datetime.now(dt.UTC).date()
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        for bucket in (RAW, ARTIFACTS):
            s3.create_bucket(Bucket=bucket)
        role = boto3.client("iam", region_name="us-east-1").create_role(
            RoleName="exposures", AssumeRolePolicyDocument="{}"
        )["Role"]["Arn"]
        # moto's Firehose writes its default layout (YYYY/MM/DD/HH/<stream>-...) under the prefix; the template's
        # stream partitions by the records' dt= instead. Ingest reads both.
        boto3.client("firehose", region_name="us-east-1").create_delivery_stream(
            DeliveryStreamName=STREAM,
            DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration={
                "BucketARN": f"arn:aws:s3:::{RAW}", "RoleARN": role, "Prefix": "events/demo/home/",
            },
        )  # fmt: skip
        raw_uri = f"s3://{RAW}/events/demo/home"
        for path in SAMPLE_RAW.rglob("*.jsonl"):
            s3.put_object(Bucket=RAW, Key=f"events/demo/home/{path.relative_to(SAMPLE_RAW)}", Body=path.read_bytes())
        s3.put_object(Bucket=RAW, Key="catalog/demo.csv", Body=SAMPLE_CATALOG.read_bytes())
        store = S3Store(ARTIFACTS)
        settings = Settings(store=store.uri, raw_uri=raw_uri, catalog_uri=f"s3://{RAW}/catalog/demo.csv")

        # Yesterday's pipeline (the sample's week) publishes what the API serves.
        january = Window(start=dt.date(2026, 1, 1), end=dt.date(2026, 1, 7))
        for day in iter_days(january.start, january.end):
            ingest_day(store, raw_uri, DayScope("demo", "home", day, settings.event_types))
        refs = [
            compute_kind(store, kind, "demo", "home", january, settings).artifact for kind in ("popularity", "cooc")
        ]
        publish(store, "demo", "home", january, refs)

        # Requests through the real handler; each served list goes to the stream.
        handler = _handler(monkeypatch)
        served: dict[str, list[str]] = {}
        for n, user in enumerate(["u00008", "u00017", "u00042", "u00100"] * 5):
            request_id = f"req-{n}"
            response = handler(_recommend_event(user, request_id), None)
            assert response["statusCode"] == 200, response["body"]
            served[request_id] = [item["item_id"] for item in json.loads(response["body"])["items"]]
        service = handler.app.state.service
        assert service.exposures.flush() and service.exposures.failed_batches == 0

        logged = [o["Key"] for o in s3.list_objects_v2(Bucket=RAW, Prefix="events/demo/home/")["Contents"]
                  if "/dt=" not in o["Key"]]  # fmt: skip
        assert logged and all(f"/{STREAM}-" in key for key in logged)

        # Users click the first item of every list; clicks carry the request id of the list they follow.
        clicks = [
            {"v": 1, "ts": f"{today.isoformat()}T23:00:00Z", "tenant": "demo", "surface": "home",
             "session_id": f"s-click-{request_id}", "request_id": request_id, "item_id": items[0],
             "event_type": "click", "event_id": f"{request_id}:click"}
            for request_id, items in served.items()
        ]  # fmt: skip
        s3.put_object(Bucket=RAW, Key=f"events/demo/home/dt={today}/outcomes.jsonl",
                      Body="".join(json.dumps(c) + "\n" for c in clicks).encode())  # fmt: skip

        # The next daily run ingests both: the served exposures (Firehose's objects) and the outcomes.
        report = ingest_day(store, raw_uri, DayScope("demo", "home", today, settings.event_types))
        shown = sum(len(items) for items in served.values())
        assert (report.accepted, report.quarantined) == (shown + len(clicks), 0)

        # ... and what users did with what was served is the next signal: today's popularity weighs each item's
        # exposures (the served lists) and clicks by the event weights (1 and 3), so clicked items move up.
        window = Window(start=today, end=today)
        popularity = compute_kind(store, "popularity", "demo", "home", window, settings).artifact
        table = from_parquet(store.get(store.key_of(popularity.uri)).data)
        scores = dict(zip(table.column("item_id").to_pylist(), table.column("score").to_pylist(), strict=True))
        weights = settings.event_weights
        expected: dict[str, float] = {}
        for items in served.values():
            for item in items:
                expected[item] = expected.get(item, 0.0) + weights["exposure"]
            expected[items[0]] += weights["click"]
        assert set(scores) == set(expected)
        top = max(expected, key=expected.get)
        for item, weight in expected.items():  # one day, one decay: scores are proportional to the weighted events
            assert scores[item] / scores[top] == pytest.approx(weight / expected[top])
