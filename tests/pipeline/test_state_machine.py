"""statemachine/pipeline.asl.json end to end under moto's Step Functions interpreter with the real handlers."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
from pathlib import Path

import boto3
import pytest
import yaml

from recsys import paths
from recsys.days import yesterday
from recsys.pipeline import lease
from recsys.publish.service import read_pointer
from recsys.store import FileSystemStore, S3Store, TransientStoreError
from recsys_tools.local.runner import LocalPipeline, StepEvent
from tests.conftest import ROOT, SAMPLE_CATALOG, SAMPLE_RAW, event, jsonl

KINDS = {"popularity", "cooc", "implicit", "content_sim", "session_seq", "item_knn"}


def run_input(start: str = "2026-01-01", end: str = "2026-01-07", **extra) -> dict:
    return {
        "tenant": "demo",
        "surface": "home",
        "start": start,
        "end": end,
        "raw": str(SAMPLE_RAW),
        "catalog": str(SAMPLE_CATALOG),
        **extra,
    }


def files_with_mtimes(root: Path) -> dict[Path, int]:
    """Every data file with its mtime; the run lease (taken and given back by every run) is not data."""
    leases = root / "registry" / "leases"
    return {
        p: p.stat().st_mtime_ns
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".") and leases not in p.parents
    }


def test_a_run_publishes_all_six_kinds_and_a_rerun_rewrites_nothing(store: FileSystemStore) -> None:
    steps: list[StepEvent] = []
    with LocalPipeline({"RECSYS_STORE": store.uri}, on_step=steps.append) as pipeline:
        first = pipeline.run(run_input())
        assert first.status == "SUCCEEDED", first.message
        first_steps = list(steps)
        before = files_with_mtimes(store.root)
        second = pipeline.run(run_input())
    assert second.status == "SUCCEEDED"
    assert files_with_mtimes(store.root) == before
    assert first.output["published"]["decision"] == "moved"
    assert second.output["published"]["decision"] == "unchanged"
    assert all(not c["written"] and c["partials_built"] == 0 for c in second.output["computed"])
    manifest = read_pointer(store, "demo", "home").manifest
    assert set(manifest.current) == KINDS and manifest.run_id == first.output["plan"]["run_id"]
    assert [d["quarantined"] for d in first.output["ingested"]] == [1, 0, 1, 0, 1, 0, 0]
    assert {e.function for e in steps} == {
        "plan", "ingest", "validate", "partials", "compute", "quality", "publish", "release",
    }  # fmt: skip
    # BuildPartials built every ingested day's partial of every event kind, each once; compute only merged them.
    partials = [e.request for e in first_steps if e.function == "partials"]
    event_kinds = KINDS - {"content_sim"}
    assert sorted((p["day"], p["kind"]) for p in partials) == sorted(
        (day, kind) for day in first.output["plan"]["days"] for kind in event_kinds
    )
    assert all(e.result["built"] for e in first_steps if e.function == "partials")
    assert not any(e.result["built"] for e in steps[len(first_steps) :] if e.function == "partials")
    assert all(c["partials_built"] == 0 for c in first.output["computed"])
    assert lease.read_lease(store, "demo", "home").released_at is not None
    assert first.output["quality"]["enabled"] is False  # the gate is opt-in (RECSYS_QUALITY__METRIC)
    assert len(json.dumps(first.output)) < 16_000  # payloads between states stay small


@pytest.mark.parametrize("concurrency", [1, 3])
def test_local_runs_hold_at_most_concurrency_invocations_at_once(
    store: FileSystemStore, monkeypatch: pytest.MonkeyPatch, concurrency: int
) -> None:
    running, peak = [0], [0]
    lock = threading.Lock()
    invoke_now = LocalPipeline._invoke_now

    def counted(self, *args, **kwargs):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            time.sleep(0.02)  # long enough for the Map's other iterations to try to start meanwhile
            return invoke_now(self, *args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(LocalPipeline, "_invoke_now", counted)
    with LocalPipeline({"RECSYS_STORE": store.uri}, concurrency=concurrency) as pipeline:
        execution = pipeline.run(run_input())
    assert execution.status == "SUCCEEDED", execution.message
    assert peak[0] == concurrency  # six compute kinds (and seven ingest days) wanted more at once


def test_a_failing_gate_stops_the_run_and_keeps_the_current_pointer(store: FileSystemStore, monkeypatch) -> None:
    with LocalPipeline({"RECSYS_STORE": store.uri}) as pipeline:
        assert pipeline.run(run_input()).status == "SUCCEEDED"
        good = store.get(paths.current_manifest("demo", "home")).data
        monkeypatch.setenv("RECSYS_GATES__MAX_ERROR_RATE", "0.001")
        failed = pipeline.run(run_input(end="2026-01-06"))
    assert failed.status == "FAILED"
    assert failed.error == "GateFailed" and "error_budget: 2026-01-01: quarantined 1 of 493 lines" in failed.message
    assert store.get(paths.current_manifest("demo", "home")).data == good
    # The failed run gave its lease back: the next run starts at once.
    assert lease.read_lease(store, "demo", "home").released_at is not None


def test_a_run_waits_while_another_run_holds_the_lease(store: FileSystemStore) -> None:
    lease.acquire(store, "demo", "home", "backfill-in-progress", dt.timedelta(hours=1))
    finish = threading.Timer(1.0, lease.release, (store, "demo", "home", "backfill-in-progress"))
    steps: list[StepEvent] = []
    with LocalPipeline({"RECSYS_STORE": store.uri}, on_step=steps.append) as pipeline:
        finish.start()
        started = time.monotonic()
        run = pipeline.run(run_input())
    assert run.status == "SUCCEEDED", run.message
    plans = [e for e in steps if e.function == "plan"]
    assert plans[0].error.startswith("RunInProgress: demo/home is being run by backfill-in-progress")
    assert plans[-1].error is None and time.monotonic() - started < 60
    assert lease.read_lease(store, "demo", "home").run_id == run.output["plan"]["run_id"]


def test_an_empty_window_fails_the_min_events_gate(store: FileSystemStore, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with LocalPipeline({"RECSYS_STORE": store.uri}) as pipeline:
        failed = pipeline.run(run_input(raw=str(tmp_path / "empty")))
    assert failed.status == "FAILED" and "min_events" in failed.message
    assert read_pointer(store, "demo", "home") is None


def test_a_handler_error_is_caught_and_reported_with_its_cause(store: FileSystemStore) -> None:
    with LocalPipeline({"RECSYS_STORE": store.uri}) as pipeline:
        failed = pipeline.run(run_input(catalog=None, kinds=["popularity", "content_sim"]) | {"catalog": None})
    assert failed.status == "FAILED" and failed.error == "ConfigError"
    assert "content_sim needs a catalog" in failed.message
    assert read_pointer(store, "demo", "home") is None


def test_bad_input_fails_in_plan(store: FileSystemStore) -> None:
    with LocalPipeline({"RECSYS_STORE": store.uri}) as pipeline:
        failed = pipeline.run({"tenant": "../etc", "surface": "home", "raw": str(SAMPLE_RAW)})
    assert failed.status == "FAILED" and failed.error == "ValidationError" and "invalid tenant" in failed.message


def test_a_backfill_does_not_move_current_unless_promoted_and_rollback_works(store: FileSystemStore) -> None:
    with LocalPipeline({"RECSYS_STORE": store.uri}) as pipeline:
        newest = pipeline.run(run_input())
        backfill = pipeline.run(run_input(end="2026-01-03"))
        assert backfill.output["published"]["decision"] == "kept_newer"
        assert read_pointer(store, "demo", "home").manifest.window.end == dt.date(2026, 1, 7)
        promoted = pipeline.run(run_input(end="2026-01-03", promote=True))
        assert promoted.output["published"]["decision"] == "moved"
        assert read_pointer(store, "demo", "home").manifest.window.end == dt.date(2026, 1, 3)
        rolled = pipeline.invoke("RollbackFunction", {"tenant": "demo", "surface": "home"})
    assert rolled["rolled_back_to"] == newest.output["published"]["manifest_version"]
    assert read_pointer(store, "demo", "home").manifest.window.end == dt.date(2026, 1, 7)


def _schedule_input() -> dict:
    """The Input the template's daily schedule sends, with the parameters' defaults filled in."""

    class CfnLoader(yaml.SafeLoader):
        pass

    CfnLoader.add_multi_constructor(
        "!", lambda loader, suffix, node: loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else None
    )
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=CfnLoader)
    schedule = template["Resources"]["DailyRunStateMachine"]["Properties"]["Events"]["DailySchedule"]["Properties"]
    text = schedule["Input"]
    for name, parameter in template["Parameters"].items():
        text = text.replace("${" + name + "}", str(parameter.get("Default", "")))
    return json.loads(text)


def _yesterdays_events(raw: Path, tenant: str = "demo", surface: str = "home") -> dt.date:
    day = yesterday()
    path = raw / tenant / f"dt={day}" / "events.jsonl"
    path.parent.mkdir(parents=True)
    ts = f"{day}T12:00:00Z"
    path.write_bytes(
        jsonl(
            *(
                event(
                    ts=ts,
                    tenant=tenant,
                    surface=surface,
                    item_id=f"i{n % 5}",
                    session_id=f"s{n // 3}",
                    user_id=f"u{n % 4}",
                )
                for n in range(30)
            )
        )
    )
    return day


def test_the_schedule_input_runs_yesterday(store: FileSystemStore, tmp_path: Path) -> None:
    """EventBridge under moto never fires: start the daily run with the Input the template's schedule sends."""
    schedule_input = _schedule_input()
    assert schedule_input == {"targets": "demo/home"}
    day = _yesterdays_events(tmp_path / "raw")
    env = {
        "RECSYS_STORE": store.uri,
        "RECSYS_RAW_URI": str(tmp_path / "raw" / "{tenant}"),
        "RECSYS_KINDS": "popularity,cooc",
    }
    with LocalPipeline(env) as pipeline:
        first = pipeline.run_daily(schedule_input["targets"], name="daily-1")
        second = pipeline.run_daily(schedule_input["targets"], name="daily-2")
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        outputs = {
            e["name"]: json.loads(sfn.describe_execution(executionArn=e["executionArn"])["output"])
            for e in sfn.list_executions(stateMachineArn=pipeline.state_machine_arn)["executions"]
        }
    assert first.execution.status == second.execution.status == "SUCCEEDED", first.execution.message
    assert first.runs == [{"target": "demo/home", "execution": "daily-1-0", "status": "SUCCEEDED"}]
    window = [(day - dt.timedelta(days=n)).isoformat() for n in range(29, -1, -1)]
    # The first scheduled run ingests the whole 30-day window (nothing was ingested); later runs only the new day.
    assert (outputs["daily-1-0"]["plan"]["start"], outputs["daily-1-0"]["plan"]["end"]) == (window[0], window[-1])
    assert outputs["daily-1-0"]["plan"]["days"] == window
    assert outputs["daily-2-0"]["plan"]["days"] == [day.isoformat()]
    assert all(c["partials_reused"] == 30 for c in outputs["daily-2-0"]["computed"])
    assert set(read_pointer(store, "demo", "home").manifest.current) == {"popularity", "cooc"}


@pytest.mark.slow
def test_the_daily_run_runs_every_target_and_fails_if_one_failed(store: FileSystemStore, tmp_path: Path) -> None:
    """Three targets: two with events, one whose raw folder does not exist. The others still publish."""
    _yesterdays_events(tmp_path / "raw", "demo", "home")
    _yesterdays_events(tmp_path / "raw", "acme", "shop")
    env = {
        "RECSYS_STORE": store.uri,
        "RECSYS_RAW_URI": str(tmp_path / "raw" / "{tenant}"),
        "RECSYS_KINDS": "popularity",
    }
    with LocalPipeline(env) as pipeline:
        daily = pipeline.run_daily("demo/home,missing/home,acme/shop", name="nightly")
    assert (daily.execution.status, daily.execution.error) == ("FAILED", "TargetsFailed")
    assert [(r["target"], r["execution"], r["status"]) for r in daily.runs] == [
        ("demo/home", "nightly-0", "SUCCEEDED"),
        ("missing/home", "nightly-1", "FAILED"),
        ("acme/shop", "nightly-2", "SUCCEEDED"),
    ]
    assert "NotFound" in daily.runs[1]["cause"]
    assert read_pointer(store, "demo", "home") and read_pointer(store, "acme", "shop")
    assert read_pointer(store, "missing", "home") is None


def test_transient_store_errors_are_retried(store: FileSystemStore, monkeypatch) -> None:
    from recsys.pipeline import steps

    calls = {"n": 0}
    real = steps.validate_window

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise TransientStoreError("SlowDown: please reduce your request rate")
        return real(*args, **kwargs)

    monkeypatch.setattr(steps, "validate_window", flaky)
    with LocalPipeline({"RECSYS_STORE": store.uri}) as pipeline:
        execution = pipeline.run(run_input(kinds=["popularity"]))
    assert execution.status == "SUCCEEDED" and calls["n"] == 2


@pytest.mark.slow
def test_the_same_state_machine_runs_against_s3(aws_credentials) -> None:
    with LocalPipeline(
        {"RECSYS_STORE": "s3://recsys-artifacts/prod", "RECSYS_RAW_URI": "s3://recsys-raw/events"}
    ) as pipeline:
        s3 = boto3.client("s3", region_name="us-east-1")
        for bucket in ("recsys-artifacts", "recsys-raw", "recsys-catalog"):
            s3.create_bucket(Bucket=bucket)
        for path in SAMPLE_RAW.rglob("*.jsonl"):
            s3.put_object(Bucket="recsys-raw", Key=f"events/{path.relative_to(SAMPLE_RAW)}", Body=path.read_bytes())
        s3.put_object(Bucket="recsys-catalog", Key="catalog.csv", Body=SAMPLE_CATALOG.read_bytes())
        execution = pipeline.run(
            {
                "tenant": "demo",
                "surface": "home",
                "start": "2026-01-01",
                "end": "2026-01-07",
                "catalog": "s3://recsys-catalog/catalog.csv",
            }
        )
        assert execution.status == "SUCCEEDED", execution.message
        artifacts = S3Store("recsys-artifacts", "prod")
        manifest = read_pointer(artifacts, "demo", "home").manifest
        assert set(manifest.current) == KINDS
        assert all(
            uri.startswith("s3://recsys-artifacts/prod/artifacts/demo/home/") for uri in manifest.current.values()
        )
        assert artifacts.exists(paths.quarantine("demo", "home", dt.date(2026, 1, 1)))


@pytest.mark.parametrize("name", ["pipeline.asl.json"])
def test_the_definition_parses_in_the_interpreter_and_has_no_dangling_states(name: str) -> None:
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    text = (ROOT / "statemachine" / name).read_text()
    substituted = re.sub(r"\$\{(\w+)Arn\}", r"arn:aws:lambda:us-east-1:123456789012:function:\1", text)
    AmazonStateLanguageParser.parse(substituted)

    def check(machine: dict) -> None:
        states = machine["States"]
        assert machine["StartAt"] in states
        reachable, todo = set(), [machine["StartAt"]]
        while todo:
            state = states[todo.pop()]
            reachable.add(next(k for k, v in states.items() if v is state))
            targets = [state.get("Next"), *(c["Next"] for c in state.get("Catch", []))]
            for target in filter(None, targets):
                assert target in states, f"dangling Next {target}"
                if target not in reachable:
                    todo.append(target)
            if "ItemProcessor" in state:
                check(state["ItemProcessor"])
            assert state.get("End") or state.get("Next") or state["Type"] in ("Succeed", "Fail", "Choice")
        assert reachable == set(states), f"unreachable: {set(states) - reachable}"

    check(json.loads(text))
