"""The loop, end to end under moto: requests through the recommend function's Mangum handler, in an experiment ->
served lists into the raw bucket through Kinesis Data Firehose -> outcome events added -> ingest reads both -> the
next artifacts reflect what users did with what was served, and `recsys eval --protocol logs` names the variant
users preferred."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import sys

import boto3
import pytest
from moto import mock_aws

from recsys import paths
from recsys.compute.service import compute_kind
from recsys.days import Window, iter_days
from recsys.events.parse import DayScope
from recsys.ingest.service import ingest_day
from recsys.publish.service import publish
from recsys.serve.tenant_store import TenantDocuments
from recsys.settings import Settings
from recsys.store import S3Store
from recsys.tables import from_parquet
from recsys_tools import cli
from recsys_tools.local.runner import LocalPipeline
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


def test_served_lists_and_their_outcomes_come_back_as_signals(aws_credentials, monkeypatch, tmp_path) -> None:
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
        # The tenant runs an experiment: variant B ranks by popularity alone.
        experiment = {"id": "home-ranker-v2", "variants": [{"name": "A"}, {"name": "B", "algo": "popularity"}]}
        TenantDocuments(store).put("demo", "config", {"experiments": [experiment]}, if_match=None, actor="test")

        # Requests through the real handler; each served list goes to the stream.
        handler = _handler(monkeypatch)
        served: dict[str, list[str]] = {}
        variants: dict[str, str] = {}
        for n in range(120):
            request_id = f"req-{n}"
            response = handler(_recommend_event(f"u{n:05d}", request_id, {"id": "home-ranker-v2"}), None)
            assert response["statusCode"] == 200, response["body"]
            body = json.loads(response["body"])
            served[request_id] = [item["item_id"] for item in body["items"]]
            variants[request_id] = body["meta"]["experiment"]["variant"]
        assert set(variants.values()) == {"A", "B"}  # assigned by the server, sticky per user
        service = handler.app.state.service
        assert service.exposures.flush() and service.exposures.failed_batches == 0

        logged = [o["Key"] for o in s3.list_objects_v2(Bucket=RAW, Prefix="events/demo/home/")["Contents"]
                  if "/dt=" not in o["Key"]]  # fmt: skip
        assert logged and all(f"/{STREAM}-" in key for key in logged)

        # Users click the first item of B's lists, and of every third of A's: B is the planted winner. Clicks carry
        # the request id of the list they follow, and come at the end of the day, after the lists were served
        # (a click before its list is not attributed to it: at 23:00 the test failed after 23:00 UTC).
        clicked_lists = [r for n, r in enumerate(served) if variants[r] == "B" or n % 3 == 0]
        clicks = [
            {"v": 1, "ts": f"{today.isoformat()}T23:59:59.999999Z", "tenant": "demo", "surface": "home",
             "session_id": f"s-click-{request_id}", "request_id": request_id, "item_id": served[request_id][0],
             "event_type": "click", "event_id": f"{request_id}:click"}
            for request_id in clicked_lists
        ]  # fmt: skip
        s3.put_object(Bucket=RAW, Key=f"events/demo/home/dt={today}/outcomes.jsonl",
                      Body="".join(json.dumps(c) + "\n" for c in clicks).encode())  # fmt: skip

        # The next run (the state machine `recsys run` executes, here in the same moto account) ingests both: the
        # served exposures (Firehose's objects) and the outcomes.
        with LocalPipeline({"RECSYS_STORE": store.uri}) as pipeline:
            execution = pipeline.run({"tenant": "demo", "surface": "home", "start": str(today), "end": str(today),
                                      "raw": raw_uri, "kinds": ["popularity"]})  # fmt: skip
        assert execution.status == "SUCCEEDED", execution.message
        report = json.loads(store.get(paths.ingest_report("demo", "home", today)).data)
        shown = sum(len(items) for items in served.values())
        assert (report["accepted"], report["quarantined"]) == (shown + len(clicks), 0)

        # ... and what users did with what was served is the next signal: today's popularity weighs each item's
        # exposures (the served lists) and clicks by the event weights (1 and 3), so clicked items move up.
        window = Window(start=today, end=today)
        popularity = compute_kind(store, "popularity", "demo", "home", window, settings).artifact
        table = from_parquet(store.get(store.key_of(popularity.uri)).data)
        scores = dict(zip(table.column("item_id").to_pylist(), table.column("score").to_pylist(), strict=True))
        weights = settings.event_weights
        expected: dict[str, float] = {}
        for request_id, items in served.items():
            for item in items:
                expected[item] = expected.get(item, 0.0) + weights["exposure"]
            if request_id in clicked_lists:
                expected[items[0]] += weights["click"]
        assert set(scores) == set(expected)
        top = max(expected, key=expected.get)
        for item, weight in expected.items():  # one day, one decay: scores are proportional to the weighted events
            assert scores[item] / scores[top] == pytest.approx(weight / expected[top])

        # The served lists and their clicks, read where the stream put them: B is ahead on CTR.
        out = tmp_path / "logs"
        code = cli.main(["eval", "--protocol", "logs", "--raw", raw_uri, "--tenant", "demo", "--surface", "home",
                         "--experiment", "home-ranker-v2", "--control", "A", "--out", str(out)])  # fmt: skip
        assert code == 0
    report = json.loads((out / "report.json").read_text())
    (ctr,) = [c for c in report["comparisons"] if c["metric"] == "ctr"]
    assert (ctr["first"], ctr["second"], ctr["verdict"]) == ("home-ranker-v2 / B", "home-ranker-v2 / A", "ahead")
    assert ctr["low"] > 0
