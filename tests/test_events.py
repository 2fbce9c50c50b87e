"""Every events/*.json sample through its real handler, against moto S3 buckets holding the bundled sample."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from recsys.publish.service import read_pointer
from recsys.store import S3Store
from tests.conftest import ROOT, SAMPLE_CATALOG, SAMPLE_RAW

EVENTS = ROOT / "events"
KINDS = ["popularity", "cooc", "implicit", "content_sim", "session_seq", "item_knn"]


class Context:
    function_name = "local"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:local"
    aws_request_id = "00000000-0000-0000-0000-000000000000"


def handler(name: str):
    spec = importlib.util.spec_from_file_location(f"sample_{name}", ROOT / "functions" / name / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler


def sample(name: str, **changes) -> dict:
    return json.loads((EVENTS / f"{name}.json").read_text()) | changes


@pytest.fixture
def buckets(aws_credentials, monkeypatch):
    monkeypatch.setenv("RECSYS_STORE", "s3://recsys-artifacts-example")
    monkeypatch.setenv("RECSYS_RAW_URI", "s3://recsys-raw-example/events/{tenant}/{surface}")
    monkeypatch.setenv("RECSYS_CATALOG_URI", "s3://recsys-raw-example/catalog/{tenant}.csv")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Recsys")
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="recsys-raw-example")
        s3.create_bucket(Bucket="recsys-artifacts-example")
        for path in SAMPLE_RAW.rglob("*.jsonl"):
            key = f"events/demo/home/{path.relative_to(SAMPLE_RAW)}"
            s3.put_object(Bucket="recsys-raw-example", Key=key, Body=path.read_bytes())
        s3.put_object(Bucket="recsys-raw-example", Key="catalog/demo.csv", Body=SAMPLE_CATALOG.read_bytes())
        yield S3Store("recsys-artifacts-example")


def test_every_function_has_a_sample_event_and_every_sample_is_tested() -> None:
    functions = {p.name for p in (ROOT / "functions").iterdir() if (p / "app.py").exists()}
    samples = {p.stem for p in EVENTS.glob("*.json")}
    if any(name.startswith("api-") for name in samples):  # API Gateway events for the recommend function
        samples.add("recommend")
    assert functions <= samples


def test_the_sample_events_run_through_their_handlers(buckets: S3Store) -> None:
    plan = handler("plan")(sample("plan"), Context())
    assert plan["days"][0] == "2026-01-01" and len(plan["days"]) == 7 and plan["run_id"] == "example-run"
    # Plan fills in {tenant} and {surface} once; the later states use these as they are.
    assert plan["raw"] == "s3://recsys-raw-example/events/demo/home"
    assert plan["catalog"] == sample("compute")["catalog"] == "s3://recsys-raw-example/catalog/demo.csv"
    ingest = handler("ingest")
    first = ingest(sample("ingest"), Context())
    assert (first["accepted"], first["quarantined"], first["reasons"]) == (492, 1, {"malformed_json": 1})
    for day in plan["days"][1:]:
        ingest(sample("ingest", day=day), Context())
    assert handler("validate")(sample("validate"), Context())["passed"] is True
    built = handler("partials")(sample("partials"), Context())  # one (day, kind) of the BuildPartials Map
    assert (built["kind"], built["day"], built["built"]) == ("cooc", "2026-01-01", True)
    compute = handler("compute")
    computed = [compute(sample("compute", kind=kind), Context())["artifact"] for kind in KINDS]

    publish_event = sample("publish")
    if os.environ.get("RECSYS_REGENERATE_EVENTS"):
        publish_event = {**sample("validate"), "promote": False, "artifacts": computed}
        (EVENTS / "publish.json").write_text(json.dumps(publish_event, indent=2) + "\n")

    def content(refs: list[dict]) -> list[dict]:  # Parquet byte sizes vary with the pyarrow version; content does not
        return [{k: v for k, v in ref.items() if k != "bytes"} for ref in refs]

    assert content(publish_event["artifacts"]) == content(computed), "regenerate: RECSYS_REGENERATE_EVENTS=1 make unit"

    publish = handler("publish")
    popularity_only = publish(publish_event | {"artifacts": computed[:1]}, Context())
    published = publish(publish_event, Context())
    assert published["decision"] == "moved" and published["pointer_before"] == popularity_only["manifest_version"]
    assert set(read_pointer(buckets, "demo", "home").manifest.current) == set(KINDS)
    assert handler("release")(sample("release"), Context()) == {"released": True}  # the lease Plan took

    rolled = handler("rollback")(sample("rollback"), Context())
    assert rolled["rolled_back_to"] == popularity_only["manifest_version"]

    # The scheduled GC: every artifact is young and the pointer's are kept; the sample days are older than the
    # quarantine retention (RECSYS_RETENTION__QUARANTINE_DAYS), so only their quarantine files go.
    collected = handler("gc")(sample("gc"), Context())
    assert collected["skipped"] == {} and [(r["tenant"], r["surface"]) for r in collected["reports"]] == [
        ("demo", "home")
    ]
    assert {d["reason"] for d in collected["reports"][0]["deleted"]} <= {"old_quarantine"}
    assert set(read_pointer(buckets, "demo", "home").manifest.current) == {"popularity"}


def test_the_state_machine_inputs_are_valid_run_requests() -> None:
    from recsys.pipeline.models import RunRequest

    assert RunRequest.model_validate(sample("schedule")).start is None
    from recsys.paths import parse_targets

    assert [(t.tenant, t.surface) for t in parse_targets(sample("daily-run")["targets"])] == [("demo", "home")]
    assert str(RunRequest.model_validate(sample("backfill")).end) == "2026-01-07"


def test_a_bad_event_raises_a_validation_error(buckets: S3Store) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="day"):
        handler("ingest")(sample("ingest", day="yesterday"), Context())
    assert not Path(buckets.uri).exists()


def test_the_sam_local_walk_passes_with_the_handlers_in_process(buckets: S3Store, monkeypatch) -> None:
    """The walk `make sam-local` runs in Lambda containers (recsys_tools.sam_local.events), here in-process: it
    passes, and its failures (a raising handler, an API answer other than 200) stop it."""
    from recsys_tools.local.runner import FUNCTIONS
    from recsys_tools.sam_local.events import walk

    monkeypatch.setenv("AUTH_ROLE_CLAIMS", "roles")  # as events/env.local.json sets it for the API function
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    folders = FUNCTIONS | {"FreshnessFunction": "freshness", "GcFunction": "gc", "RecommendFunction": "recommend"}
    handlers: dict[str, object] = {}

    def call(function: str, event: dict) -> tuple[object, bool]:
        run = handlers.setdefault(function, handler(folders[function]))
        try:
            return run(event, Context()), False
        except Exception as exc:
            return {"errorType": type(exc).__name__, "errorMessage": str(exc)}, True

    recorded: list[dict] = []
    results = walk(call, EVENTS, recorded.append)
    assert results == recorded and all(r["ok"] for r in results)
    walked = {r["event"].split()[0] for r in results}
    function_events = {p.name for p in EVENTS.glob("*.json")} - {"backfill.json", "schedule.json", "daily-run.json"}
    assert walked == function_events - {"env.local.json"}  # every function event of events/, nothing else
    summaries = {r["event"]: r["summary"] for r in results}
    assert summaries["ingest.json day=2026-01-01"] == "492 accepted, 1 quarantined {'malformed_json': 1}"
    assert summaries["publish.json"].startswith("moved ") and summaries["api-admin-config.json"].startswith("HTTP 200")

    monkeypatch.setenv("AUTH_ROLE_CLAIMS", "")  # no roles: the admin route answers 403, and the walk stops there
    handlers.pop("RecommendFunction")
    with pytest.raises(RuntimeError, match="api-admin-config.json through RecommendFunction: HTTP 403"):
        walk(call, EVENTS, recorded.append)
