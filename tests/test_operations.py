"""The operational wiring of template.yaml, exercised: the failed-execution rule in moto's EventBridge, and the
freshness metrics against FreshnessAlarm's definition."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
from typing import Any

import boto3
import yaml
from moto import mock_aws

from recsys.days import Window
from recsys.pipeline.models import FreshnessRequest
from recsys.pipeline.steps import freshness
from recsys.publish.service import publish, read_pointer
from tests.conftest import ROOT, run_steps
from tests.test_template import TEMPLATE, _CfnLoader

ACCOUNT, REGION = "123456789012", "us-east-1"
PIPELINE = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:recsys-pipeline"
DAILY = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:recsys-daily-run"


def _template() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


def _status_change(machine: str, status: str, name: str = "run-1") -> dict[str, Any]:
    """A Step Functions execution status-change event as EventBridge delivers it (the fields the rule reads)."""
    execution = machine.replace(":stateMachine:", ":execution:") + f":{name}"
    return {
        "Source": "aws.states",
        "DetailType": "Step Functions Execution Status Change",
        "Detail": json.dumps(
            {
                "executionArn": execution,
                "stateMachineArn": machine,
                "name": name,
                "status": status,
                "startDate": 1767225600000,
                "stopDate": 1767225660000,
                "input": "{}",
                "output": None,
            }
        ),  # fmt: skip
    }


def test_a_failed_execution_reaches_the_alarm_topic_and_a_successful_one_does_not(aws_credentials) -> None:
    rule = _template()["Resources"]["ExecutionFailedRule"]["Properties"]
    pattern = json.loads(
        json.dumps(rule["EventPattern"])
        .replace(json.dumps({"!Ref": "PipelineStateMachine"}), json.dumps(PIPELINE))
        .replace(json.dumps({"!Ref": "DailyRunStateMachine"}), json.dumps(DAILY))
    )
    (target,) = rule["Targets"]
    execution = {m: m.replace(":stateMachine:", ":execution:") for m in (PIPELINE, DAILY)}
    with mock_aws():
        # The rule's pattern and input transformer, as deployed; its target is the SNS topic on AWS, an SQS queue
        # here (moto's EventBridge delivers to SQS, not to SNS), which shows exactly what the topic would carry.
        sqs, events = boto3.client("sqs", region_name=REGION), boto3.client("events", region_name=REGION)
        inbox = sqs.create_queue(QueueName="oncall")["QueueUrl"]
        inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="execution-failed", EventPattern=json.dumps(pattern))
        events.put_targets(
            Rule="execution-failed",
            Targets=[{"Id": target["Id"], "Arn": inbox_arn, "InputTransformer": target["InputTransformer"]}],
        )
        events.put_events(
            Entries=[
                _status_change(PIPELINE, "FAILED", "backfill-demo"),
                _status_change(DAILY, "TIMED_OUT", "nightly"),
                _status_change(PIPELINE, "SUCCEEDED", "fine"),
                _status_change(f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:someone-else", "FAILED", "other"),
            ]
        )
        bodies = [m["Body"] for m in sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10).get("Messages", [])]
    runbook = " (runbook: docs/runbooks/pipeline-failed.md)"
    assert sorted(json.loads(body) for body in bodies) == [
        f"recsys execution backfill-demo ended FAILED: {execution[PIPELINE]}:backfill-demo{runbook}",
        f"recsys execution nightly ended TIMED_OUT: {execution[DAILY]}:nightly{runbook}",
    ]


def test_a_stale_manifest_breaches_freshness_alarm_and_a_fresh_one_does_not(store, sample_settings) -> None:
    """The check's MaxManifestAgeHours, for a manifest 40 h old and one 2 h old, against FreshnessAlarm's metric,
    dimensions and threshold (the template's default SLO). moto does not evaluate alarms, so this compares."""
    template = _template()
    alarm = template["Resources"]["FreshnessAlarm"]["Properties"]
    threshold = template["Parameters"]["FreshnessSloHours"]["Default"]
    assert alarm["Threshold"] == {"!Ref": "FreshnessSloHours"} and alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert [d["Name"] for d in alarm["Dimensions"]] == ["service"]  # added to every gauge when it is published

    window = Window(start=dt.date(2026, 1, 1), end=dt.date(2026, 1, 3))
    publish(store, "demo", "home", window, run_steps(sample_settings, "2026-01-01", "2026-01-03", ["popularity"]))
    built = dt.datetime.fromisoformat(read_pointer(store, "demo", "home").manifest.updated_at)
    spec = importlib.util.spec_from_file_location("freshness_app", ROOT / "functions" / "freshness" / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for hours, breaches in ((40, True), (2, False)):
        result = freshness(FreshnessRequest(), sample_settings, now=built + dt.timedelta(hours=hours))
        oldest = {gauge.name: gauge for gauge in module.gauges(result)}[alarm["MetricName"]]
        assert oldest.dimensions == {}
        assert (oldest.value > threshold) is breaches, (hours, oldest.value)
